// The engine's interface: the packed description of a toy GAN (read into a core::GanDesc) and
// the checks of the state tensors; shared by the CPU and CUDA engines. Python validates a GanSpec
// first (ganfast/gan.py); these checks guard direct calls of torch.ops.ganfast.gan_train_.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "core/gan_desc.h"
#include "op_args.h"

namespace ganfast {

// The description of one toy GAN reaches the engine as ONE tensor, packed once per GanSpec by
// ganfast/engine.py (`description`). float64, 1-D, contiguous, on the CPU; a header, then the
// fields in this order. A scalar is one value; a list is its length, then its values; integer
// fields hold exact integers. Adding a field is one line here (read it where it belongs) and
// one entry in engine.description_fields, and a bump of kDescVersion on both sides.
//
//   magic 0x6A4E5, version, number of values (header included)
//   G: widths (list), acts (list), act_params (list), dropout
//   D: widths (list), acts (list), act_params (list), dropout
//   d_input, noise_kind, noise_dim, noise_a, noise_b        (a, b: low, high | mean, std)
//   data_dim, data_centers (list, K x dim), data_cum_weights (list, K), data_std (list, dim)
//   batch, d_steps, g_steps, g_loss
//   opt_d_kind, opt_d_momentum, opt_d_beta1, opt_d_beta2, opt_d_eps, opt_d_step_size, opt_d_gamma
//   opt_g_kind, ... opt_g_gamma (the same)
constexpr double kDescMagic = 0x6A4E5;
constexpr int64_t kDescVersion = 1;

// Reads the fields of a packed description in order, checking that each is there.
class DescReader {
 public:
  explicit DescReader(const at::Tensor& t) {
    TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kDouble && t.dim() == 1 && t.is_contiguous(),
                "ganfast: the GAN description must be a contiguous 1-D float64 CPU tensor "
                "(ganfast.engine.description), got ", t.scalar_type(), " ", t.sizes(), " on ", t.device());
    p_ = t.data_ptr<double>();
    n_ = t.numel();
    TORCH_CHECK(n_ >= 3 && p_[0] == kDescMagic, "ganfast: not a GAN description (ganfast.engine.description)");
    TORCH_CHECK(p_[1] == static_cast<double>(kDescVersion), "ganfast: GAN description of layout version ", p_[1],
                ", this build reads version ", kDescVersion, " (rebuild ganfast or repack the description)");
    TORCH_CHECK(p_[2] == static_cast<double>(n_), "ganfast: the GAN description says it has ", p_[2],
                " values but has ", n_);
    pos_ = 3;
  }
  double real(const char* what) {
    TORCH_CHECK(pos_ < n_, "ganfast: the GAN description ends before ", what);
    return p_[pos_++];
  }
  int64_t integer(const char* what) {
    const double v = real(what);
    TORCH_CHECK(std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9007199254740992.0, "ganfast: ", what,
                " must be an integer, got ", v);
    return static_cast<int64_t>(v);
  }
  at::ArrayRef<double> reals(const char* what) {
    const int64_t n = integer(what);
    TORCH_CHECK(n >= 0 && n <= n_ - pos_, "ganfast: the GAN description ends inside ", what);
    const at::ArrayRef<double> out(p_ + pos_, static_cast<size_t>(n));
    pos_ += n;
    return out;
  }
  std::vector<int64_t> integers(const char* what) {
    std::vector<int64_t> out;
    for (const double v : reals(what)) {
      TORCH_CHECK(std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9007199254740992.0, "ganfast: ", what,
                  " must hold integers, got ", v);
      out.push_back(static_cast<int64_t>(v));
    }
    return out;
  }
  void finish() const {
    TORCH_CHECK(pos_ == n_, "ganfast: the GAN description has ", n_ - pos_, " values after its last field");
  }

 private:
  const double* p_ = nullptr;
  int64_t n_ = 0, pos_ = 0;
};

inline core::MlpDesc read_mlp(DescReader& r, const char* widths, const char* acts, const char* act_params,
                              const char* dropout) {
  const std::vector<int64_t> w = r.integers(widths), a = r.integers(acts);
  const at::ArrayRef<double> p = r.reals(act_params);
  return make_mlp_desc(w, a, p, r.real(dropout));
}

inline core::OptimizerDesc read_optimizer(DescReader& r, const std::string& name) {
  const auto field = [&](const char* f) { return name + "_" + f; };
  core::OptimizerDesc o;
  const int64_t kind = r.integer(field("kind").c_str());
  TORCH_CHECK(kind == core::kOptSgd || kind == core::kOptAdam, "ganfast: unknown optimizer kind ", kind,
              " for ", name);
  o.kind = static_cast<int>(kind);
  o.momentum = r.real(field("momentum").c_str());
  o.beta1 = r.real(field("beta1").c_str());
  o.beta2 = r.real(field("beta2").c_str());
  o.eps = r.real(field("eps").c_str());
  o.step_size = r.integer(field("step_size").c_str());
  o.gamma = r.real(field("gamma").c_str());
  TORCH_CHECK(o.momentum >= 0 && o.momentum < 1, "ganfast: ", name, " momentum must be in [0, 1)");
  TORCH_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "ganfast: ", name,
              " betas must be in [0, 1)");
  TORCH_CHECK(o.eps > 0, "ganfast: ", name, " eps must be > 0");
  TORCH_CHECK(o.step_size >= 0 && o.gamma > 0 && o.gamma <= 1, "ganfast: ", name,
              " step_lr needs step_size >= 0 and gamma in (0, 1]");
  return o;
}

// The GanDesc of a packed description, every field checked. Its data arrays point into `desc`,
// which must outlive it.
inline core::GanDesc make_gan_desc(const at::Tensor& desc) {
  DescReader r(desc);
  core::GanDesc g;
  g.g = read_mlp(r, "g_widths", "g_acts", "g_act_params", "g_dropout");
  g.d = read_mlp(r, "d_widths", "d_acts", "d_act_params", "d_dropout");
  const int64_t d_input = r.integer("d_input"), noise_kind = r.integer("noise_kind");
  const int64_t noise_dim = r.integer("noise_dim");
  const double noise_a = r.real("noise_a"), noise_b = r.real("noise_b");
  const int64_t data_dim = r.integer("data_dim");
  const at::ArrayRef<double> centers = r.reals("data_centers"), cum = r.reals("data_cum_weights");
  const at::ArrayRef<double> std = r.reals("data_std");
  g.batch = r.integer("batch");
  g.d_steps = r.integer("d_steps");
  g.g_steps = r.integer("g_steps");
  const int64_t g_loss = r.integer("g_loss");
  g.opt_d = read_optimizer(r, "opt_d");
  g.opt_g = read_optimizer(r, "opt_g");
  r.finish();

  TORCH_CHECK(g.batch >= 1, "ganfast: batch must be >= 1, got ", g.batch);
  TORCH_CHECK(g.d_steps >= 0 && g.g_steps >= 0 && g.d_steps + g.g_steps >= 1,
              "ganfast: d_steps and g_steps must be >= 0 and not both 0");
  TORCH_CHECK(noise_kind == core::kNoiseUniform || noise_kind == core::kNoiseNormal,
              "ganfast: unknown noise kind ", noise_kind);
  TORCH_CHECK(noise_dim == g.g.widths[0], "ganfast: noise_dim ", noise_dim, " != G's input width ", g.g.widths[0]);
  TORCH_CHECK(noise_kind == core::kNoiseUniform ? noise_a <= noise_b : noise_b > 0,
              "ganfast: noise needs low <= high (uniform) or std > 0 (normal)");
  g.noise = {static_cast<int>(noise_kind), static_cast<int>(noise_dim), noise_a, noise_b};
  TORCH_CHECK(data_dim == g.g.widths[g.g.num_layers], "ganfast: data_dim ", data_dim, " != G's output width ",
              g.g.widths[g.g.num_layers]);
  g.data.dim = static_cast<int>(data_dim);
  const int64_t K = static_cast<int64_t>(cum.size());
  TORCH_CHECK(K >= 1 && static_cast<int64_t>(centers.size()) == K * data_dim,
              "ganfast: data needs K cumulative weights and K x data_dim centres, got ", K, " weights and ",
              centers.size(), " centre values");
  TORCH_CHECK(static_cast<int64_t>(std.size()) == data_dim, "ganfast: data_std needs data_dim values");
  for (double s : std) TORCH_CHECK(s > 0, "ganfast: data_std must be > 0, got ", s);
  g.data.modes = static_cast<int>(K);
  g.data.centers = centers.data();
  g.data.cum_weights = cum.data();
  g.data.std = std.data();
  TORCH_CHECK(d_input == core::kDInputRaw || d_input == core::kDInputMoments, "ganfast: unknown d_input ", d_input);
  g.d_input = static_cast<int>(d_input);
  const int64_t d_in = d_input == core::kDInputMoments ? 4 : data_dim;
  TORCH_CHECK(g.d.widths[0] == d_in, "ganfast: D's input width must be ", d_in, ", got ", g.d.widths[0]);
  TORCH_CHECK(g.d.widths[g.d.num_layers] == 1, "ganfast: D must have one output");
  TORCH_CHECK(g.d.acts[g.d.num_layers - 1] == core::kSigmoid, "ganfast: BCE needs D's output activation to be sigmoid");
  TORCH_CHECK(d_input != core::kDInputMoments || (data_dim == 1 && g.batch >= 2),
              "ganfast: moments need 1-D data and batch >= 2");
  TORCH_CHECK(g_loss == core::kGLossNonSaturating || g_loss == core::kGLossMinimax, "ganfast: unknown g_loss ",
              g_loss);
  g.g_loss = static_cast<int>(g_loss);
  return g;
}

// The population state tensors: (P, n) parameters and optimizer state, (P,) counters.
struct GanState {
  at::Tensor g_params, d_params, g_opt, d_opt, offsets, epochs, diverged, seeds, lrs;
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
  check_vec(s.diverged, "diverged", at::kLong, 1);
  check_vec(s.seeds, "seeds", at::kLong, 1);
  check_vec(s.lrs, "lrs", at::kDouble, 2);
  return P;
}

// Values of the per-member counters, read on the host (the CUDA op checks a host copy).
inline void check_gan_counters(const int64_t* seeds, const int64_t* offsets, const int64_t* epochs,
                               const int64_t* diverged, const double* lrs, int64_t P) {
  for (int64_t k = 0; k < P; ++k) {
    TORCH_CHECK(diverged[k] >= -1 && diverged[k] <= epochs[k], "ganfast: diverged must be -1 or an epoch count <= ",
                "epochs, got ", diverged[k], " for member ", k, " (epochs ", epochs[k], ")");
    TORCH_CHECK(seeds[k] >= 0, "ganfast: seeds must be >= 0, got ", seeds[k], " for member ", k);
    TORCH_CHECK(offsets[k] >= 0, "ganfast: offsets must be >= 0, got ", offsets[k], " for member ", k);
    TORCH_CHECK(epochs[k] >= 0, "ganfast: epochs must be >= 0, got ", epochs[k], " for member ", k);
    for (int j = 0; j < 2; ++j)
      TORCH_CHECK(std::isfinite(lrs[2 * k + j]) && lrs[2 * k + j] > 0, "ganfast: lrs must be finite and > 0, got ",
                  lrs[2 * k + j], " for member ", k);
  }
}

}  // namespace ganfast
