// Vectors for the CPU matrix products (mlp.h), as GCC/Clang vector extensions: named values
// the compiler keeps in registers, where a T acc[4][16] block is spilled to the stack on every
// step. 256-bit with one fused multiply-add per vmadd in the AVX2+FMA build (GF_HAVE_FMA),
// 128-bit (SSE2) in the baseline build: a vector wider than the target's registers would pass
// through memory. Host code only: under nvcc, mlp.h keeps its scalar loops (the CUDA kernels
// have their own).
#pragma once

#include <cstring>

#include "common.h"

#if defined(__GNUC__) && !defined(__CUDACC__)
#define GF_HAVE_VEC 1

GF_BEGIN_NAMESPACE

#if defined(GF_HAVE_FMA)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(kVecBytes)));
  static constexpr int kLanes = kVecBytes / sizeof(T);
};
template <typename T>
using vec_t = typename Vec<T>::type;

template <typename T>
__attribute__((always_inline)) inline vec_t<T> vload(const T* p) {
  vec_t<T> v;
  std::memcpy(&v, p, sizeof(v));  // unaligned load
  return v;
}

template <typename T>
__attribute__((always_inline)) inline void vstore(T* p, vec_t<T> v) {
  std::memcpy(p, &v, sizeof(v));
}

template <typename T>
__attribute__((always_inline)) inline vec_t<T> vsplat(T x) {
  return vec_t<T>{} + x;
}

// c + a * b, lane by lane: madd (fastmath.h) on vectors.
template <typename V>
__attribute__((always_inline)) inline V vmadd(V a, V b, V c) {
#if defined(GF_HAVE_FMA)
  if constexpr (sizeof(a[0]) == sizeof(float)) {
    return __builtin_ia32_vfmaddps256(a, b, c);
  } else {
    return __builtin_ia32_vfmaddpd256(a, b, c);
  }
#else
  return a * b + c;
#endif
}

GF_END_NAMESPACE

#endif
