// kv_write.cpp (cpu): stores each token's K/V rows into its cache slot, converting to the
// cache dtype in SIMD registers (f16 by the hardware converter, bf16 and int8 by integer
// rounding), threaded over tokens. The stored bits equal ref's: f16/bf16 round to nearest
// even like common/dtype.h, and int8 follows common/kv_quant.h step by step (the same f32
// division for the scale and for each element, then round-to-nearest-even and clamp).
#include "common/dtype.h"
#include "common/kv_quant.h"
#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace si::cpu {
namespace {

// Converts one [dim] row into the cache dtype at dst; int8 rows also write *scale.
using StoreRowFn = void (*)(const float* x, si_dtype dtype, void* dst, float* scale, int64_t dim);

// ---- scalar ------------------------------------------------------------------------------

void store_row_scalar(const float* x, si_dtype dtype, void* dst, float* scale, int64_t dim) {
    switch (dtype) {
        case SI_DTYPE_F32:
            std::memcpy(dst, x, size_t(dim) * sizeof(float));
            break;
        case SI_DTYPE_F16:
            for (int64_t d = 0; d < dim; ++d) static_cast<uint16_t*>(dst)[d] = f32_to_f16(x[d]);
            break;
        case SI_DTYPE_BF16:
            for (int64_t d = 0; d < dim; ++d) static_cast<uint16_t*>(dst)[d] = f32_to_bf16(x[d]);
            break;
        case SI_DTYPE_I8: {
            float max_abs = 0.0f;
            for (int64_t d = 0; d < dim; ++d) max_abs = std::fmax(max_abs, std::fabs(x[d]));
            *scale = int8_kv_scale(max_abs);
            for (int64_t d = 0; d < dim; ++d) static_cast<int8_t*>(dst)[d] = quantize_int8_kv(x[d], *scale);
            break;
        }
        default:
            break;
    }
}

// ---- AVX2 --------------------------------------------------------------------------------

// f32 -> bf16 bits in the low 16 bits of each 32-bit lane, as f32_to_bf16 rounds.
SI_TARGET_AVX2 inline __m256i bf16_bits_avx2(__m256 v) {
    const __m256i bits = _mm256_castps_si256(v);
    const __m256i abs = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff));
    const __m256i nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f800000));
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd)), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
    return _mm256_blendv_epi8(rounded, quiet, nan);
}

// Eight 16-bit results (low halves of the lanes) packed in order into 128 bits.
SI_TARGET_AVX2 inline __m128i pack_u16_avx2(__m256i lanes) {
    const __m256i packed = _mm256_packus_epi32(lanes, lanes);  // per 128-bit half: a b a b
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

SI_TARGET_AVX2 inline __m128i convert16_avx2(__m256 v, si_dtype dtype) {
    return dtype == SI_DTYPE_F16 ? _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC) : pack_u16_avx2(bf16_bits_avx2(v));
}

// Eight int8 results in the low 8 bytes.
SI_TARGET_AVX2 inline __m128i quantize8_avx2(__m256 v, __m256 scale) {
    __m256 q = _mm256_round_ps(_mm256_div_ps(v, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_min_ps(_mm256_max_ps(q, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    const __m256i i32 = _mm256_cvtps_epi32(q);
    const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
    return _mm_packs_epi16(i16, i16);
}

SI_TARGET_AVX2 void store_row_avx2(const float* x, si_dtype dtype, void* dst, float* scale, int64_t dim) {
    const int64_t full = dim & ~int64_t(7);
    const int64_t tail = dim - full;
    switch (dtype) {
        case SI_DTYPE_F32:
            std::memcpy(dst, x, size_t(dim) * sizeof(float));
            return;
        case SI_DTYPE_F16:
        case SI_DTYPE_BF16: {
            uint16_t* out = static_cast<uint16_t*>(dst);
            for (int64_t d = 0; d < full; d += 8) _mm_storeu_si128(reinterpret_cast<__m128i*>(out + d), convert16_avx2(_mm256_loadu_ps(x + d), dtype));
            if (tail) {
                alignas(16) uint16_t buffer[8];
                _mm_store_si128(reinterpret_cast<__m128i*>(buffer), convert16_avx2(_mm256_maskload_ps(x + full, simd::tail_mask8(tail)), dtype));
                std::memcpy(out + full, buffer, size_t(tail) * sizeof(uint16_t));
            }
            return;
        }
        case SI_DTYPE_I8: {
            const __m256 sign = _mm256_set1_ps(-0.0f);
            __m256 max_v = _mm256_setzero_ps();
            for (int64_t d = 0; d < full; d += 8) max_v = _mm256_max_ps(max_v, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + d)));
            if (tail) max_v = _mm256_max_ps(max_v, _mm256_andnot_ps(sign, _mm256_maskload_ps(x + full, simd::tail_mask8(tail))));
            *scale = int8_kv_scale(simd::hmax256(max_v));
            int8_t* out = static_cast<int8_t*>(dst);
            if (*scale == 0.0f) {
                std::memset(out, 0, size_t(dim));
                return;
            }
            const __m256 s = _mm256_set1_ps(*scale);
            for (int64_t d = 0; d < full; d += 8) _mm_storel_epi64(reinterpret_cast<__m128i*>(out + d), quantize8_avx2(_mm256_loadu_ps(x + d), s));
            if (tail) {
                alignas(16) int8_t buffer[16];
                _mm_store_si128(reinterpret_cast<__m128i*>(buffer), quantize8_avx2(_mm256_maskload_ps(x + full, simd::tail_mask8(tail)), s));
                std::memcpy(out + full, buffer, size_t(tail));
            }
            return;
        }
        default:
            return;
    }
}

// ---- AVX-512 -----------------------------------------------------------------------------

SI_TARGET_AVX512 inline __m256i bf16_bits_avx512(__m512 v) {
    const __m512i bits = _mm512_castps_si512(v);
    const __m512i abs = _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff));
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(abs, _mm512_set1_epi32(0x7f800000));
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd)), 16);
    rounded = _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(rounded);
}

SI_TARGET_AVX512 void store_row_avx512(const float* x, si_dtype dtype, void* dst, float* scale, int64_t dim) {
    switch (dtype) {
        case SI_DTYPE_F32:
            std::memcpy(dst, x, size_t(dim) * sizeof(float));
            return;
        case SI_DTYPE_F16:
        case SI_DTYPE_BF16: {
            uint16_t* out = static_cast<uint16_t*>(dst);
            for (int64_t d = 0; d < dim; d += 16) {
                const __mmask16 mask = simd::tail_mask16(dim - d);
                const __m512 v = _mm512_maskz_loadu_ps(mask, x + d);
                const __m256i h = dtype == SI_DTYPE_F16 ? _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
                                                        : bf16_bits_avx512(v);
                _mm256_mask_storeu_epi16(out + d, mask, h);
            }
            return;
        }
        case SI_DTYPE_I8: {
            __m512 max_v = _mm512_setzero_ps();
            for (int64_t d = 0; d < dim; d += 16)
                max_v = _mm512_max_ps(max_v, _mm512_abs_ps(_mm512_maskz_loadu_ps(simd::tail_mask16(dim - d), x + d)));
            *scale = int8_kv_scale(_mm512_reduce_max_ps(max_v));
            int8_t* out = static_cast<int8_t*>(dst);
            if (*scale == 0.0f) {
                std::memset(out, 0, size_t(dim));
                return;
            }
            const __m512 s = _mm512_set1_ps(*scale);
            for (int64_t d = 0; d < dim; d += 16) {
                const __mmask16 mask = simd::tail_mask16(dim - d);
                __m512 q = _mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(mask, x + d), s),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                q = _mm512_min_ps(_mm512_max_ps(q, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
                _mm_mask_storeu_epi8(out + d, mask, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q)));
            }
            return;
        }
        default:
            return;
    }
}

StoreRowFn store_row_for(Isa isa) {
    switch (isa) {
        case Isa::Avx512: return store_row_avx512;
        case Isa::Avx2: return store_row_avx2;
        default: return store_row_scalar;
    }
}

}  // namespace

si_result kv_write(const Env& env, const si_kv_write_params& p) {
    const si_paged_kv& c = p.cache;
    const StoreRowFn store_row = store_row_for(env.kernels.isa);
    const int64_t element = dtype_size(c.dtype);
    const int64_t row_bytes = int64_t(c.head_dim) * element;
    // A token is 2 * n_kv_heads rows; a few KiB per chunk keeps thread wake-ups worthwhile.
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, 2 * c.n_kv_heads * c.head_dim));
    env.pool.parallel_for(p.n_tokens, grain, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
            const int32_t slot = p.slot_mapping[t];
            if (slot < 0) continue;
            for (int32_t h = 0; h < c.n_kv_heads; ++h) {
                const int64_t row = int64_t(slot) * c.n_kv_heads + h;
                float* k_scale = c.k_scale ? c.k_scale + row : nullptr;
                float* v_scale = c.v_scale ? c.v_scale + row : nullptr;
                store_row(p.k + t * p.k_stride + int64_t(h) * c.head_dim, c.dtype, static_cast<char*>(c.k_pool) + row * row_bytes, k_scale, c.head_dim);
                store_row(p.v + t * p.v_stride + int64_t(h) * c.head_dim, c.dtype, static_cast<char*>(c.v_pool) + row * row_bytes, v_scale, c.head_dim);
            }
        }
    });
    return SI_OK;
}

}  // namespace si::cpu
