// Cycles per vector of the engine's float activations (csrc/core/vmath.h, the functions the fast
// path inlines), over a 512-float row as in one G layer, against a bare divide row:
//   g++ -O3 -std=c++17 -fopenmp-simd -ffp-contract=off -fno-math-errno -fno-trapping-math \
//       -Icsrc bench/native/math_cycles.cpp -o /tmp/math_cycles
//   taskset -c 0 /tmp/math_cycles 2.8      # the clock in GHz, to turn ns into cycles
// docs/benchmarks.md ("Issue 12: where the time goes") uses it to bound the G forward.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#pragma GCC target("avx2,fma")
#define GF_ISA isa_avx2
#define GF_HAVE_FMA 1
#include "core/vmath.h"

using namespace ganfast::core;
using V = vec_t<float>;
constexpr int kN = 512, kL = Vec<float>::kLanes;
alignas(64) float row[kN], out[kN];

template <typename F>
static double ns_per_vector(F&& f) {
  const long reps = 200000;
  const auto t0 = std::chrono::steady_clock::now();
  for (long r = 0; r < reps; ++r) {
    for (int i = 0; i < kN; i += kL) vstore(out + i, f(vload(row + i)));
    asm volatile("" ::"r"(out) : "memory");
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s / reps / (kN / kL) * 1e9;
}

int main(int argc, char** argv) {
  const double ghz = argc > 1 ? std::atof(argv[1]) : 2.8;
  for (int i = 0; i < kN; ++i) row[i] = (i - kN / 2) * 0.01f;
  const struct {
    const char* name;
    double ns;
  } rows[] = {
      {"tanh (vtanh_f)", ns_per_vector([](V x) { return vtanh_f(x); })},
      {"sigmoid (vsigmoid_f)", ns_per_vector([](V x) { return vsigmoid_f(x); })},
      {"exp (vexp_f)", ns_per_vector([](V x) { return vexp_f(x); })},
      {"a bare divide", ns_per_vector([](V x) { return x / 1.7f; })},
      {"a multiply-add", ns_per_vector([](V x) { return vmadd(x, vsplat(1.7f), vsplat(0.5f)); })},
  };
  std::printf("%d-float vectors, %d floats per row, clock %.2f GHz\n", kL, kN, ghz);
  for (const auto& r : rows) std::printf("%-22s %6.2f ns = %5.1f cycles per vector\n", r.name, r.ns, r.ns * ghz);
  return out[3] > 2.0f;
}
