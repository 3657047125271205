// A small MLP on one flat parameter buffer (layout in docs/design.md), batched and
// feature-major: a layer's activations are a (width x N) block, so the inner loops run over the
// batch, contiguous and vectorisable even when the widths are 1 or 5 as in the toy GANs.
// Host code: the CUDA kernels reuse the layout and the activation/RNG helpers, not these loops.
#pragma once

#include "activation.h"
#include "mlp_desc.h"
#include "philox.h"

GF_BEGIN_NAMESPACE

// y[o][n] = b[o] + sum_i W[o][i] h[i][n], then the activation, for one layer.
template <typename T>
inline void linear_act(const T* W, const T* b, const T* h, int in, int out, int64_t N, int act,
                       T param, T* y) {
  for (int o = 0; o < out; ++o) {
    T* yo = y + o * N;
    const T bo = b[o];
    GF_SIMD for (int64_t n = 0; n < N; ++n) yo[n] = bo;
    for (int i = 0; i < in; ++i) {
      const T w = W[o * in + i];
      const T* hi = h + i * N;
      GF_SIMD for (int64_t n = 0; n < N; ++n) yo[n] += w * hi[n];
    }
    activate_row(act, param, yo, N);
  }
}

// Dropout of hidden layer l (0-based layer index whose output is dropped, l < L-1):
// out[j][n] = a[j][n] * keep / (1 - p), keep from word offset + N * (d_1..d_l) + n * d_{l+1} + j.
template <typename T>
inline void apply_dropout(const MlpDesc& d, int l, const T* a, int64_t N, uint64_t seed,
                          uint64_t offset, uint32_t* words, T* out) {
  const int w = d.widths[l + 1];
  philox_fill_words(seed, offset + static_cast<uint64_t>(N * d.saved_row(l)), N * w, words);
  const uint32_t thr = dropout_threshold(d.dropout);
  const T scale = static_cast<T>(1.0 / (1.0 - d.dropout));  // in double, then rounded, as the reference
  for (int j = 0; j < w; ++j) {
    const T* aj = a + j * N;
    T* oj = out + j * N;
    for (int64_t n = 0; n < N; ++n) oj[n] = dropout_keep(words[n * w + j], thr) ? aj[n] * scale : T(0);
  }
}

// Forward. x: (d0 x N). saved: (sum_out_widths x N), receives every layer's activation output
// (pre-dropout); the network's output is its last d_L rows. scratch: scratch_values(N) values,
// words: scratch_words(N). `train` enables dropout.
template <typename T>
void mlp_forward(const MlpDesc& d, const T* P, const T* x, int64_t N, bool train, uint64_t seed,
                 uint64_t offset, T* saved, T* scratch, uint32_t* words) {
  const bool drop = train && d.has_dropout();
  const T* h = x;
  T* y = saved;
  for (int l = 0; l < d.num_layers; ++l) {
    const int in = d.widths[l], out = d.widths[l + 1];
    linear_act(P + d.weight_offset[l], P + d.bias_offset(l), h, in, out, N, d.acts[l],
               T(d.act_params[l]), y);
    if (drop && l + 1 < d.num_layers) {
      apply_dropout(d, l, y, N, seed, offset, words, scratch);
      h = scratch;
    } else {
      h = y;
    }
    y += out * N;
  }
}

// Backward. g_out: (d_L x N). Accumulates (+=) the parameter gradient into gP unless it is null
// (G's step needs D's input gradient only) and writes g_x (d0 x N) unless it is null. Same train/seed/offset as the forward pass that made `saved`.
template <typename T>
void mlp_backward(const MlpDesc& d, const T* P, const T* x, int64_t N, bool train, uint64_t seed,
                  uint64_t offset, const T* saved, const T* g_out, T* gP, T* g_x, T* scratch,
                  uint32_t* words) {
  const bool drop = train && d.has_dropout();
  const int64_t mw = d.max_width;
  T* gz = scratch;               // gradient wrt the current layer's pre-activation
  T* gh = scratch + mw * N;      // gradient wrt the current layer's input
  T* h = scratch + 2 * mw * N;   // the current layer's input, re-made when dropout changed it
  const int L = d.num_layers;
  std::memcpy(gz, g_out, sizeof(T) * d.widths[L] * N);
  scale_by_activation_grad(d.acts[L - 1], T(d.act_params[L - 1]), saved + d.saved_row(L - 1) * N, gz,
                           d.widths[L] * N);
  for (int l = L - 1; l >= 0; --l) {
    const int in = d.widths[l], out = d.widths[l + 1];
    const T* a_in = l == 0 ? x : saved + d.saved_row(l - 1) * N;  // input before dropout
    const T* hin = a_in;
    if (l > 0 && drop) {  // leaves this layer's mask words in `words` for the step below
      apply_dropout(d, l - 1, a_in, N, seed, offset, words, h);
      hin = h;
    }
    const T* W = P + d.weight_offset[l];
    for (int o = 0; gP != nullptr && o < out; ++o) {
      T* gW = gP + d.weight_offset[l];
      T* gb = gP + d.bias_offset(l);
      const T* go = gz + o * N;
      T sb = T(0);
      GF_SIMD_SUM(sb) for (int64_t n = 0; n < N; ++n) sb += go[n];
      gb[o] += sb;
      for (int i = 0; i < in; ++i) {
        const T* hi = hin + i * N;
        T s = T(0);
        GF_SIMD_SUM(s) for (int64_t n = 0; n < N; ++n) s += go[n] * hi[n];
        gW[o * in + i] += s;
      }
    }
    T* target = l > 0 ? gh : g_x;
    if (target == nullptr) break;
    for (int i = 0; i < in; ++i) {
      T* ti = target + i * N;
      GF_SIMD for (int64_t n = 0; n < N; ++n) ti[n] = T(0);
      for (int o = 0; o < out; ++o) {
        const T w = W[o * in + i];
        const T* go = gz + o * N;
        GF_SIMD for (int64_t n = 0; n < N; ++n) ti[n] += w * go[n];
      }
    }
    if (l == 0) break;
    // Back through the dropout on layer l-1's output, then through its activation.
    if (drop) {
      const uint32_t thr = dropout_threshold(d.dropout);
      const T scale = static_cast<T>(1.0 / (1.0 - d.dropout));  // in double, then rounded, as the reference
      for (int j = 0; j < in; ++j)
        for (int64_t n = 0; n < N; ++n)
          gh[j * N + n] = dropout_keep(words[n * in + j], thr) ? gh[j * N + n] * scale : T(0);
    }
    scale_by_activation_grad(d.acts[l - 1], T(d.act_params[l - 1]), a_in, gh, in * N);
    T* t = gz;
    gz = gh;
    gh = t;
  }
}

GF_END_NAMESPACE
