// A small MLP on one flat parameter buffer (layout in docs/design.md), batched and
// feature-major: a layer's activations are a (width x N) block, so the inner loops run over the
// batch, contiguous and vectorisable even when the widths are 1 or 5 as in the toy GANs.
// Host code: the CUDA kernels reuse the layout and the activation/RNG helpers, not these loops.
#pragma once

#include "activation.h"
#include "mlp_desc.h"
#include "philox.h"
#include "transpose.h"
#include "vec.h"

GF_BEGIN_NAMESPACE

// Y[m][n] = Y0[m][n] + sum_k A[m][k] B[k][n] for n in [n0, n1), with A[m][k] = A[m * rs + k * cs]
// and Y0 = init[m] (0 if init is null), or Y's own values when `accumulate`. B and Y have
// row length N. The sum runs over k in order, so every block size gives the same bits.
// One row at a time: the edges of the blocked version below.
template <typename T>
inline void gemm_rows(const T* A, int64_t rs, int64_t cs, const T* init, bool accumulate, const T* B, int64_t K,
                      int m0, int m1, int64_t N, int64_t n0, int64_t n1, T* Y) {
  for (int m = m0; m < m1; ++m) {
    T* ym = Y + m * N;
    if (!accumulate) {
      const T v = init != nullptr ? init[m] : T(0);
      GF_SIMD for (int64_t n = n0; n < n1; ++n) ym[n] = v;
    }
    for (int64_t k = 0; k < K; ++k) {
      const T a = A[m * rs + k * cs];
      const T* bk = B + k * N;
      GF_SIMD for (int64_t n = n0; n < n1; ++n) ym[n] = madd(a, bk[n], ym[n]);
    }
  }
}

#if defined(GF_HAVE_VEC)
// R rows of Y by 2 vectors of columns (from n0), kept in registers while k runs: each B[k][n]
// loaded feeds R multiply-adds, where the one-row loop reloads and stores Y for every k.
template <int R, typename T>
inline void gemm_block(const T* A, int64_t rs, int64_t cs, const T* init, bool accumulate, const T* B,
                       int64_t K, int m, int64_t N, int64_t n0, T* Y) {
  using V = vec_t<T>;
  constexpr int64_t L = Vec<T>::kLanes;
  V c[R][2];
  for (int r = 0; r < R; ++r) {
    T* y = Y + (m + r) * N + n0;
    if (accumulate) {
      c[r][0] = vload(y), c[r][1] = vload(y + L);
    } else {
      c[r][0] = c[r][1] = vsplat(init != nullptr ? init[m + r] : T(0));
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    const T* bk = B + k * N + n0;
    const V x0 = vload(bk), x1 = vload(bk + L);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const V w = vsplat(A[(m + r) * rs + k * cs]);
      c[r][0] = vmadd(w, x0, c[r][0]), c[r][1] = vmadd(w, x1, c[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    T* y = Y + (m + r) * N + n0;
    vstore(y, c[r][0]), vstore(y + L, c[r][1]);
  }
}
#endif

// The same product, register-blocked: blocks of 4 rows (then single rows) by 2 vectors of
// columns; the last N % (2 vectors) columns take the one-row loop. This is what makes 256-wide
// layers fast. Without vector extensions (nvcc's host pass) it is the one-row loop.
template <typename T>
inline void gemm_blocked(const T* A, int64_t rs, int64_t cs, const T* init, bool accumulate, const T* B,
                         int64_t K, int M, int64_t N, T* Y) {
#if defined(GF_HAVE_VEC)
  constexpr int64_t L = Vec<T>::kLanes;
  const int64_t n_full = N - N % (2 * L);
  for (int64_t n0 = 0; n0 < n_full; n0 += 2 * L) {
    int m = 0;
    for (; m + 4 <= M; m += 4) gemm_block<4>(A, rs, cs, init, accumulate, B, K, m, N, n0, Y);
    for (; m < M; ++m) gemm_block<1>(A, rs, cs, init, accumulate, B, K, m, N, n0, Y);
  }
  gemm_rows(A, rs, cs, init, accumulate, B, K, 0, M, N, n_full, N, Y);
#else
  gemm_rows(A, rs, cs, init, accumulate, B, K, 0, M, N, 0, N, Y);
#endif
}

// y[o][n] = b[o] + sum_i W[o][i] h[i][n], then the activation, for one layer.
template <typename T>
inline void linear_act(const T* W, const T* b, const T* h, int in, int out, int64_t N, int act,
                       T param, T* y) {
  gemm_blocked(W, in, 1, b, false, h, in, out, N, y);
  for (int o = 0; o < out; ++o) activate_row(act, param, y + o * N, N);
}

// gW[o][i] += sum_n go[o][n] h[i][n] as dot products over the batch (the small layers' path).
// Blocks of 4 x 2 (o, i) pairs share their loads: 6 rows read per step feed 8 sums, where one
// pair at a time reads 2 for 1.
template <typename T>
inline void weight_grad_dots(const T* go, const T* h, int in, int out, int64_t N, T* gW) {
  int o = 0;
  for (; o + 4 <= out; o += 4) {
    const T *g0 = go + (o + 0) * N, *g1 = go + (o + 1) * N, *g2 = go + (o + 2) * N, *g3 = go + (o + 3) * N;
    int i = 0;
    for (; i + 2 <= in; i += 2) {
      const T *h0 = h + i * N, *h1 = h + (i + 1) * N;
      T s00 = T(0), s01 = T(0), s10 = T(0), s11 = T(0), s20 = T(0), s21 = T(0), s30 = T(0), s31 = T(0);
      GF_PRAGMA(omp simd reduction(+ : s00, s01, s10, s11, s20, s21, s30, s31))
      for (int64_t n = 0; n < N; ++n) {
        const T x0 = h0[n], x1 = h1[n];
        s00 += g0[n] * x0;
        s01 += g0[n] * x1;
        s10 += g1[n] * x0;
        s11 += g1[n] * x1;
        s20 += g2[n] * x0;
        s21 += g2[n] * x1;
        s30 += g3[n] * x0;
        s31 += g3[n] * x1;
      }
      gW[(o + 0) * in + i] += s00;
      gW[(o + 0) * in + i + 1] += s01;
      gW[(o + 1) * in + i] += s10;
      gW[(o + 1) * in + i + 1] += s11;
      gW[(o + 2) * in + i] += s20;
      gW[(o + 2) * in + i + 1] += s21;
      gW[(o + 3) * in + i] += s30;
      gW[(o + 3) * in + i + 1] += s31;
    }
    for (; i < in; ++i) {
      const T* hi = h + i * N;
      T s0 = T(0), s1 = T(0), s2 = T(0), s3 = T(0);
      GF_PRAGMA(omp simd reduction(+ : s0, s1, s2, s3))
      for (int64_t n = 0; n < N; ++n) {
        s0 += g0[n] * hi[n];
        s1 += g1[n] * hi[n];
        s2 += g2[n] * hi[n];
        s3 += g3[n] * hi[n];
      }
      gW[(o + 0) * in + i] += s0;
      gW[(o + 1) * in + i] += s1;
      gW[(o + 2) * in + i] += s2;
      gW[(o + 3) * in + i] += s3;
    }
  }
  for (; o < out; ++o) {
    const T* g = go + o * N;
    for (int i = 0; i < in; ++i) {
      const T* hi = h + i * N;
      T s = T(0);
      GF_SIMD_SUM(s) for (int64_t n = 0; n < N; ++n) s += g[n] * hi[n];
      gW[o * in + i] += s;
    }
  }
}

// Layers with at least this many weights take the transposed weight-gradient path below.
constexpr int64_t kWideLayer = 1024;

// The weight gradient of one layer. Wide layers transpose their input to hT (N x in), which
// makes gW += go hT the same register-blocked product as the forward pass (one dot product per
// weight spends as long summing its lanes as multiplying when N is small); hT needs in x N
// scratch values. Narrow layers use the dot products directly.
template <typename T>
inline void weight_grad(const T* go, const T* h, int in, int out, int64_t N, T* gW, T* gb, T* hT) {
  for (int o = 0; o < out; ++o) {  // gb[o] += sum_n go[o][n]
    const T* g = go + o * N;
    T sb = T(0);
    GF_SIMD_SUM(sb) for (int64_t n = 0; n < N; ++n) sb += g[n];
    gb[o] += sb;
  }
  if (static_cast<int64_t>(in) * out < kWideLayer) {
    weight_grad_dots(go, h, in, out, N, gW);
    return;
  }
  transpose(h, in, N, hT);
  gemm_blocked(go, N, 1, static_cast<const T*>(nullptr), true, hT, N, out, in, gW);
}

// The mask words of hidden layer l (0-based layer index whose output is dropped, l < L-1):
// unit j of sample n keeps its value when word offset + N * (d_1..d_l) + n * d_{l+1} + j says
// so. The words are drawn sample-major (that order is the contract with the reference) into
// `drawn` and transposed to unit-major, mask[j * N + n]: applying them in the stream's order
// would read with a stride of d_{l+1} words (about 6x slower).
inline void draw_dropout_mask(const MlpDesc& d, int l, int64_t N, uint64_t seed, uint64_t offset, uint32_t* drawn,
                              uint32_t* mask) {
  const int w = d.widths[l + 1];
  philox_fill_words(seed, offset + static_cast<uint64_t>(N * d.saved_row(l)), N * w, drawn);
  transpose(drawn, N, static_cast<int64_t>(w), mask);
}

// out[j][n] = a[j][n] * keep / (1 - p) for the w x N block of a unit-major mask.
template <typename T>
inline void apply_dropout_mask(double p, const uint32_t* mask, const T* a, int64_t count, T* out) {
  const uint32_t thr = dropout_threshold(p);
  const T scale = static_cast<T>(1.0 / (1.0 - p));  // in double, then rounded, as the reference
  GF_SIMD for (int64_t i = 0; i < count; ++i) out[i] = dropout_keep(mask[i], thr) ? a[i] * scale : T(0);
}

// Where layer l's mask lives: in `masks` (the caller keeps every hidden layer's mask from the
// forward pass for the backward pass: sum_hidden x N words, layer l at row saved_row(l)), or,
// without it, in the first block of `words` (scratch_words(N): the mask block, then the drawn
// one), drawn again by the backward pass.
inline uint32_t* dropout_mask_slot(const MlpDesc& d, int l, int64_t N, uint32_t* words, uint32_t* masks) {
  return masks != nullptr ? masks + d.saved_row(l) * N : words;
}

// Forward. x: (d0 x N). saved: (sum_out_widths x N), receives every layer's activation output
// (pre-dropout); the network's output is its last d_L rows. scratch: scratch_values(N) values,
// words: scratch_words(N). `train` enables dropout. masks: null, or dropout_words(N) words that
// receive every hidden layer's mask for a backward pass given the same buffer.
template <typename T>
void mlp_forward(const MlpDesc& d, const T* P, const T* x, int64_t N, bool train, uint64_t seed,
                 uint64_t offset, T* saved, T* scratch, uint32_t* words, uint32_t* masks) {
  const bool drop = train && d.has_dropout();
  const T* h = x;
  T* y = saved;
  for (int l = 0; l < d.num_layers; ++l) {
    const int in = d.widths[l], out = d.widths[l + 1];
    linear_act(P + d.weight_offset[l], P + d.bias_offset(l), h, in, out, N, d.acts[l],
               T(d.act_params[l]), y);
    if (drop && l + 1 < d.num_layers) {
      uint32_t* mask = dropout_mask_slot(d, l, N, words, masks);
      draw_dropout_mask(d, l, N, seed, offset, words + static_cast<int64_t>(d.max_width) * N, mask);
      apply_dropout_mask(d.dropout, mask, y, out * N, scratch);
      h = scratch;
    } else {
      h = y;
    }
    y += out * N;
  }
}

// Backward. g_out: (d_L x N). Accumulates (+=) the parameter gradient into gP unless it is null
// (G's step needs D's input gradient only) and writes g_x (d0 x N) unless it is null. Same
// train/seed/offset as the forward pass that made `saved`; masks: that pass's, or null to draw
// them again.
template <typename T>
void mlp_backward(const MlpDesc& d, const T* P, const T* x, int64_t N, bool train, uint64_t seed,
                  uint64_t offset, const T* saved, const T* g_out, T* gP, T* g_x, T* scratch,
                  uint32_t* words, const uint32_t* masks) {
  const bool drop = train && d.has_dropout();
  const int64_t mw = d.max_width;
  T* gz = scratch;               // gradient wrt the current layer's pre-activation
  T* gh = scratch + mw * N;      // gradient wrt the current layer's input
  T* h = scratch + 2 * mw * N;   // the current layer's input, re-made when dropout changed it
  T* hT = scratch + 3 * mw * N;  // that input transposed, for wide layers' weight gradients
  const int L = d.num_layers;
  std::memcpy(gz, g_out, sizeof(T) * d.widths[L] * N);
  scale_by_activation_grad(d.acts[L - 1], T(d.act_params[L - 1]), saved + d.saved_row(L - 1) * N, gz,
                           d.widths[L] * N);
  for (int l = L - 1; l >= 0; --l) {
    const int in = d.widths[l], out = d.widths[l + 1];
    const T* a_in = l == 0 ? x : saved + d.saved_row(l - 1) * N;  // input before dropout
    const T* hin = a_in;
    const uint32_t* mask = nullptr;  // layer l-1's, for the input and for the step below
    if (l > 0 && drop) {
      if (masks != nullptr) {
        mask = masks + d.saved_row(l - 1) * N;
      } else {
        draw_dropout_mask(d, l - 1, N, seed, offset, words + static_cast<int64_t>(d.max_width) * N, words);
        mask = words;
      }
      apply_dropout_mask(d.dropout, mask, a_in, in * N, h);
      hin = h;
    }
    const T* W = P + d.weight_offset[l];
    if (gP != nullptr) weight_grad(gz, hin, in, out, N, gP + d.weight_offset[l], gP + d.bias_offset(l), hT);
    T* target = l > 0 ? gh : g_x;
    if (target == nullptr) break;
    gemm_blocked(W, 1, in, static_cast<const T*>(nullptr), false, gz, out, in, N, target);  // target = W^T gz
    if (l == 0) break;
    // Back through the dropout on layer l-1's output, then through its activation.
    if (drop) apply_dropout_mask(d.dropout, mask, gh, in * N, gh);
    scale_by_activation_grad(d.acts[l - 1], T(d.act_params[l - 1]), a_in, gh, in * N);
    T* t = gz;
    gz = gh;
    gh = t;
  }
}

// Without kept masks: the backward pass draws them again (the ops: a forward and a backward call
// share nothing but `saved`).
template <typename T>
void mlp_forward(const MlpDesc& d, const T* P, const T* x, int64_t N, bool train, uint64_t seed,
                 uint64_t offset, T* saved, T* scratch, uint32_t* words) {
  mlp_forward(d, P, x, N, train, seed, offset, saved, scratch, words, static_cast<uint32_t*>(nullptr));
}

template <typename T>
void mlp_backward(const MlpDesc& d, const T* P, const T* x, int64_t N, bool train, uint64_t seed,
                  uint64_t offset, const T* saved, const T* g_out, T* gP, T* g_x, T* scratch,
                  uint32_t* words) {
  mlp_backward(d, P, x, N, train, seed, offset, saved, g_out, gP, g_x, scratch, words,
               static_cast<const uint32_t*>(nullptr));
}

GF_END_NAMESPACE
