"""A sweep as a run (ganfast.app.run's protocol): seeds x grid cells trained by the fused engine in
engine groups, scored every `eval_every` epochs, PBT between evaluations, one folder.

    run = SweepRun.new(cfg, plan, options, source, comm)   # or SweepRun.resume(payload, ...)
    exit_code = execute(run)

An interval of the protocol is one evaluation period: each engine group trains to the next
evaluation epoch (in engine calls of about half a second, ganfast.app.toy_run.CallSizer), then
every member is scored (ganfast.app.sweep.scoring; the last evaluation, at the final epoch, on
`final_samples`), the scores of all ranks are gathered (every rank keeps the whole history), and
with PBT the population exploits and explores. Ctrl-C goes back to the last evaluation.

The checkpoint (format 2, kind "sweep") holds the plan, every group's whole population state in
member order (gathered from the ranks, so a sweep resumes on any number of ranks), the history of
evaluations and the PBT events. Under torchrun a checkpoint is written after every evaluation,
and Ctrl-C exits without one (a rank may be inside an exchange): resume from the last.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ganfast.app.config import TrainConfig
from ganfast.app.run import Options, Progress, Run, RunError, new_run_dir, write_config
from ganfast.app.sweep import groups as grouping
from ganfast.app.sweep import pbt, scoring
from ganfast.app.sweep.dist import Comm, builds_label, kernel_build, mixed_builds_note
from ganfast.app.sweep.grid import make_cells, parse_grid
from ganfast.app.sweep.results import finish_sweep
from ganfast.app.toy_run import CallSizer
from ganfast.engine import train_fused
from ganfast.state import GanState

PROG = "python -m ganfast.sweep"


@dataclass(frozen=True)
class Plan:
    """What a sweep is, beside its base config: the grid flags, `seeds` members per cell from
    seed `cfg.seed`, the evaluations and the convergence threshold, and PBT (or None)."""

    grid: tuple = ()
    seeds: int = 16
    eval_every: int = 100
    eval_samples: int = 4096
    final_samples: int = 20_000
    w1: float = 0.05
    pbt: pbt.PbtOptions | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        d = dict(d)
        d["grid"] = tuple(d["grid"])
        if d.get("pbt") is not None:
            d["pbt"] = pbt.PbtOptions(**{**d["pbt"], "factors": tuple(d["pbt"]["factors"])})
        return cls(**d)

    def check(self, cfg: TrainConfig) -> None:
        for name, value, lo in (("seeds", self.seeds, 1), ("eval-every", self.eval_every, 1),
                                ("eval-samples", self.eval_samples, 2), ("final-samples", self.final_samples, 2)):
            if value < lo:
                raise RunError(f"--{name} must be >= {lo}, got {value}")
        if not self.w1 > 0:
            raise RunError(f"--w1 must be > 0, got {self.w1}")
        if cfg.seed + self.seeds - 1 >= 2**63:
            raise RunError(f"--seed {cfg.seed} with --seeds {self.seeds}: seeds must stay below 2**63")
        if self.pbt is not None:
            try:
                self.pbt.check(self.eval_every, cfg.epochs)
            except ValueError as e:
                raise RunError(str(e)) from None


class SweepRun(Run):
    """The members of one rank (a GanState per engine group), and the whole history."""

    kind = "sweep"
    unit = "GAN-epoch"
    prog = PROG

    def __init__(self, cfg: TrainConfig, plan: Plan, states: list, *, comm: Comm, group_epochs=None,
                 history=None, events=None, timers=None, **kwargs):
        super().__init__(cfg, backend="fused", **kwargs)
        self.plan, self.comm = plan, comm
        self.axes = parse_grid(plan.grid)
        self.cells = make_cells(cfg, self.axes)
        self.groups = grouping.make_groups(self.cells, plan.seeds)
        self.n_members = len(self.cells) * plan.seeds
        self.positions = [g.positions(comm.rank, comm.world) for g in self.groups]
        self.local = [[g.members[j] for j in pos] for g, pos in zip(self.groups, self.positions)]
        self.states = states
        self.group_epochs = list(group_epochs or [0] * len(self.groups))
        self.history = list(history or [])    # one dict of (M, ...) tensors per evaluation
        self.events = list(events or [])      # PBT copies, as dicts
        self.timers = dict(timers or {"init": 0.0, "train": 0.0, "score": 0.0, "pbt": 0.0})
        self.sizers = [CallSizer() for _ in self.groups]
        self.checkpoint_every = 1 if comm.distributed else 10
        self.interrupted = False
        # Every rank's kernel build, in rank order (a collective: every rank constructs its run).
        self.kernels = comm.all_gather(kernel_build(self.device))
        note = mixed_builds_note(self.kernels)
        if note:
            self.say(note)

    # --- starting ---------------------------------------------------------------------
    @classmethod
    def new(cls, cfg: TrainConfig, plan: Plan, options: Options, source: dict, comm: Comm) -> "SweepRun":
        plan.check(cfg)
        run = cls(cfg, plan, [], comm=comm, run_dir=None, options=options, source=source)
        t0 = time.perf_counter()
        run.states = [grouping.init_group(g, cfg.seed, plan.seeds, pos, options.device)
                      for g, pos in zip(run.groups, run.positions)]
        run.timers["init"] = time.perf_counter() - t0
        if options.out is not None:
            run_dir = None
            if comm.is_main:
                run_dir = new_run_dir(options.out, f"sweep-{cfg.name}")
                write_config(run_dir, cfg)
            run.run_dir = Path(comm.broadcast(str(run_dir) if run_dir else None))
            run.say(run.describe())
        return run

    @classmethod
    def resume(cls, payload: dict, cfg: TrainConfig, run_dir: Path, options: Options, comm: Comm) -> "SweepRun":
        try:
            saved = payload["state"]
            plan = Plan.from_dict(saved["plan"])
            whole = [GanState(**s) for s in saved["states"]]
        except (KeyError, TypeError) as e:
            raise RunError(f"--resume: {run_dir / 'checkpoint.pt'} is not a complete sweep checkpoint "
                           f"({type(e).__name__}: {e})") from None
        run = cls(cfg, plan, [], comm=comm, run_dir=run_dir, options=options, source=payload["source"],
                  rows=payload["rows"], elapsed=payload["elapsed"], group_epochs=saved["group_epochs"],
                  history=saved["history"], events=saved["events"], timers=saved["timers"])
        run.states = [grouping.select(s, pos).to(options.device) for s, pos in zip(whole, run.positions)]
        run.say(f"resuming {run_dir} at epoch {run.epoch} of {cfg.epochs}")
        before = saved.get("kernels")  # absent in checkpoints from before it was kept
        if before and set(before) != set(run.kernels):
            run.say(f"warning: this sweep trained on {builds_label(before)} kernels and continues on {builds_label(run.kernels)}: "
                    "its members agree with an uninterrupted sweep to rounding, not bitwise")
        return run

    def say(self, line: str) -> None:
        if self.comm.is_main:
            print(line, flush=True)

    def describe(self) -> str:
        plan, cfg = self.plan, self.cfg
        what = (f"preset {self.source['preset']}" if self.source.get("preset")
                else f"config {self.source.get('config')}")
        ranks = f", {self.comm.world} ranks" if self.comm.distributed else ""
        return (f"sweep of {cfg.name} ({what}): {len(self.cells)} cell(s) x {plan.seeds} seeds = {self.n_members} "
                f"members in {len(self.groups)} engine group(s), {cfg.epochs} epochs, scored every "
                f"{plan.eval_every}{', PBT every %d' % plan.pbt.every if plan.pbt else ''}, "
                f"{torch.get_num_threads()} thread(s){ranks} -> {self.run_dir}")

    # --- the protocol's hooks -------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return min(self.group_epochs)

    @property
    def position(self) -> tuple:
        done = sum(len(g.members) * e for g, e in zip(self.groups, self.group_epochs))
        return done, self.n_members * self.cfg.epochs

    def train_interval(self, progress: Progress) -> list:
        ev = self.plan.eval_every
        target = min(self.epoch - self.epoch % ev + ev, self.cfg.epochs)
        for g, state in enumerate(self.states):
            sizer = self.sizers[g]
            while self.group_epochs[g] < target:
                n = sizer.next(target - self.group_epochs[g])
                t0 = time.perf_counter()
                if state.population:
                    train_fused(self.groups[g].spec, state, n)
                seconds = time.perf_counter() - t0
                sizer.done(n, seconds)
                self.timers["train"] += seconds
                self.group_epochs[g] += n
                progress.to(self.position[0])
        record = self.evaluate(target)
        p = self.plan.pbt
        if p is not None and target < self.cfg.epochs and target % p.every == 0:
            self.exploit(record, target // p.every - 1)
        w1 = record["w1"]
        return [{"epoch": target, "w1_median": _median(w1), "converged": int((w1 < self.plan.w1).sum()),
                 "diverged": int((record["diverged"] >= 0).sum())}]

    def evaluate(self, epoch: int) -> dict:
        """Score every member (the final epoch: on final_samples), gather, append to history."""
        t0 = time.perf_counter()
        index = len(self.history)
        n = self.plan.final_samples if epoch == self.cfg.epochs else self.plan.eval_samples
        seed = scoring.eval_seed(self.cfg.seed, index)
        mine = []
        for g, state in enumerate(self.states):
            if state.population:
                s = scoring.score(self.groups[g].spec, state, n, seed)
                s["lrs"] = state.lrs.detach().cpu().clone()
                s["diverged"] = _diverged(state)
                mine.append((self.local[g], s))
        record = {"epoch": torch.tensor(epoch), "samples": torch.tensor(n), "noise_seed": torch.tensor(seed)}
        parts = [p for rank_parts in self.comm.all_gather(mine) for p in rank_parts]
        for key in parts[0][1]:
            first = parts[0][1][key]
            out = torch.empty((self.n_members, *first.shape[1:]), dtype=first.dtype)
            for members, s in parts:
                out[torch.tensor(members)] = s[key]
            record[key] = out
        self.history.append(record)
        self.timers["score"] += time.perf_counter() - t0
        return record

    def exploit(self, record: dict, round_: int) -> None:
        """PBT round `round_`: the bottom quantile of each group copies the top (pbt.plan)."""
        t0 = time.perf_counter()
        copies = pbt.plan(record["w1"], self.groups, self.plan.pbt, self.cfg.seed, round_)
        where = {}  # global member -> (group, local index)
        for g, members in enumerate(self.local):
            where.update({m: (g, k) for k, m in enumerate(members)})
        needed = {c.source for c in copies}
        mine = {m: pbt.member_tensors(self.states[where[m][0]], where[m][1]) for m in needed if m in where}
        sources = {m: t for part in self.comm.all_gather(mine) for m, t in part.items()}
        for c in copies:
            if c.member in where:
                g, k = where[c.member]
                pbt.apply(self.states[g], k, sources[c.source], c)
        epoch = int(record["epoch"])
        lrs = record["lrs"]
        for c in copies:
            self.events.append({"epoch": epoch, "member": c.member, "source": c.source,
                                "member_w1": float(record["w1"][c.member]), "source_w1": float(record["w1"][c.source]),
                                "lr_d": float(lrs[c.source, 0] * c.factor_d), "lr_g": float(lrs[c.source, 1] * c.factor_g)})
        self.timers["pbt"] += time.perf_counter() - t0

    def log_line(self, rows: list, seconds: float) -> str:
        r = rows[-1]
        width = max(5, len(str(self.cfg.epochs)))
        line = (f"epoch {r['epoch']:>{width}}/{self.cfg.epochs}  W1 median {r['w1_median']:.4f}  "
                f"converged {r['converged']}/{self.n_members} (W1 < {self.plan.w1:g})")
        if r["diverged"]:
            line += f"  diverged {r['diverged']}"
        return line

    def state_dict(self) -> dict:
        return {"plan": self.plan.to_dict(),
                "states": [{k: v.detach().cpu().clone() for k, v in s.tensors().items()} for s in self.states],
                "group_epochs": list(self.group_epochs), "history": list(self.history),
                "events": [dict(e) for e in self.events], "timers": dict(self.timers),
                "kernels": list(self.kernels)}

    def load_state_dict(self, state: dict) -> None:
        for s, saved in zip(self.states, state["states"]):
            s.copy_(GanState(**saved))
        self.group_epochs[:] = state["group_epochs"]
        self.history[:] = state["history"]
        self.events[:] = state["events"]
        self.timers.update(state["timers"])

    # --- gathering ------------------------------------------------------------------------
    def whole_states(self, local: list) -> list:
        """Every group's whole population (member order) from the ranks' `local` state dicts;
        on rank 0 (None elsewhere)."""
        if not self.comm.distributed:
            return local
        parts = self.comm.all_gather(local)
        if not self.comm.is_main:
            return None
        whole = []
        for g, group in enumerate(self.groups):
            names = parts[0][g].keys()
            order = [0] * len(group.members)
            for rank, part in enumerate(parts):
                for i, j in enumerate(group.positions(rank, self.comm.world)):
                    order[j] = (rank, i)
            whole.append({n: torch.stack([parts[r][g][n][i] for r, i in order]) if order else parts[0][g][n]
                          for n in names})
        return whole

    def checkpoint(self, snap: tuple | None = None) -> None:
        if self.run_dir is None or (self.interrupted and self.comm.distributed):
            return  # under torchrun a rank may be inside an exchange: the last checkpoint stands
        state, rows, elapsed, epoch = snap or self.snapshot()
        whole = self.whole_states(state["states"])
        if self.comm.is_main:
            super().checkpoint(({**state, "states": whole}, rows, elapsed, epoch))

    def train(self) -> bool:
        self.interrupted = super().train()
        return self.interrupted

    def finish(self, interrupted: bool) -> dict:
        if interrupted and self.comm.distributed:
            self.say(f"interrupted under torchrun: no report; the checkpoint in {self.run_dir} is at the last "
                     "evaluation it saved")
            return {}
        whole = self.whole_states([s.tensors() for s in self.states])
        if not self.comm.is_main:
            return {}
        return finish_sweep(self, [GanState(**w) for w in whole], interrupted)


def _median(x: torch.Tensor) -> float:
    finite = [v for v in x.tolist() if v == v]
    return statistics.median(finite) if finite else float("nan")


def _diverged(state: GanState) -> torch.Tensor:
    """(P,) int64: the epoch a member diverged (GanState.diverged), -1 while it is finite."""
    return state.diverged.detach().cpu().clone()
