// swiglu.cpp (cpu): out = silu(gate) * up = gate * up / (1 + exp(-gate)), elementwise,
// threaded over (row, column block) so one long decode row still uses every thread.
#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

#include <algorithm>
#include <cmath>

namespace si::cpu {
namespace {

constexpr int64_t kColBlock = 4096;

void span_scalar(const float* gate, const float* up, float* out, int64_t n) {
    for (int64_t j = 0; j < n; ++j) out[j] = gate[j] * up[j] / (1.0f + std::exp(-gate[j]));
}

SI_TARGET_AVX2 void span_avx2(const float* gate, const float* up, float* out, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 g = _mm256_loadu_ps(gate + j), u = _mm256_loadu_ps(up + j);
        const __m256 e = simd::exp256(_mm256_sub_ps(zero, g));
        _mm256_storeu_ps(out + j, _mm256_div_ps(_mm256_mul_ps(g, u), _mm256_add_ps(one, e)));
    }
    span_scalar(gate + j, up + j, out + j, n - j);
}

SI_TARGET_AVX512 void span_avx512(const float* gate, const float* up, float* out, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 k = simd::tail_mask16(n - j);
        const __m512 g = _mm512_maskz_loadu_ps(k, gate + j), u = _mm512_maskz_loadu_ps(k, up + j);
        const __m512 e = simd::exp512(_mm512_sub_ps(zero, g));
        _mm512_mask_storeu_ps(out + j, k, _mm512_div_ps(_mm512_mul_ps(g, u), _mm512_add_ps(one, e)));
    }
}

}  // namespace

void select_swiglu(Isa isa, Kernels* k) {
    switch (isa) {
        case Isa::Avx512: k->swiglu_span = span_avx512; break;
        case Isa::Avx2: k->swiglu_span = span_avx2; break;
        default: k->swiglu_span = span_scalar; break;
    }
}

si_result swiglu(const Env& env, const si_swiglu_params& p) {
    const int64_t col_blocks = (p.n + kColBlock - 1) / kColBlock;
    const int64_t items = int64_t(p.rows) * col_blocks;
    const int64_t grain = std::max<int64_t>(1, 16384 / std::min<int64_t>(p.n, kColBlock));
    const auto span = env.kernels.swiglu_span;
    env.pool.parallel_for(items, grain, [&](int64_t begin, int64_t end) {
        for (int64_t item = begin; item < end; ++item) {
            const int64_t r = item / col_blocks, c0 = (item % col_blocks) * kColBlock;
            const int64_t len = std::min<int64_t>(kColBlock, p.n - c0);
            span(p.gate + r * p.gate_stride + c0, p.up + r * p.up_stride + c0, p.out + r * p.out_stride + c0, len);
        }
    });
    return SI_OK;
}

}  // namespace si::cpu
