// qmatmul.cpp (ref): y = x . dequant(q)^T (+ bias) for int8 / int4 group-quantized weights,
// written straight from the format definitions in sharpinfer.h, accumulating in double.
//
// Float activations: y[r, c] = bias[c] + sum_i x[r, i] * w[c, i], w = q * scale (+ offset).
// Int8 activations (W8A8): row r of x is quantized first, by the same symmetric rule as the
// int8 KV cache (common/kv_quant.h: scale_x = max|x| / 127, q = rint(x / scale_x) clamped to
// [-127, 127], a zero row gives scale_x = 0), then per group g the integer dot product
// d_g = sum_{i in g} qx[i] * q[c, i] gives y[r, c] = bias[c] + scale_x * sum_g d_g * scale[c, g].
// Block-wise int8 activations (SI_ACTIVATIONS_I8_BLOCK32): the same rule per block of 32 k,
// y[r, c] = bias[c] + sum_b scale_x[b] * (d_b * scale[c, g(b)] + t_b * offset[c, g(b)]),
// t_b = sum_{i in b} qx[i] (the offset term for int4 only).
#include "common/kv_quant.h"
#include "ref/ref_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace si::ref {
namespace {

// The quantized value of weight (channel, i): int8 as stored, int4 the nibble (0..15).
int32_t weight_value(const si_qmatmul_params& p, int64_t channel, int64_t i) {
    if (p.format == SI_WEIGHT_I8) return static_cast<const int8_t*>(p.q)[channel * p.k + i];
    const uint8_t byte = static_cast<const uint8_t*>(p.q)[channel * ((int64_t(p.k) + 1) / 2) + i / 2];
    return (i % 2 == 0) ? (byte & 0x0f) : (byte >> 4);
}

// An int4 group's offset; NULL offsets mean symmetric int4 (offset = -8 * scale).
float offset_of(const si_qmatmul_params& p, int64_t at) { return p.offsets ? p.offsets[at] : -8.0f * p.scales[at]; }

}  // namespace

constexpr int64_t kActivationBlock = 32;

static si_result qmatmul_block32(const si_qmatmul_params& p) {
    const int64_t n_groups = (int64_t(p.k) + p.group_size - 1) / p.group_size;
    const int64_t n_blocks = (int64_t(p.k) + kActivationBlock - 1) / kActivationBlock;
    std::vector<int32_t> qx(size_t(p.k));
    std::vector<float> scale_x(static_cast<size_t>(n_blocks));
    for (int32_t r = 0; r < p.m; ++r) {
        const float* x = p.x + r * p.x_stride;
        for (int64_t b = 0; b < n_blocks; ++b) {
            const int64_t begin = b * kActivationBlock, end = std::min<int64_t>(begin + kActivationBlock, p.k);
            float max_abs = 0.0f;
            for (int64_t i = begin; i < end; ++i) max_abs = std::fmax(max_abs, std::fabs(x[i]));
            scale_x[size_t(b)] = int8_kv_scale(max_abs);
            for (int64_t i = begin; i < end; ++i) qx[size_t(i)] = quantize_int8_kv(x[i], scale_x[size_t(b)]);
        }
        for (int32_t c = 0; c < p.n; ++c) {
            double sum = 0.0;
            for (int64_t b = 0; b < n_blocks; ++b) {
                const int64_t begin = b * kActivationBlock, end = std::min<int64_t>(begin + kActivationBlock, p.k);
                const int64_t g = begin / p.group_size;
                int64_t dot = 0, qsum = 0;
                for (int64_t i = begin; i < end; ++i) {
                    dot += int64_t(qx[size_t(i)]) * weight_value(p, c, i);
                    qsum += qx[size_t(i)];
                }
                double block = double(dot) * double(p.scales[c * n_groups + g]);
                if (p.format == SI_WEIGHT_I4) block += double(qsum) * double(offset_of(p, c * n_groups + g));
                sum += double(scale_x[size_t(b)]) * block;
            }
            if (p.bias) sum += double(p.bias[c]);
            p.y[r * p.y_stride + c] = float(sum);
        }
    }
    return SI_OK;
}

si_result qmatmul(const si_qmatmul_params& p) {
    if (p.activations == SI_ACTIVATIONS_I8_BLOCK32) return qmatmul_block32(p);
    const int64_t n_groups = (int64_t(p.k) + p.group_size - 1) / p.group_size;
    std::vector<int32_t> qx(size_t(p.k));
    for (int32_t r = 0; r < p.m; ++r) {
        const float* x = p.x + r * p.x_stride;
        float scale_x = 0.0f;
        if (p.activations == SI_ACTIVATIONS_I8) {
            float max_abs = 0.0f;
            for (int32_t i = 0; i < p.k; ++i) max_abs = std::fmax(max_abs, std::fabs(x[i]));
            scale_x = int8_kv_scale(max_abs);
            for (int32_t i = 0; i < p.k; ++i) qx[size_t(i)] = quantize_int8_kv(x[i], scale_x);
        }
        for (int32_t c = 0; c < p.n; ++c) {
            double sum = 0.0;
            for (int64_t g = 0; g < n_groups; ++g) {
                const int64_t begin = g * p.group_size;
                const int64_t end = std::min<int64_t>(begin + p.group_size, p.k);
                const double scale = p.scales[c * n_groups + g];
                if (p.activations == SI_ACTIVATIONS_I8) {
                    int64_t dot = 0;
                    for (int64_t i = begin; i < end; ++i) dot += int64_t(qx[size_t(i)]) * weight_value(p, c, i);
                    sum += double(dot) * scale;
                } else {
                    const double offset = p.format == SI_WEIGHT_I4 ? double(offset_of(p, c * n_groups + g)) : 0.0;
                    for (int64_t i = begin; i < end; ++i) sum += double(x[i]) * (double(weight_value(p, c, i)) * scale + offset);
                }
            }
            if (p.activations == SI_ACTIVATIONS_I8) sum *= double(scale_x);
            if (p.bias) sum += double(p.bias[c]);
            p.y[r * p.y_stride + c] = float(sum);
        }
    }
    return SI_OK;
}

}  // namespace si::ref
