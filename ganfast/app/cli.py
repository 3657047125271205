"""`python -m ganfast.train` (console script `ganfast-train`): train a toy GAN (or a population
of them) or an image GAN from a preset or a YAML config and write a run folder, the way the seed
projects print and plot their runs.

    python -m ganfast.train                               # devnag preset, 5000 epochs
    python -m ganfast.train --list-presets
    python -m ganfast.train --preset ring8 --population 8 --out runs
    python -m ganfast.train --config my.yaml --backend torch --epochs 2000
    python -m ganfast.train --resume runs/devnag-20260101-120000 --epochs 8000
    python -m ganfast.train --preset digits-mlp           # an image preset

What a run writes and how Ctrl-C and --resume behave: ganfast.app.run (the protocol),
ganfast.app.toy_run and ganfast.app.image_run (the two kinds).

Exit status: 0 done, 2 bad arguments, config, data or checkpoint (one `error: ...` line on
stderr, no traceback), 3 diverged, 130 interrupted.

Divergence (toy runs): a member whose parameters or losses become NaN or infinite is frozen by
the trainer (GanState.diverged). `--on-nan stop` (the default for a population of 1) ends the
training at once (within the engine call that saw it); `--on-nan continue` (the default for a
population) trains the other members on. Either way a line says who diverged at which epoch,
the logged losses of a diverged member are NaN, the summary has "diverged" and
"diverged_members" ([{member, epoch}]), and a plot with no finite sample says so. The exit
status is 3 when the run stopped on a divergence or no member is left finite (the checkpoint,
the report and weights.pt are written all the same); a population that lost some members but
not all exits 0.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ganfast.app.config import PRESET_DIR, ConfigError, TrainConfig, list_presets, load_config, load_preset, preset_path
from ganfast.app.image_run import ImageRun
from ganfast.app.files import remove_stale_temps
from ganfast.app.run import (CHECKPOINT, DEFAULT_OUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ON_NAN, PROG, Options,
                             Run, RunError, execute, read_checkpoint, resume_config, write_resumed_config)
from ganfast.app.toy_run import ToyRun

DEFAULT_PRESET = "devnag"
RUNS = {"toy": ToyRun, "image": ImageRun}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # raise instead of sys.exit, so main() can return 2
        raise RunError(f"{message} (see {PROG} --help)")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Train a GAN (a toy distribution or an image data set) from a preset or a "
                    "YAML config and write a run folder "
                    "(config.yaml, checkpoint.pt, metrics.csv, summary.json, plots, "
                    "training.gif, weights.pt).",
        epilog="Ctrl-C saves a checkpoint and exits with status 130; continue with --resume. "
               "Bad arguments or configs exit with status 2; a run that diverged (--on-nan) with status 3.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", metavar="NAME",
                     help=f"a shipped preset (default {DEFAULT_PRESET}; see --list-presets)")
    src.add_argument("--config", metavar="FILE", help="a YAML config file (keys: ganfast/app/config.py)")
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
    p.add_argument("--on-nan", choices=ON_NAN, dest="on_nan",
                   help="when a toy GAN's parameters or losses become NaN/inf: stop the run (default for a "
                        "population of 1), or continue training the other members, the diverged ones frozen "
                        "(default for a population); exit status 3 when it stopped or none is left")
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


def check_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as e:
        raise RunError(f"--device: invalid device {name!r} ({e})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise RunError(f"--device {name}: CUDA is not available ({why}); use --device cpu")
    if device.type == "meta":
        raise RunError(f"--device {name}: meta tensors hold no data (shapes only), so nothing can be trained or "
                       "sampled there; use --device cpu or cuda")
    try:  # a computation whose result comes back: the device must work, not only take tensors
        torch.ones(2, device=device).sum().item()
    except Exception as e:  # noqa: BLE001  (an unusable device of any kind)
        raise RunError(f"--device {name}: cannot use this device ({type(e).__name__}: {e})") from None
    return device


def data_root(cfg: TrainConfig, data) -> dict:
    """The override {"data.root": DIR} of --data (none without it): for the data sets read from
    files."""
    if data is None:
        return {}
    if cfg.data.kind not in ("mnist", "cifar10"):
        raise RunError(f"--data is for the mnist and cifar10 data sets; data.kind {cfg.data.kind!r} needs no files")
    return {"data.root": str(data)}


def set_threads(threads: int | None) -> None:
    """--threads: torch.set_num_threads (None: leave it)."""
    if threads is not None:
        if threads < 1:
            raise RunError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)


def _setup(args) -> Run:
    """The run the arguments ask for (raises RunError / ConfigError)."""
    set_threads(args.threads)
    options = Options(backend=args.backend, device=check_device(args.device), out=args.out or DEFAULT_OUT,
                      plots=not args.no_plots, quiet=args.quiet, on_nan=args.on_nan)
    if args.resume:
        return _resume(args, options)
    if args.config is not None:
        cfg, source = load_config(args.config), {"preset": None, "config": str(args.config)}
    else:
        name = args.preset or DEFAULT_PRESET
        preset_path(name)  # "unknown preset ..." naming the choices
        cfg, source = load_preset(name), {"preset": name, "config": None}
    overrides = {k: getattr(args, k) for k in ("epochs", "seed", "population", "dtype") if getattr(args, k) is not None}
    overrides.update(data_root(cfg, args.data))
    if overrides:
        cfg = cfg.replace(overrides)
    _check_on_nan(options, "image" if cfg.is_image else "toy")
    return RUNS["image" if cfg.is_image else "toy"].new(cfg, options, source)


def _check_on_nan(options: Options, kind: str) -> None:
    if options.on_nan is not None and kind != "toy":
        raise RunError("--on-nan is for toy runs (image runs do not watch for divergence)")


def _resume(args, options: Options) -> Run:
    """The run in --resume's folder, its config.yaml checked against its checkpoint
    (run.resume_config: what may change and what may not)."""
    for flag in ("seed", "population", "dtype", "out"):
        if getattr(args, flag) is not None:
            raise RunError(f"--{flag} cannot be used with --resume (the run's config and folder come from "
                           "its checkpoint; only --epochs extends it)")
    run_dir = Path(args.resume)
    if not run_dir.is_dir():
        raise RunError(f"--resume: no run folder {run_dir}")
    try:
        payload = read_checkpoint(run_dir / CHECKPOINT)
        trained = load_config(payload["config"])
    except (RunError, ConfigError) as e:
        raise RunError(f"--resume: {e}") from None
    kind = payload["kind"]
    _check_on_nan(options, kind)
    try:
        epoch = int(payload["state"]["trainer"]["epoch"] if kind == "image" else payload["state"]["gan"]["epochs"][0])
    except (KeyError, TypeError, IndexError, ValueError) as e:
        raise RunError(f"--resume: {run_dir / CHECKPOINT} is not a complete {kind} checkpoint "
                       f"({type(e).__name__}: {e})") from None
    overrides = {"epochs": args.epochs} if args.epochs is not None else {}
    overrides.update(data_root(trained, args.data))  # the files may have moved
    cfg, changes, rewrite = resume_config(trained, run_dir, epoch, overrides)
    source = dict(payload["source"])
    source["resumed"] = [*source.get("resumed", []), {"epoch": epoch, "changes": changes}]
    run = RUNS[kind].resume({**payload, "source": source}, cfg, run_dir, options)
    for path in remove_stale_temps(run_dir):
        print(f"removed {path}, the temporary file of a write that was killed")
    if rewrite:  # now that the run could be set up: a failed resume changes nothing
        write_resumed_config(run_dir, cfg)
    return run


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (0 done, 2 bad input, 3 diverged, 130 interrupted)."""
    threads_before = torch.get_num_threads()
    try:
        try:
            args = parser().parse_args(argv)
        except SystemExit as e:  # --help
            return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
        if args.list_presets:
            descs = _preset_descriptions()
            width = max(len(n) for n, _ in descs)
            for name, desc in descs:
                print(f"{name:<{width}}  {desc}")
            return EXIT_OK
        try:
            run = _setup(args)
        except (ConfigError, ValueError, FileNotFoundError) as e:
            raise RunError(str(e)) from None
        return execute(run)
    except RunError as e:  # bad input, or a file the run cannot write: one line
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before training began (Ctrl-C in training is the run's)
        print("interrupted before training began; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        torch.set_num_threads(threads_before)


if __name__ == "__main__":
    sys.exit(main())
