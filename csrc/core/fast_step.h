// The training loop of gan_step.h on the fast path: the same steps, the same Philox words in the
// same order, with the networks of fast_mlp.h (widths fixed at compile time) on batches padded to
// whole chunks. A fixed table of shapes (the toy presets', train_fast below) has kernels; every
// other configuration stays on MemberTrainer. docs/design.md, "The engine's fast path", states
// what differs from the generic path (the order of the batch sums) and the tolerances.
#pragma once

#include <vector>

#include "fast_mlp.h"
#include "gan_step.h"

#if defined(GF_HAVE_VEC)

GF_BEGIN_NAMESPACE

// --- the moments of a padded row, vectorised (per element the formulas of gan_step.h) -------

template <typename T>
GF_NOINLINE void moments_forward_fast(const T* x, int64_t N, T* m) {
  using V = vec_t<T>;
  constexpr int64_t L = Vec<T>::kLanes;
  const int64_t full = N / L, tail = N % L;
  V s = V{};
  for (int64_t i = 0; i < full; ++i) s += vload(x + i * L);
  if (tail) s += vkeep_first(vload(x + full * L), static_cast<int>(tail));
  const T mean = moments_mean(vsum(s), N);
  V v = V{};
  for (int64_t i = 0; i < full; ++i) {
    const V d = vload(x + i * L) - mean;
    v += d * d;
  }
  if (tail) {
    const V d = vload(x + full * L) - mean;
    v += vkeep_first(d * d, static_cast<int>(tail));
  }
  const T sd = moments_sd(vsum(v), N);
  V s3 = V{}, s4 = V{};
  auto add = [&](V xv, int valid) __attribute__((always_inline)) {
    const V z = (xv - mean) / sd;
    const V z3 = z * z * z, z4 = z * z * z * z;
    s3 += vkeep_first(z3, valid);
    s4 += vkeep_first(z4, valid);
  };
  for (int64_t i = 0; i < full; ++i) add(vload(x + i * L), static_cast<int>(L));
  if (tail) add(vload(x + full * L), static_cast<int>(tail));
  moments_finish(mean, sd, vsum(s3), vsum(s4), N, m);
}

// g_x from g_m (moments_backward of gan_step.h), the mean's share added, into a padded row
// whose padding lanes become 0.
template <typename T>
GF_NOINLINE void moments_backward_fast(const T* x, int64_t N, const T* m, const T* gm, T* gx) {
  using V = vec_t<T>;
  constexpr int64_t L = Vec<T>::kLanes;
  const int64_t vecs = (N + L - 1) / L;
  const int last_valid = static_cast<int>(N - (vecs - 1) * L);
  const MomentsGrad<T> c = moments_grad_coefs(m, gm, N);
  // moments_grad_sd_term / moments_grad_x on vectors, the same operations in the same order.
  V g_sd = V{};
  for (int64_t i = 0; i < vecs; ++i) {
    const V z = (vload(x + i * L) - c.mean) / c.sd;
    const V gz = c.c3 * z * z + c.c4 * z * z * z;
    const V term = gz * z / c.sd;
    g_sd += i + 1 < vecs ? term : vkeep_first(term, last_valid);
  }
  const T c_var = moments_grad_cvar(c, gm[1], T(0) - vsum(g_sd), N);
  V sum_gd = V{};
  for (int64_t i = 0; i < vecs; ++i) {
    const V d = vload(x + i * L) - c.mean, z = d / c.sd;
    V gd = (c.c3 * z * z + c.c4 * z * z * z) / c.sd + c_var * d;
    if (i + 1 == vecs) gd = vkeep_first(gd, last_valid);
    vstore(gx + i * L, gd);
    sum_gd += gd;
  }
  const T shift = moments_grad_shift(gm[0], vsum(sum_gd), N);
  for (int64_t i = 0; i < vecs; ++i) {
    const V g = vload(gx + i * L) + shift;
    vstore(gx + i * L, i + 1 < vecs ? g : vkeep_first(g, last_valid));
  }
}

// --- one member on the fast path ---------------------------------------------------------------

// Acts<hidden, output>: a network's activation codes, fixed in the table.
template <int Hidden, int Output>
struct Acts {
  static constexpr int kHidden = Hidden, kOutput = Output;
};

template <typename T, class GS, class GA, class DS, class DA, bool kMoments>
class FastTrainer {
  using GNet = FastNet<T, GS, GA::kHidden, GA::kOutput>;
  using DNet = FastNet<T, DS, DA::kHidden, DA::kOutput>;
  using DNet1 = FastNet1<T, DS, DA::kHidden, DA::kOutput>;
  static constexpr int64_t kChunk = GNet::kChunk;

 public:
  // The configurations this instantiation trains.
  static bool matches(const GanDesc& g) {
    if (!GS::matches(g.g) || !DS::matches(g.d) || (g.d_input == kDInputMoments) != kMoments) return false;
    if (!GNet::matches_acts(g.g) || !DNet::matches_acts(g.d)) return false;
    if (GS::kIn != g.noise.dim || DS::kOut != 1) return false;
    if (kMoments) return GS::kOut == 1 && !g.d.has_dropout();
    return GS::kOut == g.data.dim && DS::kIn == g.data.dim;
  }

  explicit FastTrainer(const GanDesc& desc)
      : g_(desc), sampler_(desc), N_(desc.batch), Np_((desc.batch + kChunk - 1) / kChunk * kChunk),
        noise_(desc.noise.dim * Np_), real_(desc.data.dim * Np_), g_saved_(GS::kSavedRows * Np_),
        g_masks_(desc.g.has_dropout() ? GS::kSavedRows * Np_ : 0),
        d_saved_(kMoments ? DS::kSavedRows : DS::kSavedRows * Np_),
        d_masks_(!kMoments && desc.d.has_dropout() ? DS::kSavedRows * Np_ : 0), feats_(4), g_feats_(kMoments ? 4 : DS::kIn * Np_),
        g_fake_(GS::kOut * Np_), d_out_grad_(Np_), grad_g_(GS::kParams), grad_d_(DS::kParams),
        acc_g_(GNet::kAccValues), acc_d_(kMoments ? 0 : DNet::kAccValues),
        back_(std::max<int64_t>(GNet::kBackScratch, kMoments ? 0 : DNet::kBackScratch)),
        tmp_(std::max(desc.noise.dim, desc.data.dim) * desc.batch),
        words_(std::max<int64_t>(desc.batch * std::max(GS::kMaxWidth, DS::kMaxWidth), 1)) {
    gdr_ = dropout_of(desc.g);
    ddr_ = dropout_of(desc.d);
  }

  void train(MemberState<T>& s, int64_t epochs, double* metrics) { train_epochs(g_, *this, s, epochs, metrics); }

 private:
  template <typename U, typename Trainer>
  friend void train_epochs(const GanDesc&, Trainer&, MemberState<U>&, int64_t, double*);

  using GDrop = FastDropout<T>;

  static GDrop dropout_of(const MlpDesc& d) {
    GDrop dr;
    dr.on = d.has_dropout();
    if (dr.on) {
      dr.thr = dropout_threshold(d.dropout);
      dr.scale = static_cast<T>(1.0 / (1.0 - d.dropout));
    }
    return dr;
  }

  // A (dim x N) sample block from `fill` (Sampler's layout) into padded rows.
  template <typename F>
  void sample_rows(int dim, T* rows, F&& fill) {
    if (dim == 1 || Np_ == N_) {
      fill(rows);
      return;
    }
    fill(tmp_.data());
    for (int j = 0; j < dim; ++j) std::copy(tmp_.data() + j * N_, tmp_.data() + (j + 1) * N_, rows + j * Np_);
  }

  // The hidden layers' dropout words of a forward pass from `off`, unit-major (rows of Np_).
  GF_NOINLINE void draw_masks(const MlpDesc& d, uint64_t seed, uint64_t off, uint32_t* masks) {
    for (int l = 0; l + 1 < d.num_layers; ++l) {
      const int w = d.widths[l + 1];
      const uint64_t base = off + static_cast<uint64_t>(N_ * d.saved_row(l));
      uint32_t* rows = masks + d.saved_row(l) * Np_;
      if (w % 4 == 0) {
        philox_fill_unit_major(seed, base, w, Np_, Np_, rows);
      } else {  // drawn in stream order and transposed; the padding lanes' words left as they are
        philox_fill_words(seed, base, N_ * w, words_.data());
        for (int64_t n = 0; n < N_; ++n)
          for (int j = 0; j < w; ++j) rows[j * Np_ + n] = words_[n * w + j];
      }
    }
  }

  const T* g_output() const { return g_saved_.data() + GS::saved_row(GS::kLayers - 1) * Np_; }

  // G forward on fresh noise (its output rows in g_saved_); returns the dropout words' offset.
  GF_NOINLINE uint64_t g_forward(MemberState<T>& s) {
    sample_rows(g_.noise.dim, noise_.data(), [&](T* out) { sampler_.noise(s.seed, s.offset, out); });
    const uint64_t off = *s.offset;
    *s.offset += g_.g.dropout_words(N_);
    if (gdr_.on) draw_masks(g_.g, s.seed, off, g_masks_.data());
    GNet::forward(g_.g, s.g_params, noise_.data(), Np_, g_saved_.data(), g_masks_.data(), gdr_);
    return off;
  }

  // D forward + BCE against `label` on the features (4 moments, or raw rows of Np_); D's
  // parameter gradient into grad_params (moments) or acc_d_'s lanes (raw) when wanted, its input
  // gradient into g_feats_ when wanted. Returns the loss when want_loss.
  GF_NOINLINE double d_pass(MemberState<T>& s, const T* feats, T label, bool want_params, bool want_input, bool minimax,
                bool want_loss) {
    if constexpr (kMoments) {
      *s.offset += g_.d.dropout_words(1);  // (0: no dropout on this path)
      DNet1::forward(g_.d, s.d_params, feats, d_saved_.data());
      const T p = d_saved_[DS::saved_row(DS::kLayers - 1)];
      T g = bce_grad(p, label, int64_t{1});
      double loss = want_loss ? bce_loss(&p, 1, label) : 0.0;
      if (minimax) {
        loss = -loss;
        g = -g;
      }
      DNet1::backward(g_.d, s.d_params, feats, d_saved_.data(), &g, want_params ? grad_d_.data() : nullptr,
                      want_input ? g_feats_.data() : nullptr);
      return loss;
    } else {
      const uint64_t off = *s.offset;
      *s.offset += g_.d.dropout_words(N_);
      if (ddr_.on) draw_masks(g_.d, s.seed, off, d_masks_.data());
      DNet::forward(g_.d, s.d_params, feats, Np_, d_saved_.data(), d_masks_.data(), ddr_);
      const T* p = d_saved_.data() + DS::saved_row(DS::kLayers - 1) * Np_;
      T* gp = d_out_grad_.data();  // its padding lanes stay 0
      bce_grad_row(p, N_, label, gp);
      double loss = want_loss ? bce_loss(p, N_, label) : 0.0;
      if (minimax) {
        loss = -loss;
        for (int64_t i = 0; i < N_; ++i) gp[i] = -gp[i];
      }
      typename DNet::Back bk{gp, want_params ? acc_d_.data() : nullptr, want_input ? g_feats_.data() : nullptr,
                             back_.data()};
      DNet::backward(g_.d, s.d_params, feats, d_saved_.data(), Np_, d_masks_.data(), ddr_, bk);
      return loss;
    }
  }

  const T* features(const T* rows) {
    if constexpr (kMoments) {
      moments_forward_fast(rows, N_, feats_.data());
      return feats_.data();
    } else {
      return rows;
    }
  }

  GF_NOINLINE void d_step(MemberState<T>& s, double lr, int64_t step, double* metrics) {
    const bool want = metrics != nullptr;
    std::fill(grad_d_.begin(), grad_d_.end(), T(0));
    if constexpr (!kMoments) std::fill(acc_d_.begin(), acc_d_.end(), T(0));
    sample_rows(g_.data.dim, real_.data(), [&](T* out) { sampler_.data(s.seed, s.offset, out); });
    const double real_loss = d_pass(s, features(real_.data()), T(1), true, false, false, want);
    g_forward(s);
    const double fake_loss = d_pass(s, features(g_output()), T(0), true, false, false, want);
    if constexpr (!kMoments) DNet::reduce(acc_d_.data(), grad_d_.data());
    if (want) {
      metrics[kLossDReal] = real_loss;
      metrics[kLossDFake] = fake_loss;
    }
    optimizer_step(g_.opt_d, lr, step, s.d_params, grad_d_.data(), s.d_opt, g_.d.num_params);
  }

  GF_NOINLINE void g_step(MemberState<T>& s, double lr, int64_t step, double* metrics) {
    g_forward(s);
    const T* fake = g_output();
    const bool minimax = g_.g_loss == kGLossMinimax;
    const double g_loss = d_pass(s, features(fake), minimax ? T(0) : T(1), false, true, minimax, metrics != nullptr);
    const T* g_fake = g_feats_.data();  // raw: D's input gradient is G's output gradient
    if constexpr (kMoments) {
      moments_backward_fast(fake, N_, feats_.data(), g_feats_.data(), g_fake_.data());
      g_fake = g_fake_.data();
    }
    std::fill(acc_g_.begin(), acc_g_.end(), T(0));
    typename GNet::Back bk{g_fake, acc_g_.data(), nullptr, back_.data()};
    GNet::backward(g_.g, s.g_params, noise_.data(), g_saved_.data(), Np_, g_masks_.data(), gdr_, bk);
    std::fill(grad_g_.begin(), grad_g_.end(), T(0));
    GNet::reduce(acc_g_.data(), grad_g_.data());
    optimizer_step(g_.opt_g, lr, step, s.g_params, grad_g_.data(), s.g_opt, g_.g.num_params);
    if (metrics == nullptr) return;
    metrics[kLossG] = g_loss;
    const int64_t dim = GS::kOut, count = dim * N_;
    double sum = 0.0, sq = 0.0;
    for (int j = 0; j < dim; ++j)
      for (int64_t n = 0; n < N_; ++n) sum += fake[j * Np_ + n];
    const double mean = sum / static_cast<double>(count);
    for (int j = 0; j < dim; ++j)
      for (int64_t n = 0; n < N_; ++n) sq += (fake[j * Np_ + n] - mean) * (fake[j * Np_ + n] - mean);
    metrics[kFakeMean] = mean;
    metrics[kFakeStd] = std::sqrt(sq / static_cast<double>(count));
  }

  const GanDesc& g_;
  Sampler<T> sampler_;
  const int64_t N_, Np_;
  GDrop gdr_, ddr_;
  std::vector<T> noise_, real_, g_saved_;
  std::vector<uint32_t> g_masks_;
  std::vector<T> d_saved_;
  std::vector<uint32_t> d_masks_;
  std::vector<T> feats_, g_feats_, g_fake_, d_out_grad_, grad_g_, grad_d_, acc_g_, acc_d_, back_, tmp_;
  std::vector<uint32_t> words_;
};

// --- the table -----------------------------------------------------------------------------------

template <typename Trainer, typename T>
inline bool train_fast_with(const GanDesc& desc, MemberState<T>* members, int64_t count, int64_t epochs,
                            double* metrics) {
  if (!Trainer::matches(desc)) return false;
  Trainer trainer(desc);
  for (int64_t k = 0; k < count; ++k) trainer.train(members[k], epochs, metrics + k * kNumMetrics);
  return true;
}

// Trains `count` members on the fast path and returns true when the configuration's shapes are in
// the table; returns false (having done nothing) otherwise.
template <typename T>
inline bool train_fast(const GanDesc& desc, MemberState<T>* members, int64_t count, int64_t epochs, double* metrics) {
  using Devnag = FastTrainer<T, Shape<1, 5, 5, 1>, Acts<kTanh, kIdentity>, Shape<4, 10, 10, 1>,
                             Acts<kSigmoid, kSigmoid>, true>;
  using DevnagElu = FastTrainer<T, Shape<1, 5, 5, 1>, Acts<kElu, kIdentity>, Shape<4, 10, 10, 1>,
                                Acts<kSigmoid, kSigmoid>, true>;
  using Vanilla = FastTrainer<T, Shape<1, 16, 32, 16, 1>, Acts<kRelu, kIdentity>, Shape<1, 16, 16, 8, 1>,
                              Acts<kTanh, kSigmoid>, false>;
  return train_fast_with<Devnag>(desc, members, count, epochs, metrics) ||
         train_fast_with<DevnagElu>(desc, members, count, epochs, metrics) ||
         train_fast_with<Vanilla>(desc, members, count, epochs, metrics);
}

GF_END_NAMESPACE

#endif
