"""A cheap quality figure for generated 8x8 digits: a small classifier trained on the real
digits (scikit-learn's, ganfast.app.datasets.load_digits) scores the samples.

Two numbers, the way an Inception Score reads but without its network: `confident` is the
share of samples the classifier puts in one class with probability >= CONFIDENCE (do they
look like digits at all?), `spread` the entropy of the predicted classes over log(10) (1 when
every digit is generated equally often, 0 when one digit is all G makes: mode collapse).
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from ganfast.app.datasets import load_digits

CONFIDENCE = 0.9
HOLDOUT = 297        # the last images of the data set are held out to measure the accuracy
TRAIN_STEPS = 400    # full-batch Adam steps: with the set-up, about 2 s on one core


class DigitClassifier(nn.Module):
    """64 -> 128 -> 10 ReLU MLP on 8x8 digits with pixels in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@functools.lru_cache(maxsize=1)
def digit_classifier() -> tuple:
    """(classifier in eval mode, held-out accuracy), trained once per process, deterministic."""
    data = load_digits()
    x, y = data.images, data.labels
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=gen)  # the data set is ordered by writer: shuffle
    x, y = x[perm], y[perm]
    xt, yt, xh, yh = x[:-HOLDOUT], y[:-HOLDOUT], x[-HOLDOUT:], y[-HOLDOUT:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    with torch.enable_grad():  # callers may be under no_grad (score_digits is)
        for _ in range(TRAIN_STEPS):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt), yt).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(xh).argmax(1) == yh).double().mean())
    return model, accuracy


@torch.no_grad()
def score_digits(images: torch.Tensor) -> dict:
    """{confident, spread, classes_covered, class_counts, classifier_accuracy} of (N, 1, 8, 8)
    (or (N, 64)) images with pixels in [0, 1]."""
    x = torch.as_tensor(images).detach().to("cpu", torch.float32)
    if x.dim() < 2 or x.shape[1:].numel() != 64:
        raise ValueError(f"score_digits scores 8x8 digits, (N, 1, 8, 8) or (N, 64); got shape {tuple(x.shape)}")
    x = x.reshape(-1, 64)
    if x.shape[0] < 1:
        raise ValueError("score_digits needs at least one image")
    model, accuracy = digit_classifier()
    probs = torch.softmax(model(x.clamp(0, 1)), dim=1)
    p_max, label = probs.max(dim=1)
    counts = torch.bincount(label, minlength=10).double()
    share = counts / counts.sum()
    nz = share[share > 0]
    spread = float(-(nz * nz.log()).sum() / torch.log(torch.tensor(10.0, dtype=torch.float64)))
    return {
        "confident": float((p_max >= CONFIDENCE).double().mean()),
        "spread": spread,
        "classes_covered": int((share >= 0.02).sum()),
        "class_counts": [int(c) for c in counts.tolist()],
        "classifier_accuracy": accuracy,
    }
