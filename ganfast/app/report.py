"""Turn a finished (or interrupted) training run into files in a run folder.

metrics.csv and summary.json come first, so the numbers survive even if a plot fails.
Only numpy and the standard library are imported here; matplotlib, PIL and torch
(ganfast.metrics: W1 and KS) are imported inside the functions that need them, so
``import ganfast.app.report`` stays cheap. Figures are built
with ``matplotlib.figure.Figure`` on an Agg canvas rather than through pyplot: that needs
no display, never switches the caller's global backend, and leaks no figures.

Targets describe the real distribution, as a dict or any object with these attributes:
``{"kind": "normal", "mean": [..], "std": [..]}`` (diagonal) or
``{"kind": "mixture", "centers": [[..], ..], "std": s, "weights": [..]}`` (isotropic
components; ``std`` may be one value per component, ``weights`` default to uniform, a
flat ``centers`` list means 1-D centres). A ring or grid of Gaussians is a mixture.
"""
from __future__ import annotations

import csv
import json
import math
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ganfast.app.files import atomic_write

__all__ = [
    "write_metrics_csv",
    "distance_to_target",
    "write_summary",
    "plot_distribution",
    "plot_moments",
    "plot_losses",
    "write_animation",
    "write_gif",
    "summarize",
    "write_report",
]

_MAX_POINTS = 5000  # scatter plots draw at most this many points: enough to see the shape


# ----------------------------------------------------------------------------- files


def _plain(value):
    """numpy / torch values -> built-in types; non-finite floats -> None (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return _plain(value.tolist())
    return value


def write_metrics_csv(path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as CSV; columns are the first row's keys in order (keys that only
    later rows have are appended, missing cells left empty). Empty ``rows`` -> empty file."""
    rows = list(rows)
    fields = list(dict.fromkeys(k for row in rows for k in row))

    def write(f):
        if not rows:
            return
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: _cell(v) for k, v in row.items()})

    return atomic_write(path, write)


def _cell(value):
    if isinstance(value, np.generic) or hasattr(value, "tolist"):
        value = value.tolist()
    return "" if value is None else value


def write_summary(path, summary: Mapping[str, Any]) -> Path:
    """Write ``summary`` as JSON (insertion order, indent 2, numpy -> plain, NaN -> null)."""
    text = json.dumps(_plain(summary), indent=2, allow_nan=False, default=str) + "\n"
    return atomic_write(path, lambda f: f.write(text))


# ----------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class _Target:
    kind: str  # "normal" or "mixture"
    centers: np.ndarray  # (K, dim); a normal is one component
    stds: np.ndarray  # (K, dim)
    weights: np.ndarray  # (K,), sums to 1

    @property
    def dim(self) -> int:
        return self.centers.shape[1]

    def marginal(self, d: int):
        return self.centers[:, d], self.stds[:, d], self.weights

    def moments(self):
        """Per-dim mean and std of the whole target distribution."""
        w = self.weights[:, None]
        mean = (w * self.centers).sum(0)
        var = (w * (self.stds**2 + self.centers**2)).sum(0) - mean**2
        return mean, np.sqrt(np.maximum(var, 0.0))


def _parse_target(target) -> _Target | None:
    if target is None or isinstance(target, _Target):
        return target
    if isinstance(target, Mapping):
        get = target.get
    else:
        get = lambda key: getattr(target, key, None)  # noqa: E731
    kind = str(get("kind") or ("mixture" if get("centers") is not None else "normal")).lower()
    if kind in ("normal", "gaussian"):
        centers = np.atleast_1d(np.asarray(get("mean"), float))[None, :]
        stds = np.broadcast_to(np.asarray(get("std"), float), centers.shape).copy()
        weights = np.ones(1)
        kind = "normal"
    elif get("centers") is not None:  # "mixture", "ring", "grid", ...
        centers = np.asarray(get("centers"), float)
        centers = centers[:, None] if centers.ndim == 1 else centers
        std = np.asarray(get("std"), float)
        stds = np.broadcast_to(std[:, None] if std.ndim == 1 else std, centers.shape).copy()
        w = get("weights")
        weights = np.ones(len(centers)) if w is None else np.asarray(w, float)
        weights = weights / weights.sum()
        kind = "mixture"
    else:
        raise ValueError(f"unknown target kind {kind!r}; use 'normal' (mean, std) or 'mixture' (centers, std)")
    if centers.ndim != 2 or len(centers) == 0 or not np.all(stds > 0) or len(weights) != len(centers):
        raise ValueError(f"malformed target {target!r}: need finite centres and stds > 0")
    return _Target(kind, centers, stds, weights)


def _as_2d(samples) -> np.ndarray:
    x = np.asarray(samples, float)
    return x.reshape(-1, 1) if x.ndim <= 1 else x.reshape(len(x), -1)


def _finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x).all(axis=1)]


# ----------------------------------------------------------------------------- metrics


def _pdf(x, centers, stds, weights) -> np.ndarray:
    z = (np.asarray(x, float)[..., None] - centers) / stds
    return (weights * np.exp(-0.5 * z * z) / (stds * math.sqrt(2 * math.pi))).sum(-1)


def _coverage(x: np.ndarray, t: _Target, n_std: float) -> tuple[np.ndarray, int]:
    """Samples per mode within ``n_std`` stds of its centre, and how many such samples."""
    counts = np.zeros(len(t.centers), np.int64)
    for start in range(0, len(x), 8192):  # chunks bound the (chunk, K, dim) temporary
        z = (x[start : start + 8192, None, :] - t.centers) / t.stds
        d2 = np.einsum("mkd,mkd->mk", z, z)
        nearest = d2.argmin(1)
        ok = d2[np.arange(len(nearest)), nearest] <= n_std**2
        counts += np.bincount(nearest[ok], minlength=len(counts))
    return counts, int(counts.sum())


def distance_to_target(samples, target=None, *, n_std: float = 3.0, min_share: float = 0.01) -> dict:
    """How close generated ``samples`` ((M,) or (M, dim)) are to ``target``.

    Keys: dim, n_samples, n_nonfinite (those rows are ignored), mean, std, and with a target
    target_mean, target_std, w1, ks (Wasserstein-1 and Kolmogorov-Smirnov of each
    marginal); per-dim values are lists, plain floats when dim == 1. Mixtures add n_modes,
    modes_covered (modes holding >= ``min_share`` of the samples within ``n_std`` stds of
    their centre), mode_coverage (= modes_covered / n_modes) and high_quality (share of
    samples within ``n_std`` stds of some centre).
    """
    x_all = _as_2d(samples)
    x = _finite(x_all)
    t = _parse_target(target)
    dim = x_all.shape[1]
    if t is not None and t.dim != dim:
        raise ValueError(f"samples have {dim} dims but the target has {t.dim}")
    per_dim = (lambda a: float(a[0])) if dim == 1 else (lambda a: [float(v) for v in a])
    empty = np.full(dim, math.nan)
    out = {
        "dim": dim,
        "n_samples": len(x_all),
        "n_nonfinite": len(x_all) - len(x),
        "mean": per_dim(x.mean(0) if len(x) else empty),
        "std": per_dim(x.std(0) if len(x) else empty),
    }
    if t is None:
        return out
    t_mean, t_std = t.moments()
    from ganfast import metrics  # torch: imported when a distance is asked for

    w1 = ks = empty
    if len(x):
        d = metrics.distances(x, metrics.Mixture(t.centers, t.stds, t.weights))
        w1, ks = d["w1"].numpy(), d["ks"].numpy()
    out.update(target_mean=per_dim(t_mean), target_std=per_dim(t_std), w1=per_dim(w1), ks=per_dim(ks))
    if t.kind == "mixture":
        counts, near = _coverage(x, t, n_std)
        covered = int(np.sum(counts >= min_share * len(x))) if len(x) else 0
        out.update(
            n_modes=len(counts),
            modes_covered=covered,
            mode_coverage=covered / len(counts),
            high_quality=near / len(x) if len(x) else math.nan,
        )
    return out


# ----------------------------------------------------------------------------- plots


def _import_plotting() -> None:
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import matplotlib.patches  # noqa: F401
    import PIL.Image  # noqa: F401


def warm_up() -> threading.Thread:
    """Import matplotlib (Agg) and PIL in a background thread, about half a second that a run
    spends while its engine trains (the native calls release the GIL), so that the first plot
    of the report starts at once. A plot that comes sooner waits for the import to finish."""
    thread = threading.Thread(target=_import_plotting, name="ganfast-import-plotting")
    thread.start()
    return thread


def _figure(width: float = 6, height: float = 4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path) -> Path:
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100), binary=True)


#: The figure helpers, for the other plot modules (ganfast.app.sweep.plots).
new_figure, save_png = _figure, _save_png


def _span(xs: Sequence[np.ndarray], t: _Target | None, d: int) -> tuple[float, float]:
    """View range on dim ``d``: the target's +-4 std and the bulk of the samples (0.5..99.5
    percentiles, so a few wild samples cannot squash the picture)."""
    lo, hi = [], []
    if t is not None:
        lo.append(np.min(t.centers[:, d] - 4 * t.stds[:, d]))
        hi.append(np.max(t.centers[:, d] + 4 * t.stds[:, d]))
    for x in xs:
        if len(x):
            p = np.percentile(x[:, d], [0.5, 99.5])
            lo.append(p[0])
            hi.append(p[1])
    if not lo:
        return -1.0, 1.0
    lo_, hi_ = float(min(lo)), float(max(hi))
    pad = 0.05 * (hi_ - lo_) or 0.5
    return lo_ - pad, hi_ + pad


def _density(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Histogram as a density over *all* samples, so out-of-view ones still count."""
    counts, _ = np.histogram(x, bins=edges)
    return counts / (max(len(x), 1) * np.diff(edges))


def _draw_target_2d(ax, t: _Target | None):
    from matplotlib.patches import Ellipse

    if t is None:
        return
    label = "target modes (3 std)" if t.kind == "mixture" else "target mean (3 std)"
    ax.scatter(t.centers[:, 0], t.centers[:, 1], marker="x", color="C3", s=40, zorder=3, label=label)
    for c, s in zip(t.centers, t.stds):
        ax.add_patch(Ellipse(c[:2], 6 * s[0], 6 * s[1], fill=False, ls="--", lw=0.8, color="C3"))


def _legend(ax, dim: int):
    if dim == 1:
        ax.legend(loc="best", fontsize=8)
    else:  # beside the square axes, where it cannot hide a mode
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)


def plot_distribution(path, samples, target=None, *, real_samples=None, title: str | None = None, bins: int = 60,
                      note: str | None = None) -> Path:
    """Generated samples against the target: 1-D histograms plus the target pdf; 2-D
    (or more: the first two dims) scatter over the target's centres. ``note`` is written
    across the axes (e.g. why there is nothing to see); samples without a finite one get
    "no finite samples" there, so an empty plot never looks like a plot of nothing."""
    x = _finite(_as_2d(samples))
    if not len(x):
        note = note or "no finite samples"
    real = None if real_samples is None else _finite(_as_2d(real_samples))
    t = _parse_target(target)
    fig = _figure()
    ax = fig.add_subplot()
    if x.shape[1] == 1:
        lo, hi = _span([x] + ([real] if real is not None else []), t, 0)
        edges = np.linspace(lo, hi, bins + 1)
        ax.stairs(_density(x[:, 0], edges), edges, fill=True, alpha=0.6, color="C0", label="generated")
        if real is not None:
            ax.stairs(_density(real[:, 0], edges), edges, color="0.3", lw=1.2, label="real samples")
        if t is not None:
            grid = np.linspace(lo, hi, 400)
            ax.plot(grid, _pdf(grid, *t.marginal(0)), color="C3", lw=1.8, label="target pdf")
        ax.set_xlim(lo, hi)
        ax.set_xlabel("x")
        ax.set_ylabel("density")
    else:
        if real is not None:
            ax.scatter(real[:_MAX_POINTS, 0], real[:_MAX_POINTS, 1], s=2, color="0.6", alpha=0.3, label="real samples")
        ax.scatter(x[:_MAX_POINTS, 0], x[:_MAX_POINTS, 1], s=3, color="C0", alpha=0.35, label="generated")
        _draw_target_2d(ax, t)
        ax.set_xlim(*_span([x], t, 0))
        ax.set_ylim(*_span([x], t, 1))
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel("x0")
        ax.set_ylabel("x1")
    ax.set_title(title or "generated vs target")
    _legend(ax, x.shape[1])
    if note:
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", color="C3", fontsize=11,
                wrap=True, bbox={"facecolor": "white", "edgecolor": "C3", "alpha": 0.9})
    fig.tight_layout()
    return _save_png(fig, path)


def _curves(ax, epochs, values, color, label):
    """One curve, or for a population ((members, epochs)) every member thin + the median."""
    v = np.asarray(values, float)
    if v.ndim == 1 or len(v) == 1:
        ax.plot(epochs, v.reshape(-1), color=color, lw=1.5, label=label)
        return
    for row in v:
        ax.plot(epochs, row, color=color, lw=0.6, alpha=0.3)
    with warnings.catch_warnings():  # epochs that no member reached yet are all-NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(v, axis=0)
    ax.plot(epochs, median, color=color, lw=2, label=f"{label} (median of {len(v)})")


def plot_moments(path, epochs, means, stds, target_mean=None, target_std=None, *, title: str | None = None) -> Path:
    """Generated mean and std over training against dashed target lines (two stacked axes).
    ``means`` / ``stds`` are (epochs,) or (members, epochs)."""
    fig = _figure(6, 5)
    ax_m, ax_s = fig.subplots(2, 1, sharex=True)
    for ax, values, target, name in ((ax_m, means, target_mean, "mean"), (ax_s, stds, target_std, "std")):
        _curves(ax, epochs, values, "C0", f"generated {name}")
        if target is not None:
            ax.axhline(float(target), color="C3", ls="--", lw=1.2, label=f"target {name}")
        ax.set_ylabel(name)
        ax.legend(loc="best", fontsize=8)
    ax_s.set_xlabel("epoch")
    ax_m.set_title(title or "generated moments over training")
    fig.tight_layout()
    return _save_png(fig, path)


def plot_losses(path, epochs, d_loss, g_loss, *, title: str | None = None, xlabel: str = "epoch") -> Path:
    """Discriminator and generator losses over training; each (epochs,) or (members, epochs)."""
    fig = _figure()
    ax = fig.add_subplot()
    _curves(ax, epochs, d_loss, "C3", "D loss")
    _curves(ax, epochs, g_loss, "C0", "G loss")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    ax.set_title(title or "losses")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return _save_png(fig, path)


def write_animation(path, frames: Sequence[Mapping[str, Any]], target=None, *, fps: float = 8, max_frames: int = 60) -> Path:
    """Animated GIF of the generated distribution over training.

    ``frames``: dicts {"epoch", "samples" (M,) or (M, 2), "grid" (G,) or None, "d_grid" (G,)
    or None, optionally "note": said in the frame's title, e.g. why it has no finite sample}. 1-D frames show the generated density, the target pdf and D(x) on the grid
    (right axis, [0, 1]); 2-D frames a scatter. More than ``max_frames`` frames are thinned
    evenly, first and last kept. Axes are fixed over all frames so motion is real motion.

    One figure for all frames, drawn once; each frame only updates the artists that move (the
    histogram or the scatter, D's curve, the title) and redraws them over a copy of the still
    background (matplotlib's blitting), which costs a few ms instead of a whole figure's draw.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("write_animation needs at least one frame")
    frames = [frames[i] for i in _thin(len(frames), max_frames)]
    return write_gif(path, _animation_images(frames, _parse_target(target)), fps=fps, max_frames=max_frames)


def _animation_images(frames: Sequence[Mapping[str, Any]], t: _Target | None, *, blit: bool = True) -> list[np.ndarray]:
    """The RGB frames of write_animation; ``blit=False`` draws every frame whole (the slow way
    the tests compare the blitted frames with)."""
    xs = [_finite(_as_2d(f["samples"])) for f in frames]
    fig = _figure(6, 4)
    fig.set_dpi(72)
    ax = fig.add_subplot()
    moving = []  # (axes, artist) redrawn on every frame, in this order (their z-order)

    if xs[0].shape[1] == 1:
        lo, hi = _span(xs, t, 0)
        edges = np.linspace(lo, hi, 61)
        dens = [_density(x[:, 0], edges) for x in xs]
        ymax = max(float(np.max(dens)), 1e-12)
        hist = ax.stairs(dens[0], edges, fill=True, alpha=0.6, color="C0", label="generated")
        moving.append((ax, hist))
        if t is not None:
            grid = np.linspace(lo, hi, 400)
            pdf = _pdf(grid, *t.marginal(0))
            # a collapsed generator is a spike; cap it so the target stays readable
            ymax = min(max(ymax, 1.2 * pdf.max()), 4 * pdf.max())
            (pdf_line,) = ax.plot(grid, pdf, color="C3", lw=1.8, label="target pdf")
            moving.append((ax, pdf_line))  # over the histogram, as in a plain draw
        ax.set_xlim(lo, hi)
        ax.set_ylim(0, 1.05 * ymax)
        ax.set_xlabel("x")
        ax.set_ylabel("density")
        handles = ax.get_legend_handles_labels()[0]
        d_line = None
        if any(f.get("d_grid") is not None for f in frames):
            ax2 = ax.twinx()
            half = ax2.axhline(0.5, color="C2", ls=":", lw=0.8)
            (d_line,) = ax2.plot([], [], color="C2", lw=1.5, label="D(x)")
            ax2.set_ylim(0, 1)
            ax2.set_ylabel("D(x)")
            handles.append(d_line)
        legend = ax.legend(handles=handles, loc="upper right", fontsize=8)
        moving.append((None, legend))  # its pixels of the still figure go back over ax's moving artists
        if d_line is not None:
            moving += [(ax2, half), (ax2, d_line)]  # the twin axes draw after ax, legend included

        def update(i):
            hist.set_data(dens[i])
            if d_line is not None:
                g, d = frames[i].get("grid"), frames[i].get("d_grid")
                ok = g is not None and d is not None
                d_line.set_data(np.ravel(g) if ok else [], np.ravel(d) if ok else [])
    else:
        dots = ax.scatter([], [], s=3, color="C0", alpha=0.35, label="generated")
        moving.append((ax, dots))
        before = set(ax.collections)
        _draw_target_2d(ax, t)
        moving += [(ax, c) for c in ax.collections if c not in before]  # the target's marks over the dots
        ax.set_xlim(*_span(xs, t, 0))
        ax.set_ylim(*_span(xs, t, 1))
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel("x0")
        ax.set_ylabel("x1")
        _legend(ax, 2)
        if ax.get_legend() is not None:
            moving.append((None, ax.get_legend()))  # over the dots, as in a plain draw

        def update(i):
            dots.set_offsets(xs[i][:_MAX_POINTS, :2])

    moving.append((ax, ax.title))
    for owner, artist in moving:
        if owner is not None:
            artist.set_animated(blit)  # left out of the full draw; drawn per frame below
    titles = [_frame_title(f, i, xs[i]) for i, f in enumerate(frames)]
    ax.set_title(max(titles, key=len))  # the widest, for the layout
    fig.tight_layout()  # once: a per-frame layout would make the axes jitter
    canvas = fig.canvas
    if not blit:
        images = []
        for i, frame in enumerate(frames):
            update(i)
            ax.set_title(titles[i])
            canvas.draw()
            images.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
        return images
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    # a still artist that must stay on top (the legend): its pixels, pasted back per frame (drawing
    # a legend costs ~30 ms; a paste nothing)
    pasted = {id(a): canvas.copy_from_bbox(a.get_window_extent()) for owner, a in moving if owner is None}
    images = []
    for i, frame in enumerate(frames):
        update(i)
        ax.set_title(titles[i])
        canvas.restore_region(background)
        for owner, artist in moving:
            if owner is None:
                canvas.restore_region(pasted[id(artist)])
            else:
                owner.draw_artist(artist)
        images.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return images


def _frame_title(frame: Mapping[str, Any], i: int, finite: np.ndarray) -> str:
    """"epoch N", and the frame's note (or "no finite samples" when it has none)."""
    note = frame.get("note") or (None if len(finite) else "no finite samples")
    return f"epoch {frame.get('epoch', i)}" + (f": {note}" if note else "")


def write_gif(path, images: Sequence[np.ndarray], *, fps: float, max_frames: int, hold_last: float = 0.0) -> Path:
    """Animated GIF of RGB uint8 images (H, W, 3), thinned evenly to at most ``max_frames``
    (first and last kept); the last frame stays at least ``hold_last`` seconds."""
    from PIL import Image

    if not len(images):
        raise ValueError("write_gif needs at least one image")
    keep = _thin(len(images), max_frames)
    # a palette per frame by fast octree quantisation: ~5x faster than PIL's default for RGB
    # frames (median cut), and smaller files; plots and sample grids have few colours
    frames = [Image.fromarray(np.asarray(images[i], dtype=np.uint8), "RGB").quantize(255, method=Image.Quantize.FASTOCTREE)
              for i in keep]
    step = max(20, round(1000 / fps))
    durations = [step] * (len(frames) - 1) + [max(step, round(1000 * hold_last))]
    save = lambda f: frames[0].save(  # noqa: E731
        f, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return atomic_write(path, save, binary=True)


def _thin(n: int, most: int) -> np.ndarray:
    """Indices of at most ``most`` of n frames, evenly spread, first and last kept."""
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int))


# ----------------------------------------------------------------------------- run folder


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _pivot(rows, key) -> tuple[np.ndarray, np.ndarray]:
    """rows -> (epochs (E,), values (members, E)); gaps (a member that stopped early) are NaN."""
    epochs = sorted({r["epoch"] for r in rows})
    members = sorted({r.get("member", 0) for r in rows})
    e_at, m_at = {e: i for i, e in enumerate(epochs)}, {m: i for i, m in enumerate(members)}
    values = np.full((len(members), len(epochs)), math.nan)
    for r in rows:
        values[m_at[r.get("member", 0)], e_at[r["epoch"]]] = _num(r.get(key))
    return np.asarray(epochs, float), values


def summarize(*, rows: Sequence[Mapping[str, Any]], final_samples=None, target=None,
              extra_summary: Mapping[str, Any] | None = None) -> dict:
    """The summary of a run (plain types): the distances of ``final_samples`` to ``target``
    (distance_to_target), the last epoch, the number of members, then ``extra_summary``."""
    t = _parse_target(target)
    summary = distance_to_target(final_samples, t) if final_samples is not None else {}
    if any("epoch" in r for r in rows):
        summary["last_epoch"] = max(r["epoch"] for r in rows if "epoch" in r)
    if rows:
        summary["n_members"] = len({r.get("member", 0) for r in rows})
    summary.update(extra_summary or {})
    return _plain(summary)


def write_report(
    run_dir,
    *,
    rows: Sequence[Mapping[str, Any]],
    final_samples=None,
    target=None,
    frames: Sequence[Mapping[str, Any]] | None = None,
    plots: bool = True,
    extra_summary: Mapping[str, Any] | None = None,
    real_samples=None,
    note: str | None = None,
) -> dict:
    """Write metrics.csv, summary.json and (if ``plots``) distribution.png, moments.png
    (1-D only), losses.png and training.gif (if ``frames``) into ``run_dir``.

    ``rows`` are the per-epoch metric dicts of all population members ("member" column);
    ``final_samples`` the samples the summary is about (member 0's or the best member's).
    Plots whose data is missing are skipped, so an interrupted run still gets a report.
    ``note`` is written across distribution.png (plot_distribution).
    Returns the summary as written (plain types).
    """
    run_dir = Path(run_dir)
    rows = [dict(r) for r in rows or ()]
    t = _parse_target(target)
    write_metrics_csv(run_dir / "metrics.csv", rows)
    summary = summarize(rows=rows, final_samples=final_samples, target=t, extra_summary=extra_summary)
    write_summary(run_dir / "summary.json", summary)
    if not plots:
        return summary

    if final_samples is not None:
        plot_distribution(run_dir / "distribution.png", final_samples, t, real_samples=real_samples, note=note)
    rows = [r for r in rows if "epoch" in r]
    has = lambda *keys: bool(rows) and all(k in rows[0] for k in keys)  # noqa: E731
    dim = t.dim if t is not None else (_as_2d(final_samples).shape[1] if final_samples is not None else None)
    if dim == 1 and has("fake_mean", "fake_std"):
        epochs, means = _pivot(rows, "fake_mean")
        t_mean, t_std = t.moments() if t is not None else ([None], [None])
        plot_moments(run_dir / "moments.png", epochs, means, _pivot(rows, "fake_std")[1], t_mean[0], t_std[0])
    if has("g_loss") and (has("d_loss") or has("d_loss_real", "d_loss_fake")):
        epochs, g_loss = _pivot(rows, "g_loss")
        d_loss = _pivot(rows, "d_loss")[1] if has("d_loss") else _pivot(rows, "d_loss_real")[1] + _pivot(rows, "d_loss_fake")[1]
        plot_losses(run_dir / "losses.png", epochs, d_loss, g_loss)
    if frames:
        write_animation(run_dir / "training.gif", frames, t)
    return summary
