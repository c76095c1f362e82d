// argmax.cpp (cpu): index of each row's maximum, threaded over rows. Ties go to the lowest
// index and NaN never wins (an all-NaN row gives 0): each SIMD lane keeps its first
// strictly-greater value, and lanes are merged by value, then by index.
#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

#include <algorithm>
#include <climits>
#include <cmath>

namespace si::cpu {
namespace {

int32_t row_scalar(const float* x, int64_t n) {
    int64_t best = -1;
    for (int64_t j = 0; j < n; ++j) {
        if (std::isnan(x[j])) continue;
        if (best < 0 || x[j] > x[best]) best = j;
    }
    return best < 0 ? 0 : int32_t(best);
}

// Picks the winner among lanes: the largest value, the lowest index among equal values.
// Lanes that saw no number hold index INT_MAX.
inline int32_t merge_lanes(const float* values, const int32_t* indices, int lanes) {
    int32_t best = INT_MAX;
    float best_value = 0.0f;
    for (int l = 0; l < lanes; ++l) {
        if (indices[l] == INT_MAX) continue;
        if (best == INT_MAX || values[l] > best_value || (values[l] == best_value && indices[l] < best)) {
            best = indices[l];
            best_value = values[l];
        }
    }
    return best == INT_MAX ? 0 : best;
}

SI_TARGET_AVX2 int32_t row_avx2(const float* x, int64_t n) {
    // The first lane update needs "x == -inf and nothing yet" to count as a win, so empty
    // lanes are tracked by index == INT_MAX (compares false with NaN either way).
    __m256 best_v = _mm256_set1_ps(-INFINITY);
    __m256i best_i = _mm256_set1_epi32(INT_MAX);
    const __m256i none = best_i;
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i step = _mm256_set1_epi32(8);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 v = _mm256_loadu_ps(x + j);
        const __m256 greater = _mm256_cmp_ps(v, best_v, _CMP_GT_OQ);
        const __m256 first = _mm256_and_ps(_mm256_cmp_ps(v, best_v, _CMP_EQ_OQ),
                                           _mm256_castsi256_ps(_mm256_cmpeq_epi32(best_i, none)));
        const __m256 take = _mm256_or_ps(greater, first);
        best_v = _mm256_blendv_ps(best_v, v, take);
        best_i = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(best_i), _mm256_castsi256_ps(idx), take));
        idx = _mm256_add_epi32(idx, step);
    }
    alignas(32) float values[9];
    alignas(32) int32_t indices[9];
    _mm256_store_ps(values, best_v);
    _mm256_store_si256(reinterpret_cast<__m256i*>(indices), best_i);
    // The tail (after every vector element) cannot beat an equal earlier value: scalar.
    values[8] = -INFINITY;
    indices[8] = INT_MAX;
    for (; j < n; ++j) {
        if (std::isnan(x[j])) continue;
        if (indices[8] == INT_MAX || x[j] > values[8]) {
            values[8] = x[j];
            indices[8] = int32_t(j);
        }
    }
    return merge_lanes(values, indices, 9);
}

SI_TARGET_AVX512 int32_t row_avx512(const float* x, int64_t n) {
    __m512 best_v = _mm512_set1_ps(-INFINITY);
    __m512i best_i = _mm512_set1_epi32(INT_MAX);
    const __m512i none = best_i;
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 valid = simd::tail_mask16(n - j);
        const __m512 v = _mm512_maskz_loadu_ps(valid, x + j);
        const __mmask16 greater = _mm512_cmp_ps_mask(v, best_v, _CMP_GT_OQ);
        const __mmask16 first = _mm512_cmp_ps_mask(v, best_v, _CMP_EQ_OQ) & _mm512_cmpeq_epi32_mask(best_i, none);
        const __mmask16 take = (greater | first) & valid;
        best_v = _mm512_mask_mov_ps(best_v, take, v);
        best_i = _mm512_mask_mov_epi32(best_i, take, idx);
        idx = _mm512_add_epi32(idx, step);
    }
    alignas(64) float values[16];
    alignas(64) int32_t indices[16];
    _mm512_store_ps(values, best_v);
    _mm512_store_si512(indices, best_i);
    return merge_lanes(values, indices, 16);
}

}  // namespace

void select_argmax(Isa isa, Kernels* k) {
    switch (isa) {
        case Isa::Avx512: k->argmax_row = row_avx512; break;
        case Isa::Avx2: k->argmax_row = row_avx2; break;
        default: k->argmax_row = row_scalar; break;
    }
}

si_result argmax(const Env& env, const si_argmax_params& p) {
    const auto row = env.kernels.argmax_row;
    const int64_t grain = std::max<int64_t>(1, 16384 / p.n);
    env.pool.parallel_for(p.rows, grain, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) p.out[r] = row(p.x + r * p.x_stride, p.n);
    });
    return SI_OK;
}

}  // namespace si::cpu
