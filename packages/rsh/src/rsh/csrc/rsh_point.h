// Per-point wrappers around the generated solid harmonics: normalisation to the unit
// sphere, the r = 0 rule, and the chain rule dY/dx_i = (dS/dx_i(u) - l u_i S(u)) / r.
// Host/device code shared by rsh_cpu.cpp and rsh_cuda.cu.
#pragma once

#include <cmath>
#include <limits>

#include "_generated_rsh.h"

namespace rsh_point {

template <typename T>
RSH_HD T rsh_sqrt(T v) {
#if defined(__CUDA_ARCH__)
  return sqrt(v);
#else
  return std::sqrt(v);
#endif
}

// Y_00 = 1 / (2 sqrt(pi)).
template <typename T>
RSH_HD T y00() {
  return T(0.2820947917738781434740397);
}

// Squared norms in [r2_lo, r2_hi] are normalised the plain way, u = x * (1 / sqrt(r2)):
// there x*x + y*y + z*z neither overflows nor loses digits to underflow (r2_lo is the
// smallest normal number divided by the machine epsilon). Everything else - the origin,
// NaN or inf coordinates, and finite vectors whose r2 would overflow or lose digits (|x|
// above ~1.3e154 or below ~1e-145 in float64, above ~1.8e19 or below ~1e-15 in float32) -
// goes through unit_rescaled.
template <typename T>
RSH_HD constexpr T r2_lo() {
  if constexpr (sizeof(T) == 4) {
    return T(1e-30f);
  } else {
    return T(1e-290);
  }
}
template <typename T>
RSH_HD constexpr T r2_hi() {  // the largest finite value
  if constexpr (sizeof(T) == 4) {
    return T(3.4028234663852886e38f);
  } else {
    return T(1.7976931348623157e308);
  }
}
template <typename T>
RSH_HD bool plain_range(const T r2) {  // false for NaN
  return r2 >= r2_lo<T>() && r2 <= r2_hi<T>();
}

// Unit vector and 1/|x| through the scaled norm: divide by m = max |x_i| first, so the sum
// of squares lies in [1, 3]. Returns false at the origin (u, inv untouched); NaN or inf
// coordinates give NaN u and inv (the NaN rule).
template <typename T>
RSH_HD bool unit_rescaled(const T x, const T y, const T z, T* u, T* inv) {
  const T ax = x < T(0) ? -x : x, ay = y < T(0) ? -y : y, az = z < T(0) ? -z : z;
  if (!(ax <= r2_hi<T>() && ay <= r2_hi<T>() && az <= r2_hi<T>())) {
    const T nan = std::numeric_limits<T>::quiet_NaN();
    u[0] = u[1] = u[2] = *inv = nan;
    return true;
  }
  T m = ax > ay ? ax : ay;
  m = m > az ? m : az;
  if (m == T(0)) return false;
  const T xs = x / m, ys = y / m, zs = z / m;
  const T q = T(1) / rsh_sqrt(xs * xs + ys * ys + zs * zs);
  u[0] = xs * q;
  u[1] = ys * q;
  u[2] = zs * q;
  *inv = q / m;  // 1/|x|; inf for subnormal |x| in float64 (the gradient is that large)
  return true;
}

// u = x / |x| and inv = 1 / |x| for every finite non-zero vector; false at the origin.
template <typename T>
RSH_HD bool unit(const T x, const T y, const T z, T* u, T* inv) {
  const T r2 = x * x + y * y + z * z;
  if (plain_range<T>(r2)) {
    const T q = T(1) / rsh_sqrt(r2);
    u[0] = x * q;
    u[1] = y * q;
    u[2] = z * q;
    *inv = q;
    return true;
  }
  return unit_rescaled<T>(x, y, z, u, inv);
}

template <typename T>
RSH_HD void forward(const T* p, const int l_max, const bool normalize, T* out) {
  const T x = p[0], y = p[1], z = p[2];
  if (!normalize) {
    rsh_generated::solid<T, true>(x, y, z, l_max, out);
    return;
  }
  T u[3], inv;
  if (!unit<T>(x, y, z, u, &inv)) {  // origin: Y_00 keeps its constant, the rest is 0
    const int K = (l_max + 1) * (l_max + 1);
    out[0] = y00<T>();
    for (int k = 1; k < K; ++k) out[k] = T(0);
    return;
  }
  rsh_generated::solid<T, false>(u[0], u[1], u[2], l_max, out);
}

// d has layout [3, K]: d[i * K + k] = dY_k / dx_i.
template <typename T>
RSH_HD void forward_grad(const T* p, const int l_max, const bool normalize, T* out, T* d) {
  const int K = (l_max + 1) * (l_max + 1);
  const T x = p[0], y = p[1], z = p[2];
  if (!normalize) {
    rsh_generated::solid_grad<T, true>(x, y, z, l_max, out, d, d + K, d + 2 * K);
    return;
  }
  T u[3], inv;
  if (!unit<T>(x, y, z, u, &inv)) {
    out[0] = y00<T>();
    for (int k = 1; k < K; ++k) out[k] = T(0);
    for (int k = 0; k < 3 * K; ++k) d[k] = T(0);
    return;
  }
  rsh_generated::solid_grad<T, false>(u[0], u[1], u[2], l_max, out, d, d + K, d + 2 * K);
  for (int l = 1; l <= l_max; ++l) {
    for (int k = l * l; k < (l + 1) * (l + 1); ++k) {
      const T lv = T(l) * out[k];
      for (int i = 0; i < 3; ++i) d[i * K + k] = (d[i * K + k] - lv * u[i]) * inv;
    }
  }
  for (int i = 0; i < 3; ++i) d[i * K] = T(0);  // Y_00 is constant
}

// Vector-Jacobian product of one point: gx[i] = sum_k g[k] dY_k/dx_i, without writing dY
// to memory (the backward of Y = sh(x) only needs this contraction). LM >= l_max bounds the
// local arrays at compile time (the launchers dispatch on l_max, see vjp_bound), so a
// small l_max does not pay for L_MAX-sized arrays (registers / local memory on the GPU).
template <typename T, int LM>
RSH_HD void vjp(const T* p, const T* g, const int l_max, const bool normalize, T* gx) {
  constexpr int KM = (LM + 1) * (LM + 1);
  T out[KM];
  T d[3 * KM];
  const int K = (l_max + 1) * (l_max + 1);
  forward_grad<T>(p, l_max, normalize, out, d);
  for (int i = 0; i < 3; ++i) {
    T s = T(0);
    for (int k = 0; k < K; ++k) s += d[i * K + k] * g[k];
    gx[i] = s;
  }
}

// The compile-time bounds the launchers instantiate vjp with: the smallest of 2, 4, 8 and
// RSH_L_MAX that is >= l_max.
RSH_HD int vjp_bound(const int l_max) {
  return l_max <= 2 ? 2 : l_max <= 4 ? 4 : l_max <= 8 ? 8 : RSH_L_MAX;
}

}  // namespace rsh_point
