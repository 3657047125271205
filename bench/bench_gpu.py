"""The toy-GAN loop on a CUDA GPU: the fused CUDA engine against the seed's own loop in eager
PyTorch on the same GPU, the same loop under torch.compile(mode="reduce-overhead"), and the
fused CPU engine. Skipped without a CUDA device or without ganfast's CUDA kernels.

    python -m pytest bench/bench_gpu.py          # ~2-3 min on an H100; ratio table at the end

Groups (bench/conftest.py prints "reference median / fused median" for groups that have both,
absolute medians for the others):
- "gpu devnag x100 epochs: eager CUDA vs fused CUDA": 100 devnag epochs (batch 500, 20 + 20
  steps each). reference = bench/seed_devnag.py's loop with its modules and data on the GPU
  (SeedLoopCUDA below); fused = ganfast's CUDA engine, population 1.
- "gpu devnag x100 epochs: compiled CUDA vs fused CUDA": the same reference with G, D and the
  moments under torch.compile(mode="reduce-overhead") (skipped, with the reason, where it does
  not compile).
- "gpu devnag x100 epochs: fused CPU vs fused CUDA": the CPU engine (one thread) and the CUDA
  engine, absolute medians.
- "gpu devnag 5000 epochs (fused CUDA)": the preset's whole run; extra_info has the time per
  100 epochs.
- "gpu population devnag x20 epochs": P = 1, 16, 256, 1024, 4096 members x 20 epochs in one
  call; extra_info["gan_steps_per_s"] = P * epochs * (d_steps + g_steps) / median and
  ["gan_epochs_per_s"].
Every timed call ends with torch.cuda.synchronize().
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn, optim

import ganfast
from ganfast import _ext
from ganfast.app.config import load_preset
from ganfast.engine import train_fused
from ganfast.state import init_state

from seed_devnag import Discriminator, Generator, get_moments

EPOCHS = 100
POPULATIONS = (1, 16, 256, 1024, 4096)
POP_EPOCHS = 20


def _gpu_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "needs a CUDA device (torch.cuda.is_available() is False)"
    return None


def _fused_skip_reason() -> str | None:
    if not ganfast.extension_available():
        return f"ganfast extension unavailable: {_ext.UNAVAILABLE_REASON}"
    if not _ext.WITH_CUDA:
        return "ganfast._C was built without its CUDA kernels (ganfast._ext.WITH_CUDA is False)"
    return None


_GPU_SKIP = _gpu_skip_reason()
pytestmark = pytest.mark.skipif(_GPU_SKIP is not None, reason=_GPU_SKIP or "")


@pytest.fixture
def require_fused_cuda():
    reason = _fused_skip_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def devnag():
    return load_preset("devnag")


def synced(fn, *args):
    """fn(*args), then wait for the GPU: what a timer around this call measures is the work."""
    def run():
        out = fn(*args)
        torch.cuda.synchronize()
        return out
    return run


class SeedLoopCUDA:
    """bench/seed_devnag.py's DevnagLoop with its modules and data on a CUDA device: numpy real
    samples moved to the GPU, torch.rand noise drawn on it, nn.Linear, BCELoss, SGD with
    momentum, 20 D steps then 20 G steps per epoch. compile=True wraps G, D and the moments in
    torch.compile(mode="reduce-overhead") (CUDA graphs); the optimizers stay eager."""

    def __init__(self, seed=0, device="cuda", compile=False):
        torch.manual_seed(seed)
        np.random.seed(seed)
        self.device = device
        self.G = Generator(1, 5, 1, torch.tanh).to(device)
        self.D = Discriminator(4, 10, 1, torch.sigmoid).to(device)
        self.criterion = nn.BCELoss()
        self.d_optimizer = optim.SGD(self.D.parameters(), lr=1e-3, momentum=0.9)
        self.g_optimizer = optim.SGD(self.G.parameters(), lr=1e-3, momentum=0.9)
        self.ones = torch.ones([1], device=device)
        self.zeros = torch.zeros([1], device=device)
        if compile:
            self.g_fn = torch.compile(self.G, mode="reduce-overhead")
            self.d_fn = torch.compile(self.D, mode="reduce-overhead")
            self.moments = torch.compile(get_moments, mode="reduce-overhead")
        else:
            self.g_fn, self.d_fn, self.moments = self.G, self.D, get_moments

    def d_sampler(self, n):
        return torch.Tensor(np.random.normal(4.0, 1.25, (1, n))).to(self.device)

    def gi_sampler(self, m, n):
        return torch.rand(m, n, device=self.device)

    def run(self, epochs, minibatch_size=500, d_steps=20, g_steps=20):
        G, D, criterion = self.G, self.D, self.criterion
        for _ in range(epochs):
            for _ in range(d_steps):
                D.zero_grad()
                d_real_decision = self.d_fn(self.moments(self.d_sampler(500)))
                d_real_error = criterion(d_real_decision, self.ones)
                d_real_error.backward()
                d_fake_data = self.g_fn(self.gi_sampler(minibatch_size, 1)).detach()
                d_fake_decision = self.d_fn(self.moments(d_fake_data.t()))
                d_fake_error = criterion(d_fake_decision, self.zeros)
                d_fake_error.backward()
                self.d_optimizer.step()
            for _ in range(g_steps):
                G.zero_grad()
                g_fake_data = self.g_fn(self.gi_sampler(minibatch_size, 1))
                dg_fake_decision = self.d_fn(self.moments(g_fake_data.t()))
                g_error = criterion(dg_fake_decision, self.ones)
                g_error.backward()
                self.g_optimizer.step()


GROUP_EAGER = "gpu devnag x100 epochs: eager CUDA vs fused CUDA"
GROUP_COMPILED = "gpu devnag x100 epochs: compiled CUDA vs fused CUDA"
GROUP_CPU = "gpu devnag x100 epochs: fused CPU vs fused CUDA"


def _fused_cuda_100(benchmark, devnag, group):
    state = init_state(devnag, device="cuda")
    synced(train_fused, devnag, state, 2)()  # warm-up: module load, allocator
    benchmark.group = group
    benchmark.extra_info.update(backend="fused", what="ganfast fused CUDA engine, P=1", epochs=EPOCHS)
    benchmark.pedantic(synced(train_fused, devnag, state, EPOCHS), rounds=5, iterations=1)


def bench_gpu_loop_eager_reference(benchmark):
    loop = SeedLoopCUDA(seed=0)
    synced(loop.run, 2)()  # warm-up (cuBLAS handles, allocator)
    benchmark.group = GROUP_EAGER
    benchmark.extra_info.update(backend="reference", what="seed devnag loop, eager PyTorch on CUDA", epochs=EPOCHS)
    benchmark.pedantic(synced(loop.run, EPOCHS), rounds=3, iterations=1)


def bench_gpu_loop_fused_vs_eager(benchmark, devnag, require_fused_cuda):
    _fused_cuda_100(benchmark, devnag, GROUP_EAGER)


def bench_gpu_loop_compiled_reference(benchmark):
    loop = SeedLoopCUDA(seed=0, compile=True)
    start = time.perf_counter()
    try:
        synced(loop.run, 3)()  # compiles (and records the CUDA graphs)
    except Exception as exc:  # noqa: BLE001  (any compile failure: report it, skip the row)
        pytest.skip(f"torch.compile(mode='reduce-overhead') failed on the seed loop: {type(exc).__name__}: {exc}")
    compile_s = time.perf_counter() - start
    if compile_s > 300:
        pytest.skip(f"torch.compile took {compile_s:.0f} s to warm up; not timed")
    benchmark.group = GROUP_COMPILED
    benchmark.extra_info.update(backend="reference", what="seed devnag loop, torch.compile reduce-overhead on CUDA",
                                compile_s=round(compile_s, 1), epochs=EPOCHS)
    benchmark.pedantic(synced(loop.run, EPOCHS), rounds=3, iterations=1)


def bench_gpu_loop_fused_vs_compiled(benchmark, devnag, require_fused_cuda):
    _fused_cuda_100(benchmark, devnag, GROUP_COMPILED)


def bench_gpu_loop_fused_cpu(benchmark, devnag, require_fused_cuda):
    state = init_state(devnag)
    train_fused(devnag, state, 2)
    benchmark.group = GROUP_CPU
    benchmark.extra_info.update(backend="fused_cpu", what="ganfast fused CPU engine, 1 thread", epochs=EPOCHS)
    benchmark.pedantic(train_fused, args=(devnag, state, EPOCHS), rounds=3, iterations=1)


def bench_gpu_loop_fused_cuda_vs_cpu(benchmark, devnag, require_fused_cuda):
    _fused_cuda_100(benchmark, devnag, GROUP_CPU)


def bench_gpu_full_run_fused(benchmark, devnag, require_fused_cuda):
    def run():
        state = init_state(devnag, device="cuda")
        out = train_fused(devnag, state, devnag.epochs)
        torch.cuda.synchronize()
        return out

    synced(train_fused, devnag, init_state(devnag, device="cuda"), 2)()
    benchmark.group = "gpu devnag 5000 epochs (fused CUDA)"
    benchmark.extra_info.update(backend="fused_full", epochs=devnag.epochs)
    benchmark.pedantic(run, rounds=2, iterations=1)
    benchmark.extra_info["s_per_100_epochs"] = benchmark.stats.stats.median * 100 / devnag.epochs


@pytest.mark.parametrize("population", POPULATIONS)
def bench_gpu_population(benchmark, devnag, require_fused_cuda, population):
    cfg = devnag.replace(population=population)
    state = init_state(cfg, device="cuda")
    synced(train_fused, cfg, state, 1)()
    benchmark.group = f"gpu population devnag x{POP_EPOCHS} epochs"
    benchmark.extra_info.update(backend=f"population_P{population}", population=population, epochs=POP_EPOCHS)
    benchmark.pedantic(synced(train_fused, cfg, state, POP_EPOCHS), rounds=3, iterations=1)
    median = benchmark.stats.stats.median
    steps = population * POP_EPOCHS * (cfg.d_steps + cfg.g_steps)
    benchmark.extra_info["gan_steps_per_s"] = steps / median
    benchmark.extra_info["gan_epochs_per_s"] = population * POP_EPOCHS / median
