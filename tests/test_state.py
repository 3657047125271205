"""Tests of the population state (ganfast/state.py): init, views. (Checkpoints are the
application's: tests/app/test_run.py.)"""
from __future__ import annotations

import math

import pytest
import torch

import ganfast
from conftest import requires_ext
from ganfast.app.config import list_presets, load_preset
from ganfast.random import PhiloxStream
from ganfast.state import GanState, init_state, philox_init

FIELDS = ("g_params", "d_params", "g_opt", "d_opt", "offsets", "epochs", "seeds", "lrs")


def assert_states_equal(a: GanState, b: GanState):
    for name, t in a.tensors().items():
        other = getattr(b, name)
        assert t.dtype == other.dtype and torch.equal(t, other), f"{name} differs"


def trained_state(cfg, epochs=2):
    """A state with non-trivial optimizer buffers and counters (fused if available)."""
    s = init_state(cfg)
    if ganfast.extension_available():
        from ganfast.engine import train_fused
        train_fused(cfg, s, epochs)
    else:
        from ganfast.reference_train import train_reference
        train_reference(cfg, s, epochs)
    return s


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread per test (restored after): the reference trainer's tiny ops crawl
    with 2 OpenMP threads on a loaded 2-core machine; results do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cfg():
    return load_preset("how-to-gan").replace(batch_size=16, population=3, seed=4)


def test_init_state_of_a_gan_spec_and_of_its_config(cfg):
    """A GanSpec with explicit seed and population is the same as the config that holds them."""
    a = init_state(cfg)
    b = init_state(cfg.gan_spec, seed=4, population=3)
    assert_states_equal(a, b)
    one = init_state(cfg.gan_spec)  # seed 0, one member
    assert one.population == 1 and one.seeds.tolist() == [0]
    assert_states_equal(init_state(cfg, seed=0, population=1), one)
    with pytest.raises(TypeError, match="expected a GanSpec"):
        init_state("how-to-gan")
    with pytest.raises(ValueError, match="population >= 1"):
        init_state(cfg, population=0)


# --- init_state -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list_presets("toy"))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_init_state_shapes(name, dtype):
    cfg = load_preset(name).replace(population=3, seed=9, dtype=dtype)
    s = init_state(cfg)
    nG, nD = cfg.g_spec.num_params, cfg.d_spec.num_params
    t = torch.float32 if dtype == "float32" else torch.float64
    expected = {
        "g_params": ((3, nG), t), "d_params": ((3, nD), t),
        "g_opt": ((3, 2 * nG), t), "d_opt": ((3, 2 * nD), t),
        "offsets": ((3,), torch.int64), "epochs": ((3,), torch.int64), "diverged": ((3,), torch.int64),
        "seeds": ((3,), torch.int64), "lrs": ((3, 2), torch.float64),
    }
    assert set(expected) == set(s.tensors())
    for field, (shape, dt) in expected.items():
        x = getattr(s, field)
        assert tuple(x.shape) == shape and x.dtype == dt, field
        assert x.is_contiguous(), field
    assert s.population == 3 and s.epoch == 0
    assert not s.g_opt.any() and not s.d_opt.any() and not s.epochs.any()
    assert s.seeds.tolist() == [9, 10, 11] and s.diverged.tolist() == [-1, -1, -1] and s.diverged_members == []
    assert s.lrs.tolist() == [[cfg.optimizer_d.lr, cfg.optimizer_g.lr]] * 3
    # every init word is one uniform: training starts right after G's and D's parameters
    assert s.offsets.tolist() == [nG + nD] * 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_member_init_is_philox_init_of_its_seed(cfg, dtype):
    cfg = cfg.replace(dtype=str(dtype).split(".")[1])
    s = init_state(cfg)
    for k in range(cfg.population):
        stream = PhiloxStream(cfg.seed + k)
        g = philox_init(cfg.g_spec, stream, dtype)
        d = philox_init(cfg.d_spec, stream, dtype)
        assert torch.equal(s.g_params[k], g)
        assert torch.equal(s.d_params[k], d)
        assert int(s.offsets[k]) == stream.offset
    # members differ from each other
    assert not torch.equal(s.g_params[0], s.g_params[1])


def test_philox_init_is_nn_linear_like(cfg):
    """Each layer's weight and bias lie in U(-1/sqrt(fan_in), 1/sqrt(fan_in)), G then D, and
    they fill most of that range."""
    s = init_state(cfg.replace(dtype="float64", population=1))
    for spec, flat in ((cfg.g_spec, s.g_params[0]), (cfg.d_spec, s.d_params[0])):
        pos = 0
        for i, o in zip(spec.widths[:-1], spec.widths[1:]):
            bound = 1.0 / math.sqrt(i)
            for n in (o * i, o):
                part = flat[pos:pos + n]
                assert float(part.abs().max()) <= bound
                if n >= 64:
                    assert float(part.abs().max()) > 0.8 * bound
                pos += n
        assert pos == flat.numel()


def test_init_depends_only_on_member_seed(cfg):
    pop = init_state(cfg)  # seeds 4, 5, 6
    for k in range(cfg.population):
        one = init_state(cfg.replace(seed=cfg.seed + k, population=1))
        assert_states_equal(pop.member(k), one)
    # the population size does not change a member
    big = init_state(cfg.replace(population=5))
    assert_states_equal(big.member(2), pop.member(2))


def test_init_is_deterministic_and_ignores_torch_rng(cfg):
    torch.manual_seed(0)
    a = init_state(cfg)
    torch.manual_seed(123)
    torch.rand(10)
    b = init_state(cfg)
    assert_states_equal(a, b)


def test_init_state_per_member_lrs(cfg):
    lrs = [[1e-3, 2e-3], [3e-3, 4e-3], [5e-3, 6e-3]]
    s = init_state(cfg, lrs=lrs)
    assert s.lrs.dtype == torch.float64 and s.lrs.tolist() == lrs
    default = init_state(cfg)
    for name in FIELDS:
        if name != "lrs":  # the lrs change nothing else
            assert torch.equal(getattr(s, name), getattr(default, name)), name


@pytest.mark.parametrize("lrs", [
    [[1e-3, 1e-3]] * 2,                     # too few rows
    [[1e-3, 1e-3, 1e-3]] * 3,               # three columns
    [1e-3, 1e-3, 1e-3],                     # 1-D
    [[1e-3, 1e-3]] * 4,                     # too many rows
    [[1e-3, 0.0], [1e-3, 1e-3], [1e-3, 1e-3]],   # not > 0
    [[1e-3, -1.0], [1e-3, 1e-3], [1e-3, 1e-3]],
    [[1e-3, math.nan], [1e-3, 1e-3], [1e-3, 1e-3]],
    [[1e-3, math.inf], [1e-3, 1e-3], [1e-3, 1e-3]],
])
def test_init_state_rejects_bad_lrs(cfg, lrs):
    with pytest.raises(ValueError, match="lrs must be"):
        init_state(cfg, lrs=lrs)


# --- GanState helpers -----------------------------------------------------------------------

def test_member_is_a_view_and_clone_is_not(cfg):
    s = init_state(cfg)
    m = s.member(1)
    assert m.population == 1
    for name in FIELDS:
        assert getattr(m, name).data_ptr() == getattr(s, name)[1:2].data_ptr(), name
        assert getattr(m, name).is_contiguous(), name
    m.g_params.add_(1.0)
    assert torch.equal(s.g_params[1], m.g_params[0])
    c = s.clone()
    c.d_params.add_(1.0)
    c.offsets.add_(1)
    assert not torch.equal(c.d_params, s.d_params) and not torch.equal(c.offsets, s.offsets)


@requires_ext
def test_training_a_member_view_trains_only_that_row(cfg):
    from ganfast.engine import train_fused

    s = init_state(cfg)
    before = s.clone()
    train_fused(cfg, s.member(1), 3)
    for name in FIELDS:
        t, b = getattr(s, name), getattr(before, name)
        assert torch.equal(t[0], b[0]) and torch.equal(t[2], b[2]), f"{name}: other rows changed"
    assert not torch.equal(s.g_params[1], before.g_params[1])
    assert s.epochs.tolist() == [0, 3, 0]
    assert int(s.offsets[1]) > int(before.offsets[1])
    # and it is the same as training member 1 on its own
    solo_cfg = cfg.replace(seed=cfg.seed + 1, population=1)
    solo = init_state(solo_cfg)
    train_fused(solo_cfg, solo, 3)
    assert_states_equal(s.member(1), solo)


def test_training_a_member_view_with_the_reference(cfg):
    from ganfast.reference_train import train_reference

    s = init_state(cfg.replace(batch_size=8))
    before = s.clone()
    train_reference(cfg.replace(batch_size=8), s.member(2), 2)
    for name in FIELDS:
        t, b = getattr(s, name), getattr(before, name)
        assert torch.equal(t[:2], b[:2]), f"{name}: other rows changed"
    assert s.epochs.tolist() == [0, 0, 2]
    assert not torch.equal(s.d_params[2], before.d_params[2])
