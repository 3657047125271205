// Branch-free double-precision ln and sin/cos(2*pi*u) for Box-Muller. libm's versions are
// accurate but scalar (GCC turns sin+cos into one `sincos` call it cannot vectorise); these are
// straight-line arithmetic, so loops over them vectorise, and CPU and CUDA share one
// definition. Coefficients are fdlibm's (e_log.c, k_sin.c, k_cos.c): about 1 ulp.
#pragma once

#include "common.h"

GF_BEGIN_NAMESPACE

// c + a * b: one fused multiply-add where the build has one (the AVX2+FMA CPU kernels define
// GF_HAVE_FMA: twice the multiply-add rate and one rounding instead of two), else a * b + c
// (the baseline CPU build, and device code, which is compiled with --fmad=false). The Horner
// steps of the float approximations below and the CPU matrix products (mlp.h) use it; the
// two CPU builds therefore agree to rounding, not bitwise (docs/design.md).
template <typename T>
GF_HD T madd(T a, T b, T c) {
#if defined(GF_HAVE_FMA) && !defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == sizeof(float)) {
    return __builtin_fmaf(a, b, c);
  } else {
    return __builtin_fma(a, b, c);
  }
#else
  return a * b + c;
#endif
}

// ln(x) for a normal double x > 0 (the Box-Muller u1 lies in [2^-32, 1]: no zeros, no
// infinities, no denormals, so those cases are not handled).
GF_HD double log_unit(double x) {
  constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  constexpr double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                   Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                   Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                   Lg7 = 1.479819860511658591e-01;
  const uint64_t bits = bits_of(x);
  // Split x = 2^k * m with m in [sqrt(2)/2, sqrt(2)): mantissas above sqrt(2) (high word
  // >= 0x6a09c) are halved and k bumped, so log1p's argument stays small (fdlibm's trick).
  const uint32_t hx = static_cast<uint32_t>(bits >> 32);
  const uint32_t hm = hx & 0x000fffffu;
  const uint32_t i = (hm + 0x95f64u) & 0x100000u;
  const int k = static_cast<int>(hx >> 20) - 1023 + static_cast<int>(i >> 20);
  const double m =
      double_of((static_cast<uint64_t>(hm | (i ^ 0x3ff00000u)) << 32) | (bits & 0xffffffffu));
  const double f = m - 1.0;
  const double s = f / (2.0 + f);
  const double z = s * s, w = z * z;
  const double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
  const double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
  const double R = t2 + t1;
  const double hfsq = 0.5 * f * f;
  const double dk = static_cast<double>(k);
  return dk * ln2_hi - ((hfsq - (s * (hfsq + R) + dk * ln2_lo)) - f);
}

// sin and cos of 2*pi*u for u in [0, 1). The reduction is exact: u has at most 53 significant
// bits and q/4 is a dyadic rational, so t = u - q/4 in [-1/8, 1/8] carries no rounding error.
GF_HD void sincos_2pi(double u, double* sin_out, double* cos_out) {
  constexpr double two_pi = 6.28318530717958647692;
  constexpr double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03,
                   S3 = -1.98412698298579493134e-04, S4 = 2.75573137070700676789e-06,
                   S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
  constexpr double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03,
                   C3 = 2.48015872894767294178e-05, C4 = -2.75573143513906633035e-07,
                   C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
  const int q = static_cast<int>(u * 4.0 + 0.5);  // nearest quarter turn, 0..4
  const double x = (u - 0.25 * q) * two_pi;       // |x| <= pi/4
  const double z = x * x;
  const double r_s = S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)));
  const double s = x + z * x * (S1 + z * r_s);
  const double r_c = z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6)))));
  const double hz = 0.5 * z, one_minus = 1.0 - hz;
  const double c = one_minus + (((1.0 - one_minus) - hz) + z * r_c);
  // Rotate by q quarter turns: (s, c) -> (c, -s) -> (-s, -c) -> (-c, s).
  const int qm = q & 3;
  const double sin_v = (qm & 1) ? c : s;
  const double cos_v = (qm & 1) ? s : c;
  *sin_out = (qm & 2) ? -sin_v : sin_v;
  *cos_out = ((qm + 1) & 2) ? -cos_v : cos_v;
}


// float exp, branch-free (Cephes expf: x = n ln2 + r, degree-6 polynomial, 2^n by exponent
// bits). About 1 ulp on [-87.3, 88.7]; inputs are clamped there, so huge |x| saturate instead
// of producing inf/0 through undefined integer conversions.
GF_HD float exp_f(float x) {
  x = x < 88.3762626647949f ? x : 88.3762626647949f;
  x = x > -87.3365447504f ? x : -87.3365447504f;
  const float fx = x * 1.44269504088896341f;
  const float n = static_cast<float>(static_cast<int>(fx + (fx >= 0.0f ? 0.5f : -0.5f)));
  float r = x - n * 0.693359375f;  // ln2 split in two so that n * C1 is exact
  r = r - n * -2.12194440e-4f;
  const float r2 = r * r;
  float y = 1.9875691500E-4f;
  y = madd(y, r, 1.3981999507E-3f);
  y = madd(y, r, 8.3334519073E-3f);
  y = madd(y, r, 4.1665795894E-2f);
  y = madd(y, r, 1.6666665459E-1f);
  y = madd(y, r, 5.0000001201E-1f);
  y = madd(y, r2, r) + 1.0f;
  // 2^n, with n in [-126, 128]: split into two factors so that both are normal floats.
  const int ni = static_cast<int>(n);
  const int n1 = ni / 2, n2 = ni - n1;
  uint32_t b1 = static_cast<uint32_t>(n1 + 127) << 23, b2 = static_cast<uint32_t>(n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  return y * s1 * s2;
}

// float tanh as a rational function (Eigen's generic_fast_tanh_float coefficients): no exp,
// no branches, a few ulp; |x| >= 7.9 rounds to +-1 in float anyway.
GF_HD float tanh_f(float a) {
  constexpr float c = 7.90531110763549805f;
  float x = a > c ? c : a;  // plain selects (no && / nested control flow), so loops vectorise
  x = x < -c ? -c : x;
  const float x2 = x * x;
  float p = madd(x2, -2.76076847742355e-16f, 2.00018790482477e-13f);
  p = madd(x2, p, -8.60467152213735e-11f);
  p = madd(x2, p, 5.12229709037114e-08f);
  p = madd(x2, p, 1.48572235717979e-05f);
  p = madd(x2, p, 6.37261928875436e-04f);
  p = madd(x2, p, 4.89352455891786e-03f);
  p = x * p;
  float q = madd(x2, 1.19825839466702e-06f, 1.18534705686654e-04f);
  q = madd(x2, q, 2.26843463243900e-03f);
  q = madd(x2, q, 4.89352518554385e-03f);
  const float t = p / q;
  return fabsf(a) < 0.0004f ? a : t;
}

GF_END_NAMESPACE
