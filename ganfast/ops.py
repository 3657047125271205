"""Python face of the torch.ops.ganfast operators: fake-tensor kernels (so the ops trace under
torch.compile) and thin wrappers. Import only when the extension is available.
"""
from __future__ import annotations

import torch

from ganfast import _ext, reference
from ganfast.spec import ACTIVATIONS, DEFAULT_ACT_PARAM, MLPSpec

_ext.require("ganfast.ops")

_ops = torch.ops.ganfast


@torch.library.register_fake("ganfast::fill_uniform_")
def _(out, seed, offset, lo, hi):
    return None


@torch.library.register_fake("ganfast::fill_normal_")
def _(out, seed, offset, mean, std):
    return None


@torch.library.register_fake("ganfast::mlp_forward")
def _(x, params, widths, acts, act_params, dropout, seed, offset):
    n = x.shape[0]
    out = x.new_empty((n, widths[-1]))
    saved = x.new_empty((n * sum(widths[1:]),))
    return out, saved


@torch.library.register_fake("ganfast::mlp_backward")
def _(grad_out, x, params, saved, widths, acts, act_params, dropout, seed, offset, output_mask=(True, True)):
    want_x, want_params = output_mask
    return (torch.empty_like(x) if want_x else x.new_empty((0,)),
            torch.empty_like(params) if want_params else params.new_empty((0,)))


@torch.library.register_fake("ganfast::mlp_forward_population")
def _(x, params, widths, acts, act_params, dropout, seed, offset):
    return x.new_empty((params.shape[0], x.shape[0], widths[-1]))


@torch.library.register_fake("ganfast::gan_train_")
def _(g_params, d_params, g_opt, d_opt, offsets, epochs, diverged, seeds, lrs, desc, num_epochs):
    return g_params.new_empty((g_params.shape[0], 5), dtype=torch.float64)


@torch.library.register_fake("ganfast::gan_check_description")
def _(desc):
    return None


# Autograd for mlp_forward is registered in C++ (csrc/autograd.cpp): a Python backward would
# cost more than the fused kernels themselves for the toy networks. Only a backward that must
# itself be differentiable (create_graph=True, e.g. a gradient penalty) comes here.

_IMPL = torch.library.Library("ganfast", "IMPL")  # kept alive: the registration lives as long as it
_ACT_NAMES = {code: name for name, code in ACTIVATIONS.items()}


def _spec_of(widths, acts, act_params, dropout) -> MLPSpec:
    """The MLPSpec of an op's arguments; a ValueError for what an MLPSpec cannot express."""
    names = [_ACT_NAMES.get(int(a)) for a in acts]
    if None in names:
        raise ValueError(f"ganfast: unknown activation code in {list(acts)}")
    hidden = set(zip(names[:-1], act_params[:-1]))
    if len(hidden) > 1:
        raise ValueError(f"ganfast: the differentiable backward of mlp_forward (create_graph=True) needs one "
                         f"activation for every hidden layer, as an MLPSpec has; got {list(acts)} / "
                         f"{list(act_params)}")
    act, act_param = hidden.pop() if hidden else ("identity", 0.0)
    param = lambda name, value: float(value) if name in DEFAULT_ACT_PARAM else None  # noqa: E731
    return MLPSpec(tuple(widths), act, names[-1], float(dropout), param(act, act_param),
                   param(names[-1], act_params[-1]))


def _mlp_backward_differentiable(grad_out, x, params, widths, acts, act_params, dropout, seed, offset,
                                 output_mask):
    """The vector-Jacobian product of mlp_forward by the pure-PyTorch reference (the same Philox
    dropout masks), recorded by autograd so that it can be differentiated again."""
    try:
        spec = _spec_of(widths, acts, act_params, dropout)
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None
    wanted = [t for t, want in zip((x, params), output_mask) if want]
    if not all(t.requires_grad for t in wanted):
        raise RuntimeError("ganfast: mlp_backward_differentiable: an input whose gradient is wanted does not "
                           "require grad")
    with torch.enable_grad():
        out = reference.mlp_forward(x, params, spec, train=dropout > 0, seed=seed, offset=offset)
        grads = iter(torch.autograd.grad(out, wanted, grad_out, create_graph=True, allow_unused=True))
    result = []
    for t, want in zip((x, params), output_mask):
        g = next(grads) if want else None
        result.append(t.new_empty((0,)) if g is None and not want else (torch.zeros_like(t) if g is None else g))
    return tuple(result)


_IMPL.impl("mlp_backward_differentiable", _mlp_backward_differentiable, "CompositeImplicitAutograd")


def mlp_forward(x, params, spec, train=False, seed=0, offset=0):
    """The fused MLP: (N, d0) -> (N, dL), differentiable in x and params."""
    dropout = spec.dropout if train else 0.0
    out, _ = _ops.mlp_forward(x, params, *spec.op_args, dropout, int(seed), int(offset))
    return out


def mlp_forward_population(x, params, spec, train=False, seed=0, offset=0):
    """Every member's forward pass on one batch: x (N, d0), params (P, n_params) -> (P, N, dL);
    member k bitwise as mlp_forward(x, params[k], ...). Not differentiable."""
    dropout = spec.dropout if train else 0.0
    return _ops.mlp_forward_population(x, params, *spec.op_args, dropout, int(seed), int(offset))


def fill_uniform_(out, seed, offset, low, high):
    _ops.fill_uniform_(out, int(seed), int(offset), float(low), float(high))
    return out


def fill_normal_(out, seed, offset, mean, std):
    _ops.fill_normal_(out, int(seed), int(offset), float(mean), float(std))
    return out
