// CUDA launcher: the same generated per-point math as the C++ launcher, one thread per
// point in a grid-stride loop.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>
#include <torch/library.h>

#include "rsh_check.h"
#include "rsh_point.h"

namespace {

template <typename T>
__global__ void sh_kernel(const T* __restrict__ p, int64_t n, int l_max, bool normalize,
                          T* __restrict__ out) {
  const int64_t K = (l_max + 1) * (l_max + 1);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    rsh_point::forward<T>(p + 3 * i, l_max, normalize, out + K * i);
  }
}

template <typename T>
__global__ void sh_grad_kernel(const T* __restrict__ p, int64_t n, int l_max, bool normalize,
                               T* __restrict__ out, T* __restrict__ d) {
  const int64_t K = (l_max + 1) * (l_max + 1);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    rsh_point::forward_grad<T>(p + 3 * i, l_max, normalize, out + K * i, d + 3 * K * i);
  }
}

// LM >= l_max sizes the per-thread arrays (rsh_point::vjp_bound): (LM+1)^2 x 4 values in
// registers / local memory instead of always 17^2 x 4.
template <typename T, int LM>
__global__ void sh_vjp_kernel(const T* __restrict__ p, const T* __restrict__ g, int64_t n,
                              int l_max, bool normalize, T* __restrict__ gx) {
  const int64_t K = (l_max + 1) * (l_max + 1);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    rsh_point::vjp<T, LM>(p + 3 * i, g + K * i, l_max, normalize, gx + 3 * i);
  }
}

void check_input(const at::Tensor& xyz, int64_t l_max) {
  TORCH_CHECK(xyz.is_cuda(), "rsh: xyz must be a CUDA tensor, got a tensor on ", xyz.device());
  rsh_check::check_input(xyz, l_max);
}

constexpr int kThreads = 128;

int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

at::Tensor sh_cuda(const at::Tensor& xyz_in, int64_t l_max, bool normalize) {
  check_input(xyz_in, l_max);
  const c10::cuda::CUDAGuard guard(xyz_in.device());
  const auto xyz = xyz_in.contiguous();
  const int64_t n = xyz.size(0), K = (l_max + 1) * (l_max + 1);
  auto out = at::empty({n, K}, xyz.options());
  if (n == 0) return out;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(xyz.scalar_type(), "rsh_sh_cuda", [&] {
    sh_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
        xyz.data_ptr<scalar_t>(), n, static_cast<int>(l_max), normalize,
        out.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<at::Tensor, at::Tensor> sh_grad_cuda(const at::Tensor& xyz_in, int64_t l_max,
                                                bool normalize) {
  check_input(xyz_in, l_max);
  const c10::cuda::CUDAGuard guard(xyz_in.device());
  const auto xyz = xyz_in.contiguous();
  const int64_t n = xyz.size(0), K = (l_max + 1) * (l_max + 1);
  auto out = at::empty({n, K}, xyz.options());
  auto d = at::empty({n, 3, K}, xyz.options());
  if (n == 0) return {out, d};
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(xyz.scalar_type(), "rsh_sh_grad_cuda", [&] {
    sh_grad_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
        xyz.data_ptr<scalar_t>(), n, static_cast<int>(l_max), normalize,
        out.data_ptr<scalar_t>(), d.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out, d};
}

at::Tensor sh_vjp_cuda(const at::Tensor& xyz_in, const at::Tensor& grad_in, int64_t l_max,
                       bool normalize) {
  check_input(xyz_in, l_max);
  const c10::cuda::CUDAGuard guard(xyz_in.device());
  const int64_t n = xyz_in.size(0), K = (l_max + 1) * (l_max + 1);
  TORCH_CHECK(grad_in.dim() == 2 && grad_in.size(0) == n && grad_in.size(1) == K,
              "rsh: grad must have shape [N, (l_max+1)^2], got ", grad_in.sizes());
  TORCH_CHECK(grad_in.scalar_type() == xyz_in.scalar_type(), "rsh: grad must have the dtype of xyz (",
              xyz_in.scalar_type(), "), got ", grad_in.scalar_type());
  TORCH_CHECK(grad_in.is_cuda() && grad_in.device() == xyz_in.device(),
              "rsh: grad must be on the device of xyz (", xyz_in.device(), "), got ",
              grad_in.device());
  const auto xyz = xyz_in.contiguous();
  const auto grad = grad_in.contiguous();
  auto gx = at::empty({n, 3}, xyz.options());
  if (n == 0) return gx;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const int lm = static_cast<int>(l_max);
  AT_DISPATCH_FLOATING_TYPES(xyz.scalar_type(), "rsh_sh_vjp_cuda", [&] {
    const scalar_t* pp = xyz.data_ptr<scalar_t>();
    const scalar_t* gp = grad.data_ptr<scalar_t>();
    scalar_t* op = gx.data_ptr<scalar_t>();
    switch (rsh_point::vjp_bound(lm)) {
      case 2:
        sh_vjp_kernel<scalar_t, 2><<<blocks_for(n), kThreads, 0, stream>>>(pp, gp, n, lm, normalize, op);
        break;
      case 4:
        sh_vjp_kernel<scalar_t, 4><<<blocks_for(n), kThreads, 0, stream>>>(pp, gp, n, lm, normalize, op);
        break;
      case 8:
        sh_vjp_kernel<scalar_t, 8><<<blocks_for(n), kThreads, 0, stream>>>(pp, gp, n, lm, normalize, op);
        break;
      default:
        sh_vjp_kernel<scalar_t, RSH_L_MAX>
            <<<blocks_for(n), kThreads, 0, stream>>>(pp, gp, n, lm, normalize, op);
    }
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return gx;
}

}  // namespace

TORCH_LIBRARY_IMPL(rsh, CUDA, m) {
  m.impl("sh", &sh_cuda);
  m.impl("sh_grad", &sh_grad_cuda);
  m.impl("sh_vjp", &sh_vjp_cuda);
}
