// The CPU kernels for x86-64 CPUs with AVX2 and FMA (used only where the CPU has them). Every
// header with code that must stay baseline (the standard library, the descriptors) is included
// before the target pragma; the core compute headers after it, in their own namespace.
#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#pragma GCC target("avx2,fma")
#define GF_ISA isa_avx2
#define GF_HAVE_FMA 1  // fastmath.h's float polynomials (the target pragma does not define __FMA__)
#define GF_TABLE_FLOAT table_float_avx2
#define GF_TABLE_DOUBLE table_double_avx2
#include "kernels_impl.h"
#endif
