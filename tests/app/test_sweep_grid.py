"""The sweep's grid and grouping (ganfast/app/sweep/grid.py, groups.py): parsing, errors, cells,
engine groups, the rank split and the Wilson interval. No training here."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from ganfast.app.config import load_preset
from ganfast.app.sweep.grid import GridError, make_cells, parse_grid, split_values
from ganfast.app.sweep.groups import init_group, make_groups, structure
from ganfast.app.sweep.scoring import wilson
from ganfast.state import init_state


@pytest.fixture(scope="module")
def devnag():
    return load_preset("devnag")


def cells_of(cfg, *flags):
    return make_cells(cfg, parse_grid(flags))


# --- parsing ---------------------------------------------------------------------------------

def test_values_split_at_commas_outside_brackets():
    assert split_values("1e-3, 3e-3") == ["1e-3", "3e-3"]
    assert split_values("[32,32],[64, 64],{a: 1, b: 2}") == ["[32,32]", "[64, 64]", "{a: 1, b: 2}"]


def test_axes_read_values_as_yaml_and_keep_the_text():
    (a,) = parse_grid(["discriminator.hidden=[32,32],[64,64]"])
    assert a.key == "discriminator.hidden" and a.texts == ("[32,32]", "[64,64]")
    assert a.values == ([32, 32], [64, 64])
    (b,) = parse_grid(["noise.kind=normal,uniform"])
    assert b.values == ("normal", "uniform")


@pytest.mark.parametrize("flag, message", [
    ("optimizer_d.lr", "expected KEY=V1,V2"),
    ("=1,2", "expected KEY=V1,V2"),
    ("optimizer_d.lr=", "no values"),
    ("optimizer_d.lr=1e-3,,2e-3", "an empty value between commas"),
    ("optimizer_d.lr=1e-3,1e-3", "a value is listed twice"),
    ("seed=1,2", "set by the sweep itself (use --seed)"),
    ("population=4", "use --seeds"),
    ("epochs=10,20", "use --epochs"),
    ("batch_size=[1,", "cannot read the value"),
])
def test_bad_flags_are_one_line_errors(flag, message):
    with pytest.raises(GridError, match="^--grid ") as e:
        parse_grid([flag])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_key_given_twice_is_an_error():
    with pytest.raises(GridError, match="given twice"):
        parse_grid(["d_steps=1,2", "d_steps=3"])


@pytest.mark.parametrize("flag, message", [
    ("optimizer_d.lrr=1e-3", "unknown key 'lrr' in optimizer_d .*did you mean 'lr'"),
    ("optimizer_d.lr=1e-3,fast", r"^--grid optimizer_d.lr=fast: optimizer_d.lr: expected a number, got the string"),
    ("batch_size=64,1.5", r"^--grid batch_size=1.5: batch_size: expected an integer"),
    ("optimizer_g.lr=-1", "must be > 0"),
    ("epochs.x=1", "epochs: is a value, not a section"),
    ("d_steps.x=1", "d_steps: is a value, not a section"),
    ("data.kind=digits", "--grid data.kind=digits"),
    ("generator.hidden=[]", None),  # valid: an empty hidden list is a linear G
])
def test_values_are_checked_against_the_config(devnag, flag, message):
    if message is None:
        assert len(cells_of(devnag, flag)) == 1
        return
    with pytest.raises(GridError, match=message):
        cells_of(devnag, flag)


def test_a_cell_wrong_only_as_a_whole_names_the_cell(devnag):
    with pytest.raises(GridError, match=r"^--grid cell d_steps=0, g_steps=0: d_steps, g_steps: both are 0"):
        cells_of(devnag, "d_steps=0,1", "g_steps=0,1")


def test_cells_cross_the_axes_first_axis_slowest(devnag):
    cells = cells_of(devnag, "optimizer_d.lr=1e-3,2e-3", "d_steps=1,2,3")
    assert [c.texts for c in cells] == [(lr, s) for lr in ("1e-3", "2e-3") for s in ("1", "2", "3")]
    assert [c.index for c in cells] == list(range(6))
    assert cells[4].config.optimizer_d.lr == 2e-3 and cells[4].config.d_steps == 2
    assert cells[4].label(parse_grid(["optimizer_d.lr=1e-3,2e-3", "d_steps=1,2,3"])) == "optimizer_d.lr=2e-3, d_steps=2"


def test_no_grid_is_one_cell_of_the_base_config(devnag):
    (cell,) = make_cells(devnag, ())
    assert cell.config == devnag and cell.label(()) == "(base config)"


def test_a_kind_key_switches_the_section_keeping_what_the_new_kind_takes(devnag):
    cells = cells_of(devnag.replace({"noise.dim": 1}), "noise.kind=normal,uniform", "noise.dim=1,2")
    kinds = [(c.config.noise.kind, c.config.noise.dim) for c in cells]
    assert kinds == [("normal", 1), ("normal", 2), ("uniform", 1), ("uniform", 2)]
    assert (cells[0].config.noise.mean, cells[0].config.noise.std) == (0.0, 1.0)
    assert cells[1].config.g_spec.widths[0] == 2
    (cell,) = cells_of(devnag, "noise.std=2", "noise.kind=normal")  # order of the flags does not matter
    assert cell.config.noise.kind == "normal" and cell.config.noise.std == 2.0


def test_cells_with_other_data_dimensions_are_refused():
    with pytest.raises(GridError, match="different dimensions"):
        cells_of(load_preset("how-to-gan"), "data={kind: normal, mean: 4.0, std: 1.25},{kind: ring, modes: 8, "
                                            "radius: 2.0, std: 0.02}")


# --- groups ---------------------------------------------------------------------------------

def test_cells_differing_only_in_learning_rates_share_an_engine_group(devnag):
    cells = cells_of(devnag, "optimizer_d.lr=1e-3,2e-3", "optimizer_g.lr=1e-3,3e-3", "batch_size=64,128")
    groups = make_groups(cells, seeds=3)
    assert len(groups) == 2
    assert [[c.config.batch_size for c in g.cells] for g in groups] == [[64] * 4, [128] * 4]
    assert groups[0].members == tuple(c * 3 + s for c in (0, 2, 4, 6) for s in range(3))
    assert structure(cells[0].config.gan_spec) == structure(cells[2].config.gan_spec)
    assert structure(cells[0].config.gan_spec) != structure(cells[1].config.gan_spec)


@pytest.mark.parametrize("key", ["d_steps=1,2", "discriminator.hidden=[4],[5]", "noise.kind=normal,uniform",
                                 "optimizer_d.kind=sgd,adam", "optimizer_g.betas=[0.5,0.9],[0.9,0.999]",
                                 "optimizer_d.step_lr.step_size=10,20", "dtype=float32,float64"])
def test_anything_but_learning_rates_needs_its_own_group(devnag, key):
    assert len(make_groups(cells_of(devnag, key), seeds=2)) == 2


def test_ranks_take_every_world_th_member_of_each_group(devnag):
    (group,) = make_groups(cells_of(devnag, "optimizer_d.lr=1e-3,2e-3"), seeds=5)
    split = [group.positions(r, 3) for r in range(3)]
    assert split == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(j for part in split for j in part) == list(range(10))
    assert group.positions(5, 16) == [5] and group.positions(12, 16) == []


def test_a_group_state_is_the_cells_seeds_with_their_learning_rates(devnag):
    cells = cells_of(devnag, "optimizer_d.lr=1e-3,2e-3")
    (group,) = make_groups(cells, seeds=3)
    state = init_group(group, seed=7, seeds=3)
    assert state.seeds.tolist() == [7, 8, 9, 7, 8, 9]
    assert state.lrs[:, 0].tolist() == [1e-3] * 3 + [2e-3] * 3
    solo = init_state(cells[1].config.gan_spec, seed=8, population=1)
    for name, t in solo.tensors().items():
        assert torch.equal(state.tensors()[name][4:5], t), name
    part = init_group(group, seed=7, seeds=3, positions=[1, 4])
    assert part.seeds.tolist() == [8, 8] and part.lrs[:, 0].tolist() == [1e-3, 2e-3]
    assert torch.equal(part.g_params[1], state.g_params[4])


# --- the Wilson interval ------------------------------------------------------------------------

@pytest.mark.parametrize("k, n", [(0, 1), (1, 1), (0, 256), (243, 256), (256, 256), (7, 16), (1, 3), (50, 100)])
def test_wilson_interval_matches_scipy(k, n):
    stats = pytest.importorskip("scipy.stats")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)


def test_wilson_of_nothing_is_nan():
    lo, hi = wilson(0, 0)
    assert lo != lo and hi != hi


def test_plan_fields_survive_the_checkpoint_round_trip():
    from ganfast.app.sweep.pbt import PbtOptions
    from ganfast.app.sweep.run import Plan

    plan = Plan(grid=("d_steps=1,2",), seeds=3, pbt=PbtOptions(every=20, factors=(0.5, 2.0)))
    assert Plan.from_dict(plan.to_dict()) == plan
    assert dataclasses.asdict(Plan.from_dict(Plan().to_dict())) == dataclasses.asdict(Plan())

