"""Members, engine groups and ranks: who trains in which engine call, on which process.

Member `m` of a sweep is seed `seed + i` of cell `c`, `m = c * seeds + i`: it trains exactly as
`init_state(cell_config, seed=seed + i, population=1)` does alone (the engine's promise: a
member's run depends on its seed and config only). Cells whose GanSpecs differ only in the
learning rates share an engine group: the engine holds the (D, G) learning rates per member
(`GanState.lrs`), everything else (widths, batch, steps, noise, optimizer kind...) is the
description's, so such cells need engine calls of their own. Within a group, member `j`
(group-local order: cells in order, then seeds) belongs to rank `j % world`: each rank trains
about the same share of every group, and any split gives the same numbers per member.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ganfast.gan import GanSpec
from ganfast.state import GanState, init_state


def structure(spec: GanSpec) -> GanSpec:
    """The part of a spec that the engine's description holds: the spec with both learning
    rates set to 1 (they live in the state, per member)."""
    return dataclasses.replace(spec, optimizer_d=dataclasses.replace(spec.optimizer_d, lr=1.0),
                               optimizer_g=dataclasses.replace(spec.optimizer_g, lr=1.0))


@dataclass(frozen=True)
class Group:
    """Cells that train in one engine call: their spec (the first cell's; the learning rates come
    from the state) and the global indices of their members, in group order."""

    index: int
    spec: GanSpec
    cells: tuple
    members: tuple

    def positions(self, rank: int, world: int) -> list:
        """Group-local positions of the members that `rank` of `world` trains."""
        return list(range(rank, len(self.members), world))


def make_groups(cells, seeds: int) -> list:
    """The engine groups of `cells` (each with `seeds` members), in order of first appearance."""
    by_key: dict = {}
    for cell in cells:
        by_key.setdefault(structure(cell.config.gan_spec), []).append(cell)
    return [Group(i, found[0].config.gan_spec, tuple(found),
                  tuple(c.index * seeds + s for c in found for s in range(seeds)))
            for i, found in enumerate(by_key.values())]


def cat_states(states) -> GanState:
    """One population of the members of `states`, in order."""
    names = list(states[0].tensors())
    return GanState(**{n: torch.cat([s.tensors()[n] for s in states]) for n in names})


def select(state: GanState, positions) -> GanState:
    """The members at `positions` as a new population (copies)."""
    index = torch.as_tensor(list(positions), dtype=torch.long, device=state.seeds.device)
    return GanState(**{n: t.index_select(0, index) for n, t in state.tensors().items()})


def init_group(group: Group, seed: int, seeds: int, positions=None, device=None) -> GanState:
    """The initial state of a group's members (all, or those at `positions`): seeds
    seed..seed+seeds-1 of each cell, with the cell's learning rates."""
    state = cat_states([init_state(c.config.gan_spec, seed=seed, population=seeds) for c in group.cells])
    if positions is not None:
        state = select(state, positions)
    return state.to(device) if device is not None else state
