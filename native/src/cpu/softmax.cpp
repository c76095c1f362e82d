// softmax.cpp (cpu): out = softmax(x * inv_temperature) per row, threaded over rows.
// exp((x - max(x)) * inv_temperature) equals the max-subtracted form of the ABI but keeps
// large logits accurate: x - max is exact near the top, where the probability mass is.
// The normaliser is summed in double: a 32000-128000 entry vocabulary in f32 lanes would
// lose up to ~1e-4 relative.
#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

#include <algorithm>
#include <cmath>

namespace si::cpu {
namespace {

void row_scalar(const float* x, float* out, int64_t n, float inv_temperature) {
    float max_x = x[0];
    for (int64_t j = 1; j < n; ++j) max_x = std::max(max_x, x[j]);
    double sum = 0.0;
    for (int64_t j = 0; j < n; ++j) {
        out[j] = std::exp((x[j] - max_x) * inv_temperature);
        sum += out[j];
    }
    const float inv_sum = float(1.0 / sum);
    for (int64_t j = 0; j < n; ++j) out[j] *= inv_sum;
}

SI_TARGET_AVX2 void row_avx2(const float* x, float* out, int64_t n, float inv_temperature) {
    __m256 max_v = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) max_v = _mm256_max_ps(max_v, _mm256_loadu_ps(x + j));
    float max_x = simd::hmax256(max_v);
    for (; j < n; ++j) max_x = std::max(max_x, x[j]);
    const __m256 m = _mm256_set1_ps(max_x), t = _mm256_set1_ps(inv_temperature);
    __m256d sum_lo = _mm256_setzero_pd(), sum_hi = _mm256_setzero_pd();
    for (j = 0; j + 8 <= n; j += 8) {
        const __m256 e = simd::exp256(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), m), t));
        _mm256_storeu_ps(out + j, e);
        sum_lo = _mm256_add_pd(sum_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        sum_hi = _mm256_add_pd(sum_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, _mm256_add_pd(sum_lo, sum_hi));
    double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; j < n; ++j) {
        out[j] = std::exp((x[j] - max_x) * inv_temperature);
        sum += out[j];
    }
    const float inv_sum = float(1.0 / sum);
    const __m256 s = _mm256_set1_ps(inv_sum);
    for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_loadu_ps(out + j), s));
    for (; j < n; ++j) out[j] *= inv_sum;
}

SI_TARGET_AVX512 void row_avx512(const float* x, float* out, int64_t n, float inv_temperature) {
    __m512 max_v = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 k = simd::tail_mask16(n - j);
        max_v = _mm512_mask_max_ps(max_v, k, max_v, _mm512_maskz_loadu_ps(k, x + j));
    }
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(max_v)), t = _mm512_set1_ps(inv_temperature);
    __m512d sum_lo = _mm512_setzero_pd(), sum_hi = _mm512_setzero_pd();
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 k = simd::tail_mask16(n - j);
        // Masked-off lanes are exp(-max * t) garbage: zero them before summing.
        const __m512 e = _mm512_maskz_mov_ps(k, simd::exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), m), t)));
        _mm512_mask_storeu_ps(out + j, k, e);
        sum_lo = _mm512_add_pd(sum_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        sum_hi = _mm512_add_pd(sum_hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    const __m512 s = _mm512_set1_ps(float(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(sum_lo, sum_hi))));
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 k = simd::tail_mask16(n - j);
        _mm512_mask_storeu_ps(out + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, out + j), s));
    }
}

}  // namespace

void select_softmax(Isa isa, Kernels* k) {
    switch (isa) {
        case Isa::Avx512: k->softmax_row = row_avx512; break;
        case Isa::Avx2: k->softmax_row = row_avx2; break;
        default: k->softmax_row = row_scalar; break;
    }
}

si_result softmax(const Env& env, const si_softmax_params& p) {
    const auto row = env.kernels.softmax_row;
    const int64_t grain = std::max<int64_t>(1, 8192 / p.n);
    env.pool.parallel_for(p.rows, grain, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) row(p.x + r * p.x_stride, p.out + r * p.out_stride, p.n, p.inv_temperature);
    });
    return SI_OK;
}

}  // namespace si::cpu
