"""Python face of the torch.ops.ganfast operators: fake-tensor kernels (so the ops trace under
torch.compile) and thin wrappers. Import only when the extension is available.
"""
from __future__ import annotations

import torch

from ganfast import _ext

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
# cost more than the fused kernels themselves for the toy networks.


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
