"""ganfast: fused C++/CUDA kernels for the classic toy GAN loop.

    import ganfast
    G = ganfast.Generator([1, 5, 5, 1], activation="tanh")
    D = ganfast.Discriminator([4, 10, 10, 1], activation="sigmoid")

Everything runs on the pure-PyTorch reference when the compiled extension is missing (one
warning says so); `ganfast.extension_available()` tells which.
"""
from ganfast import _ext
from ganfast._ext import info
from ganfast.functional import mlp, normal, uniform
from ganfast.modules import MLP, Discriminator, Generator
from ganfast.spec import ACTIVATIONS, MAX_WIDTH, MLPSpec

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "MAX_WIDTH", "MLP", "MLPSpec", "Discriminator", "Generator",
    "extension_available", "info", "mlp", "normal", "uniform",
]


def extension_available() -> bool:
    """True when the compiled kernels loaded (torch.ops.ganfast.* exist)."""
    return _ext.AVAILABLE
