// Neighbour lists grouped by center atom: a stable counting sort in one histogram pass and one
// scatter pass (vesin's order is kept within each center) that also computes edge vectors and
// lengths. It replaces an argsort and five gathers in numpy, whose fixed costs were most of
// neighbor_list's time on top of vesin. group_by_center takes vesin's output from Python;
// vesin_grouped (built when vesin's C header is available) calls vesin's C API itself, so a
// neighbour list is one call.
#include <torch/extension.h>

#ifdef PERIODIC_CONV_WITH_VESIN
#include <vesin.h>  // vesin's public C API, from the installed vesin package
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

namespace periodic_conv {
namespace {

void check_input(const at::Tensor& t, at::ScalarType dtype, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must have dtype ", dtype, ", got ",
              t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// One pass over the edges: edge e goes to row cursor[center]++ (stable). The __restrict__
// pointers let the compiler keep positions and cell in registers across the stores.
template <bool kVec>
void scatter(int64_t E, const int64_t* __restrict__ p, const int32_t* __restrict__ s,
             const double* __restrict__ x, const double* __restrict__ cm,
             int64_t* __restrict__ cursor, int64_t* __restrict__ nb, int64_t* __restrict__ sh,
             double* __restrict__ vo, double* __restrict__ lo) {
  for (int64_t e = 0; e < E; ++e) {
    const int64_t a = p[2 * e], b = p[2 * e + 1];
    const int64_t k = cursor[a]++;
    const int32_t s0 = s[3 * e], s1 = s[3 * e + 1], s2 = s[3 * e + 2];
    nb[k] = b;
    sh[3 * k] = s0;
    sh[3 * k + 1] = s1;
    sh[3 * k + 2] = s2;
    if constexpr (kVec) {
      const double* xa = x + 3 * a;
      const double* xb = x + 3 * b;
      const double d0 = static_cast<double>(s0), d1 = static_cast<double>(s1),
                   d2 = static_cast<double>(s2);
      const double vx = xb[0] - xa[0] + (d0 * cm[0] + d1 * cm[3] + d2 * cm[6]);
      const double vy = xb[1] - xa[1] + (d0 * cm[1] + d1 * cm[4] + d2 * cm[7]);
      const double vz = xb[2] - xa[2] + (d0 * cm[2] + d1 * cm[5] + d2 * cm[8]);
      vo[3 * k] = vx;
      vo[3 * k + 1] = vy;
      vo[3 * k + 2] = vz;
      lo[k] = std::sqrt(vx * vx + vy * vy + vz * vz);
    }
  }
}

using Graph8 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                          at::Tensor, at::Tensor>;

// The counting sort on raw pointers: p [E][2] (center, neighbour), s [E][3]; x [n][3] and the
// row-major cell cm (both only read when with_vec).
Graph8 group_impl(const int64_t* p, const int32_t* s, int64_t E, const double* x,
                  const double* cm, bool with_vec, int64_t n, bool self_interaction) {
  const int64_t Eo = E + (self_interaction ? n : 0);
  const auto lopt = at::TensorOptions().dtype(at::kLong);

  // histogram (with a bounds check: a wrong index would be a wrong graph)
  at::Tensor counts = at::zeros({n}, lopt);
  int64_t* cnt = counts.data_ptr<int64_t>();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t a = p[2 * e], b = p[2 * e + 1];
    TORCH_CHECK(a >= 0 && a < n && b >= 0 && b < n, "pair ", e, " = (", a, ", ", b,
                ") is out of range for ", n, " atoms");
    ++cnt[a];
  }
  if (self_interaction) {
    for (int64_t a = 0; a < n; ++a) ++cnt[a];
  }
  // exclusive prefix sum: the first row of each center; center itself is filled per segment
  std::vector<int64_t> cursor(static_cast<size_t>(n));
  at::Tensor center = at::empty({Eo}, lopt);
  int64_t* c = center.data_ptr<int64_t>();
  int64_t start = 0;
  for (int64_t a = 0; a < n; ++a) {
    cursor[a] = start;
    std::fill(c + start, c + start + cnt[a], a);
    start += cnt[a];
  }

  at::Tensor neighbor = at::empty({Eo}, lopt);
  at::Tensor shift = at::empty({Eo, 3}, lopt);
  const auto dopt = at::TensorOptions().dtype(at::kDouble);
  at::Tensor vec = at::empty({with_vec ? Eo : 0, 3}, dopt);
  at::Tensor len = at::empty({with_vec ? Eo : 0}, dopt);
  int64_t* nb = neighbor.data_ptr<int64_t>();
  int64_t* sh = shift.data_ptr<int64_t>();
  double* vo = vec.data_ptr<double>();
  double* lo = len.data_ptr<double>();
  if (with_vec) {
    scatter<true>(E, p, s, x, cm, cursor.data(), nb, sh, vo, lo);
  } else {
    scatter<false>(E, p, s, x, cm, cursor.data(), nb, sh, vo, lo);
  }
  if (self_interaction) {
    // (a, a, 0) is the last row of the group of a: the rows before it hold vesin's edges
    int64_t end = 0;
    for (int64_t a = 0; a < n; ++a) {
      end += cnt[a];
      const int64_t k = end - 1;
      nb[k] = a;
      sh[3 * k] = sh[3 * k + 1] = sh[3 * k + 2] = 0;
      if (with_vec) {
        vo[3 * k] = vo[3 * k + 1] = vo[3 * k + 2] = 0.0;
        lo[k] = 0.0;
      }
    }
  }
  // edge_batch and batch made here: cheaper than two more calls from Python
  return {center, neighbor, shift, vec, len, counts, at::zeros({Eo}, lopt), at::zeros({n}, lopt)};
}

// pairs [E, 2] int64 (center, neighbour) and shifts [E, 3] int32 from vesin; with positions
// [n, 3] and cell [3, 3] (float64) the edge vectors positions[b] - positions[a] + shift @ cell
// and their lengths are computed in the same pass (cheaper than having vesin store, convert
// and copy them, and the same expression as the differentiable torch path). With
// self_interaction the edge (a, a, 0) comes last among the edges of a. Returns center,
// neighbor, shift (int64), vectors, lengths (float64; [0, 3] and [0] without positions),
// counts [n], and edge_batch [E] and batch [n] (int64 zeros: one structure). Every output is a
// new tensor (the inputs may view vesin's buffers).
Graph8 group_by_center_cpu(const at::Tensor& pairs, const at::Tensor& shifts,
                    const std::optional<at::Tensor>& positions_opt,
                    const std::optional<at::Tensor>& cell_opt, int64_t n,
                    bool self_interaction) {
  check_input(pairs, at::kLong, "pairs");
  check_input(shifts, at::kInt, "shifts");
  TORCH_CHECK(pairs.dim() == 2 && pairs.size(1) == 2, "pairs must have shape [E, 2], got ",
              pairs.sizes());
  const int64_t E = pairs.size(0);
  TORCH_CHECK(shifts.dim() == 2 && shifts.size(0) == E && shifts.size(1) == 3,
              "shifts must have shape [", E, ", 3], got ", shifts.sizes());
  TORCH_CHECK(n >= 0, "n must be >= 0, got ", n);
  TORCH_CHECK(positions_opt.has_value() == cell_opt.has_value(),
              "positions and cell must be given together");
  const bool with_vec = positions_opt.has_value();
  double cm[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  const double* x = nullptr;
  if (with_vec) {
    check_input(*positions_opt, at::kDouble, "positions");
    check_input(*cell_opt, at::kDouble, "cell");
    TORCH_CHECK(positions_opt->dim() == 2 && positions_opt->size(0) == n &&
                    positions_opt->size(1) == 3,
                "positions must have shape [", n, ", 3], got ", positions_opt->sizes());
    TORCH_CHECK(cell_opt->dim() == 2 && cell_opt->size(0) == 3 && cell_opt->size(1) == 3,
                "cell must have shape [3, 3], got ", cell_opt->sizes());
    x = positions_opt->data_ptr<double>();
    std::copy(cell_opt->data_ptr<double>(), cell_opt->data_ptr<double>() + 9, cm);
  }
  const int64_t* p = pairs.data_ptr<int64_t>();
  const int32_t* s = shifts.data_ptr<int32_t>();
  return group_impl(p, s, E, x, cm, with_vec, n, self_interaction);
}

#ifdef PERIODIC_CONV_WITH_VESIN
using VesinNeighborsFn = int (*)(const double (*)[3], size_t, const double[3][3], const bool[3],
                                 VesinDevice, VesinOptions, VesinNeighborList*, const char**);
using VesinFreeFn = void (*)(VesinNeighborList*);

// The whole neighbour list in one call: vesin's C API (full list, shifts only), then the
// grouping above, without the Python wrapper's per-call work (option structs, pointer
// conversions, copies). vesin_neighbors / vesin_free are the addresses of the functions of the
// libvesin that Python's vesin loaded (no link-time dependency); their struct layouts come
// from the header of the same installation (its contents are part of the build's cache key).
Graph8 vesin_grouped_cpu(const at::Tensor& positions, const at::Tensor& cell,
                         std::array<bool, 3> pbc, double cutoff, bool self_interaction,
                         bool vectors, int64_t fn_neighbors, int64_t fn_free) {
  check_input(positions, at::kDouble, "positions");
  check_input(cell, at::kDouble, "cell");
  TORCH_CHECK(positions.dim() == 2 && positions.size(1) == 3,
              "positions must have shape [n, 3], got ", positions.sizes());
  TORCH_CHECK(cell.dim() == 2 && cell.size(0) == 3 && cell.size(1) == 3,
              "cell must have shape [3, 3], got ", cell.sizes());
  TORCH_CHECK(fn_neighbors != 0 && fn_free != 0, "vesin function addresses must be non-zero");
  static_assert(sizeof(size_t) == sizeof(int64_t), "vesin pairs are size_t");
  const int64_t n = positions.size(0);
  const double* x = positions.data_ptr<double>();
  const double* cm = cell.data_ptr<double>();

  VesinOptions opt{};
  opt.cutoff = cutoff;
  opt.full = true;
  opt.sorted = false;
  opt.algorithm = VesinAutoAlgorithm;
  opt.skin = 0.0;
  opt.n_threads = 0;  // as vesin.NeighborList's default
  opt.return_shifts = true;
  opt.return_distances = false;
  opt.return_vectors = false;
  const bool periodic[3] = {pbc[0], pbc[1], pbc[2]};
  VesinNeighborList nl;
  const char* error = nullptr;
  const auto neighbors = reinterpret_cast<VesinNeighborsFn>(fn_neighbors);
  const auto release = reinterpret_cast<VesinFreeFn>(fn_free);
  struct Release {  // vesin's buffers are freed on every path, errors included
    VesinNeighborList* nl;
    VesinFreeFn fn;
    ~Release() { fn(nl); }
  } guard{&nl, release};
  const int status = neighbors(reinterpret_cast<const double(*)[3]>(x), static_cast<size_t>(n),
                               reinterpret_cast<const double(*)[3]>(cm), periodic,
                               VesinDevice{VesinCPU, 0}, opt, &nl, &error);
  TORCH_CHECK(status == 0, "vesin_neighbors failed: ", error ? error : "(no message)");
  return group_impl(reinterpret_cast<const int64_t*>(nl.pairs),
                    reinterpret_cast<const int32_t*>(nl.shifts),
                    static_cast<int64_t>(nl.length), x, cm, vectors, n, self_interaction);
}
#endif

}  // namespace

TORCH_LIBRARY_FRAGMENT(periodic_conv, m) {
  m.def(
      "group_by_center(Tensor pairs, Tensor shifts, Tensor? positions, Tensor? cell, int n, "
      "bool self_interaction) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
#ifdef PERIODIC_CONV_WITH_VESIN
  m.def(
      "vesin_grouped(Tensor positions, Tensor cell, bool[3] pbc, float cutoff, "
      "bool self_interaction, bool vectors, int fn_neighbors, int fn_free) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
#endif
}

TORCH_LIBRARY_IMPL(periodic_conv, CPU, m) {
  m.impl("group_by_center", &group_by_center_cpu);
#ifdef PERIODIC_CONV_WITH_VESIN
  m.impl("vesin_grouped", &vesin_grouped_cpu);
#endif
}

}  // namespace periodic_conv
