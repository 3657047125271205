// What one toy GAN is (networks, noise, data, D input, loss, optimizers) and the per-member
// state the engine trains in place. Data only; the training loop is in gan_step.h.
#pragma once

#include <cstdint>

#include "mlp_desc.h"

namespace ganfast {
namespace core {

enum NoiseKind : int { kNoiseUniform = 0, kNoiseNormal = 1 };
enum DInput : int { kDInputRaw = 0, kDInputMoments = 1 };
enum GLoss : int { kGLossNonSaturating = 0, kGLossMinimax = 1 };
enum OptKind : int { kOptSgd = 0, kOptAdam = 1 };

struct NoiseDesc {
  int kind = kNoiseUniform;
  int dim = 1;
  double a = 0.0, b = 1.0;  // uniform: [low, high); normal: mean, std
};

// The real distribution, always a diagonal Gaussian mixture: K centres (K x dim), cumulative
// weights, and one std per dimension. A plain normal is K = 1 and draws no component words.
struct DataDesc {
  int dim = 1;
  int modes = 1;
  const double* centers = nullptr;
  const double* cum_weights = nullptr;
  const double* std = nullptr;
};

struct OptimizerDesc {
  int kind = kOptSgd;
  double momentum = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  int64_t step_size = 0;  // StepLR period in epochs; 0 = constant learning rate
  double gamma = 1.0;
};

struct GanDesc {
  MlpDesc g, d;
  int d_input = kDInputRaw;
  NoiseDesc noise;
  DataDesc data;
  int64_t batch = 1;
  int64_t d_steps = 1, g_steps = 1;
  int g_loss = kGLossNonSaturating;
  OptimizerDesc opt_d, opt_g;

  int64_t d_batch() const { return d_input == kDInputMoments ? 1 : batch; }
};

// What one member's call reports: losses of the last D and G steps of the last epoch, and the
// mean / std (all dimensions pooled) of the last G step's generated batch.
enum Metric : int { kLossDReal = 0, kLossDFake, kLossG, kFakeMean, kFakeStd, kNumMetrics };

// Per-member state, all owned by the caller.
template <typename T>
struct MemberState {
  T* g_params;
  T* d_params;
  T* g_opt;  // 2 * g.num_params: SGD momentum buffer | Adam (m, v)
  T* d_opt;
  uint64_t seed;
  uint64_t* offset;  // Philox words consumed so far
  int64_t* epoch;    // epochs completed so far
  int64_t* diverged; // -1, or the epoch count at the end of the epoch it diverged in (divergence.h)
  double lr_d, lr_g; // base learning rates (StepLR decays them)
};

}  // namespace core
}  // namespace ganfast
