"""The sweep's plots (Agg figures through ganfast.app.report's helpers, matplotlib imported there):

    w1_ecdf.png         ECDF of the final W1 per cell, the threshold as a line
    w1_over_epochs.png  median and 10-90% band of W1 over the evaluations, per cell
    rate_heatmap.png    convergence rate over the first two grid keys (pooled over any others)
    member_best.png, member_median.png, member_worst.png   the generated histograms (ganfast.app.report)
    lr_schedule.png     (PBT) the learning rates the final winners' weights went through

A cell is one colour in every plot; with many cells only the first MAX_LEGEND are named.
"""
from __future__ import annotations

import math

import torch

from ganfast.app import report
from ganfast.app.sweep.pbt import lineage
from ganfast.app.toy_run import target

MAX_LEGEND = 12
WINNERS = 5


def _finish(path, fig, ax, run, xlabel: str, ylabel: str, title: str) -> None:
    """Labels, the cells' legend (the first MAX_LEGEND), and the PNG."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    n = len(run.cells)
    if handles:
        ax.legend(handles[:MAX_LEGEND], labels[:MAX_LEGEND], fontsize=7, loc="best",
                  title=f"first {MAX_LEGEND} of {n} cells" if n > MAX_LEGEND else None, title_fontsize=7)
    fig.tight_layout()
    report.save_png(fig, path)


def plot_ecdf(path, run, per: dict) -> None:
    fig = report.new_figure()
    ax = fig.add_subplot()
    for cell in run.cells:
        w1 = per["w1"][per["cell"] == cell.index]
        x = torch.sort(torch.nan_to_num(w1, nan=math.inf)).values
        x = x[torch.isfinite(x)]
        if x.numel():
            y = torch.arange(0, x.numel() + 1, dtype=torch.float64) / w1.numel()
            ax.step([x[0].item(), *x.tolist()], y.tolist(), where="post", lw=1.4, label=cell.label(run.axes))
    ax.axvline(run.plan.w1, color="0.3", ls="--", lw=1, label=f"W1 = {run.plan.w1:g}")
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    _finish(path, fig, ax, run, "final W1 to the target", "share of members (diverged never reach 1)",
            "ECDF of the final W1 per cell")


def plot_band(path, run, h: dict, per: dict) -> None:
    fig = report.new_figure()
    ax = fig.add_subplot()
    epochs = h["epoch"].tolist()
    for i, cell in enumerate(run.cells):
        w1 = torch.nan_to_num(h["w1"][:, per["cell"] == cell.index], nan=math.inf)      # (E, n)
        q = torch.quantile(w1, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64), dim=1, interpolation="lower")
        color = f"C{i % 10}"
        ax.plot(epochs, q[1].tolist(), color=color, lw=1.6, label=cell.label(run.axes))
        ax.fill_between(epochs, q[0].tolist(), q[2].tolist(), color=color, alpha=0.15, lw=0)
    ax.axhline(run.plan.w1, color="0.3", ls="--", lw=1)
    ax.set_yscale("log")
    _finish(path, fig, ax, run, "epoch", "W1 (median, 10-90% band)", "W1 over training")


def plot_heatmap(path, run, per: dict) -> None:
    """Convergence rate over the first two grid keys (pooled over the other keys)."""
    a, b = run.axes[0], run.axes[1]
    k = torch.zeros(len(a.texts), len(b.texts))
    n = torch.zeros_like(k)
    for cell in run.cells:
        i, j = a.texts.index(cell.texts[0]), b.texts.index(cell.texts[1])
        sel = per["cell"] == cell.index
        k[i, j] += float(per["converged"][sel].sum())
        n[i, j] += float(sel.sum())
    r = k / n
    fig = report.new_figure(1.2 + 0.9 * len(b.texts) + 1.5, 1.2 + 0.6 * len(a.texts) + 0.8)
    ax = fig.add_subplot()
    im = ax.imshow(r.numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(len(a.texts)):
        for j in range(len(b.texts)):
            ax.text(j, i, f"{100 * r[i, j]:.0f}%", ha="center", va="center", fontsize=8,
                    color="white" if r[i, j] < 0.6 else "black")
    ax.set_xticks(range(len(b.texts)), b.texts, fontsize=8)
    ax.set_yticks(range(len(a.texts)), a.texts, fontsize=8)
    ax.set_xlabel(b.key)
    ax.set_ylabel(a.key)
    pooled = f" (pooled over {', '.join(x.key for x in run.axes[2:])})" if len(run.axes) > 2 else ""
    ax.set_title(f"converged (W1 < {run.plan.w1:g}){pooled}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    report.save_png(fig, path)


def plot_lineages(path, lineages: dict) -> None:
    fig = report.new_figure(6, 5)
    ax_d, ax_g = fig.subplots(2, 1, sharex=True)
    for i, (member, steps) in enumerate(lineages.items()):
        epochs = [s[0] for s in steps]
        ax_d.step(epochs, [s[1] for s in steps], where="post", color=f"C{i}", label=f"member {member}")
        ax_g.step(epochs, [s[2] for s in steps], where="post", color=f"C{i}")
    for ax, name in ((ax_d, "D"), (ax_g, "G")):
        ax.set_yscale("log")
        ax.set_ylabel(f"{name} base lr")
    ax_g.set_xlabel("epoch (StepLR, if any, multiplies these)")
    ax_d.set_title("learning rates the final winners' weights went through")
    ax_d.legend(fontsize=7)
    fig.tight_layout()
    report.save_png(fig, path)


def write_plots(folder, run, per: dict, h: dict, samples: dict, picked: dict) -> dict:
    """Every plot; returns {what: file name} of those written."""
    out = {"ecdf": "w1_ecdf.png", "band": "w1_over_epochs.png"}
    plot_ecdf(folder / out["ecdf"], run, per)
    plot_band(folder / out["band"], run, h, per)
    if len(run.axes) >= 2:
        out["heatmap"] = "rate_heatmap.png"
        plot_heatmap(folder / out["heatmap"], run, per)
    for what, member in picked.items():
        cell = run.cells[member // run.plan.seeds]
        w1 = per["w1"][member]
        name = out[what] = f"member_{what}.png"
        report.plot_distribution(folder / name, samples[what].numpy(), target(cell.config),
                                 title=f"{what} member {member} ({cell.label(run.axes)}, seed "
                                       f"{run.cfg.seed + member % run.plan.seeds}): W1 {float(w1):.4f}")
    if run.plan.pbt is not None and run.history:
        w1 = torch.nan_to_num(per["w1"], nan=math.inf)
        winners = sorted(range(len(w1)), key=lambda m: (float(w1[m]), m))[:WINNERS]
        out["lr"] = "lr_schedule.png"
        plot_lineages(folder / out["lr"], {m: lineage(run.history, run.events, m) for m in winners})
    return out
