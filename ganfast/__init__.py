"""ganfast: fused C++/CUDA kernels for the classic toy GAN loop.

    import ganfast
    G = ganfast.Generator([1, 5, 5, 1], activation="tanh")
    D = ganfast.Discriminator([4, 10, 10, 1], activation="sigmoid")

    cfg = ganfast.load_preset("devnag")                 # a TrainConfig (YAML preset)
    state = ganfast.init_state(cfg, population=8)       # 8 GANs, seeds 0..7
    metrics = ganfast.train_fused(cfg, state, 1000)     # the whole loop in one native call
    result = ganfast.train("ring8", epochs=500)         # a run as the CLI does it, in memory
    x = ganfast.sample(cfg, state, 20_000)              # (P, n, dim): G as it was trained
    m = ganfast.metrics.distances(x, cfg)               # W1 / KS / moments per member

Everything runs on the pure-PyTorch reference when the compiled extension is missing (one
warning says so); `ganfast.extension_available()` tells which. `load_preset` and `train` come
from the application (ganfast.app) and are imported on first use, so `import ganfast` loads the
library only.
"""
from ganfast import _ext, metrics
from ganfast._ext import info
from ganfast.engine import train_fused
from ganfast.functional import mlp, noise, normal, uniform
from ganfast.gan import GanSpec, MixtureSpec, NoiseSpec, OptimizerSpec, StepLR
from ganfast.modules import MLP, Discriminator, Generator
from ganfast.sampling import sample
from ganfast.spec import ACTIVATIONS, MAX_WIDTH, MLPSpec
from ganfast.state import GanState, init_state

__version__ = "0.1.0"

_APP = {"load_preset": "ganfast.app.config", "train": "ganfast.app.api"}

__all__ = [
    "ACTIVATIONS", "MAX_WIDTH", "MLP", "MLPSpec", "Discriminator", "Generator", "GanSpec", "GanState",
    "MixtureSpec", "NoiseSpec", "OptimizerSpec", "StepLR", "extension_available", "info", "init_state", "load_preset",
    "metrics", "mlp", "noise", "normal", "sample", "train", "train_fused", "uniform",
]


def extension_available() -> bool:
    """True when the compiled kernels loaded (torch.ops.ganfast.* exist)."""
    return _ext.AVAILABLE


def __getattr__(name: str):
    # PEP 562: the application's conveniences, imported on first use (the library never imports
    # the app). `ganfast.train` is the function; `python -m ganfast.train` runs the CLI through
    # the ganfast/train.py entry file, which runpy executes without binding it here.
    if name in _APP:
        import importlib

        value = getattr(importlib.import_module(_APP[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ganfast' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_APP))
