// The fused training engine on CUDA: gan_train_ for a population of P toy GANs, num_epochs epochs,
// in ONE persistent kernel launch.
//
// Design (docs/design.md "Engine"; the CPU engine is core/gan_step.h's MemberTrainer):
// - one thread block (kThreads = 256 threads) per population member; the member's whole training
//   loop (every epoch, every D and G step) runs inside that block, synchronised with
//   __syncthreads() between phases. Nothing depends on the population size: member k of a
//   population computes exactly what a population of one computes.
// - the batch is spread over the threads: a layer's (out x N) outputs, the sampling words, the
//   batch reductions; N need not divide the block size. All activations are feature-major
//   (width x N) blocks, as in the CPU engine.
// - every per-member buffer (parameters, gradients, optimizer state, activations, dropout masks,
//   scratch) is placed at launch either in the block's dynamic shared memory or in global memory
//   (the state tensors themselves for parameters / optimizer state, a P x ws_stride workspace for
//   the rest), greedily in a fixed priority order within a shared-memory budget taken from the
//   device (see plan_buffers). Device code addresses both through generic pointers, so the
//   placement changes speed, never results.
// - reductions over the batch (moments, BCE loss, parameter gradients, the fake-sample metrics)
//   use per-thread strided partial sums, then warp shuffles (a butterfly: every lane ends with
//   the same bits) and a fixed tree over the warps: deterministic, independent of P and of
//   the placement. Parameter gradients: one warp per parameter (lanes over the batch) when
//   N >= 32, else one thread per parameter summing the batch in order.
// - the Philox stream is consumed exactly as MemberTrainer does: D step = [mixture component
//   words] data normals, D dropout words, noise, G dropout words, D dropout words; G step =
//   noise, G dropout words, D dropout words. Same formulas: every per-element piece comes from
//   the GF_HD functions of core/ (activation.h, philox.h, gan_step.h).
// Built with --fmad=false (setup.py), so a * b + c is never contracted: the arithmetic is the CPU
// build's; only the order of the batch sums (and libm's last bits: expf/tanhf/logf) differ.
#define GF_ISA isa_cuda  // the core headers' inline namespace for this translation unit

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "../core/activation.h"
#include "../core/gan_step.h"
#include "../core/philox.h"
#include "../engine_args.h"

namespace ganfast {
namespace {

namespace gc = core;

constexpr int kThreads = 256;  // threads per member (block); a multiple of 32
constexpr int kWarps = kThreads / 32;
// Per-member element counts are limited so that every index inside a member fits an int.
constexpr int64_t kMaxMemberElems = int64_t(1) << 30;

// --- what the kernel gets ------------------------------------------------------------------

// One MLP's geometry (from core::MlpDesc, computed on the host).
template <typename T>
struct NetDev {
  int L;
  int widths[gc::kMaxLayers + 1];
  int acts[gc::kMaxLayers];
  T act_params[gc::kMaxLayers];
  int w_off[gc::kMaxLayers];  // W_l in the flat parameters
  int b_off[gc::kMaxLayers];  // b_l
  int row[gc::kMaxLayers];    // first row of layer l's output in the saved (sum_out x N) block
  int num_params, sum_out, sum_hidden, max_width;
  int drop;  // dropout after the hidden layers (training: always)
  uint32_t drop_thr;
  T drop_scale;
};

// The member's buffers. Parameters and optimizer state (kGP..kDO) that do not go to shared
// memory are used in place in the state tensors; the others go to the workspace.
enum BufId : int {
  kGP, kDP, kGO, kDO,  // G / D parameters, G / D optimizer state (2 n each)
  kGG, kDG,            // G / D parameter gradients
  kNoise,              // noise_dim x N
  kReal,               // data_dim x N
  kFeats,              // 4 moments (d_input == moments)
  kGSaved, kDSaved,    // activations of every layer (pre-dropout), sum_out x N / M
  kGDrop, kDDrop,      // hidden activations after dropout, sum_hidden x N / M (dropout only)
  kGMask, kDMask,      // dropout masks, bytes, sum_hidden x N / M (dropout only)
  kGz, kGh,            // backward scratch: the current layer's dL/dz and dL/d(input)
  kGFeats,             // D's input gradient, d0 x M
  kGFake,              // dL/d(fake) through the moments (moments only), N
  kNumBufs
};

struct Placement {
  int64_t offset[kNumBufs];  // bytes from the start of shared memory or of the member's workspace
  int64_t bytes[kNumBufs];
  int in_smem[kNumBufs];
};

template <typename T>
struct EngineArgs {
  NetDev<T> g, d;
  int d_input, noise_kind, noise_dim, data_dim, modes, g_loss;
  double noise_a, noise_b;
  const double* centers;  // modes x data_dim
  const double* cum;      // modes
  const double* data_std; // data_dim
  int N, M;               // G's batch, D's batch (1 with the moments input)
  int64_t d_steps, g_steps, num_epochs;
  gc::OptimizerDesc opt_d, opt_g;
  T* g_params;  // (P, nG)
  T* d_params;  // (P, nD)
  T* g_opt;     // (P, 2 nG)
  T* d_opt;     // (P, 2 nD)
  int64_t* offsets;
  int64_t* epochs;
  int64_t* diverged;  // (P,): -1, or the epoch count it diverged at (gc::member diverged rules)
  const int64_t* seeds;
  const double* lrs;  // (P, 2): D, G
  double* metrics;    // (P, kNumMetrics)
  unsigned char* ws;  // P x ws_stride bytes
  int64_t ws_stride;
  Placement place;
};

// Pointers of one member inside the kernel.
template <typename T>
struct Member {
  T *gP, *dP, *gO, *dO, *gG, *dG, *noise, *real, *feats, *gSaved, *dSaved, *gDrop, *dDrop, *gz, *gh, *gFeats,
      *gFake;
  uint8_t *gMask, *dMask;
  double* red;  // 2 * 32 doubles of static shared memory, for the block reductions
  uint64_t seed, offset;
};

// --- block-wide building blocks --------------------------------------------------------------

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
  return v;  // the butterfly leaves the same bits in every lane (a + b == b + a)
}

// Sum of v over the block, returned to every thread (same bits everywhere). Contains two
// __syncthreads(): every thread must call it; `red` may be reused right after.
template <typename T>
__device__ T block_sum(T v, double* red_storage) {
  T* red = reinterpret_cast<T*>(red_storage);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  v = warp_sum(v);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  T r = lane < kWarps ? red[lane] : T(0);
  r = warp_sum(r);  // every warp reduces the kWarps partials the same way
  __syncthreads();
  return r;
}

// Two sums at once (same tree), for (sum z^3, sum z^4).
template <typename T>
__device__ void block_sum2(T* a, T* b, double* red_storage) {
  T* red = reinterpret_cast<T*>(red_storage);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const T va = warp_sum(*a), vb = warp_sum(*b);
  if (lane == 0) {
    red[warp] = va;
    red[32 + warp] = vb;
  }
  __syncthreads();
  T ra = lane < kWarps ? red[lane] : T(0);
  T rb = lane < kWarps ? red[32 + lane] : T(0);
  ra = warp_sum(ra);
  rb = warp_sum(rb);
  __syncthreads();
  *a = ra;
  *b = rb;
}

template <typename T>
__device__ __forceinline__ void fill_zero(T* p, int n) {
  for (int i = threadIdx.x; i < n; i += kThreads) p[i] = T(0);
}

template <typename T>
__device__ __forceinline__ void copy_n(const T* src, T* dst, int n) {
  for (int i = threadIdx.x; i < n; i += kThreads) dst[i] = src[i];
}

// f(e, word) for the words [start, start + count) of the stream: thread t takes Philox blocks
// t, t + kThreads, ... of the range (element e is word start + e).
template <typename F>
__device__ __forceinline__ void for_each_word(uint64_t seed, uint64_t start, int count, F&& f) {
  const int lead = static_cast<int>(start & 3);
  const uint64_t first = start >> 2;
  const int nblocks = (lead + count + 3) >> 2;
  for (int t = threadIdx.x; t < nblocks; t += kThreads) {
    const gc::Words4 w = gc::philox_block(seed, first + static_cast<uint64_t>(t));
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const int e = 4 * t + lane - lead;
      if (e >= 0 && e < count) f(e, w.v[lane]);
    }
  }
}

// f(q, z_cos, z_sin) for the Box-Muller pairs q in [0, pairs): words start + 2q, start + 2q + 1.
// A thread takes the pairs whose first word lies in its Philox block (the next block supplies
// the second word of a pair starting in lane 3, which happens for odd starts).
template <typename F>
__device__ __forceinline__ void for_each_normal_pair(uint64_t seed, uint64_t start, int pairs, F&& f) {
  if (pairs <= 0) return;
  const int lead = static_cast<int>(start & 3);
  const uint64_t first = start >> 2;
  const int nblocks = ((lead + 2 * pairs - 2) >> 2) + 1;
  for (int t = threadIdx.x; t < nblocks; t += kThreads) {
    const uint64_t b = first + static_cast<uint64_t>(t);
    const gc::Words4 w = gc::philox_block(seed, b);
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const int e = 4 * t + lane - lead;
      if (e < 0 || e >= 2 * pairs || (e & 1)) continue;
      const uint32_t second = lane < 3 ? w.v[(lane + 1) & 3] : gc::philox_block(seed, b + 1).v[0];
      double z_cos, z_sin;
      gc::box_muller(w.v[lane], second, &z_cos, &z_sin);
      f(e >> 1, z_cos, z_sin);
    }
  }
}

// --- the MLP inside one block (feature-major, like core/mlp.h) --------------------------------

// Forward over N samples of x (d0 x N). saved: every layer's output (pre-dropout); with dropout,
// drop / mask receive the hidden layers' post-dropout values and keep flags (rows as in saved),
// words from `off` (element (n, j) of hidden layer l: off + N * row[l] + n * d_{l+1} + j).
// Ends with __syncthreads().
template <typename T>
__device__ void mlp_forward_block(const NetDev<T>& net, const T* P, const T* x, int N, uint64_t seed, uint64_t off,
                                  T* saved, T* drop, uint8_t* mask) {
  const T* h = x;
  for (int l = 0; l < net.L; ++l) {
    const int in = net.widths[l], out = net.widths[l + 1];
    const T* W = P + net.w_off[l];
    const T* b = P + net.b_off[l];
    T* y = saved + net.row[l] * N;
    const int act = net.acts[l];
    const T ap = net.act_params[l];
    const int total = out * N;
    for (int t = threadIdx.x; t < total; t += kThreads) {
      const int o = t / N, n = t - o * N;
      const T* w = W + o * in;
      T acc = b[o];  // bias first, then i = 0, 1, ...: the CPU kernels' order
      for (int i = 0; i < in; ++i) acc += w[i] * h[i * N + n];
      y[t] = gc::activate<T>(act, acc, ap);
    }
    __syncthreads();
    if (net.drop && l + 1 < net.L) {
      T* hd = drop + net.row[l] * N;
      uint8_t* mk = mask + net.row[l] * N;
      const uint32_t thr = net.drop_thr;
      const T scale = net.drop_scale;
      for_each_word(seed, off + static_cast<uint64_t>(N) * static_cast<uint64_t>(net.row[l]), total,
                    [&](int e, uint32_t word) {
                      const int n = e / out, j = e - n * out;
                      const int idx = j * N + n;
                      const bool keep = gc::dropout_keep(word, thr);
                      mk[idx] = keep ? 1 : 0;
                      hd[idx] = keep ? y[idx] * scale : T(0);
                    });
      __syncthreads();
      h = hd;
    } else {
      h = y;
    }
  }
}

// Parameter gradients of one layer, accumulated (+=) like the CPU kernels: gW[o][i] +=
// sum_n gz[o][n] h[i][n], gb[o] += sum_n gz[o][n]. No synchronisation inside (each entry has one
// writer; the caller synchronises before anything reads them).
template <typename T>
__device__ void param_grads_block(const T* gz, const T* h, int in, int out, int N, T* gW, T* gb) {
  const int np = out * (in + 1);  // p = o * (in + 1) + i; i == in is the bias
  if (N >= 32) {                  // one warp per parameter, lanes over the batch
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int p = warp; p < np; p += kWarps) {  // warp-uniform loop: the shuffles see full warps
      const int o = p / (in + 1), i = p - o * (in + 1);
      const T* go = gz + o * N;
      T s = T(0);
      if (i < in) {
        const T* hi = h + i * N;
        for (int n = lane; n < N; n += 32) s += go[n] * hi[n];
      } else {
        for (int n = lane; n < N; n += 32) s += go[n];
      }
      s = warp_sum(s);
      if (lane == 0) {
        if (i < in) gW[o * in + i] += s;
        else gb[o] += s;
      }
    }
  } else {  // small batches: one thread per parameter, the batch in order
    for (int p = threadIdx.x; p < np; p += kThreads) {
      const int o = p / (in + 1), i = p - o * (in + 1);
      const T* go = gz + o * N;
      T s = T(0);
      if (i < in) {
        const T* hi = h + i * N;
        for (int n = 0; n < N; ++n) s += go[n] * hi[n];
        gW[o * in + i] += s;
      } else {
        for (int n = 0; n < N; ++n) s += go[n];
        gb[o] += s;
      }
    }
  }
}

// Backward. gz holds dL/dz of the last layer (d_L x N) and is visible to the block. Accumulates
// the parameter gradient into gP unless null, writes g_x (d0 x N) unless null. gz and gh are
// scratch of max_width x N each (both are overwritten). Ends with __syncthreads().
template <typename T>
__device__ void mlp_backward_block(const NetDev<T>& net, const T* P, const T* x, int N, const T* saved,
                                   const T* drop, const uint8_t* mask, T* gP, T* g_x, T* gz, T* gh) {
  for (int l = net.L - 1; l >= 0; --l) {
    const int in = net.widths[l], out = net.widths[l + 1];
    const T* W = P + net.w_off[l];
    const T* a_in = l == 0 ? x : saved + net.row[l - 1] * N;              // input before dropout
    const T* hin = (l > 0 && net.drop) ? drop + net.row[l - 1] * N : a_in;  // the input the layer saw
    if (gP != nullptr) param_grads_block(gz, hin, in, out, N, gP + net.w_off[l], gP + net.b_off[l]);
    T* target = l > 0 ? gh : g_x;
    if (target == nullptr) {  // (uniform) D's gradient without its input gradient: done
      __syncthreads();
      break;
    }
    const int total = in * N;
    const bool hidden = l > 0;
    const int act = hidden ? net.acts[l - 1] : 0;
    const T ap = hidden ? net.act_params[l - 1] : T(0);
    const uint8_t* mk = (hidden && net.drop) ? mask + net.row[l - 1] * N : nullptr;
    for (int t = threadIdx.x; t < total; t += kThreads) {
      const int i = t / N, n = t - i * N;
      T acc = T(0);
      for (int o = 0; o < out; ++o) acc += W[o * in + i] * gz[o * N + n];
      if (hidden) {  // back through layer l-1's dropout, then its activation (CPU order)
        if (mk != nullptr) acc = mk[t] ? acc * net.drop_scale : T(0);
        acc *= gc::activation_grad<T>(act, a_in[t], ap);
      }
      target[t] = acc;
    }
    __syncthreads();
    T* tmp = gz;
    gz = gh;
    gh = tmp;
  }
}

// --- the member's loop (core/gan_step.h MemberTrainer, phase by phase) -------------------------

// Real data into m.real (data_dim x N): [N component words if K > 1], then the normals.
template <typename T>
__device__ void sample_data(const EngineArgs<T>& a, Member<T>& m) {
  const int D = a.data_dim, N = a.N, count = N * D, modes = a.modes;
  const uint64_t seed = m.seed, comp_start = m.offset;
  if (modes > 1) m.offset += static_cast<uint64_t>(N);
  T* out = m.real;
  const double* centers = a.centers;
  const double* cum = a.cum;
  const double* sd = a.data_std;
  auto store = [&](int v, double z) {
    const int n = v / D, j = v - n * D;
    const int c = modes > 1 ? gc::mixture_component(gc::philox_word(seed, comp_start + static_cast<uint64_t>(n)), cum,
                                                    modes)
                            : 0;
    out[j * N + n] = gc::normal_value<T>(centers[c * D + j], sd[j], z);
  };
  for_each_normal_pair(seed, m.offset, (count + 1) / 2, [&](int q, double z_cos, double z_sin) {
    store(2 * q, z_cos);
    if (2 * q + 1 < count) store(2 * q + 1, z_sin);
  });
  m.offset += static_cast<uint64_t>(count + (count & 1));
  __syncthreads();
}

// Noise into m.noise (noise_dim x N): uniform N * dim words, normal N * dim rounded up to even.
template <typename T>
__device__ void sample_noise(const EngineArgs<T>& a, Member<T>& m) {
  const int D = a.noise_dim, N = a.N, count = N * D;
  T* out = m.noise;
  if (a.noise_kind == gc::kNoiseUniform) {
    const gc::Uniform<T> uni(a.noise_a, a.noise_b);
    for_each_word(m.seed, m.offset, count, [&](int e, uint32_t word) {
      const int n = e / D, j = e - n * D;
      out[j * N + n] = uni(word);
    });
    m.offset += static_cast<uint64_t>(count);
  } else {
    const double mean = a.noise_a, sd = a.noise_b;
    auto store = [&](int v, double z) {
      const int n = v / D, j = v - n * D;
      out[j * N + n] = gc::normal_value<T>(mean, sd, z);
    };
    for_each_normal_pair(m.seed, m.offset, (count + 1) / 2, [&](int q, double z_cos, double z_sin) {
      store(2 * q, z_cos);
      if (2 * q + 1 < count) store(2 * q + 1, z_sin);
    });
    m.offset += static_cast<uint64_t>(count + (count & 1));
  }
  __syncthreads();
}

// devnag's 4 moments of x (1 x N) into feats. Ends with __syncthreads().
template <typename T>
__device__ void moments_block(const T* x, int N, T* feats, double* red) {
  T s = T(0);
  for (int n = threadIdx.x; n < N; n += kThreads) s += x[n];
  s = block_sum(s, red);
  const T mean = gc::moments_mean(s, static_cast<int64_t>(N));
  T v = T(0);
  for (int n = threadIdx.x; n < N; n += kThreads) v += gc::moment_sq(x[n], mean);
  v = block_sum(v, red);
  const T sd = gc::moments_sd(v, static_cast<int64_t>(N));
  T s3 = T(0), s4 = T(0);
  for (int n = threadIdx.x; n < N; n += kThreads) {
    const T z = gc::moment_z(x[n], mean, sd);
    s3 += gc::moment_cube(z);
    s4 += gc::moment_quad(z);
  }
  block_sum2(&s3, &s4, red);
  if (threadIdx.x == 0) gc::moments_finish(mean, sd, s3, s4, static_cast<int64_t>(N), feats);
  __syncthreads();
}

// gx (1 x N) = dL/dx through the moments, from m = feats and gm = dL/dm. Ends with __syncthreads().
template <typename T>
__device__ void moments_backward_block(const T* x, int N, const T* mom, const T* gm, T* gx, double* red) {
  const int64_t N64 = N;
  const gc::MomentsGrad<T> c = gc::moments_grad_coefs(mom, gm, N64);
  T part = T(0);
  for (int n = threadIdx.x; n < N; n += kThreads) part -= gc::moments_grad_sd_term(c, x[n]);
  const T g_sd = block_sum(part, red);
  const T c_var = gc::moments_grad_cvar(c, gm[1], g_sd, N64);
  T sum = T(0);
  for (int n = threadIdx.x; n < N; n += kThreads) {
    const T gd = gc::moments_grad_x(c, c_var, x[n]);
    gx[n] = gd;
    sum += gd;
  }
  const T sum_gd = block_sum(sum, red);
  const T shift = gc::moments_grad_shift(gm[0], sum_gd, N64);
  for (int n = threadIdx.x; n < N; n += kThreads) gx[n] += shift;  // each thread its own n
  __syncthreads();
}

// D's input for a (data_dim x N) sample block: the block itself, or its moments.
template <typename T>
__device__ const T* features(const EngineArgs<T>& a, Member<T>& m, const T* x) {
  if (a.d_input != gc::kDInputMoments) return x;
  moments_block(x, a.N, m.feats, m.red);
  return m.feats;
}

// D forward on x (d0 x M) + BCE against `label` + D backward, accumulating D's parameter
// gradient into grad_params (if not null) and D's input gradient into g_x (if not null).
// Returns the loss (the block reduction runs only when want_loss: it feeds the metrics alone).
template <typename T>
__device__ double d_pass(const EngineArgs<T>& a, Member<T>& m, const T* x, T label, bool minimax, T* grad_params,
                         T* g_x, bool want_loss) {
  const NetDev<T>& D = a.d;
  const int M = a.M, L = D.L;
  const uint64_t off = m.offset;
  if (D.drop) m.offset += static_cast<uint64_t>(M) * static_cast<uint64_t>(D.sum_hidden);
  mlp_forward_block(D, m.dP, x, M, m.seed, off, m.dSaved, m.dDrop, m.dMask);
  const T* p = m.dSaved + D.row[L - 1] * M;  // D's output (1 x M)
  const int act = D.acts[L - 1];
  const T ap = D.act_params[L - 1];
  double part = 0.0;
  for (int n = threadIdx.x; n < M; n += kThreads) {
    const T pn = p[n];
    if (want_loss) part += gc::bce_term(pn, label);
    T g = gc::bce_grad(pn, label, static_cast<int64_t>(M));
    if (minimax) g = -g;  // G minimises mean log(1 - D): minus the BCE against label 0
    m.gz[n] = g * gc::activation_grad<T>(act, pn, ap);
  }
  double loss = 0.0;
  if (want_loss) {
    loss = block_sum(part, m.red) / static_cast<double>(M);  // synchronises (gz visible)
    if (minimax) loss = -loss;
  } else {
    __syncthreads();
  }
  mlp_backward_block(D, m.dP, x, M, m.dSaved, m.dDrop, m.dMask, grad_params, g_x, m.gz, m.gh);
  return loss;
}

// G forward on fresh noise; the generated (data_dim x N) block is left in G's last saved rows.
template <typename T>
__device__ void g_forward(const EngineArgs<T>& a, Member<T>& m) {
  sample_noise(a, m);
  const uint64_t off = m.offset;
  if (a.g.drop) m.offset += static_cast<uint64_t>(a.N) * static_cast<uint64_t>(a.g.sum_hidden);
  mlp_forward_block(a.g, m.gP, m.noise, a.N, m.seed, off, m.gSaved, m.gDrop, m.gMask);
}

template <typename T>
__device__ __forceinline__ const T* g_output(const EngineArgs<T>& a, const Member<T>& m) {
  return m.gSaved + a.g.row[a.g.L - 1] * a.N;
}

// torch.optim.SGD (momentum, dampening 0) / Adam on n parameters; one thread per parameter.
// Ends with __syncthreads().
template <typename T>
__device__ void optimizer_block(const gc::OptimizerDesc& o, double lr, int64_t step, T* p, const T* g, T* state,
                                int n) {
  if (o.kind == gc::kOptSgd) {
    const T mu = T(o.momentum), neg_lr = T(-lr);
    if (o.momentum == 0.0) {
      for (int i = threadIdx.x; i < n; i += kThreads) p[i] = gc::sgd_apply(p[i], g[i], neg_lr);
    } else {
      for (int i = threadIdx.x; i < n; i += kThreads) {
        const T buf = step == 0 ? g[i] : gc::sgd_momentum_buf(state[i], g[i], mu);  // first step: copy
        state[i] = buf;
        p[i] = gc::sgd_apply(p[i], buf, neg_lr);
      }
    }
  } else {
    const gc::AdamCoefs<T> c = gc::adam_coefs<T>(o, lr, step);
    for (int i = threadIdx.x; i < n; i += kThreads) gc::adam_update(c, p[i], g[i], state[i], state[n + i]);
  }
  __syncthreads();
}

template <typename T>
__device__ void d_step(const EngineArgs<T>& a, Member<T>& m, double lr, int64_t step, bool report, double* met) {
  fill_zero(m.dG, a.d.num_params);  // read again only after the syncs below
  sample_data(a, m);
  const T* f = features(a, m, m.real);
  const double loss_real = d_pass(a, m, f, T(1), false, m.dG, static_cast<T*>(nullptr), report);
  g_forward(a, m);
  f = features(a, m, g_output(a, m));
  const double loss_fake = d_pass(a, m, f, T(0), false, m.dG, static_cast<T*>(nullptr), report);
  optimizer_block(a.opt_d, lr, step, m.dP, m.dG, m.dO, a.d.num_params);
  if (report) {
    met[gc::kLossDReal] = loss_real;
    met[gc::kLossDFake] = loss_fake;
  }
}

template <typename T>
__device__ void g_step(const EngineArgs<T>& a, Member<T>& m, double lr, int64_t step, bool report, double* met) {
  const NetDev<T>& G = a.g;
  const int N = a.N, L = G.L;
  fill_zero(m.gG, G.num_params);
  g_forward(a, m);
  const T* fake = g_output(a, m);
  const T* f = features(a, m, fake);
  const bool minimax = a.g_loss == gc::kGLossMinimax;
  const double loss_g = d_pass(a, m, f, minimax ? T(0) : T(1), minimax, static_cast<T*>(nullptr), m.gFeats, report);
  const T* g_out = m.gFeats;  // raw: dL/d(fake) is D's input gradient
  if (a.d_input == gc::kDInputMoments) {
    moments_backward_block(fake, N, m.feats, m.gFeats, m.gFake, m.red);
    g_out = m.gFake;
  }
  // dL/dz of G's last layer, then back through G.
  const int total = G.widths[L] * N;
  const int act = G.acts[L - 1];
  const T ap = G.act_params[L - 1];
  for (int t = threadIdx.x; t < total; t += kThreads) m.gz[t] = g_out[t] * gc::activation_grad<T>(act, fake[t], ap);
  __syncthreads();
  mlp_backward_block(G, m.gP, m.noise, N, m.gSaved, m.gDrop, m.gMask, m.gG, static_cast<T*>(nullptr), m.gz, m.gh);
  optimizer_block(a.opt_g, lr, step, m.gP, m.gG, m.gO, G.num_params);
  if (report) {  // mean / std (biased, all dimensions pooled) of the generated batch, in double
    double s = 0.0;
    for (int t = threadIdx.x; t < total; t += kThreads) s += static_cast<double>(fake[t]);
    const double mean = block_sum(s, m.red) / static_cast<double>(total);
    double q = 0.0;
    for (int t = threadIdx.x; t < total; t += kThreads) {
      const double dv = static_cast<double>(fake[t]) - mean;
      q += dv * dv;
    }
    q = block_sum(q, m.red);
    met[gc::kLossG] = loss_g;
    met[gc::kFakeMean] = mean;
    met[gc::kFakeStd] = sqrt(q / static_cast<double>(total));
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) gan_train_kernel(const __grid_constant__ EngineArgs<T> a) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ double red[64];
  const int64_t k = blockIdx.x;
  const Placement& pl = a.place;
  unsigned char* ws = a.ws != nullptr ? a.ws + k * a.ws_stride : nullptr;  // null: nothing lives there
  const auto at = [&](int id) -> unsigned char* { return pl.in_smem[id] ? smem + pl.offset[id] : ws + pl.offset[id]; };
  const int nG = a.g.num_params, nD = a.d.num_params;
  T* const gp_state = a.g_params + k * nG;
  T* const dp_state = a.d_params + k * nD;
  T* const go_state = a.g_opt + k * 2 * nG;
  T* const do_state = a.d_opt + k * 2 * nD;

  Member<T> m;
  m.gP = pl.in_smem[kGP] ? reinterpret_cast<T*>(smem + pl.offset[kGP]) : gp_state;
  m.dP = pl.in_smem[kDP] ? reinterpret_cast<T*>(smem + pl.offset[kDP]) : dp_state;
  m.gO = pl.in_smem[kGO] ? reinterpret_cast<T*>(smem + pl.offset[kGO]) : go_state;
  m.dO = pl.in_smem[kDO] ? reinterpret_cast<T*>(smem + pl.offset[kDO]) : do_state;
  m.gG = reinterpret_cast<T*>(at(kGG));
  m.dG = reinterpret_cast<T*>(at(kDG));
  m.noise = reinterpret_cast<T*>(at(kNoise));
  m.real = reinterpret_cast<T*>(at(kReal));
  m.feats = reinterpret_cast<T*>(at(kFeats));
  m.gSaved = reinterpret_cast<T*>(at(kGSaved));
  m.dSaved = reinterpret_cast<T*>(at(kDSaved));
  m.gDrop = reinterpret_cast<T*>(at(kGDrop));
  m.dDrop = reinterpret_cast<T*>(at(kDDrop));
  m.gMask = reinterpret_cast<uint8_t*>(at(kGMask));
  m.dMask = reinterpret_cast<uint8_t*>(at(kDMask));
  m.gz = reinterpret_cast<T*>(at(kGz));
  m.gh = reinterpret_cast<T*>(at(kGh));
  m.gFeats = reinterpret_cast<T*>(at(kGFeats));
  m.gFake = reinterpret_cast<T*>(at(kGFake));
  m.red = red;
  m.seed = static_cast<uint64_t>(a.seeds[k]);
  m.offset = static_cast<uint64_t>(a.offsets[k]);
  int64_t epoch = a.epochs[k];
  int64_t diverged = a.diverged[k];
  const double lr_d0 = a.lrs[2 * k], lr_g0 = a.lrs[2 * k + 1];

  if (pl.in_smem[kGP]) copy_n(gp_state, m.gP, nG);
  if (pl.in_smem[kDP]) copy_n(dp_state, m.dP, nD);
  if (pl.in_smem[kGO]) copy_n(go_state, m.gO, 2 * nG);
  if (pl.in_smem[kDO]) copy_n(do_state, m.dO, 2 * nD);
  __syncthreads();

  const double nan = __longlong_as_double(0x7ff8000000000000LL);
  double met[gc::kNumMetrics];
#pragma unroll
  for (int j = 0; j < gc::kNumMetrics; ++j) met[j] = nan;

  for (int64_t e = 0; e < a.num_epochs; ++e) {
    if (diverged >= 0) {  // frozen (core/divergence.h): the epoch passes, nothing trains
      ++epoch;
      continue;
    }
    const bool last = e + 1 == a.num_epochs;  // metrics: the last D and G steps of the last epoch
    const double lr_d = gc::scheduled_lr(a.opt_d, lr_d0, epoch);
    const double lr_g = gc::scheduled_lr(a.opt_g, lr_g0, epoch);
    for (int64_t s = 0; s < a.d_steps; ++s) d_step(a, m, lr_d, epoch * a.d_steps + s, last && s + 1 == a.d_steps, met);
    for (int64_t s = 0; s < a.g_steps; ++s) g_step(a, m, lr_g, epoch * a.g_steps + s, last && s + 1 == a.g_steps, met);
    ++epoch;
    // The CPU engine's check (gc::member_diverged), spread over the block: any non-finite
    // parameter, or in the last epoch a non-finite loss of a step that ran.
    int bad = last && gc::reported_loss_nonfinite(a.d_steps, a.g_steps, met) ? 1 : 0;
    for (int t = threadIdx.x; t < nG && !bad; t += kThreads) bad = gc::nonfinite(m.gP[t]);
    for (int t = threadIdx.x; t < nD && !bad; t += kThreads) bad = gc::nonfinite(m.dP[t]);
    if (__syncthreads_or(bad)) diverged = epoch;
  }
  if (diverged >= 0) {
#pragma unroll
    for (int j = 0; j < gc::kNumMetrics; ++j) met[j] = nan;
  }

  // Every phase ended with __syncthreads(): the state in shared memory is final.
  if (pl.in_smem[kGP]) copy_n(m.gP, gp_state, nG);
  if (pl.in_smem[kDP]) copy_n(m.dP, dp_state, nD);
  if (pl.in_smem[kGO]) copy_n(m.gO, go_state, 2 * nG);
  if (pl.in_smem[kDO]) copy_n(m.dO, do_state, 2 * nD);
  if (threadIdx.x == 0) {
    a.offsets[k] = static_cast<int64_t>(m.offset);
    a.epochs[k] = epoch;
    a.diverged[k] = diverged;
#pragma unroll
    for (int j = 0; j < gc::kNumMetrics; ++j) a.metrics[k * gc::kNumMetrics + j] = met[j];
  }
}

// --- host side --------------------------------------------------------------------------------

template <typename T>
NetDev<T> make_net(const gc::MlpDesc& d) {
  NetDev<T> n{};
  n.L = d.num_layers;
  for (int l = 0; l <= d.num_layers; ++l) n.widths[l] = d.widths[l];
  for (int l = 0; l < d.num_layers; ++l) {
    n.acts[l] = d.acts[l];
    n.act_params[l] = static_cast<T>(d.act_params[l]);
    n.w_off[l] = static_cast<int>(d.weight_offset[l]);
    n.b_off[l] = static_cast<int>(d.bias_offset(l));
    n.row[l] = static_cast<int>(d.saved_row(l));
  }
  n.num_params = static_cast<int>(d.num_params);
  n.sum_out = static_cast<int>(d.sum_out_widths);
  n.sum_hidden = static_cast<int>(d.sum_hidden);
  n.max_width = d.max_width;
  n.drop = d.has_dropout() ? 1 : 0;
  n.drop_thr = gc::dropout_threshold(d.dropout);
  n.drop_scale = static_cast<T>(1.0 / (1.0 - d.dropout));  // in double, then rounded, as the CPU
  return n;
}

int device_attr(cudaDeviceAttr attr, int device) {
  int v = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&v, attr, device));
  return v;
}

// Sizes of the member's buffers, then their placement: in the priority order below, a buffer
// goes to shared memory if it still fits the budget, else to global memory. The budget is the
// device's opt-in per-block limit, lowered when the population is large enough to keep several
// blocks per SM busy: smem_per_sm / blocks_wanted - reserved - static, with blocks_wanted =
// min(blocks per SM that registers allow, ceil(P / SMs)) (gan_train_cuda).
template <typename T>
Placement plan_buffers(const gc::GanDesc& desc, int64_t budget, int64_t* smem_bytes, int64_t* ws_bytes) {
  const int64_t N = desc.batch, M = desc.d_batch();
  const int64_t t = sizeof(T);
  const bool moments = desc.d_input == gc::kDInputMoments;
  Placement pl{};
  pl.bytes[kGP] = t * desc.g.num_params;
  pl.bytes[kDP] = t * desc.d.num_params;
  pl.bytes[kGO] = t * 2 * desc.g.num_params;
  pl.bytes[kDO] = t * 2 * desc.d.num_params;
  pl.bytes[kGG] = t * desc.g.num_params;
  pl.bytes[kDG] = t * desc.d.num_params;
  pl.bytes[kNoise] = t * desc.noise.dim * N;
  pl.bytes[kReal] = t * desc.data.dim * N;
  pl.bytes[kFeats] = moments ? t * 4 : 0;
  pl.bytes[kGSaved] = t * desc.g.sum_out_widths * N;
  pl.bytes[kDSaved] = t * desc.d.sum_out_widths * M;
  pl.bytes[kGDrop] = desc.g.has_dropout() ? t * desc.g.sum_hidden * N : 0;
  pl.bytes[kDDrop] = desc.d.has_dropout() ? t * desc.d.sum_hidden * M : 0;
  pl.bytes[kGMask] = desc.g.has_dropout() ? desc.g.sum_hidden * N : 0;
  pl.bytes[kDMask] = desc.d.has_dropout() ? desc.d.sum_hidden * M : 0;
  const int64_t scratch = std::max<int64_t>(desc.g.max_width * N, desc.d.max_width * M);
  pl.bytes[kGz] = t * scratch;
  pl.bytes[kGh] = t * scratch;
  pl.bytes[kGFeats] = t * desc.d.widths[0] * M;
  pl.bytes[kGFake] = moments ? t * N : 0;
  // Most-read first: parameters (read by every sample of every layer), the small moment
  // buffers, gradients, the activations, dropout state, and the optimizer state (touched once
  // per step) last.
  static const int kOrder[kNumBufs] = {kGP,    kDP,    kFeats, kGFeats, kGG,    kDG,    kNoise,
                                       kReal,  kGSaved, kDSaved, kGz,   kGh,    kGFake, kGDrop,
                                       kDDrop, kGMask, kDMask, kGO,    kDO};
  const auto align = [](int64_t b, int64_t to) { return (b + to - 1) / to * to; };
  int64_t smem = 0, ws = 0;
  for (int id : kOrder) {
    const int64_t b = align(pl.bytes[id], 16);
    if (b == 0) continue;
    if (smem + b <= budget) {
      pl.in_smem[id] = 1;
      pl.offset[id] = smem;
      smem += b;
    } else if (id == kGP || id == kDP || id == kGO || id == kDO) {
      pl.in_smem[id] = 0;  // used in place in the state tensors
    } else {
      pl.in_smem[id] = 0;
      pl.offset[id] = ws;
      ws += b;
    }
  }
  *smem_bytes = smem;
  *ws_bytes = align(ws, 256);
  return pl;
}

at::Tensor gan_train_cuda(at::Tensor g_params, at::Tensor d_params, at::Tensor g_opt, at::Tensor d_opt,
                          at::Tensor offsets, at::Tensor epochs, at::Tensor diverged, const at::Tensor& seeds,
                          const at::Tensor& lrs, const at::Tensor& desc_tensor, int64_t num_epochs) {
  const gc::GanDesc desc = make_gan_desc(desc_tensor);  // the description stays on the CPU
  const GanState st{g_params, d_params, g_opt, d_opt, offsets, epochs, diverged, seeds, lrs};
  const int64_t P = check_gan_state(desc, st);
  TORCH_CHECK(num_epochs >= 0, "ganfast: num_epochs must be >= 0");
  TORCH_CHECK(P <= std::numeric_limits<int>::max(), "ganfast: population too large for the CUDA engine (", P, ")");
  const c10::cuda::CUDAGuard guard(g_params.device());
  // Seeds are checked on the host, like the CPU op (one small device-to-host copy).
  TORCH_CHECK(seeds.min().item<int64_t>() >= 0, "ganfast: seeds must be >= 0");
  TORCH_CHECK(diverged.min().item<int64_t>() >= -1 && (diverged <= epochs).all().item<bool>(),
              "ganfast: diverged must be -1 or an epoch count <= epochs");
  const int64_t N = desc.batch, M = desc.d_batch();
  for (const int64_t elems : {desc.g.sum_out_widths * N, desc.d.sum_out_widths * M,
                              static_cast<int64_t>(desc.g.max_width) * N, static_cast<int64_t>(desc.d.max_width) * M,
                              static_cast<int64_t>(desc.noise.dim) * N, static_cast<int64_t>(desc.data.dim) * N}) {
    TORCH_CHECK(elems < kMaxMemberElems, "ganfast: batch ", N,
                " is too large for the CUDA engine (a member's activations need ", elems, " values, limit ",
                kMaxMemberElems, ")");
  }
  at::Tensor metrics = at::full({P, gc::kNumMetrics}, std::numeric_limits<double>::quiet_NaN(),
                                g_params.options().dtype(at::kDouble));
  if (num_epochs == 0) return metrics;

  // The data distribution's arrays on the device: centres | cumulative weights | std.
  const int64_t n_centers = static_cast<int64_t>(desc.data.modes) * desc.data.dim;
  std::vector<double> host_data(desc.data.centers, desc.data.centers + n_centers);
  host_data.insert(host_data.end(), desc.data.cum_weights, desc.data.cum_weights + desc.data.modes);
  host_data.insert(host_data.end(), desc.data.std, desc.data.std + desc.data.dim);
  const at::Tensor data_dev =
      at::tensor(host_data, at::TensorOptions().dtype(at::kDouble)).to(g_params.device(), /*non_blocking=*/false);

  const int device = g_params.device().index();
  const int num_sms = device_attr(cudaDevAttrMultiProcessorCount, device);
  const int64_t optin = device_attr(cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  const int64_t per_sm = device_attr(cudaDevAttrMaxSharedMemoryPerMultiprocessor, device);
  const int64_t reserved = device_attr(cudaDevAttrReservedSharedMemoryPerBlock, device);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES(g_params.scalar_type(), "gan_train_", [&] {
    using T = scalar_t;
    const auto kernel = &gan_train_kernel<T>;
    cudaFuncAttributes attr{};
    C10_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
    const int64_t static_smem = static_cast<int64_t>(attr.sharedSizeBytes);
    int max_blocks = 1;  // resident blocks per SM that registers and threads allow
    C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&max_blocks, kernel, kThreads, 0));
    const int64_t blocks_wanted =
        std::min<int64_t>(std::max(max_blocks, 1), std::max<int64_t>(1, (P + num_sms - 1) / num_sms));
    const int64_t budget =
        std::max<int64_t>(0, std::min(optin - static_smem, per_sm / blocks_wanted - reserved - static_smem));
    int64_t smem_bytes = 0, ws_bytes = 0;
    const Placement pl = plan_buffers<T>(desc, budget, &smem_bytes, &ws_bytes);
    TORCH_CHECK(smem_bytes + static_smem <= optin, "ganfast: the CUDA engine planned ", smem_bytes + static_smem,
                " bytes of shared memory per block, above the device limit of ", optin);
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem_bytes)));
    at::Tensor workspace;
    if (ws_bytes > 0) workspace = at::empty({P * ws_bytes}, g_params.options().dtype(at::kByte));

    EngineArgs<T> a{};
    a.g = make_net<T>(desc.g);
    a.d = make_net<T>(desc.d);
    a.d_input = desc.d_input;
    a.noise_kind = desc.noise.kind;
    a.noise_dim = desc.noise.dim;
    a.noise_a = desc.noise.a;
    a.noise_b = desc.noise.b;
    a.data_dim = desc.data.dim;
    a.modes = desc.data.modes;
    a.centers = data_dev.data_ptr<double>();
    a.cum = a.centers + n_centers;
    a.data_std = a.cum + desc.data.modes;
    a.g_loss = desc.g_loss;
    a.N = static_cast<int>(N);
    a.M = static_cast<int>(M);
    a.d_steps = desc.d_steps;
    a.g_steps = desc.g_steps;
    a.num_epochs = num_epochs;
    a.opt_d = desc.opt_d;
    a.opt_g = desc.opt_g;
    a.g_params = g_params.data_ptr<T>();
    a.d_params = d_params.data_ptr<T>();
    a.g_opt = g_opt.data_ptr<T>();
    a.d_opt = d_opt.data_ptr<T>();
    a.offsets = offsets.data_ptr<int64_t>();
    a.epochs = epochs.data_ptr<int64_t>();
    a.diverged = diverged.data_ptr<int64_t>();
    a.seeds = seeds.data_ptr<int64_t>();
    a.lrs = lrs.data_ptr<double>();
    a.metrics = metrics.data_ptr<double>();
    a.ws = ws_bytes > 0 ? workspace.data_ptr<uint8_t>() : nullptr;
    a.ws_stride = ws_bytes;
    a.place = pl;
    gan_train_kernel<T><<<static_cast<unsigned>(P), kThreads, static_cast<size_t>(smem_bytes), stream>>>(a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return metrics;
}

}  // namespace

TORCH_LIBRARY_IMPL(ganfast, CUDA, m) { m.impl("gan_train_", &gan_train_cuda); }

}  // namespace ganfast
