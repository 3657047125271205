"""A toy run: a population of toy GANs (a preset or a YAML config) trained by the fused engine
or the reference trainer, a log interval at a time (ganfast.app.run's protocol).

The run folder gets config.yaml, checkpoint.pt (every 10 log intervals and at the end), then
metrics.csv, summary.json, distribution.png, moments.png (1-D), losses.png, training.gif
(ganfast.app.report.write_report) and weights.pt.

A log interval is split into engine calls of about half a second (CallSizer; no result
changes). After each interval a line like devnag's is printed and a frame of the animation is
taken: 2000 samples of member 0's generator on a fixed noise batch, drawn as G was trained
(ganfast.sample: with its training-mode dropout) and, for 1-D raw-input discriminators, D on a
grid over the target +-4 std. The summary is about 100,000 samples of the best member drawn the
same way (its "sampling" entry says so; "eval_mode" gives the figures without dropout beside
them when G has dropout); a population's best member is picked by W1 on 20,000 samples each,
scored in chunks of members (bounded memory; a bar when it takes long; a huge population gets
fewer samples per member, select_samples). Ctrl-C discards the interval in flight
(it lands when the native call in progress returns); on the fused CPU path a resumed run ends
bit-identical to one that was never interrupted.
"""
from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ganfast import functional, metrics
from ganfast.app import report
from ganfast.app.config import TrainConfig
from ganfast.app.files import atomic_write
from ganfast.app.run import (CHECKPOINT, Options, Progress, Run, RunError, check_memory,
                             out_of_memory_is_a_run_error, resume_line)
from ganfast.engine import METRIC_NAMES, train_fused
from ganfast.modules import Discriminator, Generator
from ganfast.random import FINAL_NOISE_SHIFT, FIXED_NOISE_SHIFT, derived_seed
from ganfast.reference_train import train_reference
from ganfast.sampling import sample
from ganfast.state import GanState, init_state

FRAME_SAMPLES = 2000          # fixed noise batch of every animation frame
FRAME_GRID = 200              # points of D's curve in a frame (1-D raw-input D only)
FINAL_SAMPLES = 100_000       # samples the summary is about
SELECT_SAMPLES = 20_000       # samples per member when picking the best of a population ...
SELECT_MIN_SAMPLES = 2_000    # ... fewer for a huge one (SELECT_BUDGET in all), never fewer than this
SELECT_BUDGET = 200_000_000   # sample values scored in all when picking (~30 s on one core)
SELECT_VALUES = 1 << 23       # sample values scored at once when picking (members per chunk)
CALL_SECONDS = 0.5            # target duration of one engine call (Ctrl-C latency)


def resolve_backend(requested: str, cfg: TrainConfig, device) -> tuple:
    """(backend, why) for --backend; 'fused' that cannot run here is an error."""
    if requested == "torch":
        return "torch", "requested with --backend torch"
    spec = cfg.gan_spec
    reason = functional.fused_unavailable_reason((spec.g, spec.d), device, spec.dtype)
    if requested == "fused":
        if reason is not None:
            raise RunError(f"--backend fused cannot run here: {reason}")
        return "fused", "requested with --backend fused"
    if reason is None:
        return "fused", f"auto: the fused engine can run this config on {torch.device(device).type}"
    return "torch", f"auto: the fused engine cannot run here ({reason})"


# --- targets and sampling ------------------------------------------------------------------

def target(cfg: TrainConfig) -> dict:
    """The real distribution in ganfast.app.report's form."""
    data = cfg.data
    if data.kind == "normal":
        return {"kind": "normal", "mean": list(data.mean), "std": list(data.std)}
    centers, std, weights = data.components()
    # report reads a 1-D std list as one value per component: give a scalar or a (K, dim) table
    std_out = std[0] if all(s == std[0] for s in std) else [list(std) for _ in centers]
    return {"kind": "mixture", "centers": [list(c) for c in centers], "std": std_out,
            "weights": list(weights)}


def _pooled_moments(cfg: TrainConfig) -> tuple:
    """Mean and std of all coordinates of the target pooled together: what the engine's
    fake_mean / fake_std (over every element of a generated batch) estimate."""
    centers, std, weights = cfg.data.components()
    dim = cfg.data.dim
    m = sum(w * sum(c) for c, w in zip(centers, weights)) / dim
    m2 = sum(w * sum(ci * ci + si * si for ci, si in zip(c, std)) for c, w in zip(centers, weights)) / dim
    return m, math.sqrt(max(m2 - m * m, 0.0))


def generate(cfg: TrainConfig, state: GanState, n: int, seed_shift: int, *, member=None,
             dropout: bool = True) -> torch.Tensor:
    """n samples of member `member`'s generator ((n, dim); every member's, (P, n, dim), for None)
    from the noise stream derived_seed(cfg.seed, seed_shift), drawn as G was trained: with its
    training-mode dropout (ganfast.sample; dropout=False for eval mode), in bounded memory."""
    return sample(cfg, state, n, member=member, noise_seed=derived_seed(cfg.seed, seed_shift), dropout=dropout)


def sampling_note(cfg: TrainConfig) -> str:
    """How the summary's samples were drawn (its "sampling" entry)."""
    p = cfg.g_spec.dropout
    return f"train-mode dropout (p={p:g}), as trained" if p > 0 else "G has no dropout"


def select_samples(cfg: TrainConfig) -> int:
    """Samples per member when picking the best member: SELECT_SAMPLES, fewer for a population
    so large that scoring would take minutes (SELECT_BUDGET values in all, at least
    SELECT_MIN_SAMPLES: --population 100000 scores 2,000 each)."""
    return max(SELECT_MIN_SAMPLES, min(SELECT_SAMPLES, SELECT_BUDGET // (cfg.population * cfg.data.dim)))


def score_members(cfg: TrainConfig, state: GanState, quiet: bool = False) -> list:
    """Each member's W1 to the target (mean over dimensions; inf for a member without finite
    samples) on select_samples(cfg) samples drawn as trained: members in chunks of SELECT_VALUES
    sample values (ganfast.sample + ganfast.metrics), so memory stays bounded for any
    population; a bar on stderr when it takes more than a second."""
    n = select_samples(cfg)
    chunk = max(1, SELECT_VALUES // (n * cfg.data.dim))
    scores = []
    with tqdm(total=state.population, desc="scoring members", unit="member", file=sys.stderr, leave=False,
              dynamic_ncols=True, delay=1.0, disable=True if quiet else None) as bar:
        for start in range(0, state.population, chunk):
            part = GanState(**{k: v[start:start + chunk] for k, v in state.tensors().items()})
            w1 = metrics.distances(generate(cfg, part, n, FINAL_NOISE_SHIFT), cfg)["w1"].mean(1)
            scores += [w if math.isfinite(w) else math.inf for w in w1.tolist()]
            bar.update(part.population)
    return scores


def memory_needed(cfg: TrainConfig) -> int:
    """Bytes a toy run keeps, estimated from above: the population's parameters and optimizer
    buffers twice (the run keeps a snapshot of the last logged interval), and each training
    thread's activations and gradients of a batch."""
    item = torch.finfo(cfg.torch_dtype).bits // 8
    g, d = cfg.g_spec, cfg.d_spec
    state = cfg.population * 3 * (g.num_params + d.num_params) * item
    work = torch.get_num_threads() * 4 * cfg.batch_size * (sum(g.widths) + sum(d.widths)) * item
    return 2 * state + work


def check_state(state: GanState, cfg: TrainConfig) -> None:
    """ValueError unless `state` is a population state of `cfg` (shapes, dtypes, seeds, lock step)."""
    P, nG, nD = cfg.population, cfg.g_spec.num_params, cfg.d_spec.num_params
    want = {"g_params": ((P, nG), cfg.torch_dtype), "d_params": ((P, nD), cfg.torch_dtype),
            "g_opt": ((P, 2 * nG), cfg.torch_dtype), "d_opt": ((P, 2 * nD), cfg.torch_dtype),
            "offsets": ((P,), torch.int64), "epochs": ((P,), torch.int64), "seeds": ((P,), torch.int64),
            "lrs": ((P, 2), torch.float64), "diverged": ((P,), torch.int64)}
    for name, (shape, dtype) in want.items():
        t = getattr(state, name)
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape or t.dtype != dtype:
            got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} is {got}, the config needs {shape} {dtype}")
    if state.seeds.tolist() != list(cfg.member_seeds):
        raise ValueError(f"the member seeds are not the config's {cfg.seed} + k")
    if not bool((state.epochs == state.epochs[0]).all()):
        raise ValueError("the members are at different epochs")


def _frame_values(x: torch.Tensor) -> torch.Tensor:
    """A frame's values as a CPU tensor ((M,) for one column): checkpoints pickle it as one
    storage, where a list of 2,000 floats per frame was 100,000 Python objects per save (0.1 s
    each in the default run)."""
    x = x.detach().cpu()
    return (x.reshape(-1) if x.dim() == 2 and x.shape[1] == 1 else x).clone()


class Framer:
    """Takes the animation frames: member 0 on a fixed noise batch, and D on a grid."""

    def __init__(self, cfg: TrainConfig, device):
        self.cfg = cfg
        self.grid = None
        if cfg.data.dim == 1 and cfg.discriminator.input == "raw":
            centers, std, _ = cfg.data.components()
            lo = min(c[0] - 4 * std[0] for c in centers)
            hi = max(c[0] + 4 * std[0] for c in centers)
            self.grid = torch.linspace(lo, hi, FRAME_GRID, dtype=cfg.torch_dtype, device=device).view(-1, 1)

    @torch.no_grad()
    def __call__(self, state: GanState) -> dict:
        x = generate(self.cfg, state, FRAME_SAMPLES, FIXED_NOISE_SHIFT, member=0)
        frame = {"epoch": state.epoch, "samples": _frame_values(x), "grid": None, "d_grid": None}
        if int(state.diverged[0]) >= 0:
            frame["note"] = f"diverged at epoch {int(state.diverged[0])}: no finite samples"
        if self.grid is not None:
            d = functional.mlp(self.grid, state.d_params[0], self.cfg.d_spec, train=False, backend="auto")
            frame["grid"], frame["d_grid"] = _frame_values(self.grid), _frame_values(d)
        return frame


class CallSizer:
    """Epochs per engine call: a log interval is split into calls of about CALL_SECONDS, so
    Ctrl-C (which lands only when a native call returns) and the progress bar stay responsive
    on slow configs. The first call is one epoch; each next one at most 4x the last. Splitting
    does not change the result (the engine continues from the state alone). Only the fused
    engine is split: Ctrl-C interrupts the PyTorch reference at once, and each of its calls
    rebuilds modules and optimizers, so it gets whole intervals."""

    def __init__(self, split: bool = True):
        self.split, self.budget = split, 1

    def next(self, remaining: int) -> int:
        return max(1, min(remaining, self.budget)) if self.split else remaining

    def done(self, epochs: int, seconds: float):
        rate = epochs / max(seconds, 1e-9)
        self.budget = max(1, min(int(rate * CALL_SECONDS), 4 * epochs))


def _fmt(x, spec=".2f") -> str:
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_fmt(v, spec) for v in x) + "]"
    if x is None:
        return "nan"
    return format(float(x), spec)


class ToyRun(Run):
    """A population of toy GANs: a GanState, metrics rows (one per member and log) and the
    animation's frames."""

    kind = "toy"
    checkpoint_every = 10

    def __init__(self, cfg: TrainConfig, state: GanState, *, frames=None, **kwargs):
        super().__init__(cfg, **kwargs)
        self.state = state
        self.frames = list(frames or [])
        self.framer = Framer(cfg, self.device)
        self.target_moments = _pooled_moments(cfg)
        self.sizer = CallSizer(split=self.backend == "fused")

    # --- starting ---------------------------------------------------------------------
    @classmethod
    def new(cls, cfg: TrainConfig, options: Options, source: dict) -> "ToyRun":
        backend, why = resolve_backend(options.backend, cfg, options.device)
        check_memory(memory_needed(cfg), "this run")
        with out_of_memory_is_a_run_error("for the population's state"):
            state = init_state(cfg, device=options.device)
        run = cls(cfg, state, run_dir=None, backend=backend, options=options, source=source)
        if options.out is not None:
            run_dir = run.create_folder(options.out)  # config.yaml and the checkpoint of epoch 0
            what = f"preset {source['preset']}" if source.get("preset") else f"config {source.get('config')}"
            print(f"{cfg.name} ({what}): {cfg.epochs} epochs, population {cfg.population}, "
                  f"{cfg.dtype}, {options.device} -> {run_dir}")
            print(f"backend: {backend} ({why})", flush=True)
        return run

    @classmethod
    def resume(cls, payload: dict, cfg: TrainConfig, run_dir: Path, options: Options) -> "ToyRun":
        backend, why = resolve_backend(options.backend, cfg, options.device)
        try:
            state = GanState(**payload["state"]["gan"])
            check_state(state, cfg)
        except (KeyError, TypeError, ValueError) as e:
            raise RunError(f"--resume: {run_dir / CHECKPOINT} is not a complete toy checkpoint of its config "
                           f"({type(e).__name__}: {e})") from None
        state = state.to(options.device)
        epoch = state.epoch
        rows = [dict(r) for r in payload["rows"] if int(r.get("epoch", 0)) <= epoch]
        frames = [dict(f) for f in payload["state"].get("frames", []) if int(f.get("epoch", 0)) <= epoch]
        print(resume_line(run_dir, epoch, cfg, payload["source"]))
        print(f"backend: {backend} ({why})", flush=True)
        run = cls(cfg, state, frames=frames, run_dir=run_dir, backend=backend, options=options,
                  source=payload["source"], rows=rows, elapsed=payload["elapsed"])
        run.checkpoint_epoch = epoch
        return run

    # --- the protocol's hooks -----------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.state.epoch

    def train_interval(self, progress: Progress) -> list:
        cfg, state = self.cfg, self.state
        trainer = train_fused if self.backend == "fused" else train_reference  # looked up now: tests patch them
        end = min(state.epoch - state.epoch % cfg.log_every + cfg.log_every, cfg.epochs)
        while state.epoch < end and not self.must_stop():  # engine calls of ~CALL_SECONDS each (CallSizer)
            n = self.sizer.next(end - state.epoch)
            t_call, before = time.perf_counter(), state.epoch
            metrics = trainer(cfg, state, n)
            self.sizer.done(n, time.perf_counter() - t_call)
            if state.epoch != before + n:
                raise RuntimeError(f"the {self.backend} trainer was asked for {n} epochs at "
                                   f"epoch {before} but the state is at epoch {state.epoch}")
            progress.to(state.epoch)
        metrics = metrics.detach().cpu().double()
        rows = []
        for k in range(state.population):
            row = {"member": k, "epoch": state.epoch}
            row.update({name: float(v) for name, v in zip(METRIC_NAMES, metrics[k].tolist())})
            rows.append(row)
        self.frames.append(self.framer(state))
        return rows

    def log_line(self, rows: list, seconds: float) -> str:
        finite = [r for r in rows if all(math.isfinite(float(r[k])) for k in METRIC_NAMES)]
        vals = {k: statistics.median(float(r[k]) for r in finite) if finite else math.nan for k in METRIC_NAMES}
        width = max(5, len(str(self.cfg.epochs)))
        t_mean, t_std = self.target_moments
        line = (f"epoch {self.epoch:>{width}}/{self.cfg.epochs}  D real {vals['d_loss_real']:.3f} "
                f"fake {vals['d_loss_fake']:.3f}  G {vals['g_loss']:.3f}  "
                f"mean {vals['fake_mean']:.2f} std {vals['fake_std']:.2f}  "
                f"(target {t_mean:.2f}, {t_std:.2f})")
        if len(rows) > 1:
            line += f"  [median of {len(finite)} members" + (f"; {len(rows) - len(finite)} diverged]"
                                                             if len(finite) < len(rows) else "]")
        return line

    def diverged(self) -> dict:
        return {k: int(e) for k, e in enumerate(self.state.diverged.tolist()) if e >= 0}

    def state_dict(self) -> dict:
        return {"gan": {k: v.detach().cpu().clone() for k, v in self.state.tensors().items()},
                "frames": list(self.frames)}

    def load_state_dict(self, state: dict) -> None:
        self.state.copy_(GanState(**state["gan"]))
        self.frames[:] = state["frames"]

    # --- the end ------------------------------------------------------------------------
    def final_samples(self) -> tuple:
        """(samples (FINAL_SAMPLES, dim) of the chosen member, drawn as trained, member,
        per-member W1 or None)."""
        cfg, state = self.cfg, self.state
        best, member_w1 = 0, None
        if state.population > 1:
            member_w1 = score_members(cfg, state, self.options.quiet)
            best = min(range(len(member_w1)), key=lambda k: member_w1[k])
        samples = generate(cfg, state, FINAL_SAMPLES, FINAL_NOISE_SHIFT, member=best)
        return samples.double().cpu().numpy(), best, member_w1

    def eval_mode_figures(self, member: int) -> dict:
        """W1, KS, mean and std of the member's G in eval mode (no dropout) on the same noise:
        the figure beside the summary's when G has dropout (a G trained with dropout 0.5 looks
        like a point mass without it)."""
        x = generate(self.cfg, self.state, FINAL_SAMPLES, FINAL_NOISE_SHIFT, member=member, dropout=False)
        d = report.distance_to_target(x.double().cpu().numpy(), target(self.cfg))
        return {k: d.get(k) for k in ("w1", "ks", "mean", "std")}

    def weights(self, member: int) -> dict:
        """weights.pt: the member's G and D as module state_dicts, and the whole population."""
        cfg, state = self.cfg, self.state
        seed = int(state.seeds[member])
        G = Generator.from_spec(cfg.g_spec, seed=seed, dtype=cfg.torch_dtype)
        D = Discriminator.from_spec(cfg.d_spec, seed=seed, dtype=cfg.torch_dtype)
        with torch.no_grad():
            G.params.copy_(state.g_params[member].cpu())
            D.params.copy_(state.d_params[member].cpu())
        return {"generator": G.state_dict(), "discriminator": D.state_dict(),
                "population": {k: v.cpu() for k, v in state.tensors().items()},
                "member": member, "config": cfg.to_dict()}

    def finish(self, interrupted: bool) -> dict:
        cfg, state = self.cfg, self.state
        samples, best, member_w1 = self.final_samples()
        extra = {
            "preset": self.source.get("preset"), "config": self.source.get("config"),
            "name": cfg.name, "backend": self.backend, "device": str(self.device), "dtype": cfg.dtype,
            "epochs": state.epoch, "target_epochs": cfg.epochs, "population": state.population,
            "seed": cfg.seed, "wall_time_s": self.elapsed,
            "epochs_per_s": (state.epoch / self.elapsed) if self.elapsed > 0 else None,
            "best_member": best, "interrupted": interrupted, "resumed": self.source.get("resumed", []),
            "sampling": sampling_note(cfg),
            "diverged": bool(self.diverged()), "on_nan": self.on_nan,
            "diverged_members": [{"member": k, "epoch": e} for k, e in sorted(self.diverged().items())],
        }
        note = None
        if best in self.diverged():
            note = f"diverged at epoch {self.diverged()[best]}: no finite samples"
        if cfg.g_spec.dropout > 0:
            extra["eval_mode"] = self.eval_mode_figures(best)
        if member_w1 is not None:
            extra["member_w1"], extra["member_w1_samples"] = member_w1, select_samples(cfg)
        kw = dict(rows=self.rows, final_samples=samples, target=target(cfg), extra_summary=extra)
        if self.run_dir is None:
            return report.summarize(**kw)
        payload = self.weights(best)  # first: the weights are what a Ctrl-C in the report must not cost
        atomic_write(self.run_dir / "weights.pt", lambda f: torch.save(payload, f), binary=True)
        summary = report.write_report(self.run_dir, frames=self.frames, plots=self.options.plots, note=note, **kw)

        who = f"member {best} (best W1 of {state.population})" if state.population > 1 else "member 0"
        rate = extra["epochs_per_s"]
        print(f"run folder: {self.run_dir}")
        print(f"trained {state.epoch}/{cfg.epochs} epochs in {self.elapsed:.2f} s"
              + (f" ({rate:,.0f} epochs/s)" if rate else "") + f", backend {self.backend}")
        print(f"final {who}, {len(samples):,} samples: mean {_fmt(summary.get('mean'))} "
              f"std {_fmt(summary.get('std'))}  (target {_fmt(summary.get('target_mean'))}, "
              f"{_fmt(summary.get('target_std'))})")
        line = f"W1 {_fmt(summary.get('w1'), '.4f')}  KS {_fmt(summary.get('ks'), '.4f')}"
        if "modes_covered" in summary:
            line += (f"  modes covered {summary['modes_covered']}/{summary['n_modes']}  "
                     f"high quality {_fmt(summary.get('high_quality'), '.3f')}")
        print(line, flush=True)
        if extra["diverged"]:
            who = ", ".join(f"member {d['member']} at epoch {d['epoch']}" for d in extra["diverged_members"])
            print(f"diverged: {who} (NaN or infinite parameters or losses; frozen from then on)", flush=True)
        if "eval_mode" in extra:
            ev = extra["eval_mode"]
            print(f"sampled as trained (G's dropout on); in eval mode: mean {_fmt(ev['mean'])} std {_fmt(ev['std'])}  "
                  f"W1 {_fmt(ev['w1'], '.4f')}  KS {_fmt(ev['ks'], '.4f')}", flush=True)
        return summary
