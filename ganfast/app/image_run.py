"""An image run (digits, MNIST, CIFAR-10 presets), an epoch per log interval (ganfast.app.run's
protocol).

    python -m ganfast.train --preset digits-mlp                     # embedded 8x8 digits
    python -m ganfast.train --preset mnist-mlp --data ~/data/mnist  # MNIST IDX files
    python -m ganfast.train --resume runs/digits-mlp-20261201-120000

The run folder gets config.yaml (first), checkpoint.pt (at the start and after every epoch),
samples/epoch_NNNN.png (a grid from a fixed noise batch after every epoch), then metrics.csv,
summary.json, losses.png, training.gif and weights.pt. Ctrl-C goes back to the last finished
epoch, writes the report and exits 130; --resume continues from there and on the CPU ends
bit-identical to a run that was never interrupted.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch

from ganfast.app import image_report, nets
from ganfast.app.config import TrainConfig
from ganfast.app.datasets import DatasetFormatError, DatasetNotFoundError, load_images
from ganfast.app.files import atomic_write
from ganfast.app.image_train import METRIC_NAMES, ImageTrainer, grid_noise
from ganfast.app.run import Options, Progress, Run, RunError, fixed_noise, out_of_memory_is_a_run_error, resume_line
from ganfast.random import FINAL_NOISE_SHIFT

GRID_SAMPLES = 64             # 8 x 8 tiles per sample grid
QUALITY_SAMPLES = 2000        # generated digits the quality figure scores
QUALITY_NOISE_SEED = FINAL_NOISE_SHIFT


def resolve_backends(cfg: TrainConfig, requested: str, device) -> tuple:
    """(backend for the flat MLPs, why): `--backend fused` is an error when a net cannot run
    fused; auto lets each MLP choose (ganfast.app.nets.describe says what each got)."""
    if requested == "fused":
        for role in ("generator", "discriminator"):
            reason = nets.why_not_fused(cfg, role, device)
            if reason is not None:
                raise RunError(f"--backend fused cannot run here: {reason}")
    return requested, {"auto": "auto: the fused op where a net fits it, PyTorch elsewhere",
                       "fused": "requested with --backend fused",
                       "torch": "requested with --backend torch"}[requested]


def _trainer(cfg: TrainConfig, backend: str, device, what: str = "") -> ImageTrainer:
    """The trainer of cfg on its data set; a missing or malformed data set is a RunError."""
    try:
        data = load_images(cfg.data.kind, cfg.data.root, "train", cfg.data.limit)
        with out_of_memory_is_a_run_error("for the data set and the nets"):
            return ImageTrainer(cfg, data, backend=backend, device=device)
    except (DatasetNotFoundError, DatasetFormatError, ValueError) as e:
        raise RunError(f"{what}{e}") from None


class ImageRun(Run):
    """An image GAN: the trainer, metrics rows and the sample grids (the GIF's frames)."""

    kind = "image"

    def __init__(self, cfg: TrainConfig, trainer: ImageTrainer, *, grids=None, **kwargs):
        super().__init__(cfg, **kwargs)
        self.trainer = trainer
        self.grids = list(grids or [])
        self.noise = grid_noise(cfg, GRID_SAMPLES, self.device)
        self.unit = "it"

    # --- starting ---------------------------------------------------------------------
    @classmethod
    def new(cls, cfg: TrainConfig, options: Options, source: dict) -> "ImageRun":
        backend, why = resolve_backends(cfg, options.backend, options.device)
        trainer = _trainer(cfg, backend, options.device)
        source = {**source, "data": trainer.source}
        run = cls(cfg, trainer, run_dir=None, backend=backend, options=options, source=source)
        if options.out is not None:
            run_dir = run.create_folder(options.out)  # config.yaml and the checkpoint of epoch 0
            what = f"preset {source['preset']}" if source.get("preset") else f"config {source.get('config')}"
            print(f"{cfg.name} ({what}): {cfg.epochs} epochs x {trainer.iterations_per_epoch} iterations, "
                  f"{trainer.n_images} {cfg.data.kind} images from {trainer.source}, {cfg.dtype}, "
                  f"{options.device} -> {run_dir}")
            print(f"backend: {backend} ({why})")
            _print_nets(trainer)
        return run

    @classmethod
    def resume(cls, payload: dict, cfg: TrainConfig, run_dir: Path, options: Options) -> "ImageRun":
        backend, why = resolve_backends(cfg, options.backend, options.device)
        trainer = _trainer(cfg, backend, options.device, "--resume: ")
        run = cls(cfg, trainer, run_dir=run_dir, backend=backend, options=options, source=payload["source"],
                  rows=payload["rows"], elapsed=payload["elapsed"])
        try:
            trainer.load_state_dict(payload["state"]["trainer"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise RunError(f"--resume: {e}") from None
        for k in range(1, trainer.epoch + 1):  # the animation's frames so far, from the PNGs
            png = run_dir / "samples" / f"epoch_{k:04d}.png"
            if png.is_file():
                from PIL import Image

                run.grids.append(np.asarray(Image.open(png).convert("RGB")))
        print(resume_line(run_dir, trainer.epoch, cfg, payload["source"]))
        run.checkpoint_epoch = trainer.epoch
        print(f"backend: {backend} ({why})")
        _print_nets(trainer)
        return run

    # --- the protocol's hooks -----------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.trainer.epoch

    @property
    def position(self) -> tuple:
        t = self.trainer
        return t.iteration, self.cfg.epochs * t.iterations_per_epoch

    def train_interval(self, progress: Progress) -> list:
        t = self.trainer
        rows = t.train_epoch(on_iteration=lambda done, total: progress.to(t.iteration))
        grid = image_report.make_grid(t.generate(self.noise), nrow=8)
        if self.run_dir is not None:
            image_report.save_png(self.run_dir / "samples" / f"epoch_{t.epoch:04d}.png", grid)
        self.grids.append(grid)
        return rows

    def log_line(self, rows: list, seconds: float) -> str:
        r, its = rows[-1], self.trainer.iterations_per_epoch
        width = len(str(self.cfg.epochs))
        rate = its / seconds if seconds > 0 else math.nan
        return (f"epoch {self.epoch:>{width}}/{self.cfg.epochs}  D real {r['d_loss_real']:.3f} "
                f"fake {r['d_loss_fake']:.3f}  G {r['g_loss']:.3f}  D(x) {r['d_real']:.2f} "
                f"D(G(z)) {r['d_fake']:.2f}  ({rate:,.1f} it/s)")

    def diverged(self) -> dict:
        return {0: self.trainer.diverged} if self.trainer.diverged >= 0 else {}

    def state_dict(self) -> dict:
        return {"trainer": copy.deepcopy(self.trainer.state_dict())}

    def load_state_dict(self, state: dict) -> None:
        self.trainer.load_state_dict(state["trainer"])
        del self.grids[self.trainer.epoch:]

    # --- the end ------------------------------------------------------------------------
    def finish(self, interrupted: bool) -> dict:
        cfg, t = self.cfg, self.trainer
        if self.run_dir is not None:  # first: the weights are what a Ctrl-C in the report must not cost
            payload = {"generator": t.G.state_dict(), "discriminator": t.D.state_dict(), "config": cfg.to_dict()}
            atomic_write(self.run_dir / "weights.pt", lambda f: torch.save(payload, f), binary=True)
        last = self.rows[-1] if self.rows else {}
        summary = {
            "name": cfg.name, "preset": self.source.get("preset"), "config": self.source.get("config"),
            "data": {"kind": cfg.data.kind, "images": t.n_images, "source": self.source.get("data")},
            "backend": self.backend, "device": str(self.device), "dtype": cfg.dtype,
            "generator": nets.describe(t.G), "discriminator": nets.describe(t.D),
            "epochs": t.epoch, "target_epochs": cfg.epochs, "iterations": t.iteration,
            "wall_time_s": self.elapsed,
            "iterations_per_s": t.iteration / self.elapsed if self.elapsed > 0 else None,
            "interrupted": interrupted, "resumed": self.source.get("resumed", []),
            **{k: _finite_or_none(last.get(k)) for k in METRIC_NAMES},
            "diverged": t.diverged >= 0, "on_nan": self.on_nan,
            "diverged_members": [{"member": k, "epoch": e} for k, e in self.diverged().items()],
        }
        if cfg.data.kind == "digits" and t.epoch > 0 and t.diverged < 0:  # no digits to score from NaNs
            from ganfast.app.quality import score_digits

            noise = fixed_noise(cfg, QUALITY_SAMPLES, QUALITY_NOISE_SEED, self.device)
            summary["quality"] = score_digits(t.generate(noise))
        if self.run_dir is None:
            return summary
        summary = image_report.write_image_report(self.run_dir, rows=self.rows, grids=self.grids,
                                                  summary=summary, plots=self.options.plots)
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


def _finite_or_none(x):
    """A metric for summary.json: None where it is missing, NaN or infinite (JSON has no NaN)."""
    return x if x is not None and math.isfinite(x) else None


def _print_nets(trainer: ImageTrainer) -> None:
    print(f"generator: {nets.describe(trainer.G)}")
    print(f"discriminator: {nets.describe(trainer.D)}", flush=True)
