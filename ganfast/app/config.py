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

import functools
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from ganfast.app.datasets import IMAGE_SHAPES
from ganfast.gan import DTYPES, Described, GanSpec, MixtureSpec, NoiseSpec, OptimizerSpec, plain
from ganfast.spec import DEFAULT_ACT_PARAM, MLPSpec, canonical_activation
from ganfast.validate import (SpecError, choice, did_you_mean, flag, integer, integers, items, join, mapping,
                              number, one_of, optional, spec_field, sub, text, vector)

PRESET_DIR = Path(__file__).resolve().parent / "presets"


class ConfigError(SpecError):
    """An invalid training config; the message starts with (or names) the dotted key at fault."""


# --- data -----------------------------------------------------------------------------------

_DATA_KEYS = {
    "normal": ("kind", "dim", "mean", "std"),
    "mixture": ("kind", "dim", "centers", "std", "weights"),
    "ring": ("kind", "dim", "modes", "radius", "std"),
    "digits": ("kind", "scale", "limit"),
    "mnist": ("kind", "root", "scale", "limit"),
    "cifar10": ("kind", "root", "scale", "limit"),
}
_SCALES = {"unit": (0.0, 1.0), "symmetric": (-1.0, 1.0)}


def _only(given, key: str, kind: str, allowed, by: str = "kind") -> None:
    for k in sorted(given or ()):
        if k not in allowed:
            raise SpecError(f"{key}.{k}: not used by {key}.{by} {kind!r} (it takes {', '.join(allowed)})")


def _required(v: dict, name: str, key: str, kind: str, given):
    if v.get(name) is None or (given is not None and name not in given):
        raise SpecError(f"{key}.{name}: required for {key}.kind {kind!r}")
    return v[name]


@dataclass(frozen=True)
class DataConfig(Described):
    """The real distribution. Fields not used by `kind` are None; `std` is per dimension;
    mixture `weights` are normalised to sum to 1. `components()` gives every toy kind as a
    diagonal Gaussian mixture. Which keys a kind takes, and what `dim` is, depend on the kind:
    the checks are all in _cross_check."""

    kind: str = spec_field("normal", choice(_DATA_KEYS, "data kind"))
    dim: int | None = spec_field(None)
    mean: Any = spec_field(4.0)      # normal: a number (broadcast) or one per dimension
    std: Any = spec_field(1.25)
    centers: tuple | None = spec_field(None)
    weights: tuple | None = spec_field(None)
    modes: int | None = spec_field(None)
    radius: float | None = spec_field(None)
    root: str | None = spec_field(None)
    scale: str | None = spec_field(None)
    limit: int | None = spec_field(None)

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

    def _dict_keys(self) -> tuple:
        return _DATA_KEYS[self.kind]

    def to_dict(self) -> dict:
        out = super().to_dict()
        std = out.get("std")
        isotropic = isinstance(std, list) and std and std.count(std[0]) == len(std)
        if self.kind in ("mixture", "ring") and isotropic:
            out["std"] = std[0]  # mixture / ring: a shared isotropic std reads as a scalar
        return out

    @classmethod
    def _cross_check(cls, v: dict, key: str, given) -> dict:
        kind = v["kind"]
        _only(given, key, kind, _DATA_KEYS[kind])
        out = dict.fromkeys(v)  # what the kind does not use stays None
        out["kind"] = kind
        if kind in IMAGE_SHAPES:
            c, h, w = IMAGE_SHAPES[kind]
            return {**out, "dim": c * h * w,
                    "root": optional(lambda r, k: str(Path(text(r, k))))(v["root"], join(key, "root")),
                    "scale": choice(_SCALES, "pixel scale")(v["scale"] or "unit", join(key, "scale")),
                    "limit": optional(integer(1))(v["limit"], join(key, "limit"))}
        if kind == "normal":
            lists = [x for x in (v["mean"], v["std"]) if isinstance(x, (list, tuple))]
            dim = max(len(lists[0]), 1) if lists else 1  # read off mean / std unless given
            dim = dim if v["dim"] is None else integer(1)(v["dim"], join(key, "dim"))
            why = f"{join(key, 'dim')} is {dim}"
            return {**out, "dim": dim, "mean": vector(v["mean"], join(key, "mean"), dim, why),
                    "std": vector(v["std"], join(key, "std"), dim, why, "> 0")}
        std = _required(v, "std", key, kind, given)
        if kind == "ring":
            dim = 2 if v["dim"] is None else integer(1)(v["dim"], join(key, "dim"))
            if dim != 2:
                raise SpecError(f"{key}.dim: kind 'ring' lies in the plane, so dim must be 2, got {dim}")
            return {**out, "dim": 2, "std": vector(std, join(key, "std"), 2, f"{key}.dim is 2", "> 0"),
                    "modes": integer(1)(_required(v, "modes", key, kind, given), join(key, "modes")),
                    "radius": number("> 0")(_required(v, "radius", key, kind, given), join(key, "radius"))}
        rows = items(_required(v, "centers", key, kind, given), join(key, "centers"), "centres")
        if not rows:
            raise SpecError(f"{key}.centers: needs at least one centre")
        first = rows[0] if isinstance(rows[0], (list, tuple)) else None
        dim = integer(1)(v["dim"], join(key, "dim")) if v["dim"] is not None else len(first) if first else 1
        why = f"{join(key, 'dim')} is {dim}"
        weights = None if v["weights"] is None else vector(v["weights"], join(key, "weights"), len(rows),
                                                           "one per centre", "> 0", broadcast=False)
        mix = MixtureSpec(tuple(vector(r, f"{join(key, 'centers')}[{i}]", dim, why, broadcast=False)
                                for i, r in enumerate(rows)),
                          vector(std, join(key, "std"), dim, why, "> 0"), weights)
        return {**out, "dim": dim, "centers": mix.centers, "std": mix.std, "weights": mix.weights}


# --- networks -------------------------------------------------------------------------------

_ARCHS = ("mlp", "cifar_conv", "dcgan")
_INITS = ("default", "dcgan")
_NET_KEYS = ("hidden", "activation", "activation_param", "output_activation", "output_activation_param",
             "dropout", "batchnorm")


def _activation(v, key) -> str:
    try:
        return canonical_activation(v)
    except (TypeError, ValueError) as e:
        raise SpecError(f"{key}: {e}") from None


def _act_param(v, key, act: str) -> float | None:
    if v is None:
        return None
    if act not in DEFAULT_ACT_PARAM:
        raise SpecError(f"{key}: activation {act!r} takes no parameter (only {one_of(DEFAULT_ACT_PARAM)} do); "
                        "remove it or set it to null")
    return number("> 0")(v, key)


@dataclass(frozen=True)
class NetConfig(Described):
    """A network: an MLP's hidden widths, activations, dropout and (image MLPs) BatchNorm, or
    one of how-to-gan's conv nets (`arch`, whose layers are fixed); `init` is nn.Linear's
    default or DCGAN's N(0, 0.02). `input` (raw | moments) is the discriminator's feature map
    and is always 'raw' for the generator."""

    hidden: tuple = spec_field((5, 5), integers(1, "layer widths (may be empty)"))
    activation: str = spec_field("tanh", _activation)
    activation_param: float | None = spec_field(None)  # checked against the activation
    output_activation: str = spec_field("identity", _activation)
    output_activation_param: float | None = spec_field(None)
    dropout: float = spec_field(0.0, number("in [0, 1)"))
    input: str = spec_field("raw", choice(("moments", "raw"), "discriminator input"))
    arch: str = spec_field("mlp", choice(_ARCHS, "architecture"))
    batchnorm: bool = spec_field(False, flag)
    init: str = spec_field("default", choice(_INITS, "init"))

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

    def _dict_keys(self) -> tuple:
        if self.arch != "mlp":
            return ("arch", "init")
        return _NET_KEYS + ("input",) + (("init",) if self.init != "default" else ())

    @classmethod
    def _cross_check(cls, v: dict, key: str, given) -> dict:
        if v["arch"] != "mlp":
            _only(given, key, v["arch"], ("arch", "init", "input"), by="arch")
            if v["input"] != "raw":
                raise SpecError(f"{key}.input: arch {v['arch']!r} takes whole images ('raw'), not {v['input']!r}")
            return {**{f.name: f.default for f in fields(cls)}, "arch": v["arch"], "init": v["init"]}
        for param, act in (("activation_param", "activation"), ("output_activation_param", "output_activation")):
            v[param] = _act_param(v[param], join(key, param), v[act])
        return v


_G_DEFAULT = NetConfig()
_D_DEFAULT = NetConfig(hidden=(10, 10), activation="sigmoid", output_activation="sigmoid")


@dataclass(frozen=True)
class LossConfig(Described):
    """generator: 'non_saturating' (maximise log D(G(z))) or 'minimax' (minimise
    log(1 - D(G(z))))."""

    generator: str = spec_field("non_saturating", choice(("minimax", "non_saturating"), "generator loss"))


# --- the whole config -----------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig(Described):
    """A whole training run, validated. Sections may also be given as plain mappings; they
    are checked and converted on construction, so every TrainConfig is a valid one. The field
    defaults below are the only defaults (devnag's, except discriminator.input)."""

    name: str = spec_field("devnag", text)
    seed: int = spec_field(0, integer(0))
    dtype: str = spec_field("float32", choice(DTYPES, "dtype"))
    epochs: int = spec_field(5000, integer(1))
    log_every: int = spec_field(100, integer(1))
    batch_size: int = spec_field(500, integer(1))
    d_steps: int = spec_field(20, integer(0))
    g_steps: int = spec_field(20, integer(0))
    noise: NoiseSpec = spec_field(NoiseSpec(), sub(NoiseSpec))
    data: DataConfig = spec_field(DataConfig(), sub(DataConfig))
    generator: NetConfig = spec_field(_G_DEFAULT, sub(NetConfig, exclude=("input",)))
    discriminator: NetConfig = spec_field(_D_DEFAULT, sub(NetConfig, base=_D_DEFAULT))
    loss: LossConfig = spec_field(LossConfig(), sub(LossConfig))
    optimizer_d: OptimizerSpec = spec_field(OptimizerSpec(), sub(OptimizerSpec))
    optimizer_g: OptimizerSpec = spec_field(OptimizerSpec(), sub(OptimizerSpec))
    population: int = spec_field(1, integer(1))

    def __post_init__(self):
        try:
            super().__post_init__()
        except ConfigError:
            raise
        except SpecError as e:
            raise ConfigError(str(e)) from None

    # --- derived ----------------------------------------------------------------------
    @property
    def g_spec(self) -> MLPSpec:
        """Generator: noise.dim -> data.dim (arch mlp)."""
        return self.generator.spec(self.noise.dim, self.data.dim)

    @property
    def d_spec(self) -> MLPSpec:
        """Discriminator: data.dim (or the 4 batch moments) -> 1 (arch mlp)."""
        return self.discriminator.spec(_d_in(self.discriminator, self.data), 1)

    @functools.cached_property
    def gan_spec(self) -> GanSpec:
        """The library's description of this toy GAN (ganfast.gan.GanSpec): what the fused
        engine, the population state and the reference trainer take. Seeds and population
        stay here (init_state reads them from the config)."""
        if self.is_image:
            raise ValueError(f"data.kind {self.data.kind!r} is an image data set: the image trainer "
                             "(ganfast.app.image_train) runs it, not the toy engine")
        return _gan_spec({f.name: getattr(self, f.name) for f in fields(self)})  # checked on construction

    @property
    def is_image(self) -> bool:
        """True for image data sets (ganfast.app.image_train), False for the toy distributions."""
        return self.data.is_image

    @property
    def member_seeds(self) -> tuple:
        """The seed of each population member: seed + k."""
        return tuple(range(self.seed, self.seed + self.population))

    @property
    def torch_dtype(self):
        return DTYPES[self.dtype]

    # --- conversion ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain data (lists, not tuples) that yaml.safe_dump writes and load_config reads back."""
        out = super().to_dict()
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
                    raise ConfigError(f"{'.'.join(where)}: is a value, not a section; cannot set {path!r}")
                node = node[p]
            node[leaf] = plain(value)
        return load_config(d)

    @classmethod
    def _cross_check(cls, out: dict, key: str, given) -> dict:
        """What involves several sections."""
        if out["d_steps"] + out["g_steps"] < 1:
            raise SpecError("d_steps, g_steps: both are 0; at least one update per epoch is needed")
        if out["seed"] + out["population"] - 1 >= 2**63:  # seeds travel as int64 op arguments
            raise SpecError("seed: seed + population - 1 must be < 2**63, "
                            f"got seed {out['seed']} with population {out['population']}")
        if out["discriminator"].input == "moments":
            if out["data"].dim != 1:
                raise SpecError("discriminator.input: 'moments' (4 moments of a 1-D batch) needs "
                                f"data.dim == 1, got data.dim {out['data'].dim}")
            if out["batch_size"] < 2:
                raise SpecError("batch_size: discriminator.input 'moments' needs batch_size >= 2 "
                                f"(a batch std), got {out['batch_size']}")
        _check_image_settings(out)
        for net, i, o in (("generator", out["noise"].dim, out["data"].dim),
                          ("discriminator", _d_in(out["discriminator"], out["data"]), 1)):
            if out[net].arch != "mlp":
                continue
            try:
                out[net].spec(i, o)
            except (TypeError, ValueError) as e:
                raise SpecError(f"{net}.widths: {e}") from None
            for layer in ("dropout", "batchnorm"):  # both act after hidden layers only
                if getattr(out[net], layer) and not out[net].hidden:
                    raise SpecError(f"{net}.{layer}: acts after hidden layers, and {net}.hidden is empty, so it "
                                    "would do nothing; remove it or add a hidden layer")
            if out[net].batchnorm and out["batch_size"] < 2:
                raise SpecError(f"batch_size: {net}.batchnorm needs batch_size >= 2 (BatchNorm normalises over the "
                                f"batch), got {out['batch_size']}")
        disc = out["discriminator"]
        if disc.arch == "mlp" and disc.output_activation != "sigmoid":
            raise SpecError("discriminator.output_activation: the BCE loss needs D's output in (0, 1), so it must "
                            f"be sigmoid, got {disc.output_activation!r}")
        if not out["data"].is_image:
            try:
                _gan_spec(out)  # anything else the toy engine and the reference trainer cannot run
            except SpecError as e:
                raise SpecError(f"the toy engine cannot run this config: {e}") from None
        return out


def _gan_spec(v) -> GanSpec:
    """The GanSpec of a toy config's values (TrainConfig's fields by name); SpecError if the
    engine cannot run them."""
    data, disc = v["data"], v["discriminator"]
    return GanSpec(g=v["generator"].spec(v["noise"].dim, data.dim), d=disc.spec(_d_in(disc, data), 1),
                   noise=v["noise"], data=MixtureSpec(*data.components()), d_input=disc.input,
                   batch_size=v["batch_size"], d_steps=v["d_steps"], g_steps=v["g_steps"],
                   g_loss=v["loss"].generator, optimizer_d=v["optimizer_d"], optimizer_g=v["optimizer_g"],
                   dtype=DTYPES[v["dtype"]])


def _d_in(disc: NetConfig, data: DataConfig) -> int:
    """Discriminator input width: the 4 batch moments, or one sample."""
    return 4 if disc.input == "moments" else data.dim


def _check_image_settings(out: dict) -> None:
    """What only image data supports (BatchNorm, conv nets) and what it does not (populations,
    epochs without a D step to walk the data set; the moments map needs 1-D data anyway)."""
    data = out["data"]
    if not data.is_image:
        for net in ("generator", "discriminator"):
            if out[net].arch != "mlp":
                raise SpecError(f"{net}.arch: {out[net].arch!r} is for image data "
                                f"(data.kind {one_of(IMAGE_SHAPES)}), got data.kind {data.kind!r}")
            if out[net].batchnorm:
                raise SpecError(f"{net}.batchnorm: only image data (data.kind {one_of(IMAGE_SHAPES)}) trains "
                                "with BatchNorm; the toy engine's fused MLP has none")
            if out[net].init != "default":
                raise SpecError(f"{net}.init: {out[net].init!r} is for image data (data.kind "
                                f"{one_of(IMAGE_SHAPES)}); the toy engine draws nn.Linear's default init from "
                                "each member's Philox stream")
        return
    if out["population"] != 1:
        raise SpecError(f"population: image data trains one GAN at a time, got {out['population']}")
    if out["d_steps"] < 1:
        raise SpecError("d_steps: image data needs at least one D step per iteration (D steps walk the data set)")
    c, h, w = data.image_shape
    for net in ("generator", "discriminator"):
        if out[net].arch != "mlp" and (h, w) != (32, 32):
            raise SpecError(f"{net}.arch: {out[net].arch!r} is built for 32x32 images "
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
        return _from_mapping(source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"load_config expects a path or a mapping, got {type(source).__name__}")
    path = Path(source)
    raw = _read_yaml(path)
    try:
        return _from_mapping(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _from_mapping(raw) -> TrainConfig:
    try:
        return TrainConfig(**mapping(raw, "", TrainConfig.keys()))
    except ConfigError:
        raise
    except SpecError as e:
        raise ConfigError(str(e)) from None


def list_presets(kind: str | None = None) -> list:
    """Names of the shipped presets (ganfast/app/presets/*.yaml), sorted; kind "toy" or "image"
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
                          f"{did_you_mean(str(name), names)}")
    return PRESET_DIR / f"{name}.yaml"


def load_preset(name: str) -> TrainConfig:
    """The validated TrainConfig of a shipped preset, e.g. load_preset('devnag')."""
    return load_config(preset_path(name))
