// Native unit tests of the torch-free core (csrc/core), run by ctest (see CMakeLists.txt).
// Dependency-free: a CHECK macro that records failures and keeps going, a list of test
// functions, "N passed, N failed" as the last line, and a non-zero exit status on any failure.
//
//   cmake -S . -B build-native && cmake --build build-native -j2 && ctest --test-dir build-native --output-on-failure
//   ./build-native/ganfast_core_tests [substring]   # run only the tests whose name contains it
#include <cfloat>
#include <cinttypes>
#include <cstdarg>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../core/activation.h"
#include "../core/common.h"
#include "../core/fast_step.h"
#include "../core/fastmath.h"
#include "../core/mlp.h"
#include "../core/philox.h"
#include "../core/vmath.h"

using namespace ganfast::core;

// --- the runner ---------------------------------------------------------------------------

namespace {

int g_check_failures = 0;  // failed CHECKs in the current test
int g_reported = 0;        // failures printed in the current test (capped, to keep logs short)
constexpr int kMaxReportsPerTest = 12;

void report_failure(const char* file, int line, const std::string& what) {
  ++g_check_failures;
  if (g_reported++ < kMaxReportsPerTest) std::printf("    FAILED %s:%d: %s\n", file, line, what.c_str());
  else if (g_reported == kMaxReportsPerTest + 1) std::printf("    (further failures of this test not shown)\n");
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

}  // namespace

#define CHECK(cond)                                                  \
  do {                                                               \
    if (!(cond)) report_failure(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

// CHECK with a printf-style message that says which case failed.
#define CHECK_MSG(cond, ...)                                                                   \
  do {                                                                                         \
    if (!(cond)) report_failure(__FILE__, __LINE__, "CHECK(" #cond "): " + format(__VA_ARGS__)); \
  } while (0)

// --- helpers ------------------------------------------------------------------------------

namespace {

// A fixed, portable source of test data (std::mt19937_64 is specified bit-exactly).
struct TestRng {
  std::mt19937_64 gen;
  explicit TestRng(uint64_t seed) : gen(seed) {}
  uint32_t u32() { return static_cast<uint32_t>(gen() >> 32); }
  uint64_t u64() { return gen(); }
  double unit() { return static_cast<double>(gen() >> 11) * 0x1p-53; }  // [0, 1)
  double range(double lo, double hi) { return lo + (hi - lo) * unit(); }
  double normal() {  // Box-Muller with libm: test data only
    const double u1 = 1.0 - unit(), u2 = unit();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

const long double kTwoPiL = 6.283185307179586476925286766559005768L;

MlpDesc make_desc(std::vector<int> widths, int hidden_act, double hidden_param, int out_act,
                  double out_param, double dropout) {
  MlpDesc d;
  d.num_layers = static_cast<int>(widths.size()) - 1;
  for (size_t i = 0; i < widths.size(); ++i) d.widths[i] = widths[i];
  for (int l = 0; l < d.num_layers; ++l) {
    const bool last = l + 1 == d.num_layers;
    d.acts[l] = last ? out_act : hidden_act;
    d.act_params[l] = last ? out_param : hidden_param;
  }
  d.dropout = dropout;
  d.finalize();
  return d;
}

// Forward pass through the core; returns the network output (d_L x N, feature-major).
template <typename T>
std::vector<T> core_forward(const MlpDesc& d, const std::vector<T>& P, const std::vector<T>& x, int64_t N,
                            bool train, uint64_t seed, uint64_t offset, std::vector<T>* saved_out = nullptr) {
  std::vector<T> saved(d.sum_out_widths * N), scratch(d.scratch_values(N));
  std::vector<uint32_t> words(d.scratch_words(N));
  mlp_forward<T>(d, P.data(), x.data(), N, train, seed, offset, saved.data(), scratch.data(), words.data());
  const int64_t row = d.saved_row(d.num_layers - 1);
  std::vector<T> out(saved.begin() + row * N, saved.begin() + (row + d.widths[d.num_layers]) * N);
  if (saved_out) *saved_out = saved;
  return out;
}

// An independent, deliberately naive forward pass written from docs/design.md alone:
// sample-major loops, the activation by formula, dropout words addressed per sample and unit.
std::vector<double> naive_forward(const MlpDesc& d, const std::vector<double>& P, const std::vector<double>& x,
                                  int64_t N, bool train, uint64_t seed, uint64_t offset) {
  const int L = d.num_layers;
  std::vector<double> out(static_cast<size_t>(d.widths[L]) * N);
  const bool drop = train && d.dropout > 0.0 && L > 1;
  for (int64_t n = 0; n < N; ++n) {
    std::vector<double> h(d.widths[0]);
    for (int i = 0; i < d.widths[0]; ++i) h[i] = x[i * N + n];
    int64_t pos = 0, base = 0;
    for (int l = 0; l < L; ++l) {
      const int in = d.widths[l], o = d.widths[l + 1];
      std::vector<double> y(o);
      for (int j = 0; j < o; ++j) {
        double z = P[pos + in * o + j];
        for (int i = 0; i < in; ++i) z += P[pos + j * in + i] * h[i];
        const double a = d.act_params[l];
        double f;
        switch (d.acts[l]) {
          case kRelu: f = z > 0 ? z : 0; break;
          case kLeakyRelu: f = z > 0 ? z : a * z; break;
          case kElu: f = z > 0 ? z : a * std::expm1(z); break;
          case kTanh: f = std::tanh(z); break;
          case kSigmoid: f = 1.0 / (1.0 + std::exp(-z)); break;
          default: f = z;
        }
        if (drop && l + 1 < L) {
          const uint32_t w = philox_word(seed, offset + base + n * o + j);
          const bool keep = static_cast<double>(w >> 8) * 0x1p-24 >= d.dropout;
          f = keep ? f / (1.0 - d.dropout) : 0.0;
        }
        y[j] = f;
      }
      pos += static_cast<int64_t>(o) * (in + 1);
      if (l + 1 < L) base += N * o;
      h = y;
    }
    for (int j = 0; j < d.widths[L]; ++j) out[j * N + n] = h[j];
  }
  return out;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

// --- Philox -------------------------------------------------------------------------------

static void test_philox_known_answers() {
  // Random123's kat_vectors for philox4x32_10: counter (4 words), key (2 words) -> output.
  struct Kat {
    uint32_t ctr[4], key[2], out[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) {
    const Words4 w = philox4x32_10(k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3], k.key[0], k.key[1]);
    for (int lane = 0; lane < 4; ++lane)
      CHECK_MSG(w.v[lane] == k.out[lane], "ctr %08x.. lane %d: got %08x, want %08x", k.ctr[0], lane, w.v[lane],
                k.out[lane]);
  }
  // Stream addressing of docs/design.md: block b = counter (b_lo, b_hi, 0, 0), key (seed_lo, seed_hi).
  const Words4 zero = philox_block(0, 0);
  CHECK(zero.v[0] == 0x6627e8d5u && zero.v[3] == 0x9b00dbd8u);
  const uint64_t seed = 0x299f31d0a4093822ull, block = 0x0000000700000005ull;
  const Words4 a = philox_block(seed, block);
  const Words4 b = philox4x32_10(5, 7, 0, 0, 0xa4093822u, 0x299f31d0u);
  for (int lane = 0; lane < 4; ++lane) {
    CHECK(a.v[lane] == b.v[lane]);
    CHECK(philox_word(seed, block * 4 + lane) == b.v[lane]);
  }
}

static void test_philox_fill_words_offsets() {
  const uint64_t seeds[] = {0, 1, 0x123456789abcdefull, ~0ull};
  // Unaligned starts, a start that crosses the 2^32 block boundary (counter word 1 changes),
  // and starts near the top of the 64-bit index space.
  const uint64_t starts[] = {0, 1, 2, 3, 4, 5, 6, 7, 1001, (1ull << 34) - 5, (1ull << 34) - 1, (1ull << 63) - 3};
  for (uint64_t seed : seeds)
    for (uint64_t start : starts)
      for (int64_t n = 0; n <= 13; ++n) {
        std::vector<uint32_t> out(n + 2, 0xdeadbeefu);
        philox_fill_words(seed, start, n, out.data() + 1);
        CHECK(out[0] == 0xdeadbeefu && out[n + 1] == 0xdeadbeefu);  // no write outside [0, n)
        for (int64_t i = 0; i < n; ++i)
          CHECK_MSG(out[i + 1] == philox_word(seed, start + i), "seed %" PRIx64 " start %" PRIu64 " n %" PRId64 " i %" PRId64,
                    seed, start, n, i);
      }
  // One long fill equals the concatenation of short fills at every split point.
  std::vector<uint32_t> all(64);
  philox_fill_words(42, 3, 64, all.data());
  for (int split = 0; split <= 64; ++split) {
    std::vector<uint32_t> parts(64);
    philox_fill_words(42, 3, split, parts.data());
    philox_fill_words(42, 3 + split, 64 - split, parts.data() + split);
    CHECK_MSG(parts == all, "split %d", split);
  }
}

// --- fastmath -----------------------------------------------------------------------------

static void test_log_unit() {
  std::vector<double> xs;
  xs.reserve(1000000);
  // Endpoints of the Box-Muller domain and the values just inside them.
  for (double x : {0x1p-32, 0x1p-32 + 0x1p-84, 2 * 0x1p-32, 0.5, 0.25, 1.0, 1.0 - 0x1p-53, 1.0 - 0x1p-32,
                   std::nextafter(1.0, 0.0), 1.0 - 0x1p-20})
    xs.push_back(x);
  // Around the mantissa split at sqrt(2) (high word 0x6a09c): m * 2^k for m near sqrt(2)
  // and sqrt(2)/2, for every binade of [2^-32, 1].
  const double split = double_of(0x3ff6a09c00000000ull);  // first mantissa that is halved
  for (int k = -33; k <= -1; ++k) {
    for (double m : {split, std::sqrt(2.0)}) {
      double lo = m, hi = m;
      for (int s = 0; s < 40; ++s) {
        xs.push_back(std::ldexp(lo, k));
        xs.push_back(std::ldexp(hi, k));
        lo = std::nextafter(lo, 0.0);
        hi = std::nextafter(hi, 2.0);
      }
    }
    for (double m : {1.0, std::nextafter(2.0, 0.0)}) xs.push_back(std::ldexp(m, k + 1));
  }
  TestRng rng(7);
  // Exact Box-Muller inputs (a + 1) * 2^-32 from random words (mostly near 1) ...
  while (xs.size() < 500000) xs.push_back((static_cast<double>(rng.u32()) + 1.0) * 0x1p-32);
  // ... and log-uniform over [2^-32, 1] with full 53-bit mantissas.
  while (xs.size() < 1000000) xs.push_back(std::exp2(-32.0 * rng.unit()));
  double worst = 0, worst_x = 0;
  int64_t bad = 0;
  for (double x : xs) {
    if (!(x >= 0x1p-32 && x <= 1.0)) continue;
    const double got = log_unit(x);
    const long double want = std::log(static_cast<long double>(x));
    if (want == 0.0L) {
      CHECK_MSG(got == 0.0, "log_unit(1) = %a", got);
      continue;
    }
    const double rel = static_cast<double>(std::fabs((static_cast<long double>(got) - want) / want));
    if (rel > worst) worst = rel, worst_x = x;
    if (rel > 4.5e-16) ++bad;
  }
  std::printf("    log_unit: %zu values, max relative error %.3g (at x = %a)\n", xs.size(), worst, worst_x);
  CHECK_MSG(bad == 0, "%" PRId64 " values with relative error > 4.5e-16, worst %.3g at x = %a", bad, worst, worst_x);
  CHECK(log_unit(0.5) == -0.69314718055994530942);
  CHECK(log_unit(0x1p-32) == -32 * 0.69314718055994530942);
}

static void test_sincos_2pi() {
  std::vector<double> us;
  us.reserve(1000000);
  // Multiples of 1/8 (exact quarter turns and the octant midpoints where q switches), the
  // neighbours of each, and the values just below 1.
  for (int e = 0; e < 8; ++e) {
    double lo = e / 8.0, hi = e / 8.0;
    for (int s = 0; s < 64; ++s) {
      us.push_back(lo);
      us.push_back(hi);
      lo = std::nextafter(lo, -1.0);
      hi = std::nextafter(hi, 2.0);
    }
  }
  for (double u : {std::nextafter(1.0, 0.0), 1.0 - 0x1p-32, 1.0 - 0x1p-30, 0x1p-32, 0x1p-53, 0x1p-1074}) us.push_back(u);
  TestRng rng(11);
  // Exact Box-Muller inputs b * 2^-32 and full-precision values.
  while (us.size() < 500000) us.push_back(static_cast<double>(rng.u32()) * 0x1p-32);
  while (us.size() < 1000000) us.push_back(rng.unit());
  double worst = 0, worst_u = 0;
  int64_t bad = 0;
  for (double u : us) {
    if (!(u >= 0.0 && u < 1.0)) continue;
    double s, c;
    sincos_2pi(u, &s, &c);
    const long double a = kTwoPiL * static_cast<long double>(u);
    const double es = static_cast<double>(std::fabs(static_cast<long double>(s) - std::sin(a)));
    const double ec = static_cast<double>(std::fabs(static_cast<long double>(c) - std::cos(a)));
    const double e = es > ec ? es : ec;
    if (e > worst) worst = e, worst_u = u;
    if (e > 1e-15) ++bad;
  }
  std::printf("    sincos_2pi: %zu values, max absolute error %.3g (at u = %a)\n", us.size(), worst, worst_u);
  CHECK_MSG(bad == 0, "%" PRId64 " values with absolute error > 1e-15, worst %.3g at u = %a", bad, worst, worst_u);
  // Exact values at the quarter turns (the reduction is exact there).
  const double q[4][2] = {{0, 1}, {1, 0}, {0, -1}, {-1, 0}};
  for (int k = 0; k < 4; ++k) {
    double s, c;
    sincos_2pi(0.25 * k, &s, &c);
    CHECK_MSG(s == q[k][0] && c == q[k][1], "u = %g: sin %a cos %a", 0.25 * k, s, c);
  }
}

static void test_box_muller() {
  // The transform of docs/design.md, with libm in long double as the oracle.
  TestRng rng(5);
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    uint32_t a = rng.u32(), b = rng.u32();
    if (i == 0) a = 0xffffffffu, b = 0;  // u1 = 1: r = 0
    if (i == 1) a = 0, b = 0x40000000u;  // smallest u1 (largest r), u2 = 1/4
    double zc, zs;
    box_muller(a, b, &zc, &zs);
    const long double u1 = (static_cast<long double>(a) + 1) * 0x1p-32L, u2 = static_cast<long double>(b) * 0x1p-32L;
    const long double r = std::sqrt(-2 * std::log(u1));
    const double ec = static_cast<double>(std::fabs(zc - r * std::cos(kTwoPiL * u2)));
    const double es = static_cast<double>(std::fabs(zs - r * std::sin(kTwoPiL * u2)));
    worst = std::fmax(worst, std::fmax(ec, es));
    CHECK_MSG(ec <= 8e-15 && es <= 8e-15, "a %08x b %08x: errors %.3g %.3g", a, b, ec, es);
  }
  std::printf("    box_muller: max absolute error %.3g\n", worst);
  double zc, zs;
  box_muller(0xffffffffu, 12345, &zc, &zs);
  CHECK(zc == 0.0 && zs == 0.0);
}

// --- word -> number -----------------------------------------------------------------------

static void test_uniform() {
  TestRng rng(3);
  std::vector<uint32_t> words = {0u, 0xffu, 0x100u, 0x1ffu, 0x7fffffffu, 0x80000000u, 0xfffffeffu, 0xffffff00u,
                                 0xffffffffu};
  while (words.size() < 100000) words.push_back(rng.u32());
  // [0, 1): exactly (w >> 8) * 2^-24 in float, w * 2^-32 in double.
  const Uniform<float> uf(0.0, 1.0);
  const Uniform<double> ud(0.0, 1.0);
  for (uint32_t w : words) {
    const float f = uf(w);
    CHECK_MSG(static_cast<double>(f) == std::ldexp(static_cast<double>(w >> 8), -24), "w %08x", w);
    CHECK(f >= 0.0f && f < 1.0f);
    const double x = ud(w);
    CHECK_MSG(x == std::ldexp(static_cast<double>(w), -32), "w %08x", w);
    CHECK(x >= 0.0 && x < 1.0);
  }
  CHECK(uf(0xffffffffu) == 1.0f - 0x1p-24f && ud(0xffffffffu) == 1.0 - 0x1p-32);
  // Ranges whose scale is a power of two and whose lo keeps lo + u * scale within 24 bits:
  // every value exact and inside [lo, hi).
  const double ranges[][2] = {{-1, 1}, {-8, 8}, {-2, 2}, {-0.5, 0}, {0, 0x1p-10}, {-3, 1}};
  for (const auto& r : ranges) {
    const Uniform<float> u(r[0], r[1]);
    const Uniform<double> v(r[0], r[1]);
    for (uint32_t w : words) {
      const float f = u(w);
      const double exact = r[0] + (r[1] - r[0]) * std::ldexp(static_cast<double>(w >> 8), -24);
      CHECK_MSG(static_cast<double>(f) == exact, "[%g, %g) w %08x: %a vs %a", r[0], r[1], w, f, exact);
      CHECK_MSG(f >= r[0] && f < r[1], "[%g, %g) w %08x: %a", r[0], r[1], w, f);
      const double x = v(w);
      CHECK_MSG(x == r[0] + (r[1] - r[0]) * std::ldexp(static_cast<double>(w), -32), "[%g, %g) w %08x", r[0], r[1], w);
      CHECK(x >= r[0] && x < r[1]);
    }
  }
  // Any range: the float value is the two float operations of the design (no FMA, no double
  // intermediate), and lies in [lo, hi] -- hi included: the final float addition can round up
  // to hi. In [2, 4), u = 1 - 2^-24 gives 2 + (2 - 2^-23), which rounds to 4 (ulp 2^-22 there);
  // in [2, 5), 2 + (3 - 2^-22) = 5 - 2^-22 is a tie that rounds to even, 5. The PyTorch
  // reference does the same two float operations (bitwise agreement), as does torch.rand-based
  // scaling, so this is the contract, not a kernel bug; docs/design.md should say [lo, hi].
  const double any[][2] = {{2, 4}, {2, 5}, {-1.7, 3.3}, {0.1, 0.2}, {-100, 1e-3}, {1e6, 1e6 + 1}};
  for (const auto& r : any) {
    const Uniform<float> u(r[0], r[1]);
    const float scale = static_cast<float>(r[1] - r[0]), low = static_cast<float>(r[0]);
    for (uint32_t w : words) {
      volatile float prod = static_cast<float>(w >> 8) * 0x1p-24f * scale;  // volatile: no contraction
      const float want = prod + low;
      const float f = u(w);
      CHECK_MSG(f == want, "[%g, %g) w %08x: %a vs %a", r[0], r[1], w, f, want);
      CHECK_MSG(f >= low && f <= static_cast<float>(r[1]), "[%g, %g) w %08x: %a", r[0], r[1], w, f);
    }
  }
  CHECK(Uniform<float>(2, 4)(0xffffffffu) == 4.0f);  // documents the rounding cases above
  CHECK(Uniform<float>(2, 5)(0xffffffffu) == 5.0f);
}

static void test_dropout_threshold() {
  const double ps[] = {0.0, 0.1, 0.3, 0.5, 0.999, 0x1p-24, 1.0 - 0x1p-24, 0.25 + 0x1p-30};
  for (double p : ps) {
    const uint32_t thr = dropout_threshold(p);
    // The smallest kept 24-bit value is ceil(p * 2^24).
    CHECK_MSG(static_cast<double>(thr) == std::ceil(p * 16777216.0), "p %g: thr %u", p, thr);
    // Every 24-bit value, with the low 8 bits both 0x00 and 0xff (they must not matter).
    int64_t mismatches = 0, kept = 0;
    for (uint32_t m = 0; m < (1u << 24); ++m) {
      const bool want = static_cast<double>(m) * 0x1p-24 >= p;
      const bool k0 = dropout_keep(m << 8, thr), k1 = dropout_keep((m << 8) | 0xffu, thr);
      mismatches += (k0 != want) + (k1 != want);
      kept += k0;
    }
    CHECK_MSG(mismatches == 0, "p %g: %" PRId64 " mismatches", p, mismatches);
    CHECK_MSG(kept == (int64_t{1} << 24) - thr, "p %g: kept %" PRId64, p, kept);
  }
  CHECK(dropout_threshold(0.0) == 0u && dropout_keep(0u, 0u));
  CHECK(dropout_threshold(0.5) == (1u << 23));
  CHECK(!dropout_keep(0x7fffffffu, dropout_threshold(0.5)) && dropout_keep(0x80000000u, dropout_threshold(0.5)));
}

// --- activations --------------------------------------------------------------------------

static void test_activation_grad() {
  struct Case {
    int act;
    double param;
    const char* name;
  };
  const Case cases[] = {{kIdentity, 0, "identity"}, {kRelu, 0, "relu"},       {kLeakyRelu, 0.01, "leaky_relu(0.01)"},
                        {kLeakyRelu, 0.2, "leaky_relu(0.2)"}, {kElu, 1.0, "elu(1)"}, {kElu, 0.5, "elu(0.5)"},
                        {kTanh, 0, "tanh"},           {kSigmoid, 0, "sigmoid"}};
  const double h = 1e-5;
  for (const Case& c : cases) {
    double worst = 0;
    for (int i = 0; i <= 2000; ++i) {
      const double z = -8.0 + 16.0 * i / 2000.0 + 1e-4;  // never within 1e-4 of the kink at 0
      if (std::fabs(z) < 1e-3) continue;
      auto f = [&](double t) { return activate<double>(c.act, t, c.param); };
      // Fourth-order central difference: truncation ~h^4, rounding ~1e-16 / h.
      const double fd = (-f(z + 2 * h) + 8 * f(z + h) - 8 * f(z - h) + f(z - 2 * h)) / (12 * h);
      const double g = activation_grad<double>(c.act, f(z), c.param);
      const double err = std::fabs(g - fd) / std::fmax(1.0, std::fabs(fd));
      worst = std::fmax(worst, err);
      CHECK_MSG(err <= 1e-9, "%s at z = %g: grad %.17g, finite difference %.17g", c.name, z, g, fd);
      // The float instantiation agrees with the double one.
      const float gf = activation_grad<float>(c.act, activate<float>(c.act, static_cast<float>(z), static_cast<float>(c.param)),
                                              static_cast<float>(c.param));
      CHECK_MSG(std::fabs(gf - g) <= 1e-5 * std::fmax(1.0, std::fabs(g)), "%s float at z = %g: %g vs %g", c.name, z, gf, g);
    }
    (void)worst;
  }
  // Saturated sigmoid/tanh: no overflow, no NaN.
  for (double z : {-800.0, -50.0, 50.0, 800.0}) {
    const double s = activate<double>(kSigmoid, z, 0);
    CHECK(std::isfinite(s) && s >= 0.0 && s <= 1.0);
    CHECK(std::isfinite(activation_grad<double>(kSigmoid, s, 0)));
    const float sf = activate<float>(kSigmoid, static_cast<float>(z), 0.0f);
    CHECK(std::isfinite(sf) && sf >= 0.0f && sf <= 1.0f);
  }
  // Row versions agree with the scalar ones.
  TestRng rng(9);
  for (const Case& c : cases) {
    std::vector<double> z(37), y(37), g(37, 1.0);
    for (auto& v : z) v = rng.range(-5, 5);
    y = z;
    activate_row<double>(c.act, c.param, y.data(), 37);
    scale_by_activation_grad<double>(c.act, c.param, y.data(), g.data(), 37);
    for (int i = 0; i < 37; ++i) {
      CHECK_MSG(y[i] == activate<double>(c.act, z[i], c.param), "%s row %d", c.name, i);
      CHECK_MSG(g[i] == activation_grad<double>(c.act, y[i], c.param), "%s row grad %d", c.name, i);
    }
  }
}

// --- MLP ----------------------------------------------------------------------------------

namespace {

struct NetCase {
  const char* name;
  std::vector<int> widths;
  int hidden_act;
  double hidden_param;
  int out_act;
  double out_param;
  double dropout;
};

const std::vector<NetCase>& net_cases() {
  static const std::vector<NetCase> cases = {
      {"devnag G 1-5-5-1 tanh/identity", {1, 5, 5, 1}, kTanh, 0, kIdentity, 0, 0.0},
      {"devnag D 4-10-10-1 sigmoid/sigmoid", {4, 10, 10, 1}, kSigmoid, 0, kSigmoid, 0, 0.0},
      {"vanilla G 1-16-32-16-1 relu/identity p=0.5", {1, 16, 32, 16, 1}, kRelu, 0, kIdentity, 0, 0.5},
      {"vanilla D 1-16-16-8-1 tanh/sigmoid p=0.5", {1, 16, 16, 8, 1}, kTanh, 0, kSigmoid, 0, 0.5},
      {"3-7-2 leaky(0.2)/tanh p=0.3", {3, 7, 2}, kLeakyRelu, 0.2, kTanh, 0, 0.3},
      {"2-6-5-3 elu(0.7)/leaky(0.1)", {2, 6, 5, 3}, kElu, 0.7, kLeakyRelu, 0.1, 0.0},
      {"5-4 single layer sigmoid p=0.5 (no hidden: no dropout)", {5, 4}, kIdentity, 0, kSigmoid, 0, 0.5},
      {"3-9-1 identity/elu(2) p=0.1", {3, 9, 1}, kIdentity, 0, kElu, 2.0, 0.1},
  };
  return cases;
}

}  // namespace

static void test_mlp_desc() {
  for (const NetCase& c : net_cases()) {
    const MlpDesc d = make_desc(c.widths, c.hidden_act, c.hidden_param, c.out_act, c.out_param, c.dropout);
    const int L = static_cast<int>(c.widths.size()) - 1;
    int64_t np = 0, off = 0, sum_out = 0, sum_hidden = 0;
    int mw = 0;
    for (int l = 0; l < L; ++l) {
      CHECK_MSG(d.weight_offset[l] == off, "%s layer %d", c.name, l);
      CHECK_MSG(d.bias_offset(l) == off + static_cast<int64_t>(c.widths[l + 1]) * c.widths[l], "%s layer %d", c.name, l);
      CHECK_MSG(d.saved_row(l) == sum_out, "%s layer %d", c.name, l);
      np += static_cast<int64_t>(c.widths[l + 1]) * (c.widths[l] + 1);
      off = np;
      sum_out += c.widths[l + 1];
      if (l + 1 < L) sum_hidden += c.widths[l + 1];
    }
    for (int w : c.widths) mw = w > mw ? w : mw;
    CHECK_MSG(d.num_params == np, "%s: %" PRId64 " vs %" PRId64, c.name, d.num_params, np);
    CHECK(d.sum_out_widths == sum_out && d.sum_hidden == sum_hidden && d.max_width == mw);
    CHECK(d.has_dropout() == (c.dropout > 0.0 && L > 1));
    CHECK(d.dropout_words(500) == (d.has_dropout() ? 500 * sum_hidden : 0));
  }
  // Known sizes: devnag G and D, the vanilla pair.
  CHECK(make_desc({1, 5, 5, 1}, kTanh, 0, kIdentity, 0, 0).num_params == 46);
  CHECK(make_desc({4, 10, 10, 1}, kSigmoid, 0, kSigmoid, 0, 0).num_params == 171);
  CHECK(make_desc({1, 16, 32, 16, 1}, kRelu, 0, kIdentity, 0, 0.5).num_params == 1121);
  CHECK(make_desc({1, 16, 16, 8, 1}, kTanh, 0, kSigmoid, 0, 0.5).num_params == 449);
  // Re-finalizing is idempotent.
  MlpDesc d = make_desc({3, 4, 5}, kRelu, 0, kIdentity, 0, 0);
  d.finalize();
  CHECK(d.num_params == 4 * 4 + 5 * 5 && d.max_width == 5);
}

static void test_mlp_forward_matches_naive() {
  TestRng rng(21);
  for (const NetCase& c : net_cases()) {
    const MlpDesc d = make_desc(c.widths, c.hidden_act, c.hidden_param, c.out_act, c.out_param, c.dropout);
    for (int64_t N : {1, 3, 17, 64}) {
      std::vector<double> P(d.num_params), x(c.widths[0] * N);
      for (auto& v : P) v = 0.7 * rng.normal();
      for (auto& v : x) v = rng.normal();
      for (bool train : {false, true}) {
        const uint64_t seed = 0x5eed0000ull + N, offset = train ? 13 : 0;
        const std::vector<double> got = core_forward(d, P, x, N, train, seed, offset);
        const std::vector<double> want = naive_forward(d, P, x, N, train, seed, offset);
        double worst = 0;
        for (size_t i = 0; i < got.size(); ++i)
          worst = std::fmax(worst, std::fabs(got[i] - want[i]) / std::fmax(1.0, std::fabs(want[i])));
        CHECK_MSG(worst <= 1e-13, "%s N=%" PRId64 " train=%d: max deviation %.3g", c.name, N, train, worst);
        // float instantiation: same masks, float rounding only.
        std::vector<float> Pf(P.begin(), P.end()), xf(x.begin(), x.end());
        const std::vector<float> gotf = core_forward(d, Pf, xf, N, train, seed, offset);
        double worstf = 0;
        for (size_t i = 0; i < gotf.size(); ++i)
          worstf = std::fmax(worstf, std::fabs(gotf[i] - want[i]) / std::fmax(1.0, std::fabs(want[i])));
        CHECK_MSG(worstf <= 2e-5, "%s float N=%" PRId64 " train=%d: max deviation %.3g", c.name, N, train, worstf);
      }
    }
  }
  // Dropout actually drops (p = 0.5: about half of the hidden units), and eval mode does not.
  const MlpDesc d = make_desc({1, 64, 1}, kIdentity, 0, kIdentity, 0, 0.5);
  const int64_t N = 256;
  std::vector<double> P(d.num_params, 0.0), x(N, 1.0), saved;
  for (int j = 0; j < 64; ++j) P[64 + j] = 1.0;  // b_0 = 1: every hidden pre-activation is 1
  for (int j = 0; j < 64; ++j) P[128 + j] = 1.0;  // W_1 = 1: output = sum of the kept units * 2
  const std::vector<double> out = core_forward(d, P, x, N, true, 77, 0);
  double mean = 0;
  for (double v : out) mean += v / N;
  CHECK_MSG(std::fabs(mean - 64.0) < 4.0, "mean output %g, expected about 64", mean);
  const std::vector<double> eval = core_forward(d, P, x, N, false, 77, 0);
  for (double v : eval) CHECK(v == 64.0);
}

namespace {

// Loss = sum_{k,n} c[k][n] * out[k][n] with out from the core forward pass (double).
double mlp_loss(const MlpDesc& d, const std::vector<double>& P, const std::vector<double>& x, int64_t N, bool train,
                uint64_t seed, uint64_t offset, const std::vector<double>& c) {
  return dot(core_forward(d, P, x, N, train, seed, offset), c);
}

}  // namespace

static void test_mlp_backward_finite_differences() {
  TestRng rng(33);
  const double h = 1e-5, rtol = 1e-7;
  for (const NetCase& c : net_cases()) {
    const MlpDesc d = make_desc(c.widths, c.hidden_act, c.hidden_param, c.out_act, c.out_param, c.dropout);
    for (bool train : {false, true}) {
      const int64_t N = 7;
      const uint64_t seed = 1234567 + c.widths.size(), offset = 5;  // unaligned offset
      std::vector<double> P(d.num_params), x(c.widths[0] * N), co(c.widths.back() * N);
      for (auto& v : P) v = 0.6 * rng.normal();
      for (auto& v : x) v = rng.normal();
      for (auto& v : co) v = rng.normal();
      std::vector<double> saved;
      core_forward(d, P, x, N, train, seed, offset, &saved);
      std::vector<double> gP(d.num_params, 0.0), gx(x.size(), 0.0), scratch(d.scratch_values(N));
      std::vector<uint32_t> words(d.scratch_words(N));
      mlp_backward<double>(d, P.data(), x.data(), N, train, seed, offset, saved.data(), co.data(), gP.data(), gx.data(),
                           scratch.data(), words.data());
      // Fourth-order central differences of the scalar loss. Gradient entries can be tiny
      // (dead relu units, saturated sigmoids), so the error is relative to the largest entry.
      auto fd = [&](std::vector<double>& v, size_t i) {
        const double v0 = v[i];
        double l[4];
        const double steps[4] = {-2 * h, -h, h, 2 * h};
        for (int s = 0; s < 4; ++s) {
          v[i] = v0 + steps[s];
          l[s] = mlp_loss(d, P, x, N, train, seed, offset, co);
        }
        v[i] = v0;
        return (l[0] - 8 * l[1] + 8 * l[2] - l[3]) / (12 * h);
      };
      double scale = 0;
      for (double g : gP) scale = std::fmax(scale, std::fabs(g));
      for (double g : gx) scale = std::fmax(scale, std::fabs(g));
      double worst = 0;
      for (size_t i = 0; i < P.size(); ++i) {
        const double f = fd(P, i), err = std::fabs(f - gP[i]) / std::fmax(scale, 1e-3);
        worst = std::fmax(worst, err);
        CHECK_MSG(err <= rtol, "%s train=%d dP[%zu]: analytic %.12g, finite difference %.12g", c.name, train, i, gP[i], f);
      }
      for (size_t i = 0; i < x.size(); ++i) {
        const double f = fd(x, i), err = std::fabs(f - gx[i]) / std::fmax(scale, 1e-3);
        worst = std::fmax(worst, err);
        CHECK_MSG(err <= rtol, "%s train=%d dx[%zu]: analytic %.12g, finite difference %.12g", c.name, train, i, gx[i], f);
      }
      std::printf("    %-56s train=%d: max |fd - grad| / max|grad| = %.2g\n", c.name, train, worst);
      // g_x may be null: the parameter gradient is unchanged.
      std::vector<double> gP2(d.num_params, 0.0);
      mlp_backward<double>(d, P.data(), x.data(), N, train, seed, offset, saved.data(), co.data(), gP2.data(), nullptr,
                           scratch.data(), words.data());
      CHECK_MSG(gP2 == gP, "%s train=%d: g_x = nullptr changed gP", c.name, train);
    }
  }
}

static void test_mlp_backward_accumulates() {
  TestRng rng(44);
  for (const NetCase& c : net_cases()) {
    const MlpDesc d = make_desc(c.widths, c.hidden_act, c.hidden_param, c.out_act, c.out_param, c.dropout);
    const int64_t N = 19;
    std::vector<double> P(d.num_params), x(c.widths[0] * N), co(c.widths.back() * N), saved;
    for (auto& v : P) v = 0.5 * rng.normal();
    for (auto& v : x) v = rng.normal();
    for (auto& v : co) v = rng.normal();
    core_forward(d, P, x, N, true, 99, 3, &saved);
    std::vector<double> scratch(d.scratch_values(N));
    std::vector<uint32_t> words(d.scratch_words(N));
    std::vector<double> g1(d.num_params, 0.0), g2(d.num_params, 0.0), gx1(x.size(), -1.0), gx2(x.size(), 5.0);
    mlp_backward<double>(d, P.data(), x.data(), N, true, 99, 3, saved.data(), co.data(), g1.data(), gx1.data(),
                         scratch.data(), words.data());
    for (int rep = 0; rep < 2; ++rep)
      mlp_backward<double>(d, P.data(), x.data(), N, true, 99, 3, saved.data(), co.data(), g2.data(), gx2.data(),
                           scratch.data(), words.data());
    for (size_t i = 0; i < g1.size(); ++i) CHECK_MSG(g2[i] == 2 * g1[i], "%s: gP[%zu] %.17g vs 2 * %.17g", c.name, i, g2[i], g1[i]);
    // g_x is written, not accumulated (its prior contents do not matter).
    CHECK_MSG(gx1 == gx2, "%s: g_x depends on its prior contents", c.name);
    // Accumulating onto a non-zero buffer adds exactly the gradient.
    std::vector<double> g3(d.num_params);
    for (size_t i = 0; i < g3.size(); ++i) g3[i] = static_cast<double>(i % 7) - 3.0;
    const std::vector<double> g3_before = g3;
    mlp_backward<double>(d, P.data(), x.data(), N, true, 99, 3, saved.data(), co.data(), g3.data(), nullptr,
                         scratch.data(), words.data());
    for (size_t i = 0; i < g3.size(); ++i) CHECK(g3[i] == g3_before[i] + g1[i]);
  }
}


// --- vectors (vec.h, vmath.h): lane by lane the scalar functions, at every width ------------
//
// This file is compiled for the baseline (SSE2, 16-byte registers); the 32- and 64-byte vector
// types below take vec.h's split-into-native-halves paths, the ones the AVX2 and test-only
// 16-lane builds take for wider vectors. (The AVX2 and 16-lane builds themselves run in the
// Python tests, tests/test_fastpath.py.)

namespace {

// Test inputs: specials, denormals, and a spread of magnitudes.
std::vector<float> activation_inputs(size_t n_random) {
  std::vector<float> v = {0.0f, -0.0f, 1e-40f, -1e-40f, 1e-30f, 3e-4f, 4e-4f, -4e-4f, 5e-4f, 0.5f, -0.5f, 1.0f,
                          -1.0f, 7.9f, 7.90531111f, -7.90531111f, 8.0f, 20.0f, -20.0f, 87.0f, 88.5f, -87.4f,
                          -100.0f, 1e30f, -1e30f, FLT_MAX, -FLT_MAX, INFINITY, -INFINITY, NAN, -NAN};
  TestRng rng(7);
  for (size_t i = 0; i < n_random; ++i) {
    uint32_t u = rng.u32();
    if (i % 2) u = (u & 0x807fffffu) | ((100u + (u >> 24) % 60u) << 23);  // |x| in [2^-27, 2^33)
    float f;
    std::memcpy(&f, &u, 4);
    v.push_back(f);
  }
  return v;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

template <int Bytes>
void check_vmath_width() {
  using V = vec_of<float, Bytes>;
  constexpr int L = Bytes / 4;
  const std::vector<float> in = activation_inputs(20000);
  int bad[8] = {};
  for (size_t i0 = 0; i0 + L <= in.size(); i0 += L) {
    const V x = vload_as<V>(in.data() + i0);
    const V y = vload_as<V>(in.data() + (in.size() - L - i0));  // some other values as "outputs"
    const V t = vtanh_f(x), e = vexp_f(x), sg = vsigmoid_f(x);
    for (int a = 0; a < kNumActivations; ++a) {
      const V f = vactivate(a, x, 0.3f), g = vscale_by_act_grad(a, 0.3f, y, x);
      for (int j = 0; j < L; ++j) {
        if (!same_bits(f[j], activate<float>(a, x[j], 0.3f))) ++bad[a];
        const float gj = scale_by_act_grad<float>(a, 0.3f, y[j], x[j]);
        if (!same_bits(g[j], gj)) ++bad[6];
      }
    }
    for (int j = 0; j < L; ++j) {
      if (!same_bits(t[j], tanh_f(x[j])) || !same_bits(e[j], exp_f(x[j])) || !same_bits(sg[j], sigmoid(x[j])))
        ++bad[7];
    }
  }
  for (int a = 0; a < 8; ++a) CHECK_MSG(bad[a] == 0, "%d-byte vectors: %d lanes differ from the scalar code (case %d)",
                                        Bytes, bad[a], a);
}

}  // namespace

static void test_vmath_bitwise() {
  check_vmath_width<16>();
  check_vmath_width<32>();
  check_vmath_width<64>();
  // The scalar derivative of the fast path's batch-1 code is scale_by_activation_grad's.
  const float y[4] = {-0.5f, 0.0f, 0.25f, 2.0f}, g0[4] = {-1.0f, 3.0f, -0.0f, 0.5f};
  for (int a = 0; a < kNumActivations; ++a) {
    float g[4];
    std::memcpy(g, g0, sizeof g);
    scale_by_activation_grad<float>(a, 0.3f, y, g, 4);
    for (int j = 0; j < 4; ++j) CHECK_MSG(same_bits(g[j], scale_by_act_grad<float>(a, 0.3f, y[j], g0[j])), "act %d", a);
  }
}

static void test_vec_helpers() {
  using V = vec_of<double, 64>;  // 8 lanes, 4 native halves' worth of splitting
  double a[8];
  for (int i = 0; i < 8; ++i) a[i] = 1.0 + i;
  for (int valid = 0; valid <= 8; ++valid) {
    const V k = vkeep_first(vload_as<V>(a), valid);
    for (int i = 0; i < 8; ++i) CHECK(k[i] == (i < valid ? a[i] : 0.0));
  }
  CHECK(vsum(vload_as<V>(a)) == 36.0);
  const double big[8] = {1e16, 1.0, -1e16, 1.0, 0.0, 0.0, 0.0, 0.0};
  // pairwise: (1e16 + 0) + (-1e16 + 0) ... lanes i and i + 4 first, then halves again
  CHECK(vsum(vload_as<V>(big)) == ((1e16 + 0.0) + (-1e16 + 0.0)) + ((1.0 + 0.0) + (1.0 + 0.0)));
  const float m[4] = {-0.0f, 2.0f, NAN, -3.0f}, n[4] = {0.0f, NAN, 1.0f, -4.0f};
  using F = vec_of<float, 16>;
  const F lo = vmin(vload_as<F>(m), vload_as<F>(n)), hi = vmax(vload_as<F>(m), vload_as<F>(n));
  for (int i = 0; i < 4; ++i) {  // a < b ? a : b and a > b ? a : b, NaNs and zeros included
    CHECK(same_bits(lo[i], m[i] < n[i] ? m[i] : n[i]));
    CHECK(same_bits(hi[i], m[i] > n[i] ? m[i] : n[i]));
  }
}

static void test_philox_vector_paths() {
  // philox_fill_blocks (the vector loop and its partial last group) and the unit-major draw of
  // the fast path's dropout masks, word for word against philox_word.
  TestRng rng(5);
  for (int rep = 0; rep < 40; ++rep) {
    const uint64_t seed = rep < 3 ? rep : rng.u64();
    const uint64_t offset = rep % 4 == 0 ? (uint64_t{0xffffffff} << 2) - 8 * rep : rng.u64() >> (rep % 3 == 0 ? 4 : 24);
    for (int64_t blocks : {0, 1, 3, 4, 5, 8, 15, 16, 17, 33}) {
      std::vector<uint32_t> out(4 * blocks + 1, 0xdeadbeefu);
      philox_fill_blocks(seed, offset >> 2, blocks, out.data());
      for (int64_t i = 0; i < 4 * blocks; ++i) CHECK(out[i] == philox_word(seed, ((offset >> 2) << 2) + i));
      CHECK(out[4 * blocks] == 0xdeadbeefu);
    }
    for (int w : {4, 8, 16, 32}) {
      const int64_t n_rows = 2 * kPhiloxLanes, stride = n_rows + 3;
      std::vector<uint32_t> rows(w * stride, 0u);
      philox_fill_unit_major(seed, offset, w, n_rows, stride, rows.data());
      for (int64_t n = 0; n < n_rows; ++n)
        for (int j = 0; j < w; ++j)
          CHECK_MSG(rows[j * stride + n] == philox_word(seed, offset + n * w + j), "w=%d offset%%4=%d n=%lld j=%d", w,
                    static_cast<int>(offset & 3), static_cast<long long>(n), j);
    }
  }
}

// --- the fast path (fast_mlp.h, fast_step.h) against the generic one ------------------------

namespace {

double max_rel(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::fmax(m, std::fabs(a[i] - b[i]));
    s = std::fmax(s, std::fabs(b[i]));
  }
  return m / std::fmax(s, 1e-300);
}

}  // namespace

static void test_fast_net_matches_mlp() {
  // vanilla's G with dropout, batch 37 (padded to whole chunks): every saved value and the
  // input gradient bitwise; the parameter gradient to rounding (another order of the sums).
  using S = Shape<1, 16, 32, 16, 1>;
  using Net = FastNet<double, S, kRelu, kIdentity>;
  const MlpDesc d = make_desc({1, 16, 32, 16, 1}, kRelu, 0.0, kIdentity, 0.0, 0.5);
  const int64_t N = 37, Np = (N + Net::kChunk - 1) / Net::kChunk * Net::kChunk;
  const uint64_t seed = 12, offset = 1001;
  TestRng rng(3);
  std::vector<double> P(d.num_params), x(N), g(N);
  for (auto& v : P) v = 0.4 * rng.normal();
  for (auto& v : x) v = rng.normal();
  for (auto& v : g) v = rng.normal();
  std::vector<double> saved(d.sum_out_widths * N), scratch(d.scratch_values(N)), gP(d.num_params, 0.0), gx(N);
  std::vector<uint32_t> words(d.scratch_words(N)), masks(d.dropout_words(N));
  mlp_forward<double>(d, P.data(), x.data(), N, true, seed, offset, saved.data(), scratch.data(), words.data(),
                      masks.data());
  mlp_backward<double>(d, P.data(), x.data(), N, true, seed, offset, saved.data(), g.data(), gP.data(), gx.data(),
                       scratch.data(), words.data(), masks.data());
  // The fast path's layout: rows of Np, zero padding; unit-major masks drawn straight.
  std::vector<double> xp(Np, 0.0), gp(Np, 0.0), sp(S::kSavedRows * Np), acc(Net::kAccValues, 0.0), fP(d.num_params, 0.0),
      fx(Np);
  std::vector<uint32_t> mp(S::kSavedRows * Np, 0u);
  std::copy(x.begin(), x.end(), xp.begin());
  std::copy(g.begin(), g.end(), gp.begin());
  for (int l = 0; l + 1 < S::kLayers; ++l)
    philox_fill_unit_major(seed, offset + N * d.saved_row(l), d.widths[l + 1], Np, Np, mp.data() + d.saved_row(l) * Np);
  FastDropout<double> dr;
  dr.on = true, dr.thr = dropout_threshold(0.5), dr.scale = 2.0;
  Net::forward(d, P.data(), xp.data(), Np, sp.data(), mp.data(), dr);
  int differ = 0;
  for (int r = 0; r < S::kSavedRows; ++r)
    for (int64_t n = 0; n < N; ++n) differ += saved[r * N + n] != sp[r * Np + n];
  CHECK_MSG(differ == 0, "%d saved values differ from mlp_forward's", differ);
  std::vector<double> back(Net::kBackScratch);
  Net::backward(d, P.data(), xp.data(), sp.data(), Np, mp.data(), dr,
                typename Net::Back{gp.data(), acc.data(), fx.data(), back.data()});
  Net::reduce(acc.data(), fP.data());
  for (int64_t n = 0; n < N; ++n) CHECK_MSG(fx[n] == gx[n], "g_x[%lld]: %.17g vs %.17g", static_cast<long long>(n), fx[n], gx[n]);
  const double err = max_rel(fP, gP);
  std::printf("    G 1-16-32-16-1 dropout, batch 37: parameter gradient max rel diff %.2g\n", err);
  CHECK(err <= 1e-13);
  // Batch 1 (devnag's D on the moments): bitwise, gradients included.
  using S1 = Shape<4, 10, 10, 1>;
  using Net1 = FastNet1<double, S1, kSigmoid, kSigmoid>;
  const MlpDesc d1 = make_desc({4, 10, 10, 1}, kSigmoid, 0.0, kSigmoid, 0.0, 0.0);
  std::vector<double> P1(d1.num_params), f = {4.1, 1.2, -0.3, 0.4}, go = {-1.7};
  for (auto& v : P1) v = 0.5 * rng.normal();
  std::vector<double> s1(d1.sum_out_widths), s2(d1.sum_out_widths), sc(d1.scratch_values(1)), g1(d1.num_params, 0.25),
      g2 = g1, x1(4), x2(4);
  std::vector<uint32_t> w1(1);
  mlp_forward<double>(d1, P1.data(), f.data(), 1, true, 0, 0, s1.data(), sc.data(), w1.data());
  mlp_backward<double>(d1, P1.data(), f.data(), 1, true, 0, 0, s1.data(), go.data(), g1.data(), x1.data(), sc.data(),
                       w1.data());
  Net1::forward(d1, P1.data(), f.data(), s2.data());
  Net1::backward(d1, P1.data(), f.data(), s2.data(), go.data(), g2.data(), x2.data());
  CHECK(s1 == s2);
  CHECK(g1 == g2);
  CHECK(x1 == x2);
}

static void test_fast_moments() {
  TestRng rng(8);
  for (int64_t N : {1, 2, 7, 64, 77, 500}) {
    const int64_t Np = (N + 31) / 32 * 32;
    std::vector<double> x(Np, 0.0), gx(N), fgx(Np, 9.0);
    for (int64_t n = 0; n < N; ++n) x[n] = 4.0 + 1.3 * rng.normal();
    for (int64_t n = N; n < Np; ++n) x[n] = 1e3 * (n % 3);  // padding: garbage that must not count
    double m[4], fm[4];
    const double gm[4] = {0.3, -0.2, 0.7, 0.11};
    moments_forward(x.data(), N, m);
    moments_forward_fast(x.data(), N, fm);
    if (N > 1) {
      for (int k = 0; k < 4; ++k) CHECK_MSG(std::fabs(m[k] - fm[k]) <= 1e-12 * std::fmax(1.0, std::fabs(m[k])), "N=%lld m[%d]", static_cast<long long>(N), k);
      moments_backward(x.data(), N, m, gm, gx.data());
      moments_backward_fast(x.data(), N, m, gm, fgx.data());
      double e = 0, s = 0;
      for (int64_t n = 0; n < N; ++n) e = std::fmax(e, std::fabs(gx[n] - fgx[n])), s = std::fmax(s, std::fabs(gx[n]));
      CHECK_MSG(e <= 1e-12 * s, "N=%lld: g_x differs by %.3g of %.3g", static_cast<long long>(N), e, s);
      const int64_t vecs = (N + Vec<double>::kLanes - 1) / Vec<double>::kLanes * Vec<double>::kLanes;
      for (int64_t n = N; n < vecs; ++n) CHECK(fgx[n] == 0.0);  // the padding lanes carry no gradient
    }
  }
}

namespace {

GanDesc toy_desc(bool vanilla, std::vector<double>* store) {
  GanDesc g;
  store->assign({4.0, 1.0, 1.25});
  if (!vanilla) {
    g.g = make_desc({1, 5, 5, 1}, kTanh, 0.0, kIdentity, 0.0, 0.0);
    g.d = make_desc({4, 10, 10, 1}, kSigmoid, 0.0, kSigmoid, 0.0, 0.0);
    g.d_input = kDInputMoments;
    g.batch = 45, g.d_steps = 3, g.g_steps = 2;
    g.opt_d.momentum = g.opt_g.momentum = 0.9;
  } else {
    g.g = make_desc({1, 16, 32, 16, 1}, kRelu, 0.0, kIdentity, 0.0, 0.5);
    g.d = make_desc({1, 16, 16, 8, 1}, kTanh, 0.0, kSigmoid, 0.0, 0.5);
    g.batch = 29, g.d_steps = 2, g.g_steps = 1;
    g.opt_d.kind = g.opt_g.kind = kOptAdam;
  }
  g.data = DataDesc{1, 1, store->data(), store->data() + 1, store->data() + 2};
  return g;
}

}  // namespace

static void test_fast_trainer_matches_member_trainer() {
  for (bool vanilla : {false, true}) {
    std::vector<double> store;
    const GanDesc g = toy_desc(vanilla, &store);
    TestRng rng(vanilla ? 21 : 20);
    std::vector<double> gp(g.g.num_params), dp(g.d.num_params);
    for (auto& v : gp) v = 0.4 * rng.normal();
    for (auto& v : dp) v = 0.4 * rng.normal();
    std::vector<double> gp2 = gp, dp2 = dp, go(2 * gp.size()), go2 = go, dop(2 * dp.size()), dop2 = dop;
    uint64_t off1 = 5, off2 = 5;
    int64_t e1 = 0, e2 = 0, dv1 = -1, dv2 = -1;
    MemberState<double> a{gp.data(), dp.data(), go.data(), dop.data(), 77, &off1, &e1, &dv1, 1e-2, 2e-2};
    MemberState<double> b{gp2.data(), dp2.data(), go2.data(), dop2.data(), 77, &off2, &e2, &dv2, 1e-2, 2e-2};
    double m1[kNumMetrics], m2[kNumMetrics];
    MemberTrainer<double>(g).train(a, 10, m1);
    CHECK(train_fast(g, &b, 1, 10, m2));
    CHECK(off1 == off2 && e1 == e2 && dv1 == -1 && dv2 == -1);
    const double eg = max_rel(gp2, gp), ed = max_rel(dp2, dp), eo = max_rel(go2, go), edo = max_rel(dop2, dop);
    std::printf("    %s float64 10 epochs: max rel diff G %.2g D %.2g G opt %.2g D opt %.2g\n",
                vanilla ? "vanilla" : "devnag", eg, ed, eo, edo);
    CHECK(eg <= 1e-12 && ed <= 1e-12 && eo <= 1e-12 && edo <= 1e-12);
    for (int k = 0; k < kNumMetrics; ++k) CHECK(std::fabs(m1[k] - m2[k]) <= 1e-12 * std::fmax(1.0, std::fabs(m1[k])));
  }
  // A shape outside the table: train_fast declines and leaves the state alone.
  std::vector<double> store;
  GanDesc g = toy_desc(false, &store);
  g.g = make_desc({1, 6, 5, 1}, kTanh, 0.0, kIdentity, 0.0, 0.0);
  std::vector<double> gp(g.g.num_params, 0.1), dp(g.d.num_params, 0.1), go(2 * gp.size()), dop(2 * dp.size());
  uint64_t off = 0;
  int64_t e = 0, dv = -1;
  MemberState<double> s{gp.data(), dp.data(), go.data(), dop.data(), 1, &off, &e, &dv, 1e-2, 1e-2};
  double m[kNumMetrics];
  CHECK(!train_fast(g, &s, 1, 1, m));
  CHECK(off == 0 && e == 0);
}

// --- main ---------------------------------------------------------------------------------

int main(int argc, char** argv) {
  struct Test {
    const char* name;
    void (*fn)();
  };
  const Test tests[] = {
      {"philox_known_answers", test_philox_known_answers},
      {"philox_fill_words_offsets", test_philox_fill_words_offsets},
      {"log_unit", test_log_unit},
      {"sincos_2pi", test_sincos_2pi},
      {"box_muller", test_box_muller},
      {"uniform", test_uniform},
      {"dropout_threshold", test_dropout_threshold},
      {"activation_grad", test_activation_grad},
      {"mlp_desc", test_mlp_desc},
      {"mlp_forward_matches_naive", test_mlp_forward_matches_naive},
      {"mlp_backward_finite_differences", test_mlp_backward_finite_differences},
      {"mlp_backward_accumulates", test_mlp_backward_accumulates},
      {"vmath_bitwise", test_vmath_bitwise},
      {"vec_helpers", test_vec_helpers},
      {"philox_vector_paths", test_philox_vector_paths},
      {"fast_net_matches_mlp", test_fast_net_matches_mlp},
      {"fast_moments", test_fast_moments},
      {"fast_trainer_matches_member_trainer", test_fast_trainer_matches_member_trainer},
  };
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0, failed = 0;
  for (const Test& t : tests) {
    if (filter && !std::strstr(t.name, filter)) continue;
    g_check_failures = 0;
    g_reported = 0;
    std::printf("[ RUN  ] %s\n", t.name);
    std::fflush(stdout);
    t.fn();
    if (g_check_failures == 0) {
      ++passed;
      std::printf("[  OK  ] %s\n", t.name);
    } else {
      ++failed;
      std::printf("[ FAIL ] %s (%d failed checks)\n", t.name, g_check_failures);
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}
