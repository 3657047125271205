// Compile-only check that the torch-free core headers are valid CUDA: every header is included
// and each GF_HD (__host__ __device__) function is instantiated in device code, for float and
// double where it is a template. Built by CMakeLists.txt with -DGANFAST_CUDA_CHECK=ON as an
// OBJECT library (no GPU needed, nothing is run), so CI catches CUDA syntax/qualifier errors in
// csrc/core without a device. Not part of the Python extension.
#include "../core/activation.h"
#include "../core/common.h"
#include "../core/fastmath.h"
#include "../core/mlp.h"
#include "../core/philox.h"

namespace gc = ganfast::core;

namespace {

template <typename T>
__device__ T activations_device(T z, T param, int act) {
  T acc = gc::activate<T>(act, z, param);
  acc += gc::activation_grad<T>(act, acc, param);
  acc += gc::sigmoid<T>(z) + gc::exp_(-z * z) + gc::tanh_(z);
  // Every activation code with a compile-time constant too (each switch case instantiated).
  for (int a = 0; a < gc::kNumActivations; ++a) acc += gc::activation_grad<T>(a, gc::activate<T>(a, z, param), param);
  return acc;
}

}  // namespace

__global__ void ganfast_core_cuda_check_kernel(uint64_t seed, uint64_t offset, double p, float* out_f,
                                               double* out_d, uint32_t* out_w) {
  const uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;

  // Philox: the raw block function, stream addressing, one word.
  const gc::Words4 w = gc::philox4x32_10(static_cast<uint32_t>(i), 1u, 2u, 3u, 0xa4093822u, 0x299f31d0u);
  const gc::Words4 b = gc::philox_block(seed, (offset + i) >> 2);
  const uint32_t word = gc::philox_word(seed, offset + i);
  out_w[i] = w.v[0] ^ b.v[1] ^ word;

  // word -> number transforms.
  const gc::Uniform<float> uf(-1.0, 1.0);
  const gc::Uniform<double> ud(-1.0, 1.0);
  double zc, zs;
  gc::box_muller(w.v[0], w.v[1], &zc, &zs);
  const uint32_t thr = gc::dropout_threshold(p);
  const bool keep = gc::dropout_keep(w.v[2], thr);

  // fastmath, directly.
  double s, c;
  gc::sincos_2pi(ud(w.v[3]) * 0.5 + 0.5, &s, &c);
  const double lg = gc::log_unit((static_cast<double>(word) + 1.0) * 0x1p-32);
  const double roundtrip = gc::double_of(gc::bits_of(lg));

  // Activations and their gradients, float and double.
  const float af = activations_device<float>(uf(word), 0.2f, static_cast<int>(word % gc::kNumActivations));
  const double ad = activations_device<double>(ud(word), 0.5, static_cast<int>(word % gc::kNumActivations));

  out_f[i] = af + (keep ? uf(w.v[1]) : 0.0f);
  out_d[i] = ad + zc + zs + s + c + roundtrip;
}

// Host side of the same headers under nvcc: the MlpDesc layout helpers and the host loops.
void ganfast_core_cuda_check_host(float* y, double* yd) {
  gc::MlpDesc d;
  d.num_layers = 2;
  d.widths[0] = 1;
  d.widths[1] = 4;
  d.widths[2] = 1;
  d.acts[0] = gc::kTanh;
  d.acts[1] = gc::kIdentity;
  d.finalize();
  float P[13] = {}, x[2] = {}, saved[10] = {}, scratch[12] = {};
  gc::mlp_forward<float>(d, P, x, 2, false, 0, 0, saved, scratch, nullptr);
  float g[2] = {1, 1}, gP[13] = {}, gx[2] = {};
  gc::mlp_backward<float>(d, P, x, 2, false, 0, 0, saved, g, gP, gx, scratch, nullptr);
  double Pd[13] = {}, xd[2] = {}, savedd[10] = {}, scratchd[12] = {};
  gc::mlp_forward<double>(d, Pd, xd, 2, false, 0, 0, savedd, scratchd, nullptr);
  uint32_t words[8];
  gc::philox_fill_words(1, 3, 8, words);
  y[0] = saved[9] + gx[0] + static_cast<float>(words[0]);
  yd[0] = savedd[9];
}
