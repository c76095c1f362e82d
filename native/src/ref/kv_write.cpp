// kv_write.cpp (ref): stores each token's K/V rows into its cache slot, converting to the
// cache dtype one element at a time (int8 rows get their scale from common/kv_quant.h).
// Negative slots are padding and are skipped.
#include "common/dtype.h"
#include "common/kv_quant.h"
#include "common/status.h"
#include "ref/ref_ops.h"

#include <cmath>

namespace si::ref {
namespace {

// One [head_dim] row into element offset `at` of a pool (and its scale, for int8).
void store_row(const float* x, const si_paged_kv& c, void* pool, float* scales, int64_t at, int64_t scale_at) {
    const int32_t dim = c.head_dim;
    switch (c.dtype) {
        case SI_DTYPE_F32:
            for (int32_t d = 0; d < dim; ++d) static_cast<float*>(pool)[at + d] = x[d];
            break;
        case SI_DTYPE_F16:
            for (int32_t d = 0; d < dim; ++d) static_cast<uint16_t*>(pool)[at + d] = f32_to_f16(x[d]);
            break;
        case SI_DTYPE_BF16:
            for (int32_t d = 0; d < dim; ++d) static_cast<uint16_t*>(pool)[at + d] = f32_to_bf16(x[d]);
            break;
        case SI_DTYPE_I8: {
            float max_abs = 0.0f;
            for (int32_t d = 0; d < dim; ++d) max_abs = std::fmax(max_abs, std::fabs(x[d]));
            const float scale = int8_kv_scale(max_abs);
            for (int32_t d = 0; d < dim; ++d) static_cast<int8_t*>(pool)[at + d] = quantize_int8_kv(x[d], scale);
            scales[scale_at] = scale;
            break;
        }
        default:
            break;
    }
}

}  // namespace

si_result kv_write(const si_kv_write_params& p) {
    const si_paged_kv& c = p.cache;
    for (int32_t t = 0; t < p.n_tokens; ++t) {
        const int32_t slot = p.slot_mapping[t];
        if (slot < 0) continue;
        for (int32_t h = 0; h < c.n_kv_heads; ++h) {
            const int64_t scale_at = int64_t(slot) * c.n_kv_heads + h;
            const int64_t at = scale_at * c.head_dim;
            store_row(p.k + t * p.k_stride + int64_t(h) * c.head_dim, c, c.k_pool, c.k_scale, at, scale_at);
            store_row(p.v + t * p.v_stride + int64_t(h) * c.head_dim, c, c.v_pool, c.v_scale, at, scale_at);
        }
    }
    return SI_OK;
}

}  // namespace si::ref
