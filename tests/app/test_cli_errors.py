"""Every data-folder error of every image preset that reads files, as a user meets it: in a
subprocess, `python -m ganfast.train --preset P --data DIR` (how the issue-10 bug hid: under
`python -m` the lazily imported CLI module was a second copy with its own error class, and the
message came out as a traceback). Each must be one line on stderr, exit status 2, no traceback
and no run folder."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ganfast.app.datasets import IMAGE_SHAPES

PRESETS = {"mnist-mlp": "mnist", "virtuo": "mnist", "cifar-conv": "cifar10", "dcgan": "cifar10"}
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
CIFAR_FILES = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))


def _folder(tmp_path: Path, kind: str, case: str) -> Path:
    """The --data folder of a case: missing, empty, or holding files of the right names with
    corrupt content."""
    root = tmp_path / "data"
    if case == "missing":
        return root
    root.mkdir()
    if case == "corrupt":
        for name in MNIST_FILES if kind == "mnist" else CIFAR_FILES:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(b"\x00\x00\x08\x03 not really a data set" * 7)
    return root


# Words each message must have (the file or folder at fault, or what was looked for).
NEEDLES = {
    ("mnist", "missing"): "does not exist",
    ("mnist", "empty"): "train-images-idx3-ubyte",
    ("mnist", "corrupt"): "train-images-idx3-ubyte",
    ("cifar10", "missing"): "does not exist",
    ("cifar10", "empty"): "data_batch_1",
    ("cifar10", "corrupt"): "data_batch_1",
}


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt"])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_bad_data_folder_is_one_line_exit_2(tmp_path, preset, case):
    kind = PRESETS[preset]
    assert kind in IMAGE_SHAPES
    data, out = _folder(tmp_path, kind, case), tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "ganfast.train", "--preset", preset, "--data", str(data),
                           "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(err) == 1, proc.stderr
    assert err[0].startswith("error: ") and NEEDLES[kind, case] in err[0], err[0]
    assert not out.exists() or not any(out.iterdir())  # no run folder for a run that never started
