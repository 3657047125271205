"""Image outputs of a run: sample grids as PNG, the animated GIF of the grids over training,
and the run folder's report (metrics.csv, summary.json, losses.png) of an image run.

Grids are drawn with numpy and written with PIL (no torchvision): tiles are upscaled by an
integer factor so that 8x8 digits stay visible, never interpolated.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ganfast.app import report
from ganfast.app.files import atomic_write

MIN_TILE = 32  # pixels: small images are upscaled (nearest) to at least this size


def make_grid(images, nrow: int | None = None, *, pad: int = 2, low: float = 0.0, high: float = 1.0,
              min_tile: int = MIN_TILE) -> np.ndarray:
    """(N, C, H, W) images with pixels in [low, high] -> one (rows, cols, 3) uint8 RGB grid.

    C is 1 (grey) or 3 (RGB); values outside [low, high] are clipped; `nrow` tiles per row
    (default: a square-ish grid)."""
    x = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images, dtype=np.float64)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] < 1:
        raise ValueError(f"images must be (N, 1 or 3, H, W) with N >= 1, got shape {x.shape}")
    if not high > low:
        raise ValueError(f"need high > low, got low {low}, high {high}")
    n, c, h, w = x.shape
    x = np.nan_to_num(x, nan=low)
    x = np.clip((x - low) / (high - low), 0.0, 1.0)
    x = np.round(x * 255).astype(np.uint8)
    if c == 1:
        x = np.repeat(x, 3, axis=1)
    k = max(1, math.ceil(min_tile / max(h, w)))
    x = x.repeat(k, axis=2).repeat(k, axis=3)
    h, w = h * k, w * k
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
        grid[y0:y0 + h, x0:x0 + w] = x[i].transpose(1, 2, 0)
    return grid


def save_png(path, grid: np.ndarray) -> Path:
    """Write an RGB uint8 array as a PNG (atomically)."""
    from PIL import Image

    img = Image.fromarray(grid, "RGB")
    return atomic_write(path, lambda f: img.save(f, format="PNG"), binary=True)


def write_image_report(run_dir, *, rows: Sequence[Mapping[str, Any]], grids: Sequence[np.ndarray],
                       summary: Mapping[str, Any], plots: bool = True) -> dict:
    """metrics.csv and summary.json first (the numbers survive a failing plot), then
    losses.png and training.gif. Returns the summary as written."""
    run_dir = Path(run_dir)
    report.write_metrics_csv(run_dir / "metrics.csv", rows)
    summary = dict(summary)
    report.write_summary(run_dir / "summary.json", summary)
    if plots and rows:
        it = np.array([r["iteration"] for r in rows], dtype=np.float64)
        d = np.array([r["d_loss_real"] + r["d_loss_fake"] for r in rows], dtype=np.float64)
        g = np.array([r["g_loss"] for r in rows], dtype=np.float64)
        report.plot_losses(run_dir / "losses.png", it, d, g, title=f"{summary.get('name', '')} losses",
                           xlabel="iteration")
    if plots and grids:
        # the last grid is held a second so the end result is seen
        report.write_gif(run_dir / "training.gif", grids, fps=4, max_frames=100, hold_last=1.0)
    return summary
