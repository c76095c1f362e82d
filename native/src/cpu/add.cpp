// add.cpp (cpu): out = a + b over n contiguous elements (the residual add), threaded over
// large spans only: below ~64K elements a wake-up costs more than the add.
#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

namespace si::cpu {
namespace {

void span_scalar(const float* a, const float* b, float* out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

SI_TARGET_AVX2 void span_avx2(const float* a, const float* b, float* out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    span_scalar(a + i, b + i, out + i, n - i);
}

SI_TARGET_AVX512 void span_avx512(const float* a, const float* b, float* out, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = simd::tail_mask16(n - i);
        _mm512_mask_storeu_ps(out + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i)));
    }
}

}  // namespace

void select_add(Isa isa, Kernels* k) {
    switch (isa) {
        case Isa::Avx512: k->add_span = span_avx512; break;
        case Isa::Avx2: k->add_span = span_avx2; break;
        default: k->add_span = span_scalar; break;
    }
}

si_result add(const Env& env, const si_add_params& p) {
    const auto span = env.kernels.add_span;
    env.pool.parallel_for(p.n, int64_t(1) << 16, [&](int64_t begin, int64_t end) {
        span(p.a + begin, p.b + begin, p.out + begin, end - begin);
    });
    return SI_OK;
}

}  // namespace si::cpu
