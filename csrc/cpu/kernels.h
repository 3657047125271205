// The CPU kernels' entry points, one table per scalar type. The kernels are compiled twice
// (kernels_base.cpp: any x86-64; kernels_avx2.cpp: AVX2 + FMA) and kernels.cpp picks one at
// run time, so an installed wheel runs everywhere and is fast where the CPU allows.
// Both builds do the same arithmetic (no FMA contraction: -ffp-contract=off); only the order of
// the vectorised batch sums differs, by rounding.
#pragma once

#include <cstdint>

#include "../core/gan_desc.h"
#include "../core/mlp_desc.h"

namespace ganfast {
namespace cpu {

template <typename T>
struct KernelTable {
  // core::mlp_forward / mlp_backward (feature-major blocks, see core/mlp.h).
  void (*mlp_forward)(const core::MlpDesc&, const T* params, const T* x, int64_t N, bool train, uint64_t seed,
                      uint64_t offset, T* saved, T* scratch, uint32_t* words);
  void (*mlp_backward)(const core::MlpDesc&, const T* params, const T* x, int64_t N, bool train, uint64_t seed,
                       uint64_t offset, const T* saved, const T* g_out, T* g_params, T* g_x, T* scratch,
                       uint32_t* words);
  // Elements [begin, end) of a uniform fill; normal pairs [begin, end) of an n-element fill.
  void (*fill_uniform)(T* out, int64_t begin, int64_t end, uint64_t seed, uint64_t offset, double lo, double hi);
  void (*fill_normal)(T* out, int64_t n, int64_t pair_begin, int64_t pair_end, uint64_t seed, uint64_t offset,
                      double mean, double std);
  // `count` population members, each trained `epochs` epochs; metrics: count x kNumMetrics.
  void (*train_members)(const core::GanDesc&, core::MemberState<T>* members, int64_t count, int64_t epochs,
                        double* metrics);
};

template <typename T>
const KernelTable<T>& kernels();

// "avx2" or "baseline": the build kernels() uses on this CPU (GANFAST_CPU_ISA=baseline forces
// the baseline build).
const char* kernel_isa();

KernelTable<float> table_float_base();
KernelTable<double> table_double_base();
KernelTable<float> table_float_avx2();
KernelTable<double> table_double_avx2();

}  // namespace cpu
}  // namespace ganfast
