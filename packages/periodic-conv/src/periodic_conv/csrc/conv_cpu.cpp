// OpenMP launcher of the fused Kernel + PeriodicConvolution (kernel body: conv_kernel.h).
// Parallel over center atoms; edges are sorted by center (CSR row_ptr), so each output row is
// written by one thread in a fixed order: results are bitwise identical for any thread count.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <vector>

#include "conv_kernel.h"
#include "conv_ops.h"

namespace periodic_conv {
namespace {

template <typename scalar_t>
void fwd_impl(const at::Tensor& F, const at::Tensor& Y, const at::Tensor& R,
              const at::Tensor& src, const at::Tensor& scale, const at::Tensor& row_ptr,
              const at::Tensor& paths, const at::Tensor& kptr, const at::Tensor& cflat,
              const at::Tensor& in_off, const at::Tensor& out_off, at::Tensor& out,
              const Dims& dims, long ns, long N, long dim_in, long nY, long W, long n_out,
              long n_atoms, long dim_out) {
  (void)N;
  {
    const scalar_t* Fp = F.data_ptr<scalar_t>();
    const scalar_t* Yp = Y.data_ptr<scalar_t>();
    const scalar_t* Rp = R.data_ptr<scalar_t>();
    const scalar_t* Sp = scale.data_ptr<scalar_t>();
    const scalar_t* Cp = cflat.data_ptr<scalar_t>();
    const long* srcp = src.data_ptr<long>();
    const long* rp = row_ptr.data_ptr<long>();
    const long* pp = paths.data_ptr<long>();
    const long* kp = kptr.data_ptr<long>();
    const long* io = in_off.data_ptr<long>();
    const long* oo = out_off.data_ptr<long>();
    scalar_t* Op = out.data_ptr<scalar_t>();
#pragma omp parallel num_threads(at::get_num_threads())
    {
      std::vector<scalar_t> scratch(ns);
      scalar_t* cy = scratch.data();
      scalar_t* acc = cy + (2 * dims.max_deg + 1);
#pragma omp for schedule(dynamic, 1)
      for (long a = 0; a < n_atoms; ++a) {
        for (long e = rp[a]; e < rp[a + 1]; ++e) {
          const long b = srcp[e];
          for (long k = 0; k < n_out; ++k) {
            const scalar_t w = Sp[e * n_out + k];
            for (long q = kp[k]; q < kp[k + 1]; ++q) {
              const PathInfo p = load_path(pp, q);
              const long ni = 2 * p.lo + 1;
              for (long i = 0; i < ni; ++i) {
                for (long u = 0; u < p.u; ++u) acc[u] = scalar_t(0);
                forward_row(p, Cp + p.c_off, Yp + e * nY + p.l * p.l, Fp + b * dim_in + io[p.i],
                            Rp + e * W + p.r_off, i, cy, acc);
                scalar_t* o = Op + a * dim_out + oo[k] + i;
                for (long u = 0; u < p.u; ++u) o[u * ni] += w * acc[u];
              }
            }
          }
        }
      }
    }
  }
}

template <typename scalar_t>
void bwd_impl(const at::Tensor& G, const at::Tensor& F, const at::Tensor& Y, const at::Tensor& R,
              const at::Tensor& src, const at::Tensor& scale, const at::Tensor& row_ptr,
              const at::Tensor& src_perm, const at::Tensor& src_ptr, const at::Tensor& paths,
              const at::Tensor& cflat, const at::Tensor& in_off, const at::Tensor& out_off,
              bool need_F, bool need_Y, bool need_R, at::Tensor& dF, at::Tensor& dX,
              at::Tensor& dR, at::Tensor& dY, long ns, long md, long mm, long N, long dim_in,
              long nY, long W, long dim_out, long n_out, long n_atoms, long P) {
  {
    const scalar_t* Gp = G.data_ptr<scalar_t>();
    const scalar_t* Fp = F.data_ptr<scalar_t>();
    const scalar_t* Yp = Y.data_ptr<scalar_t>();
    const scalar_t* Rp = R.data_ptr<scalar_t>();
    const scalar_t* Sp = scale.data_ptr<scalar_t>();
    const scalar_t* Cp = cflat.data_ptr<scalar_t>();
    const long* srcp = src.data_ptr<long>();
    const long* rp = row_ptr.data_ptr<long>();
    const long* pp = paths.data_ptr<long>();
    const long* io = in_off.data_ptr<long>();
    const long* oo = out_off.data_ptr<long>();
    scalar_t* dXp = need_F ? dX.data_ptr<scalar_t>() : nullptr;
    scalar_t* dRp = need_R ? dR.data_ptr<scalar_t>() : nullptr;
    scalar_t* dYp = need_Y ? dY.data_ptr<scalar_t>() : nullptr;
#pragma omp parallel num_threads(at::get_num_threads())
    {
      std::vector<scalar_t> scratch(ns);
      scalar_t* s0 = scratch.data();       // md
      scalar_t* s1 = s0 + md;              // md
      scalar_t* s2 = s1 + md;              // mm
      scalar_t* s3 = s2 + mm;              // mm
      scalar_t* s4 = s3 + mm;              // mm
#pragma omp for schedule(dynamic, 1)
      for (long a = 0; a < n_atoms; ++a) {
        for (long e = rp[a]; e < rp[a + 1]; ++e) {
          const long b = srcp[e];
          for (long q = 0; q < P; ++q) {
            const PathInfo p = load_path(pp, q);
            const scalar_t w = Sp[e * n_out + p.k];
            const scalar_t* C = Cp + p.c_off;
            const scalar_t* Yl = Yp + e * nY + p.l * p.l;
            const scalar_t* Gb = Gp + a * dim_out + oo[p.k];
            const scalar_t* Fb = Fp + b * dim_in + io[p.i];
            const scalar_t* Rb = Rp + e * W + p.r_off;
            if (need_F) {
              const long nj = 2 * p.li + 1;
              for (long j = 0; j < nj; ++j) {
                for (long v = 0; v < p.v; ++v) s4[v] = scalar_t(0);
                backward_feature_col(p, C, Yl, Gb, w, Rb, j, s0, s2, s4);
                scalar_t* d = dXp + e * dim_in + io[p.i] + j;
                for (long v = 0; v < p.v; ++v) d[v * nj] += s4[v];
              }
            }
            if (need_R || need_Y) {
              backward_radial_sh(p, C, Yl, Gb, w, Fb, Rb, need_R, need_Y,
                                 need_R ? dRp + e * W + p.r_off : nullptr,
                                 need_Y ? dYp + e * nY + p.l * p.l : nullptr, s0, s2, s3, s1);
            }
          }
        }
      }
    }
    if (need_F) {
      // Gather per-edge contributions by neighbour in a fixed (sorted) order: deterministic.
      const long* perm = src_perm.data_ptr<long>();
      const long* sp = src_ptr.data_ptr<long>();
      scalar_t* dFp = dF.data_ptr<scalar_t>();
#pragma omp parallel for num_threads(at::get_num_threads()) schedule(static)
      for (long bb = 0; bb < N; ++bb) {
        for (long q = sp[bb]; q < sp[bb + 1]; ++q) {
          const scalar_t* x = dXp + perm[q] * dim_in;
          scalar_t* d = dFp + bb * dim_in;
          for (long c = 0; c < dim_in; ++c) d[c] += x[c];
        }
      }
    }
  }
}

struct CpuLauncher {
  static constexpr c10::DeviceType kDevice = c10::DeviceType::CPU;

  static at::Tensor fwd(const ConvArgs& a, int64_t dim_out, bool deterministic) {
    (void)deterministic;  // the CPU launcher is always deterministic
    check_table_host("periodic_conv::conv_fwd", a);
    const long N = a.F.size(0), dim_in = a.F.size(1), nY = a.Y.size(1), W = a.R.size(1);
    const long n_out = a.kptr.size(0) - 1, n_atoms = a.row_ptr.size(0) - 1;
    auto out = at::zeros({N, dim_out}, a.F.options());
    const long ns = scratch_size(a.dims);
    AT_DISPATCH_FLOATING_TYPES(a.F.scalar_type(), "periodic_conv_fwd_cpu", [&] {
      fwd_impl<scalar_t>(a.F, a.Y, a.R, a.src, a.scale, a.row_ptr, a.paths, a.kptr, a.cflat,
                         a.in_off, a.out_off, out, a.dims, ns, N, dim_in, nY, W, n_out, n_atoms,
                         dim_out);
    });
    return out;
  }

  static std::tuple<at::Tensor, at::Tensor, at::Tensor> bwd(const ConvArgs& a,
                                                            const at::Tensor& G, bool need_F,
                                                            bool need_Y, bool need_R) {
    check_table_host("periodic_conv::conv_bwd", a);
    const at::Tensor &F = a.F, &R = a.R, &Y = a.Y;
    const long N = F.size(0), dim_in = F.size(1), nY = Y.size(1), W = R.size(1), E = R.size(0);
    const long dim_out = G.size(1), n_out = a.out_off.size(0), n_atoms = a.row_ptr.size(0) - 1;
    const long P = a.paths.size(0);
    auto dF = need_F ? at::zeros({N, dim_in}, F.options()) : at::zeros({0}, F.options());
    auto dX = need_F ? at::zeros({E, dim_in}, F.options()) : at::zeros({0}, F.options());
    auto dR = need_R ? at::zeros({E, W}, R.options()) : at::zeros({0}, R.options());
    auto dY = need_Y ? at::zeros({E, nY}, Y.options()) : at::zeros({0}, Y.options());
    const long ns = scratch_size(a.dims);
    const long md = 2 * a.dims.max_deg + 1, mm = a.dims.max_mul;
    AT_DISPATCH_FLOATING_TYPES(F.scalar_type(), "periodic_conv_bwd_cpu", [&] {
      bwd_impl<scalar_t>(G, F, Y, R, a.src, a.scale, a.row_ptr, a.src_perm, a.src_ptr, a.paths,
                         a.cflat, a.in_off, a.out_off, need_F, need_Y, need_R, dF, dX, dR, dY,
                         ns, md, mm, N, dim_in, nY, W, dim_out, n_out, n_atoms, P);
    });
    return {dF, dY, dR};
  }
};

}  // namespace

TORCH_LIBRARY(periodic_conv, m) {
  m.def(kConvFwdSchema);
  m.def(kConvBwdSchema);
}

TORCH_LIBRARY_IMPL(periodic_conv, CPU, m) {
  m.impl("conv_fwd", &conv_fwd<CpuLauncher>);
  m.impl("conv_bwd", &conv_bwd<CpuLauncher>);
}

}  // namespace periodic_conv
