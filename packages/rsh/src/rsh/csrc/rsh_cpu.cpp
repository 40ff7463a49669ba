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

#include "rsh_check.h"
#include "rsh_point.h"

namespace {

using rsh_check::check_input;

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
    T n_special = T(0);
#pragma omp simd reduction(+ : n_special)
    for (int64_t i = 0; i < nb; ++i) {
      const T x = kSoA ? ux[i] : pb[3 * i];
      const T y = kSoA ? uy[i] : pb[3 * i + 1];
      const T z = kSoA ? uz[i] : pb[3 * i + 2];
      const T r2 = x * x + y * y + z * z;
      const T q = T(1) / std::sqrt(r2);
      // Rows outside the plain range (origin, NaN/inf, r2 under/overflow) are redone below.
      const bool plain = rsh_point::plain_range<T>(r2);
      const T inv = plain ? q : T(0);
      n_special += plain ? T(0) : T(1);
      ux[i] = x * inv;
      uy[i] = y * inv;
      uz[i] = z * inv;
    }
    for (int64_t i = 0; i < nb; ++i) {
      rsh_generated::solid<T, false>(ux[i], uy[i], uz[i], lm, ob + K * i);
    }
    if (n_special != T(0)) {  // rare: origin, NaN/inf, or a scaled norm is needed
      for (int64_t i = 0; i < nb; ++i) {
        const T* q = pb + 3 * i;
        if (!rsh_point::plain_range<T>(q[0] * q[0] + q[1] * q[1] + q[2] * q[2])) {
          rsh_point::forward<T>(q, lm, true, ob + K * i);
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
// The SIMD loops compute the plain normalisation and mark lanes whose r2 is outside the
// plain range (origin, NaN/inf, under/overflow); those points are redone with this.
template <typename T>
inline void forward_l1_point(const T* p, T* o) {
  rsh_point::forward<T>(p, 1, true, o);
}

template <typename T>
inline void redo_l1_lanes(const T* p, int64_t first, int lanes, int plain_mask, T* o) {
  for (int k = 0; k < lanes; ++k) {
    if (!((plain_mask >> k) & 1)) forward_l1_point<T>(p + 3 * (first + k), o + 4 * (first + k));
  }
}

#if RSH_HAVE_AVX
// The same as the SSE2 loops below with 8 (float) or 4 (double) points per step: each
// 128-bit lane holds the SSE2 layout of 4 (2) points, so the in-lane shuffles are the same.
// target("avx") only (no FMA): the products and sums round exactly as in the other paths.
__attribute__((target("avx"))) int64_t forward_l1_avx(const float* p, int64_t begin,
                                                      const int64_t end, float* o) {
  const __m256 c0 = _mm256_set1_ps(rsh_point::y00<float>());
  const __m256 c1 = _mm256_set1_ps(0.4886025119029199215863846f);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 lo = _mm256_set1_ps(rsh_point::r2_lo<float>());
  const __m256 hi = _mm256_set1_ps(rsh_point::r2_hi<float>());
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
    const __m256 rr = _mm256_add_ps(
        _mm256_add_ps(_mm256_mul_ps(x, x), _mm256_mul_ps(y, y)), _mm256_mul_ps(z, z));
    const __m256 r = _mm256_sqrt_ps(rr);
    const __m256 plain = _mm256_and_ps(_mm256_cmp_ps(rr, lo, _CMP_GE_OQ),
                                       _mm256_cmp_ps(rr, hi, _CMP_LE_OQ));
    const __m256 inv = _mm256_and_ps(plain, _mm256_div_ps(one, r));
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
    const int mask = _mm256_movemask_ps(plain);
    if (mask != 0xff) {
      // Bit k of the mask is point begin + k (low lane: points 0-3, high lane: 4-7).
      redo_l1_lanes<float>(p, begin, 8, mask, o);
    }
  }
  return begin;
}

__attribute__((target("avx"))) int64_t forward_l1_avx(const double* p, int64_t begin,
                                                      const int64_t end, double* o) {
  const __m256d c0 = _mm256_set1_pd(rsh_point::y00<double>());
  const __m256d c1 = _mm256_set1_pd(0.4886025119029199215863846);
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256d lo = _mm256_set1_pd(rsh_point::r2_lo<double>());
  const __m256d hi = _mm256_set1_pd(rsh_point::r2_hi<double>());
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
    const __m256d rr = _mm256_add_pd(
        _mm256_add_pd(_mm256_mul_pd(x, x), _mm256_mul_pd(y, y)), _mm256_mul_pd(z, z));
    const __m256d r = _mm256_sqrt_pd(rr);
    const __m256d plain = _mm256_and_pd(_mm256_cmp_pd(rr, lo, _CMP_GE_OQ),
                                        _mm256_cmp_pd(rr, hi, _CMP_LE_OQ));
    const __m256d inv = _mm256_and_pd(plain, _mm256_div_pd(one, r));
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
    const int mask = _mm256_movemask_pd(plain);
    if (mask != 0xf) redo_l1_lanes<double>(p, begin, 4, mask, o);
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
    const __m128 one = _mm_set1_ps(1.0f);
    const __m128 lo = _mm_set1_ps(rsh_point::r2_lo<float>());
    const __m128 hi = _mm_set1_ps(rsh_point::r2_hi<float>());
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
      const __m128 rr =
          _mm_add_ps(_mm_add_ps(_mm_mul_ps(x, x), _mm_mul_ps(y, y)), _mm_mul_ps(z, z));
      const __m128 r = _mm_sqrt_ps(rr);
      const __m128 plain = _mm_and_ps(_mm_cmpge_ps(rr, lo), _mm_cmple_ps(rr, hi));
      const __m128 inv = _mm_and_ps(plain, _mm_div_ps(one, r));
      __m128 row0 = c0, row1 = _mm_mul_ps(c1, _mm_mul_ps(y, inv));
      __m128 row2 = _mm_mul_ps(c1, _mm_mul_ps(z, inv)), row3 = _mm_mul_ps(c1, _mm_mul_ps(x, inv));
      _MM_TRANSPOSE4_PS(row0, row1, row2, row3);
      float* w = o + 4 * begin;
      _mm_storeu_ps(w, row0);
      _mm_storeu_ps(w + 4, row1);
      _mm_storeu_ps(w + 8, row2);
      _mm_storeu_ps(w + 12, row3);
      const int mask = _mm_movemask_ps(plain);
      if (mask != 0xf) redo_l1_lanes<float>(p, begin, 4, mask, o);
    }
  } else {
    const __m128d c0 = _mm_set1_pd(rsh_point::y00<double>());
    const __m128d c1 = _mm_set1_pd(0.4886025119029199215863846);
    const __m128d one = _mm_set1_pd(1.0);
    const __m128d lo = _mm_set1_pd(rsh_point::r2_lo<double>());
    const __m128d hi = _mm_set1_pd(rsh_point::r2_hi<double>());
    for (; begin + 2 <= end; begin += 2) {
      const double* q = p + 3 * begin;
      const __m128d v0 = _mm_loadu_pd(q), v1 = _mm_loadu_pd(q + 2), v2 = _mm_loadu_pd(q + 4);
      // v0 = x0 y0 | v1 = z0 x1 | v2 = y1 z1
      const __m128d x = _mm_shuffle_pd(v0, v1, 2), y = _mm_shuffle_pd(v0, v2, 1);
      const __m128d z = _mm_shuffle_pd(v1, v2, 2);
      const __m128d rr =
          _mm_add_pd(_mm_add_pd(_mm_mul_pd(x, x), _mm_mul_pd(y, y)), _mm_mul_pd(z, z));
      const __m128d r = _mm_sqrt_pd(rr);
      const __m128d plain = _mm_and_pd(_mm_cmpge_pd(rr, lo), _mm_cmple_pd(rr, hi));
      const __m128d inv = _mm_and_pd(plain, _mm_div_pd(one, r));
      const __m128d ey = _mm_mul_pd(c1, _mm_mul_pd(y, inv));
      const __m128d ez = _mm_mul_pd(c1, _mm_mul_pd(z, inv));
      const __m128d ex = _mm_mul_pd(c1, _mm_mul_pd(x, inv));
      double* w = o + 4 * begin;
      _mm_storeu_pd(w, _mm_unpacklo_pd(c0, ey));
      _mm_storeu_pd(w + 2, _mm_unpacklo_pd(ez, ex));
      _mm_storeu_pd(w + 4, _mm_unpackhi_pd(c0, ey));
      _mm_storeu_pd(w + 6, _mm_unpackhi_pd(ez, ex));
      const int mask = _mm_movemask_pd(plain);
      if (mask != 0x3) redo_l1_lanes<double>(p, begin, 2, mask, o);
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

template <typename T, int LM>
void vjp_range(const T* p, const T* g, int64_t begin, int64_t end, int lm, bool normalize,
               T* o) {
  const int64_t K = (lm + 1) * (lm + 1);
  for (int64_t i = begin; i < end; ++i) {
    rsh_point::vjp<T, LM>(p + 3 * i, g + K * i, lm, normalize, o + 3 * i);
  }
}

// Local arrays sized for the smallest bound >= l_max (rsh_point::vjp_bound).
template <typename T>
void vjp_dispatch(const T* p, const T* g, int64_t begin, int64_t end, int lm, bool normalize,
                  T* o) {
  switch (rsh_point::vjp_bound(lm)) {
    case 2:
      return vjp_range<T, 2>(p, g, begin, end, lm, normalize, o);
    case 4:
      return vjp_range<T, 4>(p, g, begin, end, lm, normalize, o);
    case 8:
      return vjp_range<T, 8>(p, g, begin, end, lm, normalize, o);
    default:
      return vjp_range<T, RSH_L_MAX>(p, g, begin, end, lm, normalize, o);
  }
}

at::Tensor sh_vjp_cpu(const at::Tensor& xyz_in, const at::Tensor& grad_in, int64_t l_max,
                      bool normalize) {
  check_input(xyz_in, l_max);
  const int64_t n = xyz_in.size(0), K = (l_max + 1) * (l_max + 1);
  TORCH_CHECK(grad_in.dim() == 2 && grad_in.size(0) == n && grad_in.size(1) == K,
              "rsh: grad must have shape [N, (l_max+1)^2], got ", grad_in.sizes());
  TORCH_CHECK(grad_in.scalar_type() == xyz_in.scalar_type(), "rsh: grad must have the dtype of xyz (",
              xyz_in.scalar_type(), "), got ", grad_in.scalar_type());
  TORCH_CHECK(xyz_in.device().is_cpu() && grad_in.device().is_cpu(),
              "rsh: sh_vjp (CPU) needs xyz and grad on the CPU, got xyz on ", xyz_in.device(),
              " and grad on ", grad_in.device());
  const auto xyz = xyz_in.contiguous();
  const auto grad = grad_in.contiguous();
  auto gx = at::empty({n, 3}, xyz.options());
  AT_DISPATCH_FLOATING_TYPES(xyz.scalar_type(), "rsh_sh_vjp_cpu", [&] {
    const scalar_t* p = xyz.data_ptr<scalar_t>();
    const scalar_t* g = grad.data_ptr<scalar_t>();
    scalar_t* o = gx.data_ptr<scalar_t>();
    const int lm = static_cast<int>(l_max);
    at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
      vjp_dispatch<scalar_t>(p, g, begin, end, lm, normalize, o);
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
