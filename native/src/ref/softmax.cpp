// softmax.cpp (ref): out = softmax(x * inv_temperature) per row, max-subtracted, in double.
#include "ref/ref_ops.h"

#include <cmath>
#include <vector>

namespace si::ref {

si_result softmax(const si_softmax_params& p) {
    std::vector<double> e(size_t(p.n));
    for (int32_t r = 0; r < p.rows; ++r) {
        const float* x = p.x + r * p.x_stride;
        float* out = p.out + r * p.out_stride;
        double max_logit = -INFINITY;
        for (int32_t j = 0; j < p.n; ++j) {
            const double logit = double(x[j]) * double(p.inv_temperature);
            if (logit > max_logit) max_logit = logit;
        }
        double sum = 0.0;
        for (int32_t j = 0; j < p.n; ++j) {
            e[j] = std::exp(double(x[j]) * double(p.inv_temperature) - max_logit);
            sum += e[j];
        }
        for (int32_t j = 0; j < p.n; ++j) out[j] = float(e[j] / sum);
    }
    return SI_OK;
}

}  // namespace si::ref
