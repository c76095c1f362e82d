// sparse_matmul.cpp (cpu): y = x . w^T (+ bias) for pruned weights in the 2:4 and bitmask
// formats of sharpinfer.h, reading only the kept weights and their metadata (decode is bound
// by the bytes read, so fewer bytes is the point) and never building a dense copy of w.
//
// Both formats decode 16 consecutive k (a "chunk") into the 16 lanes of a vector, each weight
// in the lane of its k and zeros elsewhere, and FMA it with the dense x. Per ISA:
//  - AVX-512, bitmask: the chunk's 16 mask bits are an opmask; 16 packed values are loaded
//    from where the chunk's values start (an unmasked load: a masked 16-bit load made a chunk
//    about 2x slower on Zen 5; only a matrix's last channels, whose values end the buffer,
//    take the masked form), widened to f32, and vexpandps spreads the first popcount of them to the
//    kept lanes. Each chunk's start is the word's running count of kept bits.
//  - AVX-512, 2:4: a chunk is one uint16 of metadata and exactly 8 values, so chunk t's values
//    sit at 8t. One 16-entry byte shuffle turns 32 chunks' metadata into their lane masks
//    (a nibble's two positions -> 4 mask bits, first < second so values arrive in lane order);
//    two chunks share one 16-value load and widening, and vexpandps spreads each half.
//  - AVX2, 8 k per step: a table maps a mask byte (bitmask) or a metadata byte (2:4) to a
//    vpermps index vector that moves the packed values to their lanes; bitmask lanes without a
//    kept weight are cleared with the table's lane mask, 2:4 ones select a zero lane.
//  - scalar: one loop per format over the kept weights only.
// Tried and dropped (measured on the Zen 5 this was tuned on, see perf/native/bench_sparse.cpp):
// vpexpandw (AVX512-VBMI2) straight from memory made the 90% case ~4x slower than the load +
// vexpandps above, and from a register (32 lanes at once) it cost 2x more per chunk; blocks
// of 8 interleaved channels made 16 short streams that the prefetchers followed poorly.
// Decode over k in 4096-wide segments, every channel of a block passing over a segment before
// the next (so x stays in L1 for long rows) ran 0.99-1.2x dense on 4096 x 11008 against 1.30x
// for whole rows: the weight streams broke into 4 KiB runs. Two channels per pass at m = 1 (each
// x load feeding both) ran 2:4 and 70% at 0.6-0.7x of the one-channel kernel (90%: 1.05x).
//
// Decode (m < kBatchedRows): one channel at a time, R <= 4 rows per pass, so a thread reads
// the values and the metadata as two sequential streams (with a software prefetch ahead);
// every output element keeps kSubAcc = 4 accumulators (chunk t goes to t % 4) to hide the FMA
// latency. Batches (m >= kBatchedRows, AVX-512): 4 channels are decoded once into a per-thread
// buffer of the very same vectors, then a 4 x 4 register-blocked kernel runs every row block
// over them, one sub-accumulator pass at a time, in k tiles that stay in L1.
// x past k is never read (masked / zero-padded tail loads); a 2:4 position at or past k holds
// a zero weight and meets a zero x. Pruned positions contribute 0 * x, so for finite x the
// result equals the ref's, which skips them (a non-finite x at a pruned position gives NaN in
// the vector paths, as a dense matmul of the same weights would).
//
// Work splits over output channels like the dense matmul: blocks of 16 channels (and of 64
// rows when m is large). Determinism: both AVX-512 paths, and every R and J, apply to each
// output element the same FMAs (sub-accumulator t % 4 takes chunk t, in order) and the same
// final sum ((acc0 + acc1) + (acc2 + acc3), then a fixed-order reduction), so a row's bits do
// not depend on the batch size, the path or the thread count (the AVX2 and scalar levels
// likewise within themselves).
#include "common/dtype.h"
#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

#include <algorithm>
#include <cstring>
#include <vector>

// The vector paths also count bits: POPCNT and BMI came with or before AVX2 on every x86 CPU.
#define SI_TARGET_AVX2_SPARSE __attribute__((target("avx2,fma,f16c,popcnt,bmi,bmi2")))
#define SI_TARGET_AVX512_SPARSE \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,popcnt,bmi,bmi2")))

namespace si::cpu {
namespace {

constexpr int64_t kColBlock = 16;  // channels per work item
constexpr int64_t kRowBlock = 64;  // rows per work item: the whole batch in decode
constexpr int kSubAcc = 4;         // accumulators per output element (chunk index mod 4)
// Software prefetch distances in bytes. A thread walks its channels in order, so the values
// and the metadata are two sequential streams (each channel's continue into the next one's);
// they are consumed slowly (a 90% sparse row has ~0.2 value bytes per k), which the hardware
// prefetchers do not run far enough ahead of.
constexpr int64_t kValuesAhead = 2048;
constexpr int64_t kIndexAhead = 1024;

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

// 2:4 metadata nibble (bits 0-1 first position, 2-3 second) -> 4-bit mask of kept positions.
constexpr char pair_mask(unsigned nibble) { return char((1u << (nibble & 3u)) | (1u << (nibble >> 2))); }

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

// The 8 weights of bitmask byte `bits` at their lanes, whose packed values start at v. kFull:
// 8 values may be read at v (the buffer goes on); else only popcount(bits) are, through a copy.
template <si_dtype D, bool kFull>
SI_TARGET_AVX2_SPARSE inline __m256 decode8_bitmask(unsigned bits, const uint8_t* v) {
    __m256 packed;
    if constexpr (kFull) {
        packed = simd::load8<D>(v, 0);
    } else {
        alignas(32) uint8_t buffer[32] = {};
        std::memcpy(buffer, v, size_t(_mm_popcnt_u32(bits) * elem_size<D>()));
        packed = simd::load8<D>(buffer, 0);
    }
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
template <si_dtype D, si_sparse_format F, int R, bool kFull>
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
            if (t % 4 == 0) _mm_prefetch(reinterpret_cast<const char*>(v + 8 * t * elem_size<D>()) + kValuesAhead, _MM_HINT_T0);
            if (t % 32 == 0) _mm_prefetch(reinterpret_cast<const char*>(meta + t) + kIndexAhead, _MM_HINT_T0);
            const unsigned word = meta[t];
            const int s = int(2 * t) % kSubAcc;
            fma_step8<R>(acc, x, decode8_2_4<D>(word & 0xffu, v + 8 * t * elem_size<D>()), 16 * t, k, s);
            if (16 * t + 8 < k)
                fma_step8<R>(acc, x, decode8_2_4<D>(word >> 8, v + (8 * t + 4) * elem_size<D>()), 16 * t + 8, k, s + 1);
        }
    } else {
        const uint64_t* mask = static_cast<const uint64_t*>(p.index) + c * job.mask_words;
        const uint8_t* v = values_bytes(p) + p.row_offsets[c] * elem_size<D>();
        for (int64_t w = 0; w < job.mask_words; ++w) {
            _mm_prefetch(reinterpret_cast<const char*>(mask + w) + kIndexAhead, _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(v) + kValuesAhead, _MM_HINT_T0);
            // As in block_avx512: the word's bytes are the steps' lane masks; each step's values
            // start after the previous steps' counts.
            const uint8_t* bits = reinterpret_cast<const uint8_t*>(mask + w);
            const uint8_t* at[9];
            at[0] = v;
#pragma GCC unroll 8
            for (int b = 0; b < 8; ++b) at[b + 1] = at[b] + _mm_popcnt_u32(bits[b]) * elem_size<D>();
#pragma GCC unroll 8
            for (int b = 0; b < 8; ++b)
                if (64 * w + 8 * b < k) fma_step8<R>(acc, x, decode8_bitmask<D, kFull>(bits[b], at[b]), 64 * w + 8 * b, k, b % kSubAcc);
            v = at[8];
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        const __m256 sum = _mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][1]), _mm256_add_ps(acc[r][2], acc[r][3]));
        p.y[(r0 + r) * p.y_stride + c] = finish(p, c, simd::hsum256(sum));
    }
}

template <si_dtype D, si_sparse_format F, bool kFull>
SI_TARGET_AVX2_SPARSE void rows_avx2(const Job& job, int64_t r0, int64_t r1, int64_t c) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) block_avx2<D, F, 4, kFull>(job, r, c);
    switch (r1 - r) {
        case 3: block_avx2<D, F, 3, kFull>(job, r, c); break;
        case 2: block_avx2<D, F, 2, kFull>(job, r, c); break;
        case 1: block_avx2<D, F, 1, kFull>(job, r, c); break;
        default: break;
    }
}

template <si_dtype D, si_sparse_format F>
SI_TARGET_AVX2_SPARSE void tile_avx2(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const si_sparse_matmul_params& p = *job.p;
    for (int64_t c = c0; c < c1; ++c) {
        // As in tile_avx512: only the channels whose values end the buffer copy their tails.
        if (F == SI_SPARSE_2_4 || p.row_offsets[c + 1] + 8 <= p.row_offsets[p.n]) rows_avx2<D, F, true>(job, r0, r1, c);
        else rows_avx2<D, F, false>(job, r0, r1, c);
    }
}

// ---- AVX-512 ---------------------------------------------------------------------------------

// The 16 weights of a bitmask chunk with lane mask `bits`, whose packed values start at v:
// load the values, widen, spread the first popcount(bits) of them to the kept lanes. kFull:
// 16 values may be read at v (the buffer goes on); else only popcount(bits) are, through a
// masked load (about 2x slower per chunk on Zen 5, so only the last channels take it).
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

// The lane masks of up to 32 2:4 chunks: each metadata nibble (a group's two positions)
// becomes the 4-bit mask of its kept lanes through one 16-entry byte shuffle, so metadata word
// t turns into chunk t's 16-bit lane mask in place. Reads `count` words at meta.
SI_TARGET_AVX512_SPARSE inline void lane_masks_2_4(const uint16_t* meta, int64_t count, uint16_t (&masks)[32]) {
    const __m512i table = _mm512_broadcast_i32x4(_mm_setr_epi8(pair_mask(0), pair_mask(1), pair_mask(2), pair_mask(3), pair_mask(4), pair_mask(5),
                                                               pair_mask(6), pair_mask(7), pair_mask(8), pair_mask(9), pair_mask(10), pair_mask(11),
                                                               pair_mask(12), pair_mask(13), pair_mask(14), pair_mask(15)));
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i bytes = count >= 32 ? _mm512_loadu_si512(meta) : _mm512_maskz_loadu_epi16(__mmask32(_bzhi_u32(~0u, unsigned(count))), meta);
    const __m512i first = _mm512_shuffle_epi8(table, _mm512_and_si512(bytes, low4));
    const __m512i second = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low4));
    _mm512_storeu_si512(masks, _mm512_or_si512(first, _mm512_slli_epi16(second, 4)));
}

// The 16 weights of a 2:4 chunk with lane mask m, whose 8 values start at v.
template <si_dtype D>
SI_TARGET_AVX512_SPARSE inline __m512 decode16_2_4(__mmask16 m, const uint8_t* v) {
    __m256 packed;
    if constexpr (D == SI_DTYPE_F32) {
        packed = _mm256_loadu_ps(reinterpret_cast<const float*>(v));
    } else {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v));
        if constexpr (D == SI_DTYPE_F16) packed = _mm256_cvtph_ps(h);
        else packed = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    // vexpandps reads only the low popcount(m) = 8 lanes of its source.
    return _mm512_maskz_expand_ps(m, _mm512_castps256_ps512(packed));
}

// The weights of 2:4 chunks t and t + 1 (lane masks m0, m1; their 16 values start at v): one
// 16-value load and widening for both, the upper 8 values moved down for the second.
template <si_dtype D>
SI_TARGET_AVX512_SPARSE inline void decode32_2_4(__mmask16 m0, __mmask16 m1, const uint8_t* v, __m512* w0, __m512* w1) {
    const __m512 packed = simd::load16<D>(v, 0);
    *w0 = _mm512_maskz_expand_ps(m0, packed);
    *w1 = _mm512_maskz_expand_ps(m1, _mm512_shuffle_f32x4(packed, packed, 0xee));
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
        // 32 chunks' lane masks at a time, then four chunks per step, chunk t into
        // sub-accumulator t % 4 (the loops unroll fully, so the accumulators stay in registers).
        alignas(64) uint16_t masks[32];
        for (int64_t t0 = 0; t0 < job.meta_words; t0 += 32) {
            _mm_prefetch(reinterpret_cast<const char*>(meta + t0) + kIndexAhead, _MM_HINT_T0);
            lane_masks_2_4(meta + t0, job.meta_words - t0, masks);
            const int64_t t_end = std::min<int64_t>(t0 + 32, job.meta_words);
            for (int64_t t = t0; t < t_end; t += 4) {
                _mm_prefetch(reinterpret_cast<const char*>(v + t * 8 * elem_size<D>()) + kValuesAhead, _MM_HINT_T0);
                if (t + 4 <= t_end && 16 * (t + 4) <= k) {
#pragma GCC unroll 2
                    for (int s = 0; s < 4; s += 2) {
                        __m512 w0, w1;
                        decode32_2_4<D>(masks[t - t0 + s], masks[t - t0 + s + 1], v + (t + s) * 8 * elem_size<D>(), &w0, &w1);
                        fma_chunk16<R, true>(acc, x, w0, 16 * (t + s), k, s);
                        fma_chunk16<R, true>(acc, x, w1, 16 * (t + s + 1), k, s + 1);
                    }
                } else {
#pragma GCC unroll 4
                    for (int s = 0; s < 4; ++s)
                        if (t + s < t_end)
                            fma_chunk16<R, false>(acc, x, decode16_2_4<D>(masks[t - t0 + s], v + (t + s) * 8 * elem_size<D>()), 16 * (t + s), k, s);
                }
            }
        }
    } else {
        const uint64_t* mask = static_cast<const uint64_t*>(p.index) + c * job.mask_words;
        const uint8_t* v = values_bytes(p) + p.row_offsets[c] * elem_size<D>();
        for (int64_t w = 0; w < job.mask_words; ++w) {
            _mm_prefetch(reinterpret_cast<const char*>(mask + w) + kIndexAhead, _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(v) + kValuesAhead, _MM_HINT_T0);
            // The word's four 16-bit pieces are the chunks' lane masks (x86 is little-endian);
            // each chunk's values start after the previous chunks' counts.
            const uint16_t* bits = reinterpret_cast<const uint16_t*>(mask + w);
            const uint8_t* at[5];
            at[0] = v;
#pragma GCC unroll 4
            for (int s = 0; s < 4; ++s) at[s + 1] = at[s] + _mm_popcnt_u32(bits[s]) * elem_size<D>();
            if (64 * w + 64 <= k) {
#pragma GCC unroll 4
                for (int s = 0; s < 4; ++s)
                    fma_chunk16<R, true>(acc, x, decode16_bitmask<D, kFull>(bits[s], at[s]), 64 * w + 16 * s, k, s);
            } else {
#pragma GCC unroll 4
                for (int s = 0; s < 4; ++s)
                    if (64 * w + 16 * s < k) fma_chunk16<R, false>(acc, x, decode16_bitmask<D, kFull>(bits[s], at[s]), 64 * w + 16 * s, k, s);
            }
            v = at[4];
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

// ---- AVX-512, batches of kBatchedRows or more: decode once, then a dense micro-kernel ------------

constexpr int64_t kTileChunks = 64;  // k tile of the micro-kernel: 1024 k, 16 KiB of decoded weights for 4 channels
constexpr int kDecodedChannels = 4;  // channels decoded together (the micro-kernel's J)

// Channel c's chunks decoded into out[0, chunks): the very vectors the per-chunk path builds.
template <si_dtype D, si_sparse_format F, bool kFull>
SI_TARGET_AVX512_SPARSE void decode_channel(const Job& job, int64_t c, __m512* out) {
    const si_sparse_matmul_params& p = *job.p;
    const int64_t k = p.k;
    if constexpr (F == SI_SPARSE_2_4) {
        const uint16_t* meta = static_cast<const uint16_t*>(p.index) + c * job.meta_words;
        const uint8_t* v = values_bytes(p) + c * job.meta_words * 8 * elem_size<D>();
        alignas(64) uint16_t masks[32];
        for (int64_t t0 = 0; t0 < job.meta_words; t0 += 32) {
            lane_masks_2_4(meta + t0, job.meta_words - t0, masks);
            const int64_t t_end = std::min<int64_t>(t0 + 32, job.meta_words);
            int64_t t = t0;
            for (; t + 2 <= t_end; t += 2) decode32_2_4<D>(masks[t - t0], masks[t - t0 + 1], v + t * 8 * elem_size<D>(), out + t, out + t + 1);
            if (t < t_end) out[t] = decode16_2_4<D>(masks[t - t0], v + t * 8 * elem_size<D>());
        }
    } else {
        const uint64_t* mask = static_cast<const uint64_t*>(p.index) + c * job.mask_words;
        const uint8_t* v = values_bytes(p) + p.row_offsets[c] * elem_size<D>();
        for (int64_t w = 0; w < job.mask_words; ++w) {
            // As in block_avx512: chunk starts from the running count, whole words unchecked.
            const uint16_t* bits = reinterpret_cast<const uint16_t*>(mask + w);
            const uint8_t* at[5];
            at[0] = v;
#pragma GCC unroll 4
            for (int s = 0; s < 4; ++s) at[s + 1] = at[s] + _mm_popcnt_u32(bits[s]) * elem_size<D>();
            if (64 * w + 64 <= k) {
#pragma GCC unroll 4
                for (int s = 0; s < 4; ++s) out[4 * w + s] = decode16_bitmask<D, kFull>(bits[s], at[s]);
            } else {
#pragma GCC unroll 4
                for (int s = 0; s < 4; ++s)
                    if (64 * w + 16 * s < k) out[4 * w + s] = decode16_bitmask<D, kFull>(bits[s], at[s]);
            }
            v = at[4];
        }
    }
}

// The sub-accumulators of one row block: [sub-accumulator][row][channel].
using BlockSums = __m512[kSubAcc][4][kDecodedChannels];

// R rows x J channels over chunks [t0, t1) of decoded channels w[J]: the per-chunk path's
// arithmetic exactly, sub-accumulator s taking chunks s, s + 4, ... in order (one pass per s,
// so that R x J accumulators fit in registers; between tiles they rest in sums).
template <int R, int J>
SI_TARGET_AVX512_SPARSE void tile_decoded(const Job& job, int64_t r0, const __m512* const (&w)[J], int64_t t0, int64_t t1, BlockSums& sums) {
    const si_sparse_matmul_params& p = *job.p;
    const int64_t k = p.k;
    const int64_t inside_end = std::min(t1, k / 16);  // chunks that end at or before k
    const float* x[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) x[r] = p.x + (r0 + r) * p.x_stride;
#pragma GCC unroll 4
    for (int s = 0; s < kSubAcc; ++s) {
        __m512 acc[R][J];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
            for (int j = 0; j < J; ++j) acc[r][j] = t0 == 0 ? _mm512_setzero_ps() : sums[s][r][j];
        int64_t t = t0 + s;
        for (; t < inside_end; t += kSubAcc) {
            __m512 wv[J];
#pragma GCC unroll 8
            for (int j = 0; j < J; ++j) wv[j] = _mm512_load_ps(reinterpret_cast<const float*>(w[j] + t));
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m512 xv = _mm512_loadu_ps(x[r] + 16 * t);
#pragma GCC unroll 8
                for (int j = 0; j < J; ++j) acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
            }
        }
        if (t < t1) {  // the chunk holding k's end
            const __mmask16 tail = simd::tail_mask16(k - 16 * t);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m512 xv = _mm512_maskz_loadu_ps(tail, x[r] + 16 * t);
#pragma GCC unroll 8
                for (int j = 0; j < J; ++j) acc[r][j] = _mm512_fmadd_ps(xv, w[j][t], acc[r][j]);
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
            for (int j = 0; j < J; ++j) sums[s][r][j] = acc[r][j];
    }
}

// y of the row block from its sub-accumulators, summed as the per-chunk path sums them.
template <int R, int J>
SI_TARGET_AVX512_SPARSE void finish_decoded(const Job& job, int64_t r0, int64_t c0, const BlockSums& sums) {
    const si_sparse_matmul_params& p = *job.p;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) {
            const __m512 sum = _mm512_add_ps(_mm512_add_ps(sums[0][r][j], sums[1][r][j]), _mm512_add_ps(sums[2][r][j], sums[3][r][j]));
            p.y[(r0 + r) * p.y_stride + c0 + j] = finish(p, c0 + j, _mm512_reduce_add_ps(sum));
        }
}

// Rows [r0, r1) (at most kRowBlock) x channels [c0, c0 + J): k tiles outermost, so a tile of
// decoded weights (J x kTileChunks vectors, 16 KiB) stays in L1 while every row block runs
// over it; each row block's sub-accumulators rest in sums[] between tiles.
template <int J>
SI_TARGET_AVX512_SPARSE void rows_decoded(const Job& job, int64_t r0, int64_t r1, int64_t c0, const __m512* const (&w)[J], int64_t chunks,
                                          BlockSums* sums) {
    const int64_t full = (r1 - r0) / 4, rest = (r1 - r0) % 4;
    for (int64_t t0 = 0; t0 < chunks; t0 += kTileChunks) {
        const int64_t t1 = std::min<int64_t>(t0 + kTileChunks, chunks);
        for (int64_t b = 0; b < full; ++b) tile_decoded<4, J>(job, r0 + 4 * b, w, t0, t1, sums[b]);
        switch (rest) {
            case 3: tile_decoded<3, J>(job, r0 + 4 * full, w, t0, t1, sums[full]); break;
            case 2: tile_decoded<2, J>(job, r0 + 4 * full, w, t0, t1, sums[full]); break;
            case 1: tile_decoded<1, J>(job, r0 + 4 * full, w, t0, t1, sums[full]); break;
            default: break;
        }
    }
    for (int64_t b = 0; b < full; ++b) finish_decoded<4, J>(job, r0 + 4 * b, c0, sums[b]);
    switch (rest) {
        case 3: finish_decoded<3, J>(job, r0 + 4 * full, c0, sums[full]); break;
        case 2: finish_decoded<2, J>(job, r0 + 4 * full, c0, sums[full]); break;
        case 1: finish_decoded<1, J>(job, r0 + 4 * full, c0, sums[full]); break;
        default: break;
    }
}

// Per-thread buffer for decoded weights (64-byte aligned), kept between calls.
__m512* decode_buffer(size_t vectors) {
    thread_local std::vector<uint8_t> buffer;
    if (buffer.size() < vectors * 64 + 64) buffer.resize(vectors * 64 + 64);
    const uintptr_t at = reinterpret_cast<uintptr_t>(buffer.data());
    return reinterpret_cast<__m512*>(buffer.data() + (64 - at % 64) % 64);
}

constexpr int64_t kBatchedRows = 8;  // from this many rows on, decode once per channel block

template <si_dtype D, si_sparse_format F>
SI_TARGET_AVX512_SPARSE void tile_batched_avx512(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const si_sparse_matmul_params& p = *job.p;
    const int64_t chunks = (int64_t(p.k) + 15) / 16;
    // Decoded weights, then the row blocks' sub-accumulators (r1 - r0 <= kRowBlock rows).
    const int64_t sums_vectors = (kRowBlock / 4) * int64_t(sizeof(BlockSums) / sizeof(__m512));
    __m512* buffer = decode_buffer(size_t(kDecodedChannels * chunks + sums_vectors));
    BlockSums* sums = reinterpret_cast<BlockSums*>(buffer + kDecodedChannels * chunks);
    for (int64_t c = c0; c < c1; c += kDecodedChannels) {
        const int64_t count = std::min<int64_t>(kDecodedChannels, c1 - c);
        for (int64_t j = 0; j < count; ++j) {
            if (F == SI_SPARSE_2_4 || p.row_offsets[c + j + 1] + 16 <= p.row_offsets[p.n]) decode_channel<D, F, true>(job, c + j, buffer + j * chunks);
            else decode_channel<D, F, false>(job, c + j, buffer + j * chunks);
        }
        const __m512* const w4[4] = {buffer, buffer + chunks, buffer + 2 * chunks, buffer + 3 * chunks};
        switch (count) {
            case 4: rows_decoded<4>(job, r0, r1, c, w4, chunks, sums); break;
            case 3: rows_decoded<3>(job, r0, r1, c, {w4[0], w4[1], w4[2]}, chunks, sums); break;
            case 2: rows_decoded<2>(job, r0, r1, c, {w4[0], w4[1]}, chunks, sums); break;
            default: rows_decoded<1>(job, r0, r1, c, {w4[0]}, chunks, sums); break;
        }
    }
}

template <si_dtype D, si_sparse_format F>
SI_TARGET_AVX512_SPARSE void tile_avx512(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    if (r1 - r0 >= kBatchedRows) return tile_batched_avx512<D, F>(job, r0, r1, c0, c1);
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
