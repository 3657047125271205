// Native timing of the engine on the toy presets' shapes, without Python or torch:
//   g++ -O3 -std=c++17 -fopenmp-simd -ffp-contract=off -fno-math-errno -fno-trapping-math \
//       -Icsrc bench/native/engine_bench.cpp -o /tmp/engine_bench
//   taskset -c 0 /tmp/engine_bench devnag 300 20    # preset, epochs per call, calls
// For quick decisions (callgrind-able); the figures of record come from bench/bench_train.py.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/gan_desc.h"
#if defined(BENCH_ISA_BASE)
#define GF_ISA isa_base
#else
#pragma GCC target("avx2,fma")
#define GF_ISA isa_avx2
#define GF_HAVE_FMA 1
#endif
#include "core/gan_step.h"
#if __has_include("core/fast_step.h")
#include "core/fast_step.h"
#define HAVE_FAST 1
#endif

using namespace ganfast::core;

static void mlp(MlpDesc& d, std::vector<int> w, int hid, int out, double param, double dropout) {
  d.num_layers = int(w.size()) - 1;
  for (size_t i = 0; i < w.size(); ++i) d.widths[i] = w[i];
  for (int l = 0; l < d.num_layers; ++l) {
    d.acts[l] = l + 1 < d.num_layers ? hid : out;
    d.act_params[l] = l + 1 < d.num_layers ? param : 0.0;
  }
  d.dropout = dropout;
  d.finalize();
}

int main(int argc, char** argv) {
  std::string preset = argc > 1 ? argv[1] : "devnag";
  int epochs = argc > 2 ? atoi(argv[2]) : 100;
  int calls = argc > 3 ? atoi(argv[3]) : 10;
  const char* path = argc > 4 ? argv[4] : "generic";
  static double centers[8], cum[8] = {1.0}, sd[2];
  GanDesc g;
  bool f32 = true;
  if (preset == "devnag" || preset == "devnag-elu" || preset == "devnag64") {
    mlp(g.g, {1, 5, 5, 1}, preset == "devnag-elu" ? kElu : kTanh, kIdentity, 1.0, 0.0);
    mlp(g.d, {4, 10, 10, 1}, kSigmoid, kSigmoid, 0.0, 0.0);
    g.d_input = kDInputMoments;
    g.noise = {kNoiseUniform, 1, 0.0, 1.0};
    centers[0] = 4.0; sd[0] = 1.25;
    g.data = {1, 1, centers, cum, sd};
    g.batch = 500; g.d_steps = 20; g.g_steps = 20;
    g.opt_d.kind = g.opt_g.kind = kOptSgd; g.opt_d.momentum = g.opt_g.momentum = 0.9;
    f32 = preset != "devnag64";
  } else if (preset == "vanilla") {
    mlp(g.g, {1, 16, 32, 16, 1}, kRelu, kIdentity, 0.0, 0.5);
    mlp(g.d, {1, 16, 16, 8, 1}, kTanh, kSigmoid, 0.0, 0.5);
    g.noise = {kNoiseUniform, 1, 0.0, 1.0};
    centers[0] = 3.0; sd[0] = 1.0;
    g.data = {1, 1, centers, cum, sd};
    g.batch = 2048; g.d_steps = 5; g.g_steps = 1;
    g.opt_d.kind = g.opt_g.kind = kOptAdam;
  } else {
    std::fprintf(stderr, "unknown preset\n");
    return 1;
  }
  std::mt19937 rng(0);
  std::uniform_real_distribution<double> U(-0.5, 0.5);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> gp(g.g.num_params), dp(g.d.num_params), go(2 * g.g.num_params), dop(2 * g.d.num_params);
    for (auto& v : gp) v = T(U(rng));
    for (auto& v : dp) v = T(U(rng));
    uint64_t offset = 0;
    int64_t ep = 0, diverged = -1;
    MemberState<T> s{gp.data(), dp.data(), go.data(), dop.data(), 0, &offset, &ep, &diverged, 1e-3, 1e-3};
    double met[kNumMetrics];
    double best = 1e30;
    auto one = [&](int n) {
#if defined(HAVE_FAST)
      if (std::strcmp(path, "fast") == 0) {
        if (!train_fast(g, &s, 1, n, met)) { std::fprintf(stderr, "no fast path\n"); std::exit(2); }
        return;
      }
#endif
      MemberTrainer<T> tr(g);
      tr.train(s, n, met);
    };
    one(2);
    for (int c = 0; c < calls; ++c) {
      auto t0 = std::chrono::steady_clock::now();
      one(epochs);
      auto t1 = std::chrono::steady_clock::now();
      best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    }
    std::printf("%s %s %s: %.4f ms/epoch (min of %d calls x %d epochs)  g0=%.6g\n", preset.c_str(),
                f32 ? "f32" : "f64", path, 1e3 * best / epochs, calls, epochs, double(gp[0]));
  };
  if (f32) run(float{}); else run(double{});
}
