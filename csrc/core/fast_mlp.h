// The engine's fast path for small MLPs: the widths are template arguments (Shape<1, 5, 5, 1>),
// so every loop over units is unrolled at compile time and the layer products, the activations
// and the dropout of one chunk of samples (2 vectors of the batch) run in one pass while the
// chunk is in registers and L1. The batch stays the vector dimension; batches are padded to
// whole chunks (Np, the row stride of every block here), the padding lanes carry zero input
// gradients, so they add nothing to the batch sums.
//
// Per sample, every value is computed with the formulas of the generic path (mlp.h), in the same
// order: b + sum_k W[o][k] h[k] as a chain of vmadd from the bias, k ascending; the activation
// and its derivative through vmath.h (bitwise equal to activation.h); W^T g as a vmadd chain
// from 0, o ascending; dropout as apply_dropout_mask. So the forward pass, the input gradients
// and every per-sample intermediate are bitwise those of the generic path. The batch sums (weight
// and bias gradients) are accumulated lane by lane over the chunks (one vmadd per term), then
// the lanes are added pairwise (vsum): a different order from mlp.h's, so parameter gradients
// agree with the generic path to rounding, not bitwise. The order is fixed, so results do not
// depend on threads, populations or chunked calls.
//
// FastNet1 is the batch-1 case (devnag's D sees the 4 moments of a batch): plain scalar code,
// unrolled, bitwise equal to mlp.h at N = 1 (where every product goes through the row-tail loop).
#pragma once

#include <utility>

#include "mlp.h"
#include "vmath.h"

#if defined(GF_HAVE_VEC)

GF_BEGIN_NAMESPACE

template <int... W>
struct Shape {
  static constexpr int kLayers = sizeof...(W) - 1;
  static constexpr int w[sizeof...(W)] = {W...};
  static constexpr int kIn = w[0];
  static constexpr int kOut = w[kLayers];
  static constexpr int64_t weight_offset(int l) {
    int64_t o = 0;
    for (int j = 0; j < l; ++j) o += static_cast<int64_t>(w[j + 1]) * (w[j] + 1);
    return o;
  }
  static constexpr int64_t bias_offset(int l) { return weight_offset(l) + static_cast<int64_t>(w[l + 1]) * w[l]; }
  static constexpr int64_t kParams = weight_offset(kLayers);
  // First row of layer l's output in the saved block (layer outputs stacked).
  static constexpr int saved_row(int l) {
    int r = 0;
    for (int j = 0; j < l; ++j) r += w[j + 1];
    return r;
  }
  static constexpr int kSavedRows = saved_row(kLayers);
  static constexpr int kMaxWidth = [] {
    int m = 0;
    for (int v : w) m = v > m ? v : m;
    return m;
  }();
  static bool matches(const MlpDesc& d) {
    if (d.num_layers != kLayers) return false;
    for (int l = 0; l <= kLayers; ++l)
      if (d.widths[l] != w[l]) return false;
    return true;
  }
};

// out = keep ? a * scale : 0 for the words at p (dropout_keep: (word >> 8) >= thr), lane by lane:
// apply_dropout_mask of mlp.h.
template <typename V>
GF_VINLINE V vdropout(V a, const uint32_t* p, uint32_t thr, velem_t<V> scale) {
  if constexpr (sizeof(V) > static_cast<size_t>(kNativeBytes)) {
    vhalf_t<V> a0, a1;
    vsplit(a, &a0, &a1);
    return vjoin<V>(vdropout(a0, p, thr, scale), vdropout(a1, p + vlanes<V>() / 2, thr, scale));
  } else {
    using B = vbits_t<V>;
    using I = velem_t<B>;
    using W = vec_of<uint32_t, 4 * vlanes<V>()>;
    const W w = vload_as<W>(p) >> 8;  // < 2^24: the same value as a signed lane
    const B keep = __builtin_convertvector(w, B) >= static_cast<I>(thr);
    return keep ? a * scale : V{};
  }
}

// A network's dropout on the fast path: on, its keep threshold and 1 / (1 - p) (mlp.h's values).
template <typename T>
struct FastDropout {
  bool on = false;
  uint32_t thr = 0;
  T scale = T(1);
};

// One pass of a network with compile-time widths and activations (HidAct on the hidden layers,
// OutAct on the last) over a padded batch, chunk by chunk.
template <typename T, class S, int HidAct, int OutAct>
struct FastNet {
  using V = vec_t<T>;
  static constexpr int kL = Vec<T>::kLanes;
#ifndef GF_FAST_CHUNK_VECTORS
#define GF_FAST_CHUNK_VECTORS 2
#endif
  static constexpr int kC = GF_FAST_CHUNK_VECTORS;  // vectors per chunk
  static constexpr int kChunk = kC * kL;
  static constexpr int kLayers = S::kLayers;
  // The lane accumulators of the parameter gradient: one vector per parameter.
  static constexpr int64_t kAccValues = S::kParams * kL;

  using Dropout = FastDropout<T>;
  template <int l>
  static constexpr int act_of() {
    return l + 1 < kLayers ? HidAct : OutAct;
  }
  static bool matches_acts(const MlpDesc& d) {
    for (int l = 0; l < kLayers; ++l)
      if (d.acts[l] != (l + 1 < kLayers ? HidAct : OutAct)) return false;
    return true;
  }

  // --- forward -----------------------------------------------------------------------------

  // Rows o0 .. o0 + R - 1 of layer l on one chunk: z = b + W h, the activation, stored to y
  // (stride ys); with dropout, also the dropped values to yd (stride kChunk).
  template <int l, int R>
  static GF_VINLINE void fwd_block(int o0, const T* P, T param, const T* h, int64_t hs, T* y, int64_t ys, T* yd,
                                   const uint32_t* mask, int64_t ms, const Dropout& dr) {
    constexpr int K = S::w[l];
    const T* Wt = P + S::weight_offset(l);
    const T* b = P + S::bias_offset(l);
    V acc[R][kC];
#pragma GCC unroll 64
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < kC; ++c) acc[r][c] = vbroadcast<V>(b[o0 + r]);
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) {
      V x[kC];
#pragma GCC unroll 4
      for (int c = 0; c < kC; ++c) x[c] = vload(h + k * hs + c * kL);
#pragma GCC unroll 64
      for (int r = 0; r < R; ++r) {
        const V wv = vbroadcast<V>(Wt[(o0 + r) * K + k]);
#pragma GCC unroll 4
        for (int c = 0; c < kC; ++c) acc[r][c] = vmadd(wv, x[c], acc[r][c]);
      }
    }
#pragma GCC unroll 64
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < kC; ++c) {
        acc[r][c] = vactivate_c<act_of<l>()>(acc[r][c], param);
        vstore(y + (o0 + r) * ys + c * kL, acc[r][c]);
      }
    if (dr.on) {
#pragma GCC unroll 64
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int c = 0; c < kC; ++c)
          vstore(yd + (o0 + r) * kChunk + c * kL, vdropout(acc[r][c], mask + (o0 + r) * ms + c * kL, dr.thr, dr.scale));
    }
  }

  // Blocks of 4 rows and the rest (layers up to 6 wide: one block), the row loop at run time.
  template <int M>
  static constexpr int kBlockRows = M <= 6 ? M : 4;
  template <int M>
  static constexpr int kBlockedRows = M <= 6 ? M : M - M % 4;

  template <int l>
  static GF_VINLINE void fwd_rows(const T* P, T param, const T* h, int64_t hs, T* y, int64_t ys, T* yd,
                                  const uint32_t* mask, int64_t ms, const Dropout& dr) {
    constexpr int M = S::w[l + 1], R = kBlockRows<M>, full = kBlockedRows<M>;
    for (int o0 = 0; o0 < full; o0 += R) fwd_block<l, R>(o0, P, param, h, hs, y, ys, yd, mask, ms, dr);
    if constexpr (full < M) fwd_block<l, M - full>(full, P, param, h, hs, y, ys, yd, mask, ms, dr);
  }

  template <int l>
  static GF_VINLINE void fwd_layers(const MlpDesc& d, const T* P, const T* h, int64_t hs, T* saved, int64_t Np,
                                    const uint32_t* masks, const Dropout& dr, T* drop_a, T* drop_b) {
    if constexpr (l < kLayers) {
      const bool drop = dr.on && l + 1 < kLayers;
      Dropout here = dr;
      here.on = drop;
      T* y = saved + S::saved_row(l) * Np;
      const uint32_t* mask = drop ? masks + S::saved_row(l) * Np : nullptr;
      fwd_rows<l>(P, T(d.act_params[l]), h, hs, y, Np, drop_a, mask, Np, here);
      if (drop) {
        fwd_layers<l + 1>(d, P, drop_a, kChunk, saved, Np, masks, dr, drop_b, drop_a);
      } else {
        fwd_layers<l + 1>(d, P, y, Np, saved, Np, masks, dr, drop_b, drop_a);
      }
    }
  }

  // x: (w0 x Np) input rows; saved: (kSavedRows x Np), every layer's activation output (before
  // dropout); masks: the hidden layers' unit-major dropout words (rows as saved's), when dr.on.
  // Chunks [c_begin, c_end) of the padded batch.
  static GF_NOINLINE void forward(const MlpDesc& d, const T* P, const T* x, int64_t Np, T* saved,
                                 const uint32_t* masks, const Dropout& dr) {
    alignas(64) T drop_a[S::kMaxWidth * kChunk], drop_b[S::kMaxWidth * kChunk];
    for (int64_t n0 = 0; n0 < Np; n0 += kChunk)
      fwd_layers<0>(d, P, x + n0, Np, saved + n0, Np, masks + (dr.on ? n0 : 0), dr, drop_a, drop_b);
  }

  // --- backward ----------------------------------------------------------------------------

  // The backward pass runs over super-chunks of kSuperChunks chunks: first, chunk by chunk, the
  // gradient wrt every layer's pre-activation (and, with dropout, every layer's dropped input)
  // into rows of kSuper samples; then, layer by layer, the weight- and bias-gradient sums over
  // the super-chunk with blocks of accumulators held in registers (loaded from and stored back
  // to the lane accumulators once per super-chunk). Per lane the sums run over the vectors of
  // the batch in order, so the result does not depend on the super-chunk size.
  static constexpr int kSuperChunks = 16;
  static constexpr int64_t kSuper = kSuperChunks * kChunk;
  // Scratch of backward(): gradients and dropped inputs, kSavedRows rows of kSuper each.
  static constexpr int64_t kBackScratch = 2 * S::kSavedRows * kSuper;

  // gh[i] = sum_o W[o][i] gz[o] for rows i0 .. i0 + R - 1 (a vmadd chain from 0, o ascending),
  // then (hidden layers) back through the dropout and the activation of layer l - 1 whose
  // output a_in (stride as) was: gh = f'(a_in) * dropout(gh).
  template <int l, int R>
  static GF_VINLINE void input_grad_block(int i0, const T* P, T param, const T* gz, int64_t zs, T* gh, int64_t gs,
                                          const T* a_in, int64_t as, const uint32_t* mask, const Dropout& dr) {
    constexpr int K = S::w[l], M = S::w[l + 1];
    const T* Wt = P + S::weight_offset(l);
    V acc[R][kC];
#pragma GCC unroll 64
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < kC; ++c) acc[r][c] = V{};
#pragma GCC unroll 8
    for (int o = 0; o < M; ++o) {
      V g[kC];
#pragma GCC unroll 4
      for (int c = 0; c < kC; ++c) g[c] = vload(gz + o * zs + c * kL);
#pragma GCC unroll 64
      for (int r = 0; r < R; ++r) {
        const V wv = vbroadcast<V>(Wt[o * K + i0 + r]);
#pragma GCC unroll 4
        for (int c = 0; c < kC; ++c) acc[r][c] = vmadd(wv, g[c], acc[r][c]);
      }
    }
#pragma GCC unroll 64
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < kC; ++c) {
        V g = acc[r][c];
        if constexpr (l > 0) {
          if (dr.on) g = vdropout(g, mask + (i0 + r) * as + c * kL, dr.thr, dr.scale);
          g = vscale_by_act_grad_c<act_of<l - 1>()>(param, vload(a_in + (i0 + r) * as + c * kL), g);
        }
        vstore(gh + (i0 + r) * gs + c * kL, g);
      }
  }

  template <int l>
  static GF_VINLINE void input_grad_rows(const T* P, T param, const T* gz, int64_t zs, T* gh, int64_t gs,
                                         const T* a_in, int64_t as, const uint32_t* mask, const Dropout& dr) {
    constexpr int K = S::w[l], R = kBlockRows<K>, full = kBlockedRows<K>;
    for (int i0 = 0; i0 < full; i0 += R) input_grad_block<l, R>(i0, P, param, gz, zs, gh, gs, a_in, as, mask, dr);
    if constexpr (full < K) input_grad_block<l, K - full>(full, P, param, gz, zs, gh, gs, a_in, as, mask, dr);
  }

  struct Back {
    const T* g_out;  // (w_L x Np), zero in the padding lanes
    T* acc;          // kAccValues lane accumulators (zeroed by the caller), or null: no parameter gradient
    T* g_x;          // (w_0 x Np), or null
    T* scratch;      // kBackScratch values
  };

  // Phase 1, layer l on one chunk: gz (rows of zs) holds the gradient wrt the layer's
  // pre-activation; writes layer l - 1's (or g_x), and the dropped input when it is needed.
  template <int l>
  static GF_VINLINE void chunk_grads(const MlpDesc& d, const T* P, const T* x, const T* saved, int64_t Np,
                                     const uint32_t* masks, const Dropout& dr, const Back& bk, T* gzs, T* hds,
                                     int64_t zoff) {
    if constexpr (l >= 0) {
      constexpr int K = S::w[l];
      const bool drop = dr.on && l > 0;
      const T* a_in = l == 0 ? x : saved + S::saved_row(l - 1) * Np;  // before dropout
      const uint32_t* mask = drop ? masks + S::saved_row(l - 1) * Np : nullptr;
      if (bk.acc != nullptr && drop) {  // the layer's input as the forward pass saw it
        T* hd = hds + S::saved_row(l - 1) * kSuper + zoff;
#pragma GCC unroll 8
        for (int i = 0; i < K; ++i)
#pragma GCC unroll 4
          for (int c = 0; c < kC; ++c)
            vstore(hd + i * kSuper + c * kL,
                   vdropout(vload(a_in + i * Np + c * kL), mask + i * Np + c * kL, dr.thr, dr.scale));
      }
      const T* gz = gzs + S::saved_row(l) * kSuper + zoff;
      if constexpr (l == 0) {
        if (bk.g_x != nullptr) input_grad_rows<0>(P, T(0), gz, kSuper, bk.g_x, Np, nullptr, 0, nullptr, dr);
      } else {
        Dropout here = dr;
        here.on = drop;
        input_grad_rows<l>(P, T(d.act_params[l - 1]), gz, kSuper, gzs + S::saved_row(l - 1) * kSuper + zoff, kSuper,
                           a_in, Np, mask, here);
        chunk_grads<l - 1>(d, P, x, saved, Np, masks, dr, bk, gzs, hds, zoff);
      }
    }
  }

  // Phase 2, layer l: acc[W[o][i]] += gz[o] h[i], acc[b[o]] += gz[o] over `vecs` vectors, for
  // rows o0 .. o0 + RO - 1 and inputs i0 .. i0 + RI - 1 (the bias with the first inputs).
  template <int l, int RO, int RI>
  static GF_VINLINE void sum_block(int o0, int i0, const T* gz, const T* h, int64_t hs, int64_t vecs, T* acc) {
    constexpr int K = S::w[l];
    T* aw = acc + S::weight_offset(l) * kL;
    T* ab = acc + S::bias_offset(l) * kL;
    const bool bias = i0 == 0;
    V sw[RO][RI], sb[RO];
#pragma GCC unroll 8
    for (int r = 0; r < RO; ++r) {
      sb[r] = bias ? vload(ab + (o0 + r) * kL) : V{};
#pragma GCC unroll 8
      for (int i = 0; i < RI; ++i) sw[r][i] = vload(aw + ((o0 + r) * K + i0 + i) * kL);
    }
    for (int64_t v = 0; v < vecs; ++v) {
      V hv[RI];
#pragma GCC unroll 8
      for (int i = 0; i < RI; ++i) hv[i] = vload(h + (i0 + i) * hs + v * kL);
#pragma GCC unroll 8
      for (int r = 0; r < RO; ++r) {
        const V g = vload(gz + (o0 + r) * kSuper + v * kL);
        if (bias) sb[r] = sb[r] + g;
#pragma GCC unroll 8
        for (int i = 0; i < RI; ++i) sw[r][i] = vmadd(g, hv[i], sw[r][i]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < RO; ++r) {
      if (bias) vstore(ab + (o0 + r) * kL, sb[r]);
#pragma GCC unroll 8
      for (int i = 0; i < RI; ++i) vstore(aw + ((o0 + r) * K + i0 + i) * kL, sw[r][i]);
    }
  }

  // Blocks of RO rows by RI inputs: about 12 accumulators, the rest in registers too.
  template <int l, int RO>
  static GF_VINLINE void sum_rows(int o0, const T* gz, const T* h, int64_t hs, int64_t vecs, T* acc) {
    constexpr int K = S::w[l];
    constexpr int RI0 = RO <= 1 ? 8 : RO <= 2 ? 4 : 2;
    constexpr int RI = RI0 < K ? RI0 : K;
    constexpr int full = K - K % RI;
    for (int i0 = 0; i0 < full; i0 += RI) sum_block<l, RO, RI>(o0, i0, gz, h, hs, vecs, acc);
    if constexpr (full < K) sum_block<l, RO, K - full>(o0, full, gz, h, hs, vecs, acc);
  }

  template <int l>
  static GF_VINLINE void sum_layers(const T* x, const T* saved, int64_t Np, const Dropout& dr, const T* gzs,
                                    const T* hds, int64_t vecs, T* acc) {
    if constexpr (l < kLayers) {
      constexpr int M = S::w[l + 1], RO = M < 4 ? M : 4, full = M - M % RO;
      const T* gz = gzs + S::saved_row(l) * kSuper;
      const T* h;
      int64_t hs;
      if (l == 0) {
        h = x, hs = Np;
      } else if (dr.on) {
        h = hds + S::saved_row(l - 1) * kSuper, hs = kSuper;
      } else {
        h = saved + S::saved_row(l - 1) * Np, hs = Np;
      }
      for (int o0 = 0; o0 < full; o0 += RO) sum_rows<l, RO>(o0, gz, h, hs, vecs, acc);
      if constexpr (full < M) sum_rows<l, M - full>(full, gz, h, hs, vecs, acc);
      sum_layers<l + 1>(x, saved, Np, dr, gzs, hds, vecs, acc);
    }
  }

  // The backward pass over the padded batch, after forward(): accumulates the parameter gradient
  // into bk.acc's lanes (finish with reduce()) and writes the input gradient bk.g_x.
  static GF_NOINLINE void backward(const MlpDesc& d, const T* P, const T* x, const T* saved, int64_t Np,
                                  const uint32_t* masks, const Dropout& dr, const Back& bk) {
    constexpr int L = kLayers, M = S::kOut;
    T* gzs = bk.scratch;
    T* hds = bk.scratch + S::kSavedRows * kSuper;
    const T param = T(d.act_params[L - 1]);
    for (int64_t s0 = 0; s0 < Np; s0 += kSuper) {
      const int64_t len = Np - s0 < kSuper ? Np - s0 : kSuper;
      for (int64_t z0 = 0; z0 < len; z0 += kChunk) {
        const int64_t n0 = s0 + z0;
        const T* y = saved + S::saved_row(L - 1) * Np + n0;
        T* gz = gzs + S::saved_row(L - 1) * kSuper + z0;
#pragma GCC unroll 8
        for (int o = 0; o < M; ++o)
#pragma GCC unroll 4
          for (int c = 0; c < kC; ++c)
            vstore(gz + o * kSuper + c * kL, vscale_by_act_grad_c<OutAct>(param, vload(y + o * Np + c * kL),
                                                                          vload(bk.g_out + o * Np + n0 + c * kL)));
        Back b = bk;
        if (b.g_x != nullptr) b.g_x += n0;
        chunk_grads<L - 1>(d, P, x + n0, saved + n0, Np, masks + (dr.on ? n0 : 0), dr, b, gzs, hds, z0);
      }
      if (bk.acc != nullptr) sum_layers<0>(x + s0, saved + s0, Np, dr, gzs, hds, len / kL, bk.acc);
    }
  }

  // gP[j] += the lanes of acc[j], added pairwise.
  static GF_NOINLINE void reduce(const T* acc, T* gP) {
    for (int64_t j = 0; j < S::kParams; ++j) gP[j] += vsum(vload(acc + j * kL));
  }
};

// g * f'(z) from y = f(z), one value: scale_by_activation_grad of activation.h.
template <typename T>
GF_VINLINE T scale_by_act_grad(int act, T param, T y, T g) {
  switch (act) {
    case kRelu: return y > T(0) ? g : T(0);
    case kLeakyRelu: return y > T(0) ? g : g * param;
    case kElu: return y > T(0) ? g : g * (y + param);
    case kTanh: return g * (T(1) - y * y);
    case kSigmoid: return g * (y * (T(1) - y));
    default: return g;
  }
}

// Batch 1, compile-time widths, no dropout: the generic path's arithmetic at N = 1 (gemm_rows'
// tail loop, weight_grad's single-term sums), unrolled.
template <typename T, class S, int HidAct, int OutAct>
struct FastNet1 {
  static constexpr int kLayers = S::kLayers;
  template <int l>
  static constexpr int act_of() {
    return l + 1 < kLayers ? HidAct : OutAct;
  }

  template <int l>
  static GF_VINLINE void fwd(const MlpDesc& d, const T* P, const T* h, T* saved) {
    if constexpr (l < kLayers) {
      constexpr int K = S::w[l], M = S::w[l + 1];
      const T* Wt = P + S::weight_offset(l);
      const T* b = P + S::bias_offset(l);
      T* y = saved + S::saved_row(l);
      constexpr int act = act_of<l>();
      const T param = T(d.act_params[l]);
#pragma GCC unroll 64
      for (int o = 0; o < M; ++o) {
        T z = b[o];
#pragma GCC unroll 64
        for (int k = 0; k < K; ++k) z = madd(Wt[o * K + k], h[k], z);
        y[o] = activate<T>(act, z, param);
      }
      fwd<l + 1>(d, P, y, saved);
    }
  }

  // saved: S::kSavedRows values.
  static GF_NOINLINE void forward(const MlpDesc& d, const T* P, const T* x, T* saved) { fwd<0>(d, P, x, saved); }

  template <int l>
  static GF_VINLINE void bwd(const MlpDesc& d, const T* P, const T* x, const T* saved, T* gz, T* gh, T* gP, T* g_x) {
    if constexpr (l >= 0) {
      constexpr int K = S::w[l], M = S::w[l + 1];
      const T* Wt = P + S::weight_offset(l);
      const T* hin = l == 0 ? x : saved + S::saved_row(l - 1);
      if (gP != nullptr) {
        T* gW = gP + S::weight_offset(l);
        T* gb = gP + S::bias_offset(l);
#pragma GCC unroll 64
        for (int o = 0; o < M; ++o) {
          gb[o] += T(0) + gz[o];  // weight_grad's one-term sum starts from 0 (-0 becomes +0)
#pragma GCC unroll 64
          for (int i = 0; i < K; ++i) gW[o * K + i] += T(0) + gz[o] * hin[i];
        }
      }
      T* target = l > 0 ? gh : g_x;
      if (target == nullptr) return;
#pragma GCC unroll 64
      for (int i = 0; i < K; ++i) {
        T t = T(0);
#pragma GCC unroll 64
        for (int o = 0; o < M; ++o) t = madd(Wt[o * K + i], gz[o], t);
        target[i] = t;
      }
      if constexpr (l > 0) {
        constexpr int act = act_of<l - 1>();
        const T param = T(d.act_params[l - 1]);
#pragma GCC unroll 64
        for (int i = 0; i < K; ++i) gh[i] = scale_by_act_grad(act, param, hin[i], gh[i]);
        bwd<l - 1>(d, P, x, saved, gh, gz, gP, g_x);
      }
    }
  }

  // g_out: S::kOut values. Accumulates into gP (unless null), writes g_x (unless null).
  static GF_NOINLINE void backward(const MlpDesc& d, const T* P, const T* x, const T* saved, const T* g_out, T* gP,
                                  T* g_x) {
    constexpr int L = kLayers;
    T gz[S::kMaxWidth], gh[S::kMaxWidth];
    constexpr int act = OutAct;
    const T param = T(d.act_params[L - 1]);
    const T* y = saved + S::saved_row(L - 1);
    for (int o = 0; o < S::kOut; ++o) gz[o] = scale_by_act_grad(act, param, y[o], g_out[o]);
    bwd<L - 1>(d, P, x, saved, gz, gh, gP, g_x);
  }
};

GF_END_NAMESPACE

#endif
