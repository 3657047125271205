"""`python -m ganfast.sweep` (console script `ganfast-sweep`): many toy GANs at once, seeds x a
grid of config values, scored as they train, with a folder that says how often a setup works.

    python -m ganfast.sweep --preset devnag --seeds 256
    python -m ganfast.sweep --preset how-to-gan --seeds 64 --grid optimizer_d.lr=3e-4,1e-3 \\
        --grid discriminator.hidden=[32,32],[64,64] --epochs 3000
    python -m ganfast.sweep --preset gaussian --seeds 64 --pbt --pbt-every 500
    python -m ganfast.sweep --resume runs/sweep-devnag-20260101-120000 --epochs 8000
    torchrun --nproc-per-node 2 -m ganfast.sweep --preset devnag --seeds 256

What the folder holds: ganfast.app.sweep.results; how members are grouped into engine calls and
split across ranks: ganfast.app.sweep.groups; PBT: ganfast.app.sweep.pbt.

Exit status: 0 done, 2 bad arguments, config, grid or checkpoint (one `error: ...` line on
stderr, no traceback), 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ganfast.app.cli import DEFAULT_PRESET, check_device, set_threads
from ganfast.app.config import ConfigError, load_config, load_preset, preset_path
from ganfast.app.run import (DEFAULT_OUT, EXIT_USAGE, Options, RunError, execute, read_checkpoint, resume_config,
                             write_resumed_config)
from ganfast.app.sweep import dist
from ganfast.app.sweep.pbt import PbtOptions
from ganfast.app.sweep.run import PROG, Plan, SweepRun
from ganfast.functional import fused_unavailable_reason

DEFAULTS, PBT_DEFAULTS = Plan(), PbtOptions()


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # raise instead of sys.exit, so main() can return 2
        raise RunError(f"{message} (see {PROG} --help)")


def _factors(text: str) -> tuple:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers like 0.8,1.25, got {text!r}") from None


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Train many toy GANs at once (seeds x a grid of config values) with the fused engine, score "
                    "them on fresh samples as they train, and write a sweep folder (members.csv, "
                    "trajectories.csv, summary.json, plots, report.md).",
        epilog="Under torchrun the members are split across the ranks (gloo on the CPU); the results do not "
               "depend on the number of ranks or threads. Ctrl-C saves a checkpoint and exits with status 130; "
               "continue with --resume. Bad arguments, configs or grids exit with status 2.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", metavar="NAME", help=f"a shipped toy preset (default {DEFAULT_PRESET})")
    src.add_argument("--config", metavar="FILE", help="a YAML config file (keys: ganfast/app/config.py)")
    src.add_argument("--resume", metavar="SWEEP_DIR", help="continue the sweep in SWEEP_DIR (--epochs extends it)")
    p.add_argument("--seeds", type=int, metavar="N",
                   help=f"members per grid cell, seeds S..S+N-1 (default {DEFAULTS.seeds})")
    p.add_argument("--seed", type=int, metavar="S", help="the first seed (default: the config's)")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2,...", default=[],
                   help="a config key (dotted, e.g. optimizer_d.lr, d_steps, discriminator.hidden) and its values, "
                        "separated by commas outside brackets; repeat for more keys (crossed)")
    p.add_argument("--epochs", type=int, metavar="N", help="epochs per member (default: the config's)")
    p.add_argument("--eval-every", type=int, metavar="E",
                   help=f"score every member every E epochs (default {DEFAULTS.eval_every})")
    p.add_argument("--eval-samples", type=int, metavar="N",
                   help=f"samples per member at each evaluation (default {DEFAULTS.eval_samples})")
    p.add_argument("--final-samples", type=int, metavar="N",
                   help=f"samples per member at the last evaluation (default {DEFAULTS.final_samples})")
    p.add_argument("--w1", type=float, metavar="X",
                   help=f"converged: final W1 below X, in the target's units (default {DEFAULTS.w1:g})")
    p.add_argument("--pbt", action="store_true", help="population-based training (exploit and explore)")
    p.add_argument("--pbt-every", type=int, metavar="N",
                   help=f"epochs between PBT steps, a multiple of --eval-every (default {PBT_DEFAULTS.every})")
    p.add_argument("--pbt-quantile", type=float, metavar="Q",
                   help=f"the bottom Q copy the top Q (default {PBT_DEFAULTS.quantile:g})")
    p.add_argument("--pbt-factors", type=_factors, metavar="A,B",
                   help="learning-rate perturbation factors (default 0.8,1.25)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu; cuda trains on the GPU engine)")
    p.add_argument("--out", metavar="DIR", help=f"parent of the sweep folder (default {DEFAULT_OUT})")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--threads", type=int, metavar="N", help="torch.set_num_threads(N)")
    p.add_argument("--quiet", action="store_true", help="no per-evaluation lines or progress bar")
    return p


#: The flags that make the plan (the --resume'd sweep keeps its own), and their Plan fields.
PLAN_FLAGS = {"seeds": "seeds", "eval_every": "eval_every", "eval_samples": "eval_samples",
              "final_samples": "final_samples", "w1": "w1"}
PBT_FLAGS = {"pbt_every": "every", "pbt_quantile": "quantile", "pbt_factors": "factors"}


def _plan(args) -> Plan:
    given = lambda flags: {field: getattr(args, f) for f, field in flags.items() if getattr(args, f) is not None}  # noqa: E731
    pbt = None
    if args.pbt:
        pbt = PbtOptions(**{k: tuple(v) if k == "factors" else v for k, v in given(PBT_FLAGS).items()})
    else:
        for flag in PBT_FLAGS:
            if getattr(args, flag) is not None:
                raise RunError(f"--{flag.replace('_', '-')} needs --pbt")
    return Plan(grid=tuple(args.grid), pbt=pbt, **given(PLAN_FLAGS))


def _device(name: str, comm_world: int) -> torch.device:
    device = check_device(name)
    if device.type == "cuda" and comm_world > 1 and device.index is None:
        import os

        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _setup(args, comm: dist.Comm) -> SweepRun:
    set_threads(args.threads)
    device = _device(args.device, comm.world)
    reason = fused_unavailable_reason(None, device, torch.float32)
    if reason is not None:
        raise RunError(f"a sweep trains with the fused engine, which cannot run here: {reason}")
    options = Options(backend="fused", device=device, out=args.out or DEFAULT_OUT, plots=not args.no_plots,
                      quiet=args.quiet or not comm.is_main)
    if args.resume:
        given = [f for f in ("seed", "out", *PLAN_FLAGS, *PBT_FLAGS) if getattr(args, f) is not None] + \
                [f for f in ("grid", "pbt") if getattr(args, f)]
        if given:
            raise RunError(f"--{given[0].replace('_', '-')} cannot be used with --resume (the sweep's plan and "
                           "folder come from its checkpoint; only --epochs extends it)")
        run_dir = Path(args.resume)
        if not run_dir.is_dir():
            raise RunError(f"--resume: no sweep folder {run_dir}")
        try:
            payload = read_checkpoint(run_dir / "checkpoint.pt", kinds=("sweep",))
            cfg = load_config(payload["config"])
            epoch = min(payload["state"]["group_epochs"])
        except (RunError, ConfigError) as e:
            raise RunError(f"--resume: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise RunError(f"--resume: {run_dir / 'checkpoint.pt'} is not a complete sweep checkpoint "
                           f"({type(e).__name__}: {e})") from None
        overrides = {"epochs": args.epochs} if args.epochs is not None else {}
        rewrite = False
        if comm.is_main:  # config.yaml's edits checked against the checkpoint's config, as a run's
            cfg, _, rewrite = resume_config(cfg, run_dir, epoch, overrides)
        elif overrides:
            cfg = cfg.replace(overrides)
        run = SweepRun.resume(payload, cfg, run_dir, options, comm)
        if rewrite:
            write_resumed_config(run_dir, cfg)
        return run
    if args.config is not None:
        cfg, source = load_config(args.config), {"preset": None, "config": str(args.config)}
    else:
        name = args.preset or DEFAULT_PRESET
        preset_path(name)
        cfg, source = load_preset(name), {"preset": name, "config": None}
    if cfg.is_image:
        raise RunError(f"{cfg.name}: data.kind {cfg.data.kind!r} is an image data set; sweeps train toy GANs")
    overrides = {k: getattr(args, k) for k in ("epochs", "seed") if getattr(args, k) is not None}
    cfg = cfg.replace({**overrides, "population": 1})
    source["grid"] = list(args.grid)
    return SweepRun.new(cfg, _plan(args), options, source, comm)


def main(argv=None) -> int:
    """Run the sweep CLI; returns the exit status (0 done, 2 bad input, 130 interrupted)."""
    threads_before = torch.get_num_threads()
    comm = None
    try:
        try:
            try:
                args = parser().parse_args(argv)
            except SystemExit as e:  # --help
                return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
            comm = dist.from_environment(check_device(args.device))
            run = _setup(args, comm)
        except (RunError, ConfigError, ValueError, FileNotFoundError) as e:
            if comm is None or comm.is_main:
                print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE
        return execute(run)
    finally:
        torch.set_num_threads(threads_before)
        if comm is not None:
            comm.close()
