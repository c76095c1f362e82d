// argmax.cpp (ref): index of the row maximum; ties go to the lowest index, NaN never wins,
// an all-NaN row gives 0.
#include "ref/ref_ops.h"

#include <cmath>

namespace si::ref {

si_result argmax(const si_argmax_params& p) {
    for (int32_t r = 0; r < p.rows; ++r) {
        const float* x = p.x + r * p.x_stride;
        int32_t best = -1;
        for (int32_t j = 0; j < p.n; ++j) {
            if (std::isnan(x[j])) continue;
            if (best < 0 || x[j] > x[best]) best = j;  // strict: an equal later value loses
        }
        p.out[r] = best < 0 ? 0 : best;
    }
    return SI_OK;
}

}  // namespace si::ref
