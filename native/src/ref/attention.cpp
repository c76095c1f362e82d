// attention.cpp (ref): causal grouped-query attention over a contiguous KV cache, two-pass
// softmax in double. Only cache rows 0..n_ctx-1 are read.
#include "common/status.h"
#include "ref/ref_ops.h"

#include <cmath>
#include <vector>

namespace si::ref {

si_result attention(const si_attention_params& p) {
    const int32_t group = p.n_heads / p.n_kv_heads;
    std::vector<double> scores(size_t(p.n_ctx));
    std::vector<double> acc(size_t(p.head_dim));
    for (int32_t i = 0; i < p.n_q; ++i) {
        const int32_t last_key = p.n_ctx - p.n_q + i;  // the query's own position
        for (int32_t h = 0; h < p.n_heads; ++h) {
            const float* q = p.q + i * p.q_stride + int64_t(h) * p.head_dim;
            const int64_t kv_offset = int64_t(h / group) * p.head_dim;
            double max_score = -INFINITY;
            for (int32_t j = 0; j <= last_key; ++j) {
                const float* k = p.k_cache + j * p.kv_stride + kv_offset;
                double dot = 0.0;
                for (int32_t d = 0; d < p.head_dim; ++d) dot += double(q[d]) * double(k[d]);
                scores[j] = dot * double(p.scale);
                if (scores[j] > max_score) max_score = scores[j];
            }
            double denominator = 0.0;
            for (int32_t d = 0; d < p.head_dim; ++d) acc[d] = 0.0;
            for (int32_t j = 0; j <= last_key; ++j) {
                const double weight = std::exp(scores[j] - max_score);
                denominator += weight;
                const float* v = p.v_cache + j * p.kv_stride + kv_offset;
                for (int32_t d = 0; d < p.head_dim; ++d) acc[d] += weight * double(v[d]);
            }
            float* out = p.out + i * p.out_stride + int64_t(h) * p.head_dim;
            for (int32_t d = 0; d < p.head_dim; ++d) out[d] = float(acc[d] / denominator);
        }
    }
    return SI_OK;
}

}  // namespace si::ref
