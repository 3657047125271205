"""The default command end to end, as a user runs it: `python -m ganfast.train --out DIR` (the
devnag preset, 5000 epochs) in a fresh interpreter, with and without the plots and the GIF
(issue 12, item 4: well under 5 s of wall time on a 2-core machine, plots included).

    python -m pytest bench/bench_cli.py        # ~1 min

Wall time of the whole process: interpreter and imports, training, the final samples, the
summary, the plots and training.gif. extra_info gives the run's own training time
(summary.json's wall_time_s) and so the rest ("non-training" = wall - training). No limits are
asserted: the figures are for docs/benchmarks.md and the README.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROUNDS = 3


@pytest.mark.parametrize("plots", [True, False], ids=["plots", "no-plots"])
def bench_default_command(benchmark, tmp_path, plots):
    runs = []

    def run():
        out = tmp_path / f"runs{len(runs)}"
        argv = [sys.executable, "-m", "ganfast.train", "--out", str(out), "--quiet"] + ([] if plots else ["--no-plots"])
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, timeout=600)
        wall = time.perf_counter() - t0
        (folder,) = Path(out).iterdir()
        runs.append((wall, json.loads((folder / "summary.json").read_text())["wall_time_s"]))

    benchmark.group = "default command (devnag, 5000 epochs) end to end"
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    wall, training = min(runs)
    benchmark.extra_info.update(backend="plots" if plots else "no_plots", best_wall_s=round(wall, 3),
                                training_s=round(training, 3), non_training_s=round(wall - training, 3))
