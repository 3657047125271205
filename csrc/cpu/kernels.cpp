// Run-time choice of the CPU kernel build and of the engine's training loop (see kernels.h).
#include "kernels.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ganfast {
namespace cpu {
namespace {

enum class Isa { kBaseline, kAvx2, kAvx512, kAvx2x16 };

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx2x16: return "avx2x16";
    default: return "baseline";
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
// The four AVX-512 subsets kernels_avx512.cpp is compiled for (libgcc also checks that the OS
// saves the zmm and mask registers).
bool cpu_has_avx512() {
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}
#else
bool cpu_has_avx2() { return false; }
bool cpu_has_avx512() { return false; }
#endif

Isa best_isa() {
  if (cpu_has_avx512()) return Isa::kAvx512;
  if (cpu_has_avx2()) return Isa::kAvx2;
  return Isa::kBaseline;
}

Isa choose_isa() {
  const char* forced = std::getenv("GANFAST_CPU_ISA");
  if (forced == nullptr || *forced == '\0' || std::strcmp(forced, "auto") == 0) return best_isa();
  const std::string f(forced);
  if (f == "baseline") return Isa::kBaseline;
  const Isa best = best_isa();
  if (f == "avx2") {
    if (cpu_has_avx2()) return Isa::kAvx2;
  } else if (f == "avx2x16") {
#if defined(GANFAST_AVX2X16)
    if (cpu_has_avx2()) return Isa::kAvx2x16;
#else
    std::fprintf(stderr,
                 "ganfast: GANFAST_CPU_ISA=avx2x16, but this library was built without the test-only avx2x16 build"
                 " (GANFAST_AVX2X16=1 python -m ganfast build); using %s\n",
                 isa_name(best));
    return best;
#endif
  } else if (f == "avx512") {
    if (cpu_has_avx512()) return Isa::kAvx512;
  } else {
    std::fprintf(stderr, "ganfast: unknown GANFAST_CPU_ISA=%s (baseline, avx2, avx512, avx2x16 or auto); using %s\n",
                 forced, isa_name(best));
    return best;
  }
  std::fprintf(stderr, "ganfast: GANFAST_CPU_ISA=%s, but this CPU cannot run that build; using %s\n", forced,
               isa_name(best));
  return best;
}

Isa isa() {
  static const Isa chosen = choose_isa();
  return chosen;
}

}  // namespace

const char* kernel_isa() { return isa_name(isa()); }

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
  static const KernelTable<float> table = [] {
    switch (isa()) {
      case Isa::kAvx512: return table_float_avx512();
      case Isa::kAvx2: return table_float_avx2();
#if defined(GANFAST_AVX2X16)
      case Isa::kAvx2x16: return table_float_avx2x16();
#endif
      default: return table_float_base();
    }
  }();
#else
  static const KernelTable<float> table = table_float_base();
#endif
  return table;
}

template <>
const KernelTable<double>& kernels<double>() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const KernelTable<double> table = [] {
    switch (isa()) {
      case Isa::kAvx512: return table_double_avx512();
      case Isa::kAvx2: return table_double_avx2();
#if defined(GANFAST_AVX2X16)
      case Isa::kAvx2x16: return table_double_avx2x16();
#endif
      default: return table_double_base();
    }
  }();
#else
  static const KernelTable<double> table = table_double_base();
#endif
  return table;
}

}  // namespace cpu
}  // namespace ganfast
