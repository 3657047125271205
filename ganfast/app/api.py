"""The application's conveniences that `import ganfast` exports (lazily): `load_preset` and
`train`, which runs a config the way the CLI does and returns the results.

    import ganfast
    result = ganfast.train("ring8", population=4, epochs=500)
    result.summary["w1"], result.state.g_params.shape, result.rows[-1]
    ganfast.train("devnag", {"optimizer_d.lr": 2e-3}, out="runs")   # with a run folder
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ganfast.app.config import TrainConfig, list_presets, load_config, load_preset
from ganfast.app.image_run import ImageRun
from ganfast.app.run import Options
from ganfast.app.toy_run import ToyRun

__all__ = ["RunResult", "load_preset", "train"]


@dataclass
class RunResult:
    """What a run leaves: the config it ran, its state (a GanState for a toy run, the
    ImageTrainer with G and D for an image run), the metrics rows, the summary, and the run
    folder (None when none was asked for)."""

    config: TrainConfig
    state: Any
    rows: list
    summary: dict
    run_dir: Path | None


def _config(config) -> tuple:
    """(TrainConfig, source) of a preset name, a YAML path, a mapping or a TrainConfig."""
    if isinstance(config, TrainConfig):
        return config, {"preset": None, "config": None}
    if isinstance(config, Mapping):
        return load_config(config), {"preset": None, "config": None}
    if isinstance(config, str) and config in list_presets():
        return load_preset(config), {"preset": config, "config": None}
    if isinstance(config, (str, os.PathLike)):
        return load_config(config), {"preset": None, "config": str(config)}
    raise TypeError(f"config must be a preset name, a YAML path, a mapping or a TrainConfig, got {type(config).__name__}")


def train(config="devnag", overrides: Mapping[str, Any] | None = None, /, *, out=None, backend: str = "auto",
          device="cpu", plots: bool = True, quiet: bool = True, on_nan: str | None = None, **kwargs) -> RunResult:
    """Train a config (a preset name, a YAML path, a mapping or a TrainConfig) with overrides
    (`overrides` with dotted keys, and/or keyword arguments such as epochs=, seed=,
    population=) and return its results. Nothing is written unless `out` names the parent of
    a run folder (then as `python -m ganfast.train --out` writes it; `plots` and `quiet` as
    there). Ctrl-C stops at the last logged interval, writes what there is, and re-raises.
    `on_nan` as --on-nan: "stop" or "continue" when a member diverges (default: stop for a
    population of 1, continue for more); the summary's "diverged" says whether one did."""
    cfg, source = _config(config)
    if overrides or kwargs:
        cfg = cfg.replace({**(overrides or {}), **kwargs})
    options = Options(backend=backend, device=torch.device(device), out=None if out is None else str(out),
                      plots=plots, quiet=quiet, on_nan=on_nan)
    run = (ImageRun if cfg.is_image else ToyRun).new(cfg, options, source)
    interrupted = run.train()
    run.checkpoint()
    summary = run.finish(interrupted=interrupted)
    if interrupted:
        raise KeyboardInterrupt
    state = run.trainer if cfg.is_image else run.state
    return RunResult(config=cfg, state=state, rows=list(run.rows), summary=summary, run_dir=run.run_dir)
