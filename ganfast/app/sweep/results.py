"""What a finished (or interrupted) sweep leaves in its folder, and the numbers in it.

    members.csv       one row per member: cell, seed, grid values, final W1 (and W1 / target std),
                      KS, mean, std, non-finite samples, converged, moments_ok, diverged (the
                      epoch, empty while finite), epoch_converged (first evaluation under the
                      threshold), the final (D, G) learning rates
    trajectories.csv  one row per member and evaluation: epoch, W1, KS, learning rates
    pbt_events.csv    (with --pbt) one row per copy: epoch, member, source, their W1, new lrs
    summary.json      per cell: members, convergence rate with its 95% Wilson interval, the moments
                      criterion's rate, W1 quantiles, median epoch converged, diverged; overall
                      the same, wall time, training time, the sweep's overhead, GAN-epochs/s
                      (targets of several modes, e.g. the 8-ring: also modes_covered, n_modes,
                      high_quality per member and the share with every mode covered)
    *.png, report.md  ganfast.app.sweep.plots, ganfast.app.sweep.report_md
    population.pt     every engine group's final GanState (tensors) and its cells

Quantiles (median, p10, p90) are order statistics ("lower" interpolation) over all members of a
cell, a non-finite W1 counting as +inf: a diverged member is the worst, never left out.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

import ganfast
from ganfast.app import report
from ganfast.app.files import atomic_write
from ganfast.app.sweep import plots, report_md, scoring
from ganfast.app.toy_run import target


def stacked_history(history: list) -> dict:
    """The evaluations as tensors with a leading evaluation axis (E, M, ...)."""
    return {k: torch.stack([r[k] for r in history]) for k in history[0]} if history else {}


def _quantile(x: torch.Tensor, q: float) -> float:
    if x.numel() == 0:
        return math.nan
    return float(torch.quantile(torch.nan_to_num(x.double(), nan=math.inf), q, interpolation="lower"))


def rate(flags: torch.Tensor) -> dict:
    """{k, n, rate, ci95} of a boolean tensor."""
    k, n = int(flags.sum()), int(flags.numel())
    return {"k": k, "n": n, "rate": k / n if n else math.nan, "ci95": list(scoring.wilson(k, n))}


def member_table(run) -> tuple:
    """(rows of members.csv, per-member tensors {w1, converged, moments_ok, diverged, cell})."""
    plan, cfg = run.plan, run.cfg
    M, dim = run.n_members, cfg.data.dim
    h = stacked_history(run.history)
    last = {k: v[-1] for k, v in h.items()} if h else {}
    cell_of = torch.arange(M) // plan.seeds
    t_mean = torch.empty(M, dim, dtype=torch.float64)
    t_std = torch.empty(M, dim, dtype=torch.float64)
    for g in run.groups:
        m, s = scoring.target_moments(g.spec)  # cells of a group share the target
        t_mean[list(g.members)], t_std[list(g.members)] = m, s
    nan = torch.full((M,), math.nan, dtype=torch.float64)
    w1 = last.get("w1", nan)
    mean, std = last.get("mean", nan[:, None].expand(M, dim)), last.get("std", nan[:, None].expand(M, dim))
    converged = w1 < plan.w1
    moments_ok = ((mean - t_mean).abs() < scoring.MOMENT_TOLERANCE).all(1) & \
                 ((std - t_std).abs() < scoring.MOMENT_TOLERANCE).all(1)
    diverged = last.get("diverged", torch.full((M,), -1, dtype=torch.int64))
    first = torch.full((M,), -1, dtype=torch.int64)
    if h:
        below = h["w1"] < plan.w1                                      # (E, M)
        hit = below.any(0)
        first[hit] = h["epoch"][below.double().argmax(0)][hit]
    lrs = last.get("lrs", torch.full((M, 2), math.nan, dtype=torch.float64))
    scaled = w1 / t_std.mean(1)
    rows = []
    for m in range(M):
        cell = run.cells[int(cell_of[m])]
        row = {"member": m, "cell": cell.index, "seed": cfg.seed + m % plan.seeds}
        row.update({a.key: t for a, t in zip(run.axes, cell.texts)})
        row.update(w1=_num(w1[m]), w1_scaled=_num(scaled[m]), ks=_num(last["ks"][m]) if last else None)
        for name, v in (("mean", mean[m]), ("std", std[m])):
            if dim == 1:
                row[name] = _num(v[0])
            else:
                row.update({f"{name}_{d}": _num(v[d]) for d in range(dim)})
        row.update(nonfinite=int(last["nonfinite"][m]) if last else None, converged=bool(converged[m]),
                   moments_ok=bool(moments_ok[m]), diverged=int(diverged[m]) if diverged[m] >= 0 else None,
                   epoch_converged=int(first[m]) if first[m] >= 0 else None,
                   lr_d=_num(lrs[m, 0]), lr_g=_num(lrs[m, 1]))
        rows.append(row)
    per = {"w1": w1, "scaled": scaled, "converged": converged, "moments_ok": moments_ok, "diverged": diverged,
           "first": first, "cell": cell_of}
    return rows, per


def _num(x) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def cell_summaries(run, per: dict) -> list:
    out = []
    for cell in run.cells:
        sel = per["cell"] == cell.index
        w1, first = per["w1"][sel], per["first"][sel]
        reached = first[first >= 0].double()
        out.append({
            "cell": cell.index, "values": {a.key: v for a, v in zip(run.axes, cell.texts)},
            "label": cell.label(run.axes), "members": int(sel.sum()),
            "converged": rate(per["converged"][sel]), "moments_ok": rate(per["moments_ok"][sel]),
            "w1_median": _quantile(w1, 0.5), "w1_p10": _quantile(w1, 0.1), "w1_p90": _quantile(w1, 0.9),
            "w1_scaled_median": _quantile(per["scaled"][sel], 0.5),
            "epoch_converged_median": float(reached.median()) if reached.numel() else None,
            "diverged": int((per["diverged"][sel] >= 0).sum()),
        })
        if "all_modes" in per:  # over the cell's members whose target has modes (None: none has)
            sel = sel & per["has_modes"]
            out[-1]["all_modes"] = rate(per["all_modes"][sel]) if sel.any() else None
    return out


def add_modes(run, states: list, rows: list, per: dict) -> None:
    """For targets of several modes (the 8-ring), each member's final samples against the modes
    (ganfast.app.report.distance_to_target: a mode is covered when >= 1% of the samples lie within
    3 stds of it; high_quality is the share within 3 stds of some mode): columns modes_covered,
    n_modes, high_quality, and per["all_modes"] with per["has_modes"], the members it applies to
    (a grid may cross a one-mode target with one of several). A loop over members, at the end only."""
    if not run.history or all(len(g.spec.data.centers) < 2 for g in run.groups):
        return
    last = run.history[-1]
    all_modes = torch.zeros(run.n_members, dtype=torch.bool)
    has_modes = torch.zeros(run.n_members, dtype=torch.bool)
    for g, group in enumerate(run.groups):
        if len(group.spec.data.centers) < 2:
            continue
        has_modes[list(group.members)] = True
        x = ganfast.sample(group.spec, states[g], int(last["samples"]), noise_seed=int(last["noise_seed"]))
        x = x.double().cpu().numpy()
        for k, m in enumerate(group.members):
            d = report.distance_to_target(x[k], target(run.cells[m // run.plan.seeds].config))
            rows[m].update(modes_covered=d["modes_covered"], n_modes=d["n_modes"], high_quality=_num(d["high_quality"]))
            all_modes[m] = d["modes_covered"] == d["n_modes"]
    per["all_modes"], per["has_modes"] = all_modes, has_modes


def trajectory_rows(run) -> list:
    rows = []
    for r in run.history:
        e = int(r["epoch"])
        w1, ks, lrs = r["w1"].tolist(), r["ks"].tolist(), r["lrs"].tolist()
        rows += [{"member": m, "epoch": e, "w1": w1[m], "ks": ks[m], "lr_d": lrs[m][0], "lr_g": lrs[m][1]}
                 for m in range(run.n_members)]
    return rows


def pick_members(per: dict) -> dict:
    """The best, median and worst member by final W1 (non-finite counts as the worst)."""
    w1 = torch.nan_to_num(per["w1"], nan=math.inf)
    order = sorted(range(len(w1)), key=lambda m: (float(w1[m]), m))
    return {"best": order[0], "median": order[(len(order) - 1) // 2], "worst": order[-1]}


def final_samples(run, states: list, member: int) -> torch.Tensor:
    """The samples of `member` that its last score was measured on (n, dim)."""
    for g, group in enumerate(run.groups):
        if member in group.members:
            r = run.history[-1]
            k = group.members.index(member)
            return ganfast.sample(group.spec, states[g], int(r["samples"]), member=k,
                                  noise_seed=int(r["noise_seed"])).double().cpu()
    raise KeyError(member)


def finish_sweep(run, states: list, interrupted: bool) -> dict:
    """Write the sweep folder (rank 0) and print the summary; returns summary.json's dict."""
    t0 = time.perf_counter()
    plan, cfg = run.plan, run.cfg
    rows, per = member_table(run)
    add_modes(run, states, rows, per)
    cells = cell_summaries(run, per)
    epochs_done = run.epoch
    gan_epochs = sum(len(g.members) * e for g, e in zip(run.groups, run.group_epochs))
    train_s = run.timers["train"]
    summary = {
        "preset": run.source.get("preset"), "config": run.source.get("config"), "name": cfg.name,
        "grid": {a.key: list(a.texts) for a in run.axes}, "seeds": plan.seeds, "seed": cfg.seed,
        "members": run.n_members, "cells": len(run.cells), "engine_groups": len(run.groups),
        "epochs": epochs_done, "target_epochs": cfg.epochs, "interrupted": interrupted,
        "eval_every": plan.eval_every, "eval_samples": plan.eval_samples, "final_samples": plan.final_samples,
        "w1_threshold": plan.w1, "moment_tolerance": scoring.MOMENT_TOLERANCE,
        "converged": rate(per["converged"]), "moments_ok": rate(per["moments_ok"]),
        "diverged": int((per["diverged"] >= 0).sum()),
        "all_modes": rate(per["all_modes"][per["has_modes"]]) if "all_modes" in per else None,
        "wall_time_s": None, "train_time_s": train_s, "init_time_s": run.timers["init"],
        "score_time_s": run.timers["score"], "pbt_time_s": run.timers["pbt"], "report_time_s": None,
        "overhead_share": None, "gan_epochs": gan_epochs, "gan_epochs_per_s": None,
        "threads": torch.get_num_threads(), "ranks": run.comm.world, "device": str(run.device),
        "kernels": run.kernels,
        "pbt": dict(run.plan.to_dict()["pbt"], copies=len(run.events)) if plan.pbt else None,
        "per_cell": cells,
    }
    picked = pick_members(per) if run.history else {}
    summary["picked"] = picked
    if run.run_dir is None:
        return _times(summary, run, time.perf_counter() - t0)
    d = Path(run.run_dir)
    report.write_metrics_csv(d / "members.csv", rows)
    report.write_metrics_csv(d / "trajectories.csv", trajectory_rows(run))
    if plan.pbt:
        report.write_metrics_csv(d / "pbt_events.csv", run.events)
    payload = {"groups": [{"cells": [c.index for c in g.cells], "members": list(g.members),
                           "state": {k: v.cpu() for k, v in s.tensors().items()}}
                          for g, s in zip(run.groups, states)], "config": cfg.to_dict(), "plan": plan.to_dict()}
    atomic_write(d / "population.pt", lambda f: torch.save(payload, f), binary=True)
    images = {}
    if run.options.plots and run.history:
        samples = {k: final_samples(run, states, m) for k, m in picked.items()}
        images = plots.write_plots(d, run, per, stacked_history(run.history), samples, picked)
    _times(summary, run, time.perf_counter() - t0)
    report.write_summary(d / "summary.json", summary)
    report_md.write(d / "report.md", run, summary, images)
    _print(run, summary)
    return summary


def _times(summary: dict, run, report_s: float) -> dict:
    """Wall time (init, the training loop with its evaluations, the report) and the sweep's own
    overhead: all of it but the engine calls, as a share of the engine calls' time."""
    train_s = run.timers["train"]
    wall = run.timers["init"] + run.elapsed + report_s
    summary.update(wall_time_s=wall, report_time_s=report_s,
                   overhead_share=(wall - train_s) / train_s if train_s > 0 else None,
                   gan_epochs_per_s=summary["gan_epochs"] / wall if wall > 0 else None)
    return summary


def _print(run, summary: dict) -> None:
    c = summary["converged"]
    lo, hi = c["ci95"]
    print(f"sweep folder: {run.run_dir}")
    rate_s = summary["gan_epochs_per_s"]
    print(f"trained {summary['members']} members x {summary['epochs']}/{summary['target_epochs']} epochs in "
          f"{summary['wall_time_s']:.1f} s" + (f" ({rate_s:,.0f} GAN-epochs/s)" if rate_s else "")
          + (f", overhead {100 * summary['overhead_share']:.1f}% of training" if summary["overhead_share"] else ""))
    print(f"converged (W1 < {summary['w1_threshold']:g}): {c['k']}/{c['n']} = {100 * c['rate']:.1f}% "
          f"(95% CI {100 * lo:.1f}-{100 * hi:.1f}%); moments within {summary['moment_tolerance']:g}: "
          f"{100 * summary['moments_ok']['rate']:.1f}%; diverged {summary['diverged']}", flush=True)
