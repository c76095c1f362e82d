// qmatmul.cpp (cpu): y = x . dequant(q)^T (+ bias) for int8 / int4 group-quantized weights
// (the formats in sharpinfer.h), never materializing a dequantized copy of the matrix.
//
// Work splits over output channels like the dense matmul (blocks of 16 channels, and of 64
// rows when m is large); a block kernel computes R rows x J channels, so each weight vector,
// once decoded in registers, feeds R rows. Per activation mode and ISA:
//  - W8A16 (int8 weights, float x): 16 (8) int8 -> f32 in registers, times the group scale,
//    FMA with x.
//  - W4A16 (int4 weights, float x): x is first copied into a "split" order per chunk of 32 k
//    (the 16 even k, then the 16 odd k), so the 16 bytes holding 32 weights decode without any
//    interleaving: low nibbles pair with the even half, high nibbles with the odd half.
//    AVX-512 looks weights up in a 16-entry table per group (q * scale + offset for q = 0..15,
//    one vpermps per 16 weights; two groups per chunk for group size 16 via vpermt2ps); AVX2
//    converts nibbles and applies scale/offset with one FMA.
//  - W8A8 (int8 weights, x quantized per row on the fly by the int8 KV-cache rule): AVX-512
//    VNNI vpdpbusd needs an unsigned operand, so x is stored as q + 128 (u8) and 128 * sum(w)
//    (itself one vpdpbusd of the weights with a vector of 128s, shared by the R rows) is
//    subtracted per lane; AVX2 uses |w| (u8) with x * sign(w) (s8) in vpmaddubsw, which cannot
//    saturate (2 * 128 * 127 < 2^15). Each vector's int32 lanes (4 k each) are converted to
//    f32 and FMA'd with a per-lane scale vector (one scale, or 2-4 groups' scales for group
//    sizes 16/32), so no horizontal sum happens before the end of the row; the row's x scale
//    multiplies the reduced sum. The VNNI kernel walks one channel at a time (several rows):
//    one sequential weight stream per thread, which the prefetchers serve best.
//  - block-wise int8 activations (SI_ACTIVATIONS_I8_BLOCK32, llama.cpp's Q8_0 x Q4_0/Q8_0
//    scheme): each 32-k block of x is quantized with its own scale. The AVX-512 VNNI kernel
//    (b32_vnni) takes k in chunks of 16 blocks, one block per int32 lane: the chunk's weights
//    are reordered in registers (a 4x4 dword transpose per 128-bit lane, int8 also one 128-bit
//    shuffle per vector) so that the 8 vpdpbusd of a row sum each block's whole 32-k integer
//    dot product in its own lane; x is prepared once per call in the matching order. Per 8
//    vpdpbusd a row then pays one subtraction (int -> float), one multiply (scale_w * scale_x
//    of the 16 blocks) and one FMA; int8 weights are the unsigned operand as w + 128 and
//    symmetric int4 folds its -8 * scale offset into the integers, both through the lanes'
//    prepared starting values (-128 or -8 times sum q_x); affine int4 adds one FMA
//    (offset x scale_x * sum q_x). Rows come in blocks of 8 (x in L1 while the tile's
//    channels pass over it); int8 with many rows reorders each block of channels once into a
//    buffer instead of once per row block.
// Group sizes with a vector path: W8A16: multiples of 16 (AVX-512) / 8 (AVX2); W4A16: 16 and
// multiples of 32 (AVX-512) / multiples of 16 (AVX2); W8A8: 16, 32 and multiples of 64
// (AVX-512 VNNI) / 16 and multiples of 32 (AVX2); and any group size >= k (per channel). Other group sizes (and the scalar ISA level) take
// the plain loops in block_generic, which handle any group size and nibble position.
//
// Determinism: every output element owns its accumulator, walks k in the same order with the
// same operations whatever R, J, m or the thread split, and is reduced in a fixed order, so a
// row's result is bit-identical in any batch and for any thread count.
#include "common/kv_quant.h"
#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace si::cpu {
namespace {

constexpr int64_t kColBlock = 16;  // channels per work item (a multiple of every J below)
constexpr int64_t kRowBlock = 64;  // rows per work item: the whole batch in decode
constexpr int64_t kSplit = 32;     // int4: k per chunk of the split x order

// AVX512-VNNI (CPUID.7.0:ECX bit 11). The AVX-512 state itself was checked by detect_isa.
bool has_avx512_vnni() {
#if defined(__x86_64__) || defined(__i386__)
    static const bool vnni = [] {
        unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
        if (__get_cpuid_max(0, nullptr) < 7) return false;
        __cpuid_count(7, 0, eax, ebx, ecx, edx);
        return (ecx & (1u << 11)) != 0;
    }();
    return vnni;
#else
    return false;
#endif
}

// What one call's block kernels read: the params plus the prepared activations.
struct Job {
    const si_qmatmul_params* p;
    int64_t n_groups;
    int64_t row_bytes;       // bytes of q per channel
    const float* xs;         // W4A16 vector paths: x in split order, [m, xs_stride]
    int64_t xs_stride;
    const uint8_t* xq;       // W8A8: quantized x as (q + xq_offset) mod 256, [m, xq_stride]
    int64_t xq_stride;
    int32_t xq_offset;       // 128 for the VNNI kernels (u8 operand), else 0 (s8)
    const float* x_scale;    // W8A8: [m]
    // Block-wise int8 activations: x quantized per 32-k block. Generic loops: xb rows hold int8
    // q in k order ([m, xb_stride]), xb_scale and xb_sum ([m, nb_stride]) scale_x and
    // scale_x * sum q per block. VNNI kernels: chunk-major ([n_chunks][m] chunks of 16 blocks,
    // xb_stride and nb_stride step one chunk over all rows): xb holds a chunk's q in the
    // kernels' vector order (512 bytes), xb_scale / xb_sum / xb_isum its 16 blocks in lane
    // order (quantize_blocks_vnni).
    const uint8_t* xb;
    int64_t xb_stride;
    const float* xb_scale;
    const float* xb_sum;
    const int32_t* xb_isum;  // VNNI kernels: -128 * sum q (int8 weights) or -8 * sum q (int4)
    int64_t nb_stride;
    int64_t n_chunks;  // VNNI kernels: chunks of 16 blocks per row
};

constexpr int64_t kActBlock = 32;  // k per block of block-wise int8 activations

inline const uint8_t* weight_row(const Job& job, int64_t channel) {
    return static_cast<const uint8_t*>(job.p->q) + channel * job.row_bytes;
}

// Rows [r0, r1) x channels [c0, c1) with block-wise int8 activations, straight from the
// definition (x prepared in k order).
void block_generic_b32(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1);

// An int4 group's offset: NULL offsets mean symmetric int4, offset = -8 * scale.
inline float offset_at(const si_qmatmul_params& p, int64_t at) { return p.offsets ? p.offsets[at] : -8.0f * p.scales[at]; }

inline float finish(const Job& job, int64_t row, int64_t channel, float dot) {
    if (job.p->activations == SI_ACTIVATIONS_I8) dot *= job.x_scale[row];
    return job.p->bias ? dot + job.p->bias[channel] : dot;
}

inline void store(const Job& job, int64_t row, int64_t channel, float dot) {
    job.p->y[row * job.p->y_stride + channel] = finish(job, row, channel, dot);
}

// Prefetches into L2 the lines of [base + from, base + to) that start inside the range, so
// consecutive calls over adjacent ranges touch each line once.
inline void prefetch_range(const uint8_t* base, int64_t from, int64_t to) {
    for (int64_t line = (from + 63) / 64; line * 64 < to; ++line) _mm_prefetch(reinterpret_cast<const char*>(base + line * 64), _MM_HINT_T1);
}

// ---- generic (any ISA, any group size) -------------------------------------------------------

inline int32_t nibble(const uint8_t* row, int64_t i) {
    const uint8_t byte = row[i / 2];
    return (i & 1) ? (byte >> 4) : (byte & 0x0f);
}

// Rows [r0, r1) x channels [c0, c1), one output at a time, straight from the definition but
// in f32 (int32 group dot products for W8A8).
void block_generic(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const si_qmatmul_params& p = *job.p;
    if (p.activations == SI_ACTIVATIONS_I8_BLOCK32) return block_generic_b32(job, r0, r1, c0, c1);
    const int64_t k = p.k, gs = p.group_size;
    for (int64_t c = c0; c < c1; ++c) {
        const uint8_t* w = weight_row(job, c);
        const float* scales = p.scales + c * job.n_groups;
        for (int64_t r = r0; r < r1; ++r) {
            float acc = 0.0f;
            if (p.activations == SI_ACTIVATIONS_I8) {
                const uint8_t* xq = job.xq + r * job.xq_stride;
                for (int64_t g = 0, begin = 0; begin < k; ++g, begin += gs) {
                    const int64_t end = std::min(begin + gs, k);
                    int64_t dot = 0;
                    for (int64_t i = begin; i < end; ++i) dot += int64_t(int8_t(uint8_t(xq[i] - job.xq_offset))) * int8_t(w[i]);
                    acc = std::fma(float(dot), scales[g], acc);
                }
            } else {
                const float* x = p.x + r * p.x_stride;
                for (int64_t g = 0, begin = 0; begin < k; ++g, begin += gs) {
                    const int64_t end = std::min(begin + gs, k);
                    const float s = scales[g];
                    if (p.format == SI_WEIGHT_I8) {
                        for (int64_t i = begin; i < end; ++i) acc = std::fma(x[i], float(int8_t(w[i])) * s, acc);
                    } else {
                        const float o = offset_at(p, c * job.n_groups + g);
                        for (int64_t i = begin; i < end; ++i) acc = std::fma(x[i], std::fma(float(nibble(w, i)), s, o), acc);
                    }
                }
            }
            store(job, r, c, acc);
        }
    }
}

void block_generic_b32(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const si_qmatmul_params& p = *job.p;
    const int64_t k = p.k, gs = p.group_size;
    for (int64_t c = c0; c < c1; ++c) {
        const uint8_t* w = weight_row(job, c);
        const float* scales = p.scales + c * job.n_groups;
        const bool int4 = p.format == SI_WEIGHT_I4;
        for (int64_t r = r0; r < r1; ++r) {
            const uint8_t* xq = job.xb + r * job.xb_stride;
            const float* sx = job.xb_scale + r * job.nb_stride;
            const float* tx = job.xb_sum + r * job.nb_stride;
            float acc = 0.0f;
            for (int64_t b = 0, begin = 0; begin < k; ++b, begin += kActBlock) {
                const int64_t end = std::min(begin + kActBlock, k), g = begin / gs;
                int32_t dot = 0;
                for (int64_t i = begin; i < end; ++i) {
                    const int32_t qx = int8_t(uint8_t(xq[i] - job.xq_offset));
                    dot += qx * (p.format == SI_WEIGHT_I8 ? int32_t(int8_t(w[i])) : nibble(w, i));
                }
                acc = std::fma(float(dot), scales[g] * sx[b], acc);
                if (int4) acc = std::fma(offset_at(p, c * job.n_groups + g), tx[b], acc);
            }
            store(job, r, c, acc);
        }
    }
}

// ---- AVX2 ------------------------------------------------------------------------------------

// The first `count` (< full) bytes at src, zero-padded to 8 / 16 / 32: tails never read past a
// row (the last row may end the caller's buffer).
template <int kBytes>
SI_TARGET_AVX2 inline void copy_tail(uint8_t (&buffer)[kBytes], const uint8_t* src, int64_t count) {
    std::memset(buffer, 0, kBytes);
    std::memcpy(buffer, src, size_t(count));
}

// W8A16, 8 weights per step. Group size: a multiple of 8, or >= k.
template <int R, int J>
SI_TARGET_AVX2 void i8f_avx2(const Job& job, int64_t r0, int64_t c0, bool prefetch_next) {
    const si_qmatmul_params& p = *job.p;
    const int64_t k = p.k, gs = p.group_size;
    const float* x[R];
    const uint8_t* w[J];
    __m256 acc[R][J];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) x[r] = p.x + (r0 + r) * p.x_stride;
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) w[j] = weight_row(job, c0 + j);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) acc[r][j] = _mm256_setzero_ps();
    const uint8_t* next_block = w[0] + J * job.row_bytes;
    for (int64_t g = 0, begin = 0; begin < k; ++g, begin += gs) {
        const int64_t end = std::min(begin + gs, k);
        __m256 s[J];
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) s[j] = _mm256_set1_ps(p.scales[(c0 + j) * job.n_groups + g]);
        int64_t i = begin;
        for (; i + 8 <= end; i += 8) {
            if (prefetch_next) prefetch_range(next_block, i * J, (i + 8) * J);
            __m256 wv[J];
#pragma GCC unroll 8
            for (int j = 0; j < J; ++j) {
                const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w[j] + i));
                wv[j] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), s[j]);
            }
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m256 xv = _mm256_loadu_ps(x[r] + i);
#pragma GCC unroll 8
                for (int j = 0; j < J; ++j) acc[r][j] = _mm256_fmadd_ps(xv, wv[j], acc[r][j]);
            }
        }
        if (i < end) {  // only at the end of a row
            const __m256i mask = simd::tail_mask8(end - i);
            __m256 wv[J];
#pragma GCC unroll 8
            for (int j = 0; j < J; ++j) {
                uint8_t buffer[16];
                copy_tail(buffer, w[j] + i, end - i);
                const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(buffer));
                wv[j] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), s[j]);
            }
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m256 xv = _mm256_maskload_ps(x[r] + i, mask);
#pragma GCC unroll 8
                for (int j = 0; j < J; ++j) acc[r][j] = _mm256_fmadd_ps(xv, wv[j], acc[r][j]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) store(job, r0 + r, c0 + j, simd::hsum256(acc[r][j]));
}

// W4A16 on split x, 16 weights (8 bytes) per step: the even k of one half chunk, then the odd.
// Group size: a multiple of 16, or >= k.
template <int R, int J>
SI_TARGET_AVX2 void i4f_avx2(const Job& job, int64_t r0, int64_t c0, bool prefetch_next) {
    const si_qmatmul_params& p = *job.p;
    const int64_t k = p.k, gs = p.group_size;
    const float* x[R];
    const uint8_t* w[J];
    __m256 acc[R][J];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) x[r] = job.xs + (r0 + r) * job.xs_stride;
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) w[j] = weight_row(job, c0 + j);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) acc[r][j] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi32(0x0f);
    const uint8_t* next_block = w[0] + J * job.row_bytes;
    for (int64_t g = 0, begin = 0; begin < k; ++g, begin += gs) {
        const int64_t end = std::min(begin + gs, k);
        __m256 s[J], o[J];
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) {
            s[j] = _mm256_set1_ps(p.scales[(c0 + j) * job.n_groups + g]);
            o[j] = _mm256_set1_ps(offset_at(p, (c0 + j) * job.n_groups + g));
        }
        for (int64_t i = begin; i < end; i += 16) {
            // Half chunk h of chunk c: bytes i/2 .. i/2+7; split x at c*32 + 8h (even k) and
            // c*32 + 16 + 8h (odd k).
            const int64_t chunk = i & ~int64_t(kSplit - 1), half = (i - chunk) / 16;
            const int64_t even_at = chunk + 8 * half, odd_at = chunk + 16 + 8 * half;
            if (prefetch_next) prefetch_range(next_block, i / 2 * J, (i + 16) / 2 * J);
            __m256 we[J], wo[J];
#pragma GCC unroll 8
            for (int j = 0; j < J; ++j) {
                __m128i b;
                if (i + 16 <= k) {
                    b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w[j] + i / 2));
                } else {
                    uint8_t buffer[16];
                    copy_tail(buffer, w[j] + i / 2, (k - i + 1) / 2);
                    b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(buffer));
                }
                const __m256i v = _mm256_cvtepu8_epi32(b);
                we[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, low4)), s[j], o[j]);
                wo[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)), s[j], o[j]);
            }
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m256 xe = _mm256_loadu_ps(x[r] + even_at), xo = _mm256_loadu_ps(x[r] + odd_at);
#pragma GCC unroll 8
                for (int j = 0; j < J; ++j) {
                    acc[r][j] = _mm256_fmadd_ps(xe, we[j], acc[r][j]);
                    acc[r][j] = _mm256_fmadd_ps(xo, wo[j], acc[r][j]);
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) store(job, r0 + r, c0 + j, simd::hsum256(acc[r][j]));
}

// W8A8, 32 weights per step (8 int32 lanes of 4 k each). kSmall: group size 16 (lanes 0-3 and
// 4-7 belong to two groups); else a multiple of 32, or >= k. x rows are int8 (offset 0),
// zero-padded to a multiple of 64 bytes.
template <int R, int J, bool kSmall>
SI_TARGET_AVX2 void i8i8_avx2(const Job& job, int64_t r0, int64_t c0, bool prefetch_next) {
    const si_qmatmul_params& p = *job.p;
    const int64_t k = p.k, gs = p.group_size;
    const uint8_t* x[R];
    const uint8_t* w[J];
    __m256 acc[R][J];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) x[r] = job.xq + (r0 + r) * job.xq_stride;
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) w[j] = weight_row(job, c0 + j);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) acc[r][j] = _mm256_setzero_ps();
    const __m256i ones16 = _mm256_set1_epi16(1);
    const uint8_t* next_block = w[0] + J * job.row_bytes;
    int64_t g = 0, group_end = gs;  // !kSmall: the group of this step and where it ends
    for (int64_t i = 0; i < k; i += 32) {
        if (prefetch_next) prefetch_range(next_block, i * J, (i + 32) * J);
        if (!kSmall && i >= group_end) {
            ++g;
            group_end += gs;
        }
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) {
            __m256i wv;
            if (i + 32 <= k) {
                wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[j] + i));
            } else {
                uint8_t buffer[32];
                copy_tail(buffer, w[j] + i, k - i);
                wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(buffer));
            }
            const __m256i aw = _mm256_abs_epi8(wv);  // -128 becomes 0x80 = 128 as u8: still exact
            const float* srow = p.scales + (c0 + j) * job.n_groups;
            __m256 s;
            if constexpr (kSmall) {
                const int64_t g0 = i / 16;
                const float s1 = g0 + 1 < job.n_groups ? srow[g0 + 1] : 0.0f;
                s = _mm256_set_m128(_mm_set1_ps(s1), _mm_set1_ps(srow[g0]));
            } else {
                s = _mm256_set1_ps(srow[g]);
            }
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[r] + i));
                // |w| * (x * sign(w)) = x * w; pairs sum to at most 2 * 128 * 127 < 2^15.
                const __m256i pairs = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv));
                const __m256i dot = _mm256_madd_epi16(pairs, ones16);
                acc[r][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, acc[r][j]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) store(job, r0 + r, c0 + j, simd::hsum256(acc[r][j]));
}

// ---- AVX-512 ---------------------------------------------------------------------------------

#define SI_TARGET_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

SI_TARGET_AVX512 inline __mmask64 tail_mask64(int64_t count) {
    return count >= 64 ? __mmask64(~0ull) : __mmask64((1ull << count) - 1ull);
}

// W8A16, 16 weights per step. Group size: a multiple of 16, or >= k.
template <int R, int J>
SI_TARGET_AVX512 void i8f_avx512(const Job& job, int64_t r0, int64_t c0, bool prefetch_next) {
    const si_qmatmul_params& p = *job.p;
    const int64_t k = p.k, gs = p.group_size;
    const float* x[R];
    const uint8_t* w[J];
    __m512 acc[R][J];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) x[r] = p.x + (r0 + r) * p.x_stride;
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) w[j] = weight_row(job, c0 + j);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) acc[r][j] = _mm512_setzero_ps();
    const uint8_t* next_block = w[0] + J * job.row_bytes;
    for (int64_t g = 0, begin = 0; begin < k; ++g, begin += gs) {
        const int64_t end = std::min(begin + gs, k);
        __m512 s[J];
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) s[j] = _mm512_set1_ps(p.scales[(c0 + j) * job.n_groups + g]);
        int64_t i = begin;
        for (; i + 16 <= end; i += 16) {
            if (prefetch_next) prefetch_range(next_block, i * J, (i + 16) * J);
            __m512 wv[J];
#pragma GCC unroll 8
            for (int j = 0; j < J; ++j) {
                const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[j] + i));
                wv[j] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)), s[j]);
            }
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m512 xv = _mm512_loadu_ps(x[r] + i);
#pragma GCC unroll 8
                for (int j = 0; j < J; ++j) acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
            }
        }
        if (i < end) {  // only at the end of a row; masked loads read nothing past k
            const __mmask16 mask = simd::tail_mask16(end - i);
            __m512 wv[J];
#pragma GCC unroll 8
            for (int j = 0; j < J; ++j) {
                const __m128i b = _mm_maskz_loadu_epi8(mask, w[j] + i);
                wv[j] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)), s[j]);
            }
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m512 xv = _mm512_maskz_loadu_ps(mask, x[r] + i);
#pragma GCC unroll 8
                for (int j = 0; j < J; ++j) acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) store(job, r0 + r, c0 + j, _mm512_reduce_add_ps(acc[r][j]));
}

// q * scale + offset for q = 0..15: the group's lookup table.
SI_TARGET_AVX512 inline __m512 group_table(const si_qmatmul_params& p, int64_t at) {
    const __m512 q = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm512_fmadd_ps(q, _mm512_set1_ps(p.scales[at]), _mm512_set1_ps(offset_at(p, at)));
}

// W4A16 on split x, one chunk of 32 k (16 bytes) per step, weights by table lookup.
// kG16: group size 16, so a chunk's lanes 0-7 use group 2c's table and lanes 8-15 group
// 2c+1's (vpermt2ps picks between two tables by index bit 4); else the group size is a
// multiple of 32 or >= k, and a chunk lies inside one group.
template <int R, int J, bool kG16>
SI_TARGET_AVX512 void i4f_avx512(const Job& job, int64_t r0, int64_t c0, bool prefetch_next) {
    const si_qmatmul_params& p = *job.p;
    const int64_t k = p.k, gs = kG16 ? kSplit : p.group_size;  // kG16: step one chunk (2 groups)
    const float* x[R];
    const uint8_t* w[J];
    __m512 acc[R][J];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) x[r] = job.xs + (r0 + r) * job.xs_stride;
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) w[j] = weight_row(job, c0 + j);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) acc[r][j] = _mm512_setzero_ps();
    const __m512i low4 = _mm512_set1_epi32(0x0f);
    const __m512i upper_half = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 16, 16, 16, 16, 16, 16, 16, 16);
    const uint8_t* next_block = w[0] + J * job.row_bytes;
    for (int64_t g = 0, begin = 0; begin < k; ++g, begin += gs) {
        const int64_t end = std::min(begin + gs, k);
        __m512 table[J], table_hi[J];
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) {
            const int64_t row = (c0 + j) * job.n_groups;
            if constexpr (kG16) {
                table[j] = group_table(p, row + 2 * g);
                table_hi[j] = group_table(p, row + std::min<int64_t>(2 * g + 1, job.n_groups - 1));
            } else {
                table[j] = group_table(p, row + g);
                table_hi[j] = table[j];
            }
        }
        for (int64_t c = begin; c < end; c += kSplit) {
            if (prefetch_next) prefetch_range(next_block, c / 2 * J, (c + kSplit) / 2 * J);
            __m512 we[J], wo[J];
#pragma GCC unroll 8
            for (int j = 0; j < J; ++j) {
                const __m128i b = c + kSplit <= k ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[j] + c / 2))
                                                  : _mm_maskz_loadu_epi8(simd::tail_mask16((k - c + 1) / 2), w[j] + c / 2);
                const __m512i v = _mm512_cvtepu8_epi32(b);  // lane l: byte l = k c+2l (low), c+2l+1 (high)
                if constexpr (kG16) {
                    // (v & 15) | upper_half, and (v >> 4) | upper_half: bit 4 picks the table.
                    const __m512i even = _mm512_ternarylogic_epi32(v, low4, upper_half, 0xea);
                    const __m512i odd = _mm512_or_si512(_mm512_srli_epi32(v, 4), upper_half);
                    we[j] = _mm512_permutex2var_ps(table[j], even, table_hi[j]);
                    wo[j] = _mm512_permutex2var_ps(table[j], odd, table_hi[j]);
                } else {
                    // vpermps reads only index bits 0-3: the high nibble needs no mask.
                    we[j] = _mm512_permutexvar_ps(v, table[j]);
                    wo[j] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table[j]);
                }
            }
            // Split x is zero past k, so lanes past the row (masked to q = 0) add exact zeros.
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m512 xe = _mm512_loadu_ps(x[r] + c), xo = _mm512_loadu_ps(x[r] + c + 16);
#pragma GCC unroll 8
                for (int j = 0; j < J; ++j) {
                    acc[r][j] = _mm512_fmadd_ps(xe, we[j], acc[r][j]);
                    acc[r][j] = _mm512_fmadd_ps(xo, wo[j], acc[r][j]);
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) store(job, r0 + r, c0 + j, _mm512_reduce_add_ps(acc[r][j]));
}

// W8A8 with VNNI, 64 weights per step (16 int32 lanes of 4 k each), for rows [r0, r0 + R) of
// one channel. x rows hold q + 128 (u8), padded with 128 (q = 0) to a multiple of 64.
// kSmall: group size 16 or 32 (4 or 2 groups per vector, their scales spread over the lanes by
// one vpermps); else a multiple of 64, or >= k.
// One channel at a time, so each thread reads one sequential weight stream: the prefetchers
// serve that far better than J interleaved rows (Zen 4, one core: ~37 GB/s for one 64-byte
// stream vs ~21 GB/s for 4-8; 2048 x 2048 at m = 4 took 417 us with 4x4 register blocking,
// 227 us here). Four vectors per iteration share the scalar work; every output sees the same
// per-vector operations in the same order for any R.
template <int R, bool kSmall>
SI_TARGET_AVX512_VNNI void i8i8_vnni(const Job& job, int64_t r0, int64_t c) {
    const si_qmatmul_params& p = *job.p;
    const int64_t k = p.k, gs = p.group_size;
    const uint8_t* x[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) x[r] = job.xq + (r0 + r) * job.xq_stride;
    const uint8_t* w = weight_row(job, c);
    const float* srow = p.scales + c * job.n_groups;
    const __m512i u128 = _mm512_set1_epi8(char(0x80));
    const int shift = gs == 16 ? 4 : 5;
    // kSmall: lane l covers k 4l..4l+3, so it belongs to group 4l / gs of its vector.
    const __m512i lane_group = gs == 16 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                                        : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i groups_per_vector = _mm512_set1_epi32(64 >> shift);
    __m512 acc[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    int64_t g = 0, group_end = gs;  // !kSmall: the group of vector i and where it ends
    auto step = [&](int64_t i, __m512i wv, __m512 s) SI_TARGET_AVX512_VNNI {
        // -(128 * sum of each lane's 4 weights): turns sum (q + 128) * w into sum q * w.
        const __m512i correction = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), u128, wv));
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
            const __m512i dot = _mm512_dpbusd_epi32(correction, _mm512_loadu_si512(x[r] + i), wv);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[r]);
        }
    };
    auto large_group_scale = [&](int64_t i) {  // scalar: a lambda has no target attribute
        if (i >= group_end) {
            ++g;
            group_end += gs;
        }
        return srow[g];
    };
    int64_t i = 0;
    for (; i + 256 <= k; i += 256) {
        const __m512i w0 = _mm512_loadu_si512(w + i), w1 = _mm512_loadu_si512(w + i + 64);
        const __m512i w2 = _mm512_loadu_si512(w + i + 128), w3 = _mm512_loadu_si512(w + i + 192);
        if constexpr (kSmall) {
            // The 8 (group size 32) or 16 (group size 16) scales of these 256 k, spread by lane.
            const __m512 all = _mm512_maskz_loadu_ps(simd::tail_mask16(256 >> shift), srow + (i >> shift));
            __m512i index = lane_group;
            step(i, w0, _mm512_permutexvar_ps(index, all));
            index = _mm512_add_epi32(index, groups_per_vector);
            step(i + 64, w1, _mm512_permutexvar_ps(index, all));
            index = _mm512_add_epi32(index, groups_per_vector);
            step(i + 128, w2, _mm512_permutexvar_ps(index, all));
            index = _mm512_add_epi32(index, groups_per_vector);
            step(i + 192, w3, _mm512_permutexvar_ps(index, all));
        } else {
            step(i, w0, _mm512_set1_ps(large_group_scale(i)));
            step(i + 64, w1, _mm512_set1_ps(large_group_scale(i + 64)));
            step(i + 128, w2, _mm512_set1_ps(large_group_scale(i + 128)));
            step(i + 192, w3, _mm512_set1_ps(large_group_scale(i + 192)));
        }
    }
    for (; i < k; i += 64) {  // masked loads read nothing past k
        const __m512i wv = _mm512_maskz_loadu_epi8(tail_mask64(k - i), w + i);
        if constexpr (kSmall) {
            const int64_t g0 = i >> shift;
            const int64_t count = std::min<int64_t>(64 >> shift, job.n_groups - g0);
            step(i, wv, _mm512_permutexvar_ps(lane_group, _mm512_maskz_loadu_ps(simd::tail_mask16(count), srow + g0)));
        } else {
            step(i, wv, _mm512_set1_ps(large_group_scale(i)));
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) store(job, r0 + r, c, _mm512_reduce_add_ps(acc[r]));
}

// i8i8_vnni (above) blocked over J channels as well, for tiles of more than 4 rows, where the
// work is compute-bound and J independent channels keep more VNNI pipes busy (2048 x 2048, one
// core: m = 16 in 667 us vs 831 us channel by channel; m = 64 1803 vs 2665 us). Every output
// sees the same operations in the same order as in i8i8_vnni, so the two agree bit for bit.
template <int R, int J, bool kSmall>
SI_TARGET_AVX512_VNNI void i8i8_vnni_block(const Job& job, int64_t r0, int64_t c0, bool prefetch_next) {
    const si_qmatmul_params& p = *job.p;
    const int64_t k = p.k, gs = p.group_size;
    const uint8_t* x[R];
    const uint8_t* w[J];
    __m512 acc[R][J];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) x[r] = job.xq + (r0 + r) * job.xq_stride;
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) w[j] = weight_row(job, c0 + j);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) acc[r][j] = _mm512_setzero_ps();
    const __m512i u128 = _mm512_set1_epi8(char(0x80));
    // kSmall: lane l covers k 4l..4l+3, so it belongs to group 4l / gs of the step.
    const __m512i lane_group = gs == 16 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                                        : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const int shift = gs == 16 ? 4 : 5;
    const uint8_t* next_block = w[0] + J * job.row_bytes;
    int64_t g = 0, group_end = gs;  // !kSmall: the group of this step and where it ends
    const int64_t n_groups = job.n_groups;
    const float* scales0 = p.scales + c0 * n_groups;
    for (int64_t i = 0; i < k; i += 64) {
        if (prefetch_next) prefetch_range(next_block, i * J, (i + 64) * J);
        // Everything scalar is per step, shared by the J channels.
        const __mmask64 mask = tail_mask64(k - i);
        const float* s_at;
        __mmask16 s_mask = 0;
        if constexpr (kSmall) {
            const int64_t g0 = i >> shift;
            s_mask = simd::tail_mask16(std::min<int64_t>(64 >> shift, n_groups - g0));
            s_at = scales0 + g0;
        } else {
            if (i >= group_end) {
                ++g;
                group_end += gs;
            }
            s_at = scales0 + g;
        }
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) {
            const __m512i wv = i + 64 <= k ? _mm512_loadu_si512(w[j] + i) : _mm512_maskz_loadu_epi8(mask, w[j] + i);
            // -(128 * sum of each lane's 4 weights): turns sum (q + 128) * w into sum q * w.
            const __m512i correction = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), u128, wv));
            const __m512 s = kSmall ? _mm512_permutexvar_ps(lane_group, _mm512_maskz_loadu_ps(s_mask, s_at + j * n_groups))
                                    : _mm512_set1_ps(s_at[j * n_groups]);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m512i xv = _mm512_loadu_si512(x[r] + i);
                const __m512i dot = _mm512_dpbusd_epi32(correction, xv, wv);
                acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[r][j]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) store(job, r0 + r, c0 + j, _mm512_reduce_add_ps(acc[r][j]));
}

// Block-wise int8 activations with VNNI. k goes in chunks of 16 blocks (512 k), one block per
// int32 lane: each chunk's weights are reordered in registers so that lane L of all 8 vectors
// (64 bytes each) holds 4 k of the same block beta(L), 32 k in all. The 8 vpdpbusd of a row
// then accumulate each block's whole integer dot product in its lane, and the float work is
// one int -> float subtraction (kMagic), one multiply (scale_w * scale_x of the 16 blocks) and
// one FMA (two for affine int4: offset x scale_x * sum q_x) per 8 vpdpbusd. Zen 5 (measured):
// vpdpbusd, FMA and multiply share two pipes, and one FMA costs about as much as two vpdpbusd,
// so these float operations, not the integer ones, bound the kernel. x is prepared once per
// call in the same order (quantize_blocks_vnni), so only weights move.
//  - int8 weights: a chunk is 8 vectors of 2 blocks each; a 4x4 dword transpose inside each
//    128-bit lane of vectors 0-3 and of 4-7, then one 128-bit shuffle per output, give vector
//    j = dword j of each block, lane L -> block beta8(L). vpdpbusd wants an unsigned operand:
//    the weights become w + 128 (xor 0x80) and each row's lanes start from -128 * sum q_x of
//    their block (prepared with x).
//  - int4 weights: a chunk is 4 vectors of 4 blocks (16 bytes each); the same 4x4 transpose
//    gives vector d = bytes 4d..4d+3 of each block (lane L -> block beta4(L)), whose low and
//    high nibbles (k even and odd) are the two unsigned operands of vectors 2d and 2d + 1.
// Per output, lanes accumulate the chunks in order and reduce once at the end: the same
// float operations whatever R, the tile or the thread split (batch invariance).
constexpr int64_t kChunkBlocks = 16;
// Lanes accumulate from kMagic, the bits of the float 1.5 * 2^23: for |d| < 2^22 the bits
// kMagic + d are the float 1.5 * 2^23 + d exactly, so subtracting 1.5 * 2^23 gives float(d)
// exactly (a block's |d| <= 32 * 127 * 128 < 2^19, and partial sums in a lane stay in int32).
constexpr int32_t kMagic = 0x4b400000;
constexpr int64_t kChunk = kChunkBlocks * kActBlock;  // k per chunk; x bytes per row and chunk

// Lane of block b (0..15) within a chunk, and its inverse beta (the block of lane L).
inline int lane_of_block(bool int4, int b) { return int4 ? 4 * (b & 3) + (b >> 2) : 4 * (2 * (b >> 3) + (b & 1)) + ((b & 7) >> 1); }

SI_TARGET_AVX512_VNNI inline __m512i block_of_lane(bool int4) {
    return int4 ? _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
                : _mm512_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
}

// The first `count` bytes of 64 (none when count <= 0).
SI_TARGET_AVX512 inline __mmask64 bytes_mask(int64_t count) { return count <= 0 ? __mmask64(0) : tail_mask64(count); }

// out[d] lane 4q + i = in[i] lane 4q + d: a 4x4 dword transpose inside each 128-bit lane.
SI_TARGET_AVX512_VNNI inline void transpose4_lanes(__m512i& a0, __m512i& a1, __m512i& a2, __m512i& a3) {
    const __m512i t0 = _mm512_unpacklo_epi32(a0, a1), t1 = _mm512_unpackhi_epi32(a0, a1);
    const __m512i t2 = _mm512_unpacklo_epi32(a2, a3), t3 = _mm512_unpackhi_epi32(a2, a3);
    a0 = _mm512_unpacklo_epi64(t0, t2);
    a1 = _mm512_unpackhi_epi64(t0, t2);
    a2 = _mm512_unpacklo_epi64(t1, t3);
    a3 = _mm512_unpackhi_epi64(t1, t3);
}

// 16 blocks of 32 bytes in k order (v[i] = blocks 2i, 2i + 1) -> v[j] lane L = dword j of
// block beta8(L) = 2 (L & 3) + ((L >> 2) & 1) + 8 (L >> 3).
SI_TARGET_AVX512_VNNI inline void chunk_order_i8(__m512i (&v)[8]) {
    transpose4_lanes(v[0], v[1], v[2], v[3]);  // lane 4q + i: block 2i + q / 2, dword 4 (q % 2) + d
    transpose4_lanes(v[4], v[5], v[6], v[7]);  // the same, blocks + 8
#pragma GCC unroll 4
    for (int d = 0; d < 4; ++d) {
        const __m512i a = v[d], b = v[4 + d];
        v[d] = _mm512_shuffle_i32x4(a, b, 0x88);      // 128-bit lanes a0 a2 b0 b2: dword d
        v[4 + d] = _mm512_shuffle_i32x4(a, b, 0xdd);  // a1 a3 b1 b3: dword 4 + d
    }
}

// Horizontal sums of R (<= 8) vectors into out[0..R), each by the same tree whatever R (lanes
// i + 8, then i + 4, i + 2, i + 1, as _mm512_reduce_add_ps), several rows per instruction.
template <int R>
SI_TARGET_AVX512_VNNI inline void reduce_rows(const __m512 (&v)[R], float* out) {
    static_assert(R >= 1 && R <= 8, "at most 8 rows");
    __m512 a[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) a[r] = r < R ? v[r] : _mm512_setzero_ps();
    __m512 b[4];  // rows 2i, 2i + 1: 8 lanes each
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i)
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xee));
    // rows 4i..4i + 3: 4 lanes each (128-bit lane j = row 4i + j)
    const __m512 c0 = _mm512_add_ps(_mm512_shuffle_f32x4(b[0], b[1], 0x88), _mm512_shuffle_f32x4(b[0], b[1], 0xdd));
    const __m512 c1 = _mm512_add_ps(_mm512_shuffle_f32x4(b[2], b[3], 0x88), _mm512_shuffle_f32x4(b[2], b[3], 0xdd));
    // per 128-bit lane j: lanes 0, 1 row j; 2, 3 row 4 + j (2 lanes each)
    const __m512 d = _mm512_add_ps(_mm512_shuffle_ps(c0, c1, 0x44), _mm512_shuffle_ps(c0, c1, 0xee));
    const __m512 e = _mm512_add_ps(d, _mm512_permute_ps(d, 0xb1));  // lane 4j: row j, 4j + 2: row 4 + j
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, e);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) out[r] = lanes[4 * (r & 3) + 2 * (r >> 2)];
}

// What b32_chunk needs of channel c, computed once per channel. Group of block b: b >> shift
// (shift = log2(gs / 32)), or 0 for one group per row (single).
struct B32Channel {
    const uint8_t* w;
    const float* scales;
    const float* offsets;  // int4 offsets; NULL: symmetric
    bool single, broadcast;  // broadcast: one group per chunk
    int shift;
};

template <bool kInt4>
inline B32Channel b32_channel(const Job& job, int64_t c) {
    const si_qmatmul_params& p = *job.p;
    B32Channel ch;
    ch.w = weight_row(job, c);
    ch.scales = p.scales + c * job.n_groups;
    ch.offsets = kInt4 && p.offsets ? p.offsets + c * job.n_groups : nullptr;
    ch.single = p.group_size >= p.k;
    ch.shift = ch.single ? 0 : __builtin_ctzll(uint64_t(p.group_size / kActBlock));
    ch.broadcast = ch.single || ch.shift >= 4;
    return ch;
}

// Chunk ch of a channel as the 8 vpdpbusd operand vectors (int4 nibbles, or int8 w + 128), the
// 16 blocks' scales and int4 offsets in lane order; returns whether the chunk folds its offset
// term into the integers (int8: always, -128 * sum q_x for the + 128; symmetric int4: offsets
// NULL, or all -8 * scale, compared as floats since lanes past the last group hold 0 and
// -8 * 0 = -0).
// Always inlined: called per chunk in b32_vnni's loop, where the per-channel values it reads
// (cc, the lane-to-group index) stay in registers.
template <bool kInt4>
SI_TARGET_AVX512_VNNI __attribute__((always_inline)) inline bool b32_chunk(const Job& job, const B32Channel& cc, int64_t ch, __m512i (&wv)[8], __m512& sw,
                                                                          __m512& ow) {
    const int64_t chunk_bytes = kInt4 ? kChunk / 2 : kChunk;
    const uint8_t* wc = cc.w + ch * chunk_bytes;
    const int64_t left = job.row_bytes - ch * chunk_bytes;  // masked loads read nothing past the row
    if constexpr (kInt4) {
        const __m512i low4 = _mm512_set1_epi8(0x0f);
        __m512i v[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) v[i] = left >= chunk_bytes ? _mm512_loadu_si512(wc + 64 * i) : _mm512_maskz_loadu_epi8(bytes_mask(left - 64 * i), wc + 64 * i);
        transpose4_lanes(v[0], v[1], v[2], v[3]);
#pragma GCC unroll 4
        for (int d = 0; d < 4; ++d) {
            wv[2 * d] = _mm512_and_si512(v[d], low4);
            wv[2 * d + 1] = _mm512_and_si512(_mm512_srli_epi16(v[d], 4), low4);
        }
    } else {
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) wv[i] = left >= chunk_bytes ? _mm512_loadu_si512(wc + 64 * i) : _mm512_maskz_loadu_epi8(bytes_mask(left - 64 * i), wc + 64 * i);
        chunk_order_i8(wv);
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) wv[i] = _mm512_xor_si512(wv[i], _mm512_set1_epi8(char(0x80)));
    }
    const __m512 minus8 = _mm512_set1_ps(-8.0f);
    ow = _mm512_setzero_ps();
    if (cc.broadcast) {
        const int64_t g = cc.single ? 0 : (ch * kChunkBlocks) >> cc.shift;
        sw = _mm512_set1_ps(cc.scales[g]);
        if constexpr (kInt4) ow = cc.offsets ? _mm512_set1_ps(cc.offsets[g]) : _mm512_mul_ps(sw, minus8);
    } else {
        const __m512i group_index = _mm512_srli_epi32(block_of_lane(kInt4), unsigned(cc.shift));
        const int64_t g0 = (ch * kChunkBlocks) >> cc.shift;
        const __mmask16 m = simd::tail_mask16(std::min<int64_t>(16 >> cc.shift, job.n_groups - g0));
        sw = _mm512_permutexvar_ps(group_index, _mm512_maskz_loadu_ps(m, cc.scales + g0));
        if constexpr (kInt4) ow = cc.offsets ? _mm512_permutexvar_ps(group_index, _mm512_maskz_loadu_ps(m, cc.offsets + g0)) : _mm512_mul_ps(sw, minus8);
    }
    return kInt4 ? _mm512_cmp_ps_mask(ow, _mm512_mul_ps(sw, minus8), _CMP_EQ_OQ) == 0xffff : true;
}

// Prefetches into L2 chunks [ch0, ch1) of channel c's weight row, scales and offsets: three
// streams the hardware prefetchers follow less well than one. The empty volatile asm keeps it
// alive: GCC (12, -O3) otherwise finds that a function whose only effect is prefetching has no
// side effects and drops every call (int8 decode from DRAM: ~25% slower without it).
SI_TARGET_AVX512_VNNI inline void b32_prefetch_channel(const Job& job, int64_t c, int64_t ch0, int64_t ch1) {
    __asm__ volatile("");
    const si_qmatmul_params& p = *job.p;
    const int64_t chunk_bytes = p.format == SI_WEIGHT_I4 ? kChunk / 2 : kChunk;
    prefetch_range(weight_row(job, c), ch0 * chunk_bytes, std::min(ch1 * chunk_bytes, job.row_bytes));
    // Groups of those chunks (one group per row, or group sizes >= 32: a chunk's 16 blocks span
    // at most 16 groups).
    const int64_t n_groups = job.n_groups;
    const int64_t g0 = std::min(ch0 * kChunkBlocks, n_groups - 1), g1 = std::min(ch1 * kChunkBlocks, n_groups);
    const int64_t from = g0 * int64_t(sizeof(float)), to = g1 * int64_t(sizeof(float));
    prefetch_range(reinterpret_cast<const uint8_t*>(p.scales + c * n_groups), from, to);
    if (p.offsets && p.format == SI_WEIGHT_I4) prefetch_range(reinterpret_cast<const uint8_t*>(p.offsets + c * n_groups), from, to);
}

// A chunk of weights reordered ahead (b32_prepare_weights) for several blocks of rows.
struct B32Chunk {
    __m512i w[8];
    __m512 scale, offset;
};

// Channels [c0, c1) into out / fold ([c1 - c0][n_chunks]).
template <bool kInt4>
SI_TARGET_AVX512_VNNI void b32_prepare_weights(const Job& job, int64_t c0, int64_t c1, B32Chunk* out, uint8_t* fold) {
    for (int64_t c = c0; c < c1; ++c) {
        if (c + 2 < job.p->n) b32_prefetch_channel(job, c + 2, 0, job.n_chunks);
        const B32Channel cc = b32_channel<kInt4>(job, c);
        for (int64_t ch = 0; ch < job.n_chunks; ++ch) {
            B32Chunk& o = out[(c - c0) * job.n_chunks + ch];
            __m512i wv[8];
            __m512 sw, ow;
            fold[(c - c0) * job.n_chunks + ch] = b32_chunk<kInt4>(job, cc, ch, wv, sw, ow);
#pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) _mm512_store_si512(&o.w[j], wv[j]);
            _mm512_store_ps(&o.scale, sw);
            _mm512_store_ps(&o.offset, ow);
        }
    }
}

// Rows [r0, r0 + R) x channel c over chunks [ch0, ch1) of k, the weights reordered here
// (kBuffered false: b32_chunk, inlined) or read from chunks / fold (the channel's, from
// b32_prepare_weights); prefetch_c >= 0: prefetch that channel's chunks [prefetch_ch0,
// prefetch_ch1) first. The float accumulators start from zero at chunk 0, else from acc_io
// ([R][16]); after the last chunk the rows' outputs are stored, else acc_io. Group
// sizes: a power of two >= 32, or one group per row (>= k). Folded chunks start each lane
// from kMagic + the prepared -128 (or -8) * sum q_x, the others from kMagic and add
// offset x scale_x * sum q_x with one more FMA. Every row sees the same operations in the same
// order whatever R, the weights' source, the tile or the thread split (batch invariance).
template <int R, bool kInt4, bool kBuffered>
SI_TARGET_AVX512_VNNI void b32_vnni(const Job& job, int64_t r0, int64_t c, int64_t ch0, int64_t ch1, const B32Chunk* chunks, const uint8_t* fold,
                                    float* acc_io, int64_t prefetch_c, int64_t prefetch_ch0, int64_t prefetch_ch1) {
    const __m512i magic = _mm512_set1_epi32(kMagic);
    // float(d) of a lane holding kMagic + d: one subtraction (FP add pipes) instead of vcvtdq2ps.
    auto to_float = [magic](__m512i biased) SI_TARGET_AVX512_VNNI {
        return _mm512_sub_ps(_mm512_castsi512_ps(biased), _mm512_castsi512_ps(magic));
    };
    // Prepared x is chunk-major ([chunk][row], see quantize_blocks_vnni): the R rows of a chunk
    // are adjacent, one pointer serves them all.
    const int8_t* xc = reinterpret_cast<const int8_t*>(job.xb) + ch0 * job.xb_stride + r0 * kChunk;
    const float* sxc = job.xb_scale + ch0 * job.nb_stride + r0 * kChunkBlocks;
    const float* txc = job.xb_sum + ch0 * job.nb_stride + r0 * kChunkBlocks;
    const int32_t* ixc = job.xb_isum + ch0 * job.nb_stride + r0 * kChunkBlocks;
    __m512 acc[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r] = ch0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(acc_io + 16 * r);
    if (prefetch_c >= 0) b32_prefetch_channel(job, prefetch_c, prefetch_ch0, prefetch_ch1);
    const B32Channel cc = b32_channel<kInt4>(job, c);  // reordering here: once per channel
    for (int64_t ch = ch0; ch < ch1; ++ch) {
        __m512i wv[8];
        __m512 sw, ow;
        bool folded;
        if constexpr (kBuffered) {
#pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) wv[j] = _mm512_load_si512(&chunks[ch].w[j]);
            sw = _mm512_load_ps(&chunks[ch].scale);
            ow = _mm512_load_ps(&chunks[ch].offset);
            folded = fold[ch];
        } else {
            folded = b32_chunk<kInt4>(job, cc, ch, wv, sw, ow);
        }
        __m512i dot[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) dot[r] = folded ? _mm512_loadu_si512(ixc + r * kChunkBlocks) : magic;
        // j outside, rows inside: R independent vpdpbusd chains in flight.
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j)
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) dot[r] = _mm512_dpbusd_epi32(dot[r], wv[j], _mm512_loadu_si512(xc + r * kChunk + 64 * j));
        if (!kInt4 || folded) {
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(to_float(dot[r]), _mm512_mul_ps(sw, _mm512_loadu_ps(sxc + r * kChunkBlocks)), acc[r]);
        } else {
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                acc[r] = _mm512_fmadd_ps(to_float(dot[r]), _mm512_mul_ps(sw, _mm512_loadu_ps(sxc + r * kChunkBlocks)), acc[r]);
                acc[r] = _mm512_fmadd_ps(ow, _mm512_loadu_ps(txc + r * kChunkBlocks), acc[r]);
            }
        }
        xc += job.xb_stride;
        sxc += job.nb_stride;
        txc += job.nb_stride;
        ixc += job.nb_stride;
    }
    if (ch1 < job.n_chunks) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) _mm512_store_ps(acc_io + 16 * r, acc[r]);
        return;
    }
    float dots[R];
    reduce_rows<R>(acc, dots);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) store(job, r0 + r, c, dots[r]);
}

constexpr int kB32Rows = 8;           // rows per b32_vnni call
constexpr int64_t kB32XBytes = 24576;  // prepared x per block of rows and segment of k: half of L1
constexpr int64_t kB32TileBytes = 512 << 10;  // int4 weights a tile may hold for all its rows: half of L2

// Rows [r, r + R) x channels [c0, c1) (at most kColBlock), k in segments whose prepared x
// stays in L1 while the channels pass over it (k = 5632, 8 rows: 45 KB of x, which L2 alone
// fed at half the speed). Splitting k keeps every lane's sequence of operations.
// Weights reordered in the kernel are prefetched two channels ahead: by the first block of
// rows (the others find them in cache), and the next channel block's by the last.
inline int64_t b32_segment(int rows) { return std::max<int64_t>(1, kB32XBytes / (rows * kChunk)); }

template <bool kInt4, int R>
void b32_rows(const Job& job, int64_t r, int64_t c0, int64_t c1, bool first, bool last, const B32Chunk* chunks, const uint8_t* fold) {
    alignas(64) float acc_io[kColBlock][R][16];  // when k is split: then c1 - c0 <= kColBlock
    const int64_t segment = b32_segment(R);
    const bool split = segment < job.n_chunks;
    for (int64_t ch0 = 0; ch0 < job.n_chunks; ch0 += segment) {
        const int64_t ch1 = std::min(ch0 + segment, job.n_chunks);
        for (int64_t c = c0; c < c1; ++c) {
            const int64_t ahead = c + 2, at = (c - c0) * job.n_chunks;
            int64_t pf = -1, pf0 = ch0, pf1 = ch1;
            if (!chunks && ahead < job.p->n) {
                if (ahead < c1 && first) pf = ahead;
                if (ahead >= c1 && last && ch1 == job.n_chunks) pf = ahead, pf0 = 0, pf1 = job.n_chunks;
            }
            float* io = split ? &acc_io[c - c0][0][0] : nullptr;
            if (chunks) b32_vnni<R, kInt4, true>(job, r, c, ch0, ch1, chunks + at, fold + at, io, -1, 0, 0);
            else b32_vnni<R, kInt4, false>(job, r, c, ch0, ch1, nullptr, nullptr, io, pf, pf0, pf1);
        }
    }
}

template <bool kInt4>
void b32_row_blocks(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1, const B32Chunk* chunks, const uint8_t* fold) {
    int64_t r = r0;
    for (; r + kB32Rows <= r1; r += kB32Rows) b32_rows<kInt4, kB32Rows>(job, r, c0, c1, r == r0, r + kB32Rows == r1, chunks, fold);
    switch (r1 - r) {
        case 7: b32_rows<kInt4, 7>(job, r, c0, c1, r == r0, true, chunks, fold); break;
        case 6: b32_rows<kInt4, 6>(job, r, c0, c1, r == r0, true, chunks, fold); break;
        case 5: b32_rows<kInt4, 5>(job, r, c0, c1, r == r0, true, chunks, fold); break;
        case 4: b32_rows<kInt4, 4>(job, r, c0, c1, r == r0, true, chunks, fold); break;
        case 3: b32_rows<kInt4, 3>(job, r, c0, c1, r == r0, true, chunks, fold); break;
        case 2: b32_rows<kInt4, 2>(job, r, c0, c1, r == r0, true, chunks, fold); break;
        case 1: b32_rows<kInt4, 1>(job, r, c0, c1, r == r0, true, chunks, fold); break;
        default: break;
    }
}

// Rows in blocks of kB32Rows (their prepared x stays in L1 while the tile's channels pass over
// it), channel by channel inside (one weight stream per thread, what the prefetchers serve
// best; later row blocks find the tile's weights in L2). int8 weights with more than one
// block of rows reorder each block of kColBlock channels once into a per-thread buffer first
// (2 threads, 2048 x 2048: m = 12 and 16 ~25% faster, m = 64 ~15%; int4's cheaper reordering
// does better in registers).
template <bool kInt4>
void tile_b32(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    if (kInt4 || r1 - r0 <= kB32Rows) {
        // int4 with unsplit k and a tile whose weights stay in L2 (kB32TileBytes): each block
        // of rows passes over all the channels (4-8% faster than block by block where they
        // fit; int8: 10% slower); else kColBlock channels at a time. (Without the size bound,
        // a tile of the 32000 x 2048 LM head, 4.6 MB with 2 threads, came from DRAM again for
        // every block of rows, unprefetched: m = 16 ran 20-30% slower on one thread.)
        const bool tile_in_l2 = (c1 - c0) * job.row_bytes <= kB32TileBytes;
        if (kInt4 && tile_in_l2 && job.n_chunks <= b32_segment(kB32Rows)) return b32_row_blocks<kInt4>(job, r0, r1, c0, c1, nullptr, nullptr);
        for (int64_t cb = c0; cb < c1; cb += kColBlock) b32_row_blocks<kInt4>(job, r0, r1, cb, std::min(cb + kColBlock, c1), nullptr, nullptr);
        return;
    }
    thread_local std::vector<uint8_t> buffer;
    const size_t count = size_t(kColBlock) * size_t(job.n_chunks);
    const size_t bytes = count * (sizeof(B32Chunk) + 1) + 64;
    if (buffer.size() < bytes) buffer.resize(bytes);
    const uintptr_t at = reinterpret_cast<uintptr_t>(buffer.data());
    B32Chunk* chunks = reinterpret_cast<B32Chunk*>(buffer.data() + (64 - at % 64) % 64);
    uint8_t* fold = reinterpret_cast<uint8_t*>(chunks + count);
    for (int64_t cb = c0; cb < c1; cb += kColBlock) {
        const int64_t ce = std::min(cb + kColBlock, c1);
        b32_prepare_weights<kInt4>(job, cb, ce, chunks, fold);
        b32_row_blocks<kInt4>(job, r0, r1, cb, ce, chunks, fold);
    }
}

// ---- activation preparation ------------------------------------------------------------------

// x rows [r0, r1) -> split order (per chunk of 32 k: the 16 even k, then the 16 odd), zero past k.
void split_rows(const Job& job, int64_t r0, int64_t r1) {
    const si_qmatmul_params& p = *job.p;
    float* out_base = const_cast<float*>(job.xs);
    for (int64_t r = r0; r < r1; ++r) {
        const float* x = p.x + r * p.x_stride;
        float* out = out_base + r * job.xs_stride;
        for (int64_t c = 0; c < job.xs_stride; c += kSplit) {
            for (int64_t l = 0; l < 16; ++l) {
                const int64_t even = c + 2 * l, odd = even + 1;
                out[c + l] = even < p.k ? x[even] : 0.0f;
                out[c + 16 + l] = odd < p.k ? x[odd] : 0.0f;
            }
        }
    }
}

// Row quantization for W8A8 by the int8 KV-cache rule (common/kv_quant.h). The vector forms
// divide and round exactly as the scalar one does (both correctly rounded), so every path
// produces the same q and scale.
void quantize_rows_scalar(const Job& job, int64_t r0, int64_t r1) {
    const si_qmatmul_params& p = *job.p;
    for (int64_t r = r0; r < r1; ++r) {
        const float* x = p.x + r * p.x_stride;
        uint8_t* out = const_cast<uint8_t*>(job.xq) + r * job.xq_stride;
        float max_abs = 0.0f;
        for (int64_t i = 0; i < p.k; ++i) max_abs = std::fmax(max_abs, std::fabs(x[i]));
        const float scale = int8_kv_scale(max_abs);
        for (int64_t i = 0; i < p.k; ++i) out[i] = uint8_t(quantize_int8_kv(x[i], scale) + job.xq_offset);
        std::memset(out + p.k, job.xq_offset, size_t(job.xq_stride - p.k));
        const_cast<float*>(job.x_scale)[r] = scale;
    }
}

SI_TARGET_AVX2 void quantize_rows_avx2(const Job& job, int64_t r0, int64_t r1) {
    const si_qmatmul_params& p = *job.p;
    const int64_t k = p.k;
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t r = r0; r < r1; ++r) {
        const float* x = p.x + r * p.x_stride;
        uint8_t* out = const_cast<uint8_t*>(job.xq) + r * job.xq_stride;
        __m256 m = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 <= k; i += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
        if (i < k) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_maskload_ps(x + i, simd::tail_mask8(k - i)), abs_mask));
        const float scale = int8_kv_scale(simd::hmax256(m));
        if (scale == 0.0f) {
            std::memset(out, job.xq_offset, size_t(job.xq_stride));
        } else {
            const __m256 sv = _mm256_set1_ps(scale), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
            const __m256i offset = _mm256_set1_epi32(job.xq_offset);
            for (i = 0; i < k; i += 8) {
                const __m256 xv = i + 8 <= k ? _mm256_loadu_ps(x + i) : _mm256_maskload_ps(x + i, simd::tail_mask8(k - i));
                const __m256 q = _mm256_round_ps(_mm256_div_ps(xv, sv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                const __m256i qi = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(q, lo), hi)), offset);
                alignas(32) int32_t lanes[8];
                _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), qi);
                const int64_t count = std::min<int64_t>(8, k - i);
                for (int64_t l = 0; l < count; ++l) out[i + l] = uint8_t(lanes[l]);
            }
            std::memset(out + k, job.xq_offset, size_t(job.xq_stride - k));
        }
        const_cast<float*>(job.x_scale)[r] = scale;
    }
}

SI_TARGET_AVX512 void quantize_rows_avx512(const Job& job, int64_t r0, int64_t r1) {
    const si_qmatmul_params& p = *job.p;
    const int64_t k = p.k;
    for (int64_t r = r0; r < r1; ++r) {
        const float* x = p.x + r * p.x_stride;
        uint8_t* out = const_cast<uint8_t*>(job.xq) + r * job.xq_stride;
        __m512 m = _mm512_setzero_ps();
        for (int64_t i = 0; i < k; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_maskz_loadu_ps(simd::tail_mask16(k - i), x + i)));
        const float scale = int8_kv_scale(_mm512_reduce_max_ps(m));
        if (scale == 0.0f) {
            std::memset(out, job.xq_offset, size_t(job.xq_stride));
        } else {
            const __m512 sv = _mm512_set1_ps(scale), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
            const __m512i offset = _mm512_set1_epi32(job.xq_offset);
            for (int64_t i = 0; i < k; i += 16) {
                const __mmask16 mask = simd::tail_mask16(k - i);
                const __m512 q = _mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(mask, x + i), sv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                const __m512i qi = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(q, lo), hi)), offset);
                _mm512_mask_cvtepi32_storeu_epi8(out + i, mask, qi);
            }
            std::memset(out + k, job.xq_offset, size_t(job.xq_stride - k));
        }
        const_cast<float*>(job.x_scale)[r] = scale;
    }
}

// Block-wise quantization of x rows (same rule as the ref: common/kv_quant.h per 32-k block)
// for the generic loops: q in k order, zero (q = 0) up to xb_stride, and each block's
// scale_x and scale_x * sum q.
void quantize_blocks_scalar(const Job& job, int64_t r0, int64_t r1) {
    const si_qmatmul_params& p = *job.p;
    const int64_t k = p.k;
    for (int64_t r = r0; r < r1; ++r) {
        const float* x = p.x + r * p.x_stride;
        uint8_t* out = const_cast<uint8_t*>(job.xb) + r * job.xb_stride;
        float* sx = const_cast<float*>(job.xb_scale) + r * job.nb_stride;
        float* tx = const_cast<float*>(job.xb_sum) + r * job.nb_stride;
        std::memset(out, 0, size_t(job.xb_stride));
        std::fill(sx, sx + job.nb_stride, 0.0f);
        std::fill(tx, tx + job.nb_stride, 0.0f);
        for (int64_t b = 0, begin = 0; begin < k; ++b, begin += kActBlock) {
            const int64_t end = std::min(begin + kActBlock, k);
            float max_abs = 0.0f;
            for (int64_t i = begin; i < end; ++i) max_abs = std::fmax(max_abs, std::fabs(x[i]));
            const float scale = int8_kv_scale(max_abs);
            int32_t sum = 0;
            for (int64_t i = begin; i < end; ++i) {
                const int8_t q = quantize_int8_kv(x[i], scale);
                sum += q;
                out[i] = uint8_t(q);
            }
            sx[b] = scale;
            tx[b] = scale * float(sum);
        }
    }
}

// The same rule, vectorized, for the VNNI kernels (b32_vnni): per chunk of 16 blocks, q in the
// kernels' vector order (the weights' reordering applied to x: k order for int8 weights, the
// even and odd k of each block apart for int4 weights, whose bytes hold k pairs), and the
// blocks' scale_x, scale_x * sum q (int4) and -128 * sum q (int8) or -8 * sum q (int4) in lane
// order.
// Blocks past k are zero.
template <bool kInt4>
SI_TARGET_AVX512_VNNI void quantize_blocks_vnni(const Job& job, int64_t r0, int64_t r1) {
    const si_qmatmul_params& p = *job.p;
    const int64_t k = p.k;
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    alignas(64) int8_t natural[kChunk];  // int8: 16 blocks in k order; int4: even k (16 bytes per block), then odd k
    alignas(64) float scale_lanes[kChunkBlocks];
    alignas(64) float sum_lanes[kChunkBlocks];
    alignas(64) int32_t isum_lanes[kChunkBlocks];
    for (int64_t r = r0; r < r1; ++r) {
        const float* x = p.x + r * p.x_stride;
        for (int64_t ch = 0; ch < job.n_chunks; ++ch) {
            for (int b = 0; b < kChunkBlocks; ++b) {
                const int64_t begin = (ch * kChunkBlocks + b) * kActBlock;
                const int64_t count = std::max<int64_t>(0, std::min(kActBlock, k - begin));
                __m512 a = _mm512_maskz_loadu_ps(simd::tail_mask16(count), x + begin);
                __m512 c = _mm512_maskz_loadu_ps(simd::tail_mask16(std::max<int64_t>(0, count - 16)), x + begin + 16);
                // max_ps returns its second operand when either is NaN: NaN x is skipped, as fmaxf does.
                const __m512 m = _mm512_max_ps(_mm512_abs_ps(c), _mm512_max_ps(_mm512_abs_ps(a), _mm512_setzero_ps()));
                const float scale = int8_kv_scale(_mm512_reduce_max_ps(m));
                __m512i qa = _mm512_setzero_si512(), qc = _mm512_setzero_si512();
                if (scale != 0.0f) {
                    if constexpr (kInt4) {
                        const __m512 e = _mm512_permutex2var_ps(a, even, c);
                        c = _mm512_permutex2var_ps(a, odd, c);
                        a = e;
                    }
                    const __m512 sv = _mm512_set1_ps(scale);
                    const int rounding = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
                    // max_ps(q, -127) is -127 for NaN q, as in quantize_int8_kv.
                    qa = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_roundscale_ps(_mm512_div_ps(a, sv), rounding), lo), hi));
                    qc = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_roundscale_ps(_mm512_div_ps(c, sv), rounding), lo), hi));
                }
                if constexpr (kInt4) {
                    _mm_store_si128(reinterpret_cast<__m128i*>(natural + 16 * b), _mm512_cvtepi32_epi8(qa));
                    _mm_store_si128(reinterpret_cast<__m128i*>(natural + kChunk / 2 + 16 * b), _mm512_cvtepi32_epi8(qc));
                } else {
                    _mm_store_si128(reinterpret_cast<__m128i*>(natural + 32 * b), _mm512_cvtepi32_epi8(qa));
                    _mm_store_si128(reinterpret_cast<__m128i*>(natural + 32 * b + 16), _mm512_cvtepi32_epi8(qc));
                }
                const int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qc));
                const int lane = lane_of_block(kInt4, b);
                scale_lanes[lane] = scale;
                sum_lanes[lane] = scale * float(sum);
                isum_lanes[lane] = kMagic + (kInt4 ? -8 : -128) * sum;
            }
            int8_t* dst = reinterpret_cast<int8_t*>(const_cast<uint8_t*>(job.xb)) + ch * job.xb_stride + r * kChunk;
            if constexpr (kInt4) {
                for (int half = 0; half < 2; ++half) {  // even k -> vectors 0, 2, 4, 6; odd k -> 1, 3, 5, 7
                    __m512i v[4];
                    for (int i = 0; i < 4; ++i) v[i] = _mm512_load_si512(natural + half * (kChunk / 2) + 64 * i);
                    transpose4_lanes(v[0], v[1], v[2], v[3]);
                    for (int d = 0; d < 4; ++d) _mm512_storeu_si512(dst + 64 * (2 * d + half), v[d]);
                }
            } else {
                __m512i v[8];
                for (int i = 0; i < 8; ++i) v[i] = _mm512_load_si512(natural + 64 * i);
                chunk_order_i8(v);
                for (int i = 0; i < 8; ++i) _mm512_storeu_si512(dst + 64 * i, v[i]);
            }
            const int64_t at = ch * job.nb_stride + r * kChunkBlocks;
            _mm512_storeu_ps(const_cast<float*>(job.xb_scale) + at, _mm512_load_ps(scale_lanes));
            if constexpr (kInt4) _mm512_storeu_ps(const_cast<float*>(job.xb_sum) + at, _mm512_load_ps(sum_lanes));
            _mm512_storeu_si512(const_cast<int32_t*>(job.xb_isum) + at, _mm512_load_si512(isum_lanes));
        }
    }
}

// ---- blocking and dispatch -------------------------------------------------------------------

// One kernel family: run<R, J> computes rows [r0, r0 + R) x channels [c0, c0 + J). kJ1: the
// channel block for a single row; kJ: for several rows, which come in blocks of 4 and a
// remainder. Each of the J channels is a separate stream of weight rows: int4 decode reads
// 4 streams faster than 8 (Zen 4, m = 1: ~1.5x), int8 was the same at 4 and 8.
#define SI_QMATMUL_FAMILY(NAME, KERNEL, J1, JN)                                                     \
    struct NAME {                                                                                   \
        static constexpr int kJ1 = J1, kJ = JN;                                                     \
        template <int R, int J>                                                                     \
        static void run(const Job& job, int64_t r0, int64_t c0, bool prefetch_next) {               \
            KERNEL(job, r0, c0, prefetch_next);                                                     \
        }                                                                                           \
    }

SI_QMATMUL_FAMILY(I8fAvx2, (i8f_avx2<R, J>), 4, 2);
SI_QMATMUL_FAMILY(I4fAvx2, (i4f_avx2<R, J>), 4, 2);
SI_QMATMUL_FAMILY(I8i8Avx2, (i8i8_avx2<R, J, false>), 4, 2);
SI_QMATMUL_FAMILY(I8i8Avx2Small, (i8i8_avx2<R, J, true>), 4, 2);
SI_QMATMUL_FAMILY(I8fAvx512, (i8f_avx512<R, J>), 8, 4);
SI_QMATMUL_FAMILY(I4fAvx512, (i4f_avx512<R, J, false>), 4, 4);
SI_QMATMUL_FAMILY(I4fAvx512G16, (i4f_avx512<R, J, true>), 4, 4);
SI_QMATMUL_FAMILY(I8i8VnniBlock, (i8i8_vnni_block<R, J, false>), 8, 4);
SI_QMATMUL_FAMILY(I8i8VnniBlockSmall, (i8i8_vnni_block<R, J, true>), 8, 4);
#undef SI_QMATMUL_FAMILY

template <class K, int J>
void rows_with(const Job& job, int64_t r0, int64_t r1, int64_t c) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) K::template run<4, J>(job, r, c, r == r0);
    switch (r1 - r) {
        case 3: K::template run<3, J>(job, r, c, r == r0); break;
        case 2: K::template run<2, J>(job, r, c, r == r0); break;
        case 1: K::template run<1, J>(job, r, c, r == r0); break;
        default: break;
    }
}

template <class K>
void tile_with(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    int64_t c = c0;
    if (r1 - r0 == 1) {
        for (; c + K::kJ1 <= c1; c += K::kJ1) K::template run<1, K::kJ1>(job, r0, c, true);
    } else {
        for (; c + K::kJ <= c1; c += K::kJ) rows_with<K, K::kJ>(job, r0, r1, c);
    }
    for (; c < c1; ++c) rows_with<K, 1>(job, r0, r1, c);
}

// VNNI tiles: up to 4 rows channel by channel (memory-bound: one stream per thread), more
// rows through the channel-blocked kernel (compute-bound).
template <bool kSmall>
void tile_vnni(const Job& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    if (r1 - r0 > 4) {
        if constexpr (kSmall) tile_with<I8i8VnniBlockSmall>(job, r0, r1, c0, c1);
        else tile_with<I8i8VnniBlock>(job, r0, r1, c0, c1);
        return;
    }
    for (int64_t c = c0; c < c1; ++c) {
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) i8i8_vnni<4, kSmall>(job, r, c);
        switch (r1 - r) {
            case 3: i8i8_vnni<3, kSmall>(job, r, c); break;
            case 2: i8i8_vnni<2, kSmall>(job, r, c); break;
            case 1: i8i8_vnni<1, kSmall>(job, r, c); break;
            default: break;
        }
    }
}

using TileFn = void (*)(const Job&, int64_t, int64_t, int64_t, int64_t);
using PrepareFn = void (*)(const Job&, int64_t, int64_t);

// The block kernel for this call: a vector family when the ISA level has one for the format,
// activation mode and group size, else the generic loops.
TileFn choose_tile(Isa isa, const si_qmatmul_params& p) {
    const int64_t gs = p.group_size;
    const bool single = gs >= p.k;
    if (isa == Isa::Scalar) return block_generic;
    const bool avx512 = isa == Isa::Avx512;
    if (p.activations == SI_ACTIVATIONS_I8_BLOCK32) {
        const bool power_of_two = gs >= kActBlock && (gs & (gs - 1)) == 0;
        if (avx512 && has_avx512_vnni() && (single || power_of_two))
            return p.format == SI_WEIGHT_I4 ? tile_b32<true> : tile_b32<false>;
        return block_generic;
    }
    if (p.activations == SI_ACTIVATIONS_I8) {
        if (avx512 && has_avx512_vnni()) {
            if (single || gs % 64 == 0) return tile_vnni<false>;
            if (gs == 16 || gs == 32) return tile_vnni<true>;
        } else {
            if (single || gs % 32 == 0) return tile_with<I8i8Avx2>;
            if (gs == 16) return tile_with<I8i8Avx2Small>;
        }
        return block_generic;
    }
    if (p.format == SI_WEIGHT_I8) {
        if (avx512 && (single || gs % 16 == 0)) return tile_with<I8fAvx512>;
        if (!avx512 && (single || gs % 8 == 0)) return tile_with<I8fAvx2>;
        return block_generic;
    }
    if (avx512) {
        if (single || gs % 32 == 0) return tile_with<I4fAvx512>;
        if (gs == 16) return tile_with<I4fAvx512G16>;
    } else if (single || gs % 16 == 0) {
        return tile_with<I4fAvx2>;
    }
    return block_generic;
}

// Per-call scratch for prepared activations, kept by the calling thread between calls
// (workers only read it). 64-byte aligned.
uint8_t* scratch(size_t bytes) {
    thread_local std::vector<uint8_t> buffer;
    if (buffer.size() < bytes + 64) buffer.resize(bytes + 64);
    const uintptr_t at = reinterpret_cast<uintptr_t>(buffer.data());
    return buffer.data() + ((64 - at % 64) % 64);
}

}  // namespace

si_result qmatmul(const Env& env, const si_qmatmul_params& p) {
    if (p.m == 0) return SI_OK;
    Job job{};
    job.p = &p;
    job.n_groups = (int64_t(p.k) + p.group_size - 1) / p.group_size;
    job.row_bytes = p.format == SI_WEIGHT_I4 ? (int64_t(p.k) + 1) / 2 : p.k;
    const Isa isa = env.kernels.isa;
    const TileFn tile = choose_tile(isa, p);
    const bool vector = tile != block_generic;

    // Prepare the activations once per call, split over rows.
    PrepareFn prepare = nullptr;
    if (p.activations == SI_ACTIVATIONS_I8_BLOCK32) {
        const int64_t n_blocks = (int64_t(p.k) + kActBlock - 1) / kActBlock;
        job.n_chunks = (n_blocks + kChunkBlocks - 1) / kChunkBlocks;
        size_t xb_bytes, floats;
        if (vector) {  // chunk-major
            job.xb_stride = int64_t(p.m) * kChunk;
            job.nb_stride = int64_t(p.m) * kChunkBlocks;
            xb_bytes = size_t(job.n_chunks) * size_t(job.xb_stride);
            floats = size_t(job.n_chunks) * size_t(job.nb_stride);
        } else {  // row-major
            job.xb_stride = (int64_t(p.k) + 63) / 64 * 64;
            job.nb_stride = (n_blocks + 15) / 16 * 16;
            xb_bytes = size_t(p.m) * size_t(job.xb_stride);
            floats = size_t(p.m) * size_t(job.nb_stride);
        }
        uint8_t* buffer = scratch(xb_bytes + 3 * floats * sizeof(float));
        job.xb = buffer;
        job.xb_scale = reinterpret_cast<const float*>(buffer + xb_bytes);  // xb_bytes is a multiple of 64
        job.xb_sum = job.xb_scale + floats;
        job.xb_isum = reinterpret_cast<const int32_t*>(job.xb_sum + floats);
        prepare = !vector ? quantize_blocks_scalar : p.format == SI_WEIGHT_I4 ? quantize_blocks_vnni<true> : quantize_blocks_vnni<false>;
    } else if (p.activations == SI_ACTIVATIONS_I8) {
        job.xq_stride = (int64_t(p.k) + 63) / 64 * 64;
        job.xq_offset = vector && isa == Isa::Avx512 && has_avx512_vnni() ? 128 : 0;
        const size_t xq_bytes = size_t(p.m) * size_t(job.xq_stride);
        uint8_t* buffer = scratch(xq_bytes + size_t(p.m) * sizeof(float));
        job.xq = buffer;
        job.x_scale = reinterpret_cast<const float*>(buffer + xq_bytes);  // xq_bytes is a multiple of 64
        prepare = isa == Isa::Avx512 ? quantize_rows_avx512 : isa == Isa::Avx2 ? quantize_rows_avx2 : quantize_rows_scalar;
    } else if (p.format == SI_WEIGHT_I4 && vector) {
        job.xs_stride = (int64_t(p.k) + kSplit - 1) / kSplit * kSplit;
        job.xs = reinterpret_cast<const float*>(scratch(size_t(p.m) * size_t(job.xs_stride) * sizeof(float)));
        prepare = split_rows;
    }
    if (prepare) {
        const int64_t row_grain = std::max<int64_t>(1, (int64_t(1) << 15) / p.k);
        env.pool.parallel_for(p.m, row_grain, [&](int64_t begin, int64_t end) { prepare(job, begin, end); });
    }

    const int64_t col_blocks = (p.n + kColBlock - 1) / kColBlock;
    const int64_t row_blocks = (p.m + kRowBlock - 1) / kRowBlock;
    // As in the dense matmul: items are (column block, row block), row block fastest; small
    // problems stay on one thread.
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
