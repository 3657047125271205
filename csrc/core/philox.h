// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) and the
// word -> number transforms of docs/design.md. Counter-based: any word of any stream is a pure
// function of (seed, index), which is what lets CPU, CUDA, threads and resumed runs agree.
#pragma once

#include <utility>

#include "common.h"
#include "fastmath.h"

// The CPU builds (GF_HAVE_VEC, vec.h) draw a vector of blocks at a time (philox_fill_blocks);
// device code and nvcc's host pass use the structure-of-arrays loop.
#include "vec.h"

GF_BEGIN_NAMESPACE

// Round multipliers and key-schedule (Weyl) increments, shared by the three implementations
// below (per block, structure-of-arrays, AVX2).
constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

struct Words4 {
  uint32_t v[4];
};

GF_HD Words4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                           uint32_t k1) {
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return Words4{{c0, c1, c2, c3}};
}

// Block b of the stream of `seed`: counter (b_lo, b_hi, 0, 0), key (seed_lo, seed_hi).
GF_HD Words4 philox_block(uint64_t seed, uint64_t block) {
  return philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u,
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

GF_HD uint32_t philox_word(uint64_t seed, uint64_t index) {
  return philox_block(seed, index >> 2).v[index & 3];
}

// Host loop: `count` whole blocks from `first_block` on, lane-interleaved into out (4 * count
// words). Structure-of-arrays over a chunk of blocks, so that the 32x32->64-bit multiplies of
// the rounds vectorise (pmuludq); same arithmetic as philox4x32_10.
inline void philox_fill_blocks_soa(uint64_t seed, uint64_t first_block, int64_t count, uint32_t* out) {
  constexpr int kChunk = 64;
  uint32_t c0[kChunk], c1[kChunk], c2[kChunk], c3[kChunk];
  for (int64_t base = 0; base < count; base += kChunk) {
    const int m = static_cast<int>(count - base < kChunk ? count - base : kChunk);
    for (int j = 0; j < m; ++j) {
      const uint64_t b = first_block + static_cast<uint64_t>(base + j);
      c0[j] = static_cast<uint32_t>(b);
      c1[j] = static_cast<uint32_t>(b >> 32);
      c2[j] = 0u;
      c3[j] = 0u;
    }
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    for (int round = 0; round < 10; ++round) {
      GF_SIMD for (int j = 0; j < m; ++j) {
        const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0[j];
        const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2[j];
        const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[j] ^ k0;
        const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[j] ^ k1;
        c1[j] = static_cast<uint32_t>(p1);
        c3[j] = static_cast<uint32_t>(p0);
        c0[j] = n0;
        c2[j] = n2;
      }
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    uint32_t* o = out + 4 * base;
    for (int j = 0; j < m; ++j) {
      o[4 * j] = c0[j];
      o[4 * j + 1] = c1[j];
      o[4 * j + 2] = c2[j];
      o[4 * j + 3] = c3[j];
    }
  }
}

#if defined(GF_HAVE_VEC)
// Philox on vectors of block counters (vec.h): one block per 32-bit lane, all 10 rounds in
// registers. The same source serves every build: 4 lanes (SSE2, baseline), 8 (AVX2), 16
// (AVX-512, and the test-only 16-lane AVX2 build); only the 32x32->64-bit multiply is written
// per width. Bitwise the same words as philox4x32_10 (csrc/tests/test_core.cpp,
// tests/test_ops.py and tests/test_fastpath.py compare them).
using philox_u32v = vec_of<uint32_t, kVecBytes>;
using philox_u64v = vec_of<uint64_t, kVecBytes>;
constexpr int kPhiloxLanes = kVecBytes / 4;

// The 64-bit products of the even 32-bit lanes of a and m (pmuludq).
template <typename U>
GF_VINLINE U philox_mul_even(U a, U m) {
  if constexpr (sizeof(U) > static_cast<size_t>(kNativeBytes)) {
    vhalf_t<U> a0, a1, m0, m1;
    vsplit(a, &a0, &a1), vsplit(m, &m0, &m1);
    return vjoin<U>(philox_mul_even(a0, m0), philox_mul_even(a1, m1));
  } else if constexpr (sizeof(U) == 16) {
    return reinterpret_cast<U>(_mm_mul_epu32(reinterpret_cast<__m128i>(a), reinterpret_cast<__m128i>(m)));
#if defined(GF_HAVE_FMA)
  } else if constexpr (sizeof(U) == 32) {
    return reinterpret_cast<U>(_mm256_mul_epu32(reinterpret_cast<__m256i>(a), reinterpret_cast<__m256i>(m)));
#endif
#if defined(GF_HAVE_AVX512)
  } else if constexpr (sizeof(U) == 64) {
    return reinterpret_cast<U>(_mm512_mul_epu32(reinterpret_cast<__m512i>(a), reinterpret_cast<__m512i>(m)));
#endif
  } else {
    static_assert(sizeof(U) == 0, "no multiply for this width");
    return a;
  }
}

// hi and lo 32 bits of a * m in every lane (m: one constant in every lane).
template <typename U>
GF_VINLINE void philox_mulhilo(U a, U m, U* hi, U* lo) {
  using Q = vec_of<uint64_t, sizeof(U)>;
  if constexpr (sizeof(U) > static_cast<size_t>(kNativeBytes)) {
    vhalf_t<U> a0, a1, m0, m1, h0, h1, l0, l1;
    vsplit(a, &a0, &a1), vsplit(m, &m0, &m1);
    philox_mulhilo(a0, m0, &h0, &l0);
    philox_mulhilo(a1, m1, &h1, &l1);
    *hi = vjoin<U>(h0, h1), *lo = vjoin<U>(l0, l1);
    return;
  }
  const U even = philox_mul_even(a, m);                                                   // lanes 0, 2, ...
  const U odd = philox_mul_even(reinterpret_cast<U>(reinterpret_cast<Q>(a) >> 32), m);  // lanes 1, 3, ...
  const U odd_lo = reinterpret_cast<U>(reinterpret_cast<Q>(odd) << 32);
  const U even_hi = reinterpret_cast<U>(reinterpret_cast<Q>(even) >> 32);
#if defined(GF_HAVE_AVX512)
  if constexpr (sizeof(U) == 64) {  // take the odd lanes from the second operand
    *lo = reinterpret_cast<U>(_mm512_mask_blend_epi32(0xAAAA, reinterpret_cast<__m512i>(even),
                                                      reinterpret_cast<__m512i>(odd_lo)));
    *hi = reinterpret_cast<U>(_mm512_mask_blend_epi32(0xAAAA, reinterpret_cast<__m512i>(even_hi),
                                                      reinterpret_cast<__m512i>(odd)));
    return;
  }
#endif
#if defined(GF_HAVE_FMA)
  if constexpr (sizeof(U) == 32) {
    *lo = reinterpret_cast<U>(_mm256_blend_epi32(reinterpret_cast<__m256i>(even), reinterpret_cast<__m256i>(odd_lo), 0xAA));
    *hi = reinterpret_cast<U>(_mm256_blend_epi32(reinterpret_cast<__m256i>(even_hi), reinterpret_cast<__m256i>(odd), 0xAA));
    return;
  }
#endif
  const Q low32 = Q{} + 0xffffffffull;  // SSE2 has no 32-bit blend: AND / OR
  *lo = reinterpret_cast<U>((reinterpret_cast<Q>(even) & low32) | reinterpret_cast<Q>(odd_lo));
  *hi = reinterpret_cast<U>(reinterpret_cast<Q>(even_hi) | (reinterpret_cast<Q>(odd) & ~low32));
}

// The 10 rounds on the counters (c0, c1, c2, c3) of one block per lane.
template <typename U>
GF_VINLINE void philox_rounds(uint64_t seed, U& c0, U& c1, U& c2, U& c3) {
  const U m0 = U{} + kPhiloxM0, m1 = U{} + kPhiloxM1;
  U k0 = U{} + static_cast<uint32_t>(seed), k1 = U{} + static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    U hi0, lo0, hi1, lo1;
    philox_mulhilo(c0, m0, &hi0, &lo0);
    philox_mulhilo(c2, m1, &hi1, &lo1);
    c0 = hi1 ^ c1 ^ k0;
    c2 = hi0 ^ c3 ^ k1;
    c1 = lo1;
    c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}

// Blocks first + lane * stride, one per lane: the four words of each, word r in cr. The 64-bit
// counters in vectors: low words first + lane * stride (mod 2^32; lane * stride < 2^32), high
// words + 1 where the low word wrapped.
template <typename U>
GF_VINLINE void philox_blocks_strided(uint64_t seed, uint64_t first, uint64_t stride, U* c0, U* c1, U* c2, U* c3) {
  constexpr int W = vlanes<U>();
  alignas(64) uint32_t step[W];
  for (int j = 0; j < W; ++j) step[j] = static_cast<uint32_t>(j * stride);
  const uint32_t lo0 = static_cast<uint32_t>(first), hi0 = static_cast<uint32_t>(first >> 32);
  const U lo = vbroadcast<U>(lo0) + vload_as<U>(step);
  // (lo < lo0) as a lane mask: unsigned compare written with the sign bit flipped, so that it
  // is one signed compare per native vector (the wide test build splits it)
  using I = vbits_t<U>;
  const I wrapped = vlt_signed(reinterpret_cast<I>(lo ^ 0x80000000u), reinterpret_cast<I>(vbroadcast<U>(lo0 ^ 0x80000000u)));
  *c0 = lo;
  *c1 = vbroadcast<U>(hi0) - reinterpret_cast<U>(wrapped);  // the mask is -1 where wrapped
  *c2 = *c3 = U{};
  philox_rounds(seed, *c0, *c1, *c2, *c3);
}

// out[4 j + r] = cr[j]: the lanes' blocks back into stream order. Two rounds of interleaves
// (32-bit pairs, then 64-bit pairs), written once for every width with __builtin_shuffle.
template <typename U, size_t... I>
GF_VINLINE U philox_zip32(U a, U b, std::index_sequence<I...>, size_t from) {
  constexpr size_t W = sizeof...(I);
  return __builtin_shuffle(a, b, U{static_cast<uint32_t>((I % 2 == 0 ? 0 : W) + from + I / 2)...});
}
template <typename Q, size_t... I>
GF_VINLINE Q philox_zip64(Q a, Q b, std::index_sequence<I...>, size_t from) {
  constexpr size_t W = sizeof...(I);
  return __builtin_shuffle(a, b, Q{static_cast<uint64_t>((I % 2 == 0 ? 0 : W) + from + I / 2)...});
}
template <typename U>
GF_VINLINE void philox_store_blocks(U c0, U c1, U c2, U c3, uint32_t* out) {
  constexpr size_t W = vlanes<U>();
  using Q = vec_of<uint64_t, sizeof(U)>;
  using IU = std::make_index_sequence<W>;
  using IQ = std::make_index_sequence<W / 2>;
#if defined(GF_HAVE_FMA) && !defined(GF_HAVE_AVX512)
  if constexpr (sizeof(U) == 32) {  // AVX2: in-lane unpacks and one lane swap (a generic shuffle costs more)
    const __m256i a0 = reinterpret_cast<__m256i>(c0), a1 = reinterpret_cast<__m256i>(c1);
    const __m256i a2 = reinterpret_cast<__m256i>(c2), a3 = reinterpret_cast<__m256i>(c3);
    const __m256i t0 = _mm256_unpacklo_epi32(a0, a1), t1 = _mm256_unpackhi_epi32(a0, a1);
    const __m256i t2 = _mm256_unpacklo_epi32(a2, a3), t3 = _mm256_unpackhi_epi32(a2, a3);
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);  // blocks 0|4, 1|5
    const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);  // blocks 2|6, 3|7
    __m256i* o = reinterpret_cast<__m256i*>(out);
    _mm256_storeu_si256(o + 0, _mm256_permute2x128_si256(u0, u1, 0x20));
    _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(u2, u3, 0x20));
    _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(u0, u1, 0x31));
    _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(u2, u3, 0x31));
    return;
  }
#endif
  // (c0[j], c1[j]) and (c2[j], c3[j]) as 64-bit lanes, for the low and the high half of j.
  const Q t0 = reinterpret_cast<Q>(philox_zip32(c0, c1, IU{}, 0)), t1 = reinterpret_cast<Q>(philox_zip32(c2, c3, IU{}, 0));
  const Q t2 = reinterpret_cast<Q>(philox_zip32(c0, c1, IU{}, W / 2));
  const Q t3 = reinterpret_cast<Q>(philox_zip32(c2, c3, IU{}, W / 2));
  vstore(out, reinterpret_cast<U>(philox_zip64(t0, t1, IQ{}, 0)));
  vstore(out + W, reinterpret_cast<U>(philox_zip64(t0, t1, IQ{}, W / 4)));
  vstore(out + 2 * W, reinterpret_cast<U>(philox_zip64(t2, t3, IQ{}, 0)));
  vstore(out + 3 * W, reinterpret_cast<U>(philox_zip64(t2, t3, IQ{}, W / 4)));
}

// `count` whole blocks from `first_block` on, in stream order into out (4 * count words);
// a last partial group of lanes is computed whole and stored in part.
inline void philox_fill_blocks(uint64_t seed, uint64_t first_block, int64_t count, uint32_t* out) {
  using U = philox_u32v;
  constexpr int W = kPhiloxLanes;
  int64_t b = 0;
  for (; b + W <= count; b += W) {
    U c0, c1, c2, c3;
    philox_blocks_strided(seed, first_block + static_cast<uint64_t>(b), 1, &c0, &c1, &c2, &c3);
    philox_store_blocks(c0, c1, c2, c3, out + 4 * b);
  }
  if (b < count) {
    U c0, c1, c2, c3;
    philox_blocks_strided(seed, first_block + static_cast<uint64_t>(b), 1, &c0, &c1, &c2, &c3);
    alignas(64) uint32_t tmp[4 * W];
    philox_store_blocks(c0, c1, c2, c3, tmp);
    std::memcpy(out + 4 * b, tmp, sizeof(uint32_t) * 4 * static_cast<size_t>(count - b));
  }
}
// The words of an (n_rows x w) sample-major block, word (n, j) = base + n * w + j, drawn
// straight into unit-major rows: rows[j * stride + n] for n in [0, n_rows), n_rows a multiple
// of kPhiloxLanes; w a multiple of 4. With w % 4 == 0 every sample's words start at the same
// lane of a block, so a vector of blocks one per sample (counter stride w / 4) holds 4 whole
// rows of the unit-major block: no transpose (the dropout masks of the fast path).
inline void philox_fill_unit_major(uint64_t seed, uint64_t base, int w, int64_t n_rows, int64_t stride,
                                   uint32_t* rows) {
  using U = philox_u32v;
  constexpr int W = kPhiloxLanes;
  const int s = static_cast<int>(base & 3);
  const uint64_t per_sample = static_cast<uint64_t>(w / 4);
  const int blocks = w / 4 + (s != 0 ? 1 : 0);  // blocks each sample's w words touch
  for (int q = 0; q < blocks; ++q) {
    for (int64_t n0 = 0; n0 < n_rows; n0 += W) {
      U c[4];
      philox_blocks_strided(seed, (base >> 2) + static_cast<uint64_t>(q) + per_sample * static_cast<uint64_t>(n0),
                            per_sample, &c[0], &c[1], &c[2], &c[3]);
      for (int r = 0; r < 4; ++r) {
        const int j = 4 * q + r - s;
        if (j >= 0 && j < w) vstore(rows + j * stride + n0, c[r]);
      }
    }
  }
}
#else
inline void philox_fill_blocks(uint64_t seed, uint64_t first_block, int64_t count, uint32_t* out) {
  philox_fill_blocks_soa(seed, first_block, count, out);
}
#endif

// Host loop: words [offset, offset + n) of a stream.
inline void philox_fill_words(uint64_t seed, uint64_t offset, int64_t n, uint32_t* out) {
  if (n <= 0) return;
  int64_t i = 0;
  const unsigned lead = static_cast<unsigned>(offset & 3);
  if (lead != 0) {  // the partial block the range starts in
    const Words4 w = philox_block(seed, offset >> 2);
    for (unsigned lane = lead; lane < 4 && i < n; ++lane) out[i++] = w.v[lane];
  }
  const int64_t whole = (n - i) / 4;
  philox_fill_blocks(seed, (offset + i) >> 2, whole, out + i);
  i += 4 * whole;
  if (i < n) {  // the partial block it ends in
    const Words4 w = philox_block(seed, (offset + i) >> 2);
    for (unsigned lane = 0; i < n; ++lane) out[i++] = w.v[lane];
  }
}

// --- word -> number ------------------------------------------------------------------------

template <typename T>
struct Uniform;

// float32: 24 random bits, exactly representable; scale/shift in float, no FMA (the reference
// does two separate float ops, and the build uses -ffp-contract=off).
template <>
struct Uniform<float> {
  float scale, low;
  GF_HD Uniform(double lo, double hi) : scale(static_cast<float>(hi - lo)), low(static_cast<float>(lo)) {}
  GF_HD float operator()(uint32_t w) const {
    const float u = static_cast<float>(w >> 8) * 0x1p-24f;
    const float scaled = u * scale;
    return scaled + low;
  }
};

template <>
struct Uniform<double> {
  double scale, low;
  GF_HD Uniform(double lo, double hi) : scale(hi - lo), low(lo) {}
  GF_HD double operator()(uint32_t w) const {
    const double scaled = static_cast<double>(w) * 0x1p-32 * scale;
    return scaled + low;
  }
};

// Box-Muller on one word pair -> two standard normals (cos branch, sin branch), in double.
GF_HD void box_muller(uint32_t a, uint32_t b, double* z_cos, double* z_sin) {
  const double u1 = (static_cast<double>(a) + 1.0) * 0x1p-32;  // (0, 1]: log never sees 0
  const double u2 = static_cast<double>(b) * 0x1p-32;
  const double r = sqrt(-2.0 * log_unit(u1));
  double s, c;
  sincos_2pi(u2, &s, &c);
  *z_cos = r * c;
  *z_sin = r * s;
}

// Dropout keeps a unit iff (w >> 8) * 2^-24 >= p, i.e. iff (w >> 8) >= ceil(p * 2^24).
GF_HD uint32_t dropout_threshold(double p) {
  const double t = p * 16777216.0;
  const uint32_t floor_t = static_cast<uint32_t>(t);
  return static_cast<double>(floor_t) == t ? floor_t : floor_t + 1u;
}

GF_HD bool dropout_keep(uint32_t w, uint32_t threshold) { return (w >> 8) >= threshold; }

GF_END_NAMESPACE
