// Run-time choice of the CPU kernel build (see kernels.h).
#include "kernels.h"

#include <cstdlib>
#include <cstring>

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
