"""Philox4x32-10 in pure PyTorch: the reference RNG of ganfast.

Every random number ganfast draws (uniform and normal fills, dropout masks) is a fixed function
of a Philox word stream addressed by ``(seed, offset)``, as fixed in docs/design.md. This module
is the executable form of that contract: the fused C++/CUDA code must reproduce it, and the
PyTorch fallback uses it directly, so both paths draw the same numbers.

Words are carried as int64 tensors holding uint32 values, because PyTorch's unsigned 64-bit
arithmetic is not available for every op and device.
"""
from __future__ import annotations

import math
import operator

import torch

__all__ = [
    "philox_words",
    "uniform",
    "normal",
    "dropout_mask",
    "words_for_uniform",
    "words_for_normal",
]

_MASK32 = 0xFFFFFFFF
_M0, _M1 = 0xD2511F53, 0xCD9E8D57  # round multipliers
_W0, _W1 = 0x9E3779B9, 0xBB67AE85  # key schedule (Weyl) increments
_ROUNDS = 10
_INT64_LIMIT = 1 << 63  # seeds and offsets travel through int64 op arguments

_FLOAT_DTYPES = (torch.float32, torch.float64)


# --- argument checks -----------------------------------------------------------------------

def _as_int(value, name: str) -> int:
    """Accept Python/NumPy/0-d tensor integers but not bools, which are almost always a bug."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None


def _check_seed(seed) -> int:
    seed = _as_int(seed, "seed")
    if not 0 <= seed < _INT64_LIMIT:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    return seed


def derived_seed(seed: int, shift: int) -> int:
    """The seed of a stream set aside from `seed` (fixed noise batches, data order): seed + shift,
    wrapped into the seed range [0, 2**63)."""
    return (int(seed) + int(shift)) % _INT64_LIMIT


#: Streams set aside from a run's seed, derived_seed(seed, shift): the fixed noise batch that the
#: animation frames and sample grids are drawn from, the noise of the final samples (summaries,
#: the digits' quality score), the order of an image data set's epochs, and the dropout masks of
#: ganfast.sample (from its noise_seed).
FIXED_NOISE_SHIFT = 1_000_003
FINAL_NOISE_SHIFT = 2_000_003
DATA_ORDER_SHIFT = 3_000_017
SAMPLE_DROPOUT_SHIFT = 4_000_037


def _check_offset(offset) -> int:
    offset = _as_int(offset, "offset")
    if not 0 <= offset < _INT64_LIMIT:
        raise ValueError(f"offset must be in [0, 2**63), got {offset}")
    return offset


def _check_count(n, name: str = "n") -> int:
    n = _as_int(n, name)
    if n < 0:
        raise ValueError(f"{name} must be >= 0, got {n}")
    return n


def _check_finite(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_dtype(dtype) -> torch.dtype:
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return dtype


# --- the block function --------------------------------------------------------------------

def _mulhilo(m: int, x: torch.Tensor):
    """(lo, hi) 32-bit halves of the 64-bit product m * x, exactly, in int64 arithmetic.

    m * x can reach 2**64 and would overflow int64, so x is split into 16-bit halves: each
    partial product stays below 2**48 and the carries are recombined by hand.
    """
    p_lo = m * (x & 0xFFFF)  # < 2**48
    p_hi = m * (x >> 16)  # < 2**48, weight 2**16
    t = p_lo + ((p_hi & 0xFFFF) << 16)  # < 2**49: the low 48 bits of the product plus carry
    return t & _MASK32, (p_hi >> 16) + (t >> 32)


def _philox_block(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter (c0, c1, c2, c3) under key (k0, k1).

    Arguments are int64 tensors (or Python ints) holding uint32 values and broadcast together;
    returns the four output lanes as int64 tensors. Kept separate from the stream addressing so
    the known-answer vectors of Random123, which use arbitrary counters, can be checked.
    """
    for r in range(_ROUNDS):
        if r > 0:
            k0 = (k0 + _W0) & _MASK32
            k1 = (k1 + _W1) & _MASK32
        lo0, hi0 = _mulhilo(_M0, c0)
        lo1, hi1 = _mulhilo(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def philox_words(seed: int, offset: int, n: int, device=None) -> torch.Tensor:
    """Words offset .. offset+n-1 of the Philox stream of `seed`, as int64 uint32 values.

    Only the blocks that cover the requested range are computed, so a draw at any offset costs
    the same as one at zero; this is what lets callers replay a draw from (seed, offset) alone.
    """
    seed, offset, n = _check_seed(seed), _check_offset(offset), _check_count(n)
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=device)
    first_block = offset // 4
    num_blocks = (offset + n - 1) // 4 - first_block + 1
    b = torch.arange(num_blocks, dtype=torch.int64, device=device) + first_block
    zero = torch.zeros_like(b)
    lanes = _philox_block(b & _MASK32, b >> 32, zero, zero, seed & _MASK32, seed >> 32)
    words = torch.stack(lanes, dim=1).reshape(-1)
    start = offset - 4 * first_block
    return words[start:start + n]


# --- transforms of the stream --------------------------------------------------------------

def words_for_uniform(n: int) -> int:
    """Words `uniform(n, ...)` consumes: one per value."""
    return _check_count(n)


def words_for_normal(n: int) -> int:
    """Words `normal(n, ...)` consumes: Box-Muller uses whole pairs, so an odd n wastes one."""
    n = _check_count(n)
    return n + n % 2


def check_uniform_args(n, seed, offset, low, high, dtype):
    """Validated (n, seed, offset, low, high, dtype) of a uniform draw; shared by every backend."""
    dtype = _check_dtype(dtype)
    low, high = _check_finite(low, "low"), _check_finite(high, "high")
    if low > high:
        raise ValueError(f"uniform needs low <= high, got low={low}, high={high}")
    return _check_count(n), _check_seed(seed), _check_offset(offset), low, high, dtype


def check_normal_args(n, seed, offset, mean, std, dtype):
    """Validated (n, seed, offset, mean, std, dtype) of a normal draw; shared by every backend."""
    dtype = _check_dtype(dtype)
    mean, std = _check_finite(mean, "mean"), _check_finite(std, "std")
    if std <= 0:
        raise ValueError(f"std must be > 0, got {std}")
    return _check_count(n), _check_seed(seed), _check_offset(offset), mean, std, dtype


def uniform(n: int, seed: int, offset: int, low: float = 0.0, high: float = 1.0,
            dtype=torch.float32, device=None) -> torch.Tensor:
    """n uniforms in [low, high) from words offset .. offset+n-1 (docs/design.md).

    float32 uses the top 24 bits of each word, so `u` is exact and every value is one float32
    multiply and one float32 add; that keeps the fused kernels bitwise equal to this code.
    """
    n, seed, offset, low, high, dtype = check_uniform_args(n, seed, offset, low, high, dtype)
    w = philox_words(seed, offset, n, device=device)
    if dtype == torch.float32:
        u = (w >> 8).to(torch.float32) * 2.0 ** -24
        scale = torch.tensor(high - low, dtype=torch.float32, device=w.device)
        shift = torch.tensor(low, dtype=torch.float32, device=w.device)
        return u * scale + shift
    u = w.to(torch.float64) * 2.0 ** -32
    return u * (high - low) + low


def normal(n: int, seed: int, offset: int, mean: float = 0.0, std: float = 1.0,
           dtype=torch.float32, device=None) -> torch.Tensor:
    """n normals N(mean, std**2) by Box-Muller on word pairs from `offset` (docs/design.md).

    Computed in float64 and rounded once to `dtype`, so float32 results differ from the fused
    kernels' by at most one rounding. std must be finite and > 0: a zero std is a constant
    fill, which callers should write as one rather than spend random words on.
    """
    n, seed, offset, mean, std, dtype = check_normal_args(n, seed, offset, mean, std, dtype)
    w = philox_words(seed, offset, words_for_normal(n), device=device)
    a, b = w[0::2], w[1::2]
    u1 = (a + 1).to(torch.float64) * 2.0 ** -32  # in (0, 1]: log never sees 0
    u2 = b.to(torch.float64) * 2.0 ** -32
    r = torch.sqrt(-2.0 * torch.log(u1))
    theta = 2.0 * math.pi * u2
    z = torch.stack((r * torch.cos(theta), r * torch.sin(theta)), dim=1).reshape(-1)[:n]
    return (mean + std * z).to(dtype)


def dropout_mask(batch: int, width: int, p: float, seed: int, offset: int,
                 device=None) -> torch.Tensor:
    """Keep-mask (True = kept) of shape (batch, width) from row-major words starting at offset.

    The comparison uses the same 24-bit fraction as the float32 uniform, evaluated exactly in
    float64, so the kernels can decide keep/drop with an integer-exact test.
    """
    batch, width = _check_count(batch, "batch"), _check_count(width, "width")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability p must be in [0, 1), got {p!r}")
    w = philox_words(seed, offset, batch * width, device=device)
    u = (w >> 8).to(torch.float64) * 2.0 ** -24
    return (u >= float(p)).reshape(batch, width)


class PhiloxStream:
    """A position in the Philox stream of `seed`: whoever draws takes words from `offset` on.

    Sharing one stream between G, D and the samplers makes their draws interleave in call order,
    which is how the fused engine consumes its stream (docs/design.md, "Training loop").
    """

    def __init__(self, seed: int = 0, offset: int = 0):
        self.seed = _check_seed(seed)
        self.offset = _check_offset(offset)

    def take(self, n_words: int) -> int:
        """Reserve the next n_words words; returns the offset they start at."""
        start = self.offset
        self.offset += _check_count(n_words, "n_words")
        return start

    def uniform(self, n, low=0.0, high=1.0, dtype=torch.float32, device=None) -> torch.Tensor:
        return uniform(n, self.seed, self.take(words_for_uniform(n)), low, high, dtype, device)

    def normal(self, n, mean=0.0, std=1.0, dtype=torch.float32, device=None) -> torch.Tensor:
        return normal(n, self.seed, self.take(words_for_normal(n)), mean, std, dtype, device)

    def words(self, n, device=None) -> torch.Tensor:
        return philox_words(self.seed, self.take(n), n, device=device)

    def __repr__(self):
        return f"PhiloxStream(seed={self.seed}, offset={self.offset})"
