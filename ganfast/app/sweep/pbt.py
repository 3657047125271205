"""Population-based training (Jaderberg et al. 2017, "Population Based Training of Neural
Networks", which applied it to GANs): exploit and explore on the population state, in place.

Every `every` epochs (at an evaluation, whose W1 is the fitness: lower is better, a diverged or
non-finite member is the worst), the members of each engine group are ranked; each member of
the bottom `quantile` copies the parameters and optimizer state of a member of the top quantile
and multiplies the source's (D, G) learning rates by factors drawn from `factors` (x0.8 or
x1.25 by default), each independently. The copier keeps its own seed, Philox offset and epoch
counter, so its future differs from its source's. Ranking is within an engine group, the members
whose parameters have the same shapes.

The draws (which source, which factors) are Philox uniforms of the stream
`derived_seed(sweep seed, PBT_SHIFT)`: round r uses words `3 M r ...` (3 per member, M members in
the sweep), so a plan depends on the sweep seed, the round and the fitness only, and every rank
computes the same one. Ties in fitness go to the lower member index.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ganfast import functional
from ganfast.random import derived_seed

#: The Philox stream of the PBT draws: derived_seed(sweep seed, PBT_SHIFT).
PBT_SHIFT = 5_000_011
#: What a copy keeps of the copier: its stream and its counters.
KEPT = ("seeds", "offsets", "epochs")


@dataclass(frozen=True)
class PbtOptions:
    every: int = 500
    quantile: float = 0.25
    factors: tuple = (0.8, 1.25)

    def check(self, eval_every: int, epochs: int) -> None:
        if self.every < 1 or self.every % eval_every:
            raise ValueError(f"--pbt-every {self.every}: must be a positive multiple of --eval-every {eval_every} "
                             "(the fitness is that evaluation's W1)")
        if not 0 < self.quantile <= 0.5:
            raise ValueError(f"--pbt-quantile must be in (0, 0.5], got {self.quantile}")
        if len(self.factors) != 2 or not all(math.isfinite(f) and f > 0 for f in self.factors):
            raise ValueError(f"--pbt-factors: two positive numbers (e.g. 0.8,1.25), got {list(self.factors)}")


@dataclass(frozen=True)
class Copy:
    """One exploit/explore: `member` takes `source`'s weights and its learning rates times
    (factor_d, factor_g)."""

    member: int
    source: int
    factor_d: float
    factor_g: float


def plan(fitness: torch.Tensor, groups, options: PbtOptions, seed: int, round_: int) -> list:
    """The copies of PBT round `round_` (0-based) given every member's fitness (M,) (lower is
    better; NaN counts as the worst)."""
    fitness = torch.nan_to_num(fitness.double().cpu(), nan=math.inf).tolist()
    total = len(fitness)
    copies, offset = [], 3 * total * round_
    for group in groups:
        members = list(group.members)
        n = len(members)
        q = int(options.quantile * n)
        if q:
            order = sorted(members, key=lambda m: (fitness[m], m))
            top, bottom = order[:q], order[n - q:]
            u = functional.uniform(3 * q, derived_seed(seed, PBT_SHIFT), offset, dtype=torch.float64).tolist()
            for i, member in enumerate(bottom):
                source = top[min(int(u[3 * i] * q), q - 1)]
                f_d = options.factors[0] if u[3 * i + 1] < 0.5 else options.factors[1]
                f_g = options.factors[0] if u[3 * i + 2] < 0.5 else options.factors[1]
                copies.append(Copy(member, source, f_d, f_g))
        offset += 3 * n
    return copies


def member_tensors(state, k: int) -> dict:
    """What a copy takes from member k of `state` (CPU copies)."""
    return {name: t[k].detach().cpu().clone() for name, t in state.tensors().items() if name not in KEPT}


def apply(state, k: int, source: dict, copy: Copy) -> None:
    """Member k of `state` takes `source` (member_tensors of the source) and the perturbed
    learning rates, in place."""
    for name, t in state.tensors().items():
        if name not in KEPT:
            t[k].copy_(source[name])
    factors = torch.tensor([copy.factor_d, copy.factor_g], dtype=state.lrs.dtype)
    state.lrs[k].copy_(source["lrs"].to(state.lrs.device) * factors.to(state.lrs.device))


def lineage(history: list, events: list, member: int) -> list:
    """[(epoch, lr_d, lr_g, slot)] at each evaluation, for the weights that end in `member`'s
    slot, back through the copies they came from: at a copy into the slot at epoch e the weights
    lived in the source until then (the evaluation at e comes before the copy)."""
    copies = {(e["epoch"], e["member"]): e["source"] for e in events}
    out, slot = [], member
    for r in reversed(history):
        e = int(r["epoch"])
        slot = copies.get((e, slot), slot)
        out.append((e, float(r["lrs"][slot, 0]), float(r["lrs"][slot, 1]), slot))
    return out[::-1]
