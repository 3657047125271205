"""Writing a file so that no reader ever sees half of it: through a hidden temporary file next to
it (`.<name>.<random>.tmp`), fsync, rename. Every file of a run folder (config.yaml, checkpoints,
weights, CSV, JSON, PNG, GIF) is written with `atomic_write`; a failed write leaves the previous
file and removes its temporary. A process killed between the open and the rename (SIGKILL, power
loss) leaves a hidden `.tmp` that nothing reads; `remove_stale_temps` (run on --resume) deletes
such leftovers."""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import IO, Callable

TMP_SUFFIX = ".tmp"
# ours (.<name>.<8 hex>.tmp), and older ganfast versions' <name>.tmp beside a run folder's files
_STALE = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$|^.+\.(pt|yaml|csv|json|png|gif)\.tmp$")


def temp_path(path: Path) -> Path:
    """A fresh name for the temporary of `path`: hidden, unique per write, `.tmp` at the end."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def atomic_write(path, write: Callable[[IO], object], binary: bool = False) -> Path:
    """Call `write(f)` on a temporary file next to `path`, then replace `path` with it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        # "x": a new file, never someone else's; normal permissions (umask), unlike mkstemp's 0600
        with open(tmp, "xb") if binary else open(tmp, "x", newline="", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, os.fspath(tmp)):
            e.filename = os.fspath(path)  # the file the caller wrote, not our temporary
        raise
    return path


def remove_stale_temps(folder) -> list:
    """Delete the temporaries that killed writers left in `folder` and its subfolders (ours,
    `.<name>.<hex>.tmp`, and the `<name>.tmp` of older ganfast versions); returns their paths."""
    removed = []
    for p in sorted(Path(folder).rglob(f"*{TMP_SUFFIX}")):
        if _STALE.match(p.name) and p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
