// The activations of docs/design.md. Every derivative is written through the layer's output
// y = f(z), so the forward pass saves outputs only and the backward pass never recomputes f.
#pragma once

#include "common.h"
#include "fastmath.h"
#include "mlp_desc.h"

GF_BEGIN_NAMESPACE


// float on the host uses the branch-free fastmath.h versions (they vectorise; libm's do not);
// double keeps libm (the float64 path is the precision path, tested to 1e-12).
GF_HD double exp_(double x) { return exp(x); }
GF_HD double tanh_(double x) { return tanh(x); }
#if defined(__CUDA_ARCH__)
GF_HD float exp_(float x) { return expf(x); }
GF_HD float tanh_(float x) { return tanhf(x); }
#else
GF_HD float exp_(float x) { return exp_f(x); }
GF_HD float tanh_(float x) { return tanh_f(x); }
#endif

// Logistic function without overflow for large |z|: exp only ever sees a non-positive argument.
template <typename T>
GF_HD T sigmoid(T z) {
  const T e = exp_(z >= T(0) ? -z : z);
  return z >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// ELU as max(z, 0) + param (exp(min(z, 0)) - 1): the same values (exp(0) - 1 is exactly 0),
// but no select around the exp, which GCC would turn into control flow and leave the row loop
// scalar (2.2x slower: 14.7 vs 6.6 us for 5,000 floats on AVX2).
template <typename T>
GF_HD T elu(T z, T param) {
  const T pos = z > T(0) ? z : T(0);
  const T neg = z < T(0) ? z : T(0);
  return pos + param * (exp_(neg) - T(1));
}

template <typename T>
GF_HD T activate(int act, T z, T param) {
  switch (act) {
    case kRelu: return z > T(0) ? z : T(0);
    case kLeakyRelu: return z > T(0) ? z : param * z;
    case kElu: return elu(z, param);
    case kTanh: return tanh_(z);
    case kSigmoid: return sigmoid(z);
    default: return z;
  }
}

// f'(z) from y = f(z).
template <typename T>
GF_HD T activation_grad(int act, T y, T param) {
  switch (act) {
    case kRelu: return y > T(0) ? T(1) : T(0);
    case kLeakyRelu: return y > T(0) ? T(1) : param;
    case kElu: return y > T(0) ? T(1) : y + param;
    case kTanh: return T(1) - y * y;
    case kSigmoid: return y * (T(1) - y);
    default: return T(1);
  }
}

// Row versions: the switch is hoisted out of the loop so that each case vectorises.
template <typename T>
inline void activate_row(int act, T param, T* z, int64_t n) {
  switch (act) {
    case kIdentity: return;
    case kRelu: GF_SIMD for (int64_t i = 0; i < n; ++i) z[i] = z[i] > T(0) ? z[i] : T(0); return;
    case kLeakyRelu: GF_SIMD for (int64_t i = 0; i < n; ++i) z[i] = z[i] > T(0) ? z[i] : param * z[i]; return;
    case kElu: GF_SIMD for (int64_t i = 0; i < n; ++i) z[i] = elu(z[i], param); return;
    case kTanh: GF_SIMD for (int64_t i = 0; i < n; ++i) z[i] = tanh_(z[i]); return;
    case kSigmoid: GF_SIMD for (int64_t i = 0; i < n; ++i) z[i] = sigmoid(z[i]); return;
    default: return;
  }
}

// g[i] *= f'(z_i), from y = f(z).
template <typename T>
inline void scale_by_activation_grad(int act, T param, const T* y, T* g, int64_t n) {
  switch (act) {
    case kIdentity: return;
    case kRelu: GF_SIMD for (int64_t i = 0; i < n; ++i) g[i] = y[i] > T(0) ? g[i] : T(0); return;
    case kLeakyRelu: GF_SIMD for (int64_t i = 0; i < n; ++i) g[i] = y[i] > T(0) ? g[i] : g[i] * param; return;
    case kElu: GF_SIMD for (int64_t i = 0; i < n; ++i) g[i] = y[i] > T(0) ? g[i] : g[i] * (y[i] + param); return;
    case kTanh: GF_SIMD for (int64_t i = 0; i < n; ++i) g[i] *= T(1) - y[i] * y[i]; return;
    case kSigmoid: GF_SIMD for (int64_t i = 0; i < n; ++i) g[i] *= y[i] * (T(1) - y[i]); return;
    default: return;
  }
}

GF_END_NAMESPACE
