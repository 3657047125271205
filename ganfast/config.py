"""Training configs: frozen dataclasses, YAML loading and validation.

A config is a YAML mapping; every key is optional (defaults below, the devnag setting except
``discriminator.input``). ``load_config`` checks it all at the boundary and raises
``ConfigError`` with the full dotted key, so the engines can trust what they get.

    name: devnag          seed: 0 (>= 0)       dtype: float32 | float64
    epochs: 5000 (>= 1)   log_every: 100 (>= 1) batch_size: 500 (>= 1)
    d_steps: 20, g_steps: 20 (>= 0, D / G updates per epoch, at least one of them >= 1)
    population: 1 (>= 1; member k uses seed + k)
    noise:   {kind: uniform, dim: 1, low: 0.0, high: 1.0} | {kind: normal, dim, mean, std}
    data:    {kind: normal, dim: 1, mean: [4.0], std: [1.25]}     (scalars are broadcast)
           | {kind: mixture, centers: K x dim, std, weights: K positives (optional)}
           | {kind: ring, dim: 2, modes, radius, std}  centres radius*(cos, sin)(2 pi k / modes)
           | {kind: digits | mnist | cifar10, root: DIR, scale: unit | symmetric, limit: N}
             image data sets (ganfast.datasets); dim is C*H*W; scale: pixels in [0, 1] or
             [-1, 1]; limit: use the first N images. root is where mnist / cifar10 files are
             (`--data DIR`); the digits come with scikit-learn. With image data an epoch is a
             pass over the data set, and population must be 1.
    generator / discriminator:
        hidden: list of widths >= 1 (may be empty), activation, activation_param,
        output_activation, output_activation_param, dropout in [0, 1)
        discriminator.input: raw | moments (devnag's 4 moments of the batch; data.dim == 1)
        arch: mlp | cifar_conv | dcgan (image data only; the conv nets are how-to-gan's and
        take only `init`), batchnorm: false | true (BatchNorm1d after each hidden layer, image
        MLPs only), init: default (nn.Linear's) | dcgan (weights N(0, 0.02))
    loss: {generator: non_saturating | minimax}
    optimizer_d / optimizer_g: {kind: sgd | adam, lr: 1e-3, momentum: 0.9,
        betas: [0.9, 0.999], eps: 1e-8, step_lr: null | {step_size: >= 1, gamma: (0, 1]}}

``dim`` may be left out of ``data``: it is read off mean/std (normal) or centers (mixture);
ring is always 2-D. ``std`` is stored per dimension for every data kind (mixture and ring
take a scalar, shared by all dimensions, or one value per dimension). YAML 1.1 reads ``1e-3``
as a string, so numeric strings are accepted wherever a number goes.
"""
from __future__ import annotations

import difflib
import math
import numbers
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from .datasets import IMAGE_SHAPES
from .spec import DEFAULT_ACT_PARAM, MLPSpec, canonical_activation

PRESET_DIR = Path(__file__).resolve().parent / "presets"


class ConfigError(ValueError):
    """An invalid training config; the message starts with (or names) the dotted key at fault."""


# --- checking single values: each takes the raw value and its dotted key --------------------

_RANGES = {
    "> 0": lambda x: x > 0,
    "in [0, 1)": lambda x: 0 <= x < 1,
    "in (0, 1]": lambda x: 0 < x <= 1,
}

# Common misspellings / other libraries' names -> our key (used for "did you mean").
_HINTS = {
    "learning_rate": "lr", "beta": "betas", "epsilon": "eps", "hidden_sizes": "hidden",
    "hidden_size": "hidden", "layers": "hidden", "widths": "hidden", "act": "activation",
    "batch": "batch_size", "num_epochs": "epochs", "iterations": "epochs", "type": "kind",
    "sigma": "std", "mu": "mean", "scheduler": "step_lr", "n_modes": "modes",
}


def _describe(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    if isinstance(v, str):
        return f"the string {v!r}"
    if isinstance(v, Mapping):
        return "a mapping"
    if isinstance(v, (list, tuple)):
        return f"a list ({list(v)!r})"
    return f"{type(v).__name__} {v!r}"


def _did_you_mean(word: str, options) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def _one_of(choices) -> str:
    choices = sorted(choices)
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


def _real(v, key) -> float:
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got the string {v!r}") from None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ConfigError(f"{key}: expected a number, got {_describe(v)}")
    x = float(v)
    if not math.isfinite(x):
        raise ConfigError(f"{key}: must be a finite number, got {x}")
    return x


def _float(v, key, must: str | None = None) -> float:
    x = _real(v, key)
    if must and not _RANGES[must](x):
        raise ConfigError(f"{key}: must be {must}, got {x!r}")
    return x


def _int(v, key, lo: int | None = None) -> int:
    if isinstance(v, str):
        try:
            v = int(v)
        except ValueError:
            try:
                v = float(v)  # '1e4' -> 10000.0, checked for integrality below
            except ValueError:
                raise ConfigError(f"{key}: expected an integer, got the string {v!r}") from None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ConfigError(f"{key}: expected an integer, got {_describe(v)}")
    if not isinstance(v, numbers.Integral) and not (math.isfinite(v) and float(v).is_integer()):
        raise ConfigError(f"{key}: expected an integer, got {v!r}")
    v = int(v)
    if lo is not None and v < lo:
        raise ConfigError(f"{key}: must be >= {lo}, got {v}")
    return v


def _str(v, key) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{key}: expected a non-empty string, got {_describe(v)}")
    return v


def _bool(v, key) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{key}: expected true or false, got {_describe(v)}")
    return v


def _choice(v, key, choices, what: str) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"{key}: expected {_one_of(choices)}, got {_describe(v)}")
    s = v.lower().replace("-", "_")
    if s not in choices:
        raise ConfigError(
            f"{key}: unknown {what} {v!r}; choose {_one_of(choices)}{_did_you_mean(s, choices)}")
    return s


def _list(v, key, what: str) -> list:
    if not isinstance(v, (list, tuple)):
        raise ConfigError(f"{key}: expected a list of {what}, got {_describe(v)}")
    return list(v)


def _vector(v, key, n: int, why: str, must: str | None = None, broadcast=True) -> tuple:
    """n floats; a scalar is broadcast when `broadcast`. `why` says where n comes from."""
    if broadcast and not isinstance(v, (list, tuple)):
        return (_float(v, key, must),) * n
    items = _list(v, key, "numbers")
    if len(items) != n:
        raise ConfigError(f"{key}: needs {n} value{'s' * (n != 1)} ({why}), got {len(items)}")
    return tuple(_float(x, f"{key}[{i}]", must) for i, x in enumerate(items))


def _activation(v, key) -> str:
    try:
        return canonical_activation(v)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key}: {e}") from None


def _act_param(v, key, act: str) -> float | None:
    if v is None:
        return None
    if act not in DEFAULT_ACT_PARAM:
        raise ConfigError(f"{key}: activation {act!r} takes no parameter (only "
                          f"{_one_of(DEFAULT_ACT_PARAM)} do); remove it or set it to null")
    return _float(v, key, "> 0")


# --- sections -----------------------------------------------------------------------------

def _section(raw, key: str, known) -> dict:
    """A mapping with only known keys (null counts as empty)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key or 'config'}: expected a mapping of keys to values, "
                          f"got {_describe(raw)}")
    for k in raw:
        if k not in known:
            cands = list(known) + [h for h, t in _HINTS.items() if t in known]
            m = difflib.get_close_matches(str(k).lower(), cands, n=1, cutoff=0.6)
            hint = f"; did you mean {_HINTS.get(m[0], m[0])!r}?" if m else ""
            raise ConfigError(f"unknown key {k!r} in {key or 'the config'} "
                              f"(known: {', '.join(known)}){hint}")
    return dict(raw)


def _only(d: dict, key: str, kind: str, allowed) -> None:
    for k in d:
        if k not in allowed:
            raise ConfigError(f"{key}.{k}: not used by {key}.kind {kind!r} "
                              f"(it takes {', '.join(allowed)})")


def _required(d: dict, name: str, key: str, kind: str):
    if d.get(name) is None:
        raise ConfigError(f"{key}.{name}: required for {key}.kind {kind!r}")
    return d[name]


def _plain(v):
    """YAML-safe plain data: tuples -> lists, config dataclasses -> dicts."""
    if hasattr(v, "to_dict"):
        return v.to_dict()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    return v


# --- the dataclasses ----------------------------------------------------------------------

_NOISE_KEYS = {"uniform": ("kind", "dim", "low", "high"), "normal": ("kind", "dim", "mean", "std")}


@dataclass(frozen=True)
class NoiseConfig:
    """Generator input: U(low, high) or N(mean, std) in `dim` dimensions (the unused pair
    keeps its default)."""

    kind: str = "uniform"
    dim: int = 1
    low: float = 0.0
    high: float = 1.0
    mean: float = 0.0
    std: float = 1.0

    def to_dict(self) -> dict:
        keys = _NOISE_KEYS.get(self.kind, _NOISE_KEYS["uniform"])
        return {k: _plain(getattr(self, k)) for k in keys}

    @classmethod
    def _parse(cls, raw, key="noise") -> "NoiseConfig":
        d = _section(raw, key, ("kind", "dim", "low", "high", "mean", "std"))
        kind = _choice(d.get("kind", "uniform"), f"{key}.kind", _NOISE_KEYS, "noise kind")
        _only(d, key, kind, _NOISE_KEYS[kind])
        dim = _int(d.get("dim", 1), f"{key}.dim", 1)
        if kind == "normal":
            return cls(kind, dim, mean=_float(d.get("mean", 0.0), f"{key}.mean"),
                       std=_float(d.get("std", 1.0), f"{key}.std", "> 0"))
        low = _float(d.get("low", 0.0), f"{key}.low")
        high = _float(d.get("high", 1.0), f"{key}.high")
        if not low < high:
            raise ConfigError(f"{key}.high: must be > {key}.low ({low!r}), got {high!r}")
        return cls(kind, dim, low=low, high=high)


_DATA_KEYS = {
    "normal": ("kind", "dim", "mean", "std"),
    "mixture": ("kind", "dim", "centers", "std", "weights"),
    "ring": ("kind", "dim", "modes", "radius", "std"),
    "digits": ("kind", "scale", "limit"),
    "mnist": ("kind", "root", "scale", "limit"),
    "cifar10": ("kind", "root", "scale", "limit"),
}
_SCALES = {"unit": (0.0, 1.0), "symmetric": (-1.0, 1.0)}


@dataclass(frozen=True)
class DataConfig:
    """The real distribution. Fields not used by `kind` are None; `std` is per dimension;
    mixture `weights` are normalised to sum to 1. `components()` gives every kind as a
    diagonal Gaussian mixture."""

    kind: str = "normal"
    dim: int = 1
    mean: tuple | None = (4.0,)
    std: tuple = (1.25,)
    centers: tuple | None = None
    weights: tuple | None = None
    modes: int | None = None
    radius: float | None = None
    root: str | None = None
    scale: str | None = None
    limit: int | None = None

    @property
    def is_image(self) -> bool:
        return self.kind in IMAGE_SHAPES

    @property
    def image_shape(self) -> tuple:
        """(channels, height, width) of an image data set."""
        if not self.is_image:
            raise ValueError(f"data.kind {self.kind!r} is not an image data set")
        return IMAGE_SHAPES[self.kind]

    @property
    def pixel_range(self) -> tuple:
        """(low, high) of the pixels the networks see: [0, 1] or [-1, 1]."""
        return _SCALES[self.scale or "unit"]

    def components(self) -> tuple:
        """(centers: K tuples of dim floats, std: dim floats, weights: K floats summing to 1)."""
        if self.is_image:
            raise ValueError(f"data.kind {self.kind!r} is an image data set, not a Gaussian mixture")
        if self.kind == "normal":
            return (tuple(self.mean),), tuple(self.std), (1.0,)
        if self.kind == "ring":
            k = self.modes
            centers = tuple((self.radius * math.cos(2 * math.pi * i / k),
                             self.radius * math.sin(2 * math.pi * i / k)) for i in range(k))
            return centers, tuple(self.std), (1.0 / k,) * k
        return tuple(self.centers), tuple(self.std), tuple(self.weights)

    def to_dict(self) -> dict:
        keys = _DATA_KEYS.get(self.kind, _DATA_KEYS["normal"])
        out = {k: _plain(getattr(self, k)) for k in keys}
        if self.is_image:
            return out
        std = out.get("std")
        isotropic = isinstance(std, list) and std and std.count(std[0]) == len(std)
        if self.kind != "normal" and isotropic:
            out["std"] = std[0]  # mixture / ring: a shared isotropic std reads as a scalar
        return out

    @classmethod
    def _parse(cls, raw, key="data") -> "DataConfig":
        d = _section(raw, key, tuple(f.name for f in fields(cls)))
        kind = _choice(d.get("kind", "normal"), f"{key}.kind", _DATA_KEYS, "data kind")
        _only(d, key, kind, _DATA_KEYS[kind])

        if kind in IMAGE_SHAPES:
            c, h, w = IMAGE_SHAPES[kind]
            root = d.get("root")
            limit = d.get("limit")
            return cls(kind, c * h * w, mean=None, std=None,
                       root=None if root is None else str(Path(_str(root, f"{key}.root"))),
                       scale=_choice(d.get("scale", "unit"), f"{key}.scale", _SCALES, "pixel scale"),
                       limit=None if limit is None else _int(limit, f"{key}.limit", 1))

        if kind == "normal":
            given = [v for v in (d.get("mean"), d.get("std")) if isinstance(v, (list, tuple))]
            dim = max(len(given[0]), 1) if given else 1  # read off mean / std unless given
            dim = _int(d["dim"], f"{key}.dim", 1) if "dim" in d else dim
            dim_why = f"{key}.dim is {dim}"
            return cls(kind, dim, mean=_vector(d.get("mean", 4.0), f"{key}.mean", dim, dim_why),
                       std=_vector(d.get("std", 1.25), f"{key}.std", dim, dim_why, "> 0"))

        if kind == "ring":
            dim = _int(d.get("dim", 2), f"{key}.dim", 1)
            if dim != 2:
                raise ConfigError(f"{key}.dim: kind 'ring' lies in the plane, so dim must be 2, "
                                  f"got {dim}")
            dim_why = f"{key}.dim is 2"
            std = _vector(_required(d, "std", key, kind), f"{key}.std", dim, dim_why, "> 0")
            return cls(kind, dim, mean=None, std=std,
                       modes=_int(_required(d, "modes", key, kind), f"{key}.modes", 1),
                       radius=_float(_required(d, "radius", key, kind), f"{key}.radius", "> 0"))

        rows = _list(_required(d, "centers", key, kind), f"{key}.centers", "centres")
        if not rows:
            raise ConfigError(f"{key}.centers: needs at least one centre")
        first = rows[0] if isinstance(rows[0], (list, tuple)) else None
        dim = _int(d["dim"], f"{key}.dim", 1) if "dim" in d else len(first) if first else 1
        dim_why = f"{key}.dim is {dim}"
        centers = tuple(_vector(r, f"{key}.centers[{i}]", dim, dim_why, broadcast=False)
                        for i, r in enumerate(rows))
        weights = (1.0,) * len(centers)
        if d.get("weights") is not None:
            weights = _vector(d["weights"], f"{key}.weights", len(centers), "one per centre",
                              "> 0", broadcast=False)
        total = math.fsum(weights)
        if not math.isclose(total, 1.0, rel_tol=1e-12):  # already normalised: keep (round trip)
            weights = tuple(w / total for w in weights)
        return cls(kind, dim, mean=None, centers=centers, weights=weights,
                   std=_vector(_required(d, "std", key, kind), f"{key}.std", dim, dim_why, "> 0"))


_NET_KEYS = ("hidden", "activation", "activation_param", "output_activation",
             "output_activation_param", "dropout", "batchnorm")
_ARCHS = ("mlp", "cifar_conv", "dcgan")
_INITS = ("default", "dcgan")


@dataclass(frozen=True)
class NetConfig:
    """A network: an MLP's hidden widths, activations, dropout and (image MLPs) BatchNorm, or
    one of how-to-gan's conv nets (`arch`, whose layers are fixed); `init` is nn.Linear's
    default or DCGAN's N(0, 0.02). `input` (raw | moments) is the discriminator's feature map
    and is always 'raw' for the generator."""

    hidden: tuple = (5, 5)
    activation: str = "tanh"
    activation_param: float | None = None
    output_activation: str = "identity"
    output_activation_param: float | None = None
    dropout: float = 0.0
    input: str = "raw"
    arch: str = "mlp"
    batchnorm: bool = False
    init: str = "default"

    def spec(self, in_dim: int, out_dim: int) -> MLPSpec:
        """The MLPSpec with widths [in_dim, *hidden, out_dim] (arch mlp only)."""
        if self.arch != "mlp":
            raise ValueError(f"arch {self.arch!r} is a conv net, not an MLP")
        return MLPSpec((in_dim, *self.hidden, out_dim), self.activation, self.output_activation,
                       self.dropout, self.activation_param, self.output_activation_param)

    @property
    def is_fused_mlp(self) -> bool:
        """An MLP the fused op can run (no BatchNorm, no convolutions; widths are checked
        where it runs)."""
        return self.arch == "mlp" and not self.batchnorm

    def to_dict(self) -> dict:
        if self.arch != "mlp":
            return {"arch": self.arch, "init": self.init}
        out = {k: _plain(getattr(self, k)) for k in _NET_KEYS + ("input",)}
        if self.init != "default":
            out["init"] = self.init
        return out

    @classmethod
    def _parse(cls, raw, key: str, default: "NetConfig", with_input: bool) -> "NetConfig":
        d = _section(raw, key, _NET_KEYS + ("arch", "init") + (("input",) if with_input else ()))
        arch = _choice(d.get("arch", "mlp"), f"{key}.arch", _ARCHS, "architecture")
        init = _choice(d.get("init", "default"), f"{key}.init", _INITS, "init")
        if arch != "mlp":
            _only(d, key, arch, ("arch", "init", "input"))
            inp = _choice(d.get("input", "raw"), f"{key}.input", ("moments", "raw"), "discriminator input")
            if inp != "raw":
                raise ConfigError(f"{key}.input: arch {arch!r} takes whole images ('raw'), not {inp!r}")
            return cls(arch=arch, init=init)
        hidden = _list(d.get("hidden", default.hidden), f"{key}.hidden",
                       "layer widths (may be empty)")
        act = _activation(d.get("activation", default.activation), f"{key}.activation")
        out = _activation(d.get("output_activation", default.output_activation),
                          f"{key}.output_activation")
        return cls(
            hidden=tuple(_int(w, f"{key}.hidden[{i}]", 1) for i, w in enumerate(hidden)),
            activation=act,
            activation_param=_act_param(d.get("activation_param"), f"{key}.activation_param", act),
            output_activation=out,
            output_activation_param=_act_param(d.get("output_activation_param"),
                                               f"{key}.output_activation_param", out),
            dropout=_float(d.get("dropout", default.dropout), f"{key}.dropout", "in [0, 1)"),
            input=_choice(d.get("input", "raw"), f"{key}.input", ("moments", "raw"),
                          "discriminator input"),
            arch=arch,
            batchnorm=_bool(d.get("batchnorm", False), f"{key}.batchnorm"),
            init=init,
        )


_G_DEFAULT = NetConfig()
_D_DEFAULT = NetConfig(hidden=(10, 10), activation="sigmoid", output_activation="sigmoid")


@dataclass(frozen=True)
class StepLRConfig:
    """Multiply the learning rate by `gamma` every `step_size` epochs (torch StepLR)."""

    step_size: int
    gamma: float = 0.1

    def to_dict(self) -> dict:
        return {"step_size": self.step_size, "gamma": self.gamma}

    @classmethod
    def _parse(cls, raw, key) -> "StepLRConfig | None":
        if raw is None:
            return None
        d = _section(raw, key, ("step_size", "gamma"))
        if "step_size" not in d:
            raise ConfigError(f"{key}.step_size: required (or set {key} to null)")
        return cls(_int(d["step_size"], f"{key}.step_size", 1),
                   _float(d.get("gamma", 0.1), f"{key}.gamma", "in (0, 1]"))


@dataclass(frozen=True)
class OptimizerConfig:
    """SGD (lr, momentum) or Adam (lr, betas, eps); the other kind's fields are kept but unused."""

    kind: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    step_lr: StepLRConfig | None = None

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def _parse(cls, raw, key) -> "OptimizerConfig":
        d = _section(raw, key, tuple(f.name for f in fields(cls)))
        return cls(
            kind=_choice(d.get("kind", "sgd"), f"{key}.kind", ("adam", "sgd"), "optimizer"),
            lr=_float(d.get("lr", 1e-3), f"{key}.lr", "> 0"),
            momentum=_float(d.get("momentum", 0.9), f"{key}.momentum", "in [0, 1)"),
            betas=_vector(d.get("betas", (0.9, 0.999)), f"{key}.betas", 2, "beta1, beta2",
                          "in [0, 1)", broadcast=False),
            eps=_float(d.get("eps", 1e-8), f"{key}.eps", "> 0"),
            step_lr=StepLRConfig._parse(d.get("step_lr"), f"{key}.step_lr"),
        )


@dataclass(frozen=True)
class LossConfig:
    """generator: 'non_saturating' (maximise log D(G(z))) or 'minimax' (minimise
    log(1 - D(G(z))))."""

    generator: str = "non_saturating"

    def to_dict(self) -> dict:
        return {"generator": self.generator}

    @classmethod
    def _parse(cls, raw, key="loss") -> "LossConfig":
        d = _section(raw, key, ("generator",))
        return cls(_choice(d.get("generator", "non_saturating"), f"{key}.generator",
                           ("minimax", "non_saturating"), "generator loss"))


_TOP_KEYS = ("name", "seed", "dtype", "epochs", "log_every", "batch_size", "d_steps", "g_steps",
             "noise", "data", "generator", "discriminator", "loss", "optimizer_d", "optimizer_g",
             "population")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run, validated. Sections may also be given as plain mappings; they
    are checked and converted on construction, so every TrainConfig is a valid one."""

    name: str = "devnag"
    seed: int = 0
    dtype: str = "float32"
    epochs: int = 5000
    log_every: int = 100
    batch_size: int = 500
    d_steps: int = 20
    g_steps: int = 20
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    data: DataConfig = field(default_factory=DataConfig)
    generator: NetConfig = field(default_factory=lambda: _G_DEFAULT)
    discriminator: NetConfig = field(default_factory=lambda: _D_DEFAULT)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer_d: OptimizerConfig = field(default_factory=OptimizerConfig)
    optimizer_g: OptimizerConfig = field(default_factory=OptimizerConfig)
    population: int = 1

    def __post_init__(self):
        for name, value in _parse_top(self.to_dict()).items():
            object.__setattr__(self, name, value)

    # --- derived ----------------------------------------------------------------------
    @property
    def g_spec(self) -> MLPSpec:
        """Generator: noise.dim -> data.dim (arch mlp)."""
        return self.generator.spec(self.noise.dim, self.data.dim)

    @property
    def d_spec(self) -> MLPSpec:
        """Discriminator: data.dim (or the 4 batch moments) -> 1 (arch mlp)."""
        return self.discriminator.spec(_d_in(self.discriminator, self.data), 1)

    @property
    def is_image(self) -> bool:
        """True for image data sets (ganfast.image_train), False for the toy distributions."""
        return self.data.is_image

    @property
    def member_seeds(self) -> tuple:
        """The seed of each population member: seed + k."""
        return tuple(range(self.seed, self.seed + self.population))

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    # --- conversion ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain data (lists, not tuples) that yaml.safe_dump writes and load_config reads back."""
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        if isinstance(self.generator, NetConfig):
            out["generator"].pop("input", None)  # only the discriminator has an input map
        return out

    def replace(self, overrides: Mapping[str, Any] | None = None, /, **kwargs) -> "TrainConfig":
        """A re-validated copy with some values changed. Keys are dotted paths:

            cfg.replace(epochs=10, seed=3)
            cfg.replace({"optimizer_d.lr": 1e-4, "data.std": 2.0})
            cfg.replace(optimizer_d={"kind": "adam"})   # a mapping replaces the whole section

        Setting a key under a null section (e.g. "optimizer_d.step_lr.step_size") creates it.
        """
        d = self.to_dict()
        for path, value in {**(overrides or {}), **kwargs}.items():
            *parents, leaf = str(path).split(".")
            node, where = d, []
            for p in parents:
                where.append(p)
                if node.get(p) is None:
                    node[p] = {}
                if not isinstance(node[p], dict):
                    raise ConfigError(f"{'.'.join(where)}: is a value, not a section; "
                                      f"cannot set {path!r}")
                node = node[p]
            node[leaf] = _plain(value)
        return load_config(d)


def _d_in(disc: NetConfig, data: DataConfig) -> int:
    """Discriminator input width: the 4 batch moments, or one sample."""
    return 4 if disc.input == "moments" else data.dim


def _parse_top(raw) -> dict:
    """Validated field values of a TrainConfig from a plain mapping, with cross-checks."""
    d = _section(raw, "", _TOP_KEYS)
    out = dict(
        name=_str(d.get("name", "devnag"), "name"),
        seed=_int(d.get("seed", 0), "seed", 0),
        dtype=_choice(d.get("dtype", "float32"), "dtype", ("float32", "float64"), "dtype"),
        epochs=_int(d.get("epochs", 5000), "epochs", 1),
        log_every=_int(d.get("log_every", 100), "log_every", 1),
        batch_size=_int(d.get("batch_size", 500), "batch_size", 1),
        d_steps=_int(d.get("d_steps", 20), "d_steps", 0),
        g_steps=_int(d.get("g_steps", 20), "g_steps", 0),
        noise=NoiseConfig._parse(d.get("noise")),
        data=DataConfig._parse(d.get("data")),
        generator=NetConfig._parse(d.get("generator"), "generator", _G_DEFAULT, False),
        discriminator=NetConfig._parse(d.get("discriminator"), "discriminator", _D_DEFAULT, True),
        loss=LossConfig._parse(d.get("loss")),
        optimizer_d=OptimizerConfig._parse(d.get("optimizer_d"), "optimizer_d"),
        optimizer_g=OptimizerConfig._parse(d.get("optimizer_g"), "optimizer_g"),
        population=_int(d.get("population", 1), "population", 1),
    )
    if out["d_steps"] + out["g_steps"] < 1:
        raise ConfigError("d_steps, g_steps: both are 0; at least one update per epoch is needed")
    if out["seed"] + out["population"] - 1 >= 2**63:  # seeds travel as int64 op arguments
        raise ConfigError("seed: seed + population - 1 must be < 2**63, "
                          f"got seed {out['seed']} with population {out['population']}")
    if out["discriminator"].input == "moments":
        if out["data"].dim != 1:
            raise ConfigError("discriminator.input: 'moments' (4 moments of a 1-D batch) needs "
                              f"data.dim == 1, got data.dim {out['data'].dim}")
        if out["batch_size"] < 2:
            raise ConfigError("batch_size: discriminator.input 'moments' needs batch_size >= 2 "
                              f"(a batch std), got {out['batch_size']}")
    _check_image_settings(out)
    for net, i, o in (("generator", out["noise"].dim, out["data"].dim),
                      ("discriminator", _d_in(out["discriminator"], out["data"]), 1)):
        if out[net].arch != "mlp":
            continue
        try:
            out[net].spec(i, o)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{net}.widths: {e}") from None
    return out


def _check_image_settings(out: dict) -> None:
    """What only image data supports (BatchNorm, conv nets) and what it does not (populations,
    epochs without a D step to walk the data set; the moments map needs 1-D data anyway)."""
    data = out["data"]
    if not data.is_image:
        for net in ("generator", "discriminator"):
            if out[net].arch != "mlp":
                raise ConfigError(f"{net}.arch: {out[net].arch!r} is for image data "
                                  f"(data.kind {_one_of(IMAGE_SHAPES)}), got data.kind {data.kind!r}")
            if out[net].batchnorm:
                raise ConfigError(f"{net}.batchnorm: only image data (data.kind "
                                  f"{_one_of(IMAGE_SHAPES)}) trains with BatchNorm; the toy engine's "
                                  "fused MLP has none")
        return
    if out["population"] != 1:
        raise ConfigError(f"population: image data trains one GAN at a time, got {out['population']}")
    if out["d_steps"] < 1:
        raise ConfigError("d_steps: image data needs at least one D step per iteration "
                          "(D steps walk the data set)")
    c, h, w = data.image_shape
    for net in ("generator", "discriminator"):
        if out[net].arch != "mlp" and (h, w) != (32, 32):
            raise ConfigError(f"{net}.arch: {out[net].arch!r} is built for 32x32 images "
                              f"(data.kind cifar10), got {data.kind} {h}x{w}")


# --- loading ------------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key_node.value!r}", key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        is_preset = str(path) in list_presets()
        hint = f" (for the preset {path.name!r} use load_preset)" if is_preset else ""
        raise ConfigError(f"{path}: config file not found{hint}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config file ({e})") from None
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    return {} if raw is None else raw


def load_config(source: "str | os.PathLike | Mapping | TrainConfig") -> TrainConfig:
    """A validated TrainConfig from a YAML file path or a plain mapping (missing keys take
    their defaults). Raises ConfigError; errors from a file are prefixed with its path."""
    if isinstance(source, TrainConfig):
        return source
    if isinstance(source, Mapping):
        return TrainConfig(**_section(source, "", _TOP_KEYS))
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"load_config expects a path or a mapping, got {type(source).__name__}")
    path = Path(source)
    raw = _read_yaml(path)
    try:
        return TrainConfig(**_section(raw, "", _TOP_KEYS))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def list_presets(kind: str | None = None) -> list:
    """Names of the shipped presets (ganfast/presets/*.yaml), sorted; kind "toy" or "image"
    keeps only the toy-distribution or the image presets."""
    names = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
    if kind is None:
        return names
    if kind not in ("toy", "image"):
        raise ValueError(f"kind must be 'toy', 'image' or None, got {kind!r}")
    return [n for n in names if load_preset(n).is_image == (kind == "image")]


def preset_path(name: str) -> Path:
    """Path of the preset's YAML file; ConfigError naming the choices if there is none."""
    names = list_presets()
    if name not in names:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(names)}"
                          f"{_did_you_mean(str(name), names)}")
    return PRESET_DIR / f"{name}.yaml"


def load_preset(name: str) -> TrainConfig:
    """The validated TrainConfig of a shipped preset, e.g. load_preset('devnag')."""
    return load_config(preset_path(name))
