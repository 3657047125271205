"""The whole toy-GAN loop: the fused engine vs eager PyTorch, in one run.

    python -m pytest bench/bench_train.py          # ~1-2 min; ratio table at the end

Groups (each reference/fused pair measures the same unit of work, so the ratio of medians is
the speed-up):
- "loop devnag x100 epochs": 100 devnag epochs (batch 500, 20 + 20 steps each).
  reference = the seed's own loop (bench/seed_devnag.py: numpy + torch.rand samplers, nn.Linear,
  BCELoss, SGD); fused = ganfast's engine. Timed alongside: "compiled_reference" (the seed loop
  with torch.compile on G, D and the moments) and "philox_reference" (ganfast.reference_train,
  the test oracle, which draws its numbers with Philox written in torch ops).
- "loop devnag 5000 epochs (fused)": the preset's whole run, fused, for the absolute time.
- "engine <preset>": each toy preset's engine for a few hundred epochs (vanilla: 20), on the
  generic loop (GANFAST_ENGINE_PATH=generic: the engine before the fast path) and on auto (the
  fast path where it has kernels); ms per epoch (best call) in extra_info.
- "population P=.. threads=..": P devnag GANs x 20 epochs, fused; GAN-epochs/s in extra_info.
Threads: one (bench/conftest.py), except where a benchmark sets its own.
"""
from __future__ import annotations

import statistics
import time

import pytest
import torch

from ganfast.app.config import load_preset
from ganfast.engine import train_fused
from ganfast.reference_train import train_reference
from ganfast.state import init_state

from seed_devnag import DevnagLoop
from conftest import POPULATION_EPOCHS

EPOCHS = 100


@pytest.fixture(scope="module")
def devnag():
    return load_preset("devnag")


def bench_loop_seed_reference(benchmark):
    loop = DevnagLoop(seed=0)
    loop.run(2)  # warm-up (imports, allocator)
    benchmark.group = "loop devnag x100 epochs"
    benchmark.extra_info.update(backend="reference", what="seed devnag loop, eager PyTorch")
    benchmark.pedantic(loop.run, args=(EPOCHS,), rounds=3, iterations=1)


def bench_loop_seed_compiled(benchmark):
    loop = DevnagLoop(seed=0, compiled=True)
    loop.run(2)  # compiles (10-30 s), not timed
    benchmark.group = "loop devnag x100 epochs"
    benchmark.extra_info.update(backend="compiled_reference", what="seed devnag loop under torch.compile")
    benchmark.pedantic(loop.run, args=(EPOCHS,), rounds=3, iterations=1)


def bench_loop_philox_reference(benchmark, devnag):
    state = init_state(devnag)
    train_reference(devnag, state, 1)
    benchmark.group = "loop devnag x100 epochs"
    benchmark.extra_info.update(backend="philox_reference", what="ganfast.reference_train (Philox in torch ops)")
    benchmark.pedantic(train_reference, args=(devnag, state, EPOCHS), rounds=2, iterations=1)


def bench_loop_fused(benchmark, devnag, require_fused):
    state = init_state(devnag)
    train_fused(devnag, state, 2)
    benchmark.group = "loop devnag x100 epochs"
    benchmark.extra_info.update(backend="fused", what="ganfast fused engine")
    benchmark.pedantic(train_fused, args=(devnag, state, EPOCHS), rounds=10, iterations=1)


def bench_loop_fused_full_run(benchmark, devnag, require_fused):
    def run():
        state = init_state(devnag)
        return train_fused(devnag, state, devnag.epochs)

    benchmark.group = "loop devnag 5000 epochs (fused)"
    benchmark.extra_info.update(backend="fused_full", epochs=devnag.epochs)
    benchmark.pedantic(run, rounds=3, iterations=1)


#: preset -> epochs per timed call (about 0.1-0.3 s each)
ENGINE_EPOCHS = {"devnag": 300, "devnag-elu": 300, "vanilla": 20, "how-to-gan": 60, "ring8": 300}


@pytest.mark.parametrize("path", ["generic", "auto"])
@pytest.mark.parametrize("preset", list(ENGINE_EPOCHS))
def bench_engine_epochs(benchmark, require_fused, engine_path, preset, path):
    """The fused engine on each toy preset, for the time per epoch (extra_info["ms_per_epoch"]),
    before and after the fast path: GANFAST_ENGINE_PATH=generic is the engine's loop as it was
    before it (csrc/core/gan_step.h), auto takes the fast path where the shapes have kernels
    (devnag, devnag-elu, vanilla) and is the same loop elsewhere. The session summary prints
    generic / auto per preset."""
    cfg = load_preset(preset)
    state = init_state(cfg)
    epochs = ENGINE_EPOCHS[preset]
    engine_path(path)
    train_fused(cfg, state, 2)
    benchmark.group = f"engine {preset} ({epochs} epochs)"
    benchmark.extra_info.update(backend="generic" if path == "generic" else "fused", preset=preset, epochs=epochs,
                                path=path)
    benchmark.pedantic(train_fused, args=(cfg, state, epochs), rounds=5, iterations=1)
    benchmark.extra_info["ms_per_epoch"] = 1e3 * benchmark.stats.stats.min / epochs


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("population", [1, 16, 64, 256])
def bench_population(benchmark, devnag, require_fused, population, threads):
    cfg = devnag.replace(population=population)
    state = init_state(cfg)
    epochs = POPULATION_EPOCHS
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        train_fused(cfg, state, 1)
        benchmark.group = f"population threads={threads}"
        benchmark.extra_info.update(backend=f"population_P{population}", population=population,
                                    threads=threads, epochs=epochs)
        benchmark.pedantic(train_fused, args=(cfg, state, epochs), rounds=3, iterations=1)
    finally:
        torch.set_num_threads(before)
    benchmark.extra_info["gan_epochs_per_s"] = population * epochs / benchmark.stats.stats.median


@pytest.mark.parametrize("population", [64, 256])
def bench_thread_scaling(benchmark, devnag, require_fused, population):
    """2 threads / 1 thread, measured interleaved: each round times one call on 1 thread, then
    the same call on 2, and the ratio of the pair is that round's figure (extra_info
    "ratios"; the summary prints their median). Timing the two thread counts minutes apart
    (bench_population) folds this VM's drift into the ratio: single-thread rates seen
    here within a few minutes ranged 2,000-3,500 GAN-epochs/s."""
    cfg = devnag.replace(population=population)
    state = init_state(cfg)
    epochs = POPULATION_EPOCHS
    before = torch.get_num_threads()
    ratios = []

    def one_round():
        times = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            train_fused(cfg, state, epochs)
            times.append(time.perf_counter() - t0)
        ratios.append(times[0] / times[1])

    try:
        train_fused(cfg, state, 1)
        benchmark.group = "population thread scaling (interleaved)"
        # no "backend": this is not one side of a comparison, so bench/conftest.py's table of
        # medians leaves it out (a round's time mixes both thread counts); its line prints the ratio
        benchmark.extra_info.update(population=population, epochs=epochs)
        benchmark.pedantic(one_round, rounds=7, iterations=1)
    finally:
        torch.set_num_threads(before)
    benchmark.extra_info["ratios"] = [round(r, 3) for r in ratios]
    benchmark.extra_info["median_ratio"] = statistics.median(ratios)
