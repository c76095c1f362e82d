// sparse_matmul.cpp (cpu): y = x . w^T (+ bias) for pruned weights in the 2:4 and bitmask
// formats of sharpinfer.h, reading only the kept weights and their metadata (decode is bound
// by the bytes read, so fewer bytes is the whole point) and never building a dense copy.
//
// Both formats decode 16 consecutive k (one "chunk") into the 16 lanes of a vector, each
// weight in the lane of its k (zeros elsewhere), and FMA it with the dense x; a block kernel
// computes R rows x J channels, so each decoded chunk feeds R rows and each x vector J
// channels. Per ISA:
//  - AVX-512, bitmask: the chunk's 16 mask bits are an opmask; vpexpandw (AVX512-VBMI2) loads
//    that many packed f16/bf16 values straight into their lanes, then they widen to f32
//    (f32 values: vexpandps). Without VBMI2 the values are loaded first (a masked load of
//    popcount lanes) and widened, and vexpandps spreads them. The value pointer advances by the
//    popcount; the 4 chunks of a mask word take their offsets from the word's prefix counts.
//  - AVX-512, 2:4: each chunk is one uint16 of metadata and exactly 8 values; a 256-entry
//    table turns a metadata byte (two groups) into the 8-bit lane mask of the kept positions
//    (first < second, so values arrive in lane order), and vexpandps spreads the 8 widened
//    values. No popcount, no pointer chain: chunk t's values sit at 8t.
//  - AVX2, 8 k per step: a table maps a mask byte (bitmask) or a metadata byte (2:4) to a
//    vpermps index vector that moves the packed values to their lanes; bitmask lanes without a
//    kept weight are cleared with the table's lane mask, 2:4 ones select a zero lane.
//  - scalar: one loop per format over the kept weights only.
// x past k is never read (masked / zero-padded tail loads); a 2:4 position at or past k holds
// a zero weight and meets a zero x. Pruned positions contribute 0 * x, so for finite x the
// result equals the ref's, which skips them (a non-finite x at a pruned position gives NaN in
// the vector paths, as a dense matmul of the same weights would).
//
// Work splits over output channels like the dense matmul: blocks of 16 channels (and of 64
// rows when m is large). Determinism: every output element owns one accumulator that walks k
// in chunk order with the same operations whatever R, J, m or the thread split, and is
// reduced in a fixed order, so a row's bits do not depend on the batch or the thread count.
#include "common/dtype.h"
#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

#include <algorithm>
#include <array>
#include <cstring>


// The vector paths also count bits: POPCNT and BMI came with or before AVX2 on every x86 CPU.
#define SI_TARGET_AVX2_SPARSE __attribute__((target("avx2,fma,f16c,popcnt,bmi,bmi2")))
#define SI_TARGET_AVX512_SPARSE \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,popcnt,bmi,bmi2")))

namespace si::cpu {
namespace {

constexpr int64_t kColBlock = 16;  // channels per work item
constexpr int64_t kRowBlock = 64;  // rows per work item: the whole batch in decode
constexpr int kSubAcc = 4;         // accumulators per output element (chunk index mod 4)

template <si_dtype D>
constexpr int64_t elem_size() { return D == SI_DTYPE_F32 ? 4 : 2; }

// What one call's block kernels read.
struct Job {
    const si_sparse_matmul_params* p;
    int64_t meta_words;  // 2:4: uint16 words per row (kp / 16)
    int64_t mask_words;  // bitmask: uint64 words per row (kw)
};

inline float finish(const si_sparse_matmul_params& p, int64_t channel, float dot) {
    return p.bias ? dot + p.bias[channel] : dot;
}

inline const uint8_t* values_bytes(const si_sparse_matmul_params& p) { return static_cast<const uint8_t*>(p.values); }

// 2:4 metadata nibble (bits 0-1 first position, 2-3 second) -> 4-bit mask of kept positions;
// a byte holds two groups, so its mask is 8 bits.
constexpr uint8_t pair_mask(unsigned nibble) { return uint8_t((1u << (nibble & 3u)) | (1u << (nibble >> 2))); }

struct PairMaskTable {
    uint8_t mask[256];
};
constexpr PairMaskTable make_pair_mask_table() {
    PairMaskTable t{};
    for (unsigned b = 0; b < 256; ++b) t.mask[b] = uint8_t(pair_mask(b & 15u) | (pair_mask(b >> 4) << 4));
    return t;
}
constexpr PairMaskTable kPairMask = make_pair_mask_table();

// ---- scalar ----------------------------------------------------------------------------------

template <si_dtype D>
inline float load_scalar(const void* values, int64_t i) {
    if constexpr (D == SI_DTYPE_F32) return static_cast<const float*>(values)[i];
    else if constexpr (D == SI_DTYPE_F16) return f16_to_f32(static_cast<const uint16_t*>(values)[i]);
    else return bf16_to_f32(static_cast<const uint16_t*>(values)[i]);
}

template <si_dtype D>
void tile_scalar(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const si_sparse_matmul_params& p = *job.p;
    const int64_t k = p.k;
    for (int64_t c = c0; c < c1; ++c) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* x = p.x + r * p.x_stride;
            float acc = 0.0f;
            if (p.format == SI_SPARSE_2_4) {
                const uint16_t* meta = static_cast<const uint16_t*>(p.index) + c * job.meta_words;
                const int64_t v0 = c * job.meta_words * 8;
                for (int64_t g = 0; 4 * g < k; ++g) {
                    const unsigned nibble = (meta[g / 4] >> (4 * (g % 4))) & 15u;
                    const int64_t first = 4 * g + (nibble & 3u), second = 4 * g + (nibble >> 2);
                    if (first < k) acc += x[first] * load_scalar<D>(p.values, v0 + 2 * g);
                    if (second < k) acc += x[second] * load_scalar<D>(p.values, v0 + 2 * g + 1);
                }
            } else {
                const uint64_t* mask = static_cast<const uint64_t*>(p.index) + c * job.mask_words;
                int64_t v = p.row_offsets[c];
                for (int64_t w = 0; w < job.mask_words; ++w) {
                    for (uint64_t bits = mask[w]; bits; bits &= bits - 1)
                        acc += x[64 * w + __builtin_ctzll(bits)] * load_scalar<D>(p.values, v++);
                }
            }
            p.y[r * p.y_stride + c] = finish(p, c, acc);
        }
    }
}

// ---- AVX2 ------------------------------------------------------------------------------------

// Bitmask: for mask byte b, lane i takes packed value popcount(b & ((1 << i) - 1)) and keeps
// it where bit i is set (lane_mask all-ones), else it is cleared.
struct alignas(64) ExpandEntry {
    int32_t index[8];
    int32_t lane_mask[8];
};
struct ExpandTable {
    ExpandEntry e[256];
};
constexpr ExpandTable make_expand_table() {
    ExpandTable t{};
    for (unsigned b = 0; b < 256; ++b) {
        int32_t next = 0;
        for (unsigned i = 0; i < 8; ++i) {
            const bool kept = (b >> i) & 1u;
            t.e[b].index[i] = kept ? next : 0;
            t.e[b].lane_mask[i] = kept ? -1 : 0;
            next += kept;
        }
    }
    return t;
}
constexpr ExpandTable kExpand = make_expand_table();

// 2:4: for metadata byte b (the two groups of an 8-k step), lane i takes packed value 0-3 if
// it is a kept position, else lane 4, which the 4-value load leaves zero.
struct alignas(32) PairIndexEntry {
    int32_t index[8];
};
struct PairIndexTable {
    PairIndexEntry e[256];
};
constexpr PairIndexTable make_pair_index_table() {
    PairIndexTable t{};
    for (unsigned b = 0; b < 256; ++b) {
        for (unsigned i = 0; i < 8; ++i) t.e[b].index[i] = 4;
        for (unsigned g = 0; g < 2; ++g) {
            const unsigned nibble = (b >> (4 * g)) & 15u;
            t.e[b].index[4 * g + (nibble & 3u)] = int32_t(2 * g);
            t.e[b].index[4 * g + (nibble >> 2)] = int32_t(2 * g + 1);
        }
    }
    return t;
}
constexpr PairIndexTable kPairIndex = make_pair_index_table();

// 4 values from src as f32 in lanes 0-3, lanes 4-7 zero (reads 4 elements).
template <si_dtype D>
SI_TARGET_AVX2_SPARSE inline __m256 load4_values(const uint8_t* src) {
    __m128 v;
    if constexpr (D == SI_DTYPE_F32) {
        v = _mm_loadu_ps(reinterpret_cast<const float*>(src));
    } else {
        const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src));
        if constexpr (D == SI_DTYPE_F16) v = _mm_cvtph_ps(h);
        else v = _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(h), 16));
    }
    return _mm256_insertf128_ps(_mm256_setzero_ps(), v, 0);
}

// The 8 weights of bitmask byte `bits` at their lanes; v points at the first packed value and
// advances past them. Reads 8 values unless fewer than 8 remain before `end`.
template <si_dtype D>
SI_TARGET_AVX2_SPARSE inline __m256 decode8_bitmask(unsigned bits, const uint8_t*& v, const uint8_t* end) {
    const int count = _mm_popcnt_u32(bits);
    __m256 packed;
    if (v + 8 * elem_size<D>() <= end) {
        packed = simd::load8<D>(v, 0);
    } else {
        alignas(32) uint8_t buffer[32] = {};
        std::memcpy(buffer, v, size_t(count * elem_size<D>()));
        packed = simd::load8<D>(buffer, 0);
    }
    v += count * elem_size<D>();
    const ExpandEntry& e = kExpand.e[bits];
    const __m256 spread = _mm256_permutevar8x32_ps(packed, _mm256_load_si256(reinterpret_cast<const __m256i*>(e.index)));
    return _mm256_and_ps(spread, _mm256_load_ps(reinterpret_cast<const float*>(e.lane_mask)));
}

// The 8 weights of a 2:4 step (metadata byte, 4 values at v).
template <si_dtype D>
SI_TARGET_AVX2_SPARSE inline __m256 decode8_2_4(unsigned meta_byte, const uint8_t* v) {
    const __m256i index = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPairIndex.e[meta_byte].index));
    return _mm256_permutevar8x32_ps(load4_values<D>(v), index);
}

// One 8-k step at i: the decoded weights meet each row's x into sub-accumulator s.
template <int R>
SI_TARGET_AVX2_SPARSE inline void fma_step8(__m256 (&acc)[R][kSubAcc], const float* const (&x)[R], __m256 wv, int64_t i, int64_t k, int s) {
    if (i + 8 <= k) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[r][s] = _mm256_fmadd_ps(_mm256_loadu_ps(x[r] + i), wv, acc[r][s]);
    } else {
        const __m256i tail = simd::tail_mask8(k - i);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[r][s] = _mm256_fmadd_ps(_mm256_maskload_ps(x[r] + i, tail), wv, acc[r][s]);
    }
}

// R rows of channel c.
template <si_dtype D, si_sparse_format F, int R>
SI_TARGET_AVX2_SPARSE void block_avx2(const Job& job, int64_t r0, int64_t c) {
    const si_sparse_matmul_params& p = *job.p;
    const int64_t k = p.k;
    const float* x[R];
    __m256 acc[R][kSubAcc];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) x[r] = p.x + (r0 + r) * p.x_stride;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int s = 0; s < kSubAcc; ++s) acc[r][s] = _mm256_setzero_ps();
    if constexpr (F == SI_SPARSE_2_4) {
        const uint16_t* meta = static_cast<const uint16_t*>(p.index) + c * job.meta_words;
        const uint8_t* v = values_bytes(p) + c * job.meta_words * 8 * elem_size<D>();
        for (int64_t t = 0; t < job.meta_words; ++t) {  // 16 k: two steps, sub-accumulators 2t, 2t+1 (mod 4)
            const unsigned word = meta[t];
            const int s = int(2 * t) % kSubAcc;
            fma_step8<R>(acc, x, decode8_2_4<D>(word & 0xffu, v + 8 * t * elem_size<D>()), 16 * t, k, s);
            if (16 * t + 8 < k)
                fma_step8<R>(acc, x, decode8_2_4<D>(word >> 8, v + (8 * t + 4) * elem_size<D>()), 16 * t + 8, k, s + 1);
        }
    } else {
        const uint64_t* mask = static_cast<const uint64_t*>(p.index) + c * job.mask_words;
        const uint8_t* v = values_bytes(p) + p.row_offsets[c] * elem_size<D>();
        const uint8_t* end = values_bytes(p) + p.row_offsets[p.n] * elem_size<D>();
        for (int64_t w = 0; w < job.mask_words; ++w) {
            const uint64_t word = mask[w];
#pragma GCC unroll 8
            for (int b = 0; b < 8; ++b) {
                const int64_t i = 64 * w + 8 * b;
                if (i >= k) break;
                fma_step8<R>(acc, x, decode8_bitmask<D>(unsigned(word >> (8 * b)) & 0xffu, v, end), i, k, b % kSubAcc);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        const __m256 sum = _mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][1]), _mm256_add_ps(acc[r][2], acc[r][3]));
        p.y[(r0 + r) * p.y_stride + c] = finish(p, c, simd::hsum256(sum));
    }
}

template <si_dtype D, si_sparse_format F>
SI_TARGET_AVX2_SPARSE void tile_avx2(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) block_avx2<D, F, 4>(job, r, c);
        switch (r1 - r) {
            case 3: block_avx2<D, F, 3>(job, r, c); break;
            case 2: block_avx2<D, F, 2>(job, r, c); break;
            case 1: block_avx2<D, F, 1>(job, r, c); break;
            default: break;
        }
    }
}

// ---- AVX-512 ---------------------------------------------------------------------------------

// The 16 weights of a bitmask chunk with lane mask `bits`, whose packed values start at v:
// load the values, widen, spread the first popcount(bits) of them to the kept lanes. kFull:
// 16 values may be read at v (the buffer goes on); else only popcount(bits) are, through a
// masked load (which is much slower on some CPUs, so only a matrix's last rows take it).
template <si_dtype D, bool kFull>
SI_TARGET_AVX512_SPARSE inline __m512 decode16_bitmask(unsigned bits, const uint8_t* v) {
    __mmask16 first = __mmask16(0xffffu);
    if constexpr (!kFull) first = __mmask16(_bzhi_u32(0xffffu, _mm_popcnt_u32(bits)));
    __m512 packed;
    if constexpr (D == SI_DTYPE_F32) {
        packed = kFull ? _mm512_loadu_ps(v) : _mm512_maskz_loadu_ps(first, v);
    } else {
        const __m256i h = kFull ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v)) : _mm256_maskz_loadu_epi16(first, v);
        if constexpr (D == SI_DTYPE_F16) packed = _mm512_cvtph_ps(h);
        else packed = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_maskz_expand_ps(__mmask16(bits), packed);
}

// The 16 weights of a 2:4 chunk with metadata word `meta`, whose 8 values start at v.
template <si_dtype D>
SI_TARGET_AVX512_SPARSE inline __m512 decode16_2_4(unsigned meta, const uint8_t* v) {
    const __mmask16 m = __mmask16(kPairMask.mask[meta & 0xffu] | (unsigned(kPairMask.mask[meta >> 8]) << 8));
    __m256 packed;
    if constexpr (D == SI_DTYPE_F32) {
        packed = _mm256_loadu_ps(reinterpret_cast<const float*>(v));
    } else {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v));
        if constexpr (D == SI_DTYPE_F16) packed = _mm256_cvtph_ps(h);
        else packed = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    return _mm512_maskz_expand_ps(m, _mm512_insertf32x8(_mm512_setzero_ps(), packed, 0));
}

// One chunk at i: the decoded weights meet each row's 16 x into sub-accumulator s. Unless
// kInside (the chunk ends at or before k), the last chunk's x load is masked, so nothing past
// k is read.
template <int R, bool kInside>
SI_TARGET_AVX512_SPARSE inline void fma_chunk16(__m512 (&acc)[R][kSubAcc], const float* const (&x)[R], __m512 wv, int64_t i, int64_t k, int s) {
    if (kInside || i + 16 <= k) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[r][s] = _mm512_fmadd_ps(_mm512_loadu_ps(x[r] + i), wv, acc[r][s]);
    } else {
        const __mmask16 tail = simd::tail_mask16(k - i);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[r][s] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x[r] + i), wv, acc[r][s]);
    }
}

// R rows of channel c. kFull (bitmask): the values buffer holds at least 16 more values after
// this channel's.
template <si_dtype D, si_sparse_format F, int R, bool kFull>
SI_TARGET_AVX512_SPARSE void block_avx512(const Job& job, int64_t r0, int64_t c) {
    const si_sparse_matmul_params& p = *job.p;
    const int64_t k = p.k;
    const float* x[R];
    __m512 acc[R][kSubAcc];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) x[r] = p.x + (r0 + r) * p.x_stride;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int s = 0; s < kSubAcc; ++s) acc[r][s] = _mm512_setzero_ps();
    if constexpr (F == SI_SPARSE_2_4) {
        const uint16_t* meta = static_cast<const uint16_t*>(p.index) + c * job.meta_words;
        const uint8_t* v = values_bytes(p) + c * job.meta_words * 8 * elem_size<D>();
        // Four chunks per step, chunk s into sub-accumulator s (the loops unroll fully, so the
        // accumulators stay in registers).
        for (int64_t t = 0; t < job.meta_words; t += 4) {
            if (t + 4 <= job.meta_words && 16 * (t + 4) <= k) {
#pragma GCC unroll 4
                for (int s = 0; s < 4; ++s)
                    fma_chunk16<R, true>(acc, x, decode16_2_4<D>(meta[t + s], v + (t + s) * 8 * elem_size<D>()), 16 * (t + s), k, s);
            } else {
#pragma GCC unroll 4
                for (int s = 0; s < 4; ++s)
                    if (t + s < job.meta_words)
                        fma_chunk16<R, false>(acc, x, decode16_2_4<D>(meta[t + s], v + (t + s) * 8 * elem_size<D>()), 16 * (t + s), k, s);
            }
        }
    } else {
        const uint64_t* mask = static_cast<const uint64_t*>(p.index) + c * job.mask_words;
        const uint8_t* v = values_bytes(p) + p.row_offsets[c] * elem_size<D>();
        for (int64_t w = 0; w < job.mask_words; ++w) {
            const uint64_t word = mask[w];
            // The chunks' value offsets from prefix counts of the word: no chain between chunks.
            const int64_t at[4] = {0, int64_t(_mm_popcnt_u64(word & 0xffffull)), int64_t(_mm_popcnt_u64(word & 0xffffffffull)),
                                   int64_t(_mm_popcnt_u64(word & 0xffffffffffffull))};
            if (64 * w + 64 <= k) {
#pragma GCC unroll 4
                for (int s = 0; s < 4; ++s)
                    fma_chunk16<R, true>(acc, x, decode16_bitmask<D, kFull>(unsigned(word >> (16 * s)) & 0xffffu, v + at[s] * elem_size<D>()),
                                         64 * w + 16 * s, k, s);
            } else {
#pragma GCC unroll 4
                for (int s = 0; s < 4; ++s)
                    if (64 * w + 16 * s < k)
                        fma_chunk16<R, false>(acc, x, decode16_bitmask<D, kFull>(unsigned(word >> (16 * s)) & 0xffffu, v + at[s] * elem_size<D>()),
                                              64 * w + 16 * s, k, s);
            }
            v += int64_t(_mm_popcnt_u64(word)) * elem_size<D>();
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        const __m512 sum = _mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]), _mm512_add_ps(acc[r][2], acc[r][3]));
        p.y[(r0 + r) * p.y_stride + c] = finish(p, c, _mm512_reduce_add_ps(sum));
    }
}

template <si_dtype D, si_sparse_format F, bool kFull>
SI_TARGET_AVX512_SPARSE void rows_avx512(const Job& job, int64_t r0, int64_t r1, int64_t c) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) block_avx512<D, F, 4, kFull>(job, r, c);
    switch (r1 - r) {
        case 3: block_avx512<D, F, 3, kFull>(job, r, c); break;
        case 2: block_avx512<D, F, 2, kFull>(job, r, c); break;
        case 1: block_avx512<D, F, 1, kFull>(job, r, c); break;
        default: break;
    }
}

template <si_dtype D, si_sparse_format F>
SI_TARGET_AVX512_SPARSE void tile_avx512(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const si_sparse_matmul_params& p = *job.p;
    for (int64_t c = c0; c < c1; ++c) {
        // The arithmetic is the same either way; only how the values are loaded differs.
        if (F == SI_SPARSE_2_4 || p.row_offsets[c + 1] + 16 <= p.row_offsets[p.n]) rows_avx512<D, F, true>(job, r0, r1, c);
        else rows_avx512<D, F, false>(job, r0, r1, c);
    }
}

// ---- dispatch --------------------------------------------------------------------------------

using TileFn = void (*)(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1);

// The loops for one ISA and format, by values dtype.
template <template <si_dtype> class Pick>
TileFn by_dtype(si_dtype dtype) {
    switch (dtype) {
        case SI_DTYPE_F16: return Pick<SI_DTYPE_F16>::fn;
        case SI_DTYPE_BF16: return Pick<SI_DTYPE_BF16>::fn;
        default: return Pick<SI_DTYPE_F32>::fn;
    }
}

template <si_dtype D> struct PickScalar { static constexpr TileFn fn = tile_scalar<D>; };
template <si_dtype D> struct PickAvx2_24 { static constexpr TileFn fn = tile_avx2<D, SI_SPARSE_2_4>; };
template <si_dtype D> struct PickAvx2_Bitmask { static constexpr TileFn fn = tile_avx2<D, SI_SPARSE_BITMASK>; };
template <si_dtype D> struct PickAvx512_24 { static constexpr TileFn fn = tile_avx512<D, SI_SPARSE_2_4>; };
template <si_dtype D> struct PickAvx512_Bitmask { static constexpr TileFn fn = tile_avx512<D, SI_SPARSE_BITMASK>; };

TileFn choose_tile(Isa isa, const si_sparse_matmul_params& p) {
    const bool two_four = p.format == SI_SPARSE_2_4;
    switch (isa) {
        case Isa::Avx512: return two_four ? by_dtype<PickAvx512_24>(p.values_dtype) : by_dtype<PickAvx512_Bitmask>(p.values_dtype);
        case Isa::Avx2: return two_four ? by_dtype<PickAvx2_24>(p.values_dtype) : by_dtype<PickAvx2_Bitmask>(p.values_dtype);
        default: return by_dtype<PickScalar>(p.values_dtype);
    }
}

}  // namespace

si_result sparse_matmul(const Env& env, const si_sparse_matmul_params& p) {
    if (p.m == 0) return SI_OK;
    Job job{};
    job.p = &p;
    job.meta_words = (int64_t(p.k) + 15) / 16;
    job.mask_words = (int64_t(p.k) + 63) / 64;
    const TileFn tile = choose_tile(env.kernels.isa, p);

    const int64_t col_blocks = (p.n + kColBlock - 1) / kColBlock;
    const int64_t row_blocks = (p.m + kRowBlock - 1) / kRowBlock;
    // As in the dense matmul: items are (column block, row block), row block fastest; small
    // problems (counted as dense multiply-adds) stay on one thread.
    const int64_t items = col_blocks * row_blocks;
    const int64_t work_per_item = kColBlock * std::min<int64_t>(p.m, kRowBlock) * p.k;
    const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / work_per_item);
    env.pool.parallel_for(items, grain, [&](int64_t begin, int64_t end) {
        if (row_blocks == 1) {
            tile(job, 0, p.m, begin * kColBlock, std::min<int64_t>(end * kColBlock, p.n));
            return;
        }
        for (int64_t item = begin; item < end; ++item) {
            const int64_t cb = item / row_blocks, rb = item % row_blocks;
            tile(job, rb * kRowBlock, std::min<int64_t>((rb + 1) * kRowBlock, p.m), cb * kColBlock,
                 std::min<int64_t>((cb + 1) * kColBlock, p.n));
        }
    });
    return SI_OK;
}

}  // namespace si::cpu
