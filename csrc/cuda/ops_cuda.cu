// CUDA implementations of fill_uniform_, fill_normal_, mlp_forward and mlp_backward (the
// schemas are in csrc/ops.cpp, the contracts in docs/design.md). Same argument checks as the CPU
// ops (op_args.h), same layouts at the boundary: x / out / grad_x row-major (N, d), `saved`
// feature-major (layer by layer, each a d_l x N block), so CPU and CUDA `saved` buffers are
// interchangeable. Built with --fmad=false (setup.py): no contraction of a * b + c, so the
// arithmetic is the CPU build's (-ffp-contract=off) wherever the order of operations is the same.
//
// These ops are not the hot path (the training engine is, engine_cuda.cu): the MLP runs layer by
// layer, one kernel per step, with simple thread-per-output mappings and deterministic block
// reductions for the parameter gradients.
#define GF_ISA isa_cuda  // the core headers' inline namespace for this translation unit

#include <array>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <algorithm>

#include "../core/activation.h"
#include "../core/gan_step.h"
#include "../core/philox.h"
#include "../op_args.h"

namespace ganfast {
namespace {

namespace gc = core;

constexpr int kThreads = 256;   // every kernel of this file; a multiple of 32 (block_sum)
constexpr int64_t kMaxBlocks = 8192;  // grid-stride loops beyond this

int64_t grid_for(int64_t work_items) {
  return std::max<int64_t>(1, std::min<int64_t>((work_items + kThreads - 1) / kThreads, kMaxBlocks));
}

__device__ __forceinline__ int64_t global_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_threads() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// --- Philox fills: one thread per Philox block (4 words) ----------------------------------------

// Element i is word offset + i: block (offset + i) >> 2, lane (offset + i) & 3. Block t of the
// range (counted from offset >> 2) holds elements 4t + lane - lead, lead = offset & 3.
template <typename T>
__global__ void fill_uniform_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, double lo, double hi) {
  const gc::Uniform<T> uni(lo, hi);
  const uint64_t first = offset >> 2;
  const int64_t lead = static_cast<int64_t>(offset & 3);
  const int64_t nblocks = (lead + n + 3) >> 2;
  for (int64_t t = global_thread(); t < nblocks; t += grid_threads()) {
    const gc::Words4 w = gc::philox_block(seed, first + static_cast<uint64_t>(t));
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t i = 4 * t + lane - lead;
      if (i >= 0 && i < n) out[i] = uni(w.v[lane]);
    }
  }
}

// Value k uses the pair of words offset + 2 (k / 2), offset + 2 (k / 2) + 1 (cos for even k, sin
// for odd k). A thread takes the pairs whose first word lies in its Philox block; with an odd
// offset the last of them ends in the next block, which it computes too.
template <typename T>
__global__ void fill_normal_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std) {
  const int64_t pairs = (n + 1) / 2;
  const uint64_t first = offset >> 2;
  const int64_t lead = static_cast<int64_t>(offset & 3);
  const int64_t nblocks = ((lead + 2 * pairs - 2) >> 2) + 1;  // blocks holding a pair's first word
  for (int64_t t = global_thread(); t < nblocks; t += grid_threads()) {
    const uint64_t b = first + static_cast<uint64_t>(t);
    const gc::Words4 w = gc::philox_block(seed, b);
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t e = 4 * t + lane - lead;  // word index relative to offset
      if (e < 0 || e >= 2 * pairs || (e & 1)) continue;
      const uint32_t second = lane < 3 ? w.v[(lane + 1) & 3] : gc::philox_block(seed, b + 1).v[0];
      double z_cos, z_sin;
      gc::box_muller(w.v[lane], second, &z_cos, &z_sin);
      const int64_t k = e;  // = 2 * (pair index): the even value of the pair
      out[k] = gc::normal_value<T>(mean, std, z_cos);
      if (k + 1 < n) out[k + 1] = gc::normal_value<T>(mean, std, z_sin);
    }
  }
}

void fill_uniform_cuda(at::Tensor out, int64_t seed, int64_t offset, double lo, double hi) {
  check_float_tensor(out, "out");
  check_seed_offset(seed, offset);
  TORCH_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "ganfast: uniform needs finite lo <= hi, got [",
              lo, ", ", hi, ")");
  const int64_t n = out.numel();
  if (n == 0) return;
  const c10::cuda::CUDAGuard guard(out.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t nblocks = ((offset & 3) + n + 3) >> 2;
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "fill_uniform_", [&] {
    fill_uniform_kernel<scalar_t><<<grid_for(nblocks), kThreads, 0, stream>>>(
        out.data_ptr<scalar_t>(), n, static_cast<uint64_t>(seed), static_cast<uint64_t>(offset), lo, hi);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

void fill_normal_cuda(at::Tensor out, int64_t seed, int64_t offset, double mean, double std) {
  check_float_tensor(out, "out");
  check_seed_offset(seed, offset);
  TORCH_CHECK(std::isfinite(mean) && std::isfinite(std) && std > 0.0,
              "ganfast: normal needs a finite mean and std > 0, got mean ", mean, ", std ", std);
  const int64_t n = out.numel();
  if (n == 0) return;
  const c10::cuda::CUDAGuard guard(out.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t nblocks = (((offset & 3) + 2 * ((n + 1) / 2) - 2) >> 2) + 1;
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "fill_normal_", [&] {
    fill_normal_kernel<scalar_t><<<grid_for(nblocks), kThreads, 0, stream>>>(
        out.data_ptr<scalar_t>(), n, static_cast<uint64_t>(seed), static_cast<uint64_t>(offset), mean, std);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

// --- MLP, layer by layer --------------------------------------------------------------------

// y[o][n] = act(b[o] + sum_i W[o][i] h(i, n)), h(i, n) = h[i * hs_i + n * hs_n] (row-major x or a
// feature-major block), summed in the CPU kernels' order (bias first, then i = 0, 1, ...).
// Writes the feature-major y and, for the last layer, the row-major output too.
template <typename T>
__global__ void linear_act_kernel(const T* W, const T* b, const T* h, int64_t hs_i, int64_t hs_n, int in, int out,
                                  int64_t N, int act, T param, T* y, T* out_rows) {
  const int64_t total = static_cast<int64_t>(out) * N;
  for (int64_t t = global_thread(); t < total; t += grid_threads()) {
    const int o = static_cast<int>(t / N);
    const int64_t n = t - static_cast<int64_t>(o) * N;
    const T* w = W + static_cast<int64_t>(o) * in;
    T acc = b[o];
    for (int i = 0; i < in; ++i) acc += w[i] * h[i * hs_i + n * hs_n];
    const T v = gc::activate<T>(act, acc, param);
    y[t] = v;
    if (out_rows != nullptr) out_rows[n * out + o] = v;
  }
}

// Inverted dropout of a hidden layer's (w x N) feature-major block a: element (n, j) uses word
// start + n * w + j (docs/design.md); one thread per Philox block of that word range.
template <typename T>
__global__ void dropout_kernel(const T* a, T* h, int w, int64_t N, uint64_t seed, uint64_t start, uint32_t thr,
                               T scale) {
  const int64_t count = static_cast<int64_t>(w) * N;
  const uint64_t first = start >> 2;
  const int64_t lead = static_cast<int64_t>(start & 3);
  const int64_t nblocks = (lead + count + 3) >> 2;
  for (int64_t t = global_thread(); t < nblocks; t += grid_threads()) {
    const gc::Words4 wd = gc::philox_block(seed, first + static_cast<uint64_t>(t));
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t e = 4 * t + lane - lead;
      if (e < 0 || e >= count) continue;
      const int64_t n = e / w, j = e - n * w;
      const int64_t idx = j * N + n;
      h[idx] = gc::dropout_keep(wd.v[lane], thr) ? a[idx] * scale : T(0);
    }
  }
}

// dL/dz of the last layer: g_out (row-major N x dL) times f'(z) from the saved outputs y.
template <typename T>
__global__ void output_grad_kernel(const T* grad_out, const T* y, int dL, int64_t N, int act, T param, T* gz) {
  const int64_t total = static_cast<int64_t>(dL) * N;
  for (int64_t t = global_thread(); t < total; t += grid_threads()) {
    const int o = static_cast<int>(t / N);
    const int64_t n = t - static_cast<int64_t>(o) * N;
    gz[t] = grad_out[n * dL + o] * gc::activation_grad<T>(act, y[t], param);
  }
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
  return v;  // the butterfly leaves the same bits in every lane (a + b == b + a)
}

// One block per parameter of layer l: gW[o][i] = sum_n gz[o][n] h(i, n), gb[o] = sum_n gz[o][n]
// (p = o * (in + 1) + i, i == in for the bias). Per-thread strided partial sums, then a fixed
// shuffle tree: deterministic. grad_params starts at zero and each entry has one writer.
template <typename T>
__global__ void param_grad_kernel(const T* gz, const T* h, int64_t hs_i, int64_t hs_n, int in, int64_t N, T* gW,
                                  T* gb) {
  __shared__ T partial[kThreads / 32];
  const int p = blockIdx.x;
  const int o = p / (in + 1), i = p - o * (in + 1);
  const T* go = gz + static_cast<int64_t>(o) * N;
  T s = T(0);
  if (i < in) {
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x) s += go[n] * h[i * hs_i + n * hs_n];
  } else {
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x) s += go[n];
  }
  s = warp_sum(s);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x < 32) {
    T r = threadIdx.x < kThreads / 32 ? partial[threadIdx.x] : T(0);
    r = warp_sum(r);
    if (threadIdx.x == 0) {
      if (i < in) gW[static_cast<int64_t>(o) * in + i] = r;
      else gb[o] = r;
    }
  }
}

// g_in(i, n) = sum_o W[o][i] gz[o][n] (from 0, o = 0, 1, ... as the CPU kernels). For l > 0 this
// continues back through layer l-1's dropout (the mask word recomputed per element) and its
// activation (from the saved pre-dropout output a_in), into the feature-major gh; for l == 0 it
// is the row-major grad_x.
template <typename T>
__global__ void input_grad_kernel(const T* W, const T* gz, int in, int out, int64_t N, bool hidden, const T* a_in,
                                  int act, T param, bool drop, uint64_t seed, uint64_t mask_start, uint32_t thr,
                                  T scale, T* gh, T* grad_x) {
  const int64_t total = static_cast<int64_t>(in) * N;
  for (int64_t t = global_thread(); t < total; t += grid_threads()) {
    const int i = static_cast<int>(t / N);
    const int64_t n = t - static_cast<int64_t>(i) * N;
    T acc = T(0);
    for (int o = 0; o < out; ++o) acc += W[static_cast<int64_t>(o) * in + i] * gz[o * N + n];
    if (hidden) {
      if (drop) {
        const uint32_t word = gc::philox_word(seed, mask_start + static_cast<uint64_t>(n * in + i));
        acc = gc::dropout_keep(word, thr) ? acc * scale : T(0);
      }
      acc *= gc::activation_grad<T>(act, a_in[t], param);
      gh[t] = acc;
    } else {
      grad_x[n * in + i] = acc;
    }
  }
}

std::tuple<at::Tensor, at::Tensor> mlp_forward_cuda(const at::Tensor& x, const at::Tensor& params,
                                                    at::IntArrayRef widths, at::IntArrayRef acts,
                                                    at::ArrayRef<double> act_params, double dropout,
                                                    int64_t seed, int64_t offset) {
  const core::MlpDesc d = make_mlp_desc(widths, acts, act_params, dropout);
  const int64_t N = check_mlp_inputs(d, x, params);
  check_seed_offset(seed, offset);
  const c10::cuda::CUDAGuard guard(x.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int L = d.num_layers;
  at::Tensor saved = at::empty({d.sum_out_widths * N}, x.options());
  at::Tensor out = at::empty({N, d.widths[L]}, x.options());
  const bool drop = d.has_dropout();
  at::Tensor scratch = drop ? at::empty({static_cast<int64_t>(d.max_width) * N}, x.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mlp_forward", [&] {
    const scalar_t* P = params.data_ptr<scalar_t>();
    scalar_t* sv = saved.data_ptr<scalar_t>();
    scalar_t* hd = drop ? scratch.data_ptr<scalar_t>() : nullptr;
    const uint32_t thr = gc::dropout_threshold(d.dropout);
    const scalar_t scale = static_cast<scalar_t>(1.0 / (1.0 - d.dropout));
    const scalar_t* h = x.data_ptr<scalar_t>();
    int64_t hs_i = 1, hs_n = d.widths[0];  // x is row-major (N, d0)
    for (int l = 0; l < L; ++l) {
      const int in = d.widths[l], w = d.widths[l + 1];
      scalar_t* y = sv + d.saved_row(l) * N;
      linear_act_kernel<scalar_t><<<grid_for(w * N), kThreads, 0, stream>>>(
          P + d.weight_offset[l], P + d.bias_offset(l), h, hs_i, hs_n, in, w, N, d.acts[l],
          static_cast<scalar_t>(d.act_params[l]), y, l + 1 == L ? out.data_ptr<scalar_t>() : nullptr);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (drop && l + 1 < L) {
        const int64_t count = w * N;
        dropout_kernel<scalar_t><<<grid_for(((offset & 3) + count + 3) / 4 + 1), kThreads, 0, stream>>>(
            y, hd, w, N, static_cast<uint64_t>(seed),
            static_cast<uint64_t>(offset) + static_cast<uint64_t>(N * d.saved_row(l)), thr, scale);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        h = hd;
      } else {
        h = y;
      }
      hs_i = N;
      hs_n = 1;
    }
  });
  return {out, saved};
}

// The population forward on CUDA: one mlp_forward_cuda per member (the documented fallback: a
// launch sequence per member, each member exactly as mlp_forward computes it; a fused
// all-members kernel would save the launches, which matter only for large populations).
at::Tensor mlp_forward_population_cuda(const at::Tensor& x, const at::Tensor& params, at::IntArrayRef widths,
                                       at::IntArrayRef acts, at::ArrayRef<double> act_params, double dropout,
                                       int64_t seed, int64_t offset) {
  const PopulationArgs a = population_args(x, params, widths, acts, act_params, dropout, seed, offset);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty({a.P, a.N, a.d.widths[a.d.num_layers]}, x.options());
  for (int64_t k = 0; k < a.P; ++k) {
    auto [member_out, saved] = mlp_forward_cuda(x, params.select(0, k), widths, acts, act_params, dropout, seed,
                                                offset);
    out.select(0, k).copy_(member_out);
  }
  return out;
}

std::tuple<at::Tensor, at::Tensor> mlp_backward_cuda(const at::Tensor& grad_out, const at::Tensor& x,
                                                     const at::Tensor& params, const at::Tensor& saved,
                                                     at::IntArrayRef widths, at::IntArrayRef acts,
                                                     at::ArrayRef<double> act_params, double dropout,
                                                     int64_t seed, int64_t offset, std::array<bool, 2> output_mask) {
  const core::MlpDesc d = make_mlp_desc(widths, acts, act_params, dropout);
  const int64_t N = check_mlp_backward_inputs(d, grad_out, x, params, saved);
  check_seed_offset(seed, offset);
  const c10::cuda::CUDAGuard guard(x.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor grad_x = at::empty_like(x);
  at::Tensor grad_params = at::zeros_like(params);
  const int L = d.num_layers;
  const bool drop = d.has_dropout();
  const int64_t mw = d.max_width;
  at::Tensor scratch = at::empty({(drop ? 3 : 2) * mw * N}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mlp_backward", [&] {
    const scalar_t* P = params.data_ptr<scalar_t>();
    const scalar_t* sv = saved.data_ptr<scalar_t>();
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* gP = grad_params.data_ptr<scalar_t>();
    scalar_t* gz = scratch.data_ptr<scalar_t>();
    scalar_t* gh = gz + mw * N;
    scalar_t* hd = drop ? gz + 2 * mw * N : nullptr;  // layer l's input after dropout, re-made
    const uint32_t thr = gc::dropout_threshold(d.dropout);
    const scalar_t scale = static_cast<scalar_t>(1.0 / (1.0 - d.dropout));
    const int dL = d.widths[L];
    output_grad_kernel<scalar_t><<<grid_for(dL * N), kThreads, 0, stream>>>(
        grad_out.data_ptr<scalar_t>(), sv + d.saved_row(L - 1) * N, dL, N, d.acts[L - 1],
        static_cast<scalar_t>(d.act_params[L - 1]), gz);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    for (int l = L - 1; l >= 0; --l) {
      const int in = d.widths[l], w = d.widths[l + 1];
      const scalar_t* W = P + d.weight_offset[l];
      // This layer's input: x (row-major) or layer l-1's saved output, after dropout.
      const scalar_t* a_in = l == 0 ? xp : sv + d.saved_row(l - 1) * N;
      const scalar_t* h = a_in;
      int64_t hs_i = l == 0 ? 1 : N, hs_n = l == 0 ? d.widths[0] : 1;
      const uint64_t mask_start =
          static_cast<uint64_t>(offset) + (l > 0 ? static_cast<uint64_t>(N * d.saved_row(l - 1)) : 0u);
      if (l > 0 && drop) {
        const int64_t count = in * N;
        dropout_kernel<scalar_t><<<grid_for(((offset & 3) + count + 3) / 4 + 1), kThreads, 0, stream>>>(
            a_in, hd, in, N, static_cast<uint64_t>(seed), mask_start, thr, scale);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        h = hd;
      }
      param_grad_kernel<scalar_t><<<w * (in + 1), kThreads, 0, stream>>>(gz, h, hs_i, hs_n, in, N,
                                                                         gP + d.weight_offset[l],
                                                                         gP + d.bias_offset(l));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      const bool hidden = l > 0;
      input_grad_kernel<scalar_t><<<grid_for(in * N), kThreads, 0, stream>>>(
          W, gz, in, w, N, hidden, a_in, hidden ? d.acts[l - 1] : 0,
          static_cast<scalar_t>(hidden ? d.act_params[l - 1] : 0.0), hidden && drop, static_cast<uint64_t>(seed),
          mask_start, thr, scale, gh, grad_x.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      std::swap(gz, gh);
    }
  });
  // The kernels compute both gradients; an output left out of output_mask is dropped here (the
  // CPU op skips its work; on the GPU these products are not where the time goes).
  return {output_mask[0] ? grad_x : x.new_empty({0}), output_mask[1] ? grad_params : params.new_empty({0})};
}

}  // namespace

TORCH_LIBRARY_IMPL(ganfast, CUDA, m) {
  m.impl("fill_uniform_", &fill_uniform_cuda);
  m.impl("fill_normal_", &fill_normal_cuda);
  m.impl("mlp_forward", &mlp_forward_cuda);
  m.impl("mlp_backward", &mlp_backward_cuda);
  m.impl("mlp_forward_population", &mlp_forward_population_cuda);
}

}  // namespace ganfast
