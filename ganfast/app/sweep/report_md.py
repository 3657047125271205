"""report.md of a sweep folder: the setup, the convergence rate, the table of cells, the plots and
(with PBT) the schedule the winners followed."""
from __future__ import annotations

from ganfast.app.files import atomic_write
from ganfast.app.sweep.dist import builds_label
from ganfast.app.sweep.pbt import lineage


def _pct(r: dict) -> str:
    lo, hi = r["ci95"]
    return f"{100 * r['rate']:.1f}% ({r['k']}/{r['n']}; 95% CI {100 * lo:.1f}-{100 * hi:.1f}%)"


def _f(x, spec=".4f") -> str:
    return "—" if x is None or x != x else format(float(x), spec)


def lines(run, summary: dict, images: dict) -> list:
    plan, cfg = run.plan, run.cfg
    src = f"preset `{summary['preset']}`" if summary.get("preset") else f"config `{summary.get('config')}`"
    grid = "; ".join(f"`{k}` = {', '.join(v)}" for k, v in summary["grid"].items()) or "none (the base config)"
    out = [
        f"# Sweep of {cfg.name}", "",
        f"{src}, grid: {grid}; {plan.seeds} seeds per cell (seeds {cfg.seed}..{cfg.seed + plan.seeds - 1}): "
        f"{summary['members']} members in {summary['engine_groups']} engine group(s), "
        f"{summary['epochs']}/{summary['target_epochs']} epochs"
        + (" (**interrupted**)" if summary["interrupted"] else "") + ".", "",
        f"Scored every {plan.eval_every} epochs on {plan.eval_samples:,} fresh samples per member, the last "
        f"evaluation on {plan.final_samples:,}. *Converged*: final W1 < {plan.w1:g} (in the target's units); "
        f"*moments*: mean and std within {summary['moment_tolerance']:g} of the target's.", "",
        f"**Converged: {_pct(summary['converged'])}**; moments: {_pct(summary['moments_ok'])}; "
        f"diverged: {summary['diverged']}."
        + (f" Every mode covered (>= 1% of the samples within 3 stds; members whose target has several "
           f"modes): {_pct(summary['all_modes'])}."
           if summary.get("all_modes") else ""), "",
        f"Wall time {summary['wall_time_s']:.1f} s ({summary['threads']} thread(s), {summary['ranks']} rank(s), "
        f"kernels {builds_label(summary.get('kernels') or ['?'])}), "
        f"training {summary['train_time_s']:.1f} s, "
        + (f"{summary['gan_epochs_per_s']:,.0f} GAN-epochs/s; " if summary.get("gan_epochs_per_s") else "")
        + (f"the sweep's own overhead (scoring, PBT, files, plots) {100 * summary['overhead_share']:.1f}% "
           "of the training time." if summary.get("overhead_share") is not None else ""), "",
        "## Cells", "",
        "| cell | converged | moments | median W1 | p10 | p90 | median W1/std | median epoch converged | diverged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in summary["per_cell"]:
        out.append(f"| {c['label']} | {_pct(c['converged'])} | {100 * c['moments_ok']['rate']:.1f}% | "
                   f"{_f(c['w1_median'])} | {_f(c['w1_p10'])} | {_f(c['w1_p90'])} | {_f(c['w1_scaled_median'])} | "
                   f"{_f(c['epoch_converged_median'], '.0f')} | {c['diverged']} |")
    out.append("")
    titles = {"ecdf": "Final W1 per cell (ECDF)", "band": "W1 over training", "heatmap": "Convergence rate",
              "best": "Best member", "median": "Median member", "worst": "Worst member",
              "lr": "Learning rates of the winners (PBT)"}
    if images:
        out += ["## Plots", ""]
        for key, name in images.items():
            out += [f"### {titles[key]}", "", f"![{titles[key]}]({name})", ""]
    if plan.pbt is not None and run.history:
        out += _pbt_lines(run, summary)
    out += ["Files: `members.csv` (one row per member), `trajectories.csv` (per member and evaluation), "
            "`summary.json`, `population.pt` (the final states)" + (", `pbt_events.csv`" if plan.pbt else "") + ".", ""]
    return out


def _pbt_lines(run, summary: dict) -> list:
    p = run.plan.pbt
    best = summary["picked"]["best"]
    out = ["## Population-based training", "",
           f"Every {p.every} epochs the bottom {100 * p.quantile:g}% of each engine group (by W1) copied a member "
           f"of the top {100 * p.quantile:g}% (weights and optimizer state) and multiplied its learning rates by "
           f"{' or '.join(f'{f:g}' for f in p.factors)}: {summary['pbt']['copies']} copies.", "",
           f"The schedule the best member's weights (member {best}) went through:", "",
           "| epoch | lr D | lr G | held in member |", "|---|---|---|---|"]
    previous = None
    for epoch, lr_d, lr_g, slot in lineage(run.history, run.events, best):
        if (lr_d, lr_g, slot) != previous:
            out.append(f"| {epoch} | {lr_d:.4g} | {lr_g:.4g} | {slot} |")
            previous = (lr_d, lr_g, slot)
    return out + [""]


def write(path, run, summary: dict, images: dict) -> None:
    text = "\n".join(lines(run, summary, images))
    atomic_write(path, lambda f: f.write(text))
