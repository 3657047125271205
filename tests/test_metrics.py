"""ganfast.metrics: batched W1 / KS / moments of samples against a Gaussian-mixture target.

Oracles: scipy (the KS statistic of scipy.stats.kstest with the same CDF; exact normal
quantiles), a bisection of the mixture CDF to 1e-13 (the mixture quantiles), and the numpy
implementation that ganfast.app.report had before metrics.py replaced it (kept below, verbatim,
as an oracle only): on mixtures the two compute the same numbers (same grid, same interpolation)
and agree to <= 1e-12 relative.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import ganfast
from ganfast import metrics
from ganfast.gan import MixtureSpec


# --- the numpy implementation metrics.py replaced (ganfast/app/report.py until issue 13) -------

def _legacy_cdf(x, centers, stds, weights):
    x = torch.as_tensor(np.asarray(x, float))
    out = torch.zeros_like(x)
    for c, s, w in zip(centers, stds, weights):
        out += float(w) * torch.special.ndtr((x - float(c)) / float(s))
    return out.numpy()


def _legacy_ppf(q, centers, stds, weights):
    lo, hi = float(np.min(centers - 10 * stds)), float(np.max(centers + 10 * stds))
    n = int(np.clip(math.ceil(20 * (hi - lo) / stds.min()), 4097, 200_001))
    grid = np.linspace(lo, hi, n)
    return np.interp(q, np.maximum.accumulate(_legacy_cdf(grid, centers, stds, weights)), grid)


def _legacy_w1_ks(xs, centers, stds, weights):
    xs = np.sort(xs)
    m = len(xs)
    if m == 0:
        return math.nan, math.nan
    i = np.arange(m)
    w1 = float(np.mean(np.abs(xs - _legacy_ppf((i + 0.5) / m, centers, stds, weights))))
    f = _legacy_cdf(xs, centers, stds, weights)
    ks = float(max(np.max(f - i / m), np.max((i + 1) / m - f)))
    return w1, ks


# --- targets ---------------------------------------------------------------------------------

def ring(k=8, r=2.0, std=0.05):
    a = [2 * math.pi * i / k for i in range(k)]
    return MixtureSpec(tuple((r * math.cos(t), r * math.sin(t)) for t in a), (std, std))


NORMAL = MixtureSpec(((4.0,),), (1.25,))
BIMODAL = MixtureSpec(((-2.0,), (3.0,)), (0.7,), (0.3, 0.7))
GRID = MixtureSpec(tuple((float(i), float(j)) for i in range(-2, 3) for j in range(-2, 3)), (0.1, 0.2))


def draw(spec: MixtureSpec, P: int, n: int, seed: int, shift=0.0, scale=1.0) -> torch.Tensor:
    """(P, n, dim) float64 samples of the mixture, stretched and moved (`shift`: a number, or one
    per member)."""
    g = torch.Generator().manual_seed(seed)
    c = torch.tensor(spec.centers, dtype=torch.float64)
    comp = torch.multinomial(torch.tensor(spec.weights), P * n, replacement=True, generator=g)
    x = c[comp] + torch.tensor(spec.std, dtype=torch.float64) * torch.randn(P * n, len(spec.std), generator=g,
                                                                            dtype=torch.float64)
    shift = torch.as_tensor(shift, dtype=torch.float64).reshape(-1, 1, 1)
    return x.view(P, n, -1) * scale + shift


def _exact_mixture_ppf(q: np.ndarray, centers, stds, weights) -> np.ndarray:
    """Bisection of the exact mixture CDF, to 1e-13 absolute."""
    lo = np.full_like(q, float(np.min(centers - 40 * stds)))
    hi = np.full_like(q, float(np.max(centers + 40 * stds)))
    while float(np.max(hi - lo)) > 1e-13:
        mid = 0.5 * (lo + hi)
        below = _legacy_cdf(mid, centers, stds, weights) < q
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


# --- agreement with the oracles ------------------------------------------------------------

@pytest.mark.parametrize("target", [BIMODAL, ring(), GRID], ids=["bimodal", "ring8", "grid25"])
def test_mixtures_agree_with_the_numpy_implementation_it_replaced(target):
    x = draw(target, 3, 2000, 1, shift=[-0.1, 0.0, 0.1], scale=1.1)  # both sides of the KS statistic
    m = metrics.distances(x, target)
    mix = metrics.as_mixture(target)
    for p in range(3):
        for d in range(mix.dim):
            c, s, w = mix.centers[:, d].numpy(), mix.stds[:, d].numpy(), mix.weights.numpy()
            w1, ks = _legacy_w1_ks(x[p, :, d].numpy(), c, s, w)
            assert float(m["w1"][p, d]) == pytest.approx(w1, rel=1e-12, abs=0)
            assert float(m["ks"][p, d]) == pytest.approx(ks, rel=1e-12, abs=0)


@pytest.mark.parametrize("target", [NORMAL, BIMODAL, ring(), GRID], ids=["normal", "bimodal", "ring8", "grid25"])
def test_ks_is_scipys(target):
    x = draw(target, 2, 3000, 2, shift=[-0.05, 0.05])
    m = metrics.distances(x, target)
    mix = metrics.as_mixture(target)
    for p in range(2):
        for d in range(mix.dim):
            c, s, w = mix.centers[:, d].numpy(), mix.stds[:, d].numpy(), mix.weights.numpy()
            cdf = lambda v: _legacy_cdf(v, c, s, w)  # noqa: E731
            assert float(m["ks"][p, d]) == pytest.approx(stats.kstest(x[p, :, d].numpy(), cdf).statistic, rel=1e-12)


def test_w1_of_a_normal_uses_its_exact_quantiles():
    x = draw(NORMAL, 2, 5000, 3, shift=0.3, scale=0.9)
    m = metrics.distances(x, NORMAL)
    n = x.shape[1]
    q = stats.norm.ppf((np.arange(n) + 0.5) / n, loc=4.0, scale=1.25)
    for p in range(2):
        expected = np.mean(np.abs(np.sort(x[p, :, 0].numpy()) - q))
        assert float(m["w1"][p, 0]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("target", [BIMODAL, ring(), GRID], ids=["bimodal", "ring8", "grid25"])
def test_mixture_quantiles_are_within_the_stated_error(target):
    """The grid's quantiles against a bisection: off by < 5e-4 of the smallest std (measured: at
    most 2.9e-4, the 8-ring), and W1 by < 2e-5 of it (measured: at most 6e-6), far below W1's
    sampling noise (std / sqrt(n): 7e-3 std here)."""
    mix = metrics.as_mixture(target)
    n = 20000
    q = (np.arange(n) + 0.5) / n
    x = draw(target, 1, n, 4)
    for d in range(mix.dim):
        c, s, w = mix.marginal(d)
        exact = _exact_mixture_ppf(q, c.numpy(), s.numpy(), w.numpy())
        grid = metrics.mixture_ppf(torch.tensor(q), c, s, w).numpy()
        smallest = float(s.min())
        assert np.max(np.abs(grid - exact)) < 5e-4 * smallest
        xs = np.sort(x[0, :, d].numpy())
        w1_exact = np.mean(np.abs(xs - exact))
        assert abs(float(metrics.distances(x, target)["w1"][0, d]) - w1_exact) < 2e-5 * smallest


def test_moments_and_shapes():
    x = draw(ring(), 4, 1000, 5)
    m = metrics.distances(x, ring())
    assert {k: tuple(v.shape) for k, v in m.items()} == {
        "w1": (4, 2), "ks": (4, 2), "mean": (4, 2), "std": (4, 2), "n_nonfinite": (4,), "diverged": (4,)}
    torch.testing.assert_close(m["mean"], x.mean(1), rtol=0, atol=1e-14)
    torch.testing.assert_close(m["std"], x.std(1, unbiased=False), rtol=1e-13, atol=0)
    one = metrics.distances(x[2], ring())
    assert one["w1"].shape == (2,) and one["n_nonfinite"].shape == ()
    for key in ("w1", "ks", "mean", "std"):
        torch.testing.assert_close(one[key], m[key][2], rtol=1e-14, atol=0)


def test_a_member_is_judged_on_its_own_samples():
    """A member's distances do not depend on the members around it (nor on the chunking)."""
    x = draw(BIMODAL, 5, 700, 6, shift=0.2)
    whole = metrics.distances(x, BIMODAL)
    for p in range(5):
        alone = metrics.distances(x[p:p + 1], BIMODAL)
        for key in ("w1", "ks", "mean", "std"):
            torch.testing.assert_close(alone[key][0], whole[key][p], rtol=1e-14, atol=0)


def test_chunks_of_members_give_the_same_values(monkeypatch):
    x = draw(ring(), 9, 300, 7, shift=0.1)
    whole = metrics.distances(x, ring())
    monkeypatch.setattr(metrics, "_CHUNK_VALUES", 2 * 300 * 2)  # two members per chunk
    chunked = metrics.distances(x, ring())
    for key in whole:
        torch.testing.assert_close(chunked[key], whole[key], rtol=1e-14, atol=0)


def test_non_finite_samples_are_counted_and_left_out():
    x = draw(BIMODAL, 4, 500, 8)
    clean = metrics.distances(x[:, :400], BIMODAL)
    bad = x.clone()
    bad[0, 400:] = math.nan
    bad[1, 400:410] = math.inf
    bad[1, 410:] = x[1, 410:]
    bad[2] = math.nan  # no finite sample at all: a diverged member
    bad[3, 400:] = -math.inf
    m = metrics.distances(bad[:, torch.cat((torch.arange(400, 500), torch.arange(400)))], BIMODAL)
    assert m["n_nonfinite"].tolist() == [100, 10, 500, 100]
    assert m["diverged"].tolist() == [False, False, True, False]
    for key in ("w1", "ks", "mean", "std"):
        assert bool(torch.isnan(m[key][2]).all()), key
        for p in (0, 3):
            torch.testing.assert_close(m[key][p], clean[key][p], rtol=1e-12, atol=0)
    with_rest = metrics.distances(torch.cat((x[1:2, :400], x[1:2, 410:]), 1), BIMODAL)
    torch.testing.assert_close(m["w1"][1], with_rest["w1"][0], rtol=1e-12, atol=0)


def test_a_row_with_one_bad_coordinate_is_left_out_whole():
    x = draw(ring(), 1, 200, 9)
    bad = x.clone()
    bad[0, 0, 1] = math.nan
    m = metrics.distances(bad, ring())
    ref = metrics.distances(x[:, 1:], ring())
    assert int(m["n_nonfinite"][0]) == 1
    torch.testing.assert_close(m["w1"], ref["w1"], rtol=1e-12, atol=0)


def test_targets_from_specs_and_configs():
    cfg = ganfast.load_preset("ring8")
    x = draw(cfg.gan_spec.data, 2, 100, 10)
    a = metrics.distances(x, cfg)
    b = metrics.distances(x, cfg.gan_spec)
    c = metrics.distances(x, cfg.gan_spec.data)
    for key in a:
        assert torch.equal(a[key], b[key]) and torch.equal(b[key], c[key])


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="samples have 1 dimensions but the target has 2"):
        metrics.distances(torch.zeros(10, 1), ring())
    with pytest.raises(ValueError, match=r"samples must be \(P, n, dim\) or \(n, dim\)"):
        metrics.distances(torch.zeros(3, 0, 2), ring())
    with pytest.raises(TypeError, match="the target must be"):
        metrics.distances(torch.zeros(10, 1), "normal")
    with pytest.raises(ValueError, match="a mixture needs"):
        metrics.Mixture([[0.0]], [-1.0], [1.0])


def test_samples_far_off_target_give_large_distances():
    x = draw(NORMAL, 1, 4000, 11, shift=3.0)
    m = metrics.distances(x, NORMAL)
    assert float(m["w1"][0, 0]) == pytest.approx(3.0, rel=0.05)
    assert float(m["ks"][0, 0]) == pytest.approx(2 * stats.norm.cdf(1.5 / 1.25) - 1, abs=0.03)
