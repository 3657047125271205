"""The sweep's grid: `--grid KEY=V1,V2,...` flags crossed into cells, each a validated TrainConfig.

    axes = parse_grid(["optimizer_d.lr=1e-3,3e-3", "discriminator.hidden=[32,32],[64,64]"])
    cells = make_cells(base_cfg, axes)        # 4 cells, the first axis varying slowest

A key is any dotted config key (`TrainConfig.replace`'s), a value any YAML scalar or flow list;
values are separated by the commas outside brackets. Each cell is checked as a whole (a value
that is wrong on its own is named with its flag). The keys that
the sweep itself sets (seeds, population, epochs, the run's name and log interval) are refused.
A `.kind` key switches its section's kind (`noise.kind=normal,uniform`): the section keeps the
values the new kind takes (noise.dim) and the new kind's defaults for the rest (a normal's mean
0 and std 1 for uniform's low and high).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import yaml

from ganfast.app.config import ConfigError, TrainConfig

#: Keys a grid may not set, and the flag that sets them instead.
SWEEP_KEYS = {"seed": "--seed", "population": "--seeds", "epochs": "--epochs", "name": "--name",
              "log_every": "--eval-every"}


class GridError(ConfigError):
    """A bad --grid flag; the message names the flag."""


@dataclass(frozen=True)
class Axis:
    """One --grid flag: a dotted key, its values as written (`texts`) and as YAML reads them."""

    key: str
    texts: tuple
    values: tuple


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its index, one value per axis (as written) and its config."""

    index: int
    texts: tuple
    config: TrainConfig

    def label(self, axes) -> str:
        return ", ".join(f"{a.key}={t}" for a, t in zip(axes, self.texts)) or "(base config)"


def split_values(text: str) -> list:
    """`text` split at the commas outside [] and {} (so `[32,32],[64,64]` is two values)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_axis(flag: str) -> Axis:
    """One `KEY=V1,V2,...` flag."""
    key, sep, rest = str(flag).partition("=")
    key = key.strip()
    where = f"--grid {flag}"
    if not sep or not key:
        raise GridError(f"{where}: expected KEY=V1,V2,... (e.g. optimizer_d.lr=1e-3,3e-3)")
    if key in SWEEP_KEYS:
        raise GridError(f"{where}: {key} is set by the sweep itself (use {SWEEP_KEYS[key]})")
    texts = split_values(rest)
    if texts == [""]:
        raise GridError(f"{where}: no values (expected KEY=V1,V2,...)")
    if "" in texts:
        raise GridError(f"{where}: an empty value between commas")
    if len(set(texts)) != len(texts):
        raise GridError(f"{where}: a value is listed twice")
    values = []
    for t in texts:
        try:
            values.append(yaml.safe_load(t))
        except yaml.YAMLError as e:
            raise GridError(f"{where}: cannot read the value {t!r} ({type(e).__name__})") from None
    return Axis(key, tuple(texts), tuple(values))


def parse_grid(flags) -> tuple:
    """The axes of the --grid flags (none: one cell, the base config)."""
    axes = tuple(parse_axis(f) for f in flags or ())
    seen = set()
    for a in axes:
        if a.key in seen:
            raise GridError(f"--grid {a.key}: the key is given twice; list all its values in one flag")
        seen.add(a.key)
    return axes


def overrides(base: TrainConfig, settings) -> dict:
    """The `TrainConfig.replace` mapping of (key, value) settings: a `.kind` key becomes its whole
    section (the base section's values that the new kind takes), ahead of the other keys."""
    sections, plain = {}, {}
    for key, value in settings:
        *parents, leaf = key.split(".")
        node = base.to_dict()
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if leaf != "kind" or not parents or not isinstance(node, dict):
            plain[key] = value
            continue
        path, section = ".".join(parents), {"kind": value}
        for k, v in node.items():
            if k != "kind":
                try:
                    base.replace({path: {**section, k: v}})
                    section[k] = v
                except ConfigError:  # a key the new kind does not take
                    pass
        sections[path] = section
    return {**sections, **plain}


def make_cells(base: TrainConfig, axes) -> list:
    """Every combination of the axes' values (the first axis varies slowest), each as a cell."""
    cells = []
    for i, combo in enumerate(itertools.product(*(range(len(a.values)) for a in axes))):
        texts = tuple(a.texts[j] for a, j in zip(axes, combo))
        try:
            cfg = base.replace(overrides(base, [(a.key, a.values[j]) for a, j in zip(axes, combo)]))
            if cfg.is_image:
                raise ConfigError(f"data.kind {cfg.data.kind!r} is an image data set; sweeps train toy GANs")
            cfg.gan_spec  # noqa: B018  (what the toy engine cannot run fails here)
        except ConfigError as e:
            for a, j in zip(axes, combo):  # a value wrong on its own is named with its flag
                try:
                    base.replace(overrides(base, [(a.key, a.values[j])]))
                except ConfigError as alone:
                    raise GridError(f"--grid {a.key}={a.texts[j]}: {alone}") from None
            where = ", ".join(f"{a.key}={t}" for a, t in zip(axes, texts))
            raise GridError(f"--grid cell {where}: {e}") from None
        cells.append(Cell(i, texts, cfg))
    dims = {c.config.data.dim for c in cells}
    if len(dims) > 1:
        raise GridError(f"--grid: the cells' data have different dimensions {sorted(dims)}; a sweep compares "
                        "members on one kind of sample")
    return cells
