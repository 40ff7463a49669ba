// C++ launcher: the generated per-point math, parallel over points (at::parallel_for,
// OpenMP in the torch CPU builds). Declares the rsh ops once with TORCH_LIBRARY.
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
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

// Forward over points [begin, end) in blocks: the normalisation (sqrt, division, r = 0
// rule as a select) runs as one loop over the block so that it vectorises across points,
// then the generated polynomial is evaluated point by point. LM >= 0 fixes l_max at
// compile time (flatten inlines the generated code, its `if (l_max < l) return;` chain
// folds away and the point loop becomes one straight-line body); LM = -1 reads lm_rt.
constexpr int64_t kBlock = 64;

#if defined(__GNUC__)
#define RSH_FLATTEN __attribute__((flatten))
#else
#define RSH_FLATTEN
#endif

template <typename T, int LM>
RSH_FLATTEN void forward_range(const T* __restrict__ p, const int64_t begin, const int64_t end,
                               const int lm_rt, T* __restrict__ o) {
  const int lm = LM >= 0 ? LM : lm_rt;
  const int64_t K = (lm + 1) * (lm + 1);
  alignas(64) T ux[kBlock], uy[kBlock], uz[kBlock];
  for (int64_t b = begin; b < end; b += kBlock) {
    const int64_t nb = std::min(kBlock, end - b);
    const T* pb = p + 3 * b;
    T* ob = o + K * b;
    // Branch-free: 1/r is computed even at r = 0 (inf, discarded by the select) so that the
    // loop vectorises (needs -fno-trapping-math -fno-math-errno, see _ext.py); origin rows
    // are counted instead of flagged in a bool array, which blocked vectorisation.
    // float32: de-interleave with scalar copies first, then a unit-stride loop (faster than
    // the permutes GCC emits for the stride-3 loads); float64 is faster reading AoS directly.
    constexpr bool kSoA = sizeof(T) == 4;
    if (kSoA) {
      for (int64_t i = 0; i < nb; ++i) {
        ux[i] = pb[3 * i];
        uy[i] = pb[3 * i + 1];
        uz[i] = pb[3 * i + 2];
      }
    }
    T n_origin = T(0);
#pragma omp simd reduction(+ : n_origin)
    for (int64_t i = 0; i < nb; ++i) {
      const T x = kSoA ? ux[i] : pb[3 * i];
      const T y = kSoA ? uy[i] : pb[3 * i + 1];
      const T z = kSoA ? uz[i] : pb[3 * i + 2];
      const T r = std::sqrt(x * x + y * y + z * z);
      const T q = T(1) / r;
      const T inv = r == T(0) ? T(0) : q;  // NaN compares false: a NaN row stays NaN
      n_origin += r == T(0) ? T(1) : T(0);
      ux[i] = x * inv;
      uy[i] = y * inv;
      uz[i] = z * inv;
    }
    for (int64_t i = 0; i < nb; ++i) {
      rsh_generated::solid<T, false>(ux[i], uy[i], uz[i], lm, ob + K * i);
    }
    if (n_origin != T(0)) {  // rare: Y_00 keeps its constant, the rest is 0
      for (int64_t i = 0; i < nb; ++i) {
        const T* q = pb + 3 * i;
        if (std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]) == T(0)) {
          T* row = ob + K * i;
          row[0] = rsh_point::y00<T>();
          for (int64_t k = 1; k < K; ++k) row[k] = T(0);
        }
      }
    }
  }
}

template <typename T>
void forward_dispatch(const T* p, int64_t begin, int64_t end, int lm, T* o) {
  switch (lm) {
#define RSH_CASE(L)                                \
  case L:                                          \
    forward_range<T, L>(p, begin, end, lm, o); \
    return;
    RSH_CASE(0)
    RSH_CASE(1)
    RSH_CASE(2)
    RSH_CASE(3)
    RSH_CASE(4)
    RSH_CASE(5)
    RSH_CASE(6)
    RSH_CASE(7)
    RSH_CASE(8)
    RSH_CASE(9)
    RSH_CASE(10)
#undef RSH_CASE
    default:
      forward_range<T, -1>(p, begin, end, lm, o);
  }
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
    at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
      if (normalize) {
        forward_dispatch<scalar_t>(p, begin, end, lm, o);
        return;
      }
      for (int64_t i = begin; i < end; ++i) {
        rsh_point::forward<scalar_t>(p + 3 * i, lm, false, o + K * i);
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
