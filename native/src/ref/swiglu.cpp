// swiglu.cpp (ref): out = silu(gate) * up with silu(g) = g / (1 + exp(-g)), in double.
#include "ref/ref_ops.h"

#include <cmath>

namespace si::ref {

si_result swiglu(const si_swiglu_params& p) {
    for (int32_t r = 0; r < p.rows; ++r) {
        for (int32_t j = 0; j < p.n; ++j) {
            const double g = p.gate[r * p.gate_stride + j], u = p.up[r * p.up_stride + j];
            p.out[r * p.out_stride + j] = float(g / (1.0 + std::exp(-g)) * u);
        }
    }
    return SI_OK;
}

}  // namespace si::ref
