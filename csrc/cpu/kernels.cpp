// Run-time choice of the CPU kernel build and of the engine's training loop (see kernels.h).
#include "kernels.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ganfast {
namespace cpu {
namespace {

bool use_avx2() {
#if defined(__x86_64__) && defined(__GNUC__)
  const char* forced = std::getenv("GANFAST_CPU_ISA");
  if (forced != nullptr && std::strcmp(forced, "baseline") == 0) return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

}  // namespace

const char* kernel_isa() {
  static const char* isa = use_avx2() ? "avx2" : "baseline";
  return isa;
}

EnginePath engine_path() {
  const char* v = std::getenv("GANFAST_ENGINE_PATH");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return EnginePath::kAuto;
  if (std::strcmp(v, "generic") == 0) return EnginePath::kGeneric;
  if (std::strcmp(v, "fast") == 0) return EnginePath::kFast;
  throw std::invalid_argument(std::string("ganfast: GANFAST_ENGINE_PATH must be auto, generic or fast, got '") + v +
                              "'");
}

void throw_no_fast_kernels(const core::GanDesc& d) {
  std::string s = "ganfast: GANFAST_ENGINE_PATH=fast, but the fast path has no kernels for G";
  for (int l = 0; l <= d.g.num_layers; ++l) s += (l ? "-" : " ") + std::to_string(d.g.widths[l]);
  s += ", D";
  for (int l = 0; l <= d.d.num_layers; ++l) s += (l ? "-" : " ") + std::to_string(d.d.widths[l]);
  s += d.d_input == core::kDInputMoments ? " on the moments" : " on raw samples";
  if (d.g.has_dropout() || d.d.has_dropout()) s += ", with dropout";
  throw std::invalid_argument(s + " (the table is train_fast in csrc/core/fast_step.h); use auto or generic");
}

template <>
const KernelTable<float>& kernels<float>() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const KernelTable<float> table = use_avx2() ? table_float_avx2() : table_float_base();
#else
  static const KernelTable<float> table = table_float_base();
#endif
  return table;
}

template <>
const KernelTable<double>& kernels<double>() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const KernelTable<double> table = use_avx2() ? table_double_avx2() : table_double_base();
#else
  static const KernelTable<double> table = table_double_base();
#endif
  return table;
}

}  // namespace cpu
}  // namespace ganfast
