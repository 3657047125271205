"""The run protocol that toy and image runs share: the run folder, config.yaml, the checkpoint
(one writer, one versioned format), the progress bar, Ctrl-C, and the order of it all.

    run = ToyRun.new(cfg, options, source)   # or ImageRun.new / <kind>Run.resume(payload, ...)
    exit_code = execute(run)

A run folder `<out>/<name>-<YYYYmmdd-HHMMSS>` gets config.yaml first (before anything can go
wrong in training), checkpoint.pt (every `checkpoint_every` log intervals and at the end), then
the kind's report and weights.pt. A run without a folder (ganfast.train() without `out`) writes
nothing and keeps its results in memory.

A subclass implements the hooks: `epoch`, `total`, `train_interval`, `log_line`,
`state_dict` / `load_state_dict` (what a checkpoint holds: copies, so that a snapshot survives
more training) and `finish` (report, weights, summary). The driver (`Run.train`) keeps the last
logged snapshot; Ctrl-C goes back to it, so a checkpoint is always at a logged epoch and a
resume replays exactly what was lost.

Checkpoint format (torch.save, read with weights_only=True):

    {"format": "ganfast", "version": 2, "kind": "toy" | "image", "config": TrainConfig.to_dict(),
     "source": {"preset", "config", ...}, "elapsed": seconds, "rows": [metrics rows],
     "state": the kind's state_dict}
"""
from __future__ import annotations

import datetime as _dt
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from ganfast import functional
from ganfast.app.config import TrainConfig
from ganfast.app.files import atomic_write
from ganfast.random import derived_seed

PROG = "python -m ganfast.train"
DEFAULT_OUT = "runs"
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "ganfast"
CHECKPOINT_VERSION = 2
EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


class RunError(Exception):
    """A run cannot start or go on (a bad argument, config, data folder or checkpoint): the CLI
    prints `error: <message>` and exits with status 2."""


@dataclass
class Options:
    """How to run, beside the config: what the CLI's flags (or ganfast.train's arguments) say."""

    backend: str = "auto"
    device: torch.device = torch.device("cpu")
    out: str | None = None    # parent of the run folder; None: no folder (nothing written)
    plots: bool = True
    quiet: bool = False       # no per-log lines or progress bar; the final summary stays


# --- the run folder --------------------------------------------------------------------------

def new_run_dir(out, name: str) -> Path:
    """A fresh folder `<out>/<name>-<timestamp>[-i]`."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "run"
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        base = out / f"{safe}-{stamp}"
        for i in range(1, 10_000):
            path = base if i == 1 else Path(f"{base}-{i}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as e:
        raise RunError(f"cannot create the run folder under {out}: {e}") from None
    raise RunError(f"cannot find a free run folder name like {base}")


def write_config(run_dir: Path, cfg: TrainConfig) -> None:
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    atomic_write(Path(run_dir) / "config.yaml", lambda f: f.write(text))


def resume_config(cfg: TrainConfig, epoch: int, epochs: int | None, run_dir: Path) -> TrainConfig:
    """The config a resumed run continues with: `epochs` (--epochs) extends it, and config.yaml
    says so; a checkpoint already past the target is an error."""
    if epochs is not None:
        if epochs < epoch:
            raise RunError(f"--epochs {epochs}: the checkpoint in {run_dir} is already at epoch {epoch}")
        cfg = cfg.replace(epochs=epochs)
        write_config(run_dir, cfg)
    elif epoch > cfg.epochs:
        raise RunError(f"the checkpoint is at epoch {epoch}, past its config's epochs {cfg.epochs}; pass --epochs")
    return cfg


def fixed_noise(cfg: TrainConfig, n: int, seed_shift: int, device=None) -> torch.Tensor:
    """n noise vectors (n, noise.dim) from the Philox stream derived_seed(cfg.seed, seed_shift),
    offset 0: a batch that stays the same over a run (ganfast.random's *_SHIFT streams)."""
    return functional.noise(cfg.noise, n, derived_seed(cfg.seed, seed_shift), dtype=cfg.torch_dtype,
                            device=device)


# --- checkpoints -------------------------------------------------------------------------------

def write_checkpoint(path, *, kind: str, cfg: TrainConfig, source: dict, elapsed: float, rows: list,
                     state: dict) -> None:
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": kind, "config": cfg.to_dict(),
               "source": source, "elapsed": elapsed, "rows": rows, "state": state}
    atomic_write(path, lambda f: torch.save(payload, f), binary=True)


def read_checkpoint(path) -> dict:
    """The payload of a checkpoint (tensors on the CPU, no code run: weights_only). RunError
    with one line when it is missing, truncated, foreign or of an older format."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"no {path.name} in {path.parent} (nothing to resume)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (truncated or foreign file)
        raise RunError(f"{path} is not a ganfast checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict):
        raise RunError(f"{path} is not a ganfast checkpoint")
    if payload.get("format") != CHECKPOINT_FORMAT:
        if payload.get("version") == 1 or "trainer" in payload:
            raise RunError(f"{path} is a checkpoint of an older ganfast (format 1); this version reads format "
                           f"{CHECKPOINT_VERSION}: finish that run with the ganfast that started it, or start anew")
        raise RunError(f"{path} is not a ganfast checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise RunError(f"{path} is a ganfast checkpoint of format {payload.get('version')}; this version reads "
                       f"format {CHECKPOINT_VERSION}")
    missing = [k for k in ("kind", "config", "source", "elapsed", "rows", "state") if k not in payload]
    if missing or payload["kind"] not in ("toy", "image"):
        raise RunError(f"{path} is not a complete ganfast checkpoint (missing {', '.join(missing) or 'kind'})")
    return payload


# --- progress ------------------------------------------------------------------------------

class Progress:
    """tqdm's bar on stderr (rate, ETA), only when stderr is a terminal and the run is not quiet;
    the per-interval log lines go to stdout around it."""

    def __init__(self, total: int, initial: int, unit: str, quiet: bool):
        self.bar = tqdm(total=total, initial=initial, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                        disable=True if quiet else None, smoothing=0.1)

    def to(self, n: int) -> None:
        if not self.bar.disable and n > self.bar.n:
            self.bar.update(n - self.bar.n)

    def write(self, line: str) -> None:
        if self.bar.disable:
            print(line, flush=True)
        else:
            tqdm.write(line, file=sys.stdout)
            sys.stdout.flush()

    def close(self) -> None:
        self.bar.close()


# --- the protocol ----------------------------------------------------------------------------

class Run:
    """A run of one config: its folder (or none), rows of metrics and wall time so far."""

    kind = ""                 # "toy" | "image": the checkpoint's kind
    unit = "epoch"            # what the progress bar counts
    checkpoint_every = 1      # log intervals between checkpoints

    def __init__(self, cfg: TrainConfig, *, run_dir: Path | None, backend: str, options: Options, source: dict,
                 rows=None, elapsed: float = 0.0):
        self.cfg, self.run_dir, self.backend, self.options = cfg, run_dir, backend, options
        self.device = options.device
        self.source = dict(source)
        self.rows = list(rows or [])
        self.elapsed = float(elapsed)

    # --- hooks ------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        raise NotImplementedError

    @property
    def position(self) -> tuple:
        """(done, total) in progress units."""
        return self.epoch, self.cfg.epochs

    def train_interval(self, progress: Progress) -> list:
        """Train to the next log point; returns the new metrics rows."""
        raise NotImplementedError

    def log_line(self, rows: list, seconds: float) -> str:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Copies of what the run needs to go on (the checkpoint's "state")."""
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def finish(self, interrupted: bool) -> dict:
        """Report and weights (into the folder, if any); prints the summary and returns it."""
        raise NotImplementedError

    # --- protocol -----------------------------------------------------------------------
    def snapshot(self) -> tuple:
        return self.state_dict(), list(self.rows), self.elapsed

    def restore(self, snap: tuple) -> None:
        state, rows, self.elapsed = snap
        self.load_state_dict(state)
        self.rows[:] = rows

    def checkpoint(self, snap: tuple | None = None) -> None:
        if self.run_dir is None:
            return
        state, rows, elapsed = snap or self.snapshot()
        write_checkpoint(self.run_dir / CHECKPOINT, kind=self.kind, cfg=self.cfg, source=self.source,
                         elapsed=elapsed, rows=rows, state=state)

    def train(self) -> bool:
        """Train to cfg.epochs, a log interval at a time; True when interrupted (Ctrl-C), the
        run then back at its last logged interval."""
        done, total = self.position
        progress = Progress(total, done, self.unit, self.options.quiet)
        start_elapsed, intervals = self.elapsed, 0
        good = self.snapshot()
        t0 = time.perf_counter()
        try:
            while self.epoch < self.cfg.epochs:
                t_interval = time.perf_counter()
                rows = self.train_interval(progress)
                self.rows.extend(rows)
                self.elapsed = start_elapsed + time.perf_counter() - t0
                if not self.options.quiet:
                    progress.write(self.log_line(rows, time.perf_counter() - t_interval))
                progress.to(self.position[0])
                intervals += 1
                good = self.snapshot()
                if intervals % self.checkpoint_every == 0 and self.epoch < self.cfg.epochs:
                    self.checkpoint(good)
        except KeyboardInterrupt:
            self.restore(good)
            return True
        finally:
            progress.close()
        return False


def execute(run: Run) -> int:
    """Train, checkpoint, report; the exit status (0 done, 130 interrupted)."""
    if run.train():
        try:
            run.checkpoint()
            print(f"Ctrl-C: checkpoint saved at epoch {run.epoch}; writing the report", flush=True)
            run.finish(interrupted=True)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: the checkpoint is what matters
        print(f"interrupted at epoch {run.epoch}; resume with: {PROG} --resume {run.run_dir}", file=sys.stderr,
              flush=True)
        return EXIT_INTERRUPTED
    run.checkpoint()
    run.finish(interrupted=False)
    return EXIT_OK
