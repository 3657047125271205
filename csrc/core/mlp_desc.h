// What a small MLP is: widths, activations, dropout, and the flat-parameter layout derived
// from them (docs/design.md). Data only, shared by every instruction-set build of the kernels,
// the CUDA code and the argument checks.
#pragma once

#include <cstdint>

namespace ganfast {
namespace core {

enum Activation : int {
  kIdentity = 0,
  kRelu = 1,
  kLeakyRelu = 2,  // param: negative slope (> 0)
  kElu = 3,        // param: alpha (> 0)
  kTanh = 4,
  kSigmoid = 5,
};
constexpr int kNumActivations = 6;

constexpr int kMaxWidth = 256;
constexpr int kMaxLayers = 16;

struct MlpDesc {
  int num_layers = 0;
  int widths[kMaxLayers + 1] = {};
  int acts[kMaxLayers] = {};
  double act_params[kMaxLayers] = {};
  double dropout = 0.0;  // after each hidden activation, training mode only

  // Derived by finalize().
  int64_t weight_offset[kMaxLayers] = {};  // W_l; b_l follows at + widths[l+1] * widths[l]
  int64_t num_params = 0;
  int max_width = 0;
  int64_t sum_out_widths = 0;  // d_1 + ... + d_L: rows of the saved activations
  int64_t sum_hidden = 0;      // d_1 + ... + d_{L-1}: rows that see dropout

  void finalize() {
    num_params = 0;
    max_width = widths[0];
    sum_out_widths = sum_hidden = 0;
    for (int l = 0; l < num_layers; ++l) {
      weight_offset[l] = num_params;
      num_params += static_cast<int64_t>(widths[l + 1]) * (widths[l] + 1);
      max_width = widths[l + 1] > max_width ? widths[l + 1] : max_width;
      sum_out_widths += widths[l + 1];
      if (l + 1 < num_layers) sum_hidden += widths[l + 1];
    }
  }
  int64_t bias_offset(int l) const { return weight_offset[l] + static_cast<int64_t>(widths[l + 1]) * widths[l]; }
  // Row of layer l's output (l = 0..L-1) in the saved (sum_out_widths x N) block.
  int64_t saved_row(int l) const {
    int64_t r = 0;
    for (int j = 0; j < l; ++j) r += widths[j + 1];
    return r;
  }
  bool has_dropout() const { return dropout > 0.0 && num_layers > 1; }
  // Philox words of one training-mode forward pass over N samples.
  int64_t dropout_words(int64_t N) const { return has_dropout() ? N * sum_hidden : 0; }
  // Scratch the forward/backward need: values (T) and words (uint32).
  // forward uses the first max_width * N values, backward all four blocks (mlp.h).
  int64_t scratch_values(int64_t N) const { return 4 * static_cast<int64_t>(max_width) * N; }
  int64_t scratch_words(int64_t N) const { return has_dropout() ? 2 * static_cast<int64_t>(max_width) * N : 0; }
};

}  // namespace core
}  // namespace ganfast
