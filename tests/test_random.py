"""Tests of the reference Philox stream and its transforms (docs/design.md, "Philox4x32-10")."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from ganfast.random import (
    _philox_block,
    dropout_mask,
    normal,
    philox_words,
    uniform,
    words_for_normal,
    words_for_uniform,
)

MASK = 0xFFFFFFFF


def scalar_philox(counter, key):
    """Philox4x32-10 on Python ints, written independently of the tensor code."""
    c, (k0, k1) = list(counter), key
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & MASK, (k1 + 0xBB67AE85) & MASK
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & MASK, (p0 >> 32) ^ c[3] ^ k1, p0 & MASK]
    return c


def scalar_word(seed, i):
    b = i // 4
    return scalar_philox((b & MASK, b >> 32, 0, 0), (seed & MASK, seed >> 32))[i % 4]


# Random123 kat_vectors, philox4x32_10.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK, MASK, MASK, MASK), (MASK, MASK), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


# --- the block function and the stream -----------------------------------------------------

@pytest.mark.parametrize("counter,key,expected", KAT)
def test_known_answer_vectors(counter, key, expected):
    args = [torch.tensor(v, dtype=torch.int64) for v in (*counter, *key)]
    assert [int(v) for v in _philox_block(*args)] == list(expected)
    assert scalar_philox(counter, key) == list(expected)


def test_block_is_vectorised_over_counters():
    gen = torch.Generator().manual_seed(0)
    cols = [torch.randint(0, 1 << 32, (64,), generator=gen, dtype=torch.int64) for _ in range(6)]
    out = torch.stack(_philox_block(*cols), dim=1)
    for row in range(64):
        c = [int(col[row]) for col in cols]
        assert out[row].tolist() == scalar_philox(c[:4], c[4:])


@pytest.mark.parametrize(
    "seed,offset",
    [(0, 0), (1, 3), (0xDEADBEEF, 17), ((1 << 40) + 5, 2), ((1 << 63) - 1, 1 << 34), (7, (1 << 63) - 9)],
)
def test_words_follow_the_stream_layout(seed, offset):
    """Word i is lane i % 4 of block i // 4; covers high counter and key halves."""
    words = philox_words(seed, offset, 9)
    assert words.dtype == torch.int64
    assert words.tolist() == [scalar_word(seed, offset + i) for i in range(9)]


def test_words_are_uint32():
    words = philox_words(3, 0, 4096)
    assert int(words.min()) >= 0 and int(words.max()) <= MASK
    assert int(words.max()) >= 1 << 31  # the top bit is actually used


@pytest.mark.parametrize("k", range(9))
def test_offset_replays_tail_of_stream(k):
    full = philox_words(42, 0, 40)
    assert torch.equal(philox_words(42, k, 40 - k), full[k:])


def test_seeds_give_different_streams():
    assert not torch.equal(philox_words(1, 0, 16), philox_words(2, 0, 16))
    assert not torch.equal(philox_words(1, 0, 16), philox_words(1 + (1 << 32), 0, 16))


def test_zero_words():
    assert philox_words(1, 5, 0).shape == (0,)
    assert uniform(0, 1, 5).shape == (0,)
    assert normal(0, 1, 5).shape == (0,)


# --- uniform ---------------------------------------------------------------------------------

def test_uniform_float32_is_the_documented_formula():
    low, high = -1.5, 2.25
    words = philox_words(9, 4, 1000).numpy()
    u = (words >> 8).astype(np.float32) * np.float32(2.0 ** -24)
    expected = u * np.float32(high - low) + np.float32(low)
    got = uniform(1000, 9, 4, low, high)
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), expected)


def test_uniform_float64_is_the_documented_formula():
    low, high = -3.0, 0.1
    words = philox_words(9, 4, 1000).numpy()
    expected = words.astype(np.float64) * 2.0 ** -32 * (high - low) + low
    got = uniform(1000, 9, 4, low, high, dtype=torch.float64)
    assert got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("low,high", [(0.0, 1.0), (-2.0, 3.0)])
def test_uniform_range_and_distribution(dtype, low, high):
    x = uniform(100_000, 2024, 11, low, high, dtype=dtype)
    assert x.dtype == dtype
    assert float(x.min()) >= low and float(x.max()) < high
    assert stats.kstest(x.double().numpy(), "uniform", args=(low, high - low)).pvalue > 1e-3


def test_uniform_consumes_one_word_each():
    assert words_for_uniform(7) == 7
    assert torch.equal(uniform(10, 5, 0)[3:], uniform(7, 5, 3))


# --- normal ----------------------------------------------------------------------------------

def test_normal_is_box_muller_on_word_pairs():
    mean, std, n = 0.5, 2.0, 7
    words = [scalar_word(13, 6 + i) for i in range(8)]
    expected = []
    for k in range(n):
        a, b = words[2 * (k // 2)], words[2 * (k // 2) + 1]
        r = math.sqrt(-2.0 * math.log((a + 1) * 2.0 ** -32))
        trig = math.cos if k % 2 == 0 else math.sin
        expected.append(mean + std * r * trig(2 * math.pi * b * 2.0 ** -32))
    got = normal(n, 13, 6, mean, std, dtype=torch.float64)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-14, atol=1e-14)


def test_normal_float32_is_rounded_float64():
    assert torch.equal(normal(101, 4, 2), normal(101, 4, 2, dtype=torch.float64).float())


def test_normal_word_accounting():
    assert [words_for_normal(n) for n in range(5)] == [0, 2, 2, 4, 4]
    full = normal(10, 8, 0, dtype=torch.float64)
    assert torch.equal(normal(5, 8, 0, dtype=torch.float64), full[:5])
    # 3 normals consume 4 words, so the next draw starts at offset 4.
    assert torch.equal(normal(6, 8, words_for_normal(3), dtype=torch.float64), full[4:])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (-1.5, 0.25)])
def test_normal_distribution(dtype, mean, std):
    x = normal(100_000, 77, 3, mean, std, dtype=dtype)
    assert x.dtype == dtype and bool(torch.isfinite(x).all())
    assert stats.kstest(x.double().numpy(), "norm", args=(mean, std)).pvalue > 1e-3


# --- dropout mask ----------------------------------------------------------------------------

def test_dropout_mask_layout():
    batch, width, p, offset = 5, 7, 0.5, 13
    mask = dropout_mask(batch, width, p, 3, offset)
    assert mask.shape == (batch, width) and mask.dtype == torch.bool
    for n in range(batch):
        for j in range(width):
            word = scalar_word(3, offset + n * width + j)
            assert bool(mask[n, j]) == ((word >> 8) * 2.0 ** -24 >= p)


def test_dropout_mask_keep_rate():
    p = 0.3
    mask = dropout_mask(400, 250, p, 21, 0)
    assert abs(mask.double().mean().item() - (1 - p)) < 0.01


def test_dropout_mask_zero_p_keeps_all():
    assert bool(dropout_mask(10, 10, 0.0, 1, 0).all())


def test_dropout_mask_threshold_is_exact():
    """A unit whose 24-bit fraction equals p exactly is kept (>=), one just above p is dropped."""
    words = philox_words(5, 0, 1)
    p = int(words[0] >> 8) * 2.0 ** -24
    assert bool(dropout_mask(1, 1, p, 5, 0)[0, 0])
    assert not bool(dropout_mask(1, 1, p + 2.0 ** -24, 5, 0)[0, 0])


# --- argument checks -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"seed": -1}, ValueError, r"seed must be in \[0, 2\*\*63\)"),
        ({"seed": 1 << 63}, ValueError, r"seed must be in \[0, 2\*\*63\)"),
        ({"seed": 1.0}, TypeError, "seed must be an integer"),
        ({"seed": True}, TypeError, "seed must be an integer"),
        ({"offset": -4}, ValueError, r"offset must be in \[0, 2\*\*63\)"),
        ({"offset": "3"}, TypeError, "offset must be an integer"),
        ({"n": -1}, ValueError, "n must be >= 0"),
        ({"n": 2.5}, TypeError, "n must be an integer"),
    ],
)
def test_philox_words_rejects_bad_arguments(kwargs, exc, match):
    args = {"seed": 0, "offset": 0, "n": 4, **kwargs}
    with pytest.raises(exc, match=match):
        philox_words(**args)


def test_uniform_rejects_bad_arguments():
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        uniform(4, 0, 0, dtype=torch.float16)
    with pytest.raises(ValueError, match="low <= high"):
        uniform(4, 0, 0, low=1.0, high=0.0)
    with pytest.raises(ValueError, match="high must be finite"):
        uniform(4, 0, 0, high=math.inf)


def test_normal_rejects_bad_arguments():
    with pytest.raises(ValueError, match="std must be > 0"):
        normal(4, 0, 0, std=0.0)
    with pytest.raises(ValueError, match="std must be finite"):
        normal(4, 0, 0, std=math.nan)
    with pytest.raises(ValueError, match="mean must be finite"):
        normal(4, 0, 0, mean=-math.inf)
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        normal(4, 0, 0, dtype=torch.int32)
    with pytest.raises(ValueError, match="n must be >= 0"):
        words_for_normal(-2)


@pytest.mark.parametrize("p", [1.0, -0.1, math.nan, True])
def test_dropout_mask_rejects_bad_probability(p):
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        dropout_mask(2, 2, p, 0, 0)


def test_dropout_mask_rejects_bad_shape():
    with pytest.raises(ValueError, match="width must be >= 0"):
        dropout_mask(2, -1, 0.5, 0, 0)
