// matmul.cpp (ref): y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]), one double sum per output.
#include "common/dtype.h"
#include "ref/ref_ops.h"

namespace si::ref {

si_result matmul(const si_matmul_params& p) {
    for (int32_t i = 0; i < p.m; ++i) {
        const float* x = p.x + i * p.x_stride;
        for (int32_t j = 0; j < p.n; ++j) {
            const int64_t row = int64_t(j) * p.k;
            double sum = p.bias ? double(p.bias[j]) : 0.0;
            for (int32_t kk = 0; kk < p.k; ++kk) sum += double(x[kk]) * double(load_as_f32(p.w, p.w_dtype, row + kk));
            p.y[i * p.y_stride + j] = float(sum);
        }
    }
    return SI_OK;
}

}  // namespace si::ref
