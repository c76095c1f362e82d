// sparse_matmul.cpp (ref): y = x . w^T (+ bias) for pruned weights in the 2:4 and bitmask
// formats of sharpinfer.h, written straight from the layout definitions and accumulating in
// double. Each kept weight is paired with the x element its metadata names; a 2:4 position
// at or past k (the zero-padding up to kp, or a kept zero in a ragged last group) holds a zero
// weight and is skipped, so x is never read past k.
#include "common/dtype.h"
#include "ref/ref_ops.h"

#include <cstdint>

namespace si::ref {
namespace {

// sum_i x[i] * w[c, i] for channel c of a 2:4 matrix.
double dot_2_4(const si_sparse_matmul_params& p, const float* x, int64_t c) {
    const int64_t kp = (int64_t(p.k) + 15) / 16 * 16;
    const uint16_t* meta = static_cast<const uint16_t*>(p.index) + c * (kp / 16);
    const int64_t values_begin = c * (kp / 2);
    double sum = 0.0;
    for (int64_t g = 0; g < kp / 4; ++g) {  // group g covers k in [4g, 4g + 4)
        const uint32_t nibble = (meta[g / 4] >> (4 * (g % 4))) & 0xfu;
        const int64_t positions[2] = {4 * g + (nibble & 3u), 4 * g + (nibble >> 2)};
        for (int j = 0; j < 2; ++j) {
            if (positions[j] >= p.k) continue;
            const double w = load_as_f32(p.values, p.values_dtype, values_begin + 2 * g + j);
            sum += double(x[positions[j]]) * w;
        }
    }
    return sum;
}

// sum_i x[i] * w[c, i] for channel c of a bitmask matrix.
double dot_bitmask(const si_sparse_matmul_params& p, const float* x, int64_t c) {
    const int64_t kw = (int64_t(p.k) + 63) / 64;
    const uint64_t* mask = static_cast<const uint64_t*>(p.index) + c * kw;
    int64_t next_value = p.row_offsets[c];
    double sum = 0.0;
    for (int64_t i = 0; i < p.k; ++i) {
        if (!((mask[i / 64] >> (i % 64)) & 1u)) continue;
        sum += double(x[i]) * double(load_as_f32(p.values, p.values_dtype, next_value++));
    }
    return sum;
}

}  // namespace

si_result sparse_matmul(const si_sparse_matmul_params& p) {
    for (int64_t r = 0; r < p.m; ++r) {
        const float* x = p.x + r * p.x_stride;
        for (int64_t c = 0; c < p.n; ++c) {
            double sum = p.format == SI_SPARSE_2_4 ? dot_2_4(p, x, c) : dot_bitmask(p, x, c);
            if (p.bias) sum += double(p.bias[c]);
            p.y[r * p.y_stride + c] = float(sum);
        }
    }
    return SI_OK;
}

}  // namespace si::ref
