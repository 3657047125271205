// The float activations of activation.h (exp_f, tanh_f of fastmath.h; sigmoid, elu) and their
// derivatives written on vectors (vec.h), lane by lane bitwise equal to the scalar functions:
// the same operations in the same order, with the clamps as min/max-able selects instead of
// what GCC's vectoriser makes of the scalar code (3 compares, 2 ANDs and 3 blends per 8 floats
// for tanh_f's two clamps). Host code only. double lanes take the scalar functions (libm) lane
// by lane: the float64 path is the precision path.
//
// Every function here compares, so a vector wider than the build's registers (the test-only
// 16-lane AVX2 build) is split into native halves first (vec.h).
#pragma once

#include "activation.h"
#include "vec.h"

#if defined(GF_HAVE_VEC)

GF_BEGIN_NAMESPACE

// A vector wider than the registers: the same function on each native half.
#define GF_VSPLIT_CALL(fn, V, v)                                 \
  if constexpr (sizeof(V) > static_cast<size_t>(kNativeBytes)) { \
    vhalf_t<V> lo_, hi_;                                         \
    vsplit(v, &lo_, &hi_);                                       \
    return vjoin<V>(fn(lo_), fn(hi_));                           \
  }

template <typename V>
constexpr bool vis_float() {
  return sizeof(velem_t<V>) == sizeof(float);
}

// fabs by clearing the sign bit.
template <typename V>
GF_VINLINE V vabs(V x) {
  using B = vbits_t<V>;
  using I = velem_t<B>;
  const I mask = static_cast<I>(~(static_cast<std::make_unsigned_t<I>>(1) << (8 * sizeof(I) - 1)));
  return vbitcast<V>(vbitcast<B>(x) & mask);
}

// exp_f (fastmath.h), lane by lane.
template <typename V>
GF_VINLINE V vexp_f(V x) {
  GF_VSPLIT_CALL(vexp_f, V, x)
  else {
    static_assert(vis_float<V>(), "float lanes");
    using B = vbits_t<V>;
    const V hi = vsplat_as<V>(88.3762626647949f), lo = vsplat_as<V>(-87.3365447504f);
    x = vmin(x, hi);  // x < hi ? x : hi
    x = vmax(x, lo);  // x > lo ? x : lo
    const V fx = x * 1.44269504088896341f;
    const V half = fx >= 0.0f ? vsplat_as<V>(0.5f) : vsplat_as<V>(-0.5f);
    const B ni = __builtin_convertvector(fx + half, B);  // truncation, as static_cast<int>
    const V n = __builtin_convertvector(ni, V);
    V r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    const V r2 = r * r;
    V y = vsplat_as<V>(1.9875691500E-4f);
    y = vmadd(y, r, vsplat_as<V>(1.3981999507E-3f));
    y = vmadd(y, r, vsplat_as<V>(8.3334519073E-3f));
    y = vmadd(y, r, vsplat_as<V>(4.1665795894E-2f));
    y = vmadd(y, r, vsplat_as<V>(1.6666665459E-1f));
    y = vmadd(y, r, vsplat_as<V>(5.0000001201E-1f));
    y = vmadd(y, r2, r) + 1.0f;
    const B n1 = ni / 2, n2 = ni - n1;
    const V s1 = vbitcast<V>((n1 + 127) << 23), s2 = vbitcast<V>((n2 + 127) << 23);
    return y * s1 * s2;
  }
}

// tanh_f (fastmath.h), lane by lane.
template <typename V>
GF_VINLINE V vtanh_f(V a) {
  GF_VSPLIT_CALL(vtanh_f, V, a)
  else {
    static_assert(vis_float<V>(), "float lanes");
    const V c = vsplat_as<V>(7.90531110763549805f), nc = vsplat_as<V>(-7.90531110763549805f);
    V x = vmin(c, a);   // a > c ? c : a (a NaN passes through)
    x = vmax(nc, x);    // x < -c ? -c : x
    const V x2 = x * x;
    V p = vmadd(x2, vsplat_as<V>(-2.76076847742355e-16f), vsplat_as<V>(2.00018790482477e-13f));
    p = vmadd(x2, p, vsplat_as<V>(-8.60467152213735e-11f));
    p = vmadd(x2, p, vsplat_as<V>(5.12229709037114e-08f));
    p = vmadd(x2, p, vsplat_as<V>(1.48572235717979e-05f));
    p = vmadd(x2, p, vsplat_as<V>(6.37261928875436e-04f));
    p = vmadd(x2, p, vsplat_as<V>(4.89352455891786e-03f));
    p = x * p;
    V q = vmadd(x2, vsplat_as<V>(1.19825839466702e-06f), vsplat_as<V>(1.18534705686654e-04f));
    q = vmadd(x2, q, vsplat_as<V>(2.26843463243900e-03f));
    q = vmadd(x2, q, vsplat_as<V>(4.89352518554385e-03f));
    const V t = p / q;
    return vabs(a) < 0.0004f ? a : t;
  }
}

// sigmoid (activation.h) on float lanes.
template <typename V>
GF_VINLINE V vsigmoid_f(V z) {
  GF_VSPLIT_CALL(vsigmoid_f, V, z)
  else {
    const V e = vexp_f(z >= 0.0f ? -z : z);
    const V one = vsplat_as<V>(1.0f);
    return z >= 0.0f ? one / (one + e) : e / (one + e);
  }
}

// The activation `act` of every lane: activate() of activation.h.
template <typename V>
GF_VINLINE V vactivate(int act, V z, velem_t<V> param) {
  if constexpr (sizeof(V) > static_cast<size_t>(kNativeBytes)) {
    vhalf_t<V> z0, z1;
    vsplit(z, &z0, &z1);
    return vjoin<V>(vactivate(act, z0, param), vactivate(act, z1, param));
  } else {
    using T = velem_t<V>;
    const V zero = V{};
    switch (act) {
      case kRelu: return vmax(z, zero);  // z > 0 ? z : 0
      case kLeakyRelu: return z > zero ? z : param * z;
      case kElu:
        if constexpr (vis_float<V>()) {
          const V pos = vmax(z, zero);  // z > 0 ? z : 0
          const V neg = vmin(z, zero);  // z < 0 ? z : 0
          return pos + param * (vexp_f(neg) - 1.0f);
        }
        break;
      case kTanh:
        if constexpr (vis_float<V>()) return vtanh_f(z);
        break;
      case kSigmoid:
        if constexpr (vis_float<V>()) return vsigmoid_f(z);
        break;
      default: return z;
    }
    V y;  // double: libm lane by lane
    for (int i = 0; i < vlanes<V>(); ++i) y[i] = activate<T>(act, z[i], param);
    return y;
  }
}
// g * f'(z), f'(z) from y = f(z): scale_by_activation_grad() of activation.h, lane by lane.
template <typename V>
GF_VINLINE V vscale_by_act_grad(int act, velem_t<V> param, V y, V g) {
  if constexpr (sizeof(V) > static_cast<size_t>(kNativeBytes)) {
    vhalf_t<V> y0, y1, g0, g1;
    vsplit(y, &y0, &y1), vsplit(g, &g0, &g1);
    return vjoin<V>(vscale_by_act_grad(act, param, y0, g0), vscale_by_act_grad(act, param, y1, g1));
  } else {
    using T = velem_t<V>;
    const V zero = V{};
    switch (act) {
      case kRelu: return y > zero ? g : zero;
      case kLeakyRelu: return y > zero ? g : g * param;
      case kElu: return y > zero ? g : g * (y + param);
      case kTanh: return g * (T(1) - y * y);
      case kSigmoid: return g * (y * (T(1) - y));
      default: return g;
    }
  }
}

// The same with the activation fixed at compile time (the fast path's kernels, whose table
// fixes each network's activations): no switch in the loops, and only that activation inlined.
template <int Act, typename V>
GF_VINLINE V vactivate_c(V z, velem_t<V> param) {
  return vactivate(Act, z, param);  // a constant `act`: the switch folds away
}
template <int Act, typename V>
GF_VINLINE V vscale_by_act_grad_c(velem_t<V> param, V y, V g) {
  return vscale_by_act_grad(Act, param, y, g);
}

#undef GF_VSPLIT_CALL

GF_END_NAMESPACE

#endif
