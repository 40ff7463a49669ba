// Argument checks of the rsh ops, shared by the C++ and CUDA launchers (host code only).
#pragma once

#include <torch/extension.h>

#include "_generated_rsh.h"

namespace rsh_check {

// xyz [N, 3] float32/float64 and 0 <= l_max <= RSH_L_MAX; the messages name the argument.
inline void check_input(const at::Tensor& xyz, int64_t l_max) {
  TORCH_CHECK(xyz.dim() == 2 && xyz.size(1) == 3, "rsh: xyz must have shape [N, 3], got ",
              xyz.sizes());
  TORCH_CHECK(xyz.scalar_type() == at::kFloat || xyz.scalar_type() == at::kDouble,
              "rsh: xyz must be float32 or float64, got ", xyz.scalar_type());
  TORCH_CHECK(l_max >= 0 && l_max <= RSH_L_MAX, "rsh: l_max must be in [0, ", RSH_L_MAX,
              "], got ", l_max);
}

}  // namespace rsh_check
