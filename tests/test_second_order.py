"""Second-order gradients through the fused MLP (issue 13, item 1): a gradient penalty (WGAN-GP,
R1) differentiates D's input gradient again. The fused op's backward is then the reference math
(mlp_backward_differentiable, csrc/autograd.cpp + ganfast/ops.py), so the penalty reaches D's
weights with exactly the gradients backend="torch" gives.

Tolerances: float64, relative to the largest magnitude of the expected tensor, <= 1e-12 between
backends (the same reference math on the same inputs; measured: <= 2e-15); gradgradcheck with its
defaults (eps 1e-6, atol 1e-5, rtol 1e-3) in float64.
"""
from __future__ import annotations

import pytest
import torch

import ganfast
from conftest import assert_close_rel, requires_ext
from ganfast.spec import MLPSpec

pytestmark = requires_ext
OPS = torch.ops.ganfast
if ganfast.extension_available():
    import ganfast.ops  # noqa: F401  (the Python half of the ops)

ACTS = [("identity", None), ("relu", None), ("leaky_relu", 0.2), ("elu", 1.0), ("elu", 0.5), ("tanh", None),
        ("sigmoid", None)]


def _gen(*key) -> torch.Generator:
    return torch.Generator().manual_seed(hash(key) % 2**31)


@pytest.mark.parametrize("dropout", [0.0, 0.4], ids=["eval", "dropout"])
@pytest.mark.parametrize("act,param", ACTS, ids=[f"{a}{p or ''}" for a, p in ACTS])
def test_gradgradcheck(act, param, dropout):
    """Every activation as the hidden one and (shifted by one) as the output one."""
    out_act, out_param = ACTS[(ACTS.index((act, param)) + 3) % len(ACTS)]
    spec = MLPSpec((3, 5, 4, 2), act, out_act, dropout, param, out_param)
    g = _gen(act, param, dropout)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64).requires_grad_()
    params = torch.randn(spec.num_params, generator=g, dtype=torch.float64).requires_grad_()
    fn = lambda x, p: ganfast.ops.mlp_forward(x, p, spec, train=True, seed=7, offset=11)  # noqa: E731
    assert torch.autograd.gradgradcheck(fn, (x, params))


def test_the_issues_reproduction_reaches_d():
    """python -c "...; print(D.params.grad is None)" printed True: the penalty never reached D."""
    grads = {}
    for backend in ("auto", "torch"):
        torch.manual_seed(0)
        D = ganfast.Discriminator([2, 16, 1], backend=backend)
        assert D.backend_in_use == ("fused" if backend == "auto" else "torch")
        x = torch.randn(8, 2, requires_grad=True)
        (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        ((g.norm(dim=1) - 1) ** 2).mean().backward()
        grads[backend] = D.params.grad
    assert grads["auto"] is not None and bool(grads["torch"].abs().sum() > 0)
    assert_close_rel(grads["auto"], grads["torch"], 1e-6, what="D's penalty gradient (float32)")


def _wgan_gp_grads(backend: str, spec: MLPSpec, params: torch.Tensor, real, fake, eps, lam=10.0):
    """D's parameter gradient of one WGAN-GP critic loss: D(fake) - D(real) + lam (|grad D(x_hat)| - 1)^2."""
    D = ganfast.Discriminator.from_spec(spec, backend=backend, seed=3, dtype=torch.float64)
    with torch.no_grad():
        D.params.copy_(params)
    D.train()
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_()
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    penalty = ((grad.norm(dim=1) - 1) ** 2).mean()
    loss = D(fake).mean() - D(real).mean() + lam * penalty
    loss.backward()
    return D.params.grad.clone(), penalty.detach()


@pytest.mark.parametrize("spec", [
    MLPSpec((2, 32, 32, 1), "leaky_relu", "identity", activation_param=0.2),
    MLPSpec((2, 16, 16, 1), "tanh", "sigmoid", dropout=0.3),
    MLPSpec((4, 8, 1), "elu", "identity", activation_param=0.5),
], ids=["lrelu", "tanh-dropout", "elu"])
def test_wgan_gp_step_equals_the_torch_backend(spec):
    g = _gen("wgan", spec.widths)
    params = torch.randn(spec.num_params, generator=g, dtype=torch.float64) * 0.5
    real = torch.randn(64, spec.in_features, generator=g, dtype=torch.float64) + 2
    fake = torch.randn(64, spec.in_features, generator=g, dtype=torch.float64)
    eps = torch.rand(64, 1, generator=g, dtype=torch.float64)
    fused, p_fused = _wgan_gp_grads("fused", spec, params, real, fake, eps)
    torch_, p_torch = _wgan_gp_grads("torch", spec, params, real, fake, eps)
    assert float(p_torch) > 1e-3  # the penalty is there and matters
    assert_close_rel(p_fused, p_torch, 1e-12, what="penalty")
    assert_close_rel(fused, torch_, 1e-12, what="D's parameter gradient")


def test_r1_penalty_and_a_third_derivative_equal_the_torch_backend():
    spec = MLPSpec((3, 12, 1), "sigmoid", "sigmoid")
    g = _gen("r1")
    params = torch.randn(spec.num_params, generator=g, dtype=torch.float64)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    results = {}
    for backend in ("fused", "torch"):
        p = params.clone().requires_grad_()
        xx = x.clone().requires_grad_()
        out = ganfast.mlp(xx, p, spec, backend=backend)
        (gx,) = torch.autograd.grad(out.sum(), xx, create_graph=True)
        r1 = gx.pow(2).sum()
        (gp,) = torch.autograd.grad(r1, p, create_graph=True)  # second order in p
        (third,) = torch.autograd.grad(gp.pow(2).sum(), xx)  # and once more, in x
        results[backend] = (r1.detach(), gp.detach(), third)
    for a, b, name in zip(results["fused"], results["torch"], ("r1", "grad of r1", "third derivative")):
        assert_close_rel(a, b, 1e-12, what=name)


def test_first_order_gradients_still_come_from_the_fused_kernel():
    spec = MLPSpec((3, 6, 2), "tanh", dropout=0.25)
    g = _gen("first")
    x = torch.randn(9, 3, generator=g, dtype=torch.float64).requires_grad_()
    params = torch.randn(spec.num_params, generator=g, dtype=torch.float64).requires_grad_()
    grad_out = torch.randn(9, 2, generator=g, dtype=torch.float64)
    args = (list(spec.widths), spec.layer_act_codes, spec.layer_act_params, 0.25, 5, 1)
    out = ganfast.ops.mlp_forward(x, params, spec, train=True, seed=5, offset=1)
    gx, gp = torch.autograd.grad(out, (x, params), grad_out)
    with torch.no_grad():
        _, saved = OPS.mlp_forward(x, params, *args)
        kx, kp = OPS.mlp_backward(grad_out, x, params, saved, *args)
    assert torch.equal(gx, kx) and torch.equal(gp, kp)


def test_what_cannot_be_differentiated_says_so():
    spec = MLPSpec((3, 5, 2), "tanh")
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    params = torch.randn(spec.num_params, dtype=torch.float64, requires_grad=True)
    args = (list(spec.widths), spec.layer_act_codes, spec.layer_act_params, 0.0, 0, 0)
    out, saved = OPS.mlp_forward(x, params, *args)
    with pytest.raises(RuntimeError, match="mlp_backward is not differentiable"):
        OPS.mlp_backward(torch.ones_like(out), x, params, saved.detach(), *args)
    # raw op calls may give every layer its own activation, which the reference cannot express
    widths, acts, act_params = [3, 5, 5, 2], [4, 1, 0], [0.0, 0.0, 0.0]
    p = torch.randn(sum(o * (i + 1) for i, o in zip(widths[:-1], widths[1:])), dtype=torch.float64,
                    requires_grad=True)
    out, _ = OPS.mlp_forward(x, p, widths, acts, act_params, 0.0, 0, 0)
    with pytest.raises(RuntimeError, match="one activation for every hidden layer"):
        torch.autograd.grad(out.sum(), x, create_graph=True)
    (first,) = torch.autograd.grad(out.sum(), x)  # first order is fine
    assert first.shape == x.shape
