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

#include "divergence.h"
#include "gan_desc.h"
#include "mlp.h"

GF_BEGIN_NAMESPACE

// --- the D input: devnag's 4 moments of the whole batch --------------------------------------

// float / double overloads of the libm functions the loop below uses: an unqualified call with a
// float argument could pick the double function on the host, so the type is spelled out.
GF_HD float log_(float x) { return logf(x); }
GF_HD double log_(double x) { return log(x); }
GF_HD float sqrt_(float x) { return sqrtf(x); }
GF_HD double sqrt_(double x) { return sqrt(x); }
// std::max's semantics (returns a unless a < b, so a NaN `a` passes through), usable on devices.
template <typename T>
GF_HD T max_(T a, T b) { return a < b ? b : a; }

// The per-element pieces of the moments (GF_HD: the CUDA engine reduces the same terms over
// the batch in its own order; the host loops below add them up in theirs).
template <typename T>
GF_HD T moments_mean(T sum, int64_t N) { return sum / T(N); }
template <typename T>
GF_HD T moment_sq(T x, T mean) { return (x - mean) * (x - mean); }
template <typename T>
GF_HD T moments_sd(T sum_sq, int64_t N) { return sqrt_(sum_sq / T(N)); }  // biased variance
template <typename T>
GF_HD T moment_z(T x, T mean, T sd) { return (x - mean) / sd; }
template <typename T>
GF_HD T moment_cube(T z) { return z * z * z; }
template <typename T>
GF_HD T moment_quad(T z) { return z * z * z * z; }
template <typename T>
GF_HD void moments_finish(T mean, T sd, T sum_z3, T sum_z4, int64_t N, T* m) {
  m[0] = mean;
  m[1] = sd;
  m[2] = sum_z3 / T(N);
  m[3] = sum_z4 / T(N) - T(3);
}

// m = (mean, std, skewness, excess kurtosis) with the biased variance, as the seeds compute them.
template <typename T>
inline void moments_forward(const T* x, int64_t N, T* m) {
  T s = T(0);
  GF_SIMD_SUM(s) for (int64_t n = 0; n < N; ++n) s += x[n];
  const T mean = moments_mean(s, N);
  T v = T(0);
  GF_SIMD_SUM(v) for (int64_t n = 0; n < N; ++n) v += moment_sq(x[n], mean);
  const T sd = moments_sd(v, N);
  T s3 = T(0), s4 = T(0);
  GF_SIMD_SUM(s3) for (int64_t n = 0; n < N; ++n) s3 += moment_cube(moment_z(x[n], mean, sd));
  GF_SIMD_SUM(s4) for (int64_t n = 0; n < N; ++n) s4 += moment_quad(moment_z(x[n], mean, sd));
  moments_finish(mean, sd, s3, s4, N, m);
}

// The per-element pieces of moments_backward: coefficients from (m, g_m), then the three passes.
template <typename T>
struct MomentsGrad {
  T mean, sd, c3, c4;
};
template <typename T>
GF_HD MomentsGrad<T> moments_grad_coefs(const T* m, const T* gm, int64_t N) {
  return MomentsGrad<T>{m[0], m[1], gm[2] * T(3) / T(N), gm[3] * T(4) / T(N)};
}
// Pass 1: g_sd -= this term, summed over the batch (the gradient through zscores = diffs / sd).
template <typename T>
GF_HD T moments_grad_sd_term(const MomentsGrad<T>& c, T x) {
  const T z = (x - c.mean) / c.sd;
  const T gz = c.c3 * z * z + c.c4 * z * z * z;
  return gz * z / c.sd;
}
// Between the passes: the coefficient of diffs through the variance.
template <typename T>
GF_HD T moments_grad_cvar(const MomentsGrad<T>& c, T gm_sd, T g_sd, int64_t N) {
  const T g_var = (gm_sd + g_sd) * T(0.5) / c.sd;
  return g_var * T(2) / T(N);
}
// Pass 2: the gradient wrt x[n] before the mean's share (also summed over the batch).
template <typename T>
GF_HD T moments_grad_x(const MomentsGrad<T>& c, T c_var, T x) {
  const T d = x - c.mean, z = d / c.sd;
  return (c.c3 * z * z + c.c4 * z * z * z) / c.sd + c_var * d;
}
// Pass 3: added to every gradient: the mean's share.
template <typename T>
GF_HD T moments_grad_shift(T gm_mean, T sum_gd, int64_t N) { return (gm_mean - sum_gd) / T(N); }

// g_x from g_m, written in the centred order autograd uses (diffs, zscores), which keeps
// float32 within 1e-5 of autograd where the closed form A + Bz + Cz^2 + Dz^3 loses 3 digits.
template <typename T>
inline void moments_backward(const T* x, int64_t N, const T* m, const T* gm, T* gx) {
  const MomentsGrad<T> c = moments_grad_coefs(m, gm, N);
  T g_sd = T(0);  // through zscores = diffs / sd
  GF_SIMD_SUM(g_sd) for (int64_t n = 0; n < N; ++n) g_sd -= moments_grad_sd_term(c, x[n]);
  const T c_var = moments_grad_cvar(c, gm[1], g_sd, N);
  T sum_gd = T(0);
  GF_SIMD_SUM(sum_gd) for (int64_t n = 0; n < N; ++n) {
    const T gd = moments_grad_x(c, c_var, x[n]);
    gx[n] = gd;
    sum_gd += gd;
  }
  const T shift = moments_grad_shift(gm[0], sum_gd, N);
  GF_SIMD for (int64_t n = 0; n < N; ++n) gx[n] += shift;
}

// --- BCE, exactly as torch.nn.BCELoss computes value and gradient ----------------------------

// One sample's loss -[y log p + (1 - y) log(1 - p)], logs clamped at -100, in double.
template <typename T>
GF_HD double bce_term(T p, T y) {
  const T lp = max_<T>(log_(p), T(-100));
  const T l1p = max_<T>(log_(T(1) - p), T(-100));
  return static_cast<double>((y - T(1)) * l1p - y * lp);
}
// dL/dp of the mean over n samples.
template <typename T>
GF_HD T bce_grad(T p, T y, int64_t n) {
  return (p - y) / max_<T>((T(1) - p) * p, T(1e-12)) / T(n);
}

// dL/dp of the mean BCE over n samples into g (a loop of its own, so it vectorises).
template <typename T>
inline void bce_grad_row(const T* p, int64_t n, T y, T* g) {
  GF_SIMD for (int64_t i = 0; i < n; ++i) g[i] = bce_grad(p[i], y, n);
}

// Mean over n of -[y log p + (1 - y) log(1 - p)], logs clamped at -100: only for the metrics,
// so the engine evaluates it on the last step of a call alone (as the CUDA engine does).
template <typename T>
inline double bce_loss(const T* p, int64_t n, T y) {
  double loss = 0.0;
  for (int64_t i = 0; i < n; ++i) loss += bce_term(p[i], y);
  return loss / static_cast<double>(n);
}

// --- optimizers (torch.optim.SGD with momentum, dampening 0; torch.optim.Adam) -------------

GF_HD double scheduled_lr(const OptimizerDesc& o, double base, int64_t epoch) {
  if (o.step_size <= 0) return base;
  double lr = base;  // StepLR multiplies by gamma at every step_size-th epoch, as torch does
  for (int64_t k = 0; k < epoch / o.step_size; ++k) lr *= o.gamma;
  return lr;
}

// Per-element updates (GF_HD, shared with the CUDA engine).
template <typename T>
GF_HD T sgd_momentum_buf(T buf, T g, T mu) { return buf * mu + g; }  // steps after the first
template <typename T>
GF_HD T sgd_apply(T p, T d, T neg_lr) { return p + neg_lr * d; }

template <typename T>
struct AdamCoefs {
  T b1, b2, step_size, bc2_sqrt, eps;
};
// Adam's per-step scalars (bias corrections in double, then rounded, as torch does).
template <typename T>
GF_HD AdamCoefs<T> adam_coefs(const OptimizerDesc& o, double lr, int64_t step) {
  const double t = static_cast<double>(step + 1);
  return AdamCoefs<T>{T(o.beta1), T(o.beta2), T(lr / (1.0 - pow(o.beta1, t))), T(sqrt(1.0 - pow(o.beta2, t))),
                      T(o.eps)};
}
template <typename T>
GF_HD void adam_update(const AdamCoefs<T>& c, T& p, T g, T& m, T& v) {
  m += (g - m) * (T(1) - c.b1);
  v = v * c.b2 + g * g * (T(1) - c.b2);
  p -= c.step_size * (m / (sqrt_(v) / c.bc2_sqrt + c.eps));
}

// `step` counts this optimizer's previous updates (SGD's first update copies the gradient into
// the momentum buffer; Adam's bias correction uses step + 1).
template <typename T>
inline void optimizer_step(const OptimizerDesc& o, double lr, int64_t step, T* p, const T* g, T* state,
                           int64_t n) {
  if (o.kind == kOptSgd) {
    const T mu = T(o.momentum), neg_lr = T(-lr);
    if (o.momentum == 0.0) {
      GF_SIMD for (int64_t i = 0; i < n; ++i) p[i] = sgd_apply(p[i], g[i], neg_lr);
      return;
    }
    T* buf = state;
    if (step == 0) {
      GF_SIMD for (int64_t i = 0; i < n; ++i) buf[i] = g[i];
    } else {
      GF_SIMD for (int64_t i = 0; i < n; ++i) buf[i] = sgd_momentum_buf(buf[i], g[i], mu);
    }
    GF_SIMD for (int64_t i = 0; i < n; ++i) p[i] = sgd_apply(p[i], buf[i], neg_lr);
    return;
  }
  T* m = state;
  T* v = state + n;
  const AdamCoefs<T> c = adam_coefs<T>(o, lr, step);
  GF_SIMD for (int64_t i = 0; i < n; ++i) adam_update(c, p[i], g[i], m[i], v[i]);
}

// --- sampling into feature-major (dim x N) blocks ---------------------------------------------

// One value of a normal draw: mean + std * z in double, then rounded to T.
template <typename T>
GF_HD T normal_value(double mean, double std, double z) {
  return static_cast<T>(mean + std * z);
}

// The mixture component of a sample from its component word: u = (w >> 8) 2^-24 against the
// cumulative weights (the last component takes whatever rounding leaves above them).
GF_HD int mixture_component(uint32_t word, const double* cum_weights, int modes) {
  const double u = static_cast<double>(word >> 8) * 0x1p-24;
  int k = 0;
  while (k + 1 < modes && u >= cum_weights[k]) ++k;
  return k;
}

// `count` standard normals (count + count % 2 words from offset); z needs room for that many.
inline void normal_pairs(uint64_t seed, uint64_t offset, int64_t count, uint32_t* words, double* z) {
  const int64_t nw = count + (count & 1);
  philox_fill_words(seed, offset, nw, words);
  GF_SIMD for (int64_t q = 0; q < nw / 2; ++q) box_muller(words[2 * q], words[2 * q + 1], &z[2 * q], &z[2 * q + 1]);
}

// The samplers draw their words and normals in the stream's (sample-major) order and transpose
// them once to the kernels' unit-major blocks, so that every transform below is a contiguous,
// vectorised loop (as the dropout masks in mlp.h).
template <typename T>
struct Sampler {
  const GanDesc& g;
  std::vector<uint32_t> words;  // drawn words, then (uniform noise) their transpose
  std::vector<double> z, zt;    // standard normals as drawn, and transposed
  std::vector<int> comp;

  explicit Sampler(const GanDesc& desc)
      : g(desc),
        words(2 * desc.batch * std::max(desc.noise.dim, desc.data.dim) + 2),
        z(desc.batch * std::max(desc.noise.dim, desc.data.dim) + 2),
        zt(desc.batch * std::max(desc.noise.dim, desc.data.dim)),
        comp(desc.batch) {}

  // Noise for G, (noise.dim x N). Uniform: N*dim words; normal: N*dim rounded up to even.
  void noise(uint64_t seed, uint64_t* offset, T* out) {
    const int64_t N = g.batch, D = g.noise.dim, count = N * D;
    if (g.noise.kind == kNoiseUniform) {
      philox_fill_words(seed, *offset, count, words.data());
      uint32_t* wt = words.data() + count;
      transpose(words.data(), N, D, wt);
      const Uniform<T> uni(g.noise.a, g.noise.b);
      GF_SIMD for (int64_t i = 0; i < count; ++i) out[i] = uni(wt[i]);
      *offset += count;
    } else {
      normal_pairs(seed, *offset, count, words.data(), z.data());
      transpose(z.data(), N, D, zt.data());
      GF_SIMD for (int64_t i = 0; i < count; ++i) out[i] = normal_value<T>(g.noise.a, g.noise.b, zt[i]);
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
      for (int64_t n = 0; n < N; ++n) comp[n] = mixture_component(words[n], d.cum_weights, d.modes);
      *offset += N;
    }
    normal_pairs(seed, *offset, count, words.data(), z.data());
    *offset += count + (count & 1);
    transpose(z.data(), N, D, zt.data());
    for (int64_t j = 0; j < D; ++j) {
      const double sd = d.std[j];
      const double* zj = zt.data() + j * N;
      GF_SIMD for (int64_t n = 0; n < N; ++n) out[j * N + n] = normal_value<T>(d.centers[comp[n] * D + j], sd, zj[n]);
    }
  }
};

// --- one member, many epochs -------------------------------------------------------------

// The epoch loop of every CPU trainer (MemberTrainer below; FastTrainer in fast_step.h, which
// must give the same bits): the epoch's learning rates, d_steps D steps then g_steps G steps,
// the divergence checks of divergence.h. The metrics are those of the call's last D and G
// steps: only those compute them. Trainer has d_step/g_step(s, lr, step, metrics or nullptr).
template <typename T, typename Trainer>
void train_epochs(const GanDesc& g, Trainer& t, MemberState<T>& s, int64_t epochs, double* metrics) {
  for (int64_t e = 0; e < epochs; ++e) {
    if (frozen_epoch_passes(s)) continue;
    const int64_t epoch = *s.epoch;
    const double lr_d = scheduled_lr(g.opt_d, s.lr_d, epoch);
    const double lr_g = scheduled_lr(g.opt_g, s.lr_g, epoch);
    const bool last_epoch = e + 1 == epochs;
    for (int64_t k = 0; k < g.d_steps; ++k)
      t.d_step(s, lr_d, epoch * g.d_steps + k, last_epoch && k + 1 == g.d_steps ? metrics : nullptr);
    for (int64_t k = 0; k < g.g_steps; ++k)
      t.g_step(s, lr_g, epoch * g.g_steps + k, last_epoch && k + 1 == g.g_steps ? metrics : nullptr);
    ++*s.epoch;
    mark_if_diverged(g, s, last_epoch ? metrics : nullptr);
  }
  nan_metrics_if_diverged(s, metrics);
}


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
        words_(std::max<int64_t>({desc.g.scratch_words(desc.batch), desc.d.scratch_words(desc.batch), 1})),
        g_masks_(desc.g.dropout_words(desc.batch)),
        d_masks_(desc.d.dropout_words(desc.d_batch())) {}

  void train(MemberState<T>& s, int64_t epochs, double* metrics) { train_epochs(g_, *this, s, epochs, metrics); }

 private:
  template <typename U, typename Trainer>
  friend void train_epochs(const GanDesc&, Trainer&, MemberState<U>&, int64_t, double*);

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

  // D forward + BCE against `label`; accumulates D's parameter gradient into grad_params (and the
  // gradient wrt its input into g_feats when given). Returns the loss when want_loss, else 0.
  double d_pass(MemberState<T>& s, const T* feats, T label, T* grad_params, T* g_feats, bool g_loss_minimax,
                bool want_loss) {
    const int64_t M = g_.d_batch();
    const uint64_t off = *s.offset;
    *s.offset += g_.d.dropout_words(M);
    mlp_forward(g_.d, s.d_params, feats, M, true, s.seed, off, d_saved_.data(), scratch_.data(), words_.data(),
                d_masks_.data());
    bce_grad_row(d_output(), M, label, d_out_grad_.data());
    double loss = want_loss ? bce_loss(d_output(), M, label) : 0.0;
    if (g_loss_minimax) {  // G minimises mean log(1 - D): minus the BCE against label 0
      loss = -loss;
      for (int64_t i = 0; i < M; ++i) d_out_grad_[i] = -d_out_grad_[i];
    }
    mlp_backward(g_.d, s.d_params, feats, M, true, s.seed, off, d_saved_.data(), d_out_grad_.data(),
                 grad_params, g_feats, scratch_.data(), words_.data(), d_masks_.data());
    return loss;
  }

  // G forward on fresh noise; the generated (dim x N) block is left in g's saved output rows.
  uint64_t g_forward(MemberState<T>& s) {
    sampler_.noise(s.seed, s.offset, noise_.data());
    const uint64_t off = *s.offset;
    *s.offset += g_.g.dropout_words(g_.batch);
    mlp_forward(g_.g, s.g_params, noise_.data(), g_.batch, true, s.seed, off, g_saved_.data(), scratch_.data(),
                words_.data(), g_masks_.data());
    return off;
  }
  const T* g_output() const { return g_saved_.data() + g_.g.saved_row(g_.g.num_layers - 1) * g_.batch; }

  // metrics: where this step's losses go, or null when nobody reads them.
  void d_step(MemberState<T>& s, double lr, int64_t step, double* metrics) {
    const bool want = metrics != nullptr;
    std::fill(grad_d_.begin(), grad_d_.end(), T(0));
    sampler_.data(s.seed, s.offset, real_.data());
    features(real_.data(), feats_.data());
    const double real_loss = d_pass(s, feats_.data(), T(1), grad_d_.data(), nullptr, false, want);
    g_forward(s);
    features(g_output(), feats_.data());
    const double fake_loss = d_pass(s, feats_.data(), T(0), grad_d_.data(), nullptr, false, want);
    if (want) {
      metrics[kLossDReal] = real_loss;
      metrics[kLossDFake] = fake_loss;
    }
    optimizer_step(g_.opt_d, lr, step, s.d_params, grad_d_.data(), s.d_opt, g_.d.num_params);
  }

  void g_step(MemberState<T>& s, double lr, int64_t step, double* metrics) {
    const uint64_t g_off = g_forward(s);
    const T* fake = g_output();
    features(fake, feats_.data());
    const bool minimax = g_.g_loss == kGLossMinimax;
    const double g_loss = d_pass(s, feats_.data(), minimax ? T(0) : T(1), nullptr, g_feats_.data(), minimax,
                                 metrics != nullptr);
    const int64_t count = g_.data.dim * g_.batch;
    if (g_.d_input == kDInputMoments) {
      moments_backward(fake, g_.batch, feats_.data(), g_feats_.data(), g_fake_.data());
    } else {
      std::copy(g_feats_.begin(), g_feats_.begin() + count, g_fake_.begin());
    }
    std::fill(grad_g_.begin(), grad_g_.end(), T(0));
    mlp_backward(g_.g, s.g_params, noise_.data(), g_.batch, true, s.seed, g_off, g_saved_.data(), g_fake_.data(),
                 grad_g_.data(), static_cast<T*>(nullptr), scratch_.data(), words_.data(), g_masks_.data());
    optimizer_step(g_.opt_g, lr, step, s.g_params, grad_g_.data(), s.g_opt, g_.g.num_params);
    if (metrics == nullptr) return;
    metrics[kLossG] = g_loss;
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
  // Each net's dropout masks from its last forward pass, for the backward pass that follows
  // (drawn once instead of twice; null data() when the net has no dropout).
  std::vector<uint32_t> g_masks_, d_masks_;
};

GF_END_NAMESPACE
