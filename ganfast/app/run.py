"""The run protocol that toy and image runs share: the run folder, config.yaml, the checkpoint
(one writer, one versioned format), the progress bar, Ctrl-C, and the order of it all.

    run = ToyRun.new(cfg, options, source)   # or ImageRun.new / <kind>Run.resume(payload, ...)
    exit_code = execute(run)

A run folder `<out>/<name>-<YYYYmmdd-HHMMSS>` gets config.yaml and checkpoint.pt of the start
(epoch 0) when it is made (`Run.create_folder`: a folder that cannot get both is removed again,
so every run folder can be resumed), then checkpoint.pt again every `checkpoint_every` log
intervals, at the end of any log interval that ends `CHECKPOINT_SECONDS` (60 s) or more after the
last checkpoint, and at the end; then weights.pt and the kind's report. A checkpoint that cannot
be written (a full disk) stops the run with one line; the previous checkpoint stays intact. A run
without a folder (ganfast.train() without `out`) writes nothing and keeps its results in memory.

Ctrl-C during training goes back to the last logged interval, checkpoints it, writes the report
and exits 130. Once training is done, the final checkpoint, weights.pt and the report are
shielded from Ctrl-C: the first press only says so (the writing goes on, exit status 0), a
second one aborts the report (exit 130; checkpoint.pt is saved, so `--resume RUN_DIR` writes the
report again).

A subclass implements the hooks: `epoch`, `total`, `train_interval`, `log_line`,
`state_dict` / `load_state_dict` (what a checkpoint holds: copies, so that a snapshot survives
more training) and `finish` (report, weights, summary). The driver (`Run.train`) keeps the last
logged snapshot; Ctrl-C goes back to it, so a checkpoint is always at a logged epoch and a
resume replays exactly what was lost.

Checkpoint format (torch.save, read with weights_only=True):

    {"format": "ganfast", "version": 2, "kind": "toy" | "image" | "sweep", "config": TrainConfig.to_dict(),
     "source": {"preset", "config", ...}, "elapsed": seconds, "rows": [metrics rows],
     "state": the kind's state_dict}
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from ganfast import functional
from ganfast.app import report
from ganfast.app.config import ConfigError, TrainConfig, load_config
from ganfast.app.files import atomic_write
from ganfast.random import derived_seed

PROG = "python -m ganfast.train"
DEFAULT_OUT = "runs"
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "ganfast"
CHECKPOINT_VERSION = 2
CHECKPOINT_SECONDS = 60.0     # a log interval that ends this long after the last checkpoint writes one
EXIT_OK, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 2, 3, 130
ON_NAN = ("stop", "continue")


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
    on_nan: str | None = None  # a member diverged: "stop" the run, or "continue" with the others
                               # (None: stop for a population of 1, continue for more)


# --- the run folder --------------------------------------------------------------------------

def new_run_dir(out, name: str) -> Path:
    """A fresh folder `<out>/<name>-<timestamp>[-i]`."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "run"
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"cannot create the run folder under {out}: it is a file, not a folder")
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
        where = f" ({e.filename})" if e.filename and Path(e.filename) != out else ""
        raise RunError(f"cannot create the run folder under {out}: {_os_message(e)}{where}") from None
    raise RunError(f"cannot find a free run folder name like {base}")


def write_config(run_dir: Path, cfg: TrainConfig) -> None:
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    atomic_write(Path(run_dir) / "config.yaml", lambda f: f.write(text))


#: What a resumed run may change, in its config.yaml or with --epochs / --data: how long it
#: trains, how often it logs, its label and where its image files are, never what it computes.
#: Any other edit is refused (the checkpoint was trained with the old values).
RESUMABLE_KEYS = ("epochs", "log_every", "name", "data.root")


def _flat(d: dict, prefix: str = "") -> dict:
    """{dotted key: value} of a nested config dict (lists are values)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _show(v) -> str:
    return "(absent)" if v is _ABSENT else v if isinstance(v, str) else yaml.safe_dump(
        v, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


_ABSENT = object()


def config_changes(old: TrainConfig, new: TrainConfig) -> dict:
    """{dotted key: (old value, new value)} for every key whose value differs."""
    a, b = _flat(old.to_dict()), _flat(new.to_dict())
    return {k: (a.get(k, _ABSENT), b.get(k, _ABSENT)) for k in list(a) + [k for k in b if k not in a]
            if a.get(k, _ABSENT) != b.get(k, _ABSENT)}


def resume_config(trained: TrainConfig, run_dir: Path, epoch: int, overrides: dict | None = None) -> tuple:
    """(config, changes, rewrite) of a resumed run: the checkpoint's config (`trained`, at `epoch`)
    with the edits of run_dir/config.yaml and then `overrides` (--epochs, --data) to
    RESUMABLE_KEYS; `changes` is {key: [old, new]}. An edit to any other key is a RunError listing
    every such key (`key: old -> new`, one per line). `rewrite`: config.yaml is missing or the
    overrides changed it, so the caller writes it (write_config) once the run could be set up,
    and it always says what the run continues with."""
    path = Path(run_dir) / "config.yaml"
    missing = not path.is_file()
    try:
        edited = trained if missing else load_config(path)
    except ConfigError as e:
        raise RunError(f"--resume: {e}") from None
    refused = {k: v for k, v in config_changes(trained, edited).items() if k not in RESUMABLE_KEYS}
    if refused:
        lines = "".join(f"\n  {k}: {_show(old)} -> {_show(new)}" for k, (old, new) in refused.items())
        raise RunError(f"--resume: {path} changes what the checkpoint was trained with; undo "
                       f"{'this edit' if len(refused) == 1 else 'these edits'} (or start a new run; "
                       f"only {', '.join(RESUMABLE_KEYS)} may change):{lines}")
    cfg = edited.replace(overrides) if overrides else edited
    if overrides and "epochs" in overrides and cfg.epochs < epoch:
        raise RunError(f"--epochs {cfg.epochs}: the checkpoint in {run_dir} is already at epoch {epoch}")
    if epoch > cfg.epochs:
        raise RunError(f"the checkpoint is at epoch {epoch}, past the epochs {cfg.epochs} of {path}; pass --epochs")
    plain = lambda v: None if v is _ABSENT else v  # noqa: E731
    changes = {k: [plain(old), plain(new)] for k, (old, new) in config_changes(trained, cfg).items()}
    return cfg, changes, missing or cfg != edited


def write_resumed_config(run_dir: Path, cfg: TrainConfig) -> None:
    """config.yaml of a resumed run (resume_config said `rewrite`), written once the run could be
    set up, so that a failed resume changes nothing."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        print(f"{path} was missing: written again from the checkpoint's config")
    try:
        write_config(run_dir, cfg)
    except OSError as e:
        raise RunError(f"cannot write {path}: {e.strerror or e}") from None


def resume_line(run_dir: Path, epoch: int, cfg: TrainConfig, source: dict) -> str:
    """'resuming RUN at epoch E of N' and the changes resume_config allowed, if any."""
    resumed = source.get("resumed") or [{}]
    changes = resumed[-1].get("changes") or {}
    said = "; ".join(f"{k}: {_show(old)} -> {_show(new)}" for k, (old, new) in changes.items())
    return f"resuming {run_dir} at epoch {epoch} of {cfg.epochs}" + (f" (changed: {said})" if said else "")


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


def read_checkpoint(path, kinds=("toy", "image")) -> dict:
    """The payload of a checkpoint (tensors on the CPU, no code run: weights_only). RunError
    with one line when it is missing, truncated, foreign, of an older format or of a kind not in
    `kinds` (a sweep's checkpoint is kind "sweep": python -m ganfast.sweep resumes it)."""
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
    if missing or payload["kind"] not in ("toy", "image", "sweep"):
        raise RunError(f"{path} is not a complete ganfast checkpoint (missing {', '.join(missing) or 'kind'})")
    if payload["kind"] not in kinds:
        how = "python -m ganfast.sweep --resume" if payload["kind"] == "sweep" else "python -m ganfast.train --resume"
        raise RunError(f"{path} is a {payload['kind']} checkpoint; continue it with {how}")
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

    kind = ""                 # "toy" | "image" | "sweep": the checkpoint's kind
    prog = PROG               # the command that resumes it
    unit = "epoch"            # what the progress bar counts
    checkpoint_every = 1      # log intervals between checkpoints

    def __init__(self, cfg: TrainConfig, *, run_dir: Path | None, backend: str, options: Options, source: dict,
                 rows=None, elapsed: float = 0.0):
        self.cfg, self.run_dir, self.backend, self.options = cfg, run_dir, backend, options
        self.device = options.device
        self.source = dict(source)
        self.rows = list(rows or [])
        self.elapsed = float(elapsed)
        self.checkpoint_time = time.monotonic()   # when the last checkpoint was written (or the run began)
        self.checkpoint_epoch = None              # its epoch (a resumed run: set by resume)

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

    def diverged(self) -> dict:
        """{member: epoch} of the members whose parameters or losses became NaN or infinite
        (frozen by the trainer since); a kind that cannot tell has none."""
        return {}

    # --- divergence -----------------------------------------------------------------------
    @property
    def on_nan(self) -> str:
        """The --on-nan policy in force: the option, or stop for a population of 1, continue
        for more."""
        return self.options.on_nan or ("stop" if self.cfg.population == 1 else "continue")

    def must_stop(self) -> bool:
        """Divergence ends the training: any member under "stop", every member under "continue"."""
        diverged = self.diverged()
        return bool(diverged) and (self.on_nan == "stop" or len(diverged) == self.cfg.population)

    def failed(self) -> bool:
        """The run ends diverged (exit status 3): it stopped on a divergence, or no member is finite."""
        return self.must_stop()

    def _divergence_lines(self, seen: dict) -> list:
        """A line per member that diverged since `seen` (updated)."""
        lines = []
        for k, epoch in sorted(self.diverged().items()):
            if k in seen:
                continue
            seen[k] = epoch
            who = "the GAN" if self.cfg.population == 1 else f"member {k}"
            then = ("stopping (--on-nan stop)" if self.on_nan == "stop" else
                    "no member is left to train" if len(seen) == self.cfg.population else
                    "frozen; the others train on (--on-nan continue)")
            lines.append(f"diverged: {who} at epoch {epoch} (a parameter or loss became NaN or infinite); {then}")
        return lines

    # --- protocol -----------------------------------------------------------------------
    def snapshot(self) -> tuple:
        return self.state_dict(), list(self.rows), self.elapsed, self.epoch

    def restore(self, snap: tuple) -> None:
        state, rows, self.elapsed, _ = snap
        self.load_state_dict(state)
        self.rows[:] = rows

    def create_folder(self, out) -> Path:
        """Make the run's folder under `out` with config.yaml and a checkpoint of the start; if
        either cannot be written, remove the folder again (RunError for an OSError)."""
        run_dir = new_run_dir(out, self.cfg.name)
        try:
            write_config(run_dir, self.cfg)
            self.run_dir = run_dir
            self.checkpoint()
        except BaseException as e:
            self.run_dir = None
            shutil.rmtree(run_dir, ignore_errors=True)
            if isinstance(e, OSError):
                raise RunError(f"cannot write the run folder {run_dir}: {_os_message(e)}") from None
            raise
        return run_dir

    def kept(self) -> str:
        """What a failure leaves, for its message: the last checkpoint and how to resume it."""
        if self.run_dir is None or self.checkpoint_epoch is None:
            return "no checkpoint was written"
        return f"{CHECKPOINT} of epoch {self.checkpoint_epoch} is intact; resume with: {PROG} --resume {self.run_dir}"

    def checkpoint(self, snap: tuple | None = None) -> None:
        """Write checkpoint.pt (of `snap`, or of now). A write that fails leaves the previous
        checkpoint and raises RunError naming it."""
        if self.run_dir is None:
            return
        state, rows, elapsed, epoch = snap or self.snapshot()
        path = self.run_dir / CHECKPOINT
        try:
            write_checkpoint(path, kind=self.kind, cfg=self.cfg, source=self.source, elapsed=elapsed, rows=rows,
                             state=state)
        except OSError as e:
            raise RunError(f"cannot write {path}: {_os_message(e)}; {self.kept()}") from None
        self.checkpoint_time, self.checkpoint_epoch = time.monotonic(), epoch

    def train(self) -> bool:
        """Train to cfg.epochs, a log interval at a time; True when interrupted (Ctrl-C), the
        run then back at its last logged interval."""
        done, total = self.position
        if self.options.plots and self.run_dir is not None and done < total:
            report.warm_up()  # matplotlib's import, while the first intervals train
        progress = Progress(total, done, self.unit, self.options.quiet)
        start_elapsed, intervals = self.elapsed, 0
        good = self.snapshot()
        t0 = time.perf_counter()
        seen = {}
        try:
            for line in self._divergence_lines(seen):  # a resumed run that had diverged
                progress.write(line)
            while self.epoch < self.cfg.epochs and not self.must_stop():
                t_interval = time.perf_counter()
                rows = self.train_interval(progress)
                self.rows.extend(rows)
                self.elapsed = start_elapsed + time.perf_counter() - t0
                if not self.options.quiet:
                    progress.write(self.log_line(rows, time.perf_counter() - t_interval))
                for line in self._divergence_lines(seen):  # said even when --quiet
                    progress.write(line)
                progress.to(self.position[0])
                intervals += 1
                good = self.snapshot()
                due = (intervals % self.checkpoint_every == 0
                       or time.monotonic() - self.checkpoint_time >= CHECKPOINT_SECONDS)
                if due and self.epoch < self.cfg.epochs and not self.must_stop():
                    self.checkpoint(good)
        except KeyboardInterrupt:
            self.restore(good)
            return True
        finally:
            progress.close()
        return False


def memory_limit() -> int:
    """Bytes this process may use at most: the physical memory, or a lower RLIMIT_AS."""
    limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            limit = min(limit, soft)
    except (ImportError, ValueError, OSError):  # no resource module (Windows)
        pass
    return limit


def check_memory(need: int, what: str) -> None:
    """RunError when `need` bytes (an estimate of what the run keeps) exceed memory_limit()."""
    have = memory_limit()
    if need > have:
        raise RunError(f"{what} needs about {need / 2**30:.1f} GiB, more than the {have / 2**30:.1f} GiB this "
                       "process may use; shrink the nets, the batch or the population")


@contextlib.contextmanager
def out_of_memory_is_a_run_error(what):
    """Turn torch's failed allocations (CPU or CUDA) within the block into a one-line RunError
    saying `what` (a string, or a function returning one when it happens)."""
    try:
        yield
    except RuntimeError as e:  # torch.OutOfMemoryError (CUDA) is a RuntimeError too
        text = str(e)
        if not (isinstance(e, torch.OutOfMemoryError) or "can't allocate memory" in text
                or "not enough memory" in text):
            raise
        size = re.search(r"tried to allocate (\d+) bytes", text)
        detail = f"an allocation of {int(size[1]) / 2**30:.1f} GiB failed" if size else text.splitlines()[0][:200]
        raise RunError(f"not enough memory {what() if callable(what) else what} ({detail})") from None


def _os_message(e: OSError) -> str:
    """An OSError as a short phrase: its strerror (and the file, when it is not the one named)."""
    return e.strerror or str(e) or type(e).__name__


@contextlib.contextmanager
def shielded_from_ctrl_c(what: str):
    """Within the block the first Ctrl-C (SIGINT) only prints that `what` goes on; a second one
    raises KeyboardInterrupt as usual. Yields a function that says how many presses came. Only
    in the main thread (where Python delivers signals); elsewhere the block runs unshielded."""
    presses = [0]
    if threading.current_thread() is not threading.main_thread():
        yield lambda: presses[0]
        return

    def on_sigint(signum, frame):
        presses[0] += 1
        if presses[0] > 1:
            raise KeyboardInterrupt
        # os.write, not print: the handler may run while the main thread is inside a print
        os.write(sys.stderr.fileno(), f"Ctrl-C: {what} goes on (press Ctrl-C again to abort it)\n".encode())

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield lambda: presses[0]
    finally:
        signal.signal(signal.SIGINT, previous)


def execute(run: Run) -> int:
    """Train, checkpoint, weights and report; the exit status (0 done, 3 diverged, 130
    interrupted). An OSError while writing (a full disk) is a RunError naming the file and what
    is intact."""
    with out_of_memory_is_a_run_error(lambda: f"to train this run ({run.kept()})"):
        interrupted = run.train()
    if interrupted:
        try:
            run.checkpoint()
            print(f"Ctrl-C: checkpoint saved at epoch {run.epoch}; writing the report", flush=True)
            _finish(run, interrupted=True)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: the checkpoint is what matters
        print(f"interrupted at epoch {run.epoch}; resume with: {run.prog} --resume {run.run_dir}", file=sys.stderr,
              flush=True)
        return EXIT_INTERRUPTED
    with shielded_from_ctrl_c("writing the checkpoint, weights.pt and the report"):
        try:
            run.checkpoint()
            _finish(run, interrupted=False)
        except KeyboardInterrupt:  # the second press
            print(f"aborted the report; {CHECKPOINT} of epoch {run.checkpoint_epoch} is saved: {PROG} --resume "
                  f"{run.run_dir} writes the report again", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
    if run.failed():
        which = ", ".join(f"member {k} at epoch {e}" for k, e in sorted(run.diverged().items()))
        print(f"error: the run diverged ({which}); its report says so", file=sys.stderr, flush=True)
        return EXIT_DIVERGED
    return EXIT_OK


def _finish(run: Run, interrupted: bool) -> dict:
    try:
        with out_of_memory_is_a_run_error(lambda: f"for the report ({run.kept()}, which writes it again)"):
            return run.finish(interrupted=interrupted)
    except OSError as e:
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        raise RunError(f"cannot write the report or weights in {run.run_dir}{where}: {_os_message(e)}; "
                       f"{run.kept()} (which writes them again)") from None
