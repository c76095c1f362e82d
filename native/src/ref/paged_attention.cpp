// paged_attention.cpp (ref): attention of a batch of sequences over the paged KV cache, one
// (sequence, query, head) at a time: gather the visible keys through the block table,
// two-pass softmax in double, weighted sum of V in double. Without variants the arithmetic
// is exactly that of ref/attention.cpp, so the two agree bit for bit on gathered K/V.
#include "common/dtype.h"
#include "common/status.h"
#include "ref/ref_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace si::ref {
namespace {

// The rules of si_attention_variant: which keys a query sees, and what becomes of a logit.
struct Variant {
    int32_t window;  // 0 = unlimited
    double softcap;  // 0 = off

    int32_t first_visible(int32_t query_pos) const { return window > 0 ? std::max(0, query_pos - window + 1) : 0; }
    double logit(double x) const { return softcap > 0.0 ? softcap * std::tanh(x / softcap) : x; }
};

// Reads the row of (position pos, kv head h) of one sequence's K or V, as double.
struct CacheReader {
    const si_paged_kv& c;
    const int32_t* table;  // the sequence's block table

    void load(const void* pool, const float* scales, int32_t pos, int32_t h, double* out) const {
        const int64_t slot = int64_t(table[pos / c.block_size]) * c.block_size + pos % c.block_size;
        const int64_t row = slot * c.n_kv_heads + h;
        const int64_t at = row * c.head_dim;
        for (int32_t d = 0; d < c.head_dim; ++d) {
            switch (c.dtype) {
                case SI_DTYPE_F16: out[d] = f16_to_f32(static_cast<const uint16_t*>(pool)[at + d]); break;
                case SI_DTYPE_BF16: out[d] = bf16_to_f32(static_cast<const uint16_t*>(pool)[at + d]); break;
                case SI_DTYPE_I8: out[d] = double(static_cast<const int8_t*>(pool)[at + d]) * double(scales[row]); break;
                default: out[d] = static_cast<const float*>(pool)[at + d]; break;
            }
        }
    }
};

}  // namespace

si_result paged_attention_workspace_size(const si_paged_attention_params&, int64_t* out_bytes) {
    *out_bytes = 0;
    return SI_OK;
}

si_result paged_attention(const si_paged_attention_params& p) {
    const si_paged_kv& c = p.cache;
    const int32_t group = p.n_heads / c.n_kv_heads;
    const Variant variant{p.variant.sliding_window, double(p.variant.logit_softcap)};
    std::vector<double> scores(size_t(std::max(p.max_context_len, 1)));
    std::vector<double> acc(size_t(c.head_dim)), row(size_t(c.head_dim));
    for (int32_t s = 0; s < p.n_seqs; ++s) {
        const int32_t q_begin = p.cu_seqlens_q[s];
        const int32_t q_len = p.cu_seqlens_q[s + 1] - q_begin;
        const int32_t context = p.context_lens[s];
        const CacheReader cache{c, p.block_tables + int64_t(s) * p.max_blocks_per_seq};
        for (int32_t i = 0; i < q_len; ++i) {
            const int32_t pos = context - q_len + i;  // the query's own position, its last key
            const int32_t first = variant.first_visible(pos);
            for (int32_t h = 0; h < p.n_heads; ++h) {
                const float* q = p.q + (q_begin + i) * p.q_stride + int64_t(h) * c.head_dim;
                const int32_t kv_head = h / group;
                double max_score = -INFINITY;
                for (int32_t j = first; j <= pos; ++j) {
                    cache.load(c.k_pool, c.k_scale, j, kv_head, row.data());
                    double dot = 0.0;
                    for (int32_t d = 0; d < c.head_dim; ++d) dot += double(q[d]) * row[d];
                    scores[j] = variant.logit(dot * double(p.scale));
                    if (scores[j] > max_score) max_score = scores[j];
                }
                double denominator = 0.0;
                for (int32_t d = 0; d < c.head_dim; ++d) acc[d] = 0.0;
                for (int32_t j = first; j <= pos; ++j) {
                    const double weight = std::exp(scores[j] - max_score);
                    denominator += weight;
                    cache.load(c.v_pool, c.v_scale, j, kv_head, row.data());
                    for (int32_t d = 0; d < c.head_dim; ++d) acc[d] += weight * row[d];
                }
                float* out = p.out + (q_begin + i) * p.out_stride + int64_t(h) * c.head_dim;
                for (int32_t d = 0; d < c.head_dim; ++d) out[d] = float(acc[d] / denominator);
            }
        }
    }
    return SI_OK;
}

}  // namespace si::ref
