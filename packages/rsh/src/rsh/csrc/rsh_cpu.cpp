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

}  // namespace

TORCH_LIBRARY(rsh, m) {
  m.def("sh(Tensor xyz, int l_max, bool normalize) -> Tensor");
  m.def("sh_grad(Tensor xyz, int l_max, bool normalize) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rsh, CPU, m) {
  m.impl("sh", &sh_cpu);
  m.impl("sh_grad", &sh_grad_cpu);
}
