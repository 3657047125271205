"""Writing a file so that no reader ever sees half of it: through `<path>.tmp`, fsync, rename.
Every file of a run folder (config.yaml, checkpoints, weights, CSV, JSON, PNG, GIF) is written
with `atomic_write`; a crash mid-write leaves the previous file, and no `.tmp` behind."""
from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Callable


def atomic_write(path, write: Callable[[IO], object], binary: bool = False) -> Path:
    """Call `write(f)` on a temporary file next to `path`, then replace `path` with it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") if binary else open(tmp, "w", newline="", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
