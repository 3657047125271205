// CPU implementations of the ganfast ops: argument checks, layout changes at the boundary
// (the core works feature-major), and the loops of csrc/core.
#include <algorithm>
#include <array>
#include <vector>

#include "../core/transpose.h"
#include "../op_args.h"
#include "kernels.h"
#include "threads.h"

namespace ganfast {
namespace {

constexpr int64_t kRngGrain = 1 << 16;  // below this a thread start costs more than it saves

void fill_uniform_cpu(at::Tensor out, int64_t seed, int64_t offset, double lo, double hi) {
  check_float_tensor(out, "out");
  check_seed_offset(seed, offset);
  TORCH_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "ganfast: uniform needs finite lo <= hi, got [",
              lo, ", ", hi, ")");
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "fill_uniform_", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    cpu::parallel_chunks(out.numel(), kRngGrain, [&](int64_t begin, int64_t end) {
      cpu::kernels<scalar_t>().fill_uniform(p, begin, end, seed, offset, lo, hi);
    });
  });
}

void fill_normal_cpu(at::Tensor out, int64_t seed, int64_t offset, double mean, double std) {
  check_float_tensor(out, "out");
  check_seed_offset(seed, offset);
  TORCH_CHECK(std::isfinite(mean) && std::isfinite(std) && std > 0.0,
              "ganfast: normal needs a finite mean and std > 0, got mean ", mean, ", std ", std);
  const int64_t n = out.numel();
  const int64_t pairs = (n + 1) / 2;
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "fill_normal_", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    cpu::parallel_chunks(pairs, kRngGrain / 2, [&](int64_t begin, int64_t end) {
      cpu::kernels<scalar_t>().fill_normal(p, n, begin, end, seed, offset, mean, std);
    });
  });
}

// Grow-only per-thread scratch: the toy networks' kernels take microseconds, so a fresh,
// zero-filled std::vector per call would cost as much as the arithmetic.
template <typename T>
T* scratch_values(int64_t n) {
  thread_local std::vector<T> buffer;
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(n);
  return buffer.data();
}

inline uint32_t* scratch_words(int64_t n) {
  thread_local std::vector<uint32_t> buffer;
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(n);
  return buffer.data();
}


std::tuple<at::Tensor, at::Tensor> mlp_forward_cpu(const at::Tensor& x, const at::Tensor& params,
                                                   at::IntArrayRef widths, at::IntArrayRef acts,
                                                   at::ArrayRef<double> act_params, double dropout,
                                                   int64_t seed, int64_t offset) {
  const core::MlpDesc d = make_mlp_desc(widths, acts, act_params, dropout);
  const int64_t N = check_mlp_inputs(d, x, params);
  check_seed_offset(seed, offset);
  at::Tensor saved = at::empty({d.sum_out_widths * N}, x.options());
  at::Tensor out = at::empty({N, d.widths[d.num_layers]}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mlp_forward", [&] {
    // [x^T | scratch]: the forward pass needs one max_width x N block of scratch.
    scalar_t* xt = scratch_values<scalar_t>(d.widths[0] * N + d.max_width * N);
    core::transpose(x.data_ptr<scalar_t>(), N, d.widths[0], xt);
    cpu::kernels<scalar_t>().mlp_forward(d, params.data_ptr<scalar_t>(), xt, N, true, seed, offset,
                                         saved.data_ptr<scalar_t>(), xt + d.widths[0] * N,
                                         scratch_words(d.scratch_words(N)));
    core::transpose(saved.data_ptr<scalar_t>() + d.saved_row(d.num_layers - 1) * N,
                   d.widths[d.num_layers], N, out.data_ptr<scalar_t>());
  });
  return {out, saved};
}

std::tuple<at::Tensor, at::Tensor> mlp_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x,
                                                    const at::Tensor& params, const at::Tensor& saved,
                                                    at::IntArrayRef widths, at::IntArrayRef acts,
                                                    at::ArrayRef<double> act_params, double dropout,
                                                    int64_t seed, int64_t offset, std::array<bool, 2> output_mask) {
  const core::MlpDesc d = make_mlp_desc(widths, acts, act_params, dropout);
  const int64_t N = check_mlp_backward_inputs(d, grad_out, x, params, saved);
  check_seed_offset(seed, offset);
  const auto [want_x, want_params] = output_mask;
  at::Tensor grad_x = want_x ? at::empty_like(x) : x.new_empty({0});
  at::Tensor grad_params = want_params ? at::zeros_like(params) : params.new_empty({0});
  if (!want_x && !want_params) return {grad_x, grad_params};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mlp_backward", [&] {
    const int64_t dL = d.widths[d.num_layers];
    // [x^T | grad_out^T | grad_x^T | scratch]
    const int64_t d0 = d.widths[0];
    scalar_t* xt = scratch_values<scalar_t>((2 * d0 + dL) * N + d.scratch_values(N));
    scalar_t* gt = xt + d0 * N;
    scalar_t* gxt = gt + dL * N;
    core::transpose(x.data_ptr<scalar_t>(), N, d0, xt);
    core::transpose(grad_out.data_ptr<scalar_t>(), N, dL, gt);
    cpu::kernels<scalar_t>().mlp_backward(d, params.data_ptr<scalar_t>(), xt, N, true, seed, offset,
                                          saved.data_ptr<scalar_t>(), gt,
                                          want_params ? grad_params.data_ptr<scalar_t>() : nullptr,
                                          want_x ? gxt : nullptr, gxt + d0 * N, scratch_words(d.scratch_words(N)));
    if (want_x) core::transpose(gxt, d0, N, grad_x.data_ptr<scalar_t>());
  });
  return {grad_x, grad_params};
}

// Every member's forward pass on one batch, members spread over threads. Each member runs the
// kernel mlp_forward_cpu runs, on the same transposed input and the same dropout words, so its
// output is bitwise that of mlp_forward(x, params[k], ...) whatever P and the thread count.
at::Tensor mlp_forward_population_cpu(const at::Tensor& x, const at::Tensor& params, at::IntArrayRef widths,
                                      at::IntArrayRef acts, at::ArrayRef<double> act_params, double dropout,
                                      int64_t seed, int64_t offset) {
  const PopulationArgs args = population_args(x, params, widths, acts, act_params, dropout, seed, offset);
  const core::MlpDesc& d = args.d;
  const int64_t N = args.N, P = args.P;
  const int64_t dL = d.widths[d.num_layers];
  at::Tensor out = at::empty({P, N, dL}, x.options());
  if (P == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mlp_forward_population", [&] {
    std::vector<scalar_t> xt(d.widths[0] * N);  // shared, read-only
    core::transpose(x.data_ptr<scalar_t>(), N, d.widths[0], xt.data());
    const scalar_t* p = params.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    // A thread start costs tens of microseconds: give each thread ~2^16 multiply-adds at least.
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, N * d.num_params));
    cpu::parallel_chunks(P, grain, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> saved(d.sum_out_widths * N), scratch(static_cast<int64_t>(d.max_width) * N);
      std::vector<uint32_t> words(std::max<int64_t>(1, d.scratch_words(N)));
      for (int64_t k = begin; k < end; ++k) {
        cpu::kernels<scalar_t>().mlp_forward(d, p + k * d.num_params, xt.data(), N, true, seed, offset,
                                             saved.data(), scratch.data(), words.data());
        core::transpose(saved.data() + d.saved_row(d.num_layers - 1) * N, dL, N, o + k * N * dL);
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ganfast, CPU, m) {
  m.impl("fill_uniform_", &fill_uniform_cpu);
  m.impl("fill_normal_", &fill_normal_cpu);
  m.impl("mlp_forward", &mlp_forward_cpu);
  m.impl("mlp_backward", &mlp_backward_cpu);
  m.impl("mlp_forward_population", &mlp_forward_population_cpu);
}

}  // namespace ganfast
