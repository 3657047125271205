"""When checkpoints are written (ganfast.app.run): a run folder holds a checkpoint of epoch 0 from
the moment it exists, then one every `checkpoint_every` log intervals and after any log interval
that ends CHECKPOINT_SECONDS after the last one; and a write killed half way leaves no temporary
that anything reads (hidden, removed by --resume)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ganfast.app.cli as train_cli
from conftest import run_dir_of, write_toy_config
from ganfast.app import run as run_protocol
from ganfast.app import toy_run
from ganfast.app.config import load_preset
from ganfast.app.files import remove_stale_temps
from ganfast.app.run import Options, read_checkpoint
from ganfast.app.toy_run import ToyRun
from ganfast.state import GanState

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COMMON = ["--no-plots", "--quiet"]


def _config(tmp_path: Path, **overrides) -> Path:
    return write_toy_config(tmp_path / "c.yaml", **{"batch_size": 32, "epochs": 5, "log_every": 1, **overrides})


def _epoch(run: Path) -> int:
    return int(read_checkpoint(run / "checkpoint.pt")["state"]["gan"]["epochs"][0])


def test_a_new_toy_run_folder_holds_a_checkpoint_of_epoch_0(tmp_path):
    cfg = load_preset("devnag").replace(batch_size=32, epochs=3)
    run = ToyRun.new(cfg, Options(out=str(tmp_path / "out"), quiet=True), {"preset": "devnag", "config": None})
    assert sorted(p.name for p in run.run_dir.iterdir()) == ["checkpoint.pt", "config.yaml"]
    assert _epoch(run.run_dir) == 0 and run.checkpoint_epoch == 0


def test_a_crash_in_the_first_interval_leaves_a_resumable_folder(tmp_path, monkeypatch, capsys):
    config = _config(tmp_path, epochs=4, log_every=2)
    monkeypatch.setattr(toy_run, "train_reference", lambda *a: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError, match="crash"):
        train_cli.main(["--config", str(config), "--out", str(tmp_path / "out"), "--backend", "torch", *COMMON])
    run = run_dir_of(tmp_path / "out")
    assert _epoch(run) == 0
    monkeypatch.undo()
    assert train_cli.main(["--resume", str(run), "--backend", "torch", *COMMON]) == 0
    resumed = GanState(**read_checkpoint(run / "checkpoint.pt")["state"]["gan"])
    assert train_cli.main(["--config", str(config), "--out", str(tmp_path / "full"), "--backend", "torch",
                           *COMMON]) == 0
    full = GanState(**read_checkpoint(run_dir_of(tmp_path / "full") / "checkpoint.pt")["state"]["gan"])
    assert resumed.epoch == 4
    for name, t in full.tensors().items():
        assert torch.equal(getattr(resumed, name), t), name


@pytest.mark.parametrize("seconds, expected", [(0.0, [0, 1, 2, 3, 4, 5]), (1e9, [0, 5])])
def test_checkpoints_by_time_as_well_as_by_interval(tmp_path, monkeypatch, seconds, expected):
    """5 log intervals, a checkpoint every 10 of them: only time can add some between the start
    and the end."""
    written = []
    real = run_protocol.write_checkpoint

    def spy(path, **kw):
        written.append(int(kw["state"]["gan"]["epochs"][0]))
        return real(path, **kw)

    monkeypatch.setattr(run_protocol, "write_checkpoint", spy)
    monkeypatch.setattr(run_protocol, "CHECKPOINT_SECONDS", seconds)
    assert train_cli.main(["--config", str(_config(tmp_path)), "--out", str(tmp_path / "out"), *COMMON]) == 0
    assert written == expected


def test_a_write_killed_half_way_leaves_only_a_hidden_temporary(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"the previous checkpoint")
    code = ("import os, signal, sys; from ganfast.app.files import atomic_write; "
            "atomic_write(sys.argv[1], lambda f: (f.write(b'half'), f.flush(), os.kill(os.getpid(), signal.SIGKILL)), "
            "binary=True)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], timeout=120)
    assert proc.returncode == -9
    assert path.read_bytes() == b"the previous checkpoint"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and left[0].startswith(".checkpoint.pt.") and left[0].endswith(".tmp"), left
    assert remove_stale_temps(tmp_path) == [tmp_path / left[0]]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]


def test_resume_removes_stale_temporaries_and_keeps_other_files(tmp_path, capsys):
    assert train_cli.main(["--config", str(_config(tmp_path, epochs=2)), "--out", str(tmp_path / "out"),
                           *COMMON]) == 0
    run = run_dir_of(tmp_path / "out")
    stale = [run / ".checkpoint.pt.0a1b2c3d.tmp", run / "checkpoint.pt.tmp", run / ".summary.json.ffffffff.tmp"]
    for p in stale:
        p.write_bytes(b"")
    (run / "notes.tmp").write_text("the user's own file")
    assert train_cli.main(["--resume", str(run), "--epochs", "3", *COMMON]) == 0
    out = capsys.readouterr().out
    assert all(not p.exists() for p in stale) and (run / "notes.tmp").exists()
    assert out.count("the temporary file of a write that was killed") == 3
