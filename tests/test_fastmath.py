"""Error bounds of the float32 activations of the CPU kernels (csrc/core/fastmath.h: tanh_f,
exp_f; activation.h: sigmoid, ELU), which the fast path evaluates on vectors (vmath.h, bitwise
the same: csrc/tests/test_core.cpp) and the generic path on rows.

Each function is evaluated through the fused mlp_forward op on a 1 -> 1 layer with weight 1 and
bias 0 (z = fma(1, x, 0) = x exactly), over a dense sweep of float32 inputs, and compared with
the correctly rounded value (float64 torch, rounded) and with torch's own float32 function.
Errors are in ulps of the float32 result (the spacing of floats at the exact value).

Bounds, measured over every finite float32 (docs/design.md "Float math"; the sweep here checks
every 251st bit pattern of the interesting range):
* tanh_f: <= TANH_ULP ulp against the correctly rounded tanh (it saturates at 1 - 5 * 2^-24
  beyond |x| = 7.905, its clamp, where tanh rounds to 1);
* sigmoid: <= SIGMOID_ULP ulp where the result is >= 2^-100 (z > -69); for z < -87.3 exp_f's
  clamp makes it saturate at 1.2e-38 instead of reaching 0 (absolute error < 1.2e-38);
* ELU (alpha = 1, z <= 0): computed as exp(z) - 1, so the absolute error is <= ELU_ABS (the
  relative error is large for |z| < 2^-20, where exp(z) rounds near 1).
"""
from __future__ import annotations

import pytest
import torch

from conftest import requires_ext
from ganfast import _ext

pytestmark = requires_ext

TANH_ULP = 6.0
SIGMOID_ULP = 5.0
ELU_ABS = 1.2e-7
CODES = {"tanh": 4, "sigmoid": 5, "elu": 3}


def fused_activation(name: str, x: torch.Tensor, param: float = 1.0) -> torch.Tensor:
    params = torch.tensor([1.0, 0.0], dtype=torch.float32)
    out, _ = torch.ops.ganfast.mlp_forward(x.reshape(-1, 1), params, [1, 1], [CODES[name]], [param], 0.0, 0, 0)
    return out.reshape(-1)


def float_sweep(lo: float, hi: float, stride: int = 251) -> torch.Tensor:
    """Every `stride`-th float32 bit pattern with |x| in [0, max(|lo|, |hi|)], clipped to [lo, hi]."""
    top = torch.tensor([max(abs(lo), abs(hi))], dtype=torch.float32).view(torch.int32).item()
    bits = torch.arange(0, top + 1, stride, dtype=torch.int64).to(torch.int32)
    pos = bits.view(torch.float32)
    x = torch.cat([pos, -pos])
    return x[(x >= lo) & (x <= hi)]


def ulp_error(y: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """|y - exact| in ulps of the float32 nearest to exact."""
    r = exact.to(torch.float32).abs()
    spacing = (torch.nextafter(r, torch.tensor(float("inf"))) - r).double()
    spacing = torch.where(torch.isinf(spacing), (r - torch.nextafter(r, torch.tensor(0.0))).double(), spacing)
    return (y.double() - exact).abs() / spacing


def test_the_sweep_covers_the_range():
    x = float_sweep(-10.0, 10.0)
    assert x.numel() > 8_000_000 and float(x.min()) >= -10.0 and float(x.max()) <= 10.0
    assert (x.abs() < 1e-30).sum() > 1000  # denormals and tiny values are in


def test_tanh_error_bound():
    x = float_sweep(-10.0, 10.0)
    y = fused_activation("tanh", x)
    err = ulp_error(y, torch.tanh(x.double()))
    worst = int(err.argmax())
    assert float(err.max()) <= TANH_ULP, f"tanh_f({float(x[worst])!r}) is {float(err.max()):.2f} ulp off"
    # against torch's own float32 tanh (itself <= 1 ulp off): within the bound plus that ulp
    assert float(ulp_error(y, torch.tanh(x).double()).max()) <= TANH_ULP + 1
    # beyond the sweep: tanh_f clamps its argument at 7.905 (where the rational is still within
    # the bound of 1), so it stays at tanh_f(7.905) = 1 - 5 * 2^-24; and the specials
    big = torch.tensor([10.0, 1e3, 3.4e38, float("inf")])
    y_big = fused_activation("tanh", big)
    assert float(ulp_error(y_big, torch.ones(4, dtype=torch.float64)).max()) <= TANH_ULP
    assert torch.equal(fused_activation("tanh", -big), -y_big)
    assert torch.isnan(fused_activation("tanh", torch.tensor([float("nan")]))).all()
    tiny = torch.tensor([1e-40, 1e-20, 3e-4])  # |x| < 0.0004: tanh_f returns x itself
    assert torch.equal(fused_activation("tanh", tiny), tiny)


def test_sigmoid_error_bound():
    x = float_sweep(-69.0, 20.0)
    y = fused_activation("sigmoid", x)
    exact = torch.sigmoid(x.double())
    err = ulp_error(y, exact)
    worst = int(err.argmax())
    assert float(err.max()) <= SIGMOID_ULP, f"sigmoid({float(x[worst])!r}) is {float(err.max()):.2f} ulp off"
    assert float(ulp_error(y, torch.sigmoid(x).double()).max()) <= SIGMOID_ULP + 1
    # below exp_f's clamp (-87.34) the value saturates at exp(-87.34) ~ 1.18e-38, not 0
    low = torch.tensor([-88.0, -100.0, -1e10, float("-inf")])
    y_low = fused_activation("sigmoid", low)
    assert bool((y_low > 0).all()) and float(y_low.max()) < 1.2e-38
    assert torch.equal(fused_activation("sigmoid", torch.tensor([30.0, 1e10, float("inf")])), torch.ones(3))


def test_elu_error_bound():
    x = float_sweep(-100.0, 0.0)
    y = fused_activation("elu", x, 1.0)
    err = (y.double() - torch.expm1(x.double())).abs()
    assert float(err.max()) <= ELU_ABS
    pos = float_sweep(0.0, 1e30, stride=100_003)
    assert torch.equal(fused_activation("elu", pos, 1.0), pos)  # identity on z > 0


def test_fused_cpu_build_is_reported():
    assert _ext._C.CPU_ISA in ("baseline", "avx2", "avx512", "avx2x16")


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "elu"])
def test_float64_activations_are_libm(name):
    """float64 keeps libm (the precision path): within a few ulp of torch's float64 values."""
    x = torch.linspace(-30, 30, 100_001, dtype=torch.float64)
    params = torch.tensor([1.0, 0.0], dtype=torch.float64)
    y, _ = torch.ops.ganfast.mlp_forward(x.reshape(-1, 1), params, [1, 1], [CODES[name]], [1.0], 0.0, 0, 0)
    ref = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "elu": torch.nn.functional.elu}[name](x)
    err = (y.reshape(-1) - ref).abs()
    if name == "elu":  # exp(z) - 1, as in float32: absolute error (the relative one is large near 0)
        assert float(err.max()) <= 4e-16
    else:
        assert float((err / ref.abs().clamp(min=1e-300)).max()) <= 1e-15
