"""The sweep end to end (python -m ganfast.sweep, ganfast/app/sweep/): the folder, members.csv
against single runs of the same seeds (bitwise), engine groups, threads, PBT, Ctrl-C and
--resume, a diverging cell, CLI errors and the 2-rank torchrun run.

Sweeps here are tiny (devnag with batch 64, a few dozen epochs) and run in-process through
main([...]), except the 2-rank run, which starts torchrun in a subprocess.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import ganfast
from conftest import assert_drawn, read_csv, requires_ext, run_dir_of
from ganfast.app.config import ConfigError, load_preset
from ganfast.app.run import read_checkpoint
from ganfast.app.sweep import cli, dist, pbt, scoring
from ganfast.app.sweep import run as sweep_run
from ganfast.app.sweep.grid import make_cells, parse_grid
from ganfast.app.sweep.groups import init_group, make_groups
from ganfast.engine import train_fused
from ganfast.state import GanState, init_state

pytestmark = [requires_ext, pytest.mark.usefixtures("one_torch_thread")]

SCORE_COLUMNS = ("w1", "w1_scaled", "ks", "mean", "std", "nonfinite", "converged", "moments_ok", "diverged",
                 "epoch_converged", "lr_d", "lr_g")


def tiny_config(path: Path, preset: str = "devnag", **overrides) -> Path:
    cfg = load_preset(preset).replace({"batch_size": 64, "d_steps": 2, "g_steps": 2, **overrides})
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return path


def sweep(tmp_path, *args, config=None, out="out") -> tuple:
    """(exit status, sweep folder or None) of main([...]) on a tiny devnag config."""
    config = config or tiny_config(tmp_path / "tiny.yaml")
    out = tmp_path / out
    code = cli.main(["--config", str(config), "--out", str(out), "--quiet", "--no-plots", *args])
    folder = run_dir_of(out) if out.is_dir() and any(out.iterdir()) else None
    return code, folder


GRID = ("--grid", "optimizer_d.lr=1e-3,3e-3", "--grid", "batch_size=32,64")
BASE = ("--seeds", "3", "--epochs", "30", "--eval-every", "10", "--eval-samples", "256", "--final-samples", "1000")


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    """A 2 x 2 grid x 3 seeds, 30 epochs, plots on."""
    tmp = tmp_path_factory.mktemp("grid")
    torch.set_num_threads(1)
    config = tiny_config(tmp / "tiny.yaml")
    code = cli.main(["--config", str(config), "--out", str(tmp / "out"), "--quiet", *BASE, *GRID])
    assert code == 0
    return run_dir_of(tmp / "out"), load_preset("devnag").replace({"batch_size": 64, "d_steps": 2, "g_steps": 2})


# --- grid, groups, rates ------------------------------------------------------------------------

def test_grid_values_split_at_commas_outside_brackets_and_cross_first_axis_slowest():
    axes = parse_grid(["discriminator.hidden=[32,32],[64, 64]", "optimizer_d.lr=1e-3,3e-3", "noise.kind=normal"])
    assert [a.texts for a in axes] == [("[32,32]", "[64, 64]"), ("1e-3", "3e-3"), ("normal",)]
    cells = make_cells(load_preset("devnag"), axes)
    assert len(cells) == 4
    assert [(c.config.discriminator.hidden, c.config.optimizer_d.lr) for c in cells] == \
        [((32, 32), 1e-3), ((32, 32), 3e-3), ((64, 64), 1e-3), ((64, 64), 3e-3)]
    assert all(c.config.noise.kind == "normal" and c.config.noise.dim == 1 for c in cells)
    assert make_cells(load_preset("devnag"), parse_grid([]))[0].config == load_preset("devnag")


@pytest.mark.parametrize("flags, message", [
    (["optimizer_d.lrr=1"], "--grid optimizer_d.lrr=1: unknown key 'lrr'"),
    (["batch_size=abc"], "--grid batch_size=abc: batch_size: expected an integer"),
    (["d_steps=1,,2"], "an empty value between commas"),
    (["d_steps="], "no values"),
    (["d_steps"], "expected KEY=V1,V2"),
    (["epochs=10,20"], "set by the sweep itself (use --epochs)"),
    (["d_steps=1,1"], "listed twice"),
    (["d_steps=1", "d_steps=2"], "the key is given twice"),
])
def test_grid_errors_name_the_flag(flags, message):
    with pytest.raises(ConfigError) as e:
        make_cells(load_preset("devnag"), parse_grid(flags))
    assert message in str(e.value)


def test_cells_that_differ_only_in_learning_rates_share_an_engine_group():
    base = load_preset("devnag")
    groups = make_groups(make_cells(base, parse_grid(["optimizer_g.lr=1e-3,2e-3", "batch_size=32,64",
                                                      "optimizer_d.lr=1e-3,3e-3"])), 2)
    assert len(groups) == 2
    assert [[c.config.batch_size for c in g.cells] for g in groups] == [[32] * 4, [64] * 4]
    assert groups[0].members == (0, 1, 2, 3, 8, 9, 10, 11)  # cells 0, 1, 4, 5 (lr_g slowest)
    assert groups[0].positions(1, 3) == [1, 4, 7]
    state = init_group(groups[0], 5, 2)
    assert state.seeds.tolist() == [5, 6] * 4
    assert state.lrs.tolist() == [[1e-3, 1e-3]] * 2 + [[3e-3, 1e-3]] * 2 + [[1e-3, 2e-3]] * 2 + [[3e-3, 2e-3]] * 2


@pytest.mark.parametrize("k, n", [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (95, 256), (243, 256), (1, 1000)])
def test_wilson_interval_is_scipys(k, n):
    stats = pytest.importorskip("scipy.stats")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert scoring.wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


# --- the folder ------------------------------------------------------------------------------

def test_the_folder_has_members_trajectories_summary_plots_and_report(grid_sweep):
    folder, _ = grid_sweep
    names = {p.name for p in folder.iterdir()}
    assert {"config.yaml", "checkpoint.pt", "members.csv", "trajectories.csv", "summary.json", "population.pt",
            "report.md", "w1_ecdf.png", "w1_over_epochs.png", "rate_heatmap.png", "member_best.png",
            "member_median.png", "member_worst.png"} <= names
    for name in sorted(n for n in names if n.endswith(".png")):
        assert_drawn(folder / name)
    assert not any(n.endswith(".tmp") for n in names)
    rows = read_csv(folder / "members.csv")
    assert len(rows) == 12
    assert list(rows[0])[:5] == ["member", "cell", "seed", "optimizer_d.lr", "batch_size"]
    assert set(SCORE_COLUMNS) <= set(rows[0])
    assert [(r["cell"], r["seed"], r["optimizer_d.lr"], r["batch_size"]) for r in rows[:4]] == \
        [("0", "0", "1e-3", "32"), ("0", "1", "1e-3", "32"), ("0", "2", "1e-3", "32"), ("1", "0", "1e-3", "64")]
    traj = read_csv(folder / "trajectories.csv")
    assert len(traj) == 12 * 3 and sorted({int(r["epoch"]) for r in traj}) == [10, 20, 30]


def test_summary_states_rates_with_wilson_intervals(grid_sweep):
    folder, _ = grid_sweep
    summary = json.loads((folder / "summary.json").read_text())
    rows = read_csv(folder / "members.csv")
    assert summary["members"] == 12 and summary["cells"] == 4 and summary["engine_groups"] == 2
    assert summary["gan_epochs"] == 12 * 30 and summary["gan_epochs_per_s"] > 0
    assert summary["overhead_share"] > 0 and summary["train_time_s"] > 0
    for cell in summary["per_cell"]:
        mine = [r for r in rows if int(r["cell"]) == cell["cell"]]
        k = sum(r["converged"] == "True" for r in mine)
        assert cell["converged"]["k"] == k and cell["converged"]["n"] == 3
        assert cell["converged"]["ci95"] == pytest.approx(list(scoring.wilson(k, 3)))
        w1 = sorted(float(r["w1"]) for r in mine)
        assert cell["w1_median"] == w1[1] and cell["w1_p90"] == w1[1] and cell["w1_p10"] == w1[0]
    isa = ganfast.info()["cpu_isa"]
    assert summary["kernels"] == [isa]  # builds agree to rounding only: the figures depend on it
    report = (folder / "report.md").read_text()
    assert "**Converged:" in report and "| optimizer_d.lr=3e-3, batch_size=64 |" in report
    assert f"1 rank(s), kernels {isa})" in report
    assert "![Convergence rate](rate_heatmap.png)" in report


def test_members_equal_single_runs_of_the_same_seeds_bitwise(grid_sweep):
    """Each member trained alone (init_state of its cell's config, its seed) and scored on the same
    noise gives exactly the sweep's numbers: grouping, the population and the chunking of calls
    change nothing."""
    folder, base = grid_sweep
    rows = read_csv(folder / "members.csv")
    population = torch.load(folder / "population.pt", weights_only=True)
    axes = parse_grid(GRID[1::2])
    cells = make_cells(base.replace(epochs=30), axes)
    final_seed = scoring.eval_seed(0, 2)
    for row in rows:
        cfg = cells[int(row["cell"])].config
        state = init_state(cfg.gan_spec, seed=int(row["seed"]), population=1)
        train_fused(cfg.gan_spec, state, 30)
        s = scoring.score(cfg.gan_spec, state, 1000, final_seed)
        assert float(row["w1"]) == float(s["w1"][0]) and float(row["ks"]) == float(s["ks"][0])
        assert float(row["mean"]) == float(s["mean"][0, 0]) and float(row["std"]) == float(s["std"][0, 0])
        assert float(row["lr_d"]) == cfg.optimizer_d.lr
        group = next(g for g in population["groups"] if int(row["member"]) in g["members"])
        k = group["members"].index(int(row["member"]))
        for name, t in state.tensors().items():
            assert torch.equal(group["state"][name][k], t[0]), name


def test_grouped_cells_train_in_one_engine_call_each(tmp_path, monkeypatch):
    calls = []

    def counting(spec, state, epochs):
        calls.append((spec.batch_size, state.population, state.lrs[:, 0].tolist()))
        return train_fused(spec, state, epochs)

    monkeypatch.setattr(sweep_run, "train_fused", counting)
    monkeypatch.setattr(sweep_run.CallSizer, "next", lambda self, remaining: remaining)  # whole intervals
    code, _ = sweep(tmp_path, *BASE, *GRID)
    assert code == 0
    assert len(calls) == 2 * 3  # two groups, three evaluation periods
    assert {(b, p) for b, p, _ in calls} == {(32, 6), (64, 6)}
    assert calls[0][2] == [1e-3] * 3 + [3e-3] * 3


def test_results_do_not_depend_on_the_thread_count(tmp_path, grid_sweep):
    folder, _ = grid_sweep
    torch.set_num_threads(2)
    code, two = sweep(tmp_path, *BASE, *GRID)
    assert code == 0
    assert read_csv(two / "members.csv") == read_csv(folder / "members.csv")
    assert read_csv(two / "trajectories.csv") == read_csv(folder / "trajectories.csv")


# --- Ctrl-C and --resume ---------------------------------------------------------------------------

CUT = (*BASE, "--grid", "optimizer_d.lr=1e-3,3e-3", "--pbt", "--pbt-every", "10")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whole")
    torch.set_num_threads(1)
    code, folder = sweep(tmp, *CUT)
    assert code == 0
    return folder


@pytest.mark.parametrize("where", ["training", "pbt"])
def test_ctrl_c_checkpoints_and_resume_ends_bitwise_like_an_uninterrupted_sweep(tmp_path, monkeypatch, capsys,
                                                                                uninterrupted, where):
    """Ctrl-C in an engine call of the second evaluation period, or in its PBT copies (after its
    scores were recorded): either way the sweep goes back to the first evaluation, saves it, and
    --resume ends exactly where the uninterrupted sweep did."""
    calls = {"train": 0, "apply": 0}

    def train(spec, state, epochs):
        calls["train"] += 1
        if where == "training" and calls["train"] == 4:
            raise KeyboardInterrupt
        return train_fused(spec, state, epochs)

    apply = pbt.apply

    def copy(*args):
        calls["apply"] += 1
        if where == "pbt" and calls["apply"] == 2:  # the copy of round 2 (epoch 20; 1 of 6 per round)
            raise KeyboardInterrupt
        return apply(*args)

    monkeypatch.setattr(sweep_run, "train_fused", train)
    monkeypatch.setattr(pbt, "apply", copy)
    monkeypatch.setattr(sweep_run.CallSizer, "next", lambda self, remaining: min(remaining, 5))
    code, folder = sweep(tmp_path, *CUT)
    assert code == 130
    assert f"python -m ganfast.sweep --resume {folder}" in capsys.readouterr().err
    payload = read_checkpoint(folder / "checkpoint.pt", kinds=("sweep",))
    assert payload["state"]["group_epochs"] == [10] and len(payload["state"]["history"]) == 1
    assert json.loads((folder / "summary.json").read_text())["interrupted"] is True
    monkeypatch.undo()
    torch.set_num_threads(1)
    assert cli.main(["--resume", str(folder), "--quiet", "--no-plots"]) == 0
    for name in ("members.csv", "trajectories.csv", "pbt_events.csv"):
        assert read_csv(folder / name) == read_csv(uninterrupted / name), name


def test_resume_extends_with_epochs(tmp_path):
    code, folder = sweep(tmp_path, "--seeds", "2", "--epochs", "10", "--eval-every", "10", "--eval-samples", "64",
                         "--final-samples", "64")
    assert code == 0
    assert cli.main(["--resume", str(folder), "--epochs", "20", "--quiet", "--no-plots"]) == 0
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["epochs"] == 20 and summary["gan_epochs"] == 40
    assert sorted({int(r["epoch"]) for r in read_csv(folder / "trajectories.csv")}) == [10, 20]


def test_resuming_on_other_kernels_says_so(tmp_path, capsys):
    """A sweep checkpointed on one CPU build and continued on another is no longer bitwise an
    uninterrupted sweep: the resume says so in one line; on the same build it says nothing."""
    code, folder = sweep(tmp_path, "--seeds", "2", "--epochs", "10", "--eval-every", "10", "--eval-samples", "64",
                         "--final-samples", "64")
    assert code == 0
    isa = ganfast.info()["cpu_isa"]
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["state"]["kernels"] == [isa]
    capsys.readouterr()
    assert cli.main(["--resume", str(folder), "--epochs", "20", "--quiet", "--no-plots"]) == 0
    assert "warning" not in capsys.readouterr().out
    payload = torch.load(folder / "checkpoint.pt", weights_only=True)
    other = "baseline" if isa != "baseline" else "avx2"
    payload["state"]["kernels"] = [other]
    torch.save(payload, folder / "checkpoint.pt")
    assert cli.main(["--resume", str(folder), "--epochs", "30", "--quiet", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert f"warning: this sweep trained on {other} kernels and continues on {isa}: " in out
    assert out.count("warning") == 1


def test_a_train_checkpoint_is_not_a_sweep_and_back(tmp_path, capsys):
    code, folder = sweep(tmp_path, "--seeds", "1", "--epochs", "2", "--eval-every", "2", "--eval-samples", "16",
                         "--final-samples", "16")
    assert code == 0
    from ganfast.app import cli as train_cli

    assert train_cli.main(["--resume", str(folder)]) == 2
    assert "is a sweep checkpoint; continue it with python -m ganfast.sweep --resume" in capsys.readouterr().err


# --- a diverging cell ------------------------------------------------------------------------

def test_a_diverging_cell_is_recorded_and_the_sweep_goes_on(tmp_path):
    code, folder = sweep(tmp_path, "--seeds", "2", "--epochs", "20", "--eval-every", "10", "--eval-samples", "64",
                         "--final-samples", "64", "--grid", "optimizer_g.lr=1e-3,1e300")
    assert code == 0
    rows = read_csv(folder / "members.csv")
    fine, wild = rows[:2], rows[2:]
    assert all(r["diverged"] == "" for r in fine)
    assert all(r["diverged"] != "" and 1 <= int(r["diverged"]) <= 20 for r in wild)
    assert all(r["converged"] == "False" and r["w1"] == "" for r in wild)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["diverged"] == 2 and summary["per_cell"][1]["diverged"] == 2
    assert summary["per_cell"][1]["w1_median"] is None  # +inf: a diverged member is the worst


# --- targets of several modes ------------------------------------------------------------------

def test_mode_coverage_counts_only_the_members_whose_target_has_modes(tmp_path):
    """A grid that crosses a normal with a mixture: the normal's members have no modes to cover,
    so the rate is over the mixture's members alone (they once counted as 'not covered')."""
    config = tiny_config(tmp_path / "tiny.yaml", "gaussian")
    code, folder = sweep(tmp_path, "--seeds", "3", "--epochs", "20", "--eval-every", "10", "--eval-samples", "64",
                         "--final-samples", "500", "--grid",
                         "data={kind: normal, mean: [0.0], std: [1.0]},{kind: mixture, centers: [[-2.0], [2.0]], std: [0.5]}",
                         config=config)
    assert code == 0
    rows = read_csv(folder / "members.csv")
    normal, mixture = rows[:3], rows[3:]
    assert all(r["modes_covered"] == "" and r["n_modes"] == "" for r in normal)
    assert all(r["n_modes"] == "2" and r["modes_covered"] in ("0", "1", "2") for r in mixture)
    covered = sum(r["modes_covered"] == "2" for r in mixture)
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["all_modes"]["k"], summary["all_modes"]["n"]) == (covered, 3)
    assert summary["per_cell"][0]["all_modes"] is None
    assert (summary["per_cell"][1]["all_modes"]["k"], summary["per_cell"][1]["all_modes"]["n"]) == (covered, 3)


# --- PBT -------------------------------------------------------------------------------------------

def _groups(seeds=8, *flags):
    return make_groups(make_cells(load_preset("devnag"), parse_grid(flags)), seeds)


def test_pbt_plan_copies_the_top_quantile_into_the_bottom():
    (group,) = _groups(8)
    fitness = torch.tensor([0.5, 0.1, float("nan"), 0.3, 0.2, 0.9, 0.05, 0.4], dtype=torch.float64)
    copies = pbt.plan(fitness, [group], pbt.PbtOptions(every=10, quantile=0.25), seed=0, round_=0)
    assert sorted(c.member for c in copies) == [2, 5]          # NaN and 0.9: the worst two
    assert {c.source for c in copies} <= {6, 1}                # 0.05 and 0.1: the best two
    assert all(f in (0.8, 1.25) for c in copies for f in (c.factor_d, c.factor_g))
    assert pbt.plan(fitness, [group], pbt.PbtOptions(every=10, quantile=0.25), seed=0, round_=0) == copies
    rounds = [pbt.plan(fitness, [group], pbt.PbtOptions(every=10, quantile=0.5), seed=s, round_=r)
              for s in (0, 1) for r in range(4)]
    assert len({tuple(r) for r in rounds}) > 1                 # draws depend on the seed and the round


def test_pbt_ranks_within_engine_groups_and_ties_go_to_the_lower_index():
    groups = _groups(4, "batch_size=32,64")
    fitness = torch.zeros(8, dtype=torch.float64)
    copies = pbt.plan(fitness, groups, pbt.PbtOptions(every=10, quantile=0.25), seed=3, round_=0)
    assert [(c.member, c.source) for c in copies] == [(3, 0), (7, 4)]


def test_pbt_copy_takes_weights_and_optimizer_state_and_keeps_the_stream():
    spec = load_preset("devnag").replace({"batch_size": 32, "d_steps": 1, "g_steps": 1}).gan_spec
    state = init_state(spec, seed=0, population=3)
    train_fused(spec, state, 3)
    state.offsets[2] += 4096  # a stream position of its own (members of a group otherwise keep step)
    before = state.clone()
    copy = pbt.Copy(member=2, source=0, factor_d=0.8, factor_g=1.25)
    pbt.apply(state, 2, pbt.member_tensors(state, 0), copy)
    for name in ("g_params", "d_params", "g_opt", "d_opt"):
        assert torch.equal(getattr(state, name)[2], getattr(before, name)[0]), name
    for name in ("seeds", "offsets", "epochs"):
        assert torch.equal(getattr(state, name)[2], getattr(before, name)[2]), name
    assert state.lrs[2].tolist() == [before.lrs[0, 0].item() * 0.8, before.lrs[0, 1].item() * 1.25]
    assert torch.equal(state.member(1).g_params, before.member(1).g_params)
    # the copier trains on: exactly what the source's weights do with the copier's stream and lrs
    expected = GanState(**{n: t[0:1].clone() for n, t in before.tensors().items()})
    for n in ("seeds", "offsets", "epochs"):
        getattr(expected, n).copy_(getattr(before, n)[2:3])
    expected.lrs.copy_(state.lrs[2:3])
    train_fused(spec, state, 2)
    train_fused(spec, expected, 2)
    assert torch.equal(state.g_params[2], expected.g_params[0])
    assert not torch.equal(state.g_params[2], state.g_params[0])


def test_pbt_sweep_records_its_copies_and_repeats_itself(tmp_path):
    args = ("--seeds", "4", "--epochs", "30", "--eval-every", "10", "--eval-samples", "128", "--final-samples",
            "256", "--pbt", "--pbt-every", "10", "--pbt-quantile", "0.25", "--grid", "optimizer_d.lr=1e-3,3e-3")
    code, a = sweep(tmp_path, *args, out="a")
    assert code == 0
    code, b = sweep(tmp_path, *args, out="b")
    assert code == 0
    events = read_csv(a / "pbt_events.csv")
    assert len(events) == 2 * 2  # 2 of 8 members at epochs 10 and 20 (not at the final epoch)
    assert sorted({int(e["epoch"]) for e in events}) == [10, 20]
    traj = {(int(r["member"]), int(r["epoch"])): r for r in read_csv(a / "trajectories.csv")}
    for e in events:
        m, s, epoch = int(e["member"]), int(e["source"]), int(e["epoch"])
        assert float(traj[(m, epoch)]["w1"]) >= float(traj[(s, epoch)]["w1"])
        lr_d = float(traj[(s, epoch)]["lr_d"])
        assert float(e["lr_d"]) in (lr_d * 0.8, lr_d * 1.25)
        assert float(traj[(m, epoch + 10)]["lr_d"]) == float(e["lr_d"])
    assert read_csv(b / "pbt_events.csv") == events
    assert read_csv(b / "members.csv") == read_csv(a / "members.csv")
    assert "## Population-based training" in (a / "report.md").read_text()


# --- CLI errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--grid", "optimizer_d.lrr=1"], "unknown key 'lrr'"),
    (["--grid", "batch_size=abc"], "batch_size: expected an integer"),
    (["--grid", "optimizer_d.lr="], "no values"),
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--eval-every", "0"], "--eval-every must be >= 1"),
    (["--pbt", "--pbt-every", "15", "--eval-every", "10"], "multiple of --eval-every"),
    (["--pbt", "--pbt-quantile", "0.7"], "--pbt-quantile must be in (0, 0.5]"),
    (["--pbt-every", "10"], "--pbt-every needs --pbt"),
    (["--pbt", "--pbt-factors", "0.8"], "--pbt-factors: two positive numbers"),
    (["--preset", "digits-mlp"], "image data set"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--w1", "0"], "--w1 must be > 0"),
    (["--resume", "nowhere"], "no sweep folder"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    if "--preset" not in args and "--resume" not in args:
        args = ["--config", str(tiny_config(tmp_path / "c.yaml")), *args]
    if "--resume" not in args:
        args = [*args, "--out", str(tmp_path / "out")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_resume_takes_no_plan_flags(tmp_path, capsys):
    code, folder = sweep(tmp_path, "--seeds", "1", "--epochs", "2", "--eval-every", "2", "--eval-samples", "16",
                         "--final-samples", "16")
    for flags, name in ((["--grid", "d_steps=1,2"], "--grid"), (["--seeds", "4"], "--seeds"),
                        (["--eval-every", "1"], "--eval-every"), (["--pbt"], "--pbt"), (["--w1", "0.1"], "--w1")):
        assert cli.main(["--resume", str(folder), *flags]) == 2
        assert f"{name} cannot be used with --resume" in capsys.readouterr().err


# --- two ranks --------------------------------------------------------------------------------

@pytest.mark.parametrize("builds, fix", [
    (["avx512", "avx2"], "GANFAST_CPU_ISA=avx2 on every rank"),
    (["avx2", "avx2", "baseline", "avx512"], "GANFAST_CPU_ISA=baseline on every rank"),
    (["cuda NVIDIA H200", "cuda NVIDIA A100"], None),
])
def test_ranks_on_different_kernel_builds_are_named_in_one_warning(builds, fix):
    note = dist.mixed_builds_note(builds)
    assert note.startswith("warning: the ranks run different kernel builds (rank 0: ") and "\n" not in note
    assert f"rank {len(builds) - 1}: {builds[-1]})" in note and "not bitwise" in note
    assert (fix in note) if fix else ("GANFAST_CPU_ISA" not in note)


@pytest.mark.parametrize("builds", [["avx2"], ["avx512"] * 3, ["cuda NVIDIA H200"] * 2])
def test_ranks_on_one_kernel_build_get_no_warning(builds):
    assert dist.mixed_builds_note(builds) is None


def test_two_ranks_give_bitwise_the_same_folder_as_one(tmp_path):
    """torchrun with 2 processes on localhost (gloo) against the in-process run: members.csv,
    trajectories.csv and the PBT copies (which move weights between the ranks) are identical."""
    config = tiny_config(tmp_path / "tiny.yaml")
    args = ["--config", str(config), "--quiet", "--no-plots", "--seeds", "3", "--epochs", "20", "--eval-every", "10",
            "--eval-samples", "128", "--final-samples", "256", "--pbt", "--pbt-every", "10",
            "--grid", "optimizer_d.lr=1e-3,3e-3", "--grid", "batch_size=32,64"]
    assert cli.main([*args, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "ganfast.sweep", *args, "--out", str(tmp_path / "two")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = run_dir_of(tmp_path / "one"), run_dir_of(tmp_path / "two")
    for name in ("members.csv", "trajectories.csv", "pbt_events.csv"):
        assert read_csv(two / name) == read_csv(one / name), name
    summary = json.loads((two / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["kernels"] == [ganfast.info()["cpu_isa"]] * 2
    assert "warning" not in proc.stdout + proc.stderr
    assert len(read_csv(one / "pbt_events.csv")) == 2  # 1 of 6 per group, at epoch 10: weights crossed ranks
