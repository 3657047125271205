"""Faults for the CLI tests, injected into a `python -m ganfast.train` subprocess by putting this
folder on its PYTHONPATH (Python imports `sitecustomize` at start-up). Nothing of ganfast is
imported or patched here: the faults are in the OS calls every file write makes
(ganfast.app.files.atomic_write: write, fsync, rename), driven by environment variables.

GANFAST_FAULT_ENOSPC="NAME:K"        the K-th fsync of a temporary of NAME (e.g. checkpoint.pt)
                                     fails with ENOSPC, as a full disk does
GANFAST_FAULT_SLOW_REPLACE="NAME:S"  the rename that puts NAME in place first prints
                                     "FAULT: writing NAME" to stdout, then sleeps S seconds (a slow
                                     report, for a SIGINT to land in)
GANFAST_FAULT_RLIMIT_AS="BYTES"      the process may map at most BYTES of address space
                                     (resource.RLIMIT_AS): a machine with that much memory
"""
import errno
import os
import sys
import time


def _split(value):
    name, arg = value.rsplit(":", 1)
    return name, arg


if os.environ.get("GANFAST_FAULT_RLIMIT_AS"):
    import resource

    _limit = int(os.environ["GANFAST_FAULT_RLIMIT_AS"])
    resource.setrlimit(resource.RLIMIT_AS, (_limit, _limit))

if os.environ.get("GANFAST_FAULT_ENOSPC"):
    _name, _k = _split(os.environ["GANFAST_FAULT_ENOSPC"])
    _count = [0]
    _fsync = os.fsync

    def _failing_fsync(fd):
        try:
            target = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            target = ""
        if target.startswith(f".{_name}.") and target.endswith(".tmp"):
            _count[0] += 1
            if _count[0] == int(_k):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return _fsync(fd)

    os.fsync = _failing_fsync

if os.environ.get("GANFAST_FAULT_SLOW_REPLACE"):
    _slow_name, _seconds = _split(os.environ["GANFAST_FAULT_SLOW_REPLACE"])
    _replace = os.replace

    def _slow_replace(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == _slow_name:
            sys.stdout.write(f"FAULT: writing {_slow_name}\n")
            sys.stdout.flush()
            end = time.monotonic() + float(_seconds)
            while time.monotonic() < end:  # a signal handler may run in between; keep sleeping
                time.sleep(0.05)
        return _replace(src, dst, *args, **kwargs)

    os.replace = _slow_replace
