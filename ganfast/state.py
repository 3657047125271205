"""The state of a population of toy GANs, shared by the fused engine and the reference trainer:
parameters, optimizer buffers and counters as (P, ...) tensors; how it starts; how it is saved.

Member k starts from the Philox stream of seed_k = seed + k: G's layers and then D's are drawn
like nn.Linear's default init (U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weight then bias), and
training continues in the same stream after those words. So a member's run depends on its seed
alone, not on the population around it.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

import torch

from ganfast import functional
from ganfast.config import TrainConfig
from ganfast.random import PhiloxStream, words_for_uniform
from ganfast.spec import MLPSpec

#: Checkpoint format version; bump when the layout of GanState changes.
STATE_VERSION = 1


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

    @property
    def population(self) -> int:
        return self.g_params.shape[0]

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


def philox_init(spec: MLPSpec, stream: PhiloxStream, dtype=torch.float32) -> torch.Tensor:
    """Flat parameters drawn like nn.Linear's default init, from `stream`."""
    parts = []
    for i, o in zip(spec.widths[:-1], spec.widths[1:]):
        bound = 1.0 / math.sqrt(i)
        for n in (o * i, o):  # weight, then bias
            parts.append(functional.uniform(n, stream.seed, stream.take(words_for_uniform(n)),
                                            -bound, bound, dtype=dtype))
    return torch.cat(parts)


def init_state(cfg: TrainConfig, *, lrs=None, device=None) -> GanState:
    """The initial state of cfg.population members (member k uses seed cfg.seed + k).

    lrs: optional (P, 2) learning rates (D, G) per member; default: the config's for all.
    """
    dtype = cfg.torch_dtype
    g_spec, d_spec = cfg.g_spec, cfg.d_spec
    P = cfg.population
    g_rows, d_rows, offsets = [], [], []
    for seed in cfg.member_seeds:
        stream = PhiloxStream(seed)
        g_rows.append(philox_init(g_spec, stream, dtype))
        d_rows.append(philox_init(d_spec, stream, dtype))
        offsets.append(stream.offset)
    if lrs is None:
        lrs = [[cfg.optimizer_d.lr, cfg.optimizer_g.lr]] * P
    lrs = torch.as_tensor(lrs, dtype=torch.float64)
    if lrs.shape != (P, 2) or not bool(torch.all(lrs > 0)) or not bool(torch.all(torch.isfinite(lrs))):
        raise ValueError(f"lrs must be ({P}, 2) finite learning rates > 0 (D, G), got shape {tuple(lrs.shape)}")
    state = GanState(
        g_params=torch.stack(g_rows),
        d_params=torch.stack(d_rows),
        g_opt=torch.zeros(P, 2 * g_spec.num_params, dtype=dtype),
        d_opt=torch.zeros(P, 2 * d_spec.num_params, dtype=dtype),
        offsets=torch.tensor(offsets, dtype=torch.int64),
        epochs=torch.zeros(P, dtype=torch.int64),
        seeds=torch.tensor(cfg.member_seeds, dtype=torch.int64),
        lrs=lrs,
    )
    return state.to(device) if device is not None else state


def save_state(path, state: GanState, cfg: TrainConfig, extra: dict | None = None) -> None:
    """Write a checkpoint atomically (a crash mid-write never leaves a half-written file)."""
    payload = {"version": STATE_VERSION, "config": cfg.to_dict(),
               "state": {k: v.cpu() for k, v in state.tensors().items()}, "extra": extra or {}}
    atomic_torch_save(path, payload)


def atomic_torch_save(path, payload) -> None:
    """torch.save through `path.tmp`, fsync and rename: readers never see a half-written file."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_checkpoint(path) -> dict:
    """The payload of a checkpoint file (tensors on the CPU, no code run: weights_only);
    FileNotFoundError when there is none, ValueError when it is truncated or foreign."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}") from None
    except Exception as exc:  # truncated or foreign file
        raise ValueError(f"{path} is not a ganfast checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path} is not a ganfast checkpoint")
    return payload


def load_state(path, device=None):
    """(state, config dict, extra) of a checkpoint written by save_state."""
    payload = read_checkpoint(path)
    if payload.get("version") != STATE_VERSION:
        raise ValueError(f"{path} is not a ganfast checkpoint of version {STATE_VERSION}")
    try:
        state = GanState(**payload["state"])
        config, extra = payload["config"], payload["extra"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a complete ganfast checkpoint ({type(exc).__name__}: {exc})") from None
    return (state.to(device) if device is not None else state), config, extra
