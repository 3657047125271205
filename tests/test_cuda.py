"""The CUDA kernels (csrc/cuda/) against the CPU ones: Philox fills, the MLP ops (forward,
backward, gradcheck, opcheck) and the fused training engine (gan_train_).

Every test is marked `gpu` and skipped unless a CUDA device is visible AND the extension was
built with its CUDA kernels (ganfast._ext.WITH_CUDA).

Tolerances (CUDA against the CPU op or engine, same dtype):

* fill_uniform_: bitwise. fill_normal_: <= 1e-12 absolute (float64), <= 1e-6 (float32).
* mlp forward / backward: max|cuda - cpu| <= rel * max|cpu| per tensor, rel = 1e-12 (float64),
  1e-5 (float32). In float32 the two sides sum the batch in different orders (the CPU in SIMD
  lanes, CUDA in a shuffle tree), so where float32 itself cannot reach 1e-5 of the scale (a
  batch-2048 gradient with cancellation) the bound is instead 4x the CPU op's own float32 error
  against float64 (the approach of test_ops.py). The activation grid avoids samples that could
  sit on a kink of a derivative after a rounding-level difference (see _SMOOTH_CASES).
* engine: every float tensor of GanState and every metric: max |cuda - cpu| / max(1, |cpu|)
  <= 1e-4 after 1 epoch in float32, <= 1e-9 after 10 epochs in float64; offsets, epochs, seeds
  and lrs exactly equal (the Philox stream is consumed identically). Population, chunking and
  placement properties of the CUDA engine alone are bitwise.
"""
from __future__ import annotations

import zlib

import pytest
import torch

import ganfast
from conftest import assert_close_rel, max_rel_error
from ganfast import _ext, reference
from ganfast.config import load_preset
from ganfast.engine import METRIC_NAMES, description, fused_unavailable_reason, train_fused
from ganfast.spec import MLPSpec
from ganfast.state import GanState, init_state


def _skip_reason() -> str | None:
    if not ganfast.extension_available():
        return f"the compiled extension ganfast._C is unavailable ({_ext.UNAVAILABLE_REASON})"
    if not torch.cuda.is_available():
        return "needs a CUDA device (torch.cuda.is_available() is False)"
    if not _ext.WITH_CUDA:
        return "ganfast._C was built without its CUDA kernels (ganfast._ext.WITH_CUDA is False)"
    return None


_SKIP = _skip_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]

if _SKIP is None:
    import ganfast.ops  # noqa: F401  (fake kernels, used by opcheck)

OPS = torch.ops.ganfast
CUDA = "cuda"


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


# --- Philox fills ------------------------------------------------------------------------------

RNG_CASES = [  # (seed, offset, n): every offset residue mod 4, odd and even n, 64-bit seeds/offsets
    (0, 0, 1),
    (1, 3, 5),
    (7, 1, 4),
    (5, 2, 7),
    (12345, 6, 100003),
    (2**32, 5, 33),
    (2**32 + 17, 2, 100003),
    (2**63 - 1, 2**40 + 3, 1001),
    (0xDEADBEEFCAFE, 13, 9),
    (3, 2**33 - 1, 1 << 20),  # counter blocks above 2^32 words
]


def _fill(kind, n, seed, offset, a, b, dtype, device):
    out = torch.empty(n, dtype=dtype, device=device)
    getattr(OPS, f"fill_{kind}_")(out, seed, offset, a, b)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed,offset,n", RNG_CASES)
def test_uniform_cuda_is_bitwise_cpu(seed, offset, n, dtype):
    for low, high in ((0.0, 1.0), (-2.5, 3.25), (1.5, 1.5)):
        got = _fill("uniform", n, seed, offset, low, high, dtype, CUDA)
        want = _fill("uniform", n, seed, offset, low, high, dtype, "cpu")
        assert torch.equal(got.cpu(), want), (low, high)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("seed,offset,n", RNG_CASES)
def test_normal_cuda_matches_cpu(seed, offset, n, dtype, tol):
    for mean, std in ((0.0, 1.0), (3.0, 0.5)):
        got = _fill("normal", n, seed, offset, mean, std, dtype, CUDA).cpu()
        want = _fill("normal", n, seed, offset, mean, std, dtype, "cpu")
        assert got.shape == want.shape
        assert float((got.double() - want.double()).abs().max()) <= tol


def test_fills_write_only_their_view_and_empty_is_fine():
    buf = torch.full((20,), -7.0, dtype=torch.float64, device=CUDA)
    OPS.fill_uniform_(buf[3:10], 9, 2, 0.0, 1.0)
    OPS.fill_normal_(buf[11:16], 9, 3, 0.0, 1.0)
    cpu = torch.full((20,), -7.0, dtype=torch.float64)
    OPS.fill_uniform_(cpu[3:10], 9, 2, 0.0, 1.0)
    OPS.fill_normal_(cpu[11:16], 9, 3, 0.0, 1.0)
    assert float((buf.cpu() - cpu).abs().max()) <= 1e-12
    assert bool((buf[:3] == -7).all()) and bool((buf[16:] == -7).all()) and float(buf[10]) == -7
    OPS.fill_uniform_(torch.empty(0, device=CUDA), 1, 2, 0.0, 1.0)
    OPS.fill_normal_(torch.empty(0, device=CUDA), 1, 2, 0.0, 1.0)


def test_fill_rejects_like_cpu():
    with pytest.raises(RuntimeError, match="seed must be >= 0"):
        OPS.fill_uniform_(torch.empty(3, device=CUDA), -1, 0, 0.0, 1.0)
    with pytest.raises(RuntimeError, match="std > 0"):
        OPS.fill_normal_(torch.empty(3, device=CUDA), 1, 0, 0.0, 0.0)
    with pytest.raises(RuntimeError, match="float32 or float64"):
        OPS.fill_uniform_(torch.empty(3, dtype=torch.int32, device=CUDA), 1, 0, 0.0, 1.0)


def test_functional_samplers_run_fused_on_cuda():
    for dtype in (torch.float32, torch.float64):
        got = ganfast.uniform(101, 3, 5, -1.0, 1.0, dtype=dtype, device=CUDA, backend="fused")
        assert got.is_cuda
        assert torch.equal(got.cpu(), ganfast.uniform(101, 3, 5, -1.0, 1.0, dtype=dtype, backend="torch"))


# --- MLP ops -----------------------------------------------------------------------------------

# (widths, hidden activation, output activation, hidden param, output param). Only cases where a
# rounding-level difference cannot flip a derivative's jump: relu / leaky_relu hidden layers see
# bitwise-identical pre-activations on both devices (same sums, same order, no FMA), and smooth
# hidden activations (tanh, sigmoid, elu with alpha 1) are followed by smooth outputs.
_SMOOTH_CASES = [
    ((1, 5, 5, 1), "tanh", "identity", None, None),
    ((4, 10, 10, 1), "sigmoid", "sigmoid", None, None),
    ((1, 16, 32, 16, 1), "relu", "identity", None, None),
    ((1, 16, 16, 8, 1), "tanh", "sigmoid", None, None),
    ((3, 7, 2), "leaky_relu", "elu", 0.2, 0.5),
    ((2, 64, 64, 1), "relu", "sigmoid", None, None),
    ((8, 256, 3), "elu", "tanh", 1.0, None),
    ((5, 1), "identity", "sigmoid", None, None),
    ((2, 256, 256, 2), "leaky_relu", "identity", 0.1, None),
]
_BATCHES = [1, 7, 37, 500, 2048]


def _grid():
    cases = []
    for k, (widths, hid, out, hp, op) in enumerate(_SMOOTH_CASES):
        for j, n in enumerate(_BATCHES):
            if max(widths) >= 256 and n > 500:
                continue
            dropout = (0.0, 0.5, 0.3)[(k + j) % 3] if len(widths) > 2 else 0.0
            cases.append(dict(spec=MLPSpec(widths, hid, out, dropout, hp, op), batch=n,
                              id=f"{'x'.join(map(str, widths))}-{hid}-{out}-N{n}-p{dropout}"))
    return cases


GRID = _grid()


def _run_op(x, params, grad_out, spec, seed, offset):
    args = (list(spec.widths), spec.layer_act_codes, spec.layer_act_params, spec.dropout, seed, offset)
    out, saved = OPS.mlp_forward(x, params, *args)
    grad_x, grad_params = OPS.mlp_backward(grad_out, x, params, saved, *args)
    return out, saved, grad_x, grad_params


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", GRID, ids=[c["id"] for c in GRID])
def test_mlp_ops_cuda_match_cpu(case, dtype):
    spec, n = case["spec"], case["batch"]
    s = _seed(case["id"], str(dtype))
    gen = torch.Generator().manual_seed(s)
    x = torch.randn(n, spec.in_features, generator=gen, dtype=torch.float64).to(dtype)
    params = reference.init_params(spec, dtype=torch.float64, generator=gen).to(dtype)
    grad_out = torch.randn(n, spec.out_features, generator=gen, dtype=torch.float64).to(dtype)
    seed, offset = s * 977, s % 1001  # 64-bit seeds, offsets of every residue mod 4
    cpu = _run_op(x, params, grad_out, spec, seed, offset)
    cuda = _run_op(x.to(CUDA), params.to(CUDA), grad_out.to(CUDA), spec, seed, offset)
    names = ("output", "saved", "grad wrt x", "grad wrt params")
    for got, want, name in zip(cuda, cpu, names):
        assert got.is_cuda and got.dtype == dtype and got.shape == want.shape, name
        assert bool(torch.isfinite(got).all()), name
    if dtype == torch.float64:
        for got, want, name in zip(cuda, cpu, names):
            assert_close_rel(got.cpu(), want, 1e-12, what=name)
        return
    exact = _run_op(x.double(), params.double(), grad_out.double(), spec, seed, offset)
    for got, want, f64, name in zip(cuda, cpu, exact, names):
        cpu_error = max_rel_error(want, f64)
        assert_close_rel(got.cpu(), want, max(1e-5, 4 * cpu_error),
                         what=f"{name} (CPU float32 relative error {cpu_error:.2e})")


def test_saved_buffers_are_interchangeable():
    """CUDA's `saved` has the CPU layout: a backward on either device accepts the other's."""
    spec = MLPSpec((3, 9, 6, 2), "tanh", "sigmoid", 0.4)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(33, 3, generator=gen, dtype=torch.float64)
    p = torch.randn(spec.num_params, generator=gen, dtype=torch.float64)
    g = torch.randn(33, 2, generator=gen, dtype=torch.float64)
    args = (list(spec.widths), spec.layer_act_codes, spec.layer_act_params, spec.dropout, 17, 3)
    _, saved_cpu = OPS.mlp_forward(x, p, *args)
    _, saved_cuda = OPS.mlp_forward(x.to(CUDA), p.to(CUDA), *args)
    assert_close_rel(saved_cuda.cpu(), saved_cpu, 1e-12, what="saved")
    a = OPS.mlp_backward(g.to(CUDA), x.to(CUDA), p.to(CUDA), saved_cpu.to(CUDA), *args)
    b = OPS.mlp_backward(g, x, p, saved_cuda.cpu(), *args)
    for got, want, name in zip(a, b, ("grad wrt x", "grad wrt params")):
        assert_close_rel(got.cpu(), want, 1e-12, what=name)


def test_mlp_ops_cuda_argument_checks():
    spec = MLPSpec((3, 4, 1))
    x = torch.randn(5, 3, device=CUDA)
    p = torch.randn(spec.num_params, device=CUDA)
    args = (list(spec.widths), spec.layer_act_codes, spec.layer_act_params, 0.0, 0, 0)
    with pytest.raises(RuntimeError, match="x has 2 features"):
        OPS.mlp_forward(x[:, :2].contiguous(), p, *args)
    with pytest.raises(RuntimeError, match="params is on cpu"):
        OPS.mlp_forward(x, p.cpu(), *args)
    with pytest.raises(RuntimeError, match="dropout must be in"):
        OPS.mlp_forward(x, p, *args[:3], 1.0, 0, 0)
    out, saved = OPS.mlp_forward(x, p, *args)
    with pytest.raises(RuntimeError, match="saved does not come from mlp_forward"):
        OPS.mlp_backward(torch.ones_like(out), x, p, saved[:-1].contiguous(), *args)


GRADCHECK_SPECS = [
    (MLPSpec((3, 4, 4, 2), "tanh", "sigmoid", 0.3), True),
    (MLPSpec((3, 4, 4, 2), "tanh", "sigmoid", 0.3), False),
    (MLPSpec((2, 5, 3), "elu", "identity", 0.5, 1.0), True),
    (MLPSpec((3, 6, 2), "leaky_relu", "elu", 0.0, 0.2, 0.5), True),
    (MLPSpec((4, 3), output_activation="sigmoid"), True),
]


@pytest.mark.parametrize("spec,train", GRADCHECK_SPECS,
                         ids=["tanh-sig-drop", "tanh-sig-eval", "elu-drop", "lrelu-elu", "single-layer"])
def test_gradcheck_cuda(spec, train):
    gen = torch.Generator().manual_seed(_seed(spec, train))
    x = torch.randn(6, spec.in_features, generator=gen, dtype=torch.float64).to(CUDA).requires_grad_()
    params = torch.randn(spec.num_params, generator=gen, dtype=torch.float64).to(CUDA).requires_grad_()
    fn = lambda x, p: ganfast.ops.mlp_forward(x, p, spec, train=train, seed=2**35 + 1, offset=3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, params))


def _op_args(spec, x, params, dropout=0.0, seed=0, offset=0):
    return (x, params, list(spec.widths), spec.layer_act_codes, spec.layer_act_params, dropout, seed, offset)


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck_cuda(requires_grad, dtype):
    spec = MLPSpec((3, 5, 4, 2), "leaky_relu", "sigmoid", 0.5, 0.2)
    x = torch.randn(7, 3, dtype=dtype, device=CUDA, requires_grad=requires_grad)
    params = torch.randn(spec.num_params, dtype=dtype, device=CUDA, requires_grad=requires_grad)
    torch.library.opcheck(OPS.mlp_forward.default, _op_args(spec, x, params, 0.5, 11, 5))
    torch.library.opcheck(OPS.mlp_forward.default, _op_args(spec, x, params))
    if not requires_grad:
        out, saved = OPS.mlp_forward(*_op_args(spec, x, params, 0.5, 11, 5))
        torch.library.opcheck(OPS.mlp_backward.default,
                              (torch.randn_like(out), x, params, saved, *_op_args(spec, x, params, 0.5, 11, 5)[2:]))
    torch.library.opcheck(OPS.fill_uniform_.default, (torch.empty(37, dtype=dtype, device=CUDA), 5, 3, -1.0, 2.0))
    torch.library.opcheck(OPS.fill_normal_.default, (torch.empty(37, dtype=dtype, device=CUDA), 2**40, 7, 0.5, 2.0))


def test_modules_run_fused_on_cuda():
    G = ganfast.Generator([1, 5, 5, 1], activation="tanh").to(CUDA)
    z = torch.rand(64, 1, device=CUDA)
    assert G.backend_in_use == "fused"
    out = G(z)
    out.sum().backward()
    assert out.is_cuda and G.params.grad is not None and G.params.grad.is_cuda


# --- the training engine -------------------------------------------------------------------------

PRESETS = ("devnag", "devnag-elu", "vanilla", "how-to-gan", "ring8")
FLOAT_FIELDS = ("g_params", "d_params", "g_opt", "d_opt")
EXACT_FIELDS = ("offsets", "epochs", "seeds", "lrs")


def small(name: str, dtype: str = "float64", batch: int = 64, **overrides):
    return load_preset(name).replace({"dtype": dtype, "batch_size": batch, **overrides})


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max(1, |expected|), elementwise, NaN-aware (NaN == NaN)."""
    a, b = actual.detach().double().cpu(), expected.detach().double().cpu()
    assert a.shape == b.shape, (a.shape, b.shape)
    nan_a, nan_b = torch.isnan(a), torch.isnan(b)
    assert torch.equal(nan_a, nan_b), f"NaN pattern differs: {a} vs {b}"
    a, b = a[~nan_a], b[~nan_b]
    if a.numel() == 0:
        return 0.0
    return float(((a - b).abs() / b.abs().clamp(min=1.0)).max())


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.cpu(), b.cpu()
    return a.shape == b.shape and torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(
        a.nan_to_num(0.0), b.nan_to_num(0.0))


def assert_states_equal(a: GanState, b: GanState):
    for name, t in a.tensors().items():
        assert bitwise_equal(t, getattr(b, name)), f"{name} differs"


def cuda_vs_cpu(cfg, epochs: int, tol: float, start: GanState | None = None):
    start = init_state(cfg) if start is None else start
    cpu, gpu = start.clone(), start.clone().to(CUDA)
    m_cpu = train_fused(cfg, cpu, epochs)
    m_gpu = train_fused(cfg, gpu, epochs)
    assert m_gpu.is_cuda and m_gpu.dtype == torch.float64 and m_gpu.shape == (start.population, len(METRIC_NAMES))
    for name in FLOAT_FIELDS:
        err = rel_err(getattr(gpu, name), getattr(cpu, name))
        assert err <= tol, f"{name}: relative error {err:.3e} > {tol:.0e}"
    for name in EXACT_FIELDS:
        assert torch.equal(getattr(gpu, name).cpu(), getattr(cpu, name)), name
    err = rel_err(m_gpu, m_cpu)
    assert err <= tol, f"metrics: relative error {err:.3e} > {tol:.0e}\n{m_gpu}\n{m_cpu}"
    if cfg.d_steps:
        assert not torch.equal(gpu.d_params.cpu(), start.d_params)
    if cfg.g_steps:
        assert not torch.equal(gpu.g_params.cpu(), start.g_params)
    return cpu, gpu, m_cpu, m_gpu


def test_fused_engine_is_available_on_cuda():
    assert fused_unavailable_reason(load_preset("devnag"), CUDA) is None


@pytest.mark.parametrize("batch", [64, 500, 37])
@pytest.mark.parametrize("name", PRESETS)
def test_presets_float64_10_epochs_match_cpu(name, batch):
    steps = {} if batch == 64 else {"d_steps": min(load_preset(name).d_steps, 3),
                                    "g_steps": min(load_preset(name).g_steps, 3)}
    cuda_vs_cpu(small(name, "float64", batch, **steps), 10, 1e-9)


@pytest.mark.parametrize("batch", [64, 500, 37])
@pytest.mark.parametrize("name", PRESETS)
def test_presets_float32_1_epoch_match_cpu(name, batch):
    cuda_vs_cpu(small(name, "float32", batch), 1, 1e-4)


def test_full_size_devnag_float32_one_epoch_matches_cpu():
    cuda_vs_cpu(load_preset("devnag"), 1, 1e-4)


MIXTURE = {"kind": "mixture", "centers": [[-2.0], [0.5], [3.0]], "std": 0.4, "weights": [0.15, 0.6, 0.25]}

VARIANTS = {
    "minimax-raw": ("how-to-gan", {"loss.generator": "minimax"}),
    "minimax-moments": ("devnag", {"loss.generator": "minimax", "d_steps": 5, "g_steps": 5}),
    "normal-noise-odd": ("how-to-gan", {"noise": {"kind": "normal", "dim": 3, "mean": 0.5, "std": 2.0},
                                        "batch_size": 33}),
    "normal-noise-moments": ("devnag", {"noise": {"kind": "normal", "dim": 1}, "batch_size": 31,
                                        "d_steps": 3, "g_steps": 3}),
    "mixture-3": ("how-to-gan", {"data": MIXTURE, "batch_size": 45}),
    "mixture-3-dropout": ("vanilla", {"data": MIXTURE, "batch_size": 45}),
    "adam-steplr": ("how-to-gan", {"optimizer_d.step_lr": {"step_size": 3, "gamma": 0.5},
                                   "optimizer_g.step_lr": {"step_size": 3, "gamma": 0.3}}),
    "sgd-momentum-0": ("how-to-gan", {"optimizer_d": {"kind": "sgd", "lr": 0.05, "momentum": 0.0},
                                      "optimizer_g": {"kind": "sgd", "lr": 0.02, "momentum": 0.0}}),
    "mixed-optimizers": ("ring8", {"optimizer_d": {"kind": "adam", "lr": 2e-3, "betas": [0.5, 0.99],
                                                   "eps": 1e-6, "step_lr": {"step_size": 4, "gamma": 0.5}},
                                   "optimizer_g": {"kind": "sgd", "lr": 0.01, "momentum": 0.8,
                                                   "step_lr": {"step_size": 3, "gamma": 0.7}}}),
    "wide-steps": ("how-to-gan", {"d_steps": 3, "g_steps": 2, "generator.hidden": [],
                                  "data": {"kind": "normal", "mean": [1.0, -2.0, 0.0], "std": [0.5, 1.0, 2.0]},
                                  "noise.dim": 2}),
    "population-2": ("vanilla", {"population": 2, "seed": 11}),
    # 256-wide layers: G and D parameters (and everything else) beyond the shared-memory budget
    "wide-256": ("how-to-gan", {"generator.hidden": [256, 256], "discriminator.hidden": [256, 128],
                                "batch_size": 40}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_float64_match_cpu(variant):
    preset, overrides = VARIANTS[variant]
    cuda_vs_cpu(small(preset, "float64", **overrides), 10, 1e-9)


@pytest.mark.parametrize("which", ["d_steps", "g_steps"])
def test_zero_steps_of_one_network_on_cuda(which):
    cfg = small("how-to-gan", **{which: 0})
    _, gpu, _, m = cuda_vs_cpu(cfg, 4, 1e-9)
    m = m.cpu()
    if which == "d_steps":
        assert torch.isnan(m[:, :2]).all() and torch.isfinite(m[:, 2:]).all()
    else:
        assert torch.isnan(m[:, 2:]).all() and torch.isfinite(m[:, :2]).all()


def test_zero_epochs_is_a_no_op_on_cuda():
    cfg = small("how-to-gan")
    s = init_state(cfg, device=CUDA)
    before = s.clone()
    m = train_fused(cfg, s, 0)
    assert_states_equal(s, before)
    assert m.shape == (1, 5) and m.is_cuda and torch.isnan(m).all()


def _solo(cfg, k: int, lrs=None):
    one = cfg.replace(seed=cfg.seed + k, population=1)
    return one, init_state(one, lrs=None if lrs is None else [lrs[k]], device=CUDA)


@pytest.mark.parametrize("preset", ["devnag", "vanilla", "ring8", "how-to-gan"])
def test_population_member_equals_solo_run_on_cuda(preset):
    cfg = small(preset, "float32", population=3, seed=5, batch=37)
    lrs = [[1e-3, 2e-3], [5e-4, 1e-3], [3e-3, 4e-4]]
    pop = init_state(cfg, lrs=lrs, device=CUDA)
    m_pop = train_fused(cfg, pop, 4)
    for k in range(3):
        one_cfg, one = _solo(cfg, k, lrs)
        m_one = train_fused(one_cfg, one, 4)
        assert_states_equal(pop.member(k), one)
        assert bitwise_equal(m_pop[k:k + 1], m_one)


def test_large_population_equals_solo_runs():
    """A population large enough to shrink the per-block shared-memory budget (more blocks per
    SM) places buffers differently from a population of one; results must not change."""
    cfg = small("how-to-gan", "float32", population=1200, seed=2, batch=96)
    pop = init_state(cfg, device=CUDA)
    m_pop = train_fused(cfg, pop, 2)
    for k in (0, 777, 1199):
        one_cfg, one = _solo(cfg, k)
        m_one = train_fused(one_cfg, one, 2)
        assert_states_equal(pop.member(k), one)
        assert bitwise_equal(m_pop[k:k + 1], m_one)


@pytest.mark.parametrize("variant", ["mixed-optimizers", "adam-steplr", "dropout", "moments"])
def test_chunked_training_equals_one_call_on_cuda(variant):
    if variant == "dropout":
        cfg = small("vanilla", "float32", population=2, **{"optimizer_g.step_lr": {"step_size": 4}})
    elif variant == "moments":
        cfg = small("devnag", "float64", d_steps=3, g_steps=2, **{"optimizer_d.step_lr": {"step_size": 2}})
    else:
        preset, overrides = VARIANTS[variant]
        cfg = small(preset, "float32", **overrides)
    a = init_state(cfg, device=CUDA)
    b = a.clone()
    m_a = train_fused(cfg, a, 10)
    train_fused(cfg, b, 4)
    m_b = train_fused(cfg, b, 6)
    assert int(b.epochs[0]) == 10
    assert_states_equal(a, b)
    assert bitwise_equal(m_a, m_b)


def test_cuda_engine_is_deterministic():
    cfg = small("vanilla", "float32", population=5, seed=9, batch=300)
    a, b = init_state(cfg, device=CUDA), init_state(cfg, device=CUDA)
    m_a, m_b = train_fused(cfg, a, 3), train_fused(cfg, b, 3)
    assert_states_equal(a, b)
    assert bitwise_equal(m_a, m_b)


def test_engine_state_on_cuda_resumes_on_cpu():
    """A state trained on CUDA continues on the CPU (and back) like a run that never moved."""
    cfg = small("ring8", "float64", **VARIANTS["mixed-optimizers"][1])
    a = init_state(cfg)
    b = a.clone().to(CUDA)
    train_fused(cfg, a, 10)
    train_fused(cfg, b, 4)
    b = b.to("cpu")
    train_fused(cfg, b, 6)
    for name in FLOAT_FIELDS:
        assert rel_err(getattr(b, name), getattr(a, name)) <= 1e-9, name
    for name in EXACT_FIELDS:
        assert torch.equal(getattr(b, name), getattr(a, name)), name


def test_engine_rejects_split_or_bad_state_on_cuda():
    cfg = small("ring8", "float32", population=2)
    state = init_state(cfg, device=CUDA)
    split = state.clone()
    split.seeds = split.seeds.cpu()
    with pytest.raises(ValueError, match="one device"):
        train_fused(cfg, split, 1)
    s = split
    with pytest.raises(RuntimeError, match="seeds must be a contiguous Long tensor on cuda"):
        torch.ops.ganfast.gan_train_(s.g_params, s.d_params, s.g_opt, s.d_opt, s.offsets, s.epochs, s.seeds,
                                     s.lrs, description(cfg), 1)
    bad = state.clone()
    bad.seeds[1] = -1
    with pytest.raises(RuntimeError, match="seeds must be >= 0"):
        train_fused(cfg, bad, 1)


def test_mlp_backward_output_mask_on_cuda():
    """output_mask on the CUDA op: left-out gradients are empty, the others equal the full call."""
    spec = MLPSpec((6, 16, 1), "leaky_relu", "sigmoid", 0.3, 0.2)
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(33, 6, generator=gen, dtype=torch.float64).to(CUDA)
    p = reference.init_params(spec, dtype=torch.float64, generator=gen).to(CUDA)
    args = (list(spec.widths), spec.layer_act_codes, spec.layer_act_params, 0.3, 9, 2)
    out, saved = OPS.mlp_forward(x, p, *args)
    g = torch.randn_like(out)
    full = OPS.mlp_backward(g, x, p, saved, *args)
    only_x = OPS.mlp_backward(g, x, p, saved, *args, [True, False])
    only_p = OPS.mlp_backward(g, x, p, saved, *args, [False, True])
    assert torch.equal(only_x[0], full[0]) and only_x[1].shape == (0,)
    assert torch.equal(only_p[1], full[1]) and only_p[0].shape == (0,)
