"""Tests of ganfast.quality: the digit classifier and the score of generated digits."""
import pytest
import torch

from ganfast.app.datasets import load_digits
from ganfast.app.quality import digit_classifier, score_digits

pytest.importorskip("sklearn")


def test_classifier_is_accurate_on_held_out_digits():
    model, accuracy = digit_classifier()
    assert accuracy >= 0.93
    assert not model.training


def test_real_digits_score_high():
    d = load_digits()
    q = score_digits(d.images)
    assert q["confident"] >= 0.9 and q["spread"] >= 0.99 and q["classes_covered"] == 10
    assert sum(q["class_counts"]) == len(d.images)


def test_one_repeated_digit_is_mode_collapse():
    d = load_digits()
    zero = d.images[d.labels == 0][:1].repeat(300, 1, 1, 1)
    q = score_digits(zero)
    assert q["class_counts"][0] == 300 and q["spread"] == 0.0 and q["classes_covered"] == 1
    assert q["confident"] == 1.0


def test_noise_is_not_confident():
    q = score_digits(torch.rand(500, 64, generator=torch.Generator().manual_seed(0)))
    assert q["confident"] < 0.6


def test_errors():
    with pytest.raises(ValueError, match="at least one image"):
        score_digits(torch.zeros(0, 64))
    with pytest.raises(ValueError, match=r"scores 8x8 digits.*got shape \(3, 7\)"):
        score_digits(torch.zeros(3, 7))
