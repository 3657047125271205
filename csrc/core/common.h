// Shared macros of the torch-free core. The same headers compile as host C++ (CPU ops, native
// tests) and under nvcc (CUDA ops), so device qualifiers and SIMD hints live behind macros.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define GF_HD __host__ __device__ __forceinline__
#else
#define GF_HD inline
#endif

// Reductions over the batch only vectorise when the compiler may reassociate the sum; allow it
// for the marked loops alone (-fopenmp-simd), never globally (-ffast-math would also flush
// denormals process-wide, see docs/design.md).
#define GF_PRAGMA(x) _Pragma(#x)
#define GF_SIMD_SUM(var) GF_PRAGMA(omp simd reduction(+ : var))
#define GF_SIMD GF_PRAGMA(omp simd)

namespace ganfast {
namespace core {

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

}  // namespace core
}  // namespace ganfast
