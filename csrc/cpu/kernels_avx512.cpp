// The CPU kernels for x86-64 CPUs with AVX-512 F, DQ, BW and VL (used only where the CPU has
// them): the source of the other builds with 64-byte vectors (16 floats, 8 doubles; core/vec.h)
// and 16 Philox blocks per step (core/philox.h). This machine's CI and its developers' box have
// no AVX-512: what runs there of this code is its 16-lane logic, through kernels_avx2x16.cpp;
// the AVX-512 instructions themselves (the per-width leaves in vec.h and philox.h, and GCC's
// code for the 64-byte vectors) are compiled, not run, unless the CPU has AVX-512
// (docs/design.md, "CPU kernels").
#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")
#define GF_ISA isa_avx512
#define GF_HAVE_FMA 1
#define GF_HAVE_AVX512 1
#define GF_TABLE_FLOAT table_float_avx512
#define GF_TABLE_DOUBLE table_double_avx512
#include "kernels_impl.h"
#endif
