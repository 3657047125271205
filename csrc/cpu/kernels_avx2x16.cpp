// Test-only build: the AVX-512 build's code (64-byte vectors: 16 float lanes, 16 Philox
// blocks per step) compiled for AVX2 + FMA, where GCC lowers each 64-byte vector operation to
// two 256-bit ones and core/vec.h splits compares and the per-width leaves into 256-bit halves.
// It runs wherever AVX2 does, so the tests can run the 16-lane logic of kernels_avx512.cpp
// (lane counts, batch tails, chunking, reduction orders, the 16-block Philox transposition) on
// machines without AVX-512. Never chosen automatically: GANFAST_CPU_ISA=avx2x16 selects it.
// Compiled only into a library built with GANFAST_AVX2X16=1 (the define below; ganfast/_build.py
// adds it and keys the cache on it): it is the most expensive translation unit to compile, and
// only the tests run it (docs/design.md, "CPU kernels").
#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && defined(GANFAST_AVX2X16)
#include <immintrin.h>
#pragma GCC target("avx2,fma")
#define GF_ISA isa_avx2x16
#define GF_HAVE_FMA 1
#define GF_VEC_BYTES 64
#define GF_TABLE_FLOAT table_float_avx2x16
#define GF_TABLE_DOUBLE table_double_avx2x16
#include "kernels_impl.h"
#endif
