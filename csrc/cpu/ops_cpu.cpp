// CPU implementations of the ganfast ops: argument checks, layout changes at the boundary
// (the core works feature-major), and the loops of csrc/core.
#include <ATen/Parallel.h>

#include <vector>

#include "../op_args.h"
#include "kernels.h"

namespace ganfast {
namespace {

constexpr int64_t kRngGrain = 1 << 14;

void fill_uniform_cpu(at::Tensor out, int64_t seed, int64_t offset, double lo, double hi) {
  check_float_tensor(out, "out");
  check_seed_offset(seed, offset);
  TORCH_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "ganfast: uniform needs finite lo <= hi, got [",
              lo, ", ", hi, ")");
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "fill_uniform_", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    at::parallel_for(0, out.numel(), kRngGrain, [&](int64_t begin, int64_t end) {
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
    at::parallel_for(0, pairs, kRngGrain / 2, [&](int64_t begin, int64_t end) {
      cpu::kernels<scalar_t>().fill_normal(p, n, begin, end, seed, offset, mean, std);
    });
  });
}

template <typename T>
void transpose_into(const T* src, int64_t rows, int64_t cols, T* dst) {  // dst = src^T
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
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
    std::vector<scalar_t> xt(d.widths[0] * N), scratch(d.scratch_values(N));
    std::vector<uint32_t> words(d.scratch_words(N));
    transpose_into(x.data_ptr<scalar_t>(), N, d.widths[0], xt.data());
    cpu::kernels<scalar_t>().mlp_forward(d, params.data_ptr<scalar_t>(), xt.data(), N, true, seed, offset,
                                saved.data_ptr<scalar_t>(), scratch.data(), words.data());
    transpose_into(saved.data_ptr<scalar_t>() + d.saved_row(d.num_layers - 1) * N,
                   d.widths[d.num_layers], N, out.data_ptr<scalar_t>());
  });
  return {out, saved};
}

std::tuple<at::Tensor, at::Tensor> mlp_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x,
                                                    const at::Tensor& params, const at::Tensor& saved,
                                                    at::IntArrayRef widths, at::IntArrayRef acts,
                                                    at::ArrayRef<double> act_params, double dropout,
                                                    int64_t seed, int64_t offset) {
  const core::MlpDesc d = make_mlp_desc(widths, acts, act_params, dropout);
  const int64_t N = check_mlp_inputs(d, x, params);
  check_seed_offset(seed, offset);
  check_float_tensor(grad_out, "grad_out");
  check_same(grad_out, x, "grad_out", "x");
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == N && grad_out.size(1) == d.widths[d.num_layers],
              "ganfast: grad_out must have shape (", N, ", ", d.widths[d.num_layers], "), got ", grad_out.sizes());
  check_float_tensor(saved, "saved");
  check_same(saved, x, "saved", "x");
  TORCH_CHECK(saved.dim() == 1 && saved.numel() == d.sum_out_widths * N,
              "ganfast: saved does not come from mlp_forward with these arguments (expected ",
              d.sum_out_widths * N, " values, got ", saved.numel(), ")");
  at::Tensor grad_x = at::empty_like(x);
  at::Tensor grad_params = at::zeros_like(params);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mlp_backward", [&] {
    const int64_t dL = d.widths[d.num_layers];
    std::vector<scalar_t> xt(d.widths[0] * N), gt(dL * N), gxt(d.widths[0] * N), scratch(d.scratch_values(N));
    std::vector<uint32_t> words(d.scratch_words(N));
    transpose_into(x.data_ptr<scalar_t>(), N, d.widths[0], xt.data());
    transpose_into(grad_out.data_ptr<scalar_t>(), N, dL, gt.data());
    cpu::kernels<scalar_t>().mlp_backward(d, params.data_ptr<scalar_t>(), xt.data(), N, true, seed, offset,
                                 saved.data_ptr<scalar_t>(), gt.data(), grad_params.data_ptr<scalar_t>(),
                                 gxt.data(), scratch.data(), words.data());
    transpose_into(gxt.data(), d.widths[0], N, grad_x.data_ptr<scalar_t>());
  });
  return {grad_x, grad_params};
}

}  // namespace

TORCH_LIBRARY_IMPL(ganfast, CPU, m) {
  m.impl("fill_uniform_", &fill_uniform_cpu);
  m.impl("fill_normal_", &fill_normal_cpu);
  m.impl("mlp_forward", &mlp_forward_cpu);
  m.impl("mlp_backward", &mlp_backward_cpu);
}

}  // namespace ganfast
