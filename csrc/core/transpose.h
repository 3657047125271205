// dst = src^T for a row-major (rows x cols) block: the one change of layout between the
// sample-major order of the Philox stream and of the ops' (N, d) tensors, and the
// feature-major (d x N) blocks the kernels work on. Host code.
#pragma once

#include <cstring>

#include "common.h"

GF_BEGIN_NAMESPACE

// In 16 x 16 tiles, so that both sides stay in cache whatever the shapes.
template <typename T>
inline void transpose(const T* src, int64_t rows, int64_t cols, T* dst) {
  if (rows == 1 || cols == 1) {  // a vector: the same order either way
    std::memcpy(dst, src, sizeof(T) * rows * cols);
    return;
  }
  constexpr int64_t kTile = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    const int64_t r1 = r0 + kTile < rows ? r0 + kTile : rows;
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t c1 = c0 + kTile < cols ? c0 + kTile : cols;
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) dst[c * rows + r] = src[r * cols + c];
    }
  }
}

GF_END_NAMESPACE
