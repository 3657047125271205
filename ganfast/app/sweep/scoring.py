"""Scoring a population on fresh samples, and the sweep's statistics of the scores.

Every evaluation samples every member with the same noise (`ganfast.sample`: one fused
population forward, G's dropout as trained) from the Philox stream
`eval_seed(sweep seed, evaluation index)`, and measures the samples against the spec's target
in one batched op (`ganfast.metrics`): per member W1 (the mean over dimensions of each
marginal's exact Wasserstein-1), KS (the largest marginal KS statistic), the mean and std per
dimension, and the count of non-finite samples (excluded from the distances; none finite: NaN).
A member's scores depend on its parameters, the sample count and the noise seed only: not on the
population around it, the ranks or the threads.

A member has *converged* when its final W1 is below a threshold (`--w1`, in the target's units;
W1 divided by the target's std is reported beside it, so that targets of other scales compare),
and matches the *moments* when its mean and std are within `MOMENT_TOLERANCE` of the target's in
every dimension.
"""
from __future__ import annotations

import math
import statistics

import torch

import ganfast
from ganfast.random import derived_seed

#: The noise of evaluation k: derived_seed(sweep seed, EVAL_NOISE_SHIFT + k).
EVAL_NOISE_SHIFT = 4_000_037
#: The moments criterion: |mean - target mean| and |std - target std| below this, every dimension.
MOMENT_TOLERANCE = 0.1
SCORES = ("w1", "ks", "mean", "std", "nonfinite")


def eval_seed(seed: int, index: int) -> int:
    """The noise seed of evaluation `index` (0-based) of a sweep with seed `seed`."""
    return derived_seed(seed, EVAL_NOISE_SHIFT + int(index))


@torch.no_grad()
def score(spec, state, n: int, noise_seed: int) -> dict:
    """Scores of every member of `state` on n samples: {w1, ks: (P,), mean, std: (P, dim),
    nonfinite: (P,)}, float64 / int64 on the CPU."""
    samples = ganfast.sample(spec, state, n, noise_seed=noise_seed)
    m = ganfast.metrics.distances(samples, spec)
    return {"w1": m["w1"].mean(-1).cpu(), "ks": m["ks"].amax(-1).cpu(), "mean": m["mean"].cpu(),
            "std": m["std"].cpu(), "nonfinite": m["n_nonfinite"].cpu()}


def target_moments(spec) -> tuple:
    """(mean, std) per dimension of the spec's target mixture, float64 tensors (dim,)."""
    data = spec.data
    c = torch.tensor(data.centers, dtype=torch.float64)
    w = torch.tensor(data.weights, dtype=torch.float64)[:, None]
    s = torch.tensor(data.std, dtype=torch.float64)
    mean = (w * c).sum(0)
    return mean, ((w * (c * c + s * s)).sum(0) - mean * mean).clamp_min(0).sqrt()


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple:
    """The Wilson score interval of a binomial proportion k/n (what
    scipy.stats.binomtest(k, n).proportion_ci(method="wilson") gives)."""
    if n == 0:
        return (math.nan, math.nan)
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))
