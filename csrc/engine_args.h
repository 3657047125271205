// Argument checks of gan_train_ and the GanDesc they describe; shared by the CPU and CUDA
// engines. Python validates configs first (ganfast/config.py); these checks guard direct calls.
#pragma once

#include "core/gan_desc.h"
#include "op_args.h"

namespace ganfast {

// The scalar arguments of gan_train_, in schema order (see ops.cpp).
struct GanArgs {
  at::IntArrayRef g_widths, g_acts;
  at::ArrayRef<double> g_act_params;
  double g_dropout;
  at::IntArrayRef d_widths, d_acts;
  at::ArrayRef<double> d_act_params;
  double d_dropout;
  int64_t d_input, noise_kind, noise_dim;
  double noise_a, noise_b;
  int64_t data_dim;
  at::ArrayRef<double> data_centers, data_cum_weights, data_std;
  int64_t batch, d_steps, g_steps, g_loss;
  at::IntArrayRef opt_kinds;
  at::ArrayRef<double> opt_d, opt_g;  // momentum, beta1, beta2, eps, step_size, gamma
};

inline core::OptimizerDesc make_optimizer(int64_t kind, at::ArrayRef<double> p, const char* name) {
  TORCH_CHECK(kind == core::kOptSgd || kind == core::kOptAdam, "ganfast: unknown optimizer kind ", kind,
              " for ", name);
  TORCH_CHECK(p.size() == 6, "ganfast: ", name, " needs 6 values (momentum, beta1, beta2, eps, step_size, gamma)");
  core::OptimizerDesc o;
  o.kind = static_cast<int>(kind);
  o.momentum = p[0];
  o.beta1 = p[1];
  o.beta2 = p[2];
  o.eps = p[3];
  o.step_size = static_cast<int64_t>(p[4]);
  o.gamma = p[5];
  TORCH_CHECK(o.momentum >= 0 && o.momentum < 1, "ganfast: ", name, " momentum must be in [0, 1)");
  TORCH_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "ganfast: ", name,
              " betas must be in [0, 1)");
  TORCH_CHECK(o.eps > 0, "ganfast: ", name, " eps must be > 0");
  TORCH_CHECK(o.step_size >= 0 && o.gamma > 0 && o.gamma <= 1, "ganfast: ", name,
              " step_lr needs step_size >= 0 and gamma in (0, 1]");
  return o;
}

inline core::GanDesc make_gan_desc(const GanArgs& a) {
  core::GanDesc g;
  g.g = make_mlp_desc(a.g_widths, a.g_acts, a.g_act_params, a.g_dropout);
  g.d = make_mlp_desc(a.d_widths, a.d_acts, a.d_act_params, a.d_dropout);
  TORCH_CHECK(a.batch >= 1, "ganfast: batch must be >= 1, got ", a.batch);
  TORCH_CHECK(a.d_steps >= 0 && a.g_steps >= 0 && a.d_steps + a.g_steps >= 1,
              "ganfast: d_steps and g_steps must be >= 0 and not both 0");
  TORCH_CHECK(a.noise_kind == core::kNoiseUniform || a.noise_kind == core::kNoiseNormal,
              "ganfast: unknown noise kind ", a.noise_kind);
  TORCH_CHECK(a.noise_dim == g.g.widths[0], "ganfast: noise_dim ", a.noise_dim, " != G's input width ",
              g.g.widths[0]);
  TORCH_CHECK(a.noise_kind == core::kNoiseUniform ? a.noise_a <= a.noise_b : a.noise_b > 0,
              "ganfast: noise needs low <= high (uniform) or std > 0 (normal)");
  g.noise = {static_cast<int>(a.noise_kind), static_cast<int>(a.noise_dim), a.noise_a, a.noise_b};
  TORCH_CHECK(a.data_dim == g.g.widths[g.g.num_layers], "ganfast: data_dim ", a.data_dim,
              " != G's output width ", g.g.widths[g.g.num_layers]);
  g.data.dim = static_cast<int>(a.data_dim);
  const int64_t K = static_cast<int64_t>(a.data_cum_weights.size());
  TORCH_CHECK(K >= 1 && static_cast<int64_t>(a.data_centers.size()) == K * a.data_dim,
              "ganfast: data needs K cumulative weights and K x data_dim centres, got ", K, " weights and ",
              a.data_centers.size(), " centre values");
  TORCH_CHECK(static_cast<int64_t>(a.data_std.size()) == a.data_dim, "ganfast: data_std needs data_dim values");
  for (double s : a.data_std) TORCH_CHECK(s > 0, "ganfast: data_std must be > 0, got ", s);
  g.data.modes = static_cast<int>(K);
  g.data.centers = a.data_centers.data();
  g.data.cum_weights = a.data_cum_weights.data();
  g.data.std = a.data_std.data();
  TORCH_CHECK(a.d_input == core::kDInputRaw || a.d_input == core::kDInputMoments, "ganfast: unknown d_input ",
              a.d_input);
  g.d_input = static_cast<int>(a.d_input);
  const int64_t d_in = a.d_input == core::kDInputMoments ? 4 : a.data_dim;
  TORCH_CHECK(g.d.widths[0] == d_in, "ganfast: D's input width must be ", d_in, ", got ", g.d.widths[0]);
  TORCH_CHECK(g.d.widths[g.d.num_layers] == 1, "ganfast: D must have one output");
  TORCH_CHECK(g.d.acts[g.d.num_layers - 1] == core::kSigmoid, "ganfast: BCE needs D's output activation to be sigmoid");
  TORCH_CHECK(a.d_input != core::kDInputMoments || (a.data_dim == 1 && a.batch >= 2),
              "ganfast: moments need 1-D data and batch >= 2");
  g.batch = a.batch;
  g.d_steps = a.d_steps;
  g.g_steps = a.g_steps;
  TORCH_CHECK(a.g_loss == core::kGLossNonSaturating || a.g_loss == core::kGLossMinimax, "ganfast: unknown g_loss ",
              a.g_loss);
  g.g_loss = static_cast<int>(a.g_loss);
  TORCH_CHECK(a.opt_kinds.size() == 2, "ganfast: opt_kinds needs (D kind, G kind)");
  g.opt_d = make_optimizer(a.opt_kinds[0], a.opt_d, "opt_d");
  g.opt_g = make_optimizer(a.opt_kinds[1], a.opt_g, "opt_g");
  return g;
}

// The population state tensors: (P, n) parameters and optimizer state, (P,) counters.
struct GanState {
  at::Tensor g_params, d_params, g_opt, d_opt, offsets, epochs, seeds, lrs;
};

inline int64_t check_gan_state(const core::GanDesc& g, const GanState& s) {
  check_float_tensor(s.g_params, "g_params");
  TORCH_CHECK(s.g_params.dim() == 2, "ganfast: g_params must be (P, ", g.g.num_params, "), got ", s.g_params.sizes());
  const int64_t P = s.g_params.size(0);
  TORCH_CHECK(s.g_params.dim() == 2 && P >= 1 && s.g_params.size(1) == g.g.num_params,
              "ganfast: g_params must be (P, ", g.g.num_params, "), got ", s.g_params.sizes());
  const auto check_2d = [&](const at::Tensor& t, const char* name, int64_t cols) {
    check_float_tensor(t, name);
    check_same(t, s.g_params, name, "g_params");
    TORCH_CHECK(t.dim() == 2 && t.size(0) == P && t.size(1) == cols, "ganfast: ", name, " must be (", P, ", ", cols,
                "), got ", t.sizes());
  };
  check_2d(s.d_params, "d_params", g.d.num_params);
  check_2d(s.g_opt, "g_opt", 2 * g.g.num_params);
  check_2d(s.d_opt, "d_opt", 2 * g.d.num_params);
  const auto check_vec = [&](const at::Tensor& t, const char* name, at::ScalarType type, int64_t cols) {
    TORCH_CHECK(t.scalar_type() == type && t.is_contiguous() && t.device() == s.g_params.device(), "ganfast: ", name,
                " must be a contiguous ", type, " tensor on ", s.g_params.device());
    TORCH_CHECK(t.numel() == P * cols, "ganfast: ", name, " needs ", P * cols, " values, got ", t.numel());
  };
  check_vec(s.offsets, "offsets", at::kLong, 1);
  check_vec(s.epochs, "epochs", at::kLong, 1);
  check_vec(s.seeds, "seeds", at::kLong, 1);
  check_vec(s.lrs, "lrs", at::kDouble, 2);
  return P;
}

// Values of the per-member counters, read on the host (the CUDA op checks a host copy).
inline void check_gan_counters(const int64_t* seeds, const int64_t* offsets, const int64_t* epochs,
                               const double* lrs, int64_t P) {
  for (int64_t k = 0; k < P; ++k) {
    TORCH_CHECK(seeds[k] >= 0, "ganfast: seeds must be >= 0, got ", seeds[k], " for member ", k);
    TORCH_CHECK(offsets[k] >= 0, "ganfast: offsets must be >= 0, got ", offsets[k], " for member ", k);
    TORCH_CHECK(epochs[k] >= 0, "ganfast: epochs must be >= 0, got ", epochs[k], " for member ", k);
    for (int j = 0; j < 2; ++j)
      TORCH_CHECK(std::isfinite(lrs[2 * k + j]) && lrs[2 * k + j] > 0, "ganfast: lrs must be finite and > 0, got ",
                  lrs[2 * k + j], " for member ", k);
  }
}

}  // namespace ganfast
