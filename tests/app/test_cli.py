"""Tests of the training CLI with toy presets (ganfast/app/cli.py and toy_run.py,
`python -m ganfast.train`).

The CLI runs in-process through main([...]) with tiny configs (small batches, a few epochs)
written to YAML files under tmp_path, so the module stays fast. Runs that must be
bit-identical (resume, Ctrl-C) use the fused CPU engine and are skipped without it.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import ganfast
import ganfast.app.cli as train_cli
from conftest import assert_drawn, read_csv, requires_ext, run_dir_of
from ganfast.app import toy_run
from ganfast.app.config import list_presets, load_config, load_preset
from ganfast.app.run import read_checkpoint
from ganfast.engine import METRIC_NAMES, train_fused
from ganfast.random import FINAL_NOISE_SHIFT, FIXED_NOISE_SHIFT, derived_seed
from ganfast.state import GanState

STATE_FIELDS = ("g_params", "d_params", "g_opt", "d_opt", "offsets", "epochs", "seeds", "lrs")
PLOTS = ("distribution.png", "moments.png", "losses.png", "training.gif")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- helpers -------------------------------------------------------------------------------

def write_config(path: Path, preset: str = "devnag", **overrides) -> Path:
    """A preset shrunk for tests (batch 64 unless overridden), written as YAML."""
    cfg = load_preset(preset).replace({"batch_size": 64, **overrides})
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return path


def checkpoint_state(run_dir: Path):
    """(GanState, config dict, {"rows", "frames"}) of a toy run's checkpoint."""
    payload = read_checkpoint(run_dir / "checkpoint.pt")
    assert payload["kind"] == "toy"
    extra = {"rows": payload["rows"], "frames": payload["state"]["frames"]}
    return GanState(**payload["state"]["gan"]), payload["config"], extra


def assert_states_equal(a, b):
    for name in STATE_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and torch.equal(x, y), f"{name} differs"


def assert_frames_equal(fa: list, fb: list):
    """The animation frames of two runs, bit for bit (their values are tensors)."""
    assert len(fa) == len(fb)
    for a, b in zip(fa, fb):
        assert a.keys() == b.keys()
        for key, x in a.items():
            y = b[key]
            same = (x.dtype == y.dtype and torch.equal(x, y)) if isinstance(x, torch.Tensor) else x == y
            assert same, f"frame of epoch {a['epoch']}: {key} differs"


# --- a whole run -----------------------------------------------------------------------------

def test_devnag_run_writes_the_run_folder(tmp_path, capsys):
    config = write_config(tmp_path / "devnag.yaml", epochs=40, log_every=20)
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(config), "--out", str(out)]) == 0
    run = run_dir_of(out)
    assert run.name.startswith("devnag-")
    stdout = capsys.readouterr().out

    # config.yaml is the resolved config and reads back to the same TrainConfig
    assert load_config(run / "config.yaml") == load_config(config)

    rows = read_csv(run / "metrics.csv")
    assert list(rows[0]) == ["member", "epoch", *METRIC_NAMES]
    assert [int(r["epoch"]) for r in rows] == [20, 40]  # 2 logs x population 1

    summary = json.loads((run / "summary.json").read_text())
    for key in ("mean", "std", "target_mean", "target_std", "w1", "ks", "backend", "device",
                "dtype", "epochs", "population", "seed", "wall_time_s", "epochs_per_s",
                "best_member", "preset", "config", "interrupted"):
        assert key in summary, key
    assert summary["backend"] == ("fused" if ganfast.extension_available() else "torch")
    assert summary["epochs"] == 40 and summary["population"] == 1 and not summary["interrupted"]
    assert summary["n_samples"] == 100_000 and summary["target_mean"] == 4.0

    weights = torch.load(run / "weights.pt", weights_only=True)
    cfg = load_config(config)
    G = ganfast.Generator.from_spec(cfg.g_spec)
    G.load_state_dict(weights["generator"])
    D = ganfast.Discriminator.from_spec(cfg.d_spec)
    D.load_state_dict(weights["discriminator"])
    state, _, _ = checkpoint_state(run)
    assert torch.equal(G.params.detach(), state.g_params[0])
    assert torch.equal(weights["population"]["d_params"], state.d_params)
    assert G.eval()(torch.rand(7, 1)).shape == (7, 1)

    for name in PLOTS:
        assert_drawn(run / name)
    assert "epoch    20/40  D real " in stdout and "(target 4.00, 1.25)" in stdout
    assert f"run folder: {run}" in stdout and "W1 " in stdout and "KS " in stdout

    # the same second: a second run gets a fresh folder, never the first one's
    assert train_cli.main(["--config", str(config), "--out", str(out), "--epochs", "1",
                           "--no-plots", "--quiet"]) == 0
    assert len([p for p in out.iterdir() if p.is_dir()]) == 2


TOY_PRESETS = list_presets("toy")  # the image presets: test_image_run.py


@pytest.mark.parametrize("preset", TOY_PRESETS)
def test_every_preset_runs_from_the_cli(tmp_path, capsys, preset):
    config = write_config(tmp_path / "c.yaml", preset, epochs=2, log_every=1, batch_size=16)
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(config), "--out", str(out), "--no-plots", "--quiet"]) == 0
    run = run_dir_of(out)
    assert not any((run / p).exists() for p in PLOTS)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["name"] == preset
    assert len(read_csv(run / "metrics.csv")) == 2
    stdout = capsys.readouterr().out
    assert "epoch " not in stdout.replace("epochs", "")  # --quiet: no per-log lines
    assert "W1 " in stdout
    if load_preset(preset).data.kind != "normal":
        assert "modes covered" in stdout and "mode_coverage" in summary


def test_frames_have_d_on_a_grid_for_raw_input_discriminators(tmp_path):
    config = write_config(tmp_path / "c.yaml", "how-to-gan", epochs=2, log_every=1, batch_size=16)
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(config), "--out", str(out), "--no-plots", "--quiet"]) == 0
    _, _, extra = checkpoint_state(run_dir_of(out))
    frames = extra["frames"]
    assert [f["epoch"] for f in frames] == [1, 2]
    # tensors, not lists: a checkpoint pickles each as one storage
    assert all(isinstance(f[k], torch.Tensor) for f in frames for k in ("samples", "grid", "d_grid"))
    assert frames[0]["samples"].shape == (2000,) and frames[0]["grid"].shape == (200,)
    d_grid = frames[-1]["d_grid"]
    assert d_grid.shape == (200,) and bool(((d_grid >= 0) & (d_grid <= 1)).all())
    assert float(frames[0]["grid"][0]) == pytest.approx(4.0 - 4 * 1.25, rel=1e-6)


@requires_ext
def test_torch_and_fused_backends_agree_in_float64(tmp_path):
    config = write_config(tmp_path / "c.yaml", epochs=3, log_every=1, dtype="float64",
                          d_steps=5, g_steps=5)
    states = {}
    for backend in ("torch", "fused"):
        out = tmp_path / backend
        assert train_cli.main(["--config", str(config), "--out", str(out), "--backend", backend,
                               "--no-plots", "--quiet"]) == 0
        run = run_dir_of(out)
        assert json.loads((run / "summary.json").read_text())["backend"] == backend
        states[backend], _, _ = checkpoint_state(run)
    ref, fused = states["torch"], states["fused"]
    for name in STATE_FIELDS:
        a, b = getattr(fused, name).double(), getattr(ref, name).double()
        err = float(((a - b).abs() / b.abs().clamp(min=1.0)).max())
        assert err <= 1e-10, f"{name}: {err:.3e}"
    assert int(fused.epochs[0]) == 3


def test_population_picks_a_best_member(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", epochs=4, log_every=2)
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(config), "--out", str(out), "--population", "3",
                           "--no-plots"]) == 0
    run = run_dir_of(out)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["population"] == 3 and summary["n_members"] == 3
    w1 = summary["member_w1"]
    assert len(w1) == 3 and summary["best_member"] == min(range(3), key=lambda k: w1[k])
    rows = read_csv(run / "metrics.csv")
    assert [(int(r["member"]), int(r["epoch"])) for r in rows] == [
        (k, e) for e in (2, 4) for k in range(3)]
    state, _, _ = checkpoint_state(run)
    weights = torch.load(run / "weights.pt", weights_only=True)
    assert torch.equal(weights["generator"]["params"], state.g_params[summary["best_member"]])
    stdout = capsys.readouterr().out
    assert "[median of 3 members]" in stdout and f"member {summary['best_member']} (best" in stdout


# --- what the summary describes: G as it was trained -------------------------------------------

def _final_samples(cfg, state, member, *, dropout):
    x = ganfast.sample(cfg, state, toy_run.FINAL_SAMPLES, member=member, dropout=dropout,
                       noise_seed=derived_seed(cfg.seed, FINAL_NOISE_SHIFT))
    return ganfast.metrics.distances(x, cfg)


def test_summary_samples_g_as_trained_with_its_dropout(tmp_path, capsys):
    """vanilla's G has dropout 0.5: the summary's figures are those of ganfast.sample with
    training-mode dropout on the final-noise stream, the eval-mode figures beside them, and the
    animation's frames are drawn the same way. (Before: everything in eval mode, where this G
    looks like a point mass: the eval std is a fraction of the train-mode one.)"""
    config = write_config(tmp_path / "c.yaml", "vanilla", epochs=40, log_every=20)
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(config), "--out", str(out), "--no-plots"]) == 0
    run = run_dir_of(out)
    summary = json.loads((run / "summary.json").read_text())
    state, cfg_dict, extra = checkpoint_state(run)
    cfg = load_config(cfg_dict)
    train, ev = (_final_samples(cfg, state, 0, dropout=d) for d in (True, False))
    for key in ("w1", "ks", "mean", "std"):
        assert summary[key] == pytest.approx(float(train[key].reshape(-1)[0]), rel=1e-9, abs=1e-12), key
    assert summary["sampling"] == "train-mode dropout (p=0.5), as trained"
    for key in ("w1", "ks", "mean", "std"):
        assert summary["eval_mode"][key] == pytest.approx(float(ev[key].reshape(-1)[0]), rel=1e-9, abs=1e-12), key
    assert summary["std"] != pytest.approx(summary["eval_mode"]["std"], rel=0.05)
    frame = ganfast.sample(cfg, state, toy_run.FRAME_SAMPLES, member=0,
                           noise_seed=derived_seed(cfg.seed, FIXED_NOISE_SHIFT))
    assert extra["frames"][-1]["epoch"] == 40
    assert torch.equal(extra["frames"][-1]["samples"], frame.reshape(-1))
    assert "in eval mode: mean" in capsys.readouterr().out


def test_summary_of_g_without_dropout_has_no_eval_mode_figures(tmp_path):
    config = write_config(tmp_path / "c.yaml", epochs=4, log_every=2)
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(config), "--out", str(out), "--no-plots"]) == 0
    summary = json.loads((run_dir_of(out) / "summary.json").read_text())
    assert summary["sampling"] == "G has no dropout" and "eval_mode" not in summary


def test_members_are_scored_in_chunks_as_trained(tmp_path, monkeypatch):
    """Picking the best member scores members in chunks of SELECT_VALUES sample values: uneven
    chunks (3 members of 20,000 samples, then 2) give each member's own W1 of its samples drawn
    as trained, and the best is the smallest."""
    cfg = load_preset("vanilla").replace({"population": 5, "batch_size": 64})
    state = ganfast.init_state(cfg)
    monkeypatch.setattr(toy_run, "SELECT_VALUES", 3 * toy_run.SELECT_SAMPLES)
    calls = []
    real = toy_run.generate
    monkeypatch.setattr(toy_run, "generate", lambda cfg, part, *a, **k: calls.append(part.population) or real(cfg, part, *a, **k))
    scores = toy_run.score_members(cfg, state, quiet=True)
    assert calls == [3, 2]
    for k in range(5):
        x = ganfast.sample(cfg, state, toy_run.SELECT_SAMPLES, member=k,
                           noise_seed=derived_seed(cfg.seed, FINAL_NOISE_SHIFT))
        assert scores[k] == pytest.approx(float(ganfast.metrics.distances(x, cfg)["w1"].mean()), rel=1e-12)
    assert len(set(scores)) == 5


@pytest.mark.parametrize("quiet", [False, True])
def test_scoring_members_shows_a_bar_when_it_takes_long(monkeypatch, quiet):
    """tqdm's bar on a terminal's stderr once scoring has taken a second (delay=1), never
    with --quiet: here 3 chunks of one member, each made to take 0.6 s."""
    import io
    import time

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(toy_run, "SELECT_VALUES", toy_run.SELECT_SAMPLES)
    real = toy_run.generate
    monkeypatch.setattr(toy_run, "generate", lambda *a, **k: time.sleep(0.6) or real(*a, **k))
    cfg = load_preset("devnag").replace({"population": 3})
    assert len(toy_run.score_members(cfg, ganfast.init_state(cfg), quiet=quiet)) == 3
    assert ("scoring members" in err.getvalue()) != quiet


def test_a_huge_population_is_scored_on_fewer_samples_each():
    cfg = load_preset("devnag")
    counts = [toy_run.select_samples(cfg.replace(population=p)) for p in (1, 10_000, 20_000, 100_000, 10**6)]
    assert counts == [20_000, 20_000, 10_000, 2_000, 2_000]


# --- bad inputs ----------------------------------------------------------------------------

def _expect_usage_error(tmp_path, capsys, argv, *needles):
    out = tmp_path / "out"
    assert train_cli.main([*argv, "--out", str(out)] if "--resume" not in argv else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    assert not out.exists() or not any(out.iterdir())  # no run folder for a bad start
    return err


def test_unknown_preset_is_named(tmp_path, capsys):
    _expect_usage_error(tmp_path, capsys, ["--preset", "devnagg"], "'devnagg'", "devnag")


def test_config_with_a_bad_key_names_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\noptimizer_d: {kind: sgd, learning_rate: 0.1}\n")
    _expect_usage_error(tmp_path, capsys, ["--config", str(bad)], "learning_rate", "optimizer_d")


@pytest.mark.parametrize("argv, needle", [
    (["--epochs", "0"], "epochs"),
    (["--population", "0"], "population"),
    (["--dtype", "float16"], "dtype"),
    (["--seed", "-1"], "seed"),
    (["--threads", "0"], "--threads"),
    (["--epochs", "ten"], "--epochs"),
    (["--backend", "gpu"], "--backend"),
    (["--preset", "devnag", "--config", "x.yaml"], "not allowed"),
])
def test_bad_arguments_exit_2(tmp_path, capsys, argv, needle):
    _expect_usage_error(tmp_path, capsys, argv, needle)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_exits_2(tmp_path, capsys):
    _expect_usage_error(tmp_path, capsys, ["--device", "cuda"], "CUDA is not available")


def test_resume_without_checkpoint_exits_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _expect_usage_error(tmp_path, capsys, ["--resume", str(tmp_path / "empty")], "checkpoint.pt")
    _expect_usage_error(tmp_path, capsys, ["--resume", str(tmp_path / "nowhere")], "nowhere")


def test_list_presets_and_help(capsys):
    assert train_cli.main(["--list-presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list_presets()
    assert all(len(line.split()) > 3 for line in lines)  # each with a description
    proc = subprocess.run([sys.executable, "-m", "ganfast.train", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout and "--resume" in proc.stdout


# --- resume and Ctrl-C -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """An uninterrupted 60-epoch devnag run (log_every 20) to compare resumed runs with."""
    base = tmp_path_factory.mktemp("full")
    config = write_config(base / "c.yaml", epochs=60, log_every=20)
    assert train_cli.main(["--config", str(config), "--out", str(base / "out"), "--backend",
                           "fused", "--no-plots", "--quiet", "--threads", "1"]) == 0
    return config, run_dir_of(base / "out")


def _assert_same_run(resumed: Path, full: Path):
    a, _, extra_a = checkpoint_state(resumed)
    b, _, extra_b = checkpoint_state(full)
    assert a.epoch == 60
    assert_states_equal(a, b)
    assert extra_a["rows"] == extra_b["rows"]
    assert_frames_equal(extra_a["frames"], extra_b["frames"])
    assert (resumed / "metrics.csv").read_text() == (full / "metrics.csv").read_text()
    sa = json.loads((resumed / "summary.json").read_text())
    sb = json.loads((full / "summary.json").read_text())
    assert (sa["w1"], sa["mean"], sa["epochs"]) == (sb["w1"], sb["mean"], sb["epochs"])


@requires_ext
def test_resume_is_bit_identical(tmp_path, full_run, capsys):
    config, full = full_run
    out = tmp_path / "out"
    common = ["--backend", "fused", "--no-plots", "--quiet"]
    assert train_cli.main(["--config", str(config), "--out", str(out), "--epochs", "40", *common]) == 0
    run = run_dir_of(out)
    assert checkpoint_state(run)[0].epoch == 40
    assert train_cli.main(["--resume", str(run), "--epochs", "60", *common]) == 0
    assert "resuming" in capsys.readouterr().out
    assert load_config(run / "config.yaml").epochs == 60
    _assert_same_run(run, full)
    # a finished run resumed again without --epochs only rewrites its report
    assert train_cli.main(["--resume", str(run), *common]) == 0
    _assert_same_run(run, full)
    # shrinking below the checkpoint, or re-seeding, is refused
    assert train_cli.main(["--resume", str(run), "--epochs", "30"]) == 2
    assert train_cli.main(["--resume", str(run), "--seed", "3"]) == 2


@requires_ext
def test_resume_reads_frames_saved_as_lists(tmp_path, full_run):
    """Checkpoints of the previous release hold the animation frames as lists of floats (now
    tensors): such a run still resumes, and the GIF is drawn from both kinds of frames."""
    config, full = full_run
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(config), "--out", str(out), "--epochs", "40", "--backend", "fused",
                           "--no-plots", "--quiet"]) == 0
    run = run_dir_of(out)
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    for frame in payload["state"]["frames"]:
        for key in ("samples", "grid", "d_grid"):
            if isinstance(frame[key], torch.Tensor):
                frame[key] = frame[key].tolist()
    torch.save(payload, run / "checkpoint.pt")
    assert train_cli.main(["--resume", str(run), "--epochs", "60", "--backend", "fused", "--quiet"]) == 0
    _, _, extra = checkpoint_state(run)
    kinds = [type(f["samples"]) for f in extra["frames"]]
    assert kinds == [list, list, torch.Tensor]  # log_every 20: two old frames, one new
    assert_drawn(run / "training.gif")
    full_frames = checkpoint_state(full)[2]["frames"]
    for old, new in zip(extra["frames"], full_frames):
        assert torch.equal(torch.as_tensor(old["samples"], dtype=new["samples"].dtype), new["samples"])


@requires_ext
def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path, full_run, monkeypatch, capsys):
    config, full = full_run

    def interrupted_mid_chunk(cfg, state, epochs):
        if state.epoch >= 20:  # after the first log: train, then Ctrl-C lands before logging
            train_fused(cfg, state, epochs)
            raise KeyboardInterrupt
        return train_fused(cfg, state, epochs)

    monkeypatch.setattr(toy_run, "train_fused", interrupted_mid_chunk)
    out = tmp_path / "out"
    common = ["--backend", "fused", "--no-plots", "--quiet"]
    assert train_cli.main(["--config", str(config), "--out", str(out), *common]) == 130
    run = run_dir_of(out)
    err = capsys.readouterr().err
    assert f"interrupted at epoch 20; resume with: python -m ganfast.train --resume {run}" in err

    state, _, extra = checkpoint_state(run)
    assert state.epoch == 20  # the chunk cut short is discarded, not half-kept
    assert [r["epoch"] for r in extra["rows"]] == [20] and len(extra["frames"]) == 1
    assert len(read_csv(run / "metrics.csv")) == 1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["epochs"] == 20
    assert (run / "weights.pt").exists()

    monkeypatch.undo()
    assert train_cli.main(["--resume", str(run), *common]) == 0
    assert json.loads((run / "summary.json").read_text())["interrupted"] is False
    _assert_same_run(run, full)


@requires_ext
def test_one_epoch_engine_calls_change_nothing(tmp_path, full_run, monkeypatch):
    """Log intervals are split into short engine calls (Ctrl-C latency); the split is free."""
    config, full = full_run
    monkeypatch.setattr(toy_run, "CALL_SECONDS", 0.0)  # every call trains one epoch
    sizes = []
    monkeypatch.setattr(toy_run, "train_fused",
                        lambda cfg, state, n: sizes.append(n) or train_fused(cfg, state, n))
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(config), "--out", str(out), "--backend", "fused",
                           "--no-plots", "--quiet"]) == 0
    assert sizes == [1] * 60
    _assert_same_run(run_dir_of(out), full)
