"""The state of a population of toy GANs, shared by the fused engine and the reference trainer:
parameters, optimizer buffers and counters as (P, ...) tensors, and how it starts.

Member k starts from the Philox stream of seed_k = seed + k: G's layers and then D's are drawn
like nn.Linear's default init (U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weight then bias), and
training continues in the same stream after those words. So a member's run depends on its seed
alone, not on the population around it.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

import torch

from ganfast import functional
from ganfast.gan import as_gan_spec
from ganfast.random import PhiloxStream, words_for_uniform
from ganfast.spec import MLPSpec


@dataclass
class GanState:
    g_params: torch.Tensor  # (P, nG)
    d_params: torch.Tensor  # (P, nD)
    g_opt: torch.Tensor     # (P, 2 nG): SGD momentum buffer | Adam (exp_avg, exp_avg_sq)
    d_opt: torch.Tensor     # (P, 2 nD)
    offsets: torch.Tensor   # (P,) int64: Philox words consumed
    epochs: torch.Tensor    # (P,) int64: epochs completed
    seeds: torch.Tensor     # (P,) int64
    lrs: torch.Tensor       # (P, 2) float64: base learning rates (D, G)
    #: (P,) int64: -1 while the member is finite; else the epoch count at the end of the epoch in
    #: which one of its parameters (G's or D's), or a loss its call reported, was first NaN or
    #: infinite. The engine and the reference trainer freeze such a member from then on (no more
    #: updates, no more Philox words; its epoch counter still advances) and report NaN metrics
    #: for it (docs/design.md, "Divergence"). Left out (None), it starts as -1 everywhere (states
    #: saved before it existed).
    diverged: torch.Tensor | None = None

    def __post_init__(self):
        if self.diverged is None:
            self.diverged = torch.full(self.epochs.shape, -1, dtype=torch.int64, device=self.epochs.device)

    @property
    def population(self) -> int:
        return self.g_params.shape[0]

    @property
    def diverged_members(self) -> list:
        """The indices of the members that have diverged."""
        return torch.nonzero(self.diverged >= 0).flatten().tolist()

    @property
    def epoch(self) -> int:
        """Epochs completed (every member trains in lock step)."""
        return int(self.epochs[0])

    def member(self, k: int) -> "GanState":
        """Member k as a population of one (views: training it trains the member in place)."""
        return GanState(**{f.name: getattr(self, f.name)[k:k + 1] for f in fields(self)})

    def clone(self) -> "GanState":
        return GanState(**{f.name: getattr(self, f.name).clone() for f in fields(self)})

    def to(self, device) -> "GanState":
        return GanState(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def tensors(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def copy_(self, other: "GanState") -> "GanState":
        """Overwrite every tensor in place with `other`'s (same shapes)."""
        for name, tensor in self.tensors().items():
            tensor.copy_(getattr(other, name))
        return self


def check_epochs(epochs) -> int:
    """`epochs` as an int: any integer type (NumPy's too) >= 0; bool, 2.5 and -1 raise one line."""
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"epochs must be an integer >= 0, got {type(epochs).__name__} {epochs!r}")
    return int(epochs)


def philox_init(spec: MLPSpec, stream: PhiloxStream, dtype=torch.float32) -> torch.Tensor:
    """Flat parameters drawn like nn.Linear's default init, from `stream`."""
    parts = []
    for i, o in zip(spec.widths[:-1], spec.widths[1:]):
        bound = 1.0 / math.sqrt(i)
        for n in (o * i, o):  # weight, then bias
            parts.append(functional.uniform(n, stream.seed, stream.take(words_for_uniform(n)),
                                            -bound, bound, dtype=dtype))
    return torch.cat(parts)


def init_state(spec, *, seed: int | None = None, population: int | None = None, lrs=None,
               device=None) -> GanState:
    """The initial state of `population` members; member k uses seed `seed + k`.

    spec: a GanSpec, or a config with `.gan_spec` (whose `seed` and `population` are then the
    defaults; otherwise seed 0, population 1).
    lrs: optional (P, 2) learning rates (D, G) per member; default: the spec's for all.
    """
    gan = as_gan_spec(spec)
    seed = int(getattr(spec, "seed", 0) if seed is None else seed)
    P = int(getattr(spec, "population", 1) if population is None else population)
    if P < 1 or seed < 0 or seed + P - 1 >= 2**63:
        raise ValueError(f"need population >= 1 and seeds in [0, 2**63), got seed {seed}, population {P}")
    dtype, seeds = gan.dtype, list(range(seed, seed + P))
    g_rows, d_rows, offsets = [], [], []
    for member_seed in seeds:
        stream = PhiloxStream(member_seed)
        g_rows.append(philox_init(gan.g, stream, dtype))
        d_rows.append(philox_init(gan.d, stream, dtype))
        offsets.append(stream.offset)
    if lrs is None:
        lrs = [[gan.optimizer_d.lr, gan.optimizer_g.lr]] * P
    lrs = torch.as_tensor(lrs, dtype=torch.float64)
    if lrs.shape != (P, 2) or not bool(torch.all(lrs > 0)) or not bool(torch.all(torch.isfinite(lrs))):
        raise ValueError(f"lrs must be ({P}, 2) finite learning rates > 0 (D, G), got shape {tuple(lrs.shape)}")
    state = GanState(
        g_params=torch.stack(g_rows),
        d_params=torch.stack(d_rows),
        g_opt=torch.zeros(P, 2 * gan.g.num_params, dtype=dtype),
        d_opt=torch.zeros(P, 2 * gan.d.num_params, dtype=dtype),
        offsets=torch.tensor(offsets, dtype=torch.int64),
        epochs=torch.zeros(P, dtype=torch.int64),
        seeds=torch.tensor(seeds, dtype=torch.int64),
        lrs=lrs,
        diverged=torch.full((P,), -1, dtype=torch.int64),
    )
    return state.to(device) if device is not None else state
