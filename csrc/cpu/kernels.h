// The CPU kernels' entry points, one table per scalar type. The kernels are compiled once per
// instruction set (kernels_base.cpp: any x86-64; kernels_avx2.cpp: AVX2 + FMA;
// kernels_avx512.cpp: AVX-512 F/DQ/BW/VL; kernels_avx2x16.cpp: the AVX-512 build's 16-lane code
// under the AVX2 target, for tests only) and kernels.cpp picks one at run time, so an installed
// wheel runs everywhere and is fast where the CPU allows. The builds differ in FMA and in the
// order of the vectorised batch sums, so their results agree to rounding, not bitwise.
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
  // Takes the fast path (core/fast_step.h) when the configuration's shapes have kernels there
  // and engine_path() allows it, else the generic loop (core/gan_step.h).
  void (*train_members)(const core::GanDesc&, core::MemberState<T>* members, int64_t count, int64_t epochs,
                        double* metrics);
};

template <typename T>
const KernelTable<T>& kernels();

// The build kernels() uses: "avx512", "avx2", "baseline" (or the test-only "avx2x16"). Chosen
// once, from the CPU; GANFAST_CPU_ISA=baseline|avx2|avx512|avx2x16 forces one, and a build the
// CPU cannot run falls back to the best one it can, with a message on stderr.
const char* kernel_isa();

// Which training loop train_members runs, from GANFAST_ENGINE_PATH, read at every call (so a
// test can switch it between calls): "auto" (default: the fast path where the shapes have
// kernels), "generic" (always core/gan_step.h's loop: the engine as it was before the fast
// path) or "fast" (the fast path, or an error naming the shapes that have no kernels).
enum class EnginePath { kAuto, kGeneric, kFast };
EnginePath engine_path();
// The error of GANFAST_ENGINE_PATH=fast on a configuration without fast-path kernels. (Defined in
// kernels.cpp, outside the target pragmas: the ISA builds must not instantiate std::string.)
[[noreturn]] void throw_no_fast_kernels(const core::GanDesc& desc);

KernelTable<float> table_float_base();
KernelTable<double> table_double_base();
KernelTable<float> table_float_avx2();
KernelTable<double> table_double_avx2();
KernelTable<float> table_float_avx512();
KernelTable<double> table_double_avx512();
KernelTable<float> table_float_avx2x16();
KernelTable<double> table_double_avx2x16();

}  // namespace cpu
}  // namespace ganfast
