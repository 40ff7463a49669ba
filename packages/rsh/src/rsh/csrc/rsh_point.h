// Per-point wrappers around the generated solid harmonics: normalisation to the unit
// sphere, the r = 0 rule, and the chain rule dY/dx_i = (dS/dx_i(u) - l u_i S(u)) / r.
// Host/device code shared by rsh_cpu.cpp and rsh_cuda.cu.
#pragma once

#include <cmath>

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

template <typename T>
RSH_HD void forward(const T* p, const int l_max, const bool normalize, T* out) {
  const T x = p[0], y = p[1], z = p[2];
  if (!normalize) {
    rsh_generated::solid<T, true>(x, y, z, l_max, out);
    return;
  }
  const T r = rsh_sqrt(x * x + y * y + z * z);
  if (r == T(0)) {  // NaN compares false: a NaN row stays NaN
    const int K = (l_max + 1) * (l_max + 1);
    out[0] = y00<T>();
    for (int k = 1; k < K; ++k) out[k] = T(0);
    return;
  }
  const T inv = T(1) / r;
  rsh_generated::solid<T, false>(x * inv, y * inv, z * inv, l_max, out);
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
  const T r = rsh_sqrt(x * x + y * y + z * z);
  if (r == T(0)) {
    out[0] = y00<T>();
    for (int k = 1; k < K; ++k) out[k] = T(0);
    for (int k = 0; k < 3 * K; ++k) d[k] = T(0);
    return;
  }
  const T inv = T(1) / r;
  const T u[3] = {x * inv, y * inv, z * inv};
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
// to memory (the backward of Y = sh(x) only needs this contraction).
template <typename T>
RSH_HD void vjp(const T* p, const T* g, const int l_max, const bool normalize, T* gx) {
  constexpr int KM = (RSH_L_MAX + 1) * (RSH_L_MAX + 1);
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

}  // namespace rsh_point
