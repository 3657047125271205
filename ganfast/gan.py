"""GanSpec: what one toy GAN is, the description the fused engine, the population state and the
reference trainer all take (docs/design.md, "Training loop").

    spec = GanSpec(g=MLPSpec((1, 5, 5, 1), "tanh"), d=MLPSpec((4, 10, 10, 1), "sigmoid", "sigmoid"),
                   d_input="moments", data=MixtureSpec(((4.0,),), (1.25,)), batch_size=500,
                   d_steps=20, g_steps=20)

Every field is checked on construction (a SpecError, a ValueError, names the field). The
application's YAML config builds one (`ganfast.app.config.TrainConfig.gan_spec`); library calls
that take a spec also take such a config (anything with a `gan_spec` attribute).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from ganfast.spec import MLPSpec
from ganfast.validate import (Checked, SpecError, choice, fixed_vector, integer, join, number, optional,
                              spec_field, sub)

NOISE_KINDS = ("uniform", "normal")
D_INPUTS = ("raw", "moments")
G_LOSSES = ("non_saturating", "minimax")
OPTIMIZERS = ("sgd", "adam")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def plain(v):
    """YAML/JSON-safe plain data: tuples -> lists, Checked types -> dicts."""
    if hasattr(v, "to_dict"):
        return v.to_dict()
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v


class Described(Checked):
    """A Checked type that writes itself back as plain data (the keys `_dict_keys` names)."""

    def _dict_keys(self) -> tuple:
        return self.keys()

    def to_dict(self) -> dict:
        return {k: plain(getattr(self, k)) for k in self._dict_keys()}


_NOISE_KEYS = {"uniform": ("kind", "dim", "low", "high"), "normal": ("kind", "dim", "mean", "std")}


@dataclass(frozen=True)
class NoiseSpec(Described):
    """Generator input: U(low, high) or N(mean, std) in `dim` dimensions (the other kind's pair
    keeps its default)."""

    kind: str = spec_field("uniform", choice(NOISE_KINDS, "noise kind"))
    dim: int = spec_field(1, integer(1))
    low: float = spec_field(0.0, number())
    high: float = spec_field(1.0, number())
    mean: float = spec_field(0.0, number())
    std: float = spec_field(1.0, number("> 0"))

    def _dict_keys(self) -> tuple:
        return _NOISE_KEYS[self.kind]

    @classmethod
    def _cross_check(cls, v: dict, key: str, given) -> dict:
        allowed = _NOISE_KEYS[v["kind"]]
        for k in sorted(given or ()):
            if k not in allowed:
                raise SpecError(f"{join(key, k)}: not used by {join(key, 'kind')} {v['kind']!r} "
                                f"(it takes {', '.join(allowed)})")
        if v["kind"] == "uniform" and not v["low"] < v["high"]:
            raise SpecError(f"{join(key, 'high')}: must be > {join(key, 'low')} ({v['low']!r}), got {v['high']!r}")
        return v

    @property
    def params(self) -> tuple:
        """(low, high) or (mean, std): the two numbers of the kind."""
        return (self.low, self.high) if self.kind == "uniform" else (self.mean, self.std)


@dataclass(frozen=True)
class StepLR(Described):
    """Multiply the learning rate by `gamma` every `step_size` epochs (torch's StepLR)."""

    step_size: int = spec_field(check=integer(1))
    gamma: float = spec_field(0.1, number("in (0, 1]"))


@dataclass(frozen=True)
class OptimizerSpec(Described):
    """SGD (lr, momentum) or Adam (lr, betas, eps), optionally with a StepLR schedule; the other
    kind's fields are kept but unused."""

    kind: str = spec_field("sgd", choice(OPTIMIZERS, "optimizer"))
    lr: float = spec_field(1e-3, number("> 0"))
    momentum: float = spec_field(0.9, number("in [0, 1)"))
    betas: tuple = spec_field((0.9, 0.999), fixed_vector(2, "beta1, beta2", "in [0, 1)"))
    eps: float = spec_field(1e-8, number("> 0"))
    step_lr: StepLR | None = spec_field(None, optional(sub(StepLR)))

    def lr_at(self, base: float, epoch: int) -> float:
        """The learning rate of `epoch` (0-based) that starts from `base`: multiplied by gamma at
        every step_size-th epoch, one multiplication at a time as torch's StepLR does (and the
        engine's scheduled_lr), so it is the same double bit for bit."""
        lr = float(base)
        if self.step_lr is not None:
            for _ in range(int(epoch) // self.step_lr.step_size):
                lr *= self.step_lr.gamma
        return lr


@dataclass(frozen=True)
class MixtureSpec(Described):
    """The real distribution as the engine draws it: a diagonal Gaussian mixture of K centres
    (K tuples of dim floats), one std per dimension, K weights (normalised to sum to 1). A plain
    normal is one centre."""

    centers: tuple = spec_field(((4.0,),))
    std: tuple = spec_field((1.25,))
    weights: tuple | None = spec_field(None)

    @classmethod
    def _cross_check(cls, v: dict, key: str, given) -> dict:
        rows = v["centers"]
        if not isinstance(rows, (list, tuple)) or not rows or not isinstance(rows[0], (list, tuple)):
            raise SpecError(f"{join(key, 'centers')}: needs a list of K >= 1 centres, each a list of numbers")
        dim = len(rows[0])
        why = f"{dim} dimensions"
        centers = tuple(fixed_vector(dim, why)(r, f"{join(key, 'centers')}[{i}]") for i, r in enumerate(rows))
        std = fixed_vector(dim, why, "> 0")(v["std"], join(key, "std"))
        weights = v["weights"] if v["weights"] is not None else (1.0,) * len(centers)
        weights = fixed_vector(len(centers), "one per centre", "> 0")(weights, join(key, "weights"))
        total = math.fsum(weights)
        if not math.isclose(total, 1.0, rel_tol=1e-12):  # already normalised: kept (round trips)
            weights = tuple(w / total for w in weights)
        return {"centers": centers, "std": std, "weights": weights}

    @property
    def dim(self) -> int:
        return len(self.centers[0])


def _mlp(v, key) -> MLPSpec:
    if not isinstance(v, MLPSpec):
        raise SpecError(f"{key}: expected an MLPSpec, got {type(v).__name__}")
    return v


def _dtype(v, key) -> torch.dtype:
    if isinstance(v, torch.dtype) and v in DTYPES.values():
        return v
    return DTYPES[choice(tuple(DTYPES), "dtype")(v, key)]


@dataclass(frozen=True)
class GanSpec(Described):
    """One toy GAN: G and D (MLPSpecs), D's input (`raw` samples or devnag's 4 `moments` of the
    batch), noise, data, batch size, D and G updates per epoch, G's loss, the two optimizers and
    the dtype. Seeds and population size are the state's (ganfast.state.init_state)."""

    g: MLPSpec = spec_field(check=_mlp)
    d: MLPSpec = spec_field(check=_mlp)
    noise: NoiseSpec = spec_field(NoiseSpec(), sub(NoiseSpec))
    data: MixtureSpec = spec_field(MixtureSpec(), sub(MixtureSpec))
    d_input: str = spec_field("raw", choice(D_INPUTS, "discriminator input"))
    batch_size: int = spec_field(500, integer(1))
    d_steps: int = spec_field(1, integer(0))
    g_steps: int = spec_field(1, integer(0))
    g_loss: str = spec_field("non_saturating", choice(G_LOSSES, "generator loss"))
    optimizer_d: OptimizerSpec = spec_field(OptimizerSpec(), sub(OptimizerSpec))
    optimizer_g: OptimizerSpec = spec_field(OptimizerSpec(), sub(OptimizerSpec))
    dtype: torch.dtype = spec_field(torch.float32, _dtype)

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["g"], out["d"] = (plain(vars_of(s)) for s in (self.g, self.d))
        out["dtype"] = str(self.dtype).replace("torch.", "")
        return out

    @classmethod
    def _cross_check(cls, v: dict, key: str, given) -> dict:
        g, d = v["g"], v["d"]
        if v["d_steps"] + v["g_steps"] < 1:
            raise SpecError(f"{join(key, 'd_steps')}, {join(key, 'g_steps')}: both are 0; at least one update "
                            "per epoch is needed")
        if g.in_features != v["noise"].dim:
            raise SpecError(f"{join(key, 'g')}: G's input width {g.in_features} != noise.dim {v['noise'].dim}")
        if g.out_features != v["data"].dim:
            raise SpecError(f"{join(key, 'g')}: G's output width {g.out_features} != the data's dim {v['data'].dim}")
        d_in = 4 if v["d_input"] == "moments" else v["data"].dim
        if d.in_features != d_in or d.out_features != 1:
            raise SpecError(f"{join(key, 'd')}: D must map {d_in} inputs ({v['d_input']}) to 1 output, "
                            f"got widths {list(d.widths)}")
        if d.output_activation != "sigmoid":
            raise SpecError(f"{join(key, 'd')}: BCE needs D's output activation to be sigmoid, got "
                            f"{d.output_activation!r}")
        if v["d_input"] == "moments" and (v["data"].dim != 1 or v["batch_size"] < 2):
            raise SpecError(f"{join(key, 'd_input')}: 'moments' needs 1-D data and batch_size >= 2")
        return v


def vars_of(spec: MLPSpec) -> dict:
    """An MLPSpec's constructor arguments."""
    return {f.name: getattr(spec, f.name) for f in fields(spec) if f.init}


def as_gan_spec(spec) -> GanSpec:
    """`spec` itself, or the `gan_spec` of a run config (ganfast.app's TrainConfig)."""
    if isinstance(spec, GanSpec):
        return spec
    found = getattr(spec, "gan_spec", None)
    if not isinstance(found, GanSpec):
        raise TypeError(f"expected a GanSpec (or a config with .gan_spec), got {type(spec).__name__}")
    return found
