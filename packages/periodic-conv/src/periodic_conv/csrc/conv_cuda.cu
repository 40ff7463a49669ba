// CUDA launcher of the fused Kernel + PeriodicConvolution (kernel body: conv_kernel.h).
// Grid-stride loops; each thread gets a private slice of one workspace tensor as scratch.
// Deterministic mode (default): every output number is written by one thread in a fixed
// order (per-edge messages, then a CSR reduction over the edges of each center). Otherwise
// the forward adds into the output with atomicAdd (faster, order not reproducible).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <tuple>

#include "conv_kernel.h"
#include "conv_ops.h"

namespace periodic_conv {
namespace {

constexpr int kThreads = 128;
constexpr long kMaxBlocks = 1024;

long blocks_for(long items) {
  long b = (items + kThreads - 1) / kThreads;
  return b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b);
}

#define GRID_STRIDE(idx, n)                                                            \
  for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < (n);              \
       idx += (long)blockDim.x * gridDim.x)

// item = (e, k, i): all paths into output block k, component i, of edge e.
template <typename T>
__global__ void fwd_kernel(const T* F, const T* Y, const T* R, const long* src, const long* dst,
                           const T* scale, const long* paths, const long* kptr, const T* C,
                           const long* in_off, const long* out_off, long E, long n_out,
                           long max_i, long md, long dim_in, long dim_out, long nY, long W,
                           long ns, T* ws, T* msg, T* out, bool atomic) {
  const long tid = blockIdx.x * (long)blockDim.x + threadIdx.x;
  // coupled_row writes 2 l_in + 1 numbers into cy: leave room for the largest degree (md =
  // 2 max_deg + 1, as the CPU launcher), not for the largest output component (max_i).
  T* cy = ws + tid * ns;
  T* acc = cy + md;
  GRID_STRIDE(item, E * n_out * max_i) {
    const long i = item % max_i;
    const long k = (item / max_i) % n_out;
    const long e = item / (max_i * n_out);
    const T w = scale[e * n_out + k];
    for (long q = kptr[k]; q < kptr[k + 1]; ++q) {
      const PathInfo p = load_path(paths, q);
      const long ni = 2 * p.lo + 1;
      if (i >= ni) break;
      for (long u = 0; u < p.u; ++u) acc[u] = T(0);
      forward_row(p, C + p.c_off, Y + e * nY + p.l * p.l, F + src[e] * dim_in + in_off[p.i],
                  R + e * W + p.r_off, i, cy, acc);
      for (long u = 0; u < p.u; ++u) {
        const long c = out_off[k] + u * ni + i;
        if (atomic)
          atomicAdd(out + dst[e] * dim_out + c, w * acc[u]);
        else
          msg[e * dim_out + c] += w * acc[u];
      }
    }
  }
}

// out[a, c] = sum over the edges of a (CSR, fixed order) of x[e, c]; or by permutation.
template <typename T>
__global__ void segment_sum(const T* x, const long* ptr, const long* perm, long n, long dim,
                            T* out) {
  GRID_STRIDE(item, n * dim) {
    const long a = item / dim, c = item % dim;
    T s = T(0);
    for (long q = ptr[a]; q < ptr[a + 1]; ++q) s += x[(perm ? perm[q] : q) * dim + c];
    out[item] = s;
  }
}

// item = (e, b, j): input block b, component j of edge e, all paths reading block b.
template <typename T>
__global__ void bwd_feature_kernel(const T* G, const T* Y, const T* R, const long* dst,
                                   const T* scale, const long* paths, long P, const T* C,
                                   const long* in_off, const long* out_off, long E, long n_in,
                                   long max_j, long max_i, long mm, long dim_in, long dim_out,
                                   long nY, long W, long n_out, long ns, T* ws, T* dX) {
  const long tid = blockIdx.x * (long)blockDim.x + threadIdx.x;
  T* cyc = ws + tid * ns;
  T* h = cyc + max_i;
  T* acc = h + mm;
  GRID_STRIDE(item, E * n_in * max_j) {
    const long j = item % max_j;
    const long b = (item / max_j) % n_in;
    const long e = item / (max_j * n_in);
    for (long q = 0; q < P; ++q) {
      const PathInfo p = load_path(paths, q);
      const long nj = 2 * p.li + 1;
      if (p.i != b || j >= nj) continue;
      for (long v = 0; v < p.v; ++v) acc[v] = T(0);
      backward_feature_col(p, C + p.c_off, Y + e * nY + p.l * p.l,
                           G + dst[e] * dim_out + out_off[p.k], scale[e * n_out + p.k],
                           R + e * W + p.r_off, j, cyc, h, acc);
      for (long v = 0; v < p.v; ++v) dX[e * dim_in + in_off[b] + v * nj + j] += acc[v];
    }
  }
}

// item = (e, l): every path of filter degree l of edge e (dR slices and dY_l).
template <typename T>
__global__ void bwd_radial_kernel(const T* G, const T* F, const T* Y, const T* R,
                                  const long* src, const long* dst, const T* scale,
                                  const long* paths, long P, const T* C, const long* in_off,
                                  const long* out_off, long E, long n_l, long dim_in,
                                  long dim_out, long nY, long W, long n_out, long md, long mm,
                                  long ns, bool need_R, bool need_Y, T* ws, T* dR, T* dY) {
  const long tid = blockIdx.x * (long)blockDim.x + threadIdx.x;
  T* s0 = ws + tid * ns;
  T* s1 = s0 + md;
  T* s2 = s1 + md;
  T* s3 = s2 + mm;
  GRID_STRIDE(item, E * n_l) {
    const long l = item % n_l, e = item / n_l;
    for (long q = 0; q < P; ++q) {
      const PathInfo p = load_path(paths, q);
      if (p.l != l) continue;
      backward_radial_sh(p, C + p.c_off, Y + e * nY + p.l * p.l,
                         G + dst[e] * dim_out + out_off[p.k], scale[e * n_out + p.k],
                         F + src[e] * dim_in + in_off[p.i], R + e * W + p.r_off, need_R, need_Y,
                         need_R ? dR + e * W + p.r_off : nullptr,
                         need_Y ? dY + e * nY + p.l * p.l : nullptr, s0, s2, s3, s1);
    }
  }
}

struct CudaLauncher {
  static constexpr c10::DeviceType kDevice = c10::DeviceType::CUDA;

  static at::Tensor fwd(const ConvArgs& a, int64_t dim_out, bool deterministic) {
    const at::Tensor &F = a.F, &Y = a.Y, &R = a.R;
    const c10::cuda::CUDAGuard guard(F.device());
    auto stream = c10::cuda::getCurrentCUDAStream();
    const long N = F.size(0), E = R.size(0), n_out = a.kptr.size(0) - 1;
    const Dims& d = a.dims;
    const long max_i = 2 * d.max_lo + 1, md = 2 * d.max_deg + 1;
    const long ns = scratch_size(d);
    const long items = E * n_out * max_i;
    const long blocks = blocks_for(items);
    auto ws = at::empty({blocks * kThreads * ns}, F.options());
    auto out = at::zeros({N, dim_out}, F.options());
    auto msg = deterministic ? at::zeros({E, dim_out}, F.options()) : at::zeros({0}, F.options());
    AT_DISPATCH_FLOATING_TYPES(F.scalar_type(), "periodic_conv_fwd_cuda", [&] {
      fwd_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(
          F.data_ptr<scalar_t>(), Y.data_ptr<scalar_t>(), R.data_ptr<scalar_t>(),
          a.src.data_ptr<long>(), a.dst.data_ptr<long>(), a.scale.data_ptr<scalar_t>(),
          a.paths.data_ptr<long>(), a.kptr.data_ptr<long>(), a.cflat.data_ptr<scalar_t>(),
          a.in_off.data_ptr<long>(), a.out_off.data_ptr<long>(), E, n_out, max_i, md,
          F.size(1), dim_out, Y.size(1), R.size(1), ns, ws.data_ptr<scalar_t>(),
          deterministic ? msg.data_ptr<scalar_t>() : nullptr, out.data_ptr<scalar_t>(),
          !deterministic);
      if (deterministic) {
        segment_sum<scalar_t><<<blocks_for(N * dim_out), kThreads, 0, stream>>>(
            msg.data_ptr<scalar_t>(), a.row_ptr.data_ptr<long>(), nullptr, N, dim_out,
            out.data_ptr<scalar_t>());
      }
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return out;
  }

  static std::tuple<at::Tensor, at::Tensor, at::Tensor> bwd(const ConvArgs& a,
                                                            const at::Tensor& G, bool need_F,
                                                            bool need_Y, bool need_R) {
    const at::Tensor &F = a.F, &Y = a.Y, &R = a.R;
    const c10::cuda::CUDAGuard guard(F.device());
    auto stream = c10::cuda::getCurrentCUDAStream();
    const long N = F.size(0), E = R.size(0), P = a.paths.size(0);
    const long dim_in = F.size(1), dim_out = G.size(1), nY = Y.size(1), W = R.size(1);
    const long n_out = a.out_off.size(0), n_in = a.in_off.size(0);
    const Dims& d = a.dims;
    const long md = 2 * d.max_deg + 1, mm = d.max_mul;
    const long ns = scratch_size(d);
    auto dF = need_F ? at::zeros({N, dim_in}, F.options()) : at::zeros({0}, F.options());
    auto dR = need_R ? at::zeros({E, W}, R.options()) : at::zeros({0}, R.options());
    auto dY = need_Y ? at::zeros({E, nY}, Y.options()) : at::zeros({0}, Y.options());
    AT_DISPATCH_FLOATING_TYPES(F.scalar_type(), "periodic_conv_bwd_cuda", [&] {
      if (need_F) {
        auto dX = at::zeros({E, dim_in}, F.options());
        const long max_j = 2 * d.max_li + 1;
        const long blocks = blocks_for(E * n_in * max_j);
        auto ws = at::empty({blocks * kThreads * ns}, F.options());
        bwd_feature_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(
            G.data_ptr<scalar_t>(), Y.data_ptr<scalar_t>(), R.data_ptr<scalar_t>(),
            a.dst.data_ptr<long>(), a.scale.data_ptr<scalar_t>(), a.paths.data_ptr<long>(), P,
            a.cflat.data_ptr<scalar_t>(), a.in_off.data_ptr<long>(), a.out_off.data_ptr<long>(),
            E, n_in, max_j, md, mm, dim_in, dim_out, nY, W, n_out, ns, ws.data_ptr<scalar_t>(),
            dX.data_ptr<scalar_t>());
        segment_sum<scalar_t><<<blocks_for(N * dim_in), kThreads, 0, stream>>>(
            dX.data_ptr<scalar_t>(), a.src_ptr.data_ptr<long>(), a.src_perm.data_ptr<long>(), N,
            dim_in, dF.data_ptr<scalar_t>());
      }
      if (need_R || need_Y) {
        const long n_l = d.max_deg + 1;
        const long blocks = blocks_for(E * n_l);
        auto ws = at::empty({blocks * kThreads * ns}, F.options());
        bwd_radial_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(
            G.data_ptr<scalar_t>(), F.data_ptr<scalar_t>(), Y.data_ptr<scalar_t>(),
            R.data_ptr<scalar_t>(), a.src.data_ptr<long>(), a.dst.data_ptr<long>(),
            a.scale.data_ptr<scalar_t>(), a.paths.data_ptr<long>(), P,
            a.cflat.data_ptr<scalar_t>(), a.in_off.data_ptr<long>(), a.out_off.data_ptr<long>(),
            E, n_l, dim_in, dim_out, nY, W, n_out, md, mm, ns, need_R, need_Y,
            ws.data_ptr<scalar_t>(), need_R ? dR.data_ptr<scalar_t>() : nullptr,
            need_Y ? dY.data_ptr<scalar_t>() : nullptr);
      }
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {dF, dY, dR};
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(periodic_conv, CUDA, m) {
  m.impl("conv_fwd", &conv_fwd<CudaLauncher>);
  m.impl("conv_bwd", &conv_bwd<CudaLauncher>);
}

}  // namespace periodic_conv
