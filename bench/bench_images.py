"""The digits-mlp image GAN: fused MLPs vs eager PyTorch per training epoch, and a full run.

    python -m pytest bench/bench_images.py        # ~1-2 min; ratio table at the end

Groups:
- "digits-mlp epoch (28 iterations)": one pass over the 1,797 digits, batch 64, one D and one
  G step per iteration. reference = the loop as the seeds write it (nn.Sequential with
  nn.Dropout, torch.randn noise, BCELoss, torch.optim.Adam, a DataLoader-style shuffled index);
  fused = ganfast.image_train.ImageTrainer with the fused MLP op; philox_reference = the same
  trainer on backend="torch" (the test oracle: identical numbers, Philox in torch ops).
- "digits-mlp full run (fused)": the preset's 120 epochs, with the quality score of the result
  in extra_info.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ganfast.app.config import load_preset
from ganfast.app.datasets import load_digits
from ganfast.app.image_run import QUALITY_NOISE_SEED, QUALITY_SAMPLES
from ganfast.app.image_train import ImageTrainer
from ganfast.app.run import fixed_noise
from ganfast.app.quality import score_digits

GROUP = "digits-mlp epoch (28 iterations)"


@pytest.fixture(scope="module")
def cfg():
    return load_preset("digits-mlp")


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    return load_digits()


class SeedStyleLoop:
    """digits-mlp written the way the seed projects write their loops, for the baseline."""

    def __init__(self, cfg, data):
        torch.manual_seed(0)
        g, d = cfg.generator, cfg.discriminator
        self.G = nn.Sequential(nn.Linear(cfg.noise.dim, 256), nn.LeakyReLU(0.2), nn.Linear(256, 256),
                               nn.LeakyReLU(0.2), nn.Linear(256, 64), nn.Tanh())
        self.D = nn.Sequential(nn.Linear(64, 256), nn.LeakyReLU(0.2), nn.Dropout(d.dropout),
                               nn.Linear(256, 256), nn.LeakyReLU(0.2), nn.Dropout(d.dropout),
                               nn.Linear(256, 1), nn.Sigmoid())
        assert g.hidden == (256, 256) and d.hidden == (256, 256)  # keep in step with the preset
        o = cfg.optimizer_d
        self.d_opt = torch.optim.Adam(self.D.parameters(), lr=o.lr, betas=tuple(o.betas))
        self.g_opt = torch.optim.Adam(self.G.parameters(), lr=o.lr, betas=tuple(o.betas))
        self.x = data.images.reshape(len(data), -1) * 2 - 1
        self.batch, self.z = cfg.batch_size, cfg.noise.dim
        self.criterion = nn.BCELoss()

    def epoch(self):
        order = torch.randperm(len(self.x))
        for k in range(len(self.x) // self.batch):
            real = self.x[order[k * self.batch:(k + 1) * self.batch]]
            self.D.zero_grad()
            out = self.D(real)
            self.criterion(out, torch.ones_like(out)).backward()
            out = self.D(self.G(torch.randn(self.batch, self.z)).detach())
            self.criterion(out, torch.zeros_like(out)).backward()
            self.d_opt.step()
            self.G.zero_grad()
            out = self.D(self.G(torch.randn(self.batch, self.z)))
            self.criterion(out, torch.ones_like(out)).backward()
            self.g_opt.step()


def bench_epoch_seed_style(benchmark, cfg, digits):
    loop = SeedStyleLoop(cfg, digits)
    loop.epoch()
    benchmark.group = GROUP
    benchmark.extra_info.update(backend="reference", what="seed-style eager PyTorch loop")
    benchmark.pedantic(loop.epoch, rounds=5, iterations=1)


# ImageTrainer backend -> (the conftest table's row, what it is)
TRAINER_ROWS = {"torch": ("philox_reference", "ImageTrainer, backend torch"),
                "fused": ("fused", "ImageTrainer, fused MLP op")}


@pytest.mark.parametrize("backend", list(TRAINER_ROWS))
def bench_epoch_image_trainer(benchmark, request, cfg, digits, backend):
    if backend == "fused":
        request.getfixturevalue("require_fused")
    t = ImageTrainer(cfg, digits, backend=backend)
    t.train_epoch()
    row, what = TRAINER_ROWS[backend]
    benchmark.group = GROUP
    benchmark.extra_info.update(backend=row, what=what)
    benchmark.pedantic(t.train_epoch, rounds=5, iterations=1)


def bench_full_run_fused(benchmark, cfg, digits, require_fused):
    result = {}

    def run():
        t = ImageTrainer(cfg, digits, backend="fused")
        for _ in range(cfg.epochs):
            t.train_epoch()
        result["trainer"] = t

    benchmark.group = "digits-mlp full run (fused)"
    benchmark.extra_info.update(backend="fused_full", epochs=cfg.epochs)
    benchmark.pedantic(run, rounds=1, iterations=1)
    t = result["trainer"]
    q = score_digits(t.generate(fixed_noise(cfg, QUALITY_SAMPLES, QUALITY_NOISE_SEED)))
    benchmark.extra_info.update(quality={k: q[k] for k in ("confident", "spread", "classes_covered")})
