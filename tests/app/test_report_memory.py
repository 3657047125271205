"""The end of a toy run in bounded memory (issue 13, item 5): the report of a G with a very
wide hidden layer draws its 100,000 final samples in blocks (ganfast.sample) instead of one
(100000 x width) activation (40 GB for a 100000-wide layer), and a population's members are
scored in chunks (tests/app/test_cli.py).

`python -m ganfast.train` runs in a subprocess under an address-space limit
(tests/app/fault_hooks: RLIMIT_AS) of LIMIT bytes: torch's import and the run fit in it; one
float32 activation of the old report did not (it failed with "not enough memory"). The width is
12000, not 100000: the memory bound is the same code path, and 100,000 samples through a
100000-wide layer take minutes of tanh on two cores (the test would be all waiting).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import run_dir_of
from ganfast.app.config import load_preset

HOOKS = Path(__file__).resolve().parent / "fault_hooks"
LIMIT = 4 << 30
WIDTH = 12_000  # one (100,000 x WIDTH) float32 activation: 4.8 GB > LIMIT


def _run(tmp_path, cfg, *args):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    env = dict(os.environ, GANFAST_FAULT_RLIMIT_AS=str(LIMIT), OMP_NUM_THREADS="2")
    env["PYTHONPATH"] = os.pathsep.join([str(HOOKS), *filter(None, [env.get("PYTHONPATH")])])
    argv = [sys.executable, "-m", "ganfast.train", "--config", str(tmp_path / "c.yaml"), "--out",
            str(tmp_path / "out"), "--no-plots", "--quiet", *args]
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads((run_dir_of(tmp_path / "out") / "summary.json").read_text())


def test_a_wide_generator_reports_in_bounded_memory(tmp_path):
    cfg = load_preset("devnag").replace({"generator.hidden": [WIDTH], "batch_size": 8, "epochs": 2,
                                         "log_every": 1})
    summary = _run(tmp_path, cfg)
    assert summary["n_samples"] == 100_000 and summary["epochs"] == 2
    assert summary["w1"] is not None and summary["w1"] == summary["w1"]  # finite, not NaN
