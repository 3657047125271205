"""`python -m ganfast.train`: train a toy GAN (or a population of them) from a preset or a
YAML config and write a run folder, the way the seed projects print and plot their runs.

    python -m ganfast.train                               # devnag preset, 5000 epochs
    python -m ganfast.train --list-presets
    python -m ganfast.train --preset ring8 --population 8 --out runs
    python -m ganfast.train --config my.yaml --backend torch --epochs 2000
    python -m ganfast.train --resume runs/devnag-20260101-120000 --epochs 8000
    python -m ganfast.train --preset digits-mlp       # image presets: ganfast.image_run

A run folder `<out>/<name>-<YYYYmmdd-HHMMSS>` gets, in this order: config.yaml (the resolved
config, written before training starts), checkpoint.pt (every 10 log intervals and at the
end), then metrics.csv, summary.json, distribution.png, moments.png (1-D), losses.png,
training.gif (ganfast.report.write_report) and weights.pt.

Training runs in chunks of `log_every` epochs (the fused engine, or ganfast.reference_train
with --backend torch; a chunk of a slow config is split into engine calls of about half a
second, which changes no result). After each chunk a line like devnag's is
printed, and a frame of the animation is taken: member 0's generator on a fixed batch of 2000
noise samples and, for 1-D raw-input discriminators, D on a grid over the target +-4 std.

Ctrl-C discards the log interval in flight (each interval is split into engine calls of about
half a second; the interrupt lands when the native call in progress returns), saves the checkpoint at the last logged epoch, writes the report for what exists and
exits with status 130. `--resume RUN_DIR` continues from that checkpoint; on the fused CPU path
the final state is bit-identical to a run that was never interrupted.

Exit status: 0 done, 2 bad arguments or config (one `error: ...` line, no traceback), 130
interrupted.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import re
import sys
import time
from pathlib import Path

import torch
import yaml

from ganfast import functional, report
from ganfast.config import (PRESET_DIR, ConfigError, TrainConfig, list_presets, load_config,
                            load_preset, preset_path)
from ganfast.engine import METRIC_NAMES, fused_unavailable_reason, train_fused
from ganfast.modules import Discriminator, Generator
from ganfast.random import derived_seed
from ganfast.reference_train import train_reference
from ganfast.state import GanState, init_state, load_state, save_state

PROG = "python -m ganfast.train"
DEFAULT_PRESET = "devnag"
DEFAULT_OUT = "runs"

FRAME_SAMPLES = 2000          # fixed noise batch of every animation frame
FRAME_GRID = 200              # points of D's curve in a frame (1-D raw-input D only)
FRAME_NOISE_SEED = 1_000_003  # frame noise: Philox seed cfg.seed + this, offset 0
FINAL_SAMPLES = 100_000       # samples the summary is about
FINAL_NOISE_SEED = 2_000_003  # final noise: Philox seed cfg.seed + this, offset 0
SELECT_SAMPLES = 20_000       # samples per member when picking the best of a population
CHECKPOINT_EVERY = 10         # log intervals between checkpoints
CALL_SECONDS = 0.5            # target duration of one engine call (Ctrl-C latency)

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


class CliError(Exception):
    """A bad argument or input: printed as `error: <message>`, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # raise instead of sys.exit, so main() can return 2
        raise CliError(f"{message} (see {PROG} --help)")


# --- arguments ----------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Train a GAN (a toy distribution or an image data set) from a preset or a "
                    "YAML config and write a run folder "
                    "(config.yaml, checkpoint.pt, metrics.csv, summary.json, plots, "
                    "training.gif, weights.pt).",
        epilog="Ctrl-C saves a checkpoint and exits with status 130; continue with --resume. "
               "Bad arguments or configs exit with status 2.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", metavar="NAME",
                     help=f"a shipped preset (default {DEFAULT_PRESET}; see --list-presets)")
    src.add_argument("--config", metavar="FILE", help="a YAML config file (keys: ganfast/config.py)")
    src.add_argument("--resume", metavar="RUN_DIR",
                     help="continue the run in RUN_DIR from its checkpoint.pt (--epochs extends it)")
    p.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    p.add_argument("--backend", choices=("auto", "fused", "torch"), default="auto",
                   help="fused C++ engine, plain PyTorch, or auto: fused where it can run (default)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--epochs", type=int, metavar="N", help="total epochs (overrides the config)")
    p.add_argument("--seed", type=int, metavar="S", help="seed (member k uses S + k)")
    p.add_argument("--population", type=int, metavar="P", help="train P GANs at once")
    p.add_argument("--dtype", metavar="{float32,float64}", help="parameter dtype")
    p.add_argument("--data", metavar="DIR",
                   help="folder of the image data set (mnist: IDX files, cifar10: python batches); "
                        "sets data.root")
    p.add_argument("--out", metavar="DIR", help=f"parent of the run folder (default {DEFAULT_OUT})")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots and training.gif")
    p.add_argument("--threads", type=int, metavar="N", help="torch.set_num_threads(N)")
    p.add_argument("--quiet", action="store_true",
                   help="no per-log lines or progress bar; keep the final summary")
    return p


def _preset_descriptions() -> list:
    """(name, first comment line of the preset file without its 'name:' prefix)."""
    out = []
    for name in list_presets():
        desc = ""
        with open(PRESET_DIR / f"{name}.yaml", encoding="utf-8") as f:
            for line in f:
                if line.strip().startswith("#"):
                    desc = line.strip().lstrip("#").strip()
                    break
        if desc.lower().startswith(name.lower() + ":"):
            desc = desc[len(name) + 1:].strip()
        out.append((name, desc))
    return out


def _check_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as e:
        raise CliError(f"--device: invalid device {name!r} ({e})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise CliError(f"--device {name}: CUDA is not available ({why}); use --device cpu")
    try:
        torch.zeros(1, device=device)
    except Exception as e:  # noqa: BLE001  (an unusable device of any kind)
        raise CliError(f"--device {name}: cannot use this device ({type(e).__name__}: {e})") from None
    return device


def _resolve_backend(requested: str, cfg: TrainConfig, device) -> tuple:
    """(backend, why) for --backend; 'fused' that cannot run here is an error."""
    if requested == "torch":
        return "torch", "requested with --backend torch"
    reason = fused_unavailable_reason(cfg, device)
    if requested == "fused":
        if reason is not None:
            raise CliError(f"--backend fused cannot run here: {reason}")
        return "fused", "requested with --backend fused"
    if reason is None:
        return "fused", f"auto: the fused engine can run this config on {torch.device(device).type}"
    return "torch", f"auto: the fused engine cannot run here ({reason})"


def _train_fn(backend: str):
    # Looked up at call time, so tests can monkeypatch ganfast.train.train_fused / train_reference.
    return train_fused if backend == "fused" else train_reference


# --- targets and sampling ------------------------------------------------------------------

def _target(cfg: TrainConfig) -> dict:
    """The real distribution in ganfast.report's form."""
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


def _noise(cfg: TrainConfig, n: int, seed_shift: int, device) -> torch.Tensor:
    """n noise vectors (n, noise.dim) from the Philox stream cfg.seed + seed_shift, offset 0."""
    return functional.noise(cfg.noise, n, derived_seed(cfg.seed, seed_shift), dtype=cfg.torch_dtype,
                            device=device)


@torch.no_grad()
def _generate(cfg: TrainConfig, state: GanState, k: int, noise: torch.Tensor) -> torch.Tensor:
    """Member k's generator in eval mode (no dropout) on `noise`, as (n, data.dim)."""
    return functional.mlp(noise, state.g_params[k], cfg.g_spec, train=False, backend="auto")


def _as_list(x: torch.Tensor) -> list:
    x = x.detach().cpu()
    return (x.reshape(-1) if x.dim() == 2 and x.shape[1] == 1 else x).tolist()


class _Framer:
    """Takes the animation frames: member 0 on a fixed noise batch, and D on a grid."""

    def __init__(self, cfg: TrainConfig, device):
        self.cfg = cfg
        self.noise = _noise(cfg, FRAME_SAMPLES, FRAME_NOISE_SEED, device)
        self.grid = None
        if cfg.data.dim == 1 and cfg.discriminator.input == "raw":
            centers, std, _ = cfg.data.components()
            lo = min(c[0] - 4 * std[0] for c in centers)
            hi = max(c[0] + 4 * std[0] for c in centers)
            self.grid = torch.linspace(lo, hi, FRAME_GRID, dtype=cfg.torch_dtype, device=device).view(-1, 1)

    @torch.no_grad()
    def __call__(self, state: GanState) -> dict:
        frame = {"epoch": state.epoch, "samples": _as_list(_generate(self.cfg, state, 0, self.noise)),
                 "grid": None, "d_grid": None}
        if self.grid is not None:
            d = functional.mlp(self.grid, state.d_params[0], self.cfg.d_spec, train=False, backend="auto")
            frame["grid"], frame["d_grid"] = _as_list(self.grid), _as_list(d)
        return frame


# --- output --------------------------------------------------------------------------------

def _fmt(x, spec=".2f") -> str:
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_fmt(v, spec) for v in x) + "]"
    if x is None:
        return "nan"
    return format(float(x), spec)


class _Progress:
    """A `\\r`-updated bar on stderr with epochs/s and ETA, only when stderr is a terminal."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and _isatty(sys.stderr)
        self.shown = False

    def update(self, epoch: int, total: int, start_epoch: int, seconds: float):
        if not self.enabled:
            return
        done = epoch - start_epoch
        rate = done / seconds if seconds > 0 else 0.0
        eta = (total - epoch) / rate if rate > 0 else float("nan")
        width = 30
        filled = int(width * epoch / max(total, 1))
        bar = "#" * filled + "." * (width - filled)
        eta_s = "?" if math.isnan(eta) else f"{eta:.0f}s" if eta < 120 else f"{eta / 60:.1f}min"
        sys.stderr.write(f"\r[{bar}] {epoch}/{total}  {rate:,.0f} epochs/s  ETA {eta_s} \x1b[K")
        sys.stderr.flush()
        self.shown = True

    def clear(self):
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _log_line(cfg: TrainConfig, rows: list, epoch: int, target: tuple) -> str:
    import statistics

    latest = [r for r in rows if r["epoch"] == epoch]
    vals = {k: statistics.median(float(r[k]) for r in latest) for k in METRIC_NAMES}
    width = max(5, len(str(cfg.epochs)))
    line = (f"epoch {epoch:>{width}}/{cfg.epochs}  D real {vals['d_loss_real']:.3f} "
            f"fake {vals['d_loss_fake']:.3f}  G {vals['g_loss']:.3f}  "
            f"mean {vals['fake_mean']:.2f} std {vals['fake_std']:.2f}  "
            f"(target {target[0]:.2f}, {target[1]:.2f})")
    if len(latest) > 1:
        line += f"  [median of {len(latest)} members]"
    return line


def _write_config(run_dir: Path, cfg: TrainConfig) -> None:
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    tmp = run_dir / "config.yaml.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, run_dir / "config.yaml")


def _new_run_dir(out: Path, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "run"
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"{safe}-{stamp}"
    for i in range(1, 10_000):
        path = base if i == 1 else Path(f"{base}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise CliError(f"cannot find a free run folder name like {base}")


# --- the run -------------------------------------------------------------------------------

class _Run:
    """Everything a run carries from setup through training to the report."""

    def __init__(self, *, cfg, state, run_dir, rows, frames, elapsed, backend, device, source,
                 args):
        self.cfg, self.state, self.run_dir = cfg, state, run_dir
        self.rows, self.frames, self.elapsed = rows, frames, elapsed
        self.backend, self.device, self.source, self.args = backend, device, source, args

    @property
    def epoch(self) -> int:
        return self.state.epoch

    def checkpoint(self):
        save_state(self.run_dir / "checkpoint.pt", self.state, self.cfg,
                   extra={"rows": self.rows, "frames": self.frames, "elapsed": self.elapsed,
                          "source": self.source})

    def train(self) -> bool:
        return _train(self)

    def finish(self, interrupted: bool) -> dict:
        return _finish(self, interrupted)


class _CallSizer:
    """Epochs per engine call: a log interval is split into calls of about CALL_SECONDS, so
    Ctrl-C (which lands only when a native call returns) and the progress bar stay responsive
    on slow configs. The first call is one epoch; each next one at most 4x the last. Splitting
    does not change the result (the engine continues from the state alone). Only the fused
    engine is split: Ctrl-C interrupts the PyTorch reference at once, and each of its calls
    rebuilds modules and optimizers (and replays LR schedules), so it gets whole intervals."""

    def __init__(self, split: bool = True):
        self.split, self.budget = split, 1

    def next(self, remaining: int) -> int:
        return max(1, min(remaining, self.budget)) if self.split else remaining

    def done(self, epochs: int, seconds: float):
        rate = epochs / max(seconds, 1e-9)
        self.budget = max(1, min(int(rate * CALL_SECONDS), 4 * epochs))


def _train(run: _Run) -> bool:
    """Train up to cfg.epochs in chunks of log_every; True when interrupted (Ctrl-C)."""
    cfg, state, args = run.cfg, run.state, run.args
    train_fn = _train_fn(run.backend)
    framer = _Framer(cfg, run.device)
    target = _pooled_moments(cfg)
    progress = _Progress(not args.quiet)
    start_epoch, start_elapsed = state.epoch, run.elapsed
    good = (state.clone(), len(run.rows), len(run.frames), run.elapsed)
    chunks = 0
    sizer = _CallSizer(split=run.backend == "fused")
    t0 = time.perf_counter()
    try:
        while state.epoch < cfg.epochs:
            epoch = state.epoch
            end = min(epoch - epoch % cfg.log_every + cfg.log_every, cfg.epochs)
            while state.epoch < end:  # engine calls of ~CALL_SECONDS each (see _CallSizer)
                n = sizer.next(end - state.epoch)
                t_call, before = time.perf_counter(), state.epoch
                metrics = train_fn(cfg, state, n)
                sizer.done(n, time.perf_counter() - t_call)
                if state.epoch != before + n:
                    raise RuntimeError(f"the {run.backend} trainer was asked for {n} epochs at "
                                       f"epoch {before} but the state is at epoch {state.epoch}")
                if state.epoch < end:
                    progress.update(state.epoch, cfg.epochs, start_epoch, time.perf_counter() - t0)
            metrics = metrics.detach().cpu().double()
            epoch = state.epoch
            for k in range(state.population):
                row = {"member": k, "epoch": epoch}
                row.update({name: float(v) for name, v in zip(METRIC_NAMES, metrics[k].tolist())})
                run.rows.append(row)
            run.frames.append(framer(state))
            seconds = time.perf_counter() - t0
            run.elapsed = start_elapsed + seconds
            if not args.quiet:
                progress.clear()
                print(_log_line(cfg, run.rows, epoch, target), flush=True)
            progress.update(epoch, cfg.epochs, start_epoch, seconds)
            chunks += 1
            if chunks % CHECKPOINT_EVERY == 0 and epoch < cfg.epochs:
                run.checkpoint()
            good = (state.clone(), len(run.rows), len(run.frames), run.elapsed)
    except KeyboardInterrupt:
        # Back to the last logged epoch: a chunk cut short (or logged halfway) is discarded,
        # so the checkpoint is consistent and a resume replays exactly what was lost.
        snap, n_rows, n_frames, run.elapsed = good
        for name, tensor in state.tensors().items():
            tensor.copy_(getattr(snap, name))
        del run.rows[n_rows:], run.frames[n_frames:]
        progress.clear()
        return True
    progress.clear()
    return False


def _final_samples(run: _Run) -> tuple:
    """(samples (FINAL_SAMPLES, dim) of the chosen member, member, per-member W1 or None)."""
    cfg, state = run.cfg, run.state
    noise = _noise(cfg, FINAL_SAMPLES, FINAL_NOISE_SEED, run.device)
    best, member_w1 = 0, None
    if state.population > 1:
        target = _target(cfg)
        member_w1 = []
        for k in range(state.population):
            x = _generate(cfg, state, k, noise[:SELECT_SAMPLES]).double().cpu().numpy()
            w1 = report.distance_to_target(x, target)["w1"]
            w1 = sum(w1) / len(w1) if isinstance(w1, list) else w1
            member_w1.append(w1 if w1 is not None and math.isfinite(w1) else math.inf)
        best = min(range(len(member_w1)), key=lambda k: member_w1[k])
    samples = _generate(cfg, state, best, noise).double().cpu().numpy()
    return samples, best, member_w1


def _save_weights(run: _Run, member: int) -> Path:
    cfg, state = run.cfg, run.state
    seed = int(state.seeds[member])
    G = Generator.from_spec(cfg.g_spec, seed=seed, dtype=cfg.torch_dtype)
    D = Discriminator.from_spec(cfg.d_spec, seed=seed, dtype=cfg.torch_dtype)
    with torch.no_grad():
        G.params.copy_(state.g_params[member].cpu())
        D.params.copy_(state.d_params[member].cpu())
    payload = {"generator": G.state_dict(), "discriminator": D.state_dict(),
               "population": {k: v.cpu() for k, v in state.tensors().items()},
               "member": member, "config": cfg.to_dict()}
    path = run.run_dir / "weights.pt"
    tmp = run.run_dir / "weights.pt.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def _finish(run: _Run, interrupted: bool) -> dict:
    """Final samples, report, weights; prints the summary. Returns the summary."""
    cfg, state, args = run.cfg, run.state, run.args
    samples, best, member_w1 = _final_samples(run)
    extra = {
        "preset": run.source.get("preset"), "config": run.source.get("config"),
        "name": cfg.name, "backend": run.backend, "device": str(run.device), "dtype": cfg.dtype,
        "epochs": state.epoch, "target_epochs": cfg.epochs, "population": state.population,
        "seed": cfg.seed, "wall_time_s": run.elapsed,
        "epochs_per_s": (state.epoch / run.elapsed) if run.elapsed > 0 else None,
        "best_member": best, "interrupted": interrupted,
    }
    if member_w1 is not None:
        extra["member_w1"] = member_w1
    summary = report.write_report(run.run_dir, rows=run.rows, final_samples=samples,
                                  target=_target(cfg), frames=run.frames,
                                  plots=not args.no_plots, extra_summary=extra)
    _save_weights(run, best)

    who = f"member {best} (best W1 of {state.population})" if state.population > 1 else "member 0"
    rate = extra["epochs_per_s"]
    print(f"run folder: {run.run_dir}")
    print(f"trained {state.epoch}/{cfg.epochs} epochs in {run.elapsed:.2f} s"
          + (f" ({rate:,.0f} epochs/s)" if rate else "") + f", backend {run.backend}")
    print(f"final {who}, {len(samples):,} samples: mean {_fmt(summary.get('mean'))} "
          f"std {_fmt(summary.get('std'))}  (target {_fmt(summary.get('target_mean'))}, "
          f"{_fmt(summary.get('target_std'))})")
    line = f"W1 {_fmt(summary.get('w1'), '.4f')}  KS {_fmt(summary.get('ks'), '.4f')}"
    if "modes_covered" in summary:
        line += (f"  modes covered {summary['modes_covered']}/{summary['n_modes']}  "
                 f"high quality {_fmt(summary.get('high_quality'), '.3f')}")
    print(line, flush=True)
    return summary


# --- entry point ---------------------------------------------------------------------------

def resume_config(args, cfg: TrainConfig, epoch: int, run_dir: Path) -> TrainConfig:
    """The config a resumed run continues with: --epochs extends it (and config.yaml says so);
    a checkpoint already past the target is an error."""
    if args.epochs is not None:
        if args.epochs < epoch:
            raise CliError(f"--epochs {args.epochs}: the checkpoint in {run_dir} is already at epoch {epoch}")
        cfg = cfg.replace(epochs=args.epochs)
        _write_config(run_dir, cfg)
    elif epoch > cfg.epochs:
        raise CliError(f"the checkpoint is at epoch {epoch}, past its config's epochs {cfg.epochs}; pass --epochs")
    return cfg


def _setup(args) -> _Run:
    """Config, state and run folder from the arguments (raises CliError / ConfigError)."""
    if args.threads is not None:
        if args.threads < 1:
            raise CliError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = _check_device(args.device)

    if args.resume:
        for flag in ("seed", "population", "dtype", "out"):
            if getattr(args, flag) is not None:
                raise CliError(f"--{flag} cannot be used with --resume (the run's config and "
                               "folder come from its checkpoint; only --epochs extends it)")
        run_dir = Path(args.resume)
        ckpt = run_dir / "checkpoint.pt"
        if not run_dir.is_dir():
            raise CliError(f"--resume: no run folder {run_dir}")
        from ganfast import image_run

        if image_run.is_image_checkpoint(run_dir):
            return image_run.setup_resume(args, run_dir, device)
        if args.data is not None:
            raise CliError("--data is for image runs; this run trains a toy distribution")
        if not ckpt.is_file():
            raise CliError(f"--resume: no checkpoint.pt in {run_dir} (nothing to resume)")
        try:
            state, cfg_dict, extra = load_state(ckpt, device=device)
        except (ValueError, RuntimeError, KeyError, TypeError) as e:
            raise CliError(f"--resume: {e}") from None
        cfg = resume_config(args, load_config(cfg_dict), state.epoch, run_dir)
        rows = [dict(r) for r in extra.get("rows", []) if int(r.get("epoch", 0)) <= state.epoch]
        frames = [dict(f) for f in extra.get("frames", []) if int(f.get("epoch", 0)) <= state.epoch]
        source = dict(extra.get("source") or {})
        elapsed = float(extra.get("elapsed", 0.0))
        backend, why = _resolve_backend(args.backend, cfg, device)
        print(f"resuming {run_dir} at epoch {state.epoch} of {cfg.epochs}")
    else:
        if args.config is not None:
            cfg, source = load_config(args.config), {"preset": None, "config": str(args.config)}
        else:
            name = args.preset or DEFAULT_PRESET
            preset_path(name)  # "unknown preset ..." naming the choices
            cfg, source = load_preset(name), {"preset": name, "config": None}
        overrides = {k: getattr(args, k) for k in ("epochs", "seed", "population", "dtype")
                     if getattr(args, k) is not None}
        if overrides:
            cfg = cfg.replace(overrides)
        if args.data is not None:
            if cfg.data.kind not in ("mnist", "cifar10"):
                raise CliError(f"--data is for the mnist and cifar10 data sets; data.kind "
                               f"{cfg.data.kind!r} needs no files")
            cfg = cfg.replace({"data.root": args.data})
        if cfg.is_image:
            from ganfast import image_run

            return image_run.setup_new(args, cfg, source, device)
        backend, why = _resolve_backend(args.backend, cfg, device)
        state = init_state(cfg, device=device)
        try:
            run_dir = _new_run_dir(Path(args.out or DEFAULT_OUT), cfg.name)
        except OSError as e:
            raise CliError(f"cannot create the run folder under {args.out or DEFAULT_OUT}: {e}") from None
        _write_config(run_dir, cfg)  # first, before anything can go wrong in training
        rows, frames, elapsed = [], [], 0.0
        what = f"preset {source['preset']}" if source["preset"] else f"config {source['config']}"
        print(f"{cfg.name} ({what}): {cfg.epochs} epochs, population {cfg.population}, "
              f"{cfg.dtype}, {device} -> {run_dir}")
    print(f"backend: {backend} ({why})", flush=True)
    return _Run(cfg=cfg, state=state, run_dir=run_dir, rows=rows, frames=frames, elapsed=elapsed,
                backend=backend, device=device, source=source, args=args)


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (0 done, 2 bad input, 130 interrupted)."""
    threads_before = torch.get_num_threads()
    try:
        parser = _parser()
        try:
            try:
                args = parser.parse_args(argv)
            except SystemExit as e:  # --help
                return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
            if args.list_presets:
                descs = _preset_descriptions()
                width = max(len(n) for n, _ in descs)
                for name, desc in descs:
                    print(f"{name:<{width}}  {desc}")
                return EXIT_OK
            run = _setup(args)
        except (CliError, ConfigError, ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE

        interrupted = run.train()
        if interrupted:
            try:
                run.checkpoint()
                print(f"Ctrl-C: checkpoint saved at epoch {run.epoch}; writing the report",
                      flush=True)
                run.finish(interrupted=True)
            except KeyboardInterrupt:
                pass  # a second Ctrl-C: the checkpoint is what matters
            print(f"interrupted at epoch {run.epoch}; resume with: {PROG} --resume "
                  f"{run.run_dir}", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
        run.checkpoint()
        run.finish(interrupted=False)
        return EXIT_OK
    finally:
        torch.set_num_threads(threads_before)


if __name__ == "__main__":
    sys.exit(main())
