// The periodic_conv convolution operators, declared once: schemas, the C++ signatures (as
// the templates conv_fwd / conv_bwd), the input checks and the table maxima. A launcher
// (conv_cpu.cpp: OpenMP, conv_cuda.cu: grid-stride) only provides
//   struct XLauncher {
//     static constexpr c10::DeviceType kDevice = ...;
//     static at::Tensor fwd(const ConvArgs&, int64_t dim_out, bool deterministic);
//     static std::tuple<at::Tensor, at::Tensor, at::Tensor> bwd(const ConvArgs&,
//         const at::Tensor& G, bool need_F, bool need_Y, bool need_R);
//   };
// and registers conv_fwd<XLauncher> / conv_bwd<XLauncher> for its dispatch key.
#pragma once
#include <torch/extension.h>

#include <algorithm>
#include <tuple>

#include "conv_kernel.h"

namespace periodic_conv {

// The schemas (registered by conv_cpu.cpp). max_deg, max_mul, max_lo, max_li are the maxima
// over the path table (PathTable.maxima in Python): passed as ints so no launcher has to read
// the paths tensor on the host (on CUDA that would be a device sync per call).
constexpr const char* kConvFwdSchema =
    "conv_fwd(Tensor F, Tensor Y, Tensor R, Tensor src, Tensor dst, Tensor scale, "
    "Tensor row_ptr, Tensor src_perm, Tensor src_ptr, Tensor paths, Tensor kptr, Tensor cflat, "
    "Tensor in_off, Tensor out_off, int dim_out, int max_deg, int max_mul, int max_lo, "
    "int max_li, bool deterministic) -> Tensor";
constexpr const char* kConvBwdSchema =
    "conv_bwd(Tensor G, Tensor F, Tensor Y, Tensor R, Tensor src, Tensor dst, Tensor scale, "
    "Tensor row_ptr, Tensor src_perm, Tensor src_ptr, Tensor paths, Tensor kptr, Tensor cflat, "
    "Tensor in_off, Tensor out_off, int max_deg, int max_mul, int max_lo, int max_li, "
    "bool need_F, bool need_Y, bool need_R) -> (Tensor, Tensor, Tensor)";

// Maxima over the path table: degrees (any of l_out, l_in, l), multiplicities (u, v), and
// the largest output / input degree.
struct Dims {
  long max_deg = 0, max_mul = 1, max_lo = 0, max_li = 0;
};

// Scratch numbers per worker for the functions of conv_kernel.h: 4 vectors of length
// 2 max_deg + 1 (coupled rows/columns) and 4 of length max_mul.
inline long scratch_size(const Dims& d) { return 4 * (2 * d.max_deg + 1) + 4 * d.max_mul; }

// Everything both operators read, in the order of the schemas.
struct ConvArgs {
  const at::Tensor &F, &Y, &R, &src, &dst, &scale, &row_ptr, &src_perm, &src_ptr, &paths,
      &kptr, &cflat, &in_off, &out_off;
  Dims dims;
};

inline void check_tensor(const char* op, const at::Tensor& t, const char* name,
                         const at::Tensor& like, at::ScalarType dtype, long ndim) {
  TORCH_CHECK(t.device() == like.device(), op, ": ", name, " must be on ", like.device(),
              " (the device of F), got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, op, ": ", name, " must have dtype ", dtype, ", got ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == ndim, op, ": ", name, " must have ", ndim, " dimensions, got shape ",
              t.sizes());
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

inline void check_size(const char* op, const at::Tensor& t, const char* name, long dim,
                       long expected, const char* what) {
  TORCH_CHECK(t.size(dim) == expected, op, ": ", name, ".size(", dim, ") must be ", expected,
              " (", what, "), got shape ", t.sizes());
}

// Every input checked by name: device (that of the launcher, and the same as F), dtype,
// rank, contiguity and the sizes that tie the tensors together.
inline void check_args(const char* op, c10::DeviceType device, const ConvArgs& a,
                       const at::Tensor* G, int64_t dim_out) {
  TORCH_CHECK(a.F.device().type() == device, op, ": F must be a ", device, " tensor, got ",
              a.F.device());
  const auto ft = a.F.scalar_type();
  TORCH_CHECK(ft == at::kFloat || ft == at::kDouble, op, ": F must be float32 or float64, got ",
              ft);
  const auto L = at::kLong;
  check_tensor(op, a.F, "F", a.F, ft, 2);
  check_tensor(op, a.Y, "Y", a.F, ft, 2);
  check_tensor(op, a.R, "R", a.F, ft, 2);
  check_tensor(op, a.src, "src", a.F, L, 1);
  check_tensor(op, a.dst, "dst", a.F, L, 1);
  check_tensor(op, a.scale, "scale", a.F, ft, 2);
  check_tensor(op, a.row_ptr, "row_ptr", a.F, L, 1);
  check_tensor(op, a.src_perm, "src_perm", a.F, L, 1);
  check_tensor(op, a.src_ptr, "src_ptr", a.F, L, 1);
  check_tensor(op, a.paths, "paths", a.F, L, 2);
  check_tensor(op, a.kptr, "kptr", a.F, L, 1);
  check_tensor(op, a.cflat, "cflat", a.F, ft, 1);
  check_tensor(op, a.in_off, "in_off", a.F, L, 1);
  check_tensor(op, a.out_off, "out_off", a.F, L, 1);
  const long N = a.F.size(0), E = a.R.size(0), n_out = a.out_off.size(0);
  check_size(op, a.Y, "Y", 0, E, "E, the rows of R");
  check_size(op, a.src, "src", 0, E, "E");
  check_size(op, a.dst, "dst", 0, E, "E");
  check_size(op, a.scale, "scale", 0, E, "E");
  check_size(op, a.scale, "scale", 1, n_out, "output blocks");
  check_size(op, a.row_ptr, "row_ptr", 0, N + 1, "N + 1");
  check_size(op, a.src_perm, "src_perm", 0, E, "E");
  check_size(op, a.src_ptr, "src_ptr", 0, N + 1, "N + 1");
  check_size(op, a.paths, "paths", 1, kPathCols, "path columns");
  check_size(op, a.kptr, "kptr", 0, n_out + 1, "output blocks + 1");
  if (G != nullptr) {
    check_tensor(op, *G, "G", a.F, ft, 2);
    check_size(op, *G, "G", 0, N, "N, the rows of F");
  } else {
    TORCH_CHECK(dim_out >= 0, op, ": dim_out must be >= 0, got ", dim_out);
  }
  const Dims& d = a.dims;
  TORCH_CHECK(d.max_deg >= 0 && d.max_mul >= 1 && d.max_lo >= 0 && d.max_li >= 0 &&
                  d.max_lo <= d.max_deg && d.max_li <= d.max_deg,
              op, ": table maxima (max_deg=", d.max_deg, ", max_mul=", d.max_mul,
              ", max_lo=", d.max_lo, ", max_li=", d.max_li, ") are inconsistent");
}

// The path table checked on the host against the maxima and the tensors it indexes (CPU
// launcher only: on CUDA reading `paths` would be a device sync per call; there the table
// comes from PathTable, whose maxima are passed in).
inline void check_table_host(const char* op, const ConvArgs& a) {
  Dims d;
  const long* q = a.paths.data_ptr<long>();
  const long nY = a.Y.size(1), W = a.R.size(1), C = a.cflat.size(0);
  const long n_in = a.in_off.size(0), n_out = a.out_off.size(0);
  for (long r = 0; r < a.paths.size(0); ++r) {
    const PathInfo p = load_path(q, r);
    TORCH_CHECK(p.k >= 0 && p.k < n_out && p.i >= 0 && p.i < n_in, op, ": paths row ", r,
                " names block k=", p.k, ", i=", p.i, " outside out_off [", n_out,
                "] / in_off [", n_in, "]");
    TORCH_CHECK((p.l + 1) * (p.l + 1) <= nY, op, ": paths row ", r, " has filter degree l=",
                p.l, " but Y has ", nY, " columns (needs (l + 1)^2)");
    TORCH_CHECK(p.r_off >= 0 && p.r_off + p.u * p.v <= W, op, ": paths row ", r,
                " reads R columns beyond R.size(1)=", W);
    TORCH_CHECK(p.c_off >= 0 && p.c_off + (2 * p.lo + 1) * (2 * p.li + 1) * (2 * p.l + 1) <= C,
                op, ": paths row ", r, " reads cflat beyond its ", C, " numbers");
    d.max_deg = std::max({d.max_deg, p.lo, p.li, p.l});
    d.max_mul = std::max({d.max_mul, p.u, p.v});
    d.max_lo = std::max(d.max_lo, p.lo);
    d.max_li = std::max(d.max_li, p.li);
  }
  TORCH_CHECK(d.max_deg == a.dims.max_deg && d.max_mul == a.dims.max_mul &&
                  d.max_lo == a.dims.max_lo && d.max_li == a.dims.max_li,
              op, ": max_deg, max_mul, max_lo, max_li = ", a.dims.max_deg, ", ", a.dims.max_mul,
              ", ", a.dims.max_lo, ", ", a.dims.max_li, " do not match the paths (", d.max_deg,
              ", ", d.max_mul, ", ", d.max_lo, ", ", d.max_li, ")");
}

template <class Launcher>
at::Tensor conv_fwd(const at::Tensor& F, const at::Tensor& Y, const at::Tensor& R,
                    const at::Tensor& src, const at::Tensor& dst, const at::Tensor& scale,
                    const at::Tensor& row_ptr, const at::Tensor& src_perm,
                    const at::Tensor& src_ptr, const at::Tensor& paths, const at::Tensor& kptr,
                    const at::Tensor& cflat, const at::Tensor& in_off, const at::Tensor& out_off,
                    int64_t dim_out, int64_t max_deg, int64_t max_mul, int64_t max_lo,
                    int64_t max_li, bool deterministic) {
  const ConvArgs a{F,     Y,    R,     src,    dst,     scale, row_ptr, src_perm, src_ptr,
                   paths, kptr, cflat, in_off, out_off, Dims{max_deg, max_mul, max_lo, max_li}};
  check_args("periodic_conv::conv_fwd", Launcher::kDevice, a, nullptr, dim_out);
  return Launcher::fwd(a, dim_out, deterministic);
}

template <class Launcher>
std::tuple<at::Tensor, at::Tensor, at::Tensor> conv_bwd(
    const at::Tensor& G, const at::Tensor& F, const at::Tensor& Y, const at::Tensor& R,
    const at::Tensor& src, const at::Tensor& dst, const at::Tensor& scale,
    const at::Tensor& row_ptr, const at::Tensor& src_perm, const at::Tensor& src_ptr,
    const at::Tensor& paths, const at::Tensor& kptr, const at::Tensor& cflat,
    const at::Tensor& in_off, const at::Tensor& out_off, int64_t max_deg, int64_t max_mul,
    int64_t max_lo, int64_t max_li, bool need_F, bool need_Y, bool need_R) {
  const ConvArgs a{F,     Y,    R,     src,    dst,     scale, row_ptr, src_perm, src_ptr,
                   paths, kptr, cflat, in_off, out_off, Dims{max_deg, max_mul, max_lo, max_li}};
  check_args("periodic_conv::conv_bwd", Launcher::kDevice, a, &G, 0);
  return Launcher::bwd(a, G, need_F, need_Y, need_R);
}

}  // namespace periodic_conv
