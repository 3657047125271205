"""Tests of the seed-style reference trainer (ganfast/reference_train.py): the moments feature
map, the Sampler's use of the Philox stream, and resuming a MemberTrainer from a GanState."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from conftest import blockwise_rel_err
from ganfast import random as philox
from ganfast.app.config import load_preset
from ganfast.random import PhiloxStream
from ganfast.reference_train import MemberTrainer, Sampler, moments, train_reference
from ganfast.state import GanState, init_state


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread per test (restored after): the reference trainer's tiny ops crawl
    with 2 OpenMP threads on a loaded 2-core machine; results do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def rel_err(a: torch.Tensor, b: torch.Tensor, blocks: int = 1) -> float:
    """conftest.blockwise_rel_err: per member and column block, each against its own scale."""
    return blockwise_rel_err(a, b, blocks)


# --- moments ----------------------------------------------------------------------------------

def numpy_moments(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    mean = x.mean()
    sd = np.sqrt(np.mean((x - mean) ** 2))  # biased (ddof 0), as the seeds compute it
    z = (x - mean) / sd
    return np.array([mean, sd, np.mean(z ** 3), np.mean(z ** 4) - 3.0])


SAMPLES = {
    "normal": lambda rng: rng.normal(4.0, 1.25, 500),
    "exponential": lambda rng: rng.exponential(2.0, 37),
    "uniform": lambda rng: rng.uniform(-1.0, 3.0, 64),
    "two points": lambda rng: np.array([1.0, 3.0, 1.0, 3.0]),
    "skewed small": lambda rng: np.array([0.0, 0.0, 0.0, 10.0, 1.0]),
}


@pytest.mark.parametrize("kind", list(SAMPLES))
@pytest.mark.parametrize("shape", ["row", "column"])
def test_moments_match_numpy(kind, shape):
    x = SAMPLES[kind](np.random.default_rng(0))
    expected = numpy_moments(x)
    t = torch.tensor(x, dtype=torch.float64)
    t = t.view(1, -1) if shape == "row" else t.view(-1, 1)
    got = moments(t)
    assert got.shape == (1, 4) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy()[0], expected, rtol=1e-12, atol=1e-12)
    # float32 agrees with the float64 values to float32 accuracy
    got32 = moments(t.float())
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.double().numpy()[0], expected, rtol=2e-5, atol=2e-5)


def test_moments_known_values():
    # {1, 3, 1, 3}: mean 2, std 1, skew 0, kurtosis 1 - 3 = -2
    got = moments(torch.tensor([[1.0, 3.0, 1.0, 3.0]], dtype=torch.float64))
    assert got.tolist() == [[2.0, 1.0, 0.0, -2.0]]


def test_moments_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(1).gamma(2.0, 1.5, 300)
    got = moments(torch.tensor(x).view(1, -1)).numpy()[0]
    expected = [x.mean(), x.std(ddof=0), stats.skew(x, bias=True), stats.kurtosis(x, fisher=True, bias=True)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [2, 5, 40])
def test_moments_gradcheck(n):
    gen = torch.Generator().manual_seed(n)
    x = (torch.randn(1, n, generator=gen, dtype=torch.float64) * 1.3 + 0.7).requires_grad_()
    assert torch.autograd.gradcheck(moments, (x,), eps=1e-6, atol=1e-7, rtol=1e-6)
    assert torch.autograd.gradgradcheck(moments, (x,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_moments_gradient_of_the_mean_and_std():
    """d mean / dx = 1/N, d std / dx = (x - mean) / (N std)."""
    x = torch.tensor([[0.5, 1.5, 4.0, -2.0, 3.0]], dtype=torch.float64, requires_grad=True)
    n = x.numel()
    m = moments(x)
    (g_mean,) = torch.autograd.grad(m[0, 0], x, retain_graph=True)
    (g_std,) = torch.autograd.grad(m[0, 1], x)
    xd = x.detach()
    torch.testing.assert_close(g_mean, torch.full_like(xd, 1.0 / n), rtol=1e-14, atol=1e-15)
    sd = xd.std(unbiased=False)
    torch.testing.assert_close(g_std, (xd - xd.mean()) / (n * sd), rtol=1e-13, atol=1e-15)


# --- Sampler ----------------------------------------------------------------------------------

def make_sampler(cfg, seed=3, offset=101, dtype=torch.float64):
    stream = PhiloxStream(seed, offset)
    return Sampler(cfg, stream, dtype, None), stream


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch", [7, 8])
def test_sampler_normal_data_is_the_philox_normal_stream(dtype, batch):
    cfg = load_preset("how-to-gan").replace(batch_size=batch)
    sampler, stream = make_sampler(cfg, dtype=dtype)
    x = sampler.data()
    expected = philox.normal(batch, 3, 101, 4.0, 1.25, dtype=dtype).view(batch, 1)
    assert x.shape == (batch, 1) and x.dtype == dtype
    assert torch.equal(x, expected)
    assert stream.offset == 101 + batch + batch % 2  # K = 1 draws no component words
    # the next draw continues the stream
    y = sampler.data()
    assert torch.equal(y, philox.normal(batch, 3, 101 + batch + batch % 2, 4.0, 1.25, dtype=dtype).view(batch, 1))


def test_sampler_multidimensional_normal_data_is_row_major():
    cfg = load_preset("how-to-gan").replace(
        batch_size=5, data={"kind": "normal", "mean": [1.0, -2.0, 0.5], "std": [0.5, 2.0, 1.0]},
        **{"noise.dim": 3})
    sampler, stream = make_sampler(cfg)
    x = sampler.data()
    z = philox.normal(15, 3, 101, 0.0, 1.0, dtype=torch.float64).view(5, 3)
    expected = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + torch.tensor([0.5, 2.0, 1.0],
                                                                                   dtype=torch.float64) * z
    assert torch.equal(x, expected)
    assert stream.offset == 101 + 16


def test_sampler_mixture_components_follow_weights():
    weights = [0.2, 0.5, 0.3]
    centers = [-10.0, 0.0, 10.0]
    n = 20000
    cfg = load_preset("how-to-gan").replace(
        batch_size=n, data={"kind": "mixture", "centers": [[c] for c in centers], "std": 0.1, "weights": weights})
    sampler, stream = make_sampler(cfg, seed=12345, offset=0)
    x = sampler.data()[:, 0]
    assert stream.offset == n + n  # n component words, then n normals (n even)
    comp = torch.bucketize(x, torch.tensor([-5.0, 5.0], dtype=torch.float64))
    counts = torch.bincount(comp, minlength=3).double()
    expected = torch.tensor(weights, dtype=torch.float64) * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 13.8, f"chi-square {chi2:.2f} (2 dof, p = 0.001 at 13.8); counts {counts.tolist()}"
    # samples sit on their centres with the configured std
    for k, c in enumerate(centers):
        xs = x[comp == k]
        assert abs(float(xs.mean()) - c) < 0.01 and abs(float(xs.std()) - 0.1) < 0.01
    # the component of sample i is decided by word i: 24-bit fraction against the cumulative weights
    u = (philox.philox_words(12345, 0, n) >> 8).double() * 2.0 ** -24
    cum = torch.cumsum(torch.tensor(weights, dtype=torch.float64), 0)
    assert torch.equal(comp, (u >= cum[0]).long() + (u >= cum[1]).long())
    # and its normal comes after the n component words
    z = philox.normal(n, 12345, n, 0.0, 1.0, dtype=torch.float64)
    assert torch.equal(x, torch.tensor(centers, dtype=torch.float64)[comp] + 0.1 * z)


def test_sampler_ring_uses_2d_centres():
    cfg = load_preset("ring8").replace(batch_size=4000)
    sampler, stream = make_sampler(cfg, seed=1, offset=0)
    x = sampler.data()
    assert x.shape == (4000, 2)
    radius = x.norm(dim=1)
    assert float((radius - 2.0).abs().max()) < 0.2
    angle = torch.atan2(x[:, 1], x[:, 0])
    mode = torch.round(angle / (2 * math.pi / 8)).long() % 8
    counts = torch.bincount(mode, minlength=8).double()
    chi2 = float(((counts - 500) ** 2 / 500).sum())
    assert chi2 < 24.3  # 7 dof, p = 0.001
    assert stream.offset == 4000 + 8000


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sampler_uniform_noise_is_the_philox_uniform_stream(dtype):
    cfg = load_preset("how-to-gan").replace(batch_size=5, noise={"kind": "uniform", "dim": 2, "low": -1.0,
                                                                 "high": 3.0})
    sampler, stream = make_sampler(cfg, dtype=dtype)
    z = sampler.noise()
    assert z.shape == (5, 2) and z.dtype == dtype
    assert torch.equal(z, philox.uniform(10, 3, 101, -1.0, 3.0, dtype=dtype).view(5, 2))
    assert stream.offset == 111
    assert torch.equal(sampler.noise(), philox.uniform(10, 3, 111, -1.0, 3.0, dtype=dtype).view(5, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sampler_normal_noise_is_the_philox_normal_stream(dtype):
    cfg = load_preset("ring8").replace(batch_size=5, noise={"kind": "normal", "dim": 3, "mean": 0.5, "std": 2.0})
    sampler, stream = make_sampler(cfg, dtype=dtype)
    z = sampler.noise()
    assert z.shape == (5, 3)
    assert torch.equal(z, philox.normal(15, 3, 101, 0.5, 2.0, dtype=dtype).view(5, 3))
    assert stream.offset == 101 + 16  # 15 normals use 8 word pairs


# --- MemberTrainer: resume from a GanState ---------------------------------------------------

RESUME_CONFIGS = {
    "sgd-momentum-moments": ("devnag", {"d_steps": 3, "g_steps": 2}),
    "adam-steplr": ("how-to-gan", {"optimizer_d.step_lr": {"step_size": 3, "gamma": 0.5},
                                   "optimizer_g.step_lr": {"step_size": 5, "gamma": 0.2}}),
    "adam-dropout": ("vanilla", {"d_steps": 2}),
    "sgd-momentum-0-steplr": ("ring8", {"optimizer_d": {"kind": "sgd", "lr": 0.01, "momentum": 0.0,
                                                        "step_lr": {"step_size": 2, "gamma": 0.5}},
                                        "optimizer_g": {"kind": "sgd", "lr": 0.01, "momentum": 0.5}}),
}


def resume_cfg(name):
    preset, overrides = RESUME_CONFIGS[name]
    return load_preset(preset).replace({"dtype": "float64", "batch_size": 16, "population": 2, **overrides})


def assert_states_close(a: GanState, b: GanState, tol: float):
    for name, t in a.tensors().items():
        other = getattr(b, name)
        if t.is_floating_point() and name != "lrs":
            blocks = 2 if name in ("g_opt", "d_opt") else 1  # momentum / exp_avg, then exp_avg_sq
            assert rel_err(t, other, blocks) <= tol, f"{name}: {rel_err(t, other, blocks):.3e}"
        else:
            assert torch.equal(t, other), name


@pytest.mark.parametrize("name", list(RESUME_CONFIGS))
def test_train_reference_5_plus_5_equals_10(name):
    """train_reference recreates torch optimizers and schedulers on every call; the optimizer
    state it writes back (momentum buffers, Adam moments and step) and the StepLR replay make
    two calls of 5 epochs the same as one of 10 (float64, to 1e-12)."""
    cfg = resume_cfg(name)
    a = init_state(cfg)
    b = a.clone()
    m_a = train_reference(cfg, a, 10)
    train_reference(cfg, b, 5)
    assert b.epochs.tolist() == [5, 5]
    m_b = train_reference(cfg, b, 5)
    assert_states_close(a, b, 1e-12)
    assert rel_err(m_a, m_b, m_a.shape[1]) <= 1e-12


def test_train_reference_writes_back_optimizer_state():
    cfg = resume_cfg("adam-steplr")
    s = init_state(cfg)
    train_reference(cfg, s, 2)
    nG, nD = cfg.g_spec.num_params, cfg.d_spec.num_params
    for opt, n in ((s.g_opt, nG), (s.d_opt, nD)):
        assert opt[:, :n].abs().sum() > 0           # exp_avg
        assert (opt[:, n:] > 0).any() and (opt[:, n:] >= 0).all()   # exp_avg_sq
    # resuming puts them back, with Adam's step count = epochs * steps
    trainer = MemberTrainer(cfg, s, 1)
    st = trainer.d_opt.state[trainer.D.params]
    assert float(st["step"]) == 2 * cfg.d_steps
    assert torch.equal(st["exp_avg"], s.d_opt[1, :nD]) and torch.equal(st["exp_avg_sq"], s.d_opt[1, nD:])
    sgd = resume_cfg("sgd-momentum-moments")
    s = init_state(sgd)
    train_reference(sgd, s, 1)
    assert s.g_opt[:, :sgd.g_spec.num_params].abs().sum() > 0
    assert not s.g_opt[:, sgd.g_spec.num_params:].any()  # SGD uses the first half only


def test_steplr_replay_on_resume_gives_the_uninterrupted_lr():
    cfg = load_preset("how-to-gan").replace({
        "dtype": "float64", "batch_size": 4,
        "optimizer_d.step_lr": {"step_size": 3, "gamma": 0.5},
        "optimizer_g.step_lr": {"step_size": 2, "gamma": 0.3}})
    state = init_state(cfg)
    running = MemberTrainer(cfg, state, 0)  # never interrupted
    for epoch in range(1, 11):
        running.train(1)
        assert int(state.epochs[0]) == epoch
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the replay does not warn about step order
            resumed = MemberTrainer(cfg, state.clone(), 0)
        for opt_r, opt_u, o in ((resumed.d_opt, running.d_opt, cfg.optimizer_d),
                                (resumed.g_opt, running.g_opt, cfg.optimizer_g)):
            lr = opt_r.param_groups[0]["lr"]
            assert lr == opt_u.param_groups[0]["lr"]
            base = o.lr
            for _ in range(epoch // o.step_lr.step_size):
                base *= o.step_lr.gamma
            assert lr == base, (epoch, lr, base)  # the engine's scheduled_lr, bit for bit
