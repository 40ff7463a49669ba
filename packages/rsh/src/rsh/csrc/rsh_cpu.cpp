// C++ launcher: the generated per-point math, parallel over points (at::parallel_for,
// OpenMP in the torch CPU builds). Declares the rsh ops once with TORCH_LIBRARY.
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <torch/extension.h>
#include <torch/library.h>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif
// AVX is used through a function attribute and a run-time CPU check (the build itself stays
// baseline x86-64), so the same library runs on CPUs without AVX.
#if defined(__GNUC__) && defined(__x86_64__)
#define RSH_HAVE_AVX 1
#include <immintrin.h>
#else
#define RSH_HAVE_AVX 0
#endif

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

// l_max = 1 is memory-bound, so it gets fused AVX / SSE2 paths (baseline x86-64, no -march
// needed): de-interleave 4 (float) or 2 (double) points with shuffles, normalise, and write
// the [Y00, Y1-1, Y10, Y11] rows with a transpose. No origin pass: with 1/r masked to 0 at
// r = 0 the l = 1 entries are 0 already. Same operation order as the generated code,
// c·(x·(1/r)), so Y stays bitwise equal to the other paths. A NaN row stays NaN.
template <typename T>
inline void forward_l1_point(const T* p, T* o) {
  const T x = p[0], y = p[1], z = p[2];
  const T r = std::sqrt(x * x + y * y + z * z);
  const T inv = r == T(0) ? T(0) : T(1) / r;
  const T c1 = T(0.4886025119029199215863846);  // sqrt(3 / (4 pi))
  o[0] = rsh_point::y00<T>();
  o[1] = c1 * (y * inv);
  o[2] = c1 * (z * inv);
  o[3] = c1 * (x * inv);
}

#if RSH_HAVE_AVX
// The same as the SSE2 loops below with 8 (float) or 4 (double) points per step: each
// 128-bit lane holds the SSE2 layout of 4 (2) points, so the in-lane shuffles are the same.
// target("avx") only (no FMA): the products and sums round exactly as in the other paths.
__attribute__((target("avx"))) int64_t forward_l1_avx(const float* p, int64_t begin,
                                                      const int64_t end, float* o) {
  const __m256 c0 = _mm256_set1_ps(rsh_point::y00<float>());
  const __m256 c1 = _mm256_set1_ps(0.4886025119029199215863846f);
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  for (; begin + 8 <= end; begin += 8) {
    const float* q = p + 3 * begin;
    const __m256 v0 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(q)),
                                           _mm_loadu_ps(q + 12), 1);
    const __m256 v1 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(q + 4)),
                                           _mm_loadu_ps(q + 16), 1);
    const __m256 v2 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(q + 8)),
                                           _mm_loadu_ps(q + 20), 1);
    const __m256 a = _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 1, 3, 0));
    const __m256 b = _mm256_shuffle_ps(v1, v2, _MM_SHUFFLE(2, 1, 3, 0));
    const __m256 c = _mm256_shuffle_ps(v0, v2, _MM_SHUFFLE(3, 0, 2, 1));
    const __m256 d = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 3, 2));
    const __m256 x = _mm256_shuffle_ps(a, d, _MM_SHUFFLE(3, 1, 1, 0));
    const __m256 f = _mm256_shuffle_ps(c, b, _MM_SHUFFLE(0, 0, 0, 0));
    const __m256 y = _mm256_shuffle_ps(f, b, _MM_SHUFFLE(3, 1, 2, 0));
    const __m256 g = _mm256_shuffle_ps(c, a, _MM_SHUFFLE(2, 2, 1, 1));
    const __m256 z = _mm256_shuffle_ps(g, c, _MM_SHUFFLE(3, 2, 2, 0));
    const __m256 r = _mm256_sqrt_ps(_mm256_add_ps(
        _mm256_add_ps(_mm256_mul_ps(x, x), _mm256_mul_ps(y, y)), _mm256_mul_ps(z, z)));
    const __m256 inv =
        _mm256_and_ps(_mm256_cmp_ps(r, zero, _CMP_NEQ_UQ), _mm256_div_ps(one, r));
    const __m256 e1 = _mm256_mul_ps(c1, _mm256_mul_ps(y, inv));
    const __m256 e2 = _mm256_mul_ps(c1, _mm256_mul_ps(z, inv));
    const __m256 e3 = _mm256_mul_ps(c1, _mm256_mul_ps(x, inv));
    // In-lane 4x4 transpose: row k holds point k (low lane) and point k + 4 (high lane).
    const __m256 t0 = _mm256_unpacklo_ps(c0, e1), t1 = _mm256_unpacklo_ps(e2, e3);
    const __m256 t2 = _mm256_unpackhi_ps(c0, e1), t3 = _mm256_unpackhi_ps(e2, e3);
    const __m256 r0 = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 r1 = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 r2 = _mm256_shuffle_ps(t2, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 r3 = _mm256_shuffle_ps(t2, t3, _MM_SHUFFLE(3, 2, 3, 2));
    float* w = o + 4 * begin;
    _mm256_storeu_ps(w, _mm256_permute2f128_ps(r0, r1, 0x20));
    _mm256_storeu_ps(w + 8, _mm256_permute2f128_ps(r2, r3, 0x20));
    _mm256_storeu_ps(w + 16, _mm256_permute2f128_ps(r0, r1, 0x31));
    _mm256_storeu_ps(w + 24, _mm256_permute2f128_ps(r2, r3, 0x31));
  }
  return begin;
}

__attribute__((target("avx"))) int64_t forward_l1_avx(const double* p, int64_t begin,
                                                      const int64_t end, double* o) {
  const __m256d c0 = _mm256_set1_pd(rsh_point::y00<double>());
  const __m256d c1 = _mm256_set1_pd(0.4886025119029199215863846);
  const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0);
  for (; begin + 4 <= end; begin += 4) {
    const double* q = p + 3 * begin;
    const __m256d v0 = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(q)),
                                            _mm_loadu_pd(q + 6), 1);
    const __m256d v1 = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(q + 2)),
                                            _mm_loadu_pd(q + 8), 1);
    const __m256d v2 = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(q + 4)),
                                            _mm_loadu_pd(q + 10), 1);
    const __m256d x = _mm256_shuffle_pd(v0, v1, 10), y = _mm256_shuffle_pd(v0, v2, 5);
    const __m256d z = _mm256_shuffle_pd(v1, v2, 10);
    const __m256d r = _mm256_sqrt_pd(_mm256_add_pd(
        _mm256_add_pd(_mm256_mul_pd(x, x), _mm256_mul_pd(y, y)), _mm256_mul_pd(z, z)));
    const __m256d inv =
        _mm256_and_pd(_mm256_cmp_pd(r, zero, _CMP_NEQ_UQ), _mm256_div_pd(one, r));
    const __m256d ey = _mm256_mul_pd(c1, _mm256_mul_pd(y, inv));
    const __m256d ez = _mm256_mul_pd(c1, _mm256_mul_pd(z, inv));
    const __m256d ex = _mm256_mul_pd(c1, _mm256_mul_pd(x, inv));
    const __m256d a = _mm256_unpacklo_pd(c0, ey), b = _mm256_unpacklo_pd(ez, ex);
    const __m256d c = _mm256_unpackhi_pd(c0, ey), d = _mm256_unpackhi_pd(ez, ex);
    double* w = o + 4 * begin;
    _mm256_storeu_pd(w, _mm256_permute2f128_pd(a, b, 0x20));
    _mm256_storeu_pd(w + 4, _mm256_permute2f128_pd(c, d, 0x20));
    _mm256_storeu_pd(w + 8, _mm256_permute2f128_pd(a, b, 0x31));
    _mm256_storeu_pd(w + 12, _mm256_permute2f128_pd(c, d, 0x31));
  }
  return begin;
}

// RSH_DISABLE_AVX=1 forces the SSE2 path (the tests run both).
bool use_avx() {
  static const bool use = __builtin_cpu_supports("avx") && std::getenv("RSH_DISABLE_AVX") == nullptr;
  return use;
}
#endif

template <typename T>
void forward_l1(const T* p, int64_t begin, const int64_t end, T* o) {
#if RSH_HAVE_AVX
  if (use_avx()) begin = forward_l1_avx(p, begin, end, o);
#endif
#if defined(__SSE2__)
  if constexpr (std::is_same_v<T, float>) {
    const __m128 c0 = _mm_set1_ps(rsh_point::y00<float>());
    const __m128 c1 = _mm_set1_ps(0.4886025119029199215863846f);
    const __m128 zero = _mm_setzero_ps(), one = _mm_set1_ps(1.0f);
    for (; begin + 4 <= end; begin += 4) {
      const float* q = p + 3 * begin;
      const __m128 v0 = _mm_loadu_ps(q), v1 = _mm_loadu_ps(q + 4), v2 = _mm_loadu_ps(q + 8);
      // v0 = x0 y0 z0 x1 | v1 = y1 z1 x2 y2 | v2 = z2 x3 y3 z3
      const __m128 a = _mm_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 1, 3, 0));  // x0 x1 z1 x2
      const __m128 b = _mm_shuffle_ps(v1, v2, _MM_SHUFFLE(2, 1, 3, 0));  // y1 y2 x3 y3
      const __m128 c = _mm_shuffle_ps(v0, v2, _MM_SHUFFLE(3, 0, 2, 1));  // y0 z0 z2 z3
      const __m128 d = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 3, 2));    // z1 x2 y1 x3
      const __m128 x = _mm_shuffle_ps(a, d, _MM_SHUFFLE(3, 1, 1, 0));
      const __m128 f = _mm_shuffle_ps(c, b, _MM_SHUFFLE(0, 0, 0, 0));    // y0 y0 y1 y1
      const __m128 y = _mm_shuffle_ps(f, b, _MM_SHUFFLE(3, 1, 2, 0));
      const __m128 g = _mm_shuffle_ps(c, a, _MM_SHUFFLE(2, 2, 1, 1));    // z0 z0 z1 z1
      const __m128 z = _mm_shuffle_ps(g, c, _MM_SHUFFLE(3, 2, 2, 0));
      const __m128 r = _mm_sqrt_ps(
          _mm_add_ps(_mm_add_ps(_mm_mul_ps(x, x), _mm_mul_ps(y, y)), _mm_mul_ps(z, z)));
      const __m128 inv = _mm_and_ps(_mm_cmpneq_ps(r, zero), _mm_div_ps(one, r));
      __m128 row0 = c0, row1 = _mm_mul_ps(c1, _mm_mul_ps(y, inv));
      __m128 row2 = _mm_mul_ps(c1, _mm_mul_ps(z, inv)), row3 = _mm_mul_ps(c1, _mm_mul_ps(x, inv));
      _MM_TRANSPOSE4_PS(row0, row1, row2, row3);
      float* w = o + 4 * begin;
      _mm_storeu_ps(w, row0);
      _mm_storeu_ps(w + 4, row1);
      _mm_storeu_ps(w + 8, row2);
      _mm_storeu_ps(w + 12, row3);
    }
  } else {
    const __m128d c0 = _mm_set1_pd(rsh_point::y00<double>());
    const __m128d c1 = _mm_set1_pd(0.4886025119029199215863846);
    const __m128d zero = _mm_setzero_pd(), one = _mm_set1_pd(1.0);
    for (; begin + 2 <= end; begin += 2) {
      const double* q = p + 3 * begin;
      const __m128d v0 = _mm_loadu_pd(q), v1 = _mm_loadu_pd(q + 2), v2 = _mm_loadu_pd(q + 4);
      // v0 = x0 y0 | v1 = z0 x1 | v2 = y1 z1
      const __m128d x = _mm_shuffle_pd(v0, v1, 2), y = _mm_shuffle_pd(v0, v2, 1);
      const __m128d z = _mm_shuffle_pd(v1, v2, 2);
      const __m128d r = _mm_sqrt_pd(
          _mm_add_pd(_mm_add_pd(_mm_mul_pd(x, x), _mm_mul_pd(y, y)), _mm_mul_pd(z, z)));
      const __m128d inv = _mm_and_pd(_mm_cmpneq_pd(r, zero), _mm_div_pd(one, r));
      const __m128d ey = _mm_mul_pd(c1, _mm_mul_pd(y, inv));
      const __m128d ez = _mm_mul_pd(c1, _mm_mul_pd(z, inv));
      const __m128d ex = _mm_mul_pd(c1, _mm_mul_pd(x, inv));
      double* w = o + 4 * begin;
      _mm_storeu_pd(w, _mm_unpacklo_pd(c0, ey));
      _mm_storeu_pd(w + 2, _mm_unpacklo_pd(ez, ex));
      _mm_storeu_pd(w + 4, _mm_unpackhi_pd(c0, ey));
      _mm_storeu_pd(w + 6, _mm_unpackhi_pd(ez, ex));
    }
  }
#endif
  for (; begin < end; ++begin) forward_l1_point<T>(p + 3 * begin, o + 4 * begin);
}

template <typename T>
void forward_dispatch(const T* p, int64_t begin, int64_t end, int lm, T* o) {
  switch (lm) {
#define RSH_CASE(L)                                \
  case L:                                          \
    forward_range<T, L>(p, begin, end, lm, o); \
    return;
    RSH_CASE(0)
    case 1:
      forward_l1<T>(p, begin, end, o);
      return;
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
