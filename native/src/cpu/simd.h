// simd.h: target-attributed SIMD helpers shared by the cpu op files (vector exp, f16/bf16
// loads, horizontal sums). The library is compiled for baseline x86-64; only functions
// marked SI_TARGET_AVX2 / SI_TARGET_AVX512 use wider instructions, and they run only after
// detect_isa() said the machine has them.
#pragma once

#include <sharpinfer/sharpinfer.h>

#include <cstdint>

// GCC 12.1/12.2 report the deliberate self-initialisation inside _mm512_undefined_*() as
// uninitialised when AVX-512 comes from a target attribute rather than -mavx512f (GCC
// PR105593, fixed in 12.3). Middle-end warnings follow the pragma state of the header's
// own lines, so silencing them around this include is enough.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#define SI_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define SI_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

namespace si::cpu::simd {

// ---- AVX-512 (16 f32 lanes) ------------------------------------------------------------

SI_TARGET_AVX512 inline __mmask16 tail_mask16(int64_t count) {
    return count >= 16 ? __mmask16(0xffff) : __mmask16((1u << count) - 1u);
}

// exp(x) to about 2 ulp (Cephes expf polynomial after range reduction by ln 2). Inputs
// below -87.3 give exactly 0; inputs are capped at 88 so the result stays finite.
SI_TARGET_AVX512 inline __m512 exp512(__m512 x) {
    const __mmask16 underflow = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    // Scale by 2^n through the exponent field; n is in [-126, 127] after the clamp.
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(__mmask16(~underflow), p, _mm512_castsi512_ps(e));
}

// 16 weights from a row in dtype D, as f32. The masked form reads only the lanes in mask,
// so it never touches memory past the end of a row.
template <si_dtype D>
SI_TARGET_AVX512 inline __m512 load16(const void* row, int64_t i) {
    if constexpr (D == SI_DTYPE_F32) {
        return _mm512_loadu_ps(static_cast<const float*>(row) + i);
    } else {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + i));
        if constexpr (D == SI_DTYPE_F16) return _mm512_cvtph_ps(h);
        else return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
}

template <si_dtype D>
SI_TARGET_AVX512 inline __m512 load16_masked(const void* row, int64_t i, __mmask16 mask) {
    if constexpr (D == SI_DTYPE_F32) {
        return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(row) + i);
    } else {
        const __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(row) + i);
        if constexpr (D == SI_DTYPE_F16) return _mm512_cvtph_ps(h);
        else return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
}

// ---- AVX2 (8 f32 lanes) ----------------------------------------------------------------

// Lane i is all-ones when i < count: the mask form _mm256_maskload_ps expects.
SI_TARGET_AVX2 inline __m256i tail_mask8(int64_t count) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(count < 8 ? count : 8)), lanes);
}

// Sum of the 8 lanes in a fixed order (so a result never depends on the caller).
SI_TARGET_AVX2 inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

SI_TARGET_AVX2 inline float hmax256(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Same polynomial as exp512.
SI_TARGET_AVX2 inline __m256 exp256(__m256 x) {
    const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

template <si_dtype D>
SI_TARGET_AVX2 inline __m256 load8(const void* row, int64_t i) {
    if constexpr (D == SI_DTYPE_F32) {
        return _mm256_loadu_ps(static_cast<const float*>(row) + i);
    } else {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + i));
        if constexpr (D == SI_DTYPE_F16) return _mm256_cvtph_ps(h);
        else return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
}

// The first `count` (< 8) weights, zero-padded. AVX2 has no 16-bit masked load, so the
// 16-bit tail goes through a small buffer; nothing past the row is read.
template <si_dtype D>
SI_TARGET_AVX2 inline __m256 load8_partial(const void* row, int64_t i, int64_t count) {
    if constexpr (D == SI_DTYPE_F32) {
        return _mm256_maskload_ps(static_cast<const float*>(row) + i, tail_mask8(count));
    } else {
        alignas(16) uint16_t buffer[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        const uint16_t* src = static_cast<const uint16_t*>(row) + i;
        for (int64_t j = 0; j < count; ++j) buffer[j] = src[j];
        return load8<D>(buffer, 0);
    }
}

}  // namespace si::cpu::simd
