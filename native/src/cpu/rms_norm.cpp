// rms_norm.cpp (cpu): out = x / sqrt(mean(x^2) + eps) * weight, one row per loop call,
// threaded over rows.
#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

#include <algorithm>
#include <cmath>

namespace si::cpu {
namespace {

// The reciprocal rms from the f32 sum of squares; the tiny scalar part runs in double.
inline float inverse_rms(float sum_sq, int64_t dim, float eps) {
    return float(1.0 / std::sqrt(double(sum_sq) / double(dim) + double(eps)));
}

void row_scalar(const float* x, const float* weight, float* out, int64_t dim, float eps) {
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t d = 0; d < dim; ++d) lanes[d % 8] += x[d] * x[d];
    const float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    const float inv = inverse_rms(sum, dim, eps);
    for (int64_t d = 0; d < dim; ++d) out[d] = x[d] * inv * weight[d];
}

SI_TARGET_AVX2 void row_avx2(const float* x, const float* weight, float* out, int64_t dim, float eps) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t d = 0;
    for (; d + 32 <= dim; d += 32) {
        const __m256 x0 = _mm256_loadu_ps(x + d), x1 = _mm256_loadu_ps(x + d + 8);
        const __m256 x2 = _mm256_loadu_ps(x + d + 16), x3 = _mm256_loadu_ps(x + d + 24);
        a0 = _mm256_fmadd_ps(x0, x0, a0);
        a1 = _mm256_fmadd_ps(x1, x1, a1);
        a2 = _mm256_fmadd_ps(x2, x2, a2);
        a3 = _mm256_fmadd_ps(x3, x3, a3);
    }
    for (; d + 8 <= dim; d += 8) {
        const __m256 x0 = _mm256_loadu_ps(x + d);
        a0 = _mm256_fmadd_ps(x0, x0, a0);
    }
    if (d < dim) {
        const __m256 x0 = _mm256_maskload_ps(x + d, simd::tail_mask8(dim - d));
        a1 = _mm256_fmadd_ps(x0, x0, a1);
    }
    const float inv = inverse_rms(simd::hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))), dim, eps);
    const __m256 s = _mm256_set1_ps(inv);
    for (d = 0; d + 8 <= dim; d += 8)
        _mm256_storeu_ps(out + d, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + d), s), _mm256_loadu_ps(weight + d)));
    for (; d < dim; ++d) out[d] = x[d] * inv * weight[d];
}

SI_TARGET_AVX512 void row_avx512(const float* x, const float* weight, float* out, int64_t dim, float eps) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t d = 0;
    for (; d + 64 <= dim; d += 64) {
        const __m512 x0 = _mm512_loadu_ps(x + d), x1 = _mm512_loadu_ps(x + d + 16);
        const __m512 x2 = _mm512_loadu_ps(x + d + 32), x3 = _mm512_loadu_ps(x + d + 48);
        a0 = _mm512_fmadd_ps(x0, x0, a0);
        a1 = _mm512_fmadd_ps(x1, x1, a1);
        a2 = _mm512_fmadd_ps(x2, x2, a2);
        a3 = _mm512_fmadd_ps(x3, x3, a3);
    }
    for (; d + 16 <= dim; d += 16) {
        const __m512 x0 = _mm512_loadu_ps(x + d);
        a0 = _mm512_fmadd_ps(x0, x0, a0);
    }
    if (d < dim) {
        const __m512 x0 = _mm512_maskz_loadu_ps(simd::tail_mask16(dim - d), x + d);
        a1 = _mm512_fmadd_ps(x0, x0, a1);
    }
    const float inv = inverse_rms(_mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))), dim, eps);
    const __m512 s = _mm512_set1_ps(inv);
    for (d = 0; d < dim; d += 16) {
        const __mmask16 m = simd::tail_mask16(dim - d);
        const __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + d), s), _mm512_maskz_loadu_ps(m, weight + d));
        _mm512_mask_storeu_ps(out + d, m, y);
    }
}

}  // namespace

void select_rms_norm(Isa isa, Kernels* k) {
    switch (isa) {
        case Isa::Avx512: k->rms_norm_row = row_avx512; break;
        case Isa::Avx2: k->rms_norm_row = row_avx2; break;
        default: k->rms_norm_row = row_scalar; break;
    }
}

si_result rms_norm(const Env& env, const si_rms_norm_params& p) {
    const auto row = env.kernels.rms_norm_row;
    const int64_t grain = std::max<int64_t>(1, 16384 / p.dim);
    env.pool.parallel_for(p.rows, grain, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) row(p.x + r * p.x_stride, p.weight, p.out + r * p.out_stride, p.dim, p.eps);
    });
    return SI_OK;
}

}  // namespace si::cpu
