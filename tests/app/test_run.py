"""Tests of the run protocol's checkpoints (ganfast/app/run.py): one writer, one versioned format
for toy and image runs, atomic writes, and a one-line RunError for a missing, truncated, foreign
or older file."""
from __future__ import annotations

import os

import pytest
import torch

import ganfast
from ganfast.app.config import load_config, load_preset
from ganfast.app.run import CHECKPOINT_VERSION, RunError, read_checkpoint, write_checkpoint
from ganfast.state import GanState, init_state

FIELDS = ("g_params", "d_params", "g_opt", "d_opt", "offsets", "epochs", "seeds", "lrs")


@pytest.fixture
def cfg():
    return load_preset("how-to-gan").replace(batch_size=16, population=3, seed=4)


def trained_state(cfg, epochs=2):
    """A state with non-trivial optimizer buffers and counters (fused if available)."""
    s = init_state(cfg)
    if ganfast.extension_available():
        ganfast.train_fused(cfg, s, epochs)
    else:
        from ganfast.reference_train import train_reference
        train_reference(cfg, s, epochs)
    return s


def save(path, state: GanState, cfg, rows=(), frames=()):
    write_checkpoint(path, kind="toy", cfg=cfg, source={"preset": "how-to-gan", "config": None}, elapsed=1.5,
                     rows=list(rows), state={"gan": {k: v.cpu() for k, v in state.tensors().items()},
                                             "frames": list(frames)})


def load(path) -> tuple:
    payload = read_checkpoint(path)
    return GanState(**payload["state"]["gan"]), payload


def assert_states_equal(a: GanState, b: GanState):
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and torch.equal(x, y), f"{name} differs"


def test_save_load_round_trip(tmp_path, cfg):
    s = trained_state(cfg)
    assert s.g_opt.any() and s.epoch == 2
    path = tmp_path / "checkpoint.pt"
    rows = [{"member": 0, "epoch": 2, "g_loss": 0.7}]
    save(path, s, cfg, rows, [{"epoch": 2, "samples": [1.0, 2.5]}])
    loaded, payload = load(path)
    assert_states_equal(loaded, s)
    assert (payload["format"], payload["version"], payload["kind"]) == ("ganfast", CHECKPOINT_VERSION, "toy")
    assert load_config(payload["config"]) == cfg and payload["config"] == cfg.to_dict()
    assert payload["rows"] == rows and payload["elapsed"] == 1.5
    assert payload["state"]["frames"] == [{"epoch": 2, "samples": [1.0, 2.5]}]
    save(str(path), s, cfg)  # str paths work too
    assert load(str(path))[1]["rows"] == []


def test_save_load_float64_population(tmp_path):
    cfg = load_preset("ring8").replace(dtype="float64", population=2, batch_size=8)
    s = trained_state(cfg, 1)
    save(tmp_path / "c.pt", s, cfg)
    loaded, payload = load(tmp_path / "c.pt")
    assert_states_equal(loaded, s)
    assert load_config(payload["config"]) == cfg


def test_save_is_atomic(tmp_path, cfg):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"an older file that must be replaced")
    s = init_state(cfg)
    save(path, s, cfg)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]  # no .tmp left behind
    assert_states_equal(load(path)[0], s)
    s2 = trained_state(cfg, 1)  # overwrite an existing checkpoint with a newer state
    save(path, s2, cfg)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]
    assert_states_equal(load(path)[0], s2)


def test_failed_save_keeps_the_old_checkpoint(tmp_path, cfg, monkeypatch):
    path = tmp_path / "ckpt.pt"
    s = init_state(cfg)
    save(path, s, cfg)

    def crash(obj, f, *args, **kwargs):  # a write that dies half way
        f.write(b"PK\x03\x04 half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save(path, trained_state(cfg, 1), cfg)
    monkeypatch.undo()
    assert_states_equal(load(path)[0], s)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]  # the half-written temporary is cleaned up


def test_load_truncated_file_is_a_run_error(tmp_path, cfg):
    path = tmp_path / "ckpt.pt"
    save(path, init_state(cfg), cfg)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="ckpt.pt is not a ganfast checkpoint"):
        read_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all\n" * 10, bytes(range(256))])
def test_load_garbage_is_a_run_error(tmp_path, content):
    path = tmp_path / "garbage.pt"
    path.write_bytes(content)
    with pytest.raises(RunError, match="garbage.pt is not a ganfast checkpoint"):
        read_checkpoint(path)


@pytest.mark.parametrize("payload, match", [
    ({"a": torch.zeros(2)}, "is not a ganfast checkpoint$"),          # some other torch file
    ([1, 2, 3], "is not a ganfast checkpoint$"),
    ({"version": 1, "state": {}, "config": {}, "extra": {}}, r"an older ganfast \(format 1\)"),  # a toy run's
    ({"kind": "image", "config": {}, "trainer": {"version": 1}, "rows": []}, r"an older ganfast \(format 1\)"),
    ({"format": "ganfast", "version": CHECKPOINT_VERSION + 1}, "of format 3; this version reads format 2"),
    ({"format": "ganfast", "version": CHECKPOINT_VERSION}, "not a complete ganfast checkpoint"),
    ({"format": "ganfast", "version": CHECKPOINT_VERSION, "kind": "audio", "config": {}, "source": {},
      "elapsed": 0.0, "rows": [], "state": {}}, "not a complete ganfast checkpoint"),
])
def test_load_foreign_or_old_file_is_one_line(tmp_path, payload, match):
    path = tmp_path / "foreign.pt"
    torch.save(payload, path)
    with pytest.raises(RunError, match=match) as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value) and "foreign.pt" in str(info.value)


def test_load_missing_file_is_a_run_error(tmp_path):
    with pytest.raises(RunError, match=r"no ckpt.pt in .*nowhere \(nothing to resume\)"):
        read_checkpoint(tmp_path / "nowhere" / "ckpt.pt")
