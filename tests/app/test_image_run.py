"""Tests of the image branch of the CLI (ganfast/image_run.py through `python -m ganfast.train`):
run folders, --data, backends, resume and Ctrl-C, on tiny data sets the tests write."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

import ganfast
import ganfast.app.cli as train_cli
from ganfast.app.config import load_config, load_preset
from ganfast.app.image_train import ImageTrainer
from conftest import read_csv, run_dir_of
from test_datasets import write_mnist

pytest.importorskip("sklearn")

FILES = ("config.yaml", "checkpoint.pt", "metrics.csv", "summary.json", "losses.png", "training.gif",
         "weights.pt")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def digits_config(path: Path, **overrides) -> Path:
    """digits-mlp shrunk: 64 images, batches of 16 (4 iterations per epoch), small nets."""
    cfg = load_preset("digits-mlp").replace({
        "data.limit": 64, "batch_size": 16, "log_every": 2, "epochs": 2,
        "generator.hidden": [32], "discriminator.hidden": [32], **overrides})
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return path


def rows_of(run: Path) -> list:
    return read_csv(run / "metrics.csv")


def test_digits_run_writes_the_run_folder(tmp_path, capsys):
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(digits_config(tmp_path / "c.yaml")), "--out", str(out)]) == 0
    run = run_dir_of(out)
    for name in FILES:
        assert (run / name).is_file(), name
    pngs = sorted(p.name for p in (run / "samples").iterdir())
    assert pngs == ["epoch_0001.png", "epoch_0002.png"]
    assert Image.open(run / "samples" / "epoch_0002.png").size == (8 * 34 + 2, 8 * 34 + 2)
    rows = rows_of(run)
    assert [(int(r["epoch"]), int(r["iteration"])) for r in rows] == [(1, 2), (1, 4), (2, 6), (2, 8)]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["epochs"], summary["iterations"], summary["data"]["images"]) == (2, 8, 64)
    q = summary["quality"]
    assert 0 <= q["confident"] <= 1 and sum(q["class_counts"]) == 2000 and q["classifier_accuracy"] > 0.9
    stdout = capsys.readouterr().out
    assert "epoch 1/2  D real " in stdout and "epoch 2/2" in stdout
    assert "quality of 2000 generated digits" in stdout
    backend = "fused" if ganfast.extension_available() else "PyTorch"
    assert f"generator: {backend} MLP 32-32-64" in stdout
    weights = torch.load(run / "weights.pt", weights_only=True)
    G = ganfast.Generator.from_spec(load_config(run / "config.yaml").g_spec)
    G.load_state_dict(weights["generator"])


def test_mnist_from_data_folder(tmp_path, capsys):
    write_mnist(tmp_path / "mnist", "train", n=8, gz=True)
    cfg = load_preset("mnist-mlp").replace({"batch_size": 4, "epochs": 1, "generator.hidden": [16],
                                            "discriminator.hidden": [300]})
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(tmp_path / "m.yaml"), "--data", str(tmp_path / "mnist"),
                           "--out", str(out), "--no-plots", "--quiet"]) == 0
    run = run_dir_of(out)
    stdout = capsys.readouterr().out
    assert "8 mnist images from" in stdout and "discriminator: PyTorch MLP 784-300-1 (a layer is wider" in stdout
    assert load_config(run / "config.yaml").data.root == str(tmp_path / "mnist")
    assert json.loads((run / "summary.json").read_text())["iterations"] == 2
    assert "quality" not in json.loads((run / "summary.json").read_text())
    assert not (run / "losses.png").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--preset", "mnist-mlp"], "mnist is read from local files: pass --data DIR"),
    (["--preset", "mnist-mlp", "--data", "{tmp}/none"], "train-images-idx3-ubyte"),
    (["--preset", "digits-mlp", "--data", "{tmp}"], "data.kind 'digits' needs no files"),
    (["--preset", "devnag", "--data", "{tmp}"], "data.kind 'normal' needs no files"),
    (["--preset", "virtuo", "--data", "{tmp}", "--backend", "fused"], "uses BatchNorm"),
    (["--preset", "digits-mlp", "--population", "2"], "population: image data trains one GAN"),
])
def test_bad_image_runs_exit_2(tmp_path, capsys, argv, needle):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert train_cli.main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("straight")
    config = digits_config(base / "c.yaml", epochs=3)
    assert train_cli.main(["--config", str(config), "--out", str(base / "out"), "--no-plots", "--quiet"]) == 0
    return config, run_dir_of(base / "out")


def assert_same_run(a: Path, b: Path):
    wa, wb = (torch.load(r / "weights.pt", weights_only=True) for r in (a, b))
    for net in ("generator", "discriminator"):
        assert wa[net].keys() == wb[net].keys()
        for k, v in wa[net].items():  # tensors, and the flat MLPs' Philox position (_extra_state)
            assert torch.equal(v, wb[net][k]) if torch.is_tensor(v) else v == wb[net][k], (net, k)
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()
    for k in (1, 2, 3):
        png = f"samples/epoch_{k:04d}.png"
        assert (a / png).read_bytes() == (b / png).read_bytes()


def test_resume_is_bit_identical(tmp_path, straight_run, capsys):
    config, straight = straight_run
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(config), "--out", str(out), "--epochs", "1", "--quiet"]) == 0
    run = run_dir_of(out)
    assert train_cli.main(["--resume", str(run), "--epochs", "3", "--quiet"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert_same_run(run, straight)
    with Image.open(run / "training.gif") as gif:
        assert gif.n_frames == 3  # frames of the first session come back from the PNGs
    assert train_cli.main(["--resume", str(run), "--epochs", "2"]) == 2


def test_ctrl_c_keeps_the_last_epoch_and_resume_finishes(tmp_path, straight_run, monkeypatch, capsys):
    config, straight = straight_run
    real_epoch = ImageTrainer.train_epoch

    def interrupted(self, on_iteration=None):
        if self.epoch == 1:  # part of epoch 2 runs, then Ctrl-C
            real_epoch(self, on_iteration)
            raise KeyboardInterrupt
        return real_epoch(self, on_iteration)

    monkeypatch.setattr(ImageTrainer, "train_epoch", interrupted)
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(config), "--out", str(out), "--quiet", "--no-plots"]) == 130
    run = run_dir_of(out)
    assert f"interrupted at epoch 1; resume with: python -m ganfast.train --resume {run}" in capsys.readouterr().err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["epochs"] == 1 and summary["iterations"] == 4
    assert [int(r["epoch"]) for r in rows_of(run)] == [1, 1]
    monkeypatch.undo()
    assert train_cli.main(["--resume", str(run), "--quiet", "--no-plots"]) == 0
    assert json.loads((run / "summary.json").read_text())["interrupted"] is False
    assert_same_run(run, straight)
