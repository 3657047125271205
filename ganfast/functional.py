"""Backend choice, per call: the fused op where it applies, the PyTorch reference elsewhere.

Arguments are checked here, at the Python boundary, with messages that name the problem; the
C++ ops check again (TORCH_CHECK) for callers that use torch.ops.ganfast directly.
"""
from __future__ import annotations

import functools

import torch

from ganfast import _ext, reference
from ganfast import random as philox
from ganfast.spec import MAX_LAYERS, MAX_WIDTH, MLPSpec

BACKENDS = ("auto", "fused", "torch")


def _fused_device_ok(device: torch.device) -> bool:
    return device.type == "cpu" or (device.type == "cuda" and _ext.WITH_CUDA)


def fused_unavailable_reason(spec, device, dtype) -> str | None:
    """Why the fused kernels cannot run this call, or None when they can. `spec`: an MLPSpec,
    several (a tuple: every one must fit, e.g. a GanSpec's G and D for the engine), or None
    (the samplers)."""
    device_type = device.type if isinstance(device, torch.device) else torch.device(device or "cpu").type
    specs = spec if isinstance(spec, tuple) else (spec,)
    for one in specs:
        reason = _fused_unavailable_reason(one, device_type, dtype)
        if reason is not None:
            return reason
    return None


@functools.lru_cache(maxsize=256)  # asked on every call; the answer depends on these alone
def _fused_unavailable_reason(spec: MLPSpec | None, device_type: str, dtype) -> str | None:
    device = torch.device(device_type)
    if not _ext.AVAILABLE:
        return f"the compiled extension is unavailable ({_ext.UNAVAILABLE_REASON})"
    if not _fused_device_ok(device):
        return f"ganfast was built without kernels for {device.type} devices"
    if dtype not in (torch.float32, torch.float64):
        return f"the fused kernels take float32 or float64, not {dtype}"
    if spec is not None and max(spec.widths) > MAX_WIDTH:
        return f"a layer is wider than the fused kernels' limit of {MAX_WIDTH} (widths {list(spec.widths)})"
    if spec is not None and spec.num_layers > MAX_LAYERS:
        return f"the network has {spec.num_layers} layers, more than the fused kernels' limit of {MAX_LAYERS}"
    return None


def resolve_backend(backend: str, spec: MLPSpec | None = None, device=None, dtype=torch.float32) -> str:
    """'fused' or 'torch' for a requested backend; 'fused' that cannot run raises."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return "torch"
    reason = fused_unavailable_reason(spec, device, dtype)
    if reason is None:
        return "fused"
    if backend == "fused":
        raise RuntimeError(f"ganfast: backend='fused' cannot run here: {reason}")
    return "torch"


def check_mlp_args(x, params, spec: MLPSpec) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(params, torch.Tensor):
        raise TypeError("x and params must be torch.Tensors")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if params.dtype != x.dtype:
        raise TypeError(f"params are {params.dtype} but x is {x.dtype}; convert one of them")
    if params.device != x.device:
        raise ValueError(f"params are on {params.device} but x is on {x.device}")
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D (batch, features), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("x has an empty batch (0 samples)")
    if x.shape[1] != spec.in_features:
        raise ValueError(f"x has {x.shape[1]} features but the network expects {spec.in_features}")
    if params.dim() != 1 or params.numel() != spec.num_params:
        raise ValueError(
            f"params must be 1-D with {spec.num_params} values for widths {list(spec.widths)}, "
            f"got shape {tuple(params.shape)}"
        )


def mlp(x, params, spec: MLPSpec, *, train: bool = False, seed: int = 0, offset: int = 0,
        backend: str = "auto"):
    """MLP forward on flat parameters, differentiable in x and params.

    In training mode with spec.dropout > 0 the dropout masks come from Philox (seed, offset)
    and the call consumes spec.dropout_words(batch) words of that stream.
    """
    check_mlp_args(x, params, spec)
    seed, offset = philox._check_seed(seed), philox._check_offset(offset)  # same errors on every backend
    if resolve_backend(backend, spec, x.device, x.dtype) == "fused":
        return fused_ops().mlp_forward(x.contiguous(), params.contiguous(), spec, train, seed, offset)
    return reference.mlp_forward(x, params, spec, train=train, seed=seed, offset=offset)


@functools.lru_cache(maxsize=None)
def fused_ops():
    """ganfast.ops, imported on first use (it needs the extension; the fallback never loads it)."""
    from ganfast import ops

    return ops


def _random(kind, n, seed, offset, a, b, dtype, device, backend):
    check = philox.check_uniform_args if kind == "uniform" else philox.check_normal_args
    n, seed, offset, a, b, dtype = check(n, seed, offset, a, b, dtype)
    device = torch.device(device) if device is not None else torch.device("cpu")
    if resolve_backend(backend, None, device, dtype) == "fused":
        ops = fused_ops()
        out = torch.empty(n, dtype=dtype, device=device)
        return (ops.fill_uniform_ if kind == "uniform" else ops.fill_normal_)(out, seed, offset, a, b)
    fn = philox.uniform if kind == "uniform" else philox.normal
    return fn(n, seed, offset, a, b, dtype=dtype, device=device)


def uniform(n: int, seed: int, offset: int = 0, low: float = 0.0, high: float = 1.0, *,
            dtype=torch.float32, device=None, backend: str = "auto"):
    """n numbers from U[low, high) of the Philox stream (seed) starting at word `offset`."""
    return _random("uniform", n, seed, offset, low, high, dtype, device, backend)


def normal(n: int, seed: int, offset: int = 0, mean: float = 0.0, std: float = 1.0, *,
           dtype=torch.float32, device=None, backend: str = "auto"):
    """n numbers from N(mean, std^2) of the Philox stream; consumes n + n % 2 words."""
    return _random("normal", n, seed, offset, mean, std, dtype, device, backend)


def noise(cfg, n: int, seed: int, offset: int = 0, *, dtype=torch.float32, device=None,
          backend: str = "auto"):
    """n generator inputs (n, cfg.dim) of a ganfast.gan.NoiseSpec (uniform or normal) from the
    Philox stream (seed, offset); they take noise_words(cfg, n) words."""
    if cfg.kind == "uniform":
        x = uniform(n * cfg.dim, seed, offset, cfg.low, cfg.high, dtype=dtype, device=device, backend=backend)
    else:
        x = normal(n * cfg.dim, seed, offset, cfg.mean, cfg.std, dtype=dtype, device=device, backend=backend)
    return x.view(n, cfg.dim)


def noise_words(cfg, n: int) -> int:
    """Philox words that noise(cfg, n, ...) consumes."""
    count = n * cfg.dim
    return philox.words_for_uniform(count) if cfg.kind == "uniform" else philox.words_for_normal(count)
