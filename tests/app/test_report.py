import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ganfast.app.report import (
    distance_to_target,
    plot_losses,
    plot_moments,
    write_animation,
    write_metrics_csv,
    write_report,
    write_summary,
)

NORMAL = {"kind": "normal", "mean": [1.5], "std": [2.0]}
ANGLES = np.arange(8) * 2 * np.pi / 8
RING = {"kind": "mixture", "centers": 2 * np.c_[np.cos(ANGLES), np.sin(ANGLES)], "std": 0.05}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _phi(z):
    return 0.5 * math.erfc(-z / math.sqrt(2))


def _ring_samples(rng, modes, n=20000):
    k = rng.choice(modes, size=n)
    return RING["centers"][k] + 0.05 * rng.standard_normal((n, 2))


def _no_tmp(folder):
    return not [p for p in Path(folder).rglob("*") if p.name.endswith(".tmp")]


def test_import_does_not_load_matplotlib():
    # load the file alone: ganfast/__init__ (torch) is not what this test is about
    path = Path(__file__).resolve().parents[2] / "ganfast" / "app" / "report.py"
    code = (
        "import importlib.util as u, sys; s = u.spec_from_file_location('r', sys.argv[1]); "
        "m = sys.modules['r'] = u.module_from_spec(s); s.loader.exec_module(m); "
        "sys.exit('matplotlib' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code, str(path)]).returncode == 0


def test_samples_from_target_are_close():
    x = np.random.default_rng(0).normal(1.5, 2.0, 20000)
    d = distance_to_target(x, NORMAL)
    assert d["dim"] == 1 and d["n_samples"] == 20000 and d["n_nonfinite"] == 0
    assert d["w1"] < 0.05 * 2.0 and d["ks"] < 0.02
    assert abs(d["mean"] - 1.5) < 0.05 and abs(d["std"] - 2.0) < 0.05
    assert d["target_mean"] == 1.5 and d["target_std"] == 2.0


@pytest.mark.parametrize("shift", [-1.0, 3.0])
def test_shifted_distribution(shift):
    x = np.random.default_rng(1).normal(1.5 + shift, 2.0, 20000)
    d = distance_to_target(x, NORMAL)
    assert d["w1"] == pytest.approx(abs(shift), rel=0.05)
    # the CDFs of two equal-std normals differ most halfway between the means
    assert d["ks"] == pytest.approx(2 * _phi(abs(shift) / 4) - 1, abs=0.02)


def test_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 2.5, 5000)
    d = distance_to_target(x, NORMAL)
    assert d["ks"] == pytest.approx(stats.kstest(x, "norm", args=(1.5, 2.0)).statistic, abs=1e-6)
    quantiles = stats.norm.ppf((np.arange(5000) + 0.5) / 5000, 1.5, 2.0)
    assert d["w1"] == pytest.approx(stats.wasserstein_distance(x, quantiles), abs=1e-4)
    # a 1-D mixture goes through the same marginal code
    mix = {"kind": "mixture", "centers": [-2.0, 1.0, 4.0], "std": [0.5, 1.0, 0.3], "weights": [1, 2, 1]}
    y = rng.normal(0.0, 2.0, 5000)
    cdf = lambda v: (stats.norm.cdf(v, -2, 0.5) + 2 * stats.norm.cdf(v, 1, 1) + stats.norm.cdf(v, 4, 0.3)) / 4
    assert distance_to_target(y, mix)["ks"] == pytest.approx(stats.kstest(y, cdf).statistic, abs=1e-6)


def test_ring_mode_coverage():
    rng = np.random.default_rng(3)
    full = distance_to_target(_ring_samples(rng, range(8)), RING)
    assert full["n_modes"] == 8 and full["modes_covered"] == 8 and full["mode_coverage"] == 1.0
    assert full["high_quality"] > 0.95 and len(full["mean"]) == 2 and len(full["w1"]) == 2
    two = distance_to_target(_ring_samples(rng, [0, 3]), RING)
    assert two["modes_covered"] == 2 and two["mode_coverage"] == 0.25 and two["high_quality"] > 0.95
    collapsed = distance_to_target(np.zeros((1000, 2)), RING)  # the centre of the ring is no mode
    assert collapsed["mode_coverage"] == 0.0 and collapsed["high_quality"] == 0.0


def test_nonfinite_samples_are_counted_and_ignored():
    x = np.random.default_rng(4).normal(1.5, 2.0, 1000)
    x[:10] = np.nan
    x[10] = np.inf
    d = distance_to_target(x, NORMAL)
    assert d["n_nonfinite"] == 11 and math.isfinite(d["w1"]) and math.isfinite(d["mean"])
    with pytest.raises(ValueError):
        distance_to_target(np.zeros((10, 2)), NORMAL)


def test_metrics_csv_and_summary_json(tmp_path):
    rows = [{"member": 0, "epoch": e, "g_loss": np.float32(0.5), "d_loss_real": 0.25} for e in (1, 2)]
    rows.append({"member": 0, "epoch": 3, "g_loss": 0.1, "d_loss_real": None, "extra": 7})
    path = write_metrics_csv(tmp_path / "m" / "metrics.csv", rows)
    with open(path, newline="") as f:
        back = list(csv.DictReader(f))
    assert list(back[0]) == ["member", "epoch", "g_loss", "d_loss_real", "extra"]
    assert back[0]["g_loss"] == "0.5" and back[2]["d_loss_real"] == "" and back[2]["extra"] == "7"

    summary = {"z": np.float64(1.5), "a": np.arange(3), "n": np.int64(4), "bad": float("nan"), "ok": np.bool_(True)}
    text = write_summary(tmp_path / "summary.json", summary).read_text()
    assert json.loads(text) == {"z": 1.5, "a": [0, 1, 2], "n": 4, "bad": None, "ok": True}
    assert text.index('"z"') < text.index('"a"')  # insertion order, not sorted
    assert _no_tmp(tmp_path)


def test_population_plots(tmp_path):
    epochs = np.arange(10)
    means = np.random.default_rng(5).normal(size=(4, 10))
    for values in (means[0], means):
        assert plot_moments(tmp_path / "m.png", epochs, values, abs(values), 0.0, 1.0).read_bytes()[:8] == PNG_MAGIC
        assert plot_losses(tmp_path / "l.png", epochs, values, -values).read_bytes()[:8] == PNG_MAGIC


def test_animation_thins_frames(tmp_path):
    from PIL import Image

    frames = [{"epoch": e, "samples": np.full(50, e / 10.0), "grid": None, "d_grid": None} for e in range(25)]
    path = write_animation(tmp_path / "a.gif", frames, NORMAL, max_frames=6)
    with Image.open(path) as im:
        assert im.n_frames == 6 and im.size == (432, 288)


@pytest.mark.parametrize("dim", [1, 2])
def test_animation_blitting_draws_what_a_whole_draw_draws(dim):
    """Each blitted frame against the same frame drawn whole: the moving artists (histogram or
    scatter, D's curve, the title) change from frame to frame, the still ones stay in place and
    in their z-order. They may differ only where the histogram reaches under the legend (pasted
    from the still figure, so nothing shows through its 80%-opaque box) and the axes' top edge:
    < 1% of the pixels (measured: at most 0.4% in 1-D, 0.15% in 2-D); a background not restored
    fails it by far."""
    from ganfast.app.report import _animation_images, _parse_target

    rng = np.random.default_rng(8)
    grid = np.linspace(-6, 9, 50)
    if dim == 1:
        frames = [{"epoch": 100 * e, "samples": np.r_[rng.normal(e - 3.0, 0.6, 200), rng.normal(6.5 + e / 3, 0.3, 600)], "grid": grid,
                   "d_grid": 1 / (1 + np.exp(-grid / e))} for e in range(1, 6)]
    else:
        frames = [{"epoch": 100 * e, "samples": _ring_samples(rng, range(e), 800) * (0.6 + e / 10)}
                  for e in range(1, 6)]
    t = _parse_target(NORMAL if dim == 1 else RING)
    blitted, whole = _animation_images(frames, t), _animation_images(frames, t, blit=False)
    assert len(blitted) == len(whole) == 5
    for a, b in zip(blitted, whole):
        differ = np.any(a != b, axis=-1)
        assert differ.mean() < 0.01, differ.mean()
    # frames differ from each other (the moving artists move), as they do when drawn whole
    for i in range(1, 5):
        assert np.any(blitted[i] != blitted[i - 1], axis=-1).mean() > 0.002


def _rows(members=2, epochs=5):
    rng = np.random.default_rng(6)
    return [
        {"member": m, "epoch": 100 * e, "d_loss_real": rng.random(), "d_loss_fake": rng.random(),
         "g_loss": rng.random(), "fake_mean": rng.normal(1.5), "fake_std": rng.random() + 1.5}
        for e in range(1, epochs + 1) for m in range(members)
    ]


@pytest.mark.parametrize("dim", [1, 2])
def test_write_report(tmp_path, dim):
    from PIL import Image

    rng = np.random.default_rng(7)
    target = NORMAL if dim == 1 else RING
    sample = (lambda n: rng.normal(1.5, 2.0, n)) if dim == 1 else (lambda n: _ring_samples(rng, range(8), n))
    grid = np.linspace(-6, 9, 50)
    frames = [{"epoch": 100 * e, "samples": sample(500), "grid": grid if dim == 1 else None,
               "d_grid": 1 / (1 + np.exp(-grid / e)) if dim == 1 else None} for e in range(1, 5)]
    summary = write_report(tmp_path / "run", rows=_rows(), final_samples=sample(2000), target=target,
                           frames=frames, extra_summary={"seed": np.int64(3), "preset": "devnag"})
    run = tmp_path / "run"
    pngs = ["distribution.png", "losses.png"] + (["moments.png"] if dim == 1 else [])
    assert sorted(p.name for p in run.iterdir()) == sorted(pngs + ["metrics.csv", "summary.json", "training.gif"])
    for name in pngs:
        assert (run / name).read_bytes()[:8] == PNG_MAGIC
    with Image.open(run / "training.gif") as im:
        assert im.format == "GIF" and im.n_frames == 4
    loaded = json.loads((run / "summary.json").read_text())
    assert loaded == summary and loaded["seed"] == 3 and loaded["last_epoch"] == 500 and loaded["n_members"] == 2
    assert ("mode_coverage" in loaded) == (dim == 2)
    with open(run / "metrics.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 10
    assert _no_tmp(tmp_path)


def test_interrupted_run_without_plots_or_data(tmp_path):
    summary = write_report(tmp_path, rows=[], final_samples=None, target=NORMAL, plots=True)
    assert summary == {} and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "summary.json"]
