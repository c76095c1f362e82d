// attention.cpp (cpu): causal grouped-query attention over a contiguous KV cache, one task
// per (query token, query head), threaded over tasks. Two passes per task: scores for the
// keys the query may see (kept in a scratch row), then softmax weights applied to V.
// Cache rows at or past n_ctx are never touched.
#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace si::cpu {
namespace {

struct HeadView {
    const float* q;       // [head_dim]
    const float* k;       // key 0 of this head's KV head; key j at k + j * kv_stride
    const float* v;       // likewise
    float* out;           // [head_dim]
    int32_t n_keys;       // keys 0 .. n_keys-1 are visible
};

inline HeadView head_view(const si_attention_params& p, int32_t i, int32_t h) {
    const int32_t group = p.n_heads / p.n_kv_heads;
    const int64_t kv_offset = int64_t(h / group) * p.head_dim;
    return HeadView{p.q + i * p.q_stride + int64_t(h) * p.head_dim, p.k_cache + kv_offset, p.v_cache + kv_offset,
                    p.out + i * p.out_stride + int64_t(h) * p.head_dim, p.n_ctx - p.n_q + i + 1};
}

// ---- scalar ------------------------------------------------------------------------------

void head_scalar(const si_attention_params& p, int32_t i, int32_t h, float* scores) {
    const HeadView v = head_view(p, i, h);
    const int64_t dim = p.head_dim;
    float max_score = -INFINITY;
    for (int32_t j = 0; j < v.n_keys; ++j) {
        const float* k = v.k + j * p.kv_stride;
        float dot = 0.0f;
        for (int64_t d = 0; d < dim; ++d) dot += v.q[d] * k[d];
        scores[j] = dot * p.scale;
        max_score = std::max(max_score, scores[j]);
    }
    float sum = 0.0f;
    for (int32_t j = 0; j < v.n_keys; ++j) {
        scores[j] = std::exp(scores[j] - max_score);
        sum += scores[j];
    }
    for (int64_t d = 0; d < dim; ++d) v.out[d] = 0.0f;
    for (int32_t j = 0; j < v.n_keys; ++j) {
        const float* vr = v.v + j * p.kv_stride;
        for (int64_t d = 0; d < dim; ++d) v.out[d] += scores[j] * vr[d];
    }
    const float inv_sum = 1.0f / sum;
    for (int64_t d = 0; d < dim; ++d) v.out[d] *= inv_sum;
}

// ---- AVX2 --------------------------------------------------------------------------------

// scores[j] = scale * q.k_j, four keys at a time for independent FMA chains.
SI_TARGET_AVX2 float scores_avx2(const si_attention_params& p, const HeadView& v, float* scores) {
    const int64_t dim = p.head_dim;
    const int64_t full = dim & ~int64_t(7);
    const __m256i tail = simd::tail_mask8(dim - full);
    float max_score = -INFINITY;
    int32_t j = 0;
    for (; j + 4 <= v.n_keys; j += 4) {
        const float* k0 = v.k + j * p.kv_stride;
        const float* k1 = k0 + p.kv_stride;
        const float* k2 = k1 + p.kv_stride;
        const float* k3 = k2 + p.kv_stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t d = 0; d < full; d += 8) {
            const __m256 q = _mm256_loadu_ps(v.q + d);
            a0 = _mm256_fmadd_ps(q, _mm256_loadu_ps(k0 + d), a0);
            a1 = _mm256_fmadd_ps(q, _mm256_loadu_ps(k1 + d), a1);
            a2 = _mm256_fmadd_ps(q, _mm256_loadu_ps(k2 + d), a2);
            a3 = _mm256_fmadd_ps(q, _mm256_loadu_ps(k3 + d), a3);
        }
        if (full < dim) {
            const __m256 q = _mm256_maskload_ps(v.q + full, tail);
            a0 = _mm256_fmadd_ps(q, _mm256_maskload_ps(k0 + full, tail), a0);
            a1 = _mm256_fmadd_ps(q, _mm256_maskload_ps(k1 + full, tail), a1);
            a2 = _mm256_fmadd_ps(q, _mm256_maskload_ps(k2 + full, tail), a2);
            a3 = _mm256_fmadd_ps(q, _mm256_maskload_ps(k3 + full, tail), a3);
        }
        scores[j] = simd::hsum256(a0) * p.scale;
        scores[j + 1] = simd::hsum256(a1) * p.scale;
        scores[j + 2] = simd::hsum256(a2) * p.scale;
        scores[j + 3] = simd::hsum256(a3) * p.scale;
    }
    for (; j < v.n_keys; ++j) {
        const float* k0 = v.k + j * p.kv_stride;
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t d = 0; d < full; d += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(v.q + d), _mm256_loadu_ps(k0 + d), a0);
        if (full < dim) a0 = _mm256_fmadd_ps(_mm256_maskload_ps(v.q + full, tail), _mm256_maskload_ps(k0 + full, tail), a0);
        scores[j] = simd::hsum256(a0) * p.scale;
    }
    for (int32_t jj = 0; jj < v.n_keys; ++jj) max_score = std::max(max_score, scores[jj]);
    return max_score;
}

// scores[j] = exp(scores[j] - max); returns their sum.
SI_TARGET_AVX2 float exponentiate_avx2(float* scores, int32_t n, float max_score) {
    const __m256 m = _mm256_set1_ps(max_score);
    __m256 sum = _mm256_setzero_ps();
    int32_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 e = simd::exp256(_mm256_sub_ps(_mm256_loadu_ps(scores + j), m));
        _mm256_storeu_ps(scores + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    float total = simd::hsum256(sum);
    for (; j < n; ++j) {
        scores[j] = std::exp(scores[j] - max_score);
        total += scores[j];
    }
    return total;
}

// out[d0, d0 + dims) = inv_sum * sum_j w_j v_j[d0, ...], dims <= 8 * NB, in NB registers.
template <int NB>
SI_TARGET_AVX2 void weighted_v_avx2(const si_attention_params& p, const HeadView& v, const float* weights, int64_t d0,
                                    int64_t dims, float inv_sum) {
    __m256 acc[NB];
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) acc[b] = _mm256_setzero_ps();
    const __m256i last = simd::tail_mask8(dims - 8 * (NB - 1));
    for (int32_t j = 0; j < v.n_keys; ++j) {
        const __m256 w = _mm256_set1_ps(weights[j]);
        const float* row = v.v + j * p.kv_stride + d0;
#pragma GCC unroll 8
        for (int b = 0; b < NB - 1; ++b) acc[b] = _mm256_fmadd_ps(w, _mm256_loadu_ps(row + 8 * b), acc[b]);
        acc[NB - 1] = _mm256_fmadd_ps(w, _mm256_maskload_ps(row + 8 * (NB - 1), last), acc[NB - 1]);
    }
    const __m256 scale = _mm256_set1_ps(inv_sum);
#pragma GCC unroll 8
    for (int b = 0; b < NB - 1; ++b) _mm256_storeu_ps(v.out + d0 + 8 * b, _mm256_mul_ps(acc[b], scale));
    _mm256_maskstore_ps(v.out + d0 + 8 * (NB - 1), last, _mm256_mul_ps(acc[NB - 1], scale));
}

SI_TARGET_AVX2 void head_avx2(const si_attention_params& p, int32_t i, int32_t h, float* scores) {
    const HeadView v = head_view(p, i, h);
    const float max_score = scores_avx2(p, v, scores);
    const float inv_sum = 1.0f / exponentiate_avx2(scores, v.n_keys, max_score);
    for (int64_t d0 = 0; d0 < p.head_dim; d0 += 64) {
        const int64_t dims = std::min<int64_t>(64, p.head_dim - d0);
        switch ((dims + 7) / 8) {
            case 1: weighted_v_avx2<1>(p, v, scores, d0, dims, inv_sum); break;
            case 2: weighted_v_avx2<2>(p, v, scores, d0, dims, inv_sum); break;
            case 3: weighted_v_avx2<3>(p, v, scores, d0, dims, inv_sum); break;
            case 4: weighted_v_avx2<4>(p, v, scores, d0, dims, inv_sum); break;
            case 5: weighted_v_avx2<5>(p, v, scores, d0, dims, inv_sum); break;
            case 6: weighted_v_avx2<6>(p, v, scores, d0, dims, inv_sum); break;
            case 7: weighted_v_avx2<7>(p, v, scores, d0, dims, inv_sum); break;
            default: weighted_v_avx2<8>(p, v, scores, d0, dims, inv_sum); break;
        }
    }
}

// ---- AVX-512 -----------------------------------------------------------------------------

SI_TARGET_AVX512 float scores_avx512(const si_attention_params& p, const HeadView& v, float* scores) {
    const int64_t dim = p.head_dim;
    const int64_t full = dim & ~int64_t(15);
    const __mmask16 tail = simd::tail_mask16(dim - full);
    int32_t j = 0;
    for (; j + 4 <= v.n_keys; j += 4) {
        const float* k0 = v.k + j * p.kv_stride;
        const float* k1 = k0 + p.kv_stride;
        const float* k2 = k1 + p.kv_stride;
        const float* k3 = k2 + p.kv_stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t d = 0; d < full; d += 16) {
            const __m512 q = _mm512_loadu_ps(v.q + d);
            a0 = _mm512_fmadd_ps(q, _mm512_loadu_ps(k0 + d), a0);
            a1 = _mm512_fmadd_ps(q, _mm512_loadu_ps(k1 + d), a1);
            a2 = _mm512_fmadd_ps(q, _mm512_loadu_ps(k2 + d), a2);
            a3 = _mm512_fmadd_ps(q, _mm512_loadu_ps(k3 + d), a3);
        }
        if (full < dim) {
            const __m512 q = _mm512_maskz_loadu_ps(tail, v.q + full);
            a0 = _mm512_fmadd_ps(q, _mm512_maskz_loadu_ps(tail, k0 + full), a0);
            a1 = _mm512_fmadd_ps(q, _mm512_maskz_loadu_ps(tail, k1 + full), a1);
            a2 = _mm512_fmadd_ps(q, _mm512_maskz_loadu_ps(tail, k2 + full), a2);
            a3 = _mm512_fmadd_ps(q, _mm512_maskz_loadu_ps(tail, k3 + full), a3);
        }
        scores[j] = _mm512_reduce_add_ps(a0) * p.scale;
        scores[j + 1] = _mm512_reduce_add_ps(a1) * p.scale;
        scores[j + 2] = _mm512_reduce_add_ps(a2) * p.scale;
        scores[j + 3] = _mm512_reduce_add_ps(a3) * p.scale;
    }
    for (; j < v.n_keys; ++j) {
        const float* k0 = v.k + j * p.kv_stride;
        __m512 a0 = _mm512_setzero_ps();
        for (int64_t d = 0; d < full; d += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(v.q + d), _mm512_loadu_ps(k0 + d), a0);
        if (full < dim) a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, v.q + full), _mm512_maskz_loadu_ps(tail, k0 + full), a0);
        scores[j] = _mm512_reduce_add_ps(a0) * p.scale;
    }
    __m512 max_v = _mm512_set1_ps(-INFINITY);
    int32_t jj = 0;
    for (; jj + 16 <= v.n_keys; jj += 16) max_v = _mm512_max_ps(max_v, _mm512_loadu_ps(scores + jj));
    max_v = _mm512_mask_max_ps(max_v, simd::tail_mask16(v.n_keys - jj), max_v, _mm512_maskz_loadu_ps(simd::tail_mask16(v.n_keys - jj), scores + jj));
    return _mm512_reduce_max_ps(max_v);
}

SI_TARGET_AVX512 float exponentiate_avx512(float* scores, int32_t n, float max_score) {
    const __m512 m = _mm512_set1_ps(max_score);
    __m512 sum = _mm512_setzero_ps();
    int32_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m512 e = simd::exp512(_mm512_sub_ps(_mm512_loadu_ps(scores + j), m));
        _mm512_storeu_ps(scores + j, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (j < n) {
        const __mmask16 tail = simd::tail_mask16(n - j);
        const __m512 e = simd::exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, scores + j), m));
        _mm512_mask_storeu_ps(scores + j, tail, e);
        sum = _mm512_mask_add_ps(sum, tail, sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

template <int NB>
SI_TARGET_AVX512 void weighted_v_avx512(const si_attention_params& p, const HeadView& v, const float* weights, int64_t d0,
                                        int64_t dims, float inv_sum) {
    __m512 acc[NB];
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) acc[b] = _mm512_setzero_ps();
    const __mmask16 last = simd::tail_mask16(dims - 16 * (NB - 1));
    for (int32_t j = 0; j < v.n_keys; ++j) {
        const __m512 w = _mm512_set1_ps(weights[j]);
        const float* row = v.v + j * p.kv_stride + d0;
#pragma GCC unroll 8
        for (int b = 0; b < NB - 1; ++b) acc[b] = _mm512_fmadd_ps(w, _mm512_loadu_ps(row + 16 * b), acc[b]);
        acc[NB - 1] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(last, row + 16 * (NB - 1)), acc[NB - 1]);
    }
    const __m512 scale = _mm512_set1_ps(inv_sum);
#pragma GCC unroll 8
    for (int b = 0; b < NB - 1; ++b) _mm512_storeu_ps(v.out + d0 + 16 * b, _mm512_mul_ps(acc[b], scale));
    _mm512_mask_storeu_ps(v.out + d0 + 16 * (NB - 1), last, _mm512_mul_ps(acc[NB - 1], scale));
}

SI_TARGET_AVX512 void head_avx512(const si_attention_params& p, int32_t i, int32_t h, float* scores) {
    const HeadView v = head_view(p, i, h);
    const float max_score = scores_avx512(p, v, scores);
    const float inv_sum = 1.0f / exponentiate_avx512(scores, v.n_keys, max_score);
    for (int64_t d0 = 0; d0 < p.head_dim; d0 += 128) {
        const int64_t dims = std::min<int64_t>(128, p.head_dim - d0);
        switch ((dims + 15) / 16) {
            case 1: weighted_v_avx512<1>(p, v, scores, d0, dims, inv_sum); break;
            case 2: weighted_v_avx512<2>(p, v, scores, d0, dims, inv_sum); break;
            case 3: weighted_v_avx512<3>(p, v, scores, d0, dims, inv_sum); break;
            case 4: weighted_v_avx512<4>(p, v, scores, d0, dims, inv_sum); break;
            case 5: weighted_v_avx512<5>(p, v, scores, d0, dims, inv_sum); break;
            case 6: weighted_v_avx512<6>(p, v, scores, d0, dims, inv_sum); break;
            case 7: weighted_v_avx512<7>(p, v, scores, d0, dims, inv_sum); break;
            default: weighted_v_avx512<8>(p, v, scores, d0, dims, inv_sum); break;
        }
    }
}

}  // namespace

void select_attention(Isa isa, Kernels* k) {
    switch (isa) {
        case Isa::Avx512: k->attention_head = head_avx512; break;
        case Isa::Avx2: k->attention_head = head_avx2; break;
        default: k->attention_head = head_scalar; break;
    }
}

si_result attention(const Env& env, const si_attention_params& p) {
    const int64_t tasks = int64_t(p.n_q) * p.n_heads;
    // Task t is query t / n_heads, head t % n_heads: heads sharing a KV head run back to
    // back on one thread, so their keys come from cache.
    const int64_t work_per_task = int64_t(p.n_ctx) * p.head_dim;
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_task));
    const auto head = env.kernels.attention_head;
    env.pool.parallel_for(tasks, grain, [&](int64_t begin, int64_t end) {
        std::vector<float> scores(size_t(p.n_ctx));
        for (int64_t t = begin; t < end; ++t) head(p, int32_t(t / p.n_heads), int32_t(t % p.n_heads), scores.data());
    });
    return SI_OK;
}

}  // namespace si::cpu
