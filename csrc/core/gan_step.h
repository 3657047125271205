// One GAN of the toy loop, trained for a number of epochs without leaving native code:
// sampling (Philox), G and D forward/backward (mlp.h), the D input features (raw samples or
// devnag's 4 moments), BCE losses, and SGD-momentum / Adam updates. Torch-free; the CPU op
// runs one call per population member, in parallel.
//
// The order in which an epoch consumes its member's Philox stream is part of the contract with
// the reference trainer (ganfast/reference_train.py), see docs/design.md "Training loop".
#pragma once

#include <algorithm>
#include <vector>

#include "gan_desc.h"
#include "mlp.h"

GF_BEGIN_NAMESPACE

// --- the D input: devnag's 4 moments of the whole batch --------------------------------------

// m = (mean, std, skewness, excess kurtosis) with the biased variance, as the seeds compute them.
template <typename T>
inline void moments_forward(const T* x, int64_t N, T* m) {
  T s = T(0);
  GF_SIMD_SUM(s) for (int64_t n = 0; n < N; ++n) s += x[n];
  const T mean = s / T(N);
  T v = T(0);
  GF_SIMD_SUM(v) for (int64_t n = 0; n < N; ++n) v += (x[n] - mean) * (x[n] - mean);
  const T var = v / T(N);
  const T sd = std::sqrt(var);
  T s3 = T(0), s4 = T(0);
  GF_SIMD_SUM(s3) for (int64_t n = 0; n < N; ++n) {
    const T z = (x[n] - mean) / sd;
    s3 += z * z * z;
  }
  GF_SIMD_SUM(s4) for (int64_t n = 0; n < N; ++n) {
    const T z = (x[n] - mean) / sd;
    s4 += z * z * z * z;
  }
  m[0] = mean;
  m[1] = sd;
  m[2] = s3 / T(N);
  m[3] = s4 / T(N) - T(3);
}

// g_x from g_m, written in the centred order autograd uses (diffs, zscores), which keeps
// float32 within 1e-5 of autograd where the closed form A + Bz + Cz^2 + Dz^3 loses 3 digits.
template <typename T>
inline void moments_backward(const T* x, int64_t N, const T* m, const T* gm, T* gx) {
  const T mean = m[0], sd = m[1];
  const T c3 = gm[2] * T(3) / T(N), c4 = gm[3] * T(4) / T(N);
  T g_sd = T(0);  // through zscores = diffs / sd
  GF_SIMD_SUM(g_sd) for (int64_t n = 0; n < N; ++n) {
    const T z = (x[n] - mean) / sd;
    const T gz = c3 * z * z + c4 * z * z * z;
    g_sd -= gz * z / sd;
  }
  const T g_var = (gm[1] + g_sd) * T(0.5) / sd;
  const T c_var = g_var * T(2) / T(N);
  T sum_gd = T(0);
  GF_SIMD_SUM(sum_gd) for (int64_t n = 0; n < N; ++n) {
    const T d = x[n] - mean, z = d / sd;
    const T gd = (c3 * z * z + c4 * z * z * z) / sd + c_var * d;
    gx[n] = gd;
    sum_gd += gd;
  }
  const T shift = (gm[0] - sum_gd) / T(N);
  GF_SIMD for (int64_t n = 0; n < N; ++n) gx[n] += shift;
}

// --- BCE, exactly as torch.nn.BCELoss computes value and gradient ----------------------------

// Mean over n of -[y log p + (1 - y) log(1 - p)], logs clamped at -100. Writes dL/dp to g.
template <typename T>
inline double bce_loss_grad(const T* p, int64_t n, T y, T* g) {
  double loss = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const T lp = std::max<T>(std::log(p[i]), T(-100));
    const T l1p = std::max<T>(std::log(T(1) - p[i]), T(-100));
    loss += static_cast<double>((y - T(1)) * l1p - y * lp);
    g[i] = (p[i] - y) / std::max<T>((T(1) - p[i]) * p[i], T(1e-12)) / T(n);
  }
  return loss / static_cast<double>(n);
}

// --- optimizers (torch.optim.SGD with momentum, dampening 0; torch.optim.Adam) -------------

inline double scheduled_lr(const OptimizerDesc& o, double base, int64_t epoch) {
  if (o.step_size <= 0) return base;
  double lr = base;  // StepLR multiplies by gamma at every step_size-th epoch, as torch does
  for (int64_t k = 0; k < epoch / o.step_size; ++k) lr *= o.gamma;
  return lr;
}

// `step` counts this optimizer's previous updates (SGD's first update copies the gradient into
// the momentum buffer; Adam's bias correction uses step + 1).
template <typename T>
inline void optimizer_step(const OptimizerDesc& o, double lr, int64_t step, T* p, const T* g, T* state,
                           int64_t n) {
  if (o.kind == kOptSgd) {
    const T mu = T(o.momentum), neg_lr = T(-lr);
    if (o.momentum == 0.0) {
      GF_SIMD for (int64_t i = 0; i < n; ++i) p[i] += neg_lr * g[i];
      return;
    }
    T* buf = state;
    if (step == 0) {
      GF_SIMD for (int64_t i = 0; i < n; ++i) buf[i] = g[i];
    } else {
      GF_SIMD for (int64_t i = 0; i < n; ++i) buf[i] = buf[i] * mu + g[i];
    }
    GF_SIMD for (int64_t i = 0; i < n; ++i) p[i] += neg_lr * buf[i];
    return;
  }
  T* m = state;
  T* v = state + n;
  const double t = static_cast<double>(step + 1);
  const T b1 = T(o.beta1), b2 = T(o.beta2);
  const T step_size = T(lr / (1.0 - std::pow(o.beta1, t)));
  const T bc2_sqrt = T(std::sqrt(1.0 - std::pow(o.beta2, t)));
  const T eps = T(o.eps);
  GF_SIMD for (int64_t i = 0; i < n; ++i) {
    m[i] += (g[i] - m[i]) * (T(1) - b1);
    v[i] = v[i] * b2 + g[i] * g[i] * (T(1) - b2);
    p[i] -= step_size * (m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps));
  }
}

// --- sampling into feature-major (dim x N) blocks ---------------------------------------------

// `count` standard normals (count + count % 2 words from offset); z needs room for that many.
inline void normal_pairs(uint64_t seed, uint64_t offset, int64_t count, uint32_t* words, double* z) {
  const int64_t nw = count + (count & 1);
  philox_fill_words(seed, offset, nw, words);
  GF_SIMD for (int64_t q = 0; q < nw / 2; ++q) box_muller(words[2 * q], words[2 * q + 1], &z[2 * q], &z[2 * q + 1]);
}

template <typename T>
struct Sampler {
  const GanDesc& g;
  std::vector<uint32_t> words;
  std::vector<double> z;
  std::vector<int> comp;

  explicit Sampler(const GanDesc& desc)
      : g(desc),
        words(2 * desc.batch * std::max(desc.noise.dim, desc.data.dim) + 2),
        z(desc.batch * std::max(desc.noise.dim, desc.data.dim) + 2),
        comp(desc.batch) {}

  // Noise for G, (noise.dim x N). Uniform: N*dim words; normal: N*dim rounded up to even.
  void noise(uint64_t seed, uint64_t* offset, T* out) {
    const int64_t N = g.batch, D = g.noise.dim, count = N * D;
    if (g.noise.kind == kNoiseUniform) {
      philox_fill_words(seed, *offset, count, words.data());
      const Uniform<T> uni(g.noise.a, g.noise.b);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t j = 0; j < D; ++j) out[j * N + n] = uni(words[n * D + j]);
      *offset += count;
    } else {
      normal_pairs(seed, *offset, count, words.data(), z.data());
      for (int64_t n = 0; n < N; ++n)
        for (int64_t j = 0; j < D; ++j) out[j * N + n] = static_cast<T>(g.noise.a + g.noise.b * z[n * D + j]);
      *offset += count + (count & 1);
    }
  }

  // Real data, (data.dim x N). With K > 1 modes: first N component words, then the normals.
  void data(uint64_t seed, uint64_t* offset, T* out) {
    const DataDesc& d = g.data;
    const int64_t N = g.batch, D = d.dim, count = N * D;
    std::fill(comp.begin(), comp.end(), 0);
    if (d.modes > 1) {
      philox_fill_words(seed, *offset, N, words.data());
      for (int64_t n = 0; n < N; ++n) {
        const double u = static_cast<double>(words[n] >> 8) * 0x1p-24;
        int k = 0;
        while (k + 1 < d.modes && u >= d.cum_weights[k]) ++k;
        comp[n] = k;
      }
      *offset += N;
    }
    normal_pairs(seed, *offset, count, words.data(), z.data());
    *offset += count + (count & 1);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < D; ++j)
        out[j * N + n] = static_cast<T>(d.centers[comp[n] * D + j] + d.std[j] * z[n * D + j]);
  }
};

// --- one member, many epochs -------------------------------------------------------------

template <typename T>
class MemberTrainer {
 public:
  explicit MemberTrainer(const GanDesc& desc)
      : g_(desc), sampler_(desc),
        real_(desc.data.dim * desc.batch), noise_(desc.noise.dim * desc.batch),
        g_saved_(desc.g.sum_out_widths * desc.batch), d_saved_(desc.d.sum_out_widths * desc.batch),
        feats_(std::max<int64_t>(desc.data.dim * desc.batch, 4)), g_feats_(feats_.size()),
        g_fake_(desc.data.dim * desc.batch), d_out_grad_(desc.batch),
        grad_g_(desc.g.num_params), grad_d_(desc.d.num_params),
        scratch_(std::max(desc.g.scratch_values(desc.batch), desc.d.scratch_values(desc.batch))),
        words_(std::max<int64_t>({desc.g.scratch_words(desc.batch), desc.d.scratch_words(desc.batch), 1})) {}

  void train(MemberState<T>& s, int64_t epochs, double* metrics) {
    for (int64_t e = 0; e < epochs; ++e) {
      const int64_t epoch = *s.epoch;
      const double lr_d = scheduled_lr(g_.opt_d, s.lr_d, epoch);
      const double lr_g = scheduled_lr(g_.opt_g, s.lr_g, epoch);
      for (int64_t k = 0; k < g_.d_steps; ++k) d_step(s, lr_d, epoch * g_.d_steps + k, metrics);
      for (int64_t k = 0; k < g_.g_steps; ++k) g_step(s, lr_g, epoch * g_.g_steps + k, metrics);
      ++*s.epoch;
    }
  }

 private:
  // D input features of a (dim x N) sample block; returns D's batch size.
  int64_t features(const T* x, T* f) {
    if (g_.d_input == kDInputMoments) {
      moments_forward(x, g_.batch, f);
      return 1;
    }
    std::copy(x, x + g_.data.dim * g_.batch, f);
    return g_.batch;
  }

  const T* d_output() const { return d_saved_.data() + g_.d.saved_row(g_.d.num_layers - 1) * g_.d_batch(); }

  // D forward + BCE against `label`; accumulates D's parameter gradient into grad_d_ (and the
  // gradient wrt its input into g_feats when given). Returns the loss.
  double d_pass(MemberState<T>& s, const T* feats, T label, T* grad_params, T* g_feats, bool g_loss_minimax) {
    const int64_t M = g_.d_batch();
    const uint64_t off = *s.offset;
    *s.offset += g_.d.dropout_words(M);
    mlp_forward(g_.d, s.d_params, feats, M, true, s.seed, off, d_saved_.data(), scratch_.data(), words_.data());
    double loss = bce_loss_grad(d_output(), M, label, d_out_grad_.data());
    if (g_loss_minimax) {  // G minimises mean log(1 - D): minus the BCE against label 0
      loss = -loss;
      for (int64_t i = 0; i < M; ++i) d_out_grad_[i] = -d_out_grad_[i];
    }
    mlp_backward(g_.d, s.d_params, feats, M, true, s.seed, off, d_saved_.data(), d_out_grad_.data(),
                 grad_params, g_feats, scratch_.data(), words_.data());
    return loss;
  }

  // G forward on fresh noise; the generated (dim x N) block is left in g's saved output rows.
  uint64_t g_forward(MemberState<T>& s) {
    sampler_.noise(s.seed, s.offset, noise_.data());
    const uint64_t off = *s.offset;
    *s.offset += g_.g.dropout_words(g_.batch);
    mlp_forward(g_.g, s.g_params, noise_.data(), g_.batch, true, s.seed, off, g_saved_.data(), scratch_.data(),
                words_.data());
    return off;
  }
  const T* g_output() const { return g_saved_.data() + g_.g.saved_row(g_.g.num_layers - 1) * g_.batch; }

  void d_step(MemberState<T>& s, double lr, int64_t step, double* metrics) {
    std::fill(grad_d_.begin(), grad_d_.end(), T(0));
    sampler_.data(s.seed, s.offset, real_.data());
    features(real_.data(), feats_.data());
    metrics[kLossDReal] = d_pass(s, feats_.data(), T(1), grad_d_.data(), nullptr, false);
    g_forward(s);
    features(g_output(), feats_.data());
    metrics[kLossDFake] = d_pass(s, feats_.data(), T(0), grad_d_.data(), nullptr, false);
    optimizer_step(g_.opt_d, lr, step, s.d_params, grad_d_.data(), s.d_opt, g_.d.num_params);
  }

  void g_step(MemberState<T>& s, double lr, int64_t step, double* metrics) {
    const uint64_t g_off = g_forward(s);
    const T* fake = g_output();
    features(fake, feats_.data());
    const bool minimax = g_.g_loss == kGLossMinimax;
    metrics[kLossG] = d_pass(s, feats_.data(), minimax ? T(0) : T(1), nullptr, g_feats_.data(), minimax);
    const int64_t count = g_.data.dim * g_.batch;
    if (g_.d_input == kDInputMoments) {
      moments_backward(fake, g_.batch, feats_.data(), g_feats_.data(), g_fake_.data());
    } else {
      std::copy(g_feats_.begin(), g_feats_.begin() + count, g_fake_.begin());
    }
    std::fill(grad_g_.begin(), grad_g_.end(), T(0));
    mlp_backward(g_.g, s.g_params, noise_.data(), g_.batch, true, s.seed, g_off, g_saved_.data(), g_fake_.data(),
                 grad_g_.data(), static_cast<T*>(nullptr), scratch_.data(), words_.data());
    optimizer_step(g_.opt_g, lr, step, s.g_params, grad_g_.data(), s.g_opt, g_.g.num_params);
    double sum = 0.0, sq = 0.0;
    for (int64_t i = 0; i < count; ++i) sum += fake[i];
    const double mean = sum / static_cast<double>(count);
    for (int64_t i = 0; i < count; ++i) sq += (fake[i] - mean) * (fake[i] - mean);
    metrics[kFakeMean] = mean;
    metrics[kFakeStd] = std::sqrt(sq / static_cast<double>(count));
  }

  const GanDesc& g_;
  Sampler<T> sampler_;
  std::vector<T> real_, noise_, g_saved_, d_saved_, feats_, g_feats_, g_fake_, d_out_grad_, grad_g_, grad_d_,
      scratch_;
  std::vector<uint32_t> words_;
};

GF_END_NAMESPACE
