// embedding.cpp (cpu): out[t, :] = f32(table[ids[t], :]), threaded over tokens; f16 rows
// convert with F16C, bf16 rows by a 16-bit shift (both exact).
#include "common/dtype.h"
#include "common/status.h"
#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

#include <algorithm>
#include <cstring>

namespace si::cpu {
namespace {

void convert_scalar(const void* src, si_dtype dtype, float* out, int64_t n) {
    if (dtype == SI_DTYPE_F32) {
        std::memcpy(out, src, size_t(n) * sizeof(float));
        return;
    }
    for (int64_t i = 0; i < n; ++i) out[i] = load_as_f32(src, dtype, i);
}

template <si_dtype D>
SI_TARGET_AVX2 void convert_avx2_typed(const void* src, float* out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, simd::load8<D>(src, i));
    if (i < n) _mm256_maskstore_ps(out + i, simd::tail_mask8(n - i), simd::load8_partial<D>(src, i, n - i));
}

SI_TARGET_AVX2 void convert_avx2(const void* src, si_dtype dtype, float* out, int64_t n) {
    switch (dtype) {
        case SI_DTYPE_F16: convert_avx2_typed<SI_DTYPE_F16>(src, out, n); break;
        case SI_DTYPE_BF16: convert_avx2_typed<SI_DTYPE_BF16>(src, out, n); break;
        default: convert_scalar(src, dtype, out, n); break;
    }
}

template <si_dtype D>
SI_TARGET_AVX512 void convert_avx512_typed(const void* src, float* out, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = simd::tail_mask16(n - i);
        _mm512_mask_storeu_ps(out + i, k, simd::load16_masked<D>(src, i, k));
    }
}

SI_TARGET_AVX512 void convert_avx512(const void* src, si_dtype dtype, float* out, int64_t n) {
    switch (dtype) {
        case SI_DTYPE_F16: convert_avx512_typed<SI_DTYPE_F16>(src, out, n); break;
        case SI_DTYPE_BF16: convert_avx512_typed<SI_DTYPE_BF16>(src, out, n); break;
        default: convert_scalar(src, dtype, out, n); break;
    }
}

}  // namespace

void select_embedding(Isa isa, Kernels* k) {
    switch (isa) {
        case Isa::Avx512: k->convert_row = convert_avx512; break;
        case Isa::Avx2: k->convert_row = convert_avx2; break;
        default: k->convert_row = convert_scalar; break;
    }
}

si_result embedding(const Env& env, const si_embedding_params& p) {
    // Check every id before writing anything, so a bad id leaves out untouched.
    for (int32_t t = 0; t < p.n_tokens; ++t) {
        if (p.ids[t] < 0 || p.ids[t] >= p.vocab)
            return fail(SI_ERR_INVALID_ARGUMENT, "si_embedding: ids[%d] = %d is outside [0, vocab=%d)", t, p.ids[t], p.vocab);
    }
    const int64_t row_bytes = int64_t(p.dim) * dtype_size(p.table_dtype);
    const auto convert = env.kernels.convert_row;
    const int64_t grain = std::max<int64_t>(1, 32768 / p.dim);
    env.pool.parallel_for(p.n_tokens, grain, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
            const void* row = static_cast<const uint8_t*>(p.table) + p.ids[t] * row_bytes;
            convert(row, p.table_dtype, p.out + t * p.dim, p.dim);
        }
    });
    return SI_OK;
}

}  // namespace si::cpu
