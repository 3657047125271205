"""The image branch of `python -m ganfast.train`: a run folder for an image preset.

    python -m ganfast.train --preset digits-mlp                     # embedded 8x8 digits
    python -m ganfast.train --preset mnist-mlp --data ~/data/mnist  # MNIST IDX files
    python -m ganfast.train --resume runs/digits-mlp-20261201-120000

The run folder gets config.yaml (first), checkpoint.pt (at the start and after every epoch),
samples/epoch_NNNN.png (a grid from a fixed noise batch after every epoch), then metrics.csv,
summary.json, losses.png, training.gif and weights.pt. Ctrl-C goes back to the last finished
epoch (its checkpoint), writes the report and exits 130; --resume continues from there and on
the CPU ends bit-identical to a run that was never interrupted.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ganfast import image_report, nets
from ganfast.config import TrainConfig, load_config
from ganfast.datasets import DatasetFormatError, DatasetNotFoundError, load_images
from ganfast.image_train import METRIC_NAMES, ImageTrainer, fixed_noise, grid_noise
from ganfast.state import atomic_torch_save, read_checkpoint

GRID_SAMPLES = 64             # 8 x 8 tiles per sample grid
QUALITY_SAMPLES = 2000        # generated digits the quality figure scores
QUALITY_NOISE_SEED = 2_000_003
CHECKPOINT_KIND = "image"


def _cli():  # ganfast.train imports this module lazily; import it back the same way
    from ganfast import train
    return train


def resolve_backends(cfg: TrainConfig, requested: str, device) -> tuple:
    """(backend for the flat MLPs, why): `--backend fused` is an error when a net cannot run
    fused; auto lets each MLP choose (ganfast.nets.describe says what each got)."""
    if requested == "fused":
        for role in ("generator", "discriminator"):
            reason = nets.fused_unavailable_reason(cfg, role, device, cfg.torch_dtype)
            if reason is not None:
                raise _cli().CliError(f"--backend fused cannot run here: {reason}")
    return requested, {"auto": "auto: the fused op where a net fits it, PyTorch elsewhere",
                       "fused": "requested with --backend fused",
                       "torch": "requested with --backend torch"}[requested]


def load_data(cfg: TrainConfig):
    try:
        return load_images(cfg.data.kind, cfg.data.root, "train", cfg.data.limit)
    except (DatasetNotFoundError, DatasetFormatError) as e:
        raise _cli().CliError(str(e)) from None


class ImageRun:
    """An image run: trainer, run folder, rows and grids; the same surface as the toy run."""

    def __init__(self, *, cfg, trainer, run_dir, rows, grids, elapsed, backend, device, source, args):
        self.cfg, self.trainer, self.run_dir = cfg, trainer, Path(run_dir)
        self.rows, self.grids, self.elapsed = rows, grids, elapsed
        self.backend, self.device, self.source, self.args = backend, device, source, args
        self.noise = grid_noise(cfg, GRID_SAMPLES, device)

    @property
    def epoch(self) -> int:
        return self.trainer.epoch

    def checkpoint(self) -> None:
        atomic_torch_save(self.run_dir / "checkpoint.pt", {
            "kind": CHECKPOINT_KIND, "config": self.cfg.to_dict(), "trainer": self.trainer.state_dict(),
            "rows": self.rows, "elapsed": self.elapsed, "source": self.source})

    def _grid(self) -> np.ndarray:
        return image_report.make_grid(self.trainer.generate(self.noise), nrow=8)

    def _log_line(self, rows: list, seconds: float, iterations: int) -> str:
        r = rows[-1]
        width = len(str(self.cfg.epochs))
        rate = iterations / seconds if seconds > 0 else math.nan
        return (f"epoch {self.epoch:>{width}}/{self.cfg.epochs}  D real {r['d_loss_real']:.3f} "
                f"fake {r['d_loss_fake']:.3f}  G {r['g_loss']:.3f}  D(x) {r['d_real']:.2f} "
                f"D(G(z)) {r['d_fake']:.2f}  ({rate:,.1f} it/s)")

    def train(self) -> bool:
        """Train to cfg.epochs; True when interrupted (Ctrl-C)."""
        cli, t = _cli(), self.trainer
        progress = cli._Progress(not self.args.quiet)
        samples = self.run_dir / "samples"
        samples.mkdir(exist_ok=True)
        total = self.cfg.epochs * t.iterations_per_epoch
        start_elapsed = self.elapsed
        t0 = time.perf_counter()
        try:
            while t.epoch < self.cfg.epochs:
                t_epoch = time.perf_counter()
                before = t.epoch * t.iterations_per_epoch

                def tick(done, _total):
                    progress.update(before + done, total, 0, time.perf_counter() - t0 + start_elapsed)
                rows = t.train_epoch(on_iteration=tick)
                self.rows.extend(rows)
                grid = self._grid()
                image_report.save_png(samples / f"epoch_{t.epoch:04d}.png", grid)
                self.grids.append(grid)
                self.elapsed = start_elapsed + time.perf_counter() - t0
                if not self.args.quiet:
                    progress.clear()
                    print(self._log_line(rows, time.perf_counter() - t_epoch, t.iterations_per_epoch), flush=True)
                self.checkpoint()
        except KeyboardInterrupt:
            progress.clear()
            self._restore_checkpoint()
            return True
        progress.clear()
        return False

    def _restore_checkpoint(self) -> None:
        """Back to the last finished epoch, as its checkpoint has it."""
        payload = _read_checkpoint(self.run_dir / "checkpoint.pt")
        self.trainer.load_state_dict(payload["trainer"])
        self.rows[:] = payload["rows"]
        self.elapsed = float(payload["elapsed"])
        del self.grids[self.trainer.epoch:]

    def finish(self, interrupted: bool) -> dict:
        cfg, t = self.cfg, self.trainer
        last = self.rows[-1] if self.rows else {}
        summary = {
            "name": cfg.name, "preset": self.source.get("preset"), "config": self.source.get("config"),
            "data": {"kind": cfg.data.kind, "images": t.n_images, "source": self.source.get("data")},
            "backend": self.backend, "device": str(self.device), "dtype": cfg.dtype,
            "generator": nets.describe(t.G), "discriminator": nets.describe(t.D),
            "epochs": t.epoch, "target_epochs": cfg.epochs, "iterations": t.iteration,
            "wall_time_s": self.elapsed,
            "iterations_per_s": t.iteration / self.elapsed if self.elapsed > 0 else None,
            "interrupted": interrupted,
            **{k: last.get(k) for k in METRIC_NAMES},
        }
        if cfg.data.kind == "digits" and t.epoch > 0:
            from ganfast.quality import score_digits

            noise = fixed_noise(cfg, QUALITY_SAMPLES, QUALITY_NOISE_SEED, self.device)
            summary["quality"] = score_digits(t.generate(noise))
        summary = image_report.write_image_report(self.run_dir, rows=self.rows, grids=self.grids,
                                                  summary=summary, plots=not self.args.no_plots)
        atomic_torch_save(self.run_dir / "weights.pt", {
            "generator": t.G.state_dict(), "discriminator": t.D.state_dict(), "config": cfg.to_dict()})
        rate = summary["iterations_per_s"]
        print(f"run folder: {self.run_dir}")
        print(f"trained {t.epoch}/{cfg.epochs} epochs ({t.iteration} iterations) in {self.elapsed:.2f} s"
              + (f" ({rate:,.1f} it/s)" if rate else ""))
        if "quality" in summary:
            q = summary["quality"]
            print(f"quality of {QUALITY_SAMPLES} generated digits: {q['confident']:.1%} classified with "
                  f"p >= 0.9, class spread {q['spread']:.2f} (1 = all ten digits equally), "
                  f"{q['classes_covered']}/10 digits seen", flush=True)
        return summary


def _read_checkpoint(path: Path) -> dict:
    payload = read_checkpoint(path)
    if payload.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{path} is not the checkpoint of an image run")
    return payload


def _print_nets(trainer: ImageTrainer) -> None:
    print(f"generator: {nets.describe(trainer.G)}")
    print(f"discriminator: {nets.describe(trainer.D)}", flush=True)


def setup_new(args, cfg: TrainConfig, source: dict, device) -> ImageRun:
    """A fresh image run (ganfast.train._setup has built and overridden the config)."""
    cli = _cli()
    backend, why = resolve_backends(cfg, args.backend, device)
    data = load_data(cfg)
    source = {**source, "data": data.source}
    try:
        trainer = ImageTrainer(cfg, data, backend=backend, device=device)
    except ValueError as e:
        raise cli.CliError(str(e)) from None
    run_dir = cli._new_run_dir(Path(args.out or cli.DEFAULT_OUT), cfg.name)
    cli._write_config(run_dir, cfg)
    what = f"preset {source['preset']}" if source["preset"] else f"config {source['config']}"
    print(f"{cfg.name} ({what}): {cfg.epochs} epochs x {trainer.iterations_per_epoch} iterations, "
          f"{len(data)} {cfg.data.kind} images from {data.source}, {cfg.dtype}, {device} -> {run_dir}")
    print(f"backend: {backend} ({why})")
    _print_nets(trainer)
    run = ImageRun(cfg=cfg, trainer=trainer, run_dir=run_dir, rows=[], grids=[], elapsed=0.0,
                   backend=backend, device=device, source=source, args=args)
    run.checkpoint()
    return run


def setup_resume(args, run_dir: Path, device) -> ImageRun:
    """Continue the image run in run_dir from its checkpoint."""
    cli = _cli()
    try:
        payload = _read_checkpoint(run_dir / "checkpoint.pt")
    except (ValueError, FileNotFoundError) as e:
        raise cli.CliError(f"--resume: {e}") from None
    cfg = cli.resume_config(args, load_config(payload["config"]), int(payload["trainer"]["epoch"]), run_dir)
    if args.data is not None:
        cfg = cfg.replace({"data.root": args.data})  # the files may have moved
    backend, why = resolve_backends(cfg, args.backend, device)
    data = load_data(cfg)
    try:
        trainer = ImageTrainer(cfg, data, backend=backend, device=device)
        trainer.load_state_dict(payload["trainer"])
    except (ValueError, KeyError, RuntimeError) as e:
        raise cli.CliError(f"--resume: {e}") from None
    grids = []
    for k in range(1, trainer.epoch + 1):  # the animation's frames so far, from the PNGs
        png = run_dir / "samples" / f"epoch_{k:04d}.png"
        if png.is_file():
            from PIL import Image

            grids.append(np.asarray(Image.open(png).convert("RGB")))
    print(f"resuming {run_dir} at epoch {trainer.epoch} of {cfg.epochs}")
    print(f"backend: {backend} ({why})")
    _print_nets(trainer)
    source = dict(payload.get("source") or {})
    return ImageRun(cfg=cfg, trainer=trainer, run_dir=run_dir, rows=list(payload["rows"]), grids=grids,
                    elapsed=float(payload["elapsed"]), backend=backend, device=device, source=source, args=args)


def is_image_checkpoint(run_dir: Path) -> bool:
    """True when run_dir's config.yaml is an image config (its checkpoint is an image one)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return False
    try:
        return load_config(path).is_image
    except Exception:  # noqa: BLE001  (the toy path reports a broken run folder)
        return False

