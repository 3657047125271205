"""The one place that decides whether the compiled extension is there.

`import ganfast` never fails because ganfast._C is missing or broken: the pure-PyTorch
reference runs instead, and one warning (at import) says why. GANFAST_DISABLE_EXTENSION=1
forces the fallback, which is how the tests exercise it.
"""
from __future__ import annotations

import os
import warnings


class FallbackWarning(UserWarning):
    """ganfast runs its pure-PyTorch fallback because the compiled kernels are unavailable."""


def _load():
    if os.environ.get("GANFAST_DISABLE_EXTENSION", "").strip() not in ("", "0"):
        return None, "disabled by GANFAST_DISABLE_EXTENSION"
    import torch  # noqa: F401  (_C links against libtorch/libc10, which torch loads)

    try:
        from ganfast import _C  # noqa: F401  (loading registers torch.ops.ganfast.*)
    except (ImportError, OSError) as exc:  # missing build, or an ABI mismatch with this torch
        return None, f"{type(exc).__name__}: {exc}"
    return _C, None


_C, UNAVAILABLE_REASON = _load()
AVAILABLE = _C is not None
WITH_CUDA = bool(AVAILABLE and getattr(_C, "WITH_CUDA", 0))

if not AVAILABLE:
    warnings.warn(
        "ganfast: compiled kernels unavailable (" + UNAVAILABLE_REASON + "); using the "
        "pure-PyTorch fallback, which gives the same results but slowly. Rebuild with "
        "`pip install --no-build-isolation .` to get the fused kernels.",
        FallbackWarning,
        stacklevel=2,
    )


def require(what: str = "the fused backend"):
    """Raise a clear error when `what` needs the extension and it is not there."""
    if not AVAILABLE:
        raise RuntimeError(
            f"ganfast: {what} needs the compiled extension, which is unavailable "
            f"({UNAVAILABLE_REASON}); use backend='torch' or rebuild with "
            "`pip install --no-build-isolation .`"
        )
