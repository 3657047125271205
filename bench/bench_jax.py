"""ganfast's fused engine against the same devnag loop in JAX (bench/jax_devnag.py: jit, lax.scan
over the steps and the epochs, vmap over a population), in one run:

    pip install -e .[bench]        # jax, jaxlib
    python -m pytest bench/bench_jax.py

Skipped when jax is not installed. JAX runs on one thread (XLA_FLAGS below, set before jax is
imported; torch is on one thread for the session, bench/conftest.py), as the fused engine does.
Groups (the session summary prints jax median / fused median):
- "loop devnag x100 epochs": also in bench_train.py (the seed's eager loop, torch.compile); here
  JAX's one GAN, 100 epochs per call, compile time excluded.
- "population P=64 x20 epochs (1 thread)": 64 devnag GANs, 20 epochs: jax.vmap vs the fused
  engine's population (its GAN-epochs/s in extra_info).
"""
from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("jax", reason="jax is not installed (pip install -e .[bench])")

import jax_devnag  # noqa: E402
from ganfast.app.config import load_preset  # noqa: E402
from ganfast.engine import train_fused  # noqa: E402
from ganfast.state import init_state  # noqa: E402

EPOCHS = 100
POPULATION, POP_EPOCHS = 64, 20


def bench_loop_jax(benchmark):
    state = jax_devnag.init_state(0)
    state = jax_devnag.run(state, EPOCHS)  # compiles for this number of epochs (not timed)
    benchmark.group = "loop devnag x100 epochs"
    benchmark.extra_info.update(backend="jax", what="devnag in JAX: jit + lax.scan, one thread")
    benchmark.pedantic(jax_devnag.run, args=(state, EPOCHS), rounds=5, iterations=1)


def bench_population_jax(benchmark):
    states = jax_devnag.init_population(POPULATION)
    states = jax_devnag.run_population(states, POP_EPOCHS)  # compiles
    benchmark.group = f"population P={POPULATION} x{POP_EPOCHS} epochs (1 thread)"
    benchmark.extra_info.update(backend="jax", what="jax.vmap over 64 devnag GANs")
    benchmark.pedantic(jax_devnag.run_population, args=(states, POP_EPOCHS), rounds=3, iterations=1)
    benchmark.extra_info["gan_epochs_per_s"] = POPULATION * POP_EPOCHS / benchmark.stats.stats.median


def bench_population_fused(benchmark, require_fused):
    cfg = load_preset("devnag").replace(population=POPULATION)
    state = init_state(cfg)
    train_fused(cfg, state, 1)
    assert torch.get_num_threads() == 1
    benchmark.group = f"population P={POPULATION} x{POP_EPOCHS} epochs (1 thread)"
    benchmark.extra_info.update(backend="fused", what="ganfast population, one thread")
    benchmark.pedantic(train_fused, args=(cfg, state, POP_EPOCHS), rounds=3, iterations=1)
    benchmark.extra_info["gan_epochs_per_s"] = POPULATION * POP_EPOCHS / benchmark.stats.stats.median


def bench_loop_fused_for_jax(benchmark, require_fused):
    """The fused 100 epochs again, so that this file alone prints the JAX ratio."""
    cfg = load_preset("devnag")
    state = init_state(cfg)
    train_fused(cfg, state, 2)
    benchmark.group = "loop devnag x100 epochs"
    benchmark.extra_info.update(backend="fused", what="ganfast fused engine")
    benchmark.pedantic(train_fused, args=(cfg, state, EPOCHS), rounds=10, iterations=1)
