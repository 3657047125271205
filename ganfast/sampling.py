"""ganfast.sample: samples of a trained population's generators, drawn the way G was trained.

    x = ganfast.sample(cfg, state, 100_000)              # (P, n, data_dim), every member
    x0 = ganfast.sample(cfg, state, 100_000, member=0)   # (n, data_dim)

The contract (docs/design.md, "Sampling"):

* noise: `functional.noise(spec.noise, n, noise_seed)`, the same batch for every member, so a
  member's samples depend on its parameters, n and noise_seed only (not on the population
  around it, nor on the number of threads or processes).
* dropout (`dropout=True` and G has dropout): G runs in training mode, as it was trained:
  inverted-dropout masks from the Philox stream of derived_seed(noise_seed, SAMPLE_DROPOUT_SHIFT),
  also shared by every member. `dropout=False` gives eval mode (no dropout).
* blocks: samples are computed in blocks of `block_size(spec.g)` (it depends on G's widths
  alone: at most 2**22 layer outputs per sample block); block b covers samples
  [b * block, (b + 1) * block) and takes its dropout words from offset b * block * sum_hidden
  (sum_hidden = d_1 + ... + d_{L-1}), so a 100000-wide hidden layer samples in bounded memory and
  the result does not depend on the memory available.
* where: the fused population op (torch.ops.ganfast.mlp_forward_population: every member in
  one call, members over threads) when the fused kernels can run G; otherwise the pure-PyTorch
  reference with one batched product over members (chunks of members bound its memory).
* the state's device and dtype. A member with non-finite parameters gives non-finite samples
  (never an exception); ganfast.metrics counts them.
"""
from __future__ import annotations

import numbers

import torch

from ganfast import functional, reference
from ganfast.gan import as_gan_spec
from ganfast.random import SAMPLE_DROPOUT_SHIFT, derived_seed
from ganfast.spec import MLPSpec

__all__ = ["sample", "block_size", "BLOCK_VALUES"]

#: Layer outputs (samples x (d_1 + ... + d_L)) one block of samples may hold per member.
BLOCK_VALUES = 1 << 22
#: Most samples per block (a block is one call of the fused op).
MAX_BLOCK = 4096


def block_size(g: MLPSpec) -> int:
    """Samples per block for generator `g`: max(1, min(4096, 2**22 // (d_1 + ... + d_L)))."""
    return max(1, min(MAX_BLOCK, BLOCK_VALUES // sum(g.widths[1:])))


def _count(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if int(value) < low:
        raise ValueError(f"{name} must be >= {low}, got {int(value)}")
    return int(value)


@torch.no_grad()
def sample(spec, state, n: int, *, member: int | None = None, noise_seed: int = 0,
           dropout: bool = True, backend: str = "auto") -> torch.Tensor:
    """n samples of each member's generator, with the semantics G was trained with.

    spec: a GanSpec or a config with `.gan_spec`; state: a GanState (its g_params are used).
    Returns (n, data_dim) for an int `member`, (P, n, data_dim) for member=None (all members),
    on the state's device, in its dtype. See the module docstring for noise, dropout and blocks.
    backend: "auto" (the fused op where it can run G), "fused" (or an error saying why not) or
    "torch" (the reference).
    """
    gan = as_gan_spec(spec)
    g = gan.g
    params = getattr(state, "g_params", None)
    if not isinstance(params, torch.Tensor) or params.dim() != 2 or params.shape[1] != g.num_params:
        got = tuple(params.shape) if isinstance(params, torch.Tensor) else type(state).__name__
        raise ValueError(f"state must be a GanState whose g_params are (P, {g.num_params}) for G's widths "
                         f"{list(g.widths)}, got {got}")
    n = _count(n, "n", 1)
    if member is not None:
        member = _count(member, "member", 0)
        if member >= params.shape[0]:
            raise ValueError(f"member must be in [0, {params.shape[0]}) for a population of {params.shape[0]}, "
                             f"got {member}")
        params = params[member:member + 1]
    if not isinstance(dropout, bool):
        raise TypeError(f"dropout must be True or False, got {dropout!r}")
    dtype, device = params.dtype, params.device
    z = functional.noise(gan.noise, n, noise_seed, dtype=dtype, device=device, backend=backend)
    train = dropout and g.dropout > 0
    seed = derived_seed(noise_seed, SAMPLE_DROPOUT_SHIFT)
    block = block_size(g)
    words = block * sum(g.widths[1:-1])  # dropout words of one full block
    fused = functional.resolve_backend(backend, g, device, dtype) == "fused"
    params = params.detach().contiguous()
    out = torch.empty((params.shape[0], n, g.out_features), dtype=dtype, device=device)
    for b, start in enumerate(range(0, n, block)):
        x = z[start:start + block]
        rows = out[:, start:start + len(x)]
        if fused:
            rows.copy_(functional.fused_ops().mlp_forward_population(x, params, g, train, seed, b * words))
        else:
            members = max(1, BLOCK_VALUES // (len(x) * max(g.widths)))
            for m in range(0, len(params), members):
                rows[m:m + members] = reference.mlp_forward(x, params[m:m + members], g, train=train, seed=seed,
                                                            offset=b * words)
    return out[0] if member is not None else out
