"""The one place that decides where ganfast's compiled kernels come from, or why they can't.

In this order (ganfast/_build.py knows how to build; this module decides):
1. GANFAST_DISABLE_EXTENSION=1: none (the tests' way to exercise the fallback).
2. Ahead of time: `ganfast/_C*.so` (built by `pip install --no-build-isolation .`), when its stamp
   `_C.build.json` matches the running Python, torch, CUDA and sources.
3. Compiled on first use against the running torch into the cache folder
   ($GANFAST_CACHE, else $XDG_CACHE_HOME/ganfast, else ~/.cache/ganfast), or loaded from there.
   One line on stderr says when a compile starts. GANFAST_JIT=0 forbids the compile (a cached
   build still loads); `python -m ganfast build` compiles explicitly.
4. Otherwise `import ganfast` still works on the pure-PyTorch reference, and one
   FallbackWarning names the cause and the one command that fixes it.
A library built for another torch is never loaded (its ABI differs): it is rebuilt, or the
warning says why not.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from pathlib import Path


class FallbackWarning(UserWarning):
    """ganfast runs its pure-PyTorch fallback because the compiled kernels are unavailable."""


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _import_library(path) -> object:
    """Import a built `_C.so` from any folder as ganfast._C (its init function is PyInit__C)."""
    spec = importlib.util.spec_from_file_location("ganfast._C", str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["ganfast._C"] = module
    if "ganfast" in sys.modules:
        sys.modules["ganfast"]._C = module
    return module


def _load():
    """(module or None, how: dict). `how` has source/library/stamp, or reason/fix."""
    if _flag("GANFAST_DISABLE_EXTENSION"):
        return None, {"reason": "disabled by GANFAST_DISABLE_EXTENSION", "fix": "unset GANFAST_DISABLE_EXTENSION"}
    import torch  # noqa: F401  (_C links against libtorch/libc10, which torch loads)

    from ganfast import _build

    rt = _build.runtime()
    root = _build.source_root()
    src_hash = _build.source_hash(root) if root is not None else None

    aot_problem = None
    try:
        # Only this package's own folder: an editable install's import hook would otherwise hand
        # a copy of the package the library built in another checkout.
        spec = importlib.machinery.PathFinder.find_spec("ganfast._C", [str(Path(__file__).parent)])
        if spec is not None and spec.origin:
            stamp = _build.read_json(Path(spec.origin).with_name(_build.AOT_STAMP))
            mismatch = _build.check_stamp(stamp, rt, src_hash)
            if mismatch is None:
                module = _import_library(spec.origin)
                return module, {"source": "aot", "library": spec.origin, "stamp": stamp}
            aot_problem = f"the installed kernels {Path(spec.origin).name} are not for this setup: {mismatch}"
    except (ImportError, OSError) as exc:  # a missing symbol of another torch, a broken file
        aot_problem = f"{type(exc).__name__}: {exc}"

    prefix = f"{aot_problem}; " if aot_problem else ""
    if root is None:
        return None, {"reason": prefix + "this install has neither kernels for this torch nor their C++ sources",
                      "fix": "`pip install --force-reinstall --no-deps ganfast`"}
    allow = os.environ.get("GANFAST_JIT", "").strip() != "0"
    try:
        desc = _build.describe(root, rt)
        library, stamp, compiled = _build.jit_library(root, desc, rt, say=say, allow_compile=allow, why=aot_problem)
    except _build.BuildUnavailable as exc:
        cause = exc.cause + ("" if allow else " and GANFAST_JIT=0 forbids compiling at import")
        return None, {"reason": prefix + cause, "fix": exc.fix}
    except _build.BuildFailed as exc:
        return None, {"reason": prefix + "compiling the kernels failed; the compiler's last lines:\n"
                      + exc.tail + f"\n(whole output: {exc.log})",
                      "fix": "fix the cause above, then `python -m ganfast build` compiles again and shows "
                             "the whole output"}
    except OSError as exc:  # the cache folder cannot be written, say
        return None, {"reason": prefix + f"the kernel cache {_build.cache_root()} is unusable: "
                      f"{type(exc).__name__}: {exc}",
                      "fix": "set GANFAST_CACHE to a writable folder"}
    except Exception as exc:  # `import ganfast` must not fail because the kernels cannot be had
        return None, {"reason": prefix + f"preparing the kernels' build failed: {type(exc).__name__}: {exc}",
                      "fix": "`python -m ganfast build` shows the whole error"}
    try:
        module = _import_library(library)
    except (ImportError, OSError) as exc:
        return None, {"reason": prefix + f"the cached build {library} does not load: {type(exc).__name__}: {exc}",
                      "fix": "`python -m ganfast build --force`"}
    return module, {"source": "jit" if compiled else "cache", "library": str(library), "stamp": stamp}


_C, HOW = _load()
AVAILABLE = _C is not None
WITH_CUDA = bool(AVAILABLE and getattr(_C, "WITH_CUDA", 0))
UNAVAILABLE_REASON = HOW.get("reason")
FIX = HOW.get("fix")

if not AVAILABLE:
    warnings.warn(
        "ganfast: compiled kernels unavailable (" + UNAVAILABLE_REASON + "); using the "
        "pure-PyTorch fallback, which gives the same results but slowly. Fix: " + FIX,
        FallbackWarning,
        stacklevel=2,
    )


def require(what: str = "the fused backend"):
    """Raise a clear error when `what` needs the extension and it is not there."""
    if not AVAILABLE:
        raise RuntimeError(
            f"ganfast: {what} needs the compiled extension, which is unavailable "
            f"({UNAVAILABLE_REASON}); use backend='torch', or fix: {FIX}"
        )


def info() -> dict:
    """What is loaded: versions, where the kernels came from, the ISA chosen, CUDA, build flags."""
    import platform

    import torch

    from ganfast import _build

    stamp = HOW.get("stamp") or {}
    return {
        "ganfast": getattr(sys.modules.get("ganfast"), "__version__", None),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "extension": AVAILABLE,
        "kernels_from": HOW.get("source"),  # 'aot' (built at install), 'jit' (compiled now), 'cache'
        "library": HOW.get("library"),
        "cache": str(_build.cache_root()),
        "cpu_isa": getattr(_C, "CPU_ISA", None),
        "cpu_isas_built": stamp.get("cpu_isas"),
        "cuda_built": WITH_CUDA,
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda": torch.version.cuda,
        "cuda_arch_list": stamp.get("cuda_arch_list"),
        "cxx_flags": stamp.get("cxx_flags"),
        "nvcc_flags": stamp.get("nvcc_flags"),
        "built_for": {k: stamp.get(k) for k in ("python", "torch", "cuda")} if stamp else None,
        "build_seconds": stamp.get("build_seconds"),
        "unavailable_reason": UNAVAILABLE_REASON,
        "fix": FIX,
    }
