// Vectors for the CPU kernels (mlp.h, the fast path small_mlp.h / fast_step.h, vmath.h), as
// GCC/Clang vector extensions: named values the compiler keeps in registers, where a
// T acc[4][16] block is spilled to the stack on every step. Host code only: under nvcc, mlp.h
// keeps its scalar loops (the CUDA kernels have their own).
//
// Widths. kNativeBytes is the build's register width: 16 (SSE2, the baseline build), 32 (the
// AVX2+FMA build, GF_HAVE_FMA) or 64 (the AVX-512 build, GF_HAVE_AVX512). kVecBytes, the width
// the kernels are written for, equals it except in the test-only "avx2x16" build
// (kernels_avx2x16.cpp), which compiles the AVX-512 build's 16-lane float code under the AVX2
// target (GF_VEC_BYTES=64): GCC lowers the arithmetic of a vector wider than the target's
// registers to pairs of native operations, so the 16-lane logic (lane counts, batch tails,
// reduction orders) runs and is tested on a machine without AVX-512.
//
// Two rules keep that lowering cheap and the arithmetic the same at every width:
// - fused multiply-adds only through vmadd (one rounding: FMA builds; a * b + c: baseline);
// - comparisons and selects only at native width: GCC turns a 64-byte compare on AVX2 into 16
//   scalar compares, so the functions that compare (vmath.h) split a wider vector into native
//   halves first (vsplit / vjoin), and lane masks are applied with bitwise ANDs.
#pragma once

#include <cstring>
#include <type_traits>
#include <utility>

#include "common.h"

#if defined(__x86_64__) && !defined(__CUDACC__)
#include <immintrin.h>  // the per-width leaves (vmadd, vmin/vmax, philox.h's multiply)
#endif

#if defined(__GNUC__) && !defined(__CUDACC__)
#define GF_HAVE_VEC 1

// A vector wider than the target's registers (the 16-lane build, and the native tests' 32- and
// 64-byte vectors in the baseline build) changes the calling convention of a function that
// takes or returns one; GCC notes that once per type. Everything here is inlined or internal to
// one build, so no such value crosses a library boundary.
#pragma GCC diagnostic ignored "-Wpsabi"

#define GF_VINLINE __attribute__((always_inline)) inline
// Kept out of line: the callers are big already, and GCC's time grows faster than linearly with
// a function's size (compile time of the ISA builds).
#define GF_NOINLINE __attribute__((noinline))

GF_BEGIN_NAMESPACE

#if defined(GF_HAVE_AVX512)
constexpr int kNativeBytes = 64;
#elif defined(GF_HAVE_FMA)
constexpr int kNativeBytes = 32;
#else
constexpr int kNativeBytes = 16;
#endif

#if defined(GF_VEC_BYTES)
constexpr int kVecBytes = GF_VEC_BYTES;
#else
constexpr int kVecBytes = kNativeBytes;
#endif
static_assert(kVecBytes >= kNativeBytes, "the kernels' vectors are at least a register wide");

// A vector of `Bytes` bytes of T.
template <typename T, int Bytes>
struct VecOf {
  typedef T type __attribute__((vector_size(Bytes)));
};
template <typename T, int Bytes>
using vec_of = typename VecOf<T, Bytes>::type;

template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(kVecBytes)));
  static constexpr int kLanes = kVecBytes / sizeof(T);
};
template <typename T>
using vec_t = typename Vec<T>::type;

// Element type and lane count of a vector type.
template <typename V>
using velem_t = std::remove_cv_t<std::remove_reference_t<decltype(V{}[0])>>;
template <typename V>
constexpr int vlanes() {
  return static_cast<int>(sizeof(V) / sizeof(velem_t<V>));
}
// The signed integer lanes of the same width (comparison results, bit patterns).
template <typename V>
struct VBits {
  using E = velem_t<V>;
  using I = std::conditional_t<sizeof(E) == 4, int32_t, int64_t>;
  typedef I type __attribute__((vector_size(sizeof(V))));
};
template <typename V>
using vbits_t = typename VBits<V>::type;

template <typename V>
GF_VINLINE V vload_as(const velem_t<V>* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));  // unaligned load
  return v;
}

template <typename T>
GF_VINLINE vec_t<T> vload(const T* p) {
  return vload_as<vec_t<T>>(p);
}

template <typename V>
GF_VINLINE void vstore(velem_t<V>* p, V v) {
  std::memcpy(p, &v, sizeof(v));
}

// x in every lane. vsplat (mlp.h's products) adds x to a zero vector, which GCC must keep as an
// add (-0 + 0 is +0: a -0 becomes +0); vbroadcast (below) is a plain broadcast (the fast path's).
template <typename T>
GF_VINLINE vec_t<T> vsplat(T x) {
  return vec_t<T>{} + x;
}
template <typename V>
GF_VINLINE V vsplat_as(velem_t<V> x) {
  return V{} + x;
}

template <typename To, typename From>
GF_VINLINE To vbitcast(From v) {
  static_assert(sizeof(To) == sizeof(From), "same size");
  To t;
  std::memcpy(&t, &v, sizeof(t));
  return t;
}

// The two halves of a vector, and back.
template <typename V>
using vhalf_t = vec_of<velem_t<V>, sizeof(V) / 2>;
template <typename V>
GF_VINLINE void vsplit(V v, vhalf_t<V>* lo, vhalf_t<V>* hi) {
  std::memcpy(lo, &v, sizeof(*lo));
  std::memcpy(hi, reinterpret_cast<const char*>(&v) + sizeof(*lo), sizeof(*hi));
}
template <typename V>
GF_VINLINE V vjoin(vhalf_t<V> lo, vhalf_t<V> hi) {
  V v;
  std::memcpy(&v, &lo, sizeof(lo));
  std::memcpy(reinterpret_cast<char*>(&v) + sizeof(lo), &hi, sizeof(hi));
  return v;
}

template <typename V, size_t... I>
GF_VINLINE V vbroadcast_impl(velem_t<V> x, std::index_sequence<I...>) {
  return V{(static_cast<void>(I), x)...};  // every element x: GCC's vec_duplicate, one broadcast
}
template <typename V>
GF_VINLINE V vbroadcast(velem_t<V> x) {
  if constexpr (sizeof(V) > static_cast<size_t>(kNativeBytes)) {
    const vhalf_t<V> h = vbroadcast<vhalf_t<V>>(x);
    return vjoin<V>(h, h);
  } else {
    return vbroadcast_impl<V>(x, std::make_index_sequence<vlanes<V>()>{});
  }
}

// c + a * b, lane by lane: madd (fastmath.h) on vectors. One rounding in the FMA builds.
template <typename V>
GF_VINLINE V vmadd(V a, V b, V c) {
#if defined(GF_HAVE_FMA)
  using E = velem_t<V>;
  if constexpr (sizeof(V) > static_cast<size_t>(kNativeBytes)) {
    vhalf_t<V> a0, a1, b0, b1, c0, c1;
    vsplit(a, &a0, &a1), vsplit(b, &b0, &b1), vsplit(c, &c0, &c1);
    return vjoin<V>(vmadd(a0, b0, c0), vmadd(a1, b1, c1));
  } else if constexpr (sizeof(V) == 16) {
    if constexpr (sizeof(E) == 4) return __builtin_ia32_vfmaddps(a, b, c);
    else return __builtin_ia32_vfmaddpd(a, b, c);
  } else if constexpr (sizeof(V) == 32) {
    if constexpr (sizeof(E) == 4) return __builtin_ia32_vfmaddps256(a, b, c);
    else return __builtin_ia32_vfmaddpd256(a, b, c);
  } else {
#if defined(GF_HAVE_AVX512)
    if constexpr (sizeof(E) == 4) return _mm512_fmadd_ps(a, b, c);
    else return _mm512_fmadd_pd(a, b, c);
#else
    static_assert(sizeof(V) <= 32, "unreachable");
    return a;
#endif
  }
#else
  return a * b + c;
#endif
}

// a < b ? a : b and a > b ? a : b, lane by lane: x86's minps / maxps, which return b when
// either is NaN and for a pair of zeros, exactly what the C expressions do (GCC does not always
// see that and emits a compare and a blend).
template <typename V>
GF_VINLINE V vmin(V a, V b) {
  using E = velem_t<V>;
  if constexpr (sizeof(V) > static_cast<size_t>(kNativeBytes)) {
    vhalf_t<V> a0, a1, b0, b1;
    vsplit(a, &a0, &a1), vsplit(b, &b0, &b1);
    return vjoin<V>(vmin(a0, b0), vmin(a1, b1));
  } else if constexpr (sizeof(V) == 16) {
    if constexpr (sizeof(E) == 4) return __builtin_ia32_minps(a, b);
    else return __builtin_ia32_minpd(a, b);
#if defined(GF_HAVE_FMA)
  } else if constexpr (sizeof(V) == 32) {
    if constexpr (sizeof(E) == 4) return __builtin_ia32_minps256(a, b);
    else return __builtin_ia32_minpd256(a, b);
#endif
#if defined(GF_HAVE_AVX512)
  } else if constexpr (sizeof(V) == 64) {
    if constexpr (sizeof(E) == 4) return _mm512_min_ps(a, b);
    else return _mm512_min_pd(a, b);
#endif
  } else {
    return a < b ? a : b;
  }
}
template <typename V>
GF_VINLINE V vmax(V a, V b) {
  using E = velem_t<V>;
  if constexpr (sizeof(V) > static_cast<size_t>(kNativeBytes)) {
    vhalf_t<V> a0, a1, b0, b1;
    vsplit(a, &a0, &a1), vsplit(b, &b0, &b1);
    return vjoin<V>(vmax(a0, b0), vmax(a1, b1));
  } else if constexpr (sizeof(V) == 16) {
    if constexpr (sizeof(E) == 4) return __builtin_ia32_maxps(a, b);
    else return __builtin_ia32_maxpd(a, b);
#if defined(GF_HAVE_FMA)
  } else if constexpr (sizeof(V) == 32) {
    if constexpr (sizeof(E) == 4) return __builtin_ia32_maxps256(a, b);
    else return __builtin_ia32_maxpd256(a, b);
#endif
#if defined(GF_HAVE_AVX512)
  } else if constexpr (sizeof(V) == 64) {
    if constexpr (sizeof(E) == 4) return _mm512_max_ps(a, b);
    else return _mm512_max_pd(a, b);
#endif
  } else {
    return a > b ? a : b;
  }
}

// a < b on signed integer lanes, as a lane mask (-1 / 0), one compare per native vector.
template <typename I>
GF_VINLINE I vlt_signed(I a, I b) {
  if constexpr (sizeof(I) > static_cast<size_t>(kNativeBytes)) {
    vhalf_t<I> a0, a1, b0, b1;
    vsplit(a, &a0, &a1), vsplit(b, &b0, &b1);
    return vjoin<I>(vlt_signed(a0, b0), vlt_signed(a1, b1));
  } else {
    return a < b;
  }
}

// Horizontal sum of the lanes, pairwise (lane i + lane i + L/2, halving), in a fixed order.
template <typename V>
GF_VINLINE velem_t<V> vsum(V v) {
  if constexpr (vlanes<V>() == 1) {
    return v[0];
  } else {
    vhalf_t<V> lo, hi;
    vsplit(v, &lo, &hi);
    return vsum(lo + hi);
  }
}

// Lane masks: -1 in the first L entries, 0 in the next L; the L entries from (L - valid) keep
// the first `valid` lanes.
template <typename I, int L>
struct LaneMaskTable {
  alignas(64) I v[2 * L];
  constexpr LaneMaskTable() : v() {
    for (int i = 0; i < L; ++i) v[i] = I(-1);
  }
};
template <typename I, int L>
inline constexpr LaneMaskTable<I, L> kLaneMasks{};

// x for the first `valid` lanes, +0 for the rest (valid in [0, lanes]): a bitwise AND with a
// mask read from a table, so it costs no compare at any width.
template <typename V>
GF_VINLINE V vkeep_first(V x, int valid) {
  using B = vbits_t<V>;
  using I = velem_t<B>;
  constexpr int L = vlanes<V>();
  const B m = vload_as<B>(kLaneMasks<I, L>.v + (L - valid));
  return vbitcast<V>(vbitcast<B>(x) & m);
}

GF_END_NAMESPACE

#endif
