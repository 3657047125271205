// The CPU kernels, compiled once per instruction set: the including file defines GF_ISA (the
// inline namespace of the core headers) and GF_TABLE_FLOAT / GF_TABLE_DOUBLE (the exported
// table functions) first. Include it from nowhere else.
#pragma once

#include "../core/fast_step.h"
#include "../core/gan_step.h"
#include "kernels.h"

namespace ganfast {
namespace cpu {
namespace GF_ISA {

template <typename T>
void fill_uniform(T* out, int64_t begin, int64_t end, uint64_t seed, uint64_t offset, double lo, double hi) {
  std::vector<uint32_t> words(end - begin);
  core::philox_fill_words(seed, offset + begin, end - begin, words.data());
  const core::Uniform<T> uni(lo, hi);
  GF_SIMD for (int64_t i = begin; i < end; ++i) out[i] = uni(words[i - begin]);
}

template <typename T>
void fill_normal(T* out, int64_t n, int64_t pair_begin, int64_t pair_end, uint64_t seed, uint64_t offset,
                 double mean, double std) {
  const int64_t pairs = pair_end - pair_begin;
  std::vector<uint32_t> words(2 * pairs);
  std::vector<double> z(2 * pairs);
  core::normal_pairs(seed, offset + 2 * pair_begin, 2 * pairs, words.data(), z.data());
  const int64_t end = std::min(n, 2 * pair_end);
  for (int64_t i = 2 * pair_begin; i < end; ++i) out[i] = static_cast<T>(mean + std * z[i - 2 * pair_begin]);
}

template <typename T>
void train_members(const core::GanDesc& desc, core::MemberState<T>* members, int64_t count, int64_t epochs,
                   double* metrics) {
  const EnginePath path = engine_path();
#if defined(GF_HAVE_VEC)
  if (path != EnginePath::kGeneric && core::train_fast(desc, members, count, epochs, metrics)) return;
#endif
  if (path == EnginePath::kFast) throw_no_fast_kernels(desc);
  core::MemberTrainer<T> trainer(desc);
  for (int64_t k = 0; k < count; ++k) trainer.train(members[k], epochs, metrics + k * core::kNumMetrics);
}

template <typename T>
KernelTable<T> make_table() {
  return {&core::mlp_forward<T>, &core::mlp_backward<T>, &fill_uniform<T>, &fill_normal<T>, &train_members<T>};
}

}  // namespace GF_ISA

KernelTable<float> GF_TABLE_FLOAT() { return GF_ISA::make_table<float>(); }
KernelTable<double> GF_TABLE_DOUBLE() { return GF_ISA::make_table<double>(); }

}  // namespace cpu
}  // namespace ganfast
