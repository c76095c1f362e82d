// matmul.cpp (cpu): y[m, n] = x[m, k] . w[n, k]^T (+ bias), the decode hot path.
//
// Work splits over output channels (and over blocks of 64 rows when m is large). A block
// kernel computes R rows x J channels at once, so each weight vector (converted from
// f16/bf16 in registers) feeds R FMAs and each x vector J FMAs. Every output element owns
// one vector accumulator that walks k in lane-wide steps in order, takes the tail with a
// masked (or zero-padded) load, and is reduced in a fixed order: the same arithmetic
// whatever R, J, m or the thread count, so a row's result is bit-identical in any batch.
#include "common/dtype.h"
#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

#include <algorithm>

namespace si::cpu {
namespace {

constexpr int64_t kColBlock = 16;  // channels per work item (a multiple of every J below)
constexpr int64_t kRowBlock = 64;  // rows per work item: the whole batch in decode

template <si_dtype D>
constexpr int elem_size() { return D == SI_DTYPE_F32 ? 4 : 2; }

inline const uint8_t* weight_row(const si_matmul_params& p, int64_t channel, int elem_size) {
    return static_cast<const uint8_t*>(p.w) + channel * p.k * elem_size;
}

inline float finish(const si_matmul_params& p, int64_t channel, float dot) {
    return p.bias ? dot + p.bias[channel] : dot;
}

// ---- scalar ------------------------------------------------------------------------------

template <si_dtype D>
inline float load_scalar(const void* row, int64_t i) {
    if constexpr (D == SI_DTYPE_F32) return static_cast<const float*>(row)[i];
    else if constexpr (D == SI_DTYPE_F16) return f16_to_f32(static_cast<const uint16_t*>(row)[i]);
    else return bf16_to_f32(static_cast<const uint16_t*>(row)[i]);
}

template <si_dtype D>
void tile_scalar(const si_matmul_params& p, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    constexpr int kLanes = 8;  // eight partial sums, like one AVX2 register
    for (int64_t c = c0; c < c1; ++c) {
        const void* w = weight_row(p, c, elem_size<D>());
        for (int64_t r = r0; r < r1; ++r) {
            const float* x = p.x + r * p.x_stride;
            float lanes[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int64_t i = 0; i < p.k; ++i) lanes[i % kLanes] += x[i] * load_scalar<D>(w, i);
            const float dot = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
            p.y[r * p.y_stride + c] = finish(p, c, dot);
        }
    }
}

// ---- AVX2 --------------------------------------------------------------------------------

template <si_dtype D, int R, int J>
SI_TARGET_AVX2 void block_avx2(const si_matmul_params& p, int64_t r0, int64_t c0, bool prefetch_next) {
    const int64_t k = p.k;
    const float* x[R];
    const void* w[J];
    __m256 acc[R][J];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) x[r] = p.x + (r0 + r) * p.x_stride;
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) w[j] = weight_row(p, c0 + j, elem_size<D>());
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) acc[r][j] = _mm256_setzero_ps();
    }
    int64_t i = 0;
    // Linear L2 prefetch of the next channel block, as in block_avx512.
    const char* next_block = static_cast<const char*>(w[0]) + J * k * elem_size<D>();
    constexpr int kBytesPerStep = J * 8 * elem_size<D>();
    for (; i + 8 <= k; i += 8) {
        __m256 wv[J];
        // Steps consume less than a line here: one prefetch per line crossed.
        const int64_t line_now = (i / 8) * kBytesPerStep / 64, line_next = (i / 8 + 1) * kBytesPerStep / 64;
        if (prefetch_next) {
            for (int64_t l = line_now; l < line_next; ++l) _mm_prefetch(next_block + 64 * l, _MM_HINT_T1);
        }
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) wv[j] = simd::load8<D>(w[j], i);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m256 xv = _mm256_loadu_ps(x[r] + i);
#pragma GCC unroll 8
            for (int j = 0; j < J; ++j) acc[r][j] = _mm256_fmadd_ps(xv, wv[j], acc[r][j]);
        }
    }
    if (i < k) {
        const __m256i mask = simd::tail_mask8(k - i);
        __m256 wv[J];
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) wv[j] = simd::load8_partial<D>(w[j], i, k - i);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m256 xv = _mm256_maskload_ps(x[r] + i, mask);
#pragma GCC unroll 8
            for (int j = 0; j < J; ++j) acc[r][j] = _mm256_fmadd_ps(xv, wv[j], acc[r][j]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) p.y[(r0 + r) * p.y_stride + c0 + j] = finish(p, c0 + j, simd::hsum256(acc[r][j]));
    }
}

// All rows of [r0, r1) for channels [c, c + J): blocks of 4 rows, then the remainder.
template <si_dtype D, int J>
SI_TARGET_AVX2 void rows_avx2(const si_matmul_params& p, int64_t r0, int64_t r1, int64_t c) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) block_avx2<D, 4, J>(p, r, c, r == r0);
    switch (r1 - r) {
        case 3: block_avx2<D, 3, J>(p, r, c, r == r0); break;
        case 2: block_avx2<D, 2, J>(p, r, c, r == r0); break;
        case 1: block_avx2<D, 1, J>(p, r, c, r == r0); break;
        default: break;
    }
}

template <si_dtype D>
SI_TARGET_AVX2 void tile_avx2(const si_matmul_params& p, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    int64_t c = c0;
    if (r1 - r0 == 1) {
        // One row (decode): more channels per block to keep enough independent FMAs.
        for (; c + 4 <= c1; c += 4) block_avx2<D, 1, 4>(p, r0, c, true);
    } else {
        for (; c + 2 <= c1; c += 2) rows_avx2<D, 2>(p, r0, r1, c);
    }
    for (; c < c1; ++c) rows_avx2<D, 1>(p, r0, r1, c);
}

// ---- AVX-512 -----------------------------------------------------------------------------

// prefetch_next: whether to stream the next channel block into L2 (only the first row group
// of a tile does; later groups find it there, and the prefetches would only take load slots).
template <si_dtype D, int R, int J>
SI_TARGET_AVX512 void block_avx512(const si_matmul_params& p, int64_t r0, int64_t c0, bool prefetch_next) {
    const int64_t k = p.k;
    const float* x[R];
    const void* w[J];
    __m512 acc[R][J];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) x[r] = p.x + (r0 + r) * p.x_stride;
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) w[j] = weight_row(p, c0 + j, elem_size<D>());
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) acc[r][j] = _mm512_setzero_ps();
    }
    int64_t i = 0;
    // The J weight rows of the next block follow these ones in memory: stream them into L2
    // as one linear prefetch, as many bytes per step as this step consumes. (The hardware
    // prefetchers alone track J concurrent rows poorly, and stop at every 4 KiB page.)
    const char* next_block = static_cast<const char*>(w[0]) + J * k * elem_size<D>();
    constexpr int kLinesPerStep = (J * 16 * elem_size<D>() + 63) / 64;
    for (; i + 16 <= k; i += 16) {
        __m512 wv[J];
        const char* ahead = next_block + (i / 16) * kLinesPerStep * 64;
        if (prefetch_next) {
#pragma GCC unroll 8
            for (int l = 0; l < kLinesPerStep; ++l) _mm_prefetch(ahead + 64 * l, _MM_HINT_T1);
        }
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) wv[j] = simd::load16<D>(w[j], i);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m512 xv = _mm512_loadu_ps(x[r] + i);
#pragma GCC unroll 8
            for (int j = 0; j < J; ++j) acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
        }
    }
    if (i < k) {
        // Masked loads read nothing past k (x rows may be followed by other data).
        const __mmask16 mask = simd::tail_mask16(k - i);
        __m512 wv[J];
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) wv[j] = simd::load16_masked<D>(w[j], i, mask);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m512 xv = _mm512_maskz_loadu_ps(mask, x[r] + i);
#pragma GCC unroll 8
            for (int j = 0; j < J; ++j) acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) p.y[(r0 + r) * p.y_stride + c0 + j] = finish(p, c0 + j, _mm512_reduce_add_ps(acc[r][j]));
    }
}

template <si_dtype D, int J>
SI_TARGET_AVX512 void rows_avx512(const si_matmul_params& p, int64_t r0, int64_t r1, int64_t c) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) block_avx512<D, 4, J>(p, r, c, r == r0);
    switch (r1 - r) {
        case 3: block_avx512<D, 3, J>(p, r, c, r == r0); break;
        case 2: block_avx512<D, 2, J>(p, r, c, r == r0); break;
        case 1: block_avx512<D, 1, J>(p, r, c, r == r0); break;
        default: break;
    }
}

// Batches of 8+ rows: blocks of 6 rows x 4 channels (24 accumulators): each converted weight
// vector feeds 6 FMAs, so the f16/bf16 conversions take a smaller share of the FP pipes.
// Measured against it and slower on the Zen 5 this was tuned on (m = 16, TinyLlama and LM-head
// shapes): 4x6, 3x8 and 4x5 blocks (more conversions per FMA); k in L1-sized chunks with the
// accumulators kept in memory between chunks (short weight streams the prefetchers follow
// poorly); converting each 4-channel block to an f32 buffer once for all row groups; software
// prefetch of the x rows into L1 (4-16 steps ahead); 8 x 3 blocks (half speed: register pressure).
template <si_dtype D>
SI_TARGET_AVX512 void rows8_avx512(const si_matmul_params& p, int64_t r0, int64_t r1, int64_t c) {
    int64_t r = r0;
    for (; r + 6 <= r1; r += 6) block_avx512<D, 6, 4>(p, r, c, r == r0);
    for (; r + 4 <= r1; r += 4) block_avx512<D, 4, 4>(p, r, c, r == r0);
    switch (r1 - r) {
        case 3: block_avx512<D, 3, 4>(p, r, c, r == r0); break;
        case 2: block_avx512<D, 2, 4>(p, r, c, r == r0); break;
        case 1: block_avx512<D, 1, 4>(p, r, c, r == r0); break;
        default: break;
    }
}

template <si_dtype D>
SI_TARGET_AVX512 void tile_avx512(const si_matmul_params& p, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    int64_t c = c0;
    if (r1 - r0 == 1) {
        for (; c + 8 <= c1; c += 8) block_avx512<D, 1, 8>(p, r0, c, true);
    } else if (r1 - r0 >= 8) {
        for (; c + 4 <= c1; c += 4) rows8_avx512<D>(p, r0, r1, c);
    } else {
        for (; c + 4 <= c1; c += 4) rows_avx512<D, 4>(p, r0, r1, c);
    }
    for (; c < c1; ++c) rows_avx512<D, 1>(p, r0, r1, c);
}

// ---- dispatch ----------------------------------------------------------------------------

// One switch on the weight dtype per ISA, so the loops above are compiled per dtype.
void tile_scalar_any(const si_matmul_params& p, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    switch (p.w_dtype) {
        case SI_DTYPE_F16: tile_scalar<SI_DTYPE_F16>(p, r0, r1, c0, c1); break;
        case SI_DTYPE_BF16: tile_scalar<SI_DTYPE_BF16>(p, r0, r1, c0, c1); break;
        default: tile_scalar<SI_DTYPE_F32>(p, r0, r1, c0, c1); break;
    }
}

SI_TARGET_AVX2 void tile_avx2_any(const si_matmul_params& p, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    switch (p.w_dtype) {
        case SI_DTYPE_F16: tile_avx2<SI_DTYPE_F16>(p, r0, r1, c0, c1); break;
        case SI_DTYPE_BF16: tile_avx2<SI_DTYPE_BF16>(p, r0, r1, c0, c1); break;
        default: tile_avx2<SI_DTYPE_F32>(p, r0, r1, c0, c1); break;
    }
}

SI_TARGET_AVX512 void tile_avx512_any(const si_matmul_params& p, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    switch (p.w_dtype) {
        case SI_DTYPE_F16: tile_avx512<SI_DTYPE_F16>(p, r0, r1, c0, c1); break;
        case SI_DTYPE_BF16: tile_avx512<SI_DTYPE_BF16>(p, r0, r1, c0, c1); break;
        default: tile_avx512<SI_DTYPE_F32>(p, r0, r1, c0, c1); break;
    }
}

}  // namespace

void select_matmul(Isa isa, Kernels* k) {
    switch (isa) {
        case Isa::Avx512: k->matmul_tile = tile_avx512_any; break;
        case Isa::Avx2: k->matmul_tile = tile_avx2_any; break;
        default: k->matmul_tile = tile_scalar_any; break;
    }
}

si_result matmul(const Env& env, const si_matmul_params& p) {
    if (p.m == 0) return SI_OK;
    const int64_t col_blocks = (p.n + kColBlock - 1) / kColBlock;
    const int64_t row_blocks = (p.m + kRowBlock - 1) / kRowBlock;
    // Items are (column block, row block), row block fastest, so one chunk mostly covers
    // adjacent channels and reads each weight row once. Small problems stay on one thread:
    // below ~64K multiply-adds a chunk costs less than waking a worker.
    const int64_t items = col_blocks * row_blocks;
    const int64_t work_per_item = kColBlock * std::min<int64_t>(p.m, kRowBlock) * p.k;
    const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / work_per_item);
    const auto tile = env.kernels.matmul_tile;
    env.pool.parallel_for(items, grain, [&](int64_t begin, int64_t end) {
        if (row_blocks == 1) {
            // Adjacent column blocks merge into one call.
            tile(p, 0, p.m, begin * kColBlock, std::min<int64_t>(end * kColBlock, p.n));
            return;
        }
        for (int64_t item = begin; item < end; ++item) {
            const int64_t cb = item / row_blocks, rb = item % row_blocks;
            tile(p, rb * kRowBlock, std::min<int64_t>((rb + 1) * kRowBlock, p.m), cb * kColBlock,
                 std::min<int64_t>((cb + 1) * kColBlock, p.n));
        }
    });
    return SI_OK;
}

}  // namespace si::cpu
