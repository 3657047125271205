"""Every failure of issue 13's list, as a user meets it: `python -m ganfast.train ...` in a
subprocess (in-process calls hid the `python -m` double-module bug), toy and image, new run and
--resume. Each must end with its exit status, exactly one stderr line starting with `error:`
(a refused resume edit adds one indented `key: old -> new` line per key), no traceback, and a
disk that holds either nothing or a folder that can be resumed.

Faults come from tests/app/fault_hooks/sitecustomize.py (on the subprocess's PYTHONPATH): a full
disk at the K-th write of a file, a slow rename for a Ctrl-C to land in. The cases run
concurrently (one module fixture) since each subprocess spends most of its time importing torch.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml

import ganfast.app.cli as train_cli
from conftest import run_dir_of
from ganfast.app.config import load_preset
from ganfast.app.run import read_checkpoint

HOOKS = Path(__file__).resolve().parent / "fault_hooks"
TIMEOUT = 600


def _env(**faults) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HOOKS), *filter(None, [env.get("PYTHONPATH")])])
    env.update({f"GANFAST_FAULT_{k.upper()}": v for k, v in faults.items()})
    env.pop("COLUMNS", None)
    return env


def _cli(*args) -> list:
    return [sys.executable, "-m", "ganfast.train", *map(str, args)]


# --- what a case leaves on disk ---------------------------------------------------------------

def _no_run_folder(d: Path) -> None:
    out = d / "out"
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


def _resumable(d: Path, epoch: int | None = None) -> None:
    run = run_dir_of(d / "out") if (d / "out").exists() else d / "run"
    payload = read_checkpoint(run / "checkpoint.pt")  # readable, complete
    assert (run / "config.yaml").is_file()
    if epoch is not None:
        kind = payload["kind"]
        got = payload["state"]["trainer"]["epoch"] if kind == "image" else int(payload["state"]["gan"]["epochs"][0])
        assert got == epoch
    assert not [p for p in run.rglob("*.tmp")], "a temporary was left behind"


def _unchanged(d: Path) -> None:
    """A resume that failed changed nothing in the folder."""
    for p in (d / "run").rglob("*"):
        if p.is_file():
            assert p.read_bytes() == (d / "before" / p.relative_to(d / "run")).read_bytes(), p


# --- the table -------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    argv: Callable[[Path], list]            # case folder -> CLI arguments
    needle: str                             # in the error line
    left: Callable[[Path], None]            # what must be on disk afterwards
    code: int = 2
    prepare: Callable[[Path], None] | None = None
    faults: dict = field(default_factory=dict)
    detail_lines: int = 0                   # indented lines after the error line


def _toy_config(d: Path, **overrides) -> Path:
    cfg = load_preset("devnag").replace({"batch_size": 32, "epochs": 4, "log_every": 1, **overrides})
    (d / "c.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return d / "c.yaml"


def _image_config(d: Path, **overrides) -> Path:
    cfg = load_preset("digits-mlp").replace({"data.limit": 32, "batch_size": 16, "epochs": 2, "log_every": 1,
                                             "generator.hidden": [16], "discriminator.hidden": [16],
                                             **overrides})
    (d / "c.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return d / "c.yaml"


def _raw_yaml(d: Path, preset_config: Callable, key: str, value) -> Path:
    """A config file with one value set behind validation's back."""
    return _set_key(preset_config(d), key, value)


def _set_key(path: Path, key: str, value) -> Path:
    """Set `section.leaf` in a YAML file as it is, without validation."""
    data = yaml.safe_load(path.read_text())
    section, leaf = key.split(".")
    data[section][leaf] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _a_file(d: Path) -> Path:
    (d / "a_file").write_text("not a folder")
    return d / "a_file"


def _copy_run(kind: str) -> Callable[[Path], None]:
    """Copy the module's finished run of `kind` into d/run (and d/before, to compare)."""
    def prepare(d: Path) -> None:
        shutil.copytree(RUNS[kind], d / "run")
        shutil.copytree(RUNS[kind], d / "before")
    return prepare


def _then(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def prepare(d: Path) -> None:
        for step in steps:
            step(d)
    return prepare


def _truncate_checkpoint(d: Path) -> None:
    data = (d / "run" / "checkpoint.pt").read_bytes()
    (d / "run" / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    shutil.copy(d / "run" / "checkpoint.pt", d / "before" / "checkpoint.pt")


def _wrong_state(d: Path) -> None:
    """A checkpoint that loads but whose state is not its config's (a member's parameters cut)."""
    path = d / "run" / "checkpoint.pt"
    payload = torch.load(path, weights_only=True)
    payload["state"]["gan"]["g_params"] = payload["state"]["gan"]["g_params"][:, :3].clone()
    torch.save(payload, path)
    shutil.copy(path, d / "before" / "checkpoint.pt")


def _edit_config(key: str, value) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        for folder in ("run", "before"):
            _set_key(d / folder / "config.yaml", key, value)
    return edit


def _delete_config(d: Path) -> None:
    (d / "run" / "config.yaml").unlink()


def _config_restored(d: Path) -> None:
    _resumable(d, epoch=3)
    assert yaml.safe_load((d / "run" / "config.yaml").read_text())["epochs"] == 3


CASES = [
    # --- a new run: where it may write ---------------------------------------------------
    Case("toy-out-is-a-file", lambda d: ["--config", _toy_config(d), "--out", _a_file(d)], "it is a file",
         _no_run_folder),
    Case("image-out-is-a-file", lambda d: ["--config", _image_config(d), "--out", _a_file(d)], "it is a file",
         _no_run_folder),
    Case("toy-out-under-a-file", lambda d: ["--config", _toy_config(d), "--out", _a_file(d) / "runs"],
         "Not a directory", _no_run_folder),
    Case("image-out-under-a-file", lambda d: ["--config", _image_config(d), "--out", _a_file(d) / "runs"],
         "Not a directory", _no_run_folder),
    Case("toy-out-under-proc", lambda d: ["--config", _toy_config(d), "--out", "/proc/self/ganfast-runs"],
         "cannot create the run folder under /proc/self/ganfast-runs", _no_run_folder),
    Case("image-out-under-proc", lambda d: ["--config", _image_config(d), "--out", "/proc/self/ganfast-runs"],
         "cannot create the run folder under /proc/self/ganfast-runs", _no_run_folder),
    Case("image-out-under-sys", lambda d: ["--config", _image_config(d), "--out", "/sys/kernel/ganfast-runs"],
         "cannot create the run folder under /sys/kernel/ganfast-runs", _no_run_folder),
    # --- a new run: what it may run --------------------------------------------------------
    Case("toy-device-meta", lambda d: ["--config", _toy_config(d), "--out", d / "out", "--device", "meta"],
         "--device meta", _no_run_folder),
    Case("image-device-meta", lambda d: ["--config", _image_config(d), "--out", d / "out", "--device", "meta"],
         "--device meta", _no_run_folder),
    Case("toy-d-output-identity",
         lambda d: ["--config", _raw_yaml(d, _toy_config, "discriminator.output_activation", "identity"),
                    "--out", d / "out"], "discriminator.output_activation", _no_run_folder),
    Case("image-d-output-identity",
         lambda d: ["--config", _raw_yaml(d, _image_config, "discriminator.output_activation", "identity"),
                    "--out", d / "out"], "discriminator.output_activation", _no_run_folder),
    # --- a full disk -------------------------------------------------------------------------
    Case("toy-disk-full-at-the-first-checkpoint", lambda d: ["--config", _toy_config(d), "--out", d / "out"],
         "No space left on device", _no_run_folder, faults={"enospc": "checkpoint.pt:1"}),
    Case("toy-disk-full-at-config-yaml", lambda d: ["--config", _toy_config(d), "--out", d / "out"],
         "No space left on device", _no_run_folder, faults={"enospc": "config.yaml:1"}),
    Case("toy-disk-full-at-a-later-checkpoint", lambda d: ["--config", _toy_config(d), "--out", d / "out"],
         "checkpoint.pt of epoch 0 is intact", lambda d: _resumable(d, epoch=0),
         faults={"enospc": "checkpoint.pt:2"}),
    Case("image-disk-full-at-a-later-checkpoint", lambda d: ["--config", _image_config(d), "--out", d / "out"],
         "checkpoint.pt of epoch 0 is intact", lambda d: _resumable(d, epoch=0),
         faults={"enospc": "checkpoint.pt:2"}),
    Case("toy-disk-full-in-the-report", lambda d: ["--config", _toy_config(d), "--out", d / "out"],
         "cannot write the report", lambda d: _resumable(d, epoch=4), faults={"enospc": "summary.json:1"}),
    Case("toy-resume-disk-full", lambda d: ["--resume", d / "run", "--epochs", "5"],
         "checkpoint.pt of epoch 3 is intact", lambda d: _resumable(d, epoch=3), prepare=_copy_run("toy"),
         faults={"enospc": "checkpoint.pt:1"}),
    # --- resume ---------------------------------------------------------------------------
    Case("toy-resume-corrupt-checkpoint", lambda d: ["--resume", d / "run"], "is not a ganfast checkpoint",
         _unchanged, prepare=_then(_copy_run("toy"), _truncate_checkpoint)),
    Case("image-resume-corrupt-checkpoint", lambda d: ["--resume", d / "run"], "is not a ganfast checkpoint",
         _unchanged, prepare=_then(_copy_run("image"), _truncate_checkpoint)),
    Case("toy-resume-state-of-another-config", lambda d: ["--resume", d / "run", "--epochs", "5"],
         "g_params is (1, 3)", _unchanged, prepare=_then(_copy_run("toy"), _wrong_state)),
    Case("toy-resume-edited-widths", lambda d: ["--resume", d / "run", "--epochs", "5"],
         "changes what the checkpoint was trained with", _unchanged,
         prepare=_then(_copy_run("toy"), _edit_config("generator.hidden", [8, 8])), detail_lines=1),
    Case("image-resume-edited-widths", lambda d: ["--resume", d / "run", "--epochs", "4"],
         "changes what the checkpoint was trained with", _unchanged,
         prepare=_then(_copy_run("image"), _edit_config("generator.hidden", [24])), detail_lines=1),
    Case("toy-resume-device-meta", lambda d: ["--resume", d / "run", "--device", "meta"], "--device meta",
         _unchanged, prepare=_copy_run("toy")),
    Case("image-resume-device-meta", lambda d: ["--resume", d / "run", "--device", "meta"], "--device meta",
         _unchanged, prepare=_copy_run("image")),
    Case("toy-resume-not-a-folder", lambda d: ["--resume", _a_file(d)], "--resume: no run folder",
         _no_run_folder),
    Case("image-resume-without-config-yaml", lambda d: ["--resume", d / "run", "--quiet"], "",
         _config_restored, code=0, prepare=_then(_copy_run("image"), _delete_config)),
]

RUNS: dict = {}


def _finished_runs(base: Path) -> None:
    """A finished toy run (3 epochs) and image run (3 epochs) for the resume cases to copy."""
    for kind, config in (("toy", _toy_config), ("image", _image_config)):
        d = base / kind
        d.mkdir()
        assert train_cli.main(["--config", str(config(d, epochs=3)), "--out", str(d / "out"), "--no-plots",
                               "--quiet", "--threads", "1"]) == 0
        RUNS[kind] = run_dir_of(d / "out")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    pytest.importorskip("sklearn")
    base = tmp_path_factory.mktemp("cli_failures")
    _finished_runs(base)

    def run(case: Case):
        d = base / case.id
        d.mkdir()
        if case.prepare:
            case.prepare(d)
        argv = _cli(*case.argv(d), "--no-plots", "--threads", "1")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, cwd=d, env=_env(**case.faults))
        return d, proc

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip((c.id for c in CASES), pool.map(run, CASES)))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_failure(results, case):
    d, proc = results[case.id]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == case.code, (proc.returncode, proc.stdout[-2000:], proc.stderr)
    lines = proc.stderr.splitlines()
    if case.code == 2:
        assert len(lines) == 1 + case.detail_lines, proc.stderr
        assert lines[0].startswith("error: ") and case.needle in lines[0], proc.stderr
        assert all(line.startswith("  ") and " -> " in line for line in lines[1:]), proc.stderr
    case.left(d)


def test_every_case_of_the_issue_is_in_the_table():
    """Issue 13's list of tracebacks, each new-run and resume where both exist."""
    ids = {c.id for c in CASES}
    for kind in ("toy", "image"):
        for what in ("out-is-a-file", "out-under-a-file", "out-under-proc", "device-meta", "d-output-identity",
                     "disk-full-at-a-later-checkpoint", "resume-corrupt-checkpoint", "resume-edited-widths",
                     "resume-device-meta"):
            assert f"{kind}-{what}" in ids, f"{kind}-{what}"
    assert "image-resume-without-config-yaml" in ids


# --- signals: a kill before the first log, Ctrl-C in the report ---------------------------------

def _wait_for(proc, predicate, what: str, timeout: float = TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended ({proc.returncode}) before {what}: {proc.stderr.read()}")
        assert time.monotonic() < end, f"no {what} after {timeout} s"
        time.sleep(0.05)


def test_a_run_killed_in_its_first_interval_can_be_resumed(tmp_path):
    """SIGKILL long before the first interval checkpoint (1000 epochs): the folder holds the
    checkpoint of epoch 0, and --resume trains it to the end."""
    config = _toy_config(tmp_path, epochs=100_000, log_every=1000)
    proc = subprocess.Popen(_cli("--config", config, "--out", tmp_path / "out", "--quiet", "--threads", "1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        _wait_for(proc, lambda: any((tmp_path / "out").glob("*/checkpoint.pt")), "checkpoint.pt")
        time.sleep(0.5)
        proc.kill()
    finally:
        proc.kill()
        proc.wait()
    run = run_dir_of(tmp_path / "out")
    epoch = int(read_checkpoint(run / "checkpoint.pt")["state"]["gan"]["epochs"][0])
    assert epoch < 1000
    done = subprocess.run(_cli("--resume", run, "--epochs", epoch + 2, "--no-plots", "--quiet", "--threads", "1"),
                          capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert (run / "weights.pt").is_file() and (run / "summary.json").is_file()


@pytest.mark.parametrize("presses", [1, 2])
@pytest.mark.parametrize("kind", ["toy", "image"])
def test_ctrl_c_during_the_final_report(tmp_path, kind, presses):
    """One Ctrl-C while the report is written (a slow rename of summary.json): the report goes on,
    exit 0, every file there. Two: the report stops, exit 130, and checkpoint.pt and weights.pt
    (written before the report) are there. Never a traceback."""
    if kind == "image":
        pytest.importorskip("sklearn")
    config = (_toy_config if kind == "toy" else _image_config)(tmp_path)
    proc = subprocess.Popen(_cli("--config", config, "--out", tmp_path / "out", "--no-plots", "--quiet",
                                 "--threads", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(slow_replace="summary.json:4"))
    try:
        line = proc.stdout.readline()
        while line and not line.startswith("FAULT: writing summary.json"):
            line = proc.stdout.readline()
        assert line, proc.stderr.read()
        for _ in range(presses):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.5)
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    run = run_dir_of(tmp_path / "out")
    assert "Traceback" not in stderr, stderr
    assert "Ctrl-C: writing the checkpoint, weights.pt and the report goes on" in stderr, stderr
    assert (run / "weights.pt").is_file() and (run / "checkpoint.pt").is_file()
    if presses == 1:
        assert proc.returncode == 0, stderr
        assert (run / "summary.json").is_file() and (run / "metrics.csv").is_file()
    else:
        assert proc.returncode == 130, stderr
        assert "aborted the report" in stderr and "--resume" in stderr
        assert not (run / "summary.json").exists()
    _resumable(tmp_path, epoch=4 if kind == "toy" else 2)
