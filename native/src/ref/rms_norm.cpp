// rms_norm.cpp (ref): out = x / sqrt(mean(x^2) + eps) * weight, reduced in double.
#include "ref/ref_ops.h"

#include <cmath>

namespace si::ref {

si_result rms_norm(const si_rms_norm_params& p) {
    for (int32_t r = 0; r < p.rows; ++r) {
        const float* x = p.x + r * p.x_stride;
        float* out = p.out + r * p.out_stride;
        double sum_sq = 0.0;
        for (int32_t d = 0; d < p.dim; ++d) sum_sq += double(x[d]) * double(x[d]);
        const double inv_rms = 1.0 / std::sqrt(sum_sq / p.dim + double(p.eps));
        // Reading x[d] before writing out[d] keeps the in-place (out == x) case correct.
        for (int32_t d = 0; d < p.dim; ++d) out[d] = float(double(x[d]) * inv_rms * double(p.weight[d]));
    }
    return SI_OK;
}

}  // namespace si::ref
