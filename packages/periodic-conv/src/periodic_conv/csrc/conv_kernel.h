// One kernel body for the fused Kernel + PeriodicConvolution (thesis eq. C.1, C.10, C.17).
// Every function works on one small piece of one edge and is compiled both by g++ (the
// OpenMP launcher, conv_cpu.cpp) and by nvcc (the grid-stride launcher, conv_cuda.cu), so
// the CPU tests exercise exactly the arithmetic the GPU runs.
//
// Layouts (row-major):
//   F    [N, dim_in]   input block b at in_off[b], element (v, j) at v * (2 l_in + 1) + j
//   Y    [E, nY]       degree l at column l * l, m = 0 .. 2l
//   R    [E, W]        path p at r_offset, element (u, v) at u * v_mul + v
//   C    flat          path p at c_offset, element (i, j, m) at (i * (2 l_in + 1) + j) * (2 l + 1) + m
//   G    [N, dim_out]  (incoming gradient), output block k at out_off[k]
// A path row of the table is (k, i, l, l_out, l_in, u, v, r_offset, c_offset).
#pragma once

#if defined(__CUDACC__)
#define PC_HD __host__ __device__
#else
#define PC_HD
#endif

namespace periodic_conv {

constexpr int kPathCols = 9;

struct PathInfo {
  long k, i, l, lo, li, u, v, r_off, c_off;
};

PC_HD inline PathInfo load_path(const long* paths, long p) {
  const long* q = paths + p * kPathCols;
  return PathInfo{q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8]};
}

// cy[j] = sum_m C[i, j, m] Y_l[m]  for one output component i.
template <typename T>
PC_HD inline void coupled_row(const T* C, const T* Yl, long i, long nj, long nm, T* cy) {
  for (long j = 0; j < nj; ++j) {
    const T* c = C + (i * nj + j) * nm;
    T s = T(0);
    for (long m = 0; m < nm; ++m) s += c[m] * Yl[m];
    cy[j] = s;
  }
}

// cyc[i] = sum_m C[i, j, m] Y_l[m]  for one input component j.
template <typename T>
PC_HD inline void coupled_col(const T* C, const T* Yl, long j, long ni, long nj, long nm, T* cyc) {
  for (long i = 0; i < ni; ++i) {
    const T* c = C + (i * nj + j) * nm;
    T s = T(0);
    for (long m = 0; m < nm; ++m) s += c[m] * Yl[m];
    cyc[i] = s;
  }
}

// Forward, one edge, one path, one output component i (eq. C.6 without W):
//   acc[u] += sum_v R[u, v] sum_j F[v, j] cy[j],   cy = coupled_row(i)
// scratch: cy[2 l_in + 1].
template <typename T>
PC_HD inline void forward_row(const PathInfo& p, const T* C, const T* Yl, const T* Fb,
                              const T* Rp, long i, T* cy, T* acc) {
  const long nj = 2 * p.li + 1, nm = 2 * p.l + 1;
  coupled_row(C, Yl, i, nj, nm, cy);
  for (long v = 0; v < p.v; ++v) {
    T z = T(0);
    for (long j = 0; j < nj; ++j) z += Fb[v * nj + j] * cy[j];
    for (long u = 0; u < p.u; ++u) acc[u] += Rp[u * p.v + v] * z;
  }
}

// Backward for the features, one edge, one path, one input component j (eq. C.13):
//   acc[v] += sum_u R[u, v] sum_i Gs[u, i] cyc[i],   Gs = G[dst] * W / sqrt(|N(a)|)
// scratch: cyc[2 l_out + 1], h[u].
template <typename T>
PC_HD inline void backward_feature_col(const PathInfo& p, const T* C, const T* Yl, const T* Gb,
                                       T w, const T* Rp, long j, T* cyc, T* h, T* acc) {
  const long ni = 2 * p.lo + 1, nj = 2 * p.li + 1, nm = 2 * p.l + 1;
  coupled_col(C, Yl, j, ni, nj, nm, cyc);
  for (long u = 0; u < p.u; ++u) {
    T s = T(0);
    for (long i = 0; i < ni; ++i) s += Gb[u * ni + i] * cyc[i];
    h[u] = w * s;
  }
  for (long v = 0; v < p.v; ++v) {
    T s = T(0);
    for (long u = 0; u < p.u; ++u) s += Rp[u * p.v + v] * h[u];
    acc[v] += s;
  }
}

// Backward for R (eq. C.19) and Y, one edge, one path:
//   dR[u, v]  = W sum_i Gs[u, i] sum_j F[v, j] cy_i[j]            (written)
//   dY_l[m]  += W sum_{i j} C[i, j, m] sum_v (sum_u Gs[u, i] R[u, v]) F[v, j]   (accumulated)
// scratch: cy[2 l_in + 1], z[v], gr[v], t[2 l_in + 1].
template <typename T>
PC_HD inline void backward_radial_sh(const PathInfo& p, const T* C, const T* Yl, const T* Gb,
                                     T w, const T* Fb, const T* Rp, bool need_R, bool need_Y,
                                     T* dRp, T* dYl, T* cy, T* z, T* gr, T* t) {
  const long ni = 2 * p.lo + 1, nj = 2 * p.li + 1, nm = 2 * p.l + 1;
  if (need_R)
    for (long q = 0; q < p.u * p.v; ++q) dRp[q] = T(0);
  for (long i = 0; i < ni; ++i) {
    if (need_R) {
      coupled_row(C, Yl, i, nj, nm, cy);
      for (long v = 0; v < p.v; ++v) {
        T s = T(0);
        for (long j = 0; j < nj; ++j) s += Fb[v * nj + j] * cy[j];
        z[v] = s;
      }
      for (long u = 0; u < p.u; ++u) {
        const T g = w * Gb[u * ni + i];
        for (long v = 0; v < p.v; ++v) dRp[u * p.v + v] += g * z[v];
      }
    }
    if (need_Y) {
      for (long v = 0; v < p.v; ++v) {
        T s = T(0);
        for (long u = 0; u < p.u; ++u) s += Gb[u * ni + i] * Rp[u * p.v + v];
        gr[v] = w * s;
      }
      for (long j = 0; j < nj; ++j) {
        T s = T(0);
        for (long v = 0; v < p.v; ++v) s += gr[v] * Fb[v * nj + j];
        t[j] = s;
      }
      for (long m = 0; m < nm; ++m) {
        T s = T(0);
        for (long j = 0; j < nj; ++j) s += C[(i * nj + j) * nm + m] * t[j];
        dYl[m] += s;
      }
    }
  }
}

}  // namespace periodic_conv
