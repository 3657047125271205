"""Divergence in toy runs (issue 13, item 1): GanState.diverged read by the run, --on-nan stop |
continue, the summary's "diverged" and "diverged_members", NaN losses for a diverged member,
plots that say "no finite samples" instead of drawing nothing, exit status 3.

The issue's repro (SGD with lr 1e300, exit 0 with "mean nan std nan / W1 nan" before) runs as a
user runs it, `python -m ganfast.train` in a subprocess; the population cases run in-process
with one member poisoned (a NaN put into its G) before an engine call, which the trainer (fused
or reference) then marks and freezes.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

import ganfast.app.cli as train_cli
from conftest import assert_drawn, read_csv, run_dir_of, write_toy_config
from ganfast.app import report, toy_run
from ganfast.app.run import read_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(tmp_path, **overrides):
    return write_toy_config(tmp_path / "c.yaml", **{"batch_size": 32, "epochs": 200, "log_every": 50, **overrides})


def test_the_issue_repro_stops_at_once_with_status_3(tmp_path):
    config = _config(tmp_path, optimizer_g={"kind": "sgd", "lr": 1.0e300})
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    p = subprocess.run([sys.executable, "-m", "ganfast.train", "--config", str(config), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 3, p.stderr
    assert "Traceback" not in p.stderr
    errors = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: the run diverged (member 0 at epoch "), p.stderr
    assert "diverged: the GAN at epoch " in p.stdout and "stopping (--on-nan stop)" in p.stdout
    run = run_dir_of(tmp_path / "out")
    summary = json.loads((run / "summary.json").read_text())
    (mark,) = summary["diverged_members"]
    assert summary["diverged"] is True and summary["on_nan"] == "stop" and mark["member"] == 0
    # stopped within the engine call that saw it (the first calls are 1, then <= 4x as many epochs)
    assert 1 <= mark["epoch"] <= summary["epochs"] < 200
    rows = read_csv(run / "metrics.csv")
    assert int(rows[-1]["epoch"]) == summary["epochs"] and math.isnan(float(rows[-1]["g_loss"]))
    assert float(rows[-1]["d_loss_real"]) != pytest.approx(math.log(2), abs=0.01)  # NaN, not a healthy 0.693
    assert summary["w1"] is None and summary["mean"] is None  # no finite sample: no figure, not NaN
    for name in ("distribution.png", "losses.png", "training.gif"):
        assert_drawn(run / name)
    assert (run / "weights.pt").stat().st_size > 0
    payload = read_checkpoint(run / "checkpoint.pt")  # the diverged state, resumable (it stops again)
    assert int(payload["state"]["gan"]["diverged"][0]) == mark["epoch"]


def _poison(monkeypatch, member: int, at_epoch: int):
    """Put a NaN into `member`'s G before the first engine call at or after `at_epoch`."""
    done = []

    def wrap(real):
        def trainer(cfg, state, n):
            if not done and state.epoch >= at_epoch:
                state.g_params[member, 0] = math.nan
                done.append(state.epoch)
            return real(cfg, state, n)
        return trainer

    monkeypatch.setattr(toy_run, "train_fused", wrap(toy_run.train_fused))
    monkeypatch.setattr(toy_run, "train_reference", wrap(toy_run.train_reference))
    return done


@pytest.mark.parametrize("on_nan", [None, "continue", "stop"])
def test_a_population_member_diverges(tmp_path, monkeypatch, capsys, on_nan):
    """Member 1 of 3 diverges at epoch 11 (poisoned before the call that starts at epoch 10 or
    later). continue (the population default): the others train to the end, member 1 is frozen,
    its logged losses NaN, its W1 infinite, the best member another, exit 0. stop: the training
    ends there, exit 3."""
    config = _config(tmp_path, epochs=40, log_every=10)
    poisoned = _poison(monkeypatch, 1, 10)
    argv = ["--config", str(config), "--out", str(tmp_path / "out"), "--population", "3", "--no-plots"]
    code = train_cli.main(argv + ([f"--on-nan={on_nan}"] if on_nan else []))
    out = capsys.readouterr()
    run = run_dir_of(tmp_path / "out")
    summary = json.loads((run / "summary.json").read_text())
    epoch = poisoned[0] + 1
    assert summary["diverged"] is True and summary["diverged_members"] == [{"member": 1, "epoch": epoch}]
    assert f"diverged: member 1 at epoch {epoch} (a parameter or loss became NaN or infinite)" in out.out
    rows = read_csv(run / "metrics.csv")
    nan_rows = [r for r in rows if math.isnan(float(r["g_loss"]))]
    assert nan_rows and {int(r["member"]) for r in nan_rows} == {1}
    assert summary["best_member"] != 1 and summary["member_w1"][1] in (None, math.inf)
    if on_nan == "stop":
        assert code == 3 and summary["epochs"] < 40 and summary["on_nan"] == "stop"
        assert out.err.startswith(f"error: the run diverged (member 1 at epoch {epoch})")
    else:
        assert code == 0 and summary["epochs"] == 40 and summary["on_nan"] == "continue"
        assert "[median of 2 members; 1 diverged]" in out.out
        assert all(int(r["epoch"]) <= epoch or math.isfinite(float(r["g_loss"])) for r in rows if r["member"] != "1")


def test_every_member_diverged_stops_and_says_so_in_the_plots(tmp_path, monkeypatch, capsys):
    """A population of 1 poisoned: the distribution plot and the animation's frames after it say
    "diverged at epoch N: no finite samples" (the texts matplotlib draws), exit 3."""
    config = _config(tmp_path, epochs=40, log_every=10)
    poisoned = _poison(monkeypatch, 0, 10)
    texts, titles = {}, []
    save = report._save_png

    def spy(fig, path):
        texts[path.name] = [t.get_text() for ax in fig.axes for t in ax.texts]
        return save(fig, path)

    monkeypatch.setattr(report, "_save_png", spy)
    real_title = report._frame_title
    monkeypatch.setattr(report, "_frame_title", lambda *a: titles.append(real_title(*a)) or titles[-1])
    assert train_cli.main(["--config", str(config), "--out", str(tmp_path / "out")]) == 3
    epoch = poisoned[0] + 1
    assert texts["distribution.png"] == [f"diverged at epoch {epoch}: no finite samples"]
    assert titles[-1].endswith(f": diverged at epoch {epoch}: no finite samples")  # the last frame: where it stopped
    assert titles[0] == "epoch 10"


def test_a_plot_of_no_finite_sample_says_so(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(report, "_save_png", lambda fig, path: seen.append([t.get_text() for t in fig.axes[0].texts]))
    report.plot_distribution(tmp_path / "d.png", [math.nan] * 10, {"kind": "normal", "mean": [0.0], "std": [1.0]})
    report.plot_distribution(tmp_path / "d.png", [0.5] * 10, {"kind": "normal", "mean": [0.0], "std": [1.0]})
    assert seen == [["no finite samples"], []]


def test_on_nan_is_for_toy_runs(tmp_path, capsys):
    assert train_cli.main(["--preset", "digits-mlp", "--on-nan", "stop", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: --on-nan is for toy runs")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_an_image_run_that_diverges_stops_with_status_3(tmp_path, capsys, backend):
    """Image runs are watched too: Adam at lr 1e300 makes the weights infinite. On the fused nets
    the losses stay finite (D(G(z)) = 1, a loss of 100) and the run went on to exit 0 and scored
    'digits'; on the PyTorch nets nn.BCELoss raised on the NaN (a traceback, exit 1). Now the run
    stops at the next logged row, says so once on stderr, and its resume stops again."""
    pytest.importorskip("sklearn")
    config = write_toy_config(tmp_path / "c.yaml", "digits-mlp", **{
        "data.limit": 64, "batch_size": 16, "log_every": 2, "epochs": 3, "generator.hidden": [32],
        "discriminator.hidden": [32], "optimizer_g.lr": 1e300})
    assert train_cli.main(["--config", str(config), "--out", str(tmp_path / "out"), "--no-plots",
                           "--backend", backend]) == 3
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == ["error: the run diverged (member 0 at epoch 1); its report says so"]
    assert "diverged: the GAN at epoch 1 (a parameter or loss became NaN or infinite); stopping" in out
    assert "quality of" not in out
    run = run_dir_of(tmp_path / "out")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["diverged"] is True and summary["diverged_members"] == [{"member": 0, "epoch": 1}]
    assert (summary["epochs"], summary["iterations"]) == (1, 2) and "quality" not in summary
    assert [int(r["iteration"]) for r in read_csv(run / "metrics.csv")] == [2]
    assert train_cli.main(["--resume", str(run), "--no-plots", "--backend", backend]) == 3  # the checkpoint keeps it
    out, err = capsys.readouterr()
    assert "diverged: the GAN at epoch 1" in out and "epoch 2/3" not in out
    assert json.loads((run / "summary.json").read_text())["iterations"] == 2


def test_a_healthy_image_run_is_not_diverged(tmp_path):
    pytest.importorskip("sklearn")
    config = write_toy_config(tmp_path / "c.yaml", "digits-mlp", **{
        "data.limit": 64, "batch_size": 16, "log_every": 2, "epochs": 1, "generator.hidden": [32],
        "discriminator.hidden": [32]})
    assert train_cli.main(["--config", str(config), "--out", str(tmp_path / "out"), "--no-plots", "--quiet"]) == 0
    summary = json.loads((run_dir_of(tmp_path / "out") / "summary.json").read_text())
    assert summary["diverged"] is False and summary["diverged_members"] == [] and summary["g_loss"] is not None
