"""--resume checks the run's config.yaml against the config its checkpoint was trained with
(ganfast.app.run.resume_config): an edit that changes the model or the math is refused with the
diff (`key: old -> new`, one line per key, exit 2, nothing changed on disk); the edits it can
honour (RESUMABLE_KEYS: epochs, log_every, name, data.root) are applied, recorded in the summary's
`resumed` list and kept in config.yaml when --epochs rewrites it. Toy and image runs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import ganfast.app.cli as train_cli
from conftest import read_csv, run_dir_of, write_toy_config
from ganfast.app.config import load_config, load_preset
from ganfast.app.run import RESUMABLE_KEYS, config_changes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COMMON = ["--no-plots", "--quiet"]


def _toy_run(tmp_path: Path, **overrides) -> Path:
    path = write_toy_config(tmp_path / "c.yaml", **{"batch_size": 32, "epochs": 4, "log_every": 2, **overrides})
    assert train_cli.main(["--config", str(path), "--out", str(tmp_path / "out"), *COMMON]) == 0
    return run_dir_of(tmp_path / "out")


def _digits_run(tmp_path: Path) -> Path:
    pytest.importorskip("sklearn")
    cfg = load_preset("digits-mlp").replace({"data.limit": 32, "batch_size": 16, "log_every": 1, "epochs": 1,
                                             "generator.hidden": [16], "discriminator.hidden": [16]})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    assert train_cli.main(["--config", str(path), "--out", str(tmp_path / "out"), *COMMON]) == 0
    return run_dir_of(tmp_path / "out")


def _edit(run: Path, **changes) -> None:
    """Edit config.yaml as a user would: dotted keys set in the YAML text's mapping."""
    d = yaml.safe_load((run / "config.yaml").read_text())
    for key, value in changes.items():
        *parents, leaf = key.split("__")
        node = d
        for p in parents:
            node = node[p]
        node[leaf] = value
    (run / "config.yaml").write_text(yaml.safe_dump(d, sort_keys=False))


def _refused(run: Path, capsys, argv=()) -> list:
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert train_cli.main(["--resume", str(run), *argv, *COMMON]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.rstrip("\n").split("\n")
    assert lines[0].startswith("error: --resume: ") and "changes what the checkpoint was trained with" in lines[0]
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert after == before  # nothing rewritten: not config.yaml, not the checkpoint
    return lines[1:]


@pytest.mark.parametrize("key, value, shown", [
    ("generator__hidden", [8, 8], "generator.hidden: [5, 5] -> [8, 8]"),
    ("generator__activation", "relu", "generator.activation: tanh -> relu"),
    ("discriminator__input", "raw", "discriminator.input: moments -> raw"),
    ("loss__generator", "minimax", "loss.generator: non_saturating -> minimax"),
    ("optimizer_g__lr", 0.01, "optimizer_g.lr: 0.001 -> 0.01"),
    ("optimizer_d__kind", "adam", "optimizer_d.kind: sgd -> adam"),
    ("data__mean", [3.0], "data.mean: [4.0] -> [3.0]"),
    ("noise__high", 2.0, "noise.high: 1.0 -> 2.0"),
    ("batch_size", 64, "batch_size: 32 -> 64"),
    ("d_steps", 3, "d_steps: 20 -> 3"),
    ("seed", 7, "seed: 0 -> 7"),
    ("dtype", "float64", "dtype: float32 -> float64"),
    ("population", 2, "population: 1 -> 2"),
])
def test_a_change_to_the_math_is_refused_with_the_diff(tmp_path, capsys, key, value, shown):
    run = _toy_run(tmp_path)
    _edit(run, **{key: value})
    assert _refused(run, capsys, ["--epochs", "6"]) == ["  " + shown]


def test_every_refused_key_has_its_line_and_epochs_does_not_help(tmp_path, capsys):
    run = _toy_run(tmp_path)
    _edit(run, generator__hidden=[8], optimizer_d__lr=0.5, log_every=1)
    lines = _refused(run, capsys)
    assert lines == ["  generator.hidden: [5, 5] -> [8]", "  optimizer_d.lr: 0.001 -> 0.5"]


def test_honourable_edits_are_applied_recorded_and_kept(tmp_path, capsys):
    run = _toy_run(tmp_path)
    _edit(run, log_every=1, name="renamed")
    assert train_cli.main(["--resume", str(run), "--epochs", "6", *COMMON]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "log_every: 2 -> 1" in out and "epochs: 4 -> 6" in out
    cfg = load_config(run / "config.yaml")  # --epochs kept the user's other edits
    assert (cfg.epochs, cfg.log_every, cfg.name) == (6, 1, "renamed")
    assert [int(r["epoch"]) for r in read_csv(run / "metrics.csv")] == [2, 4, 5, 6]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed"] == [{"epoch": 4, "changes": {"name": ["devnag", "renamed"], "epochs": [4, 6],
                                                            "log_every": [2, 1]}}]
    assert summary["name"] == "renamed"
    # resumed again: a second entry; the checkpoint now holds the edited config, so nothing changed
    assert train_cli.main(["--resume", str(run), *COMMON]) == 0
    resumed = json.loads((run / "summary.json").read_text())["resumed"]
    assert resumed[1] == {"epoch": 6, "changes": {}} and len(resumed) == 2


def test_a_missing_config_yaml_is_written_again(tmp_path, capsys):
    run = _toy_run(tmp_path)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").unlink()
    assert train_cli.main(["--resume", str(run), "--epochs", "6", *COMMON]) == 0
    assert "config.yaml was missing" in capsys.readouterr().out
    assert load_config(run / "config.yaml") == load_config(yaml.safe_load(text)).replace(epochs=6)


def test_an_invalid_config_yaml_names_itself(tmp_path, capsys):
    run = _toy_run(tmp_path)
    (run / "config.yaml").write_text("epochs: [\n")
    assert train_cli.main(["--resume", str(run), *COMMON]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --resume: {run / 'config.yaml'}: invalid YAML") and "Traceback" not in err


def test_config_yaml_epochs_below_the_checkpoint_is_refused(tmp_path, capsys):
    run = _toy_run(tmp_path)
    _edit(run, epochs=3)
    assert train_cli.main(["--resume", str(run), *COMMON]) == 2
    assert "the checkpoint is at epoch 4, past the epochs 3" in capsys.readouterr().err


def test_image_run_refuses_a_width_edit_and_honours_epochs(tmp_path, capsys):
    run = _digits_run(tmp_path)
    _edit(run, generator__hidden=[24], data__limit=16)
    assert _refused(run, capsys, ["--epochs", "2"]) == ["  data.limit: 32 -> 16", "  generator.hidden: [16] -> [24]"]
    _edit(run, generator__hidden=[16], data__limit=32, epochs=2)
    assert train_cli.main(["--resume", str(run), *COMMON]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["resumed"] == [{"epoch": 1, "changes": {"epochs": [1, 2]}}]


def test_config_changes_sees_every_key():
    """The diff covers sections that change shape (a normal noise takes other keys than a uniform)."""
    a = load_preset("devnag")
    b = a.replace({"noise": {"kind": "normal", "dim": 1, "mean": 0.0, "std": 2.0}})
    changes = config_changes(a, b)
    assert set(changes) == {"noise.kind", "noise.low", "noise.high", "noise.mean", "noise.std"}
    assert changes["noise.kind"] == ("uniform", "normal") and changes["noise.std"][1] == 2.0
    assert set(RESUMABLE_KEYS) == {"epochs", "log_every", "name", "data.root"}
