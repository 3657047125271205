"""The pure-PyTorch MLP on flat parameters: the fallback path and the test oracle.

It is written with plain torch.nn.functional ops and left to autograd on purpose: it shares
nothing with the fused kernels except the contracts of docs/design.md (flat layout,
activations, Philox dropout masks), so agreement between the two is evidence, not tautology.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ganfast import random as philox
from ganfast.spec import MLPSpec, canonical_activation

__all__ = [
    "activation_fn",
    "unflatten",
    "mlp_forward",
    "to_sequential",
    "flat_from_sequential",
    "init_params",
]


def _identity(z: torch.Tensor) -> torch.Tensor:
    return z


def activation_fn(name: str, param: float):
    """Callable for activation `name`; `param` is the slope (leaky_relu) or alpha (elu)."""
    name = canonical_activation(name)
    if name == "leaky_relu":
        return functools.partial(F.leaky_relu, negative_slope=param)
    if name == "elu":
        return functools.partial(F.elu, alpha=param)
    return {"identity": _identity, "relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[name]


def activation_module(name: str, param: float) -> nn.Module:
    """nn.Module twin of activation_fn, for exported nn.Sequential models."""
    name = canonical_activation(name)
    if name == "leaky_relu":
        return nn.LeakyReLU(param)
    if name == "elu":
        return nn.ELU(param)
    return {"identity": nn.Identity, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[name]()


def _check_params(params: torch.Tensor, spec: MLPSpec, population: bool = False) -> None:
    if not isinstance(params, torch.Tensor):
        raise TypeError(f"params must be a tensor, got {type(params).__name__}")
    if population and params.dim() == 2 and params.shape[1] == spec.num_params:
        return
    if params.dim() != 1 or params.numel() != spec.num_params:
        raise ValueError(
            f"params must be 1-D with {spec.num_params} entries for widths {list(spec.widths)}"
            f"{' (or a population (P, ' + str(spec.num_params) + '))' if population else ''}, "
            f"got shape {tuple(params.shape)}"
        )


def unflatten(params: torch.Tensor, spec: MLPSpec) -> list:
    """[(W_l, b_l), ...] as views into the flat buffer, so gradients and writes reach it. For a
    population's (P, n_params) buffer, (P, out, in) weights and (P, out) biases."""
    _check_params(params, spec, population=True)
    lead = params.shape[:-1]
    return [(params[..., w].reshape(*lead, *shape), params[..., b]) for w, shape, b in spec.layer_slices()]


def _linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """F.linear; for a population's (P, out, in) weights one batched product over the members."""
    if weight.dim() == 2:
        return F.linear(h, weight, bias)
    return torch.baddbmm(bias.unsqueeze(-2), h.expand(weight.shape[0], *h.shape[-2:]), weight.transpose(-1, -2))


def _dropout(h: torch.Tensor, p: float, seed: int, offset: int) -> torch.Tensor:
    """Inverted dropout with the Philox mask of docs/design.md; dropped units are exactly 0."""
    keep = philox.dropout_mask(h.shape[-2], h.shape[-1], p, seed, offset, device=h.device)
    return torch.where(keep, h * (1.0 / (1.0 - p)), torch.zeros((), dtype=h.dtype, device=h.device))


def mlp_forward(x: torch.Tensor, params: torch.Tensor, spec: MLPSpec, train: bool = False,
                seed: int = 0, offset: int = 0) -> torch.Tensor:
    """Output of the MLP `spec` with flat `params` on the batch x of shape (N, d0).

    In training mode with spec.dropout > 0, hidden layer l draws its mask from the words at
    offset + N * (d_1 + ... + d_{l-1}), so one pass consumes spec.dropout_words(N) words.
    A population's params (P, n_params) give (P, N, dL): every member on the same x, with the
    same dropout masks (torch.bmm over the members).
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != spec.in_features:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a (N, {spec.in_features}) tensor, got {shape}")
    _check_params(params, spec, population=True)
    if x.dtype != params.dtype or x.device != params.device:
        raise ValueError(
            f"x and params must share dtype and device, got {x.dtype}/{x.device} "
            f"and {params.dtype}/{params.device}"
        )
    use_dropout = train and spec.dropout > 0.0
    acts = [activation_fn(a, p) for a, p in zip(spec.layer_activations, spec.layer_act_params)]
    batch, base = x.shape[0], offset
    h = x
    for layer, ((weight, bias), act) in enumerate(zip(unflatten(params, spec), acts)):
        h = act(_linear(h, weight, bias))
        if use_dropout and layer < spec.num_layers - 1:
            h = _dropout(h, spec.dropout, seed, base)
            base += batch * spec.widths[layer + 1]
    return h


def to_sequential(params: torch.Tensor, spec: MLPSpec, train_dropout: bool = True) -> nn.Sequential:
    """An independent nn.Sequential copy of the network, for export and cross-checking.

    Layout: Linear, hidden activation, [Dropout], ..., Linear, [output activation]. The hidden
    activation is always present (nn.Identity if need be) so layer indices do not depend on
    it; the output activation is left out when it is the identity. With train_dropout=False
    no Dropout modules are added (an inference-only export). nn.Dropout draws from torch's
    RNG, not Philox, so only eval-mode outputs match mlp_forward.
    """
    layers = unflatten(params, spec)
    modules = []
    for i, (weight, bias) in enumerate(layers):
        linear = nn.Linear(spec.widths[i], spec.widths[i + 1], dtype=params.dtype, device=params.device)
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        modules.append(linear)
        if i < len(layers) - 1:
            modules.append(activation_module(spec.activation, spec.layer_act_params[i]))
            if train_dropout and spec.dropout > 0.0:
                modules.append(nn.Dropout(spec.dropout))
        elif spec.output_activation != "identity":
            modules.append(activation_module(spec.output_activation, spec.layer_act_params[i]))
    return nn.Sequential(*modules)


def flat_from_sequential(seq: nn.Module, spec: MLPSpec) -> torch.Tensor:
    """The flat parameter buffer of a model's nn.Linear layers, in module order (a copy)."""
    linears = [m for m in seq.modules() if isinstance(m, nn.Linear)]
    if len(linears) != spec.num_layers:
        raise ValueError(f"expected {spec.num_layers} nn.Linear layers, found {len(linears)}")
    parts = []
    for i, linear in enumerate(linears):
        expected = (spec.widths[i + 1], spec.widths[i])
        if tuple(linear.weight.shape) != expected or linear.bias is None:
            raise ValueError(
                f"layer {i} must be nn.Linear({expected[1]}, {expected[0]}) with bias, "
                f"got weight {tuple(linear.weight.shape)}, bias={linear.bias is not None}"
            )
        parts += [linear.weight.reshape(-1), linear.bias]
    with torch.no_grad():
        return torch.cat(parts)


def init_params(spec: MLPSpec, dtype=torch.float32, device=None, generator=None) -> torch.Tensor:
    """nn.Linear's default initialisation, written straight into a flat buffer.

    Calls the same nn.init functions with the same arguments in the same order as constructing
    nn.Linear(d_l, d_{l+1}, dtype=dtype) layer by layer, so under one torch seed (or generator
    state) the values are bitwise those of the equivalent nn.Sequential.
    """
    params = torch.empty(spec.num_params, dtype=dtype, device=device)
    with torch.no_grad():
        for weight, bias in unflatten(params, spec):
            fan_in = weight.shape[1]
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(bias, -bound, bound, generator=generator)
    return params
