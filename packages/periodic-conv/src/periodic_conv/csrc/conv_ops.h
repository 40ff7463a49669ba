// Shared declarations of the periodic_conv operators (schemas in conv_cpu.cpp).
#pragma once
#include <torch/extension.h>

#include <tuple>

namespace periodic_conv {

// Scratch numbers per worker for the functions of conv_kernel.h.
inline long scratch_size(long max_deg, long max_mul) { return 4 * (2 * max_deg + 1) + 4 * max_mul; }

}  // namespace periodic_conv
