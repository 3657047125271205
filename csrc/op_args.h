// Argument checks and MlpDesc construction shared by the CPU and CUDA ops. Every bad argument
// becomes a TORCH_CHECK failure (a Python RuntimeError naming the problem), never a crash.
#pragma once

#include <torch/library.h>
#include <ATen/ATen.h>

#include <cmath>

#include "core/mlp_desc.h"

namespace ganfast {

inline core::MlpDesc make_mlp_desc(at::IntArrayRef widths, at::IntArrayRef acts,
                                   at::ArrayRef<double> act_params, double dropout) {
  const int64_t L = static_cast<int64_t>(widths.size()) - 1;
  TORCH_CHECK(L >= 1, "ganfast: widths needs an input and an output width, got ", widths);
  TORCH_CHECK(L <= core::kMaxLayers, "ganfast: at most ", core::kMaxLayers,
              " layers are supported by the fused kernels, got ", L);
  TORCH_CHECK(static_cast<int64_t>(acts.size()) == L, "ganfast: acts needs one entry per layer (", L,
              "), got ", acts.size());
  TORCH_CHECK(static_cast<int64_t>(act_params.size()) == L,
              "ganfast: act_params needs one entry per layer (", L, "), got ", act_params.size());
  TORCH_CHECK(std::isfinite(dropout) && dropout >= 0.0 && dropout < 1.0,
              "ganfast: dropout must be in [0, 1), got ", dropout);
  core::MlpDesc d;
  d.num_layers = static_cast<int>(L);
  for (int64_t l = 0; l <= L; ++l) {
    TORCH_CHECK(widths[l] >= 1 && widths[l] <= core::kMaxWidth, "ganfast: width ", widths[l],
                " at position ", l, " is outside the fused kernels' range [1, ", core::kMaxWidth,
                "]; use backend='torch' for wider layers");
    d.widths[l] = static_cast<int>(widths[l]);
  }
  for (int64_t l = 0; l < L; ++l) {
    TORCH_CHECK(acts[l] >= 0 && acts[l] < core::kNumActivations, "ganfast: unknown activation code ",
                acts[l], " for layer ", l);
    const bool has_param = acts[l] == core::kLeakyRelu || acts[l] == core::kElu;
    TORCH_CHECK(!has_param || (std::isfinite(act_params[l]) && act_params[l] > 0.0),
                "ganfast: leaky_relu slope / elu alpha must be > 0, got ", act_params[l], " for layer ", l);
    d.acts[l] = static_cast<int>(acts[l]);
    d.act_params[l] = act_params[l];
  }
  d.dropout = dropout;
  d.finalize();
  return d;
}

inline void check_float_tensor(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, "ganfast: ", name,
              " must be float32 or float64, got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), "ganfast: ", name, " must be contiguous (call .contiguous())");
}

inline void check_same(const at::Tensor& t, const at::Tensor& ref, const char* name, const char* ref_name) {
  TORCH_CHECK(t.device() == ref.device(), "ganfast: ", name, " is on ", t.device(), " but ", ref_name,
              " is on ", ref.device());
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), "ganfast: ", name, " is ", t.scalar_type(),
              " but ", ref_name, " is ", ref.scalar_type());
}

inline void check_seed_offset(int64_t seed, int64_t offset) {
  TORCH_CHECK(seed >= 0, "ganfast: seed must be >= 0, got ", seed);
  TORCH_CHECK(offset >= 0, "ganfast: offset must be >= 0, got ", offset);
}

// What mlp_forward and mlp_forward_population check alike: x (N, d0) with N >= 1, and params of
// x's dtype and device; returns N.
inline int64_t check_batch_inputs(const core::MlpDesc& d, const at::Tensor& x, const at::Tensor& params) {
  check_float_tensor(x, "x");
  check_float_tensor(params, "params");
  check_same(params, x, "params", "x");
  TORCH_CHECK(x.dim() == 2, "ganfast: x must be 2-D (batch, features), got shape ", x.sizes());
  TORCH_CHECK(x.size(0) >= 1, "ganfast: x has an empty batch");
  TORCH_CHECK(x.size(1) == d.widths[0], "ganfast: x has ", x.size(1), " features but the network expects ",
              d.widths[0]);
  return x.size(0);
}

// Checks of mlp_forward's tensors; returns the batch size.
inline int64_t check_mlp_inputs(const core::MlpDesc& d, const at::Tensor& x, const at::Tensor& params) {
  const int64_t N = check_batch_inputs(d, x, params);
  TORCH_CHECK(params.dim() == 1 && params.numel() == d.num_params, "ganfast: params must be 1-D with ",
              d.num_params, " values for widths ", at::IntArrayRef(
                  std::vector<int64_t>(d.widths, d.widths + d.num_layers + 1)),
              ", got shape ", params.sizes());
  return N;
}

// mlp_forward_population's arguments, checked: the network, the batch size N and the population P.
struct PopulationArgs {
  core::MlpDesc d;
  int64_t N, P;
};
inline PopulationArgs population_args(const at::Tensor& x, const at::Tensor& params, at::IntArrayRef widths,
                                      at::IntArrayRef acts, at::ArrayRef<double> act_params, double dropout,
                                      int64_t seed, int64_t offset) {
  const core::MlpDesc d = make_mlp_desc(widths, acts, act_params, dropout);
  const int64_t N = check_batch_inputs(d, x, params);
  TORCH_CHECK(params.dim() == 2 && params.size(1) == d.num_params, "ganfast: params must be (P, ", d.num_params,
              ") for this network, got shape ", params.sizes());
  check_seed_offset(seed, offset);
  return {d, N, params.size(0)};
}

// Checks of mlp_backward's tensors; returns the batch size.
inline int64_t check_mlp_backward_inputs(const core::MlpDesc& d, const at::Tensor& grad_out, const at::Tensor& x,
                                         const at::Tensor& params, const at::Tensor& saved) {
  const int64_t N = check_mlp_inputs(d, x, params);
  check_float_tensor(grad_out, "grad_out");
  check_same(grad_out, x, "grad_out", "x");
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == N && grad_out.size(1) == d.widths[d.num_layers],
              "ganfast: grad_out must have shape (", N, ", ", d.widths[d.num_layers], "), got ", grad_out.sizes());
  check_float_tensor(saved, "saved");
  check_same(saved, x, "saved", "x");
  TORCH_CHECK(saved.dim() == 1 && saved.numel() == d.sum_out_widths * N,
              "ganfast: saved does not come from mlp_forward with these arguments (expected ",
              d.sum_out_widths * N, " values, got ", saved.numel(), ")");
  return N;
}

}  // namespace ganfast
