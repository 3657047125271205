"""Sweeps (python -m ganfast.sweep): GAN-epochs/s of a 256-member devnag sweep, and what the sweep
itself costs beside the engine.

    python -m pytest bench/bench_sweep.py          # ~3-5 min on a loaded 2-core box

Groups:
- "sweep devnag 256 members": the whole sweep (the CLI's path in-process: init, engine calls,
  scoring every --eval-every epochs, the folder with plots) of 256 devnag members for SWEEP_EPOCHS
  epochs, with 1 and 2 threads; extra_info: GAN-epochs/s and the sweep's own overhead share
  (summary.json's overhead_share: everything but the engine calls, over the engine time; on
  SWEEP_EPOCHS epochs the final evaluation on 20000 samples and the plots weigh about ten times
  what they do in a whole 5000-epoch run, so this share is an upper bound for one).
- "one by one (scaled)": ONE_BY_ONE members, each through ganfast.train(...) (the training CLI's
  path, in memory) for SWEEP_EPOCHS epochs, one after the other; extra_info: GAN-epochs/s, the
  figure to compare with the sweep's (fewer members, the same epochs per member).
- "scoring 256 members": one evaluation (ganfast.sample + ganfast.metrics) of 256 devnag members
  on the default --eval-samples; extra_info: its share of one evaluation period of training
  (the default --eval-every epochs of 256 members, timed here too).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import torch

import ganfast
from ganfast.app.config import load_preset
from ganfast.app.sweep import cli, scoring
from ganfast.app.sweep.run import Plan
from ganfast.engine import train_fused
from ganfast.state import init_state

#: A tenth of devnag's 5000 epochs: the rate, not the whole run. The environment may shrink the
#: suite for a smoke run (GANFAST_BENCH_SWEEP=members,epochs,one_by_one, e.g. 16,50,1); the
#: figures then say so through extra_info (members, epochs).
MEMBERS, SWEEP_EPOCHS, ONE_BY_ONE = (int(x) for x in os.environ.get("GANFAST_BENCH_SWEEP", "256,500,4").split(","))


def _with_threads(threads, fn):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
def bench_sweep_devnag(benchmark, require_fused, threads):
    summaries = []

    def run():
        with tempfile.TemporaryDirectory() as out:
            code = cli.main(["--preset", "devnag", "--seeds", str(MEMBERS), "--epochs", str(SWEEP_EPOCHS),
                             "--out", out, "--quiet", "--threads", str(threads)])
            assert code == 0
            folder = next(Path(out).iterdir())
            summaries.append(json.loads((folder / "summary.json").read_text()))

    benchmark.group = f"sweep devnag {MEMBERS} members"
    benchmark.extra_info.update(backend=f"sweep_threads{threads}", threads=threads, members=MEMBERS,
                                epochs=SWEEP_EPOCHS)
    benchmark.pedantic(run, rounds=1, iterations=1)
    s = summaries[-1]
    benchmark.extra_info.update(gan_epochs_per_s=MEMBERS * SWEEP_EPOCHS / benchmark.stats.stats.median,
                                engine_gan_epochs_per_s=s["gan_epochs"] / s["train_time_s"],
                                overhead_share=s["overhead_share"])


def bench_one_by_one(benchmark, require_fused):
    def run():
        for seed in range(ONE_BY_ONE):
            ganfast.train("devnag", seed=seed, epochs=SWEEP_EPOCHS)

    benchmark.group = "one by one (scaled)"
    benchmark.extra_info.update(backend="one_by_one", members=ONE_BY_ONE, epochs=SWEEP_EPOCHS,
                                what=f"{ONE_BY_ONE} members through ganfast.train, one after the other")
    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["gan_epochs_per_s"] = ONE_BY_ONE * SWEEP_EPOCHS / benchmark.stats.stats.median


@pytest.mark.parametrize("threads", [1, 2])
def bench_scoring(benchmark, require_fused, threads):
    cfg = load_preset("devnag")
    state = init_state(cfg, population=MEMBERS)
    every, n = Plan().eval_every, Plan().eval_samples
    train_fused(cfg, state, 2)
    period = _with_threads(threads, lambda: _timed(lambda: train_fused(cfg, state, every)))
    benchmark.group = f"scoring {MEMBERS} members"
    benchmark.extra_info.update(backend=f"scoring_threads{threads}", threads=threads, samples=n, eval_every=every)
    _with_threads(threads, lambda: benchmark.pedantic(scoring.score, args=(cfg.gan_spec, state, n, 1), rounds=5,
                                                      iterations=1))
    benchmark.extra_info.update(training_period_s=period, share=benchmark.stats.stats.median / period)


def _timed(fn) -> float:
    import time

    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
