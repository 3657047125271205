// Divergence of a population member: the engine's one check, at the end of every epoch (the
// training loop in gan_step.h and the CUDA engine call it; docs/design.md, "Divergence"). A
// member diverges when a parameter of G or D is NaN or infinite (whatever produced it: a huge
// learning rate, an overflow, a NaN loss's gradient), or when a loss the call reports is; from
// then on the engine freezes it (no more steps, no more words of its stream) and reports NaN
// metrics for it. GanState.diverged holds the epoch count at the end of the epoch in which that
// happened, -1 while the member is finite.
#pragma once

#include <limits>

#include "gan_desc.h"
#include "common.h"

GF_BEGIN_NAMESPACE

// x * 0 is 0 for every finite x and NaN for an infinity or a NaN (no -ffinite-math-only and
// no -ffast-math, so the compiler keeps the product).
template <typename T>
GF_HD bool nonfinite(T x) {
  return !(x * T(0) == T(0));
}

// True when any of the n values is NaN or infinite: one vectorised sum of x * 0.
template <typename T>
inline bool any_nonfinite(const T* x, int64_t n) {
  T acc = T(0);
  GF_SIMD_SUM(acc) for (int64_t i = 0; i < n; ++i) acc += x[i] * T(0);
  return nonfinite(acc);
}

// True when a loss the call reports (metrics of its last epoch) is NaN or infinite; the losses
// of a network with 0 steps are never computed (NaN) and do not count.
GF_HD bool reported_loss_nonfinite(int64_t d_steps, int64_t g_steps, const double* metrics) {
  const bool d_bad = d_steps > 0 && (nonfinite(metrics[kLossDReal]) || nonfinite(metrics[kLossDFake]));
  return d_bad || (g_steps > 0 && nonfinite(metrics[kLossG]));
}

// True when member s has diverged: a non-finite parameter, or (metrics given: the call's last
// epoch, the only one whose losses are computed) a non-finite loss of a step that ran.
template <typename T>
inline bool member_diverged(const GanDesc& g, const MemberState<T>& s, const double* metrics) {
  if (any_nonfinite(s.g_params, g.g.num_params) || any_nonfinite(s.d_params, g.d.num_params)) return true;
  return metrics != nullptr && reported_loss_nonfinite(g.d_steps, g.g_steps, metrics);
}

// The three calls of an epoch loop (train_epochs in gan_step.h, shared by every CPU trainer):
//   for each epoch: if (frozen_epoch_passes(s)) continue;  ...steps...;  ++*s.epoch;
//                   mark_if_diverged(desc, s, last_epoch ? metrics : nullptr);
//   after the loop: nan_metrics_if_diverged(s, metrics);

// The start of an epoch: true (and the epoch passes, nothing trains) when s is frozen.
template <typename T>
inline bool frozen_epoch_passes(MemberState<T>& s) {
  if (*s.diverged < 0) return false;
  ++*s.epoch;
  return true;
}

// The end of an epoch (its count already advanced): mark s diverged at this epoch count.
template <typename T>
inline void mark_if_diverged(const GanDesc& g, MemberState<T>& s, const double* metrics) {
  if (member_diverged(g, s, metrics)) *s.diverged = *s.epoch;
}

// The end of a call: a diverged member reports NaN metrics.
template <typename T>
inline void nan_metrics_if_diverged(const MemberState<T>& s, double* metrics) {
  if (*s.diverged < 0) return;
  for (int j = 0; j < kNumMetrics; ++j) metrics[j] = std::numeric_limits<double>::quiet_NaN();
}

GF_END_NAMESPACE
