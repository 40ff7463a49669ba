// C++ launcher: the generated per-point math, parallel over points (at::parallel_for,
// OpenMP in the torch CPU builds). Declares the rsh ops once with TORCH_LIBRARY.
#include <ATen/Parallel.h>
#include <torch/extension.h>
#include <torch/library.h>

#include "rsh_point.h"

namespace {

void check_input(const at::Tensor& xyz, int64_t l_max) {
  TORCH_CHECK(xyz.dim() == 2 && xyz.size(1) == 3, "rsh: xyz must have shape [N, 3], got ",
              xyz.sizes());
  TORCH_CHECK(xyz.scalar_type() == at::kFloat || xyz.scalar_type() == at::kDouble,
              "rsh: xyz must be float32 or float64, got ", xyz.scalar_type());
  TORCH_CHECK(l_max >= 0 && l_max <= RSH_L_MAX, "rsh: l_max must be in [0, ", RSH_L_MAX,
              "], got ", l_max);
}

at::Tensor sh_cpu(const at::Tensor& xyz_in, int64_t l_max, bool normalize) {
  check_input(xyz_in, l_max);
  const auto xyz = xyz_in.contiguous();
  const int64_t n = xyz.size(0), K = (l_max + 1) * (l_max + 1);
  auto out = at::empty({n, K}, xyz.options());
  AT_DISPATCH_FLOATING_TYPES(xyz.scalar_type(), "rsh_sh_cpu", [&] {
    const scalar_t* p = xyz.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const int lm = static_cast<int>(l_max);
    at::parallel_for(0, n, 512, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        rsh_point::forward<scalar_t>(p + 3 * i, lm, normalize, o + K * i);
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> sh_grad_cpu(const at::Tensor& xyz_in, int64_t l_max,
                                               bool normalize) {
  check_input(xyz_in, l_max);
  const auto xyz = xyz_in.contiguous();
  const int64_t n = xyz.size(0), K = (l_max + 1) * (l_max + 1);
  auto out = at::empty({n, K}, xyz.options());
  auto d = at::empty({n, 3, K}, xyz.options());
  AT_DISPATCH_FLOATING_TYPES(xyz.scalar_type(), "rsh_sh_grad_cpu", [&] {
    const scalar_t* p = xyz.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    scalar_t* g = d.data_ptr<scalar_t>();
    const int lm = static_cast<int>(l_max);
    at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        rsh_point::forward_grad<scalar_t>(p + 3 * i, lm, normalize, o + K * i, g + 3 * K * i);
      }
    });
  });
  return {out, d};
}

at::Tensor sh_vjp_cpu(const at::Tensor& xyz_in, const at::Tensor& grad_in, int64_t l_max,
                      bool normalize) {
  check_input(xyz_in, l_max);
  const int64_t n = xyz_in.size(0), K = (l_max + 1) * (l_max + 1);
  TORCH_CHECK(grad_in.dim() == 2 && grad_in.size(0) == n && grad_in.size(1) == K,
              "rsh: grad must have shape [N, (l_max+1)^2], got ", grad_in.sizes());
  TORCH_CHECK(grad_in.scalar_type() == xyz_in.scalar_type(), "rsh: grad dtype must match xyz");
  const auto xyz = xyz_in.contiguous();
  const auto grad = grad_in.contiguous();
  auto gx = at::empty({n, 3}, xyz.options());
  AT_DISPATCH_FLOATING_TYPES(xyz.scalar_type(), "rsh_sh_vjp_cpu", [&] {
    const scalar_t* p = xyz.data_ptr<scalar_t>();
    const scalar_t* g = grad.data_ptr<scalar_t>();
    scalar_t* o = gx.data_ptr<scalar_t>();
    const int lm = static_cast<int>(l_max);
    at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        rsh_point::vjp<scalar_t>(p + 3 * i, g + K * i, lm, normalize, o + 3 * i);
      }
    });
  });
  return gx;
}

}  // namespace

TORCH_LIBRARY(rsh, m) {
  m.def("sh_vjp(Tensor xyz, Tensor grad, int l_max, bool normalize) -> Tensor");
  m.def("sh(Tensor xyz, int l_max, bool normalize) -> Tensor");
  m.def("sh_grad(Tensor xyz, int l_max, bool normalize) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rsh, CPU, m) {
  m.impl("sh", &sh_cpu);
  m.impl("sh_grad", &sh_grad_cpu);
  m.impl("sh_vjp", &sh_vjp_cpu);
}
