// Shared macros of the torch-free core. The same headers compile as host C++ (CPU ops, native
// tests) and under nvcc (CUDA ops), so device qualifiers and SIMD hints live behind macros.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#if defined(__CUDACC__)
#define GF_HD __host__ __device__ __forceinline__
#else
#define GF_HD inline
#endif

// Reductions over the batch only vectorise when the compiler may reassociate the sum; allow it
// for the marked loops alone (-fopenmp-simd), never globally (-ffast-math would also flush
// denormals process-wide, see docs/design.md).
#define GF_PRAGMA(x) _Pragma(#x)
// The compute headers live in an inline namespace named after the instruction set they are
// compiled for: the CPU kernels are built twice (baseline x86-64 and AVX2+FMA, picked at run
// time, csrc/cpu/kernels.cpp), and distinct names keep the two builds from being merged by the
// linker. Descriptor headers (mlp_desc.h, gan_desc.h) hold data only and stay outside.
#ifndef GF_ISA
#define GF_ISA isa_base
#endif
#define GF_BEGIN_NAMESPACE \
  namespace ganfast {      \
  namespace core {         \
  inline namespace GF_ISA {
#define GF_END_NAMESPACE \
  }                      \
  }                      \
  }

#define GF_SIMD_SUM(var) GF_PRAGMA(omp simd reduction(+ : var))
#define GF_SIMD GF_PRAGMA(omp simd)

GF_BEGIN_NAMESPACE

GF_HD uint64_t bits_of(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(x));
#else
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

GF_HD double double_of(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

GF_END_NAMESPACE
