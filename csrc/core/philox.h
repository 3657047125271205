// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) and the
// word -> number transforms of docs/design.md. Counter-based: any word of any stream is a pure
// function of (seed, index), which is what lets CPU, CUDA, threads and resumed runs agree.
#pragma once

#include "common.h"
#include "fastmath.h"

// The AVX2 build of the CPU kernels (GF_HAVE_FMA, under its target pragma) draws 8 blocks at a
// time with intrinsics; every other build uses the structure-of-arrays loop below.
#if defined(GF_HAVE_FMA) && defined(__x86_64__) && !defined(__CUDACC__)
#include <immintrin.h>
#define GF_PHILOX_AVX2 1
#endif

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

#if defined(GF_PHILOX_AVX2)
// hi and lo 32 bits of a * m in each of 8 lanes (m: one constant in every lane).
inline void philox_mulhilo8(__m256i a, __m256i m, __m256i* hi, __m256i* lo) {
  const __m256i even = _mm256_mul_epu32(a, m);                       // lanes 0, 2, 4, 6
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);  // lanes 1, 3, 5, 7
  *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

// 8 blocks per step, all 10 rounds in registers, then a 4 x 8 transpose into stream order:
// 2.5x the SoA loop's rate (the compiler's version of it spends most of its time shuffling
// the 64-bit products). Bitwise the same words (tests/test_ops.py compares with torch's).
inline void philox_fill_blocks(uint64_t seed, uint64_t first_block, int64_t count, uint32_t* out) {
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(kPhiloxM1));
  const __m256i w0 = _mm256_set1_epi32(static_cast<int>(kPhiloxW0));
  const __m256i w1 = _mm256_set1_epi32(static_cast<int>(kPhiloxW1));
  const __m256i key0 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(seed)));
  const __m256i key1 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(seed >> 32)));
  int64_t b = 0;
  for (; b + 8 <= count; b += 8) {
    alignas(32) uint32_t lo[8], hi[8];  // the 64-bit block counters, split
    for (int j = 0; j < 8; ++j) {
      const uint64_t x = first_block + static_cast<uint64_t>(b + j);
      lo[j] = static_cast<uint32_t>(x);
      hi[j] = static_cast<uint32_t>(x >> 32);
    }
    __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo));
    __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(hi));
    __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256(), k0 = key0, k1 = key1;
    for (int round = 0; round < 10; ++round) {
      __m256i hi0, lo0, hi1, lo1;
      philox_mulhilo8(c0, m0, &hi0, &lo0);
      philox_mulhilo8(c2, m1, &hi1, &lo1);
      c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), k0);
      c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), k1);
      c1 = lo1;
      c3 = lo0;
      k0 = _mm256_add_epi32(k0, w0);
      k1 = _mm256_add_epi32(k1, w1);
    }
    const __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpackhi_epi32(c0, c1);
    const __m256i t2 = _mm256_unpacklo_epi32(c2, c3), t3 = _mm256_unpackhi_epi32(c2, c3);
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);  // blocks 0|4, 1|5
    const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);  // blocks 2|6, 3|7
    __m256i* o = reinterpret_cast<__m256i*>(out + 4 * b);
    _mm256_storeu_si256(o + 0, _mm256_permute2x128_si256(u0, u1, 0x20));
    _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(u2, u3, 0x20));
    _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(u0, u1, 0x31));
    _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(u2, u3, 0x31));
  }
  if (b < count) philox_fill_blocks_soa(seed, first_block + static_cast<uint64_t>(b), count - b, out + 4 * b);
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
