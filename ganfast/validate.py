"""Field checks for ganfast's description types: each field declares its default and what it
allows once (`spec_field`), and one routine checks a whole mapping against that table, naming the
dotted key, the value and what is allowed.

    @dataclass(frozen=True)
    class OptimizerSpec(Checked):
        lr: float = spec_field(1e-3, number("> 0"))

    OptimizerSpec(lr=0)                       # SpecError: lr: must be > 0, got 0.0
    OptimizerSpec.parse({"lr": 0}, "opt_d")   # SpecError: opt_d.lr: must be > 0, got 0.0

The library's types (ganfast.gan) and the application's YAML config (ganfast.app.config) are both
built on it. Numeric strings are accepted wherever a number goes (YAML 1.1 reads `1e-3` as one).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from typing import Any, Callable, Mapping

Check = Callable[[Any, str], Any]  # (raw value, dotted key) -> normalised value, or SpecError

RANGES = {
    "> 0": lambda x: x > 0,
    "in [0, 1)": lambda x: 0 <= x < 1,
    "in (0, 1]": lambda x: 0 < x <= 1,
}


# Other libraries' names (and common slips) -> our key, for "did you mean".
HINTS = {
    "learning_rate": "lr", "beta": "betas", "epsilon": "eps", "hidden_sizes": "hidden",
    "hidden_size": "hidden", "layers": "hidden", "widths": "hidden", "act": "activation",
    "batch": "batch_size", "num_epochs": "epochs", "iterations": "epochs", "type": "kind",
    "sigma": "std", "mu": "mean", "scheduler": "step_lr", "n_modes": "modes",
}


class SpecError(ValueError):
    """An invalid description or config; the message starts with (or names) the dotted key."""


# --- words for messages --------------------------------------------------------------------

def describe(v) -> str:
    """How a bad value reads in a message."""
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


def did_you_mean(word: str, options) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def one_of(choices) -> str:
    choices = sorted(choices)
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


def join(key: str, name) -> str:
    return f"{key}.{name}" if key else str(name)


# --- value checks: each returns a Check ---------------------------------------------------

def _real(v, key) -> float:
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise SpecError(f"{key}: expected a number, got the string {v!r}") from None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise SpecError(f"{key}: expected a number, got {describe(v)}")
    x = float(v)
    if not math.isfinite(x):
        raise SpecError(f"{key}: must be a finite number, got {x}")
    return x


def number(must: str | None = None) -> Check:
    """A finite float, optionally in one of RANGES."""
    def check(v, key):
        x = _real(v, key)
        if must and not RANGES[must](x):
            raise SpecError(f"{key}: must be {must}, got {x!r}")
        return x
    return check


def integer(lo: int | None = None) -> Check:
    """An int (integral floats and numeric strings too), optionally >= lo."""
    def check(v, key):
        if isinstance(v, str):
            try:
                v = int(v)
            except ValueError:
                try:
                    v = float(v)  # '1e4' -> 10000.0, checked for integrality below
                except ValueError:
                    raise SpecError(f"{key}: expected an integer, got the string {v!r}") from None
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise SpecError(f"{key}: expected an integer, got {describe(v)}")
        if not isinstance(v, numbers.Integral) and not (math.isfinite(v) and float(v).is_integer()):
            raise SpecError(f"{key}: expected an integer, got {v!r}")
        v = int(v)
        if lo is not None and v < lo:
            raise SpecError(f"{key}: must be >= {lo}, got {v}")
        return v
    return check


def text(v, key) -> str:
    """A non-empty string."""
    if not isinstance(v, str) or not v.strip():
        raise SpecError(f"{key}: expected a non-empty string, got {describe(v)}")
    return v


def flag(v, key) -> bool:
    if not isinstance(v, bool):
        raise SpecError(f"{key}: expected true or false, got {describe(v)}")
    return v


def choice(options, what: str) -> Check:
    """One of `options` (case and '-' vs '_' ignored), as its canonical spelling."""
    def check(v, key):
        if not isinstance(v, str):
            raise SpecError(f"{key}: expected {one_of(options)}, got {describe(v)}")
        s = v.lower().replace("-", "_")
        if s not in options:
            raise SpecError(f"{key}: unknown {what} {v!r}; choose {one_of(options)}{did_you_mean(s, options)}")
        return s
    return check


def optional(check: Check) -> Check:
    """None, or what `check` allows."""
    return lambda v, key: None if v is None else check(v, key)


def items(v, key, what: str) -> list:
    if not isinstance(v, (list, tuple)):
        raise SpecError(f"{key}: expected a list of {what}, got {describe(v)}")
    return list(v)


def integers(lo: int, what: str) -> Check:
    """A list of ints >= lo, as a tuple (may be empty)."""
    def check(v, key):
        return tuple(integer(lo)(x, f"{key}[{i}]") for i, x in enumerate(items(v, key, what)))
    return check


def vector(v, key, n: int, why: str, must: str | None = None, broadcast: bool = True) -> tuple:
    """n floats; a scalar is broadcast when `broadcast`. `why` says where n comes from."""
    if broadcast and not isinstance(v, (list, tuple)):
        return (number(must)(v, key),) * n
    values = items(v, key, "numbers")
    if len(values) != n:
        raise SpecError(f"{key}: needs {n} value{'s' * (n != 1)} ({why}), got {len(values)}")
    return tuple(number(must)(x, f"{key}[{i}]") for i, x in enumerate(values))


def fixed_vector(n: int, why: str, must: str | None = None) -> Check:
    """Exactly n floats, as a tuple (no broadcasting)."""
    return lambda v, key: vector(v, key, n, why, must, broadcast=False)


# --- whole types ----------------------------------------------------------------------------

def spec_field(default=dataclasses.MISSING, check: Check | None = None, **kwargs):
    """A dataclass field with its default and its check (None: taken as it is)."""
    return dataclasses.field(default=default, metadata={"check": check}, **kwargs)


def sub(cls, **options) -> Check:
    """A nested Checked type, given as an instance or a mapping (see Checked.parse)."""
    def check(v, key):
        return v if isinstance(v, cls) else cls.parse(v, key, **options)
    return check


def mapping(raw, key: str, known) -> dict:
    """A mapping with only known keys (null counts as empty)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(f"{key or 'config'}: expected a mapping of keys to values, got {describe(raw)}")
    for k in raw:
        if k not in known:
            candidates = list(known) + [h for h, t in HINTS.items() if t in known]
            m = difflib.get_close_matches(str(k).lower(), candidates, n=1, cutoff=0.6)
            hint = f"; did you mean {HINTS.get(m[0], m[0])!r}?" if m else ""
            raise SpecError(f"unknown key {k!r} in {key or 'the config'} (known: {', '.join(known)}){hint}")
    return dict(raw)


class Checked:
    """Base of frozen dataclasses whose fields are `spec_field`s: construction checks and
    normalises every field (messages name the bare field), `parse` does the same for a mapping
    with a dotted prefix and rejects unknown keys. `_cross_check(values, key, given)` checks what
    involves several fields; `given` is the set of keys a mapping had (None when constructed)."""

    def __post_init__(self):
        raw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        for name, value in self._checked(raw, "", None).items():
            object.__setattr__(self, name, value)

    @classmethod
    def keys(cls) -> tuple:
        return tuple(f.name for f in dataclasses.fields(cls) if f.init)

    @classmethod
    def _checked(cls, raw: Mapping, key: str, given, base=None) -> dict:
        out = {}
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.name in raw:
                value = raw[f.name]
            elif base is not None:
                value = getattr(base, f.name)
            elif f.default is not dataclasses.MISSING:
                value = f.default
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                raise SpecError(f"{join(key, f.name)}: required")
            check = f.metadata.get("check")
            out[f.name] = check(value, join(key, f.name)) if check else value
        return cls._cross_check(out, key, given)

    @classmethod
    def _cross_check(cls, values: dict, key: str, given) -> dict:
        return values

    @classmethod
    def parse(cls, raw, key: str = "", *, base=None, exclude=()):
        """An instance from a mapping: missing keys take the field defaults (or `base`'s
        values), keys in `exclude` are unknown here. Errors name `key`.field."""
        known = tuple(k for k in cls.keys() if k not in exclude)
        d = mapping(raw, key, known)
        return cls(**cls._checked(d, key, set(d), base))
