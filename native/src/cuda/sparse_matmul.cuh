// sparse_matmul.cuh: y = x . w^T (+ bias) kernels for pruned weights in the 2:4 and bitmask
// formats of sharpinfer.h; the launcher (sparse_matmul.cu) picks one by format, m, values
// dtype and alignment.
//
//  - sparse24_gemv_kernel (2:4, m <= kSparseGemvMaxRows, any values dtype): decode. A warp owns
//    kChannels output channels; lane l takes 4-k group l of every 128-k window, so its kept
//    pair (2 values), its metadata nibble and its float4 of x are coalesced across the warp.
//    The kernel reads only the compressed bytes (values and metadata), never a zero.
//  - bitmask_gemv_kernel (bitmask, m <= kSparseGemvMaxRows): lane l takes k = 32h + l of every
//    64-k mask word, so x loads are coalesced; a lane whose bit is set finds its value at the
//    row's running offset plus the popcount of the bits below it (no scan needed), so the
//    kept values a warp reads are contiguous too.
//  - sparse_tiled_kernel (larger m: bitmask, 2:4 with f32 values, or 2:4 whose pointers the
//    tensor-core kernel cannot take): a 64x64 f32 tile in shared memory; each 64-k step
//    expands the compressed rows into a dense [k][channel] tile (2:4: metadata nibble selects;
//    bitmask: running offset + popcount) and multiplies with plain FMA.
//  - sparse24_mma_kernel (2:4 with f16/bf16 values, m > kSparseGemvMaxRows, values 16-byte
//    aligned): sparse tensor cores, mma.sp m16n8k32 with f32 accumulation. The weights are
//    the sparse A operand (rows of w = mma M), x is the dense B operand (y^T = w x^T), so the
//    compressed values and the ABI metadata go to the tensor cores as stored. x is rounded to
//    the values dtype (f16 or bf16) when it is staged: that rounding is the only precision
//    this path gives up against ref (|x| beyond 65504 overflows f16).
//
// Metadata of mma.sp m16n8k32 (.f16/.bf16, sparsity selector 0), per PTX ISA "Sparse matrix
// storage" and its m16n8k32 metadata figure: lane = 4 g + t; lanes with t = 0 and t = 1 hold
// the metadata of the 16-k half t of the 32-k step, bits [15:0] for A row g and bits [31:16]
// for row g + 8, each 16 bits being 4 nibbles (group j of the 16 k in bits [4j, 4j + 4), first
// index in the low 2 bits). That is exactly one ABI uint16 word, so a thread's register is
// word (row g, 2 s + t) | word (row g + 8, 2 s + t) << 16 for k step s; lanes t = 2, 3 carry a
// copy of t - 2 (ignored by the hardware). The compressed A fragment is laid out as the dense
// m16n8k16 A fragment (16 rows x 16 kept values), B and C/D as for dense m16n8k32 / m16n8k16.
#pragma once

#include "cuda/reduce.cuh"
#include "cuda/weights.cuh"

#include <sharpinfer/sharpinfer.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

// CUDA 12.5 (PTX ISA 8.5) added mma.sp::ordered_metadata, which PTX recommends over plain
// mma.sp ("may have substantially reduced performance on some target architectures"). It
// requires the two indices of a group in increasing order, which the ABI promises (and the
// staging below repairs the one invalid pattern, two equal indices). Define
// SI_SPARSE_MMA_ORDERED=0 to force the plain instruction.
#if !defined(SI_SPARSE_MMA_ORDERED)
#if defined(__CUDACC_VER_MAJOR__) && (__CUDACC_VER_MAJOR__ > 12 || (__CUDACC_VER_MAJOR__ == 12 && __CUDACC_VER_MINOR__ >= 5))
#define SI_SPARSE_MMA_ORDERED 1
#else
#define SI_SPARSE_MMA_ORDERED 0
#endif
#endif

namespace si::cuda {

si_result launch_sparse_matmul(const si_sparse_matmul_params& p, cudaStream_t stream);

constexpr int kSparseGemvThreads = 256, kSparseGemvWarps = kSparseGemvThreads / 32;
constexpr int kSparseGemvMaxRows = 16;  // as the dense matmul: decode and small batches
constexpr int kSparseGemvChannels = 2;  // output channels per warp (x loads shared by both)

// What the kernels need beyond the params, computed once by the launcher.
struct SparseLayout {
    int64_t kp;          // 2:4: k rounded up to 16 (values row = kp / 2, metadata row = kp / 16)
    int32_t kw;          // bitmask: 64-bit mask words per row
    int32_t row_tiles;   // tiled / mma kernels: tiles of x rows (m), walked in steps of gridDim.y
};

// ---- small helpers ------------------------------------------------------------------------------

// Two consecutive values (i even) of a compressed row as f32. kVector: one 4-byte (f16/bf16) or
// 8-byte (f32) load; the launcher checked the values pointer's alignment (rows of a 2:4 matrix
// are kp / 2 values, a multiple of 8, so every row keeps it).
template <typename W, bool kVector>
__device__ __forceinline__ float2 load_value_pair(const typename W::Storage* row, int64_t i) {
    if constexpr (kVector && std::is_same_v<W, F32Weight>) {
        return __ldg(reinterpret_cast<const float2*>(row + i));
    } else if constexpr (kVector) {
        const uint32_t word = __ldg(reinterpret_cast<const unsigned int*>(row + i));
        float2 v;
        if constexpr (std::is_same_v<W, F16Weight>) f16x2_to_f32(word, v.x, v.y);
        else bf16x2_to_f32(word, v.x, v.y);
        return v;
    } else {
        return make_float2(W::load(row, i), W::load(row, i + 1));
    }
}

// Element i (0..3) of a float4 by selects (a dynamic index into a register array would go
// through local memory).
__device__ __forceinline__ float pick(const float4& v, uint32_t i) {
    return (i & 2u) ? ((i & 1u) ? v.w : v.z) : ((i & 1u) ? v.y : v.x);
}

// x[k0 .. k0 + 3] of one row, zero past k (x may hold NaN there). kVector: the row is 16-byte
// aligned (x and x_stride checked by the launcher) and k0 is a multiple of 4.
template <bool kVector>
__device__ __forceinline__ float4 load_x4(const float* row, int32_t k0, int32_t k) {
    if (kVector && k0 + 3 < k) return __ldg(reinterpret_cast<const float4*>(row + k0));
    float4 v;
    v.x = k0 < k ? __ldg(row + k0) : 0.0f;
    v.y = k0 + 1 < k ? __ldg(row + k0 + 1) : 0.0f;
    v.z = k0 + 2 < k ? __ldg(row + k0 + 2) : 0.0f;
    v.w = k0 + 3 < k ? __ldg(row + k0 + 3) : 0.0f;
    return v;
}

__device__ __forceinline__ int64_t load_offset(const int64_t* row_offsets, int64_t row) {
    return int64_t(__ldg(reinterpret_cast<const long long*>(row_offsets) + row));
}

// ---- 2:4 GEMV -----------------------------------------------------------------------------------

// grid: ceil(n / (kSparseGemvWarps * kChannels)) blocks of kSparseGemvThreads. kRows rows of x
// per pass over the weights (1 for decode, 4 otherwise). kVector: x rows 16-byte aligned and
// value pairs loaded as one word (see load_value_pair).
template <typename W, int kRows, int kChannels, bool kVector>
__global__ void __launch_bounds__(kSparseGemvThreads)
sparse24_gemv_kernel(const si_sparse_matmul_params p, const SparseLayout layout) {
    using Storage = typename W::Storage;
    const int lane = threadIdx.x & 31;
    const int64_t channel0 = (int64_t(blockIdx.x) * kSparseGemvWarps + (threadIdx.x >> 5)) * kChannels;
    if (channel0 >= p.n) return;  // a whole warp leaves together, so shuffles below stay full
    const int channels_here = int(min(int64_t(kChannels), int64_t(p.n) - channel0));
    const int32_t k = p.k;
    const int32_t groups = (k + 3) / 4;  // groups past k hold only padding: never visited

    // Channels past n reuse the last valid one (results dropped) so every load stays in bounds.
    const Storage* v_row[kChannels];
    const uint16_t* m_row[kChannels];
#pragma unroll
    for (int c = 0; c < kChannels; ++c) {
        const int64_t channel = channel0 + min(c, channels_here - 1);
        v_row[c] = static_cast<const Storage*>(p.values) + channel * (layout.kp / 2);
        m_row[c] = static_cast<const uint16_t*>(p.index) + channel * (layout.kp / 16);
    }

    for (int row0 = 0; row0 < p.m; row0 += kRows) {
        const int rows_here = min(kRows, p.m - row0);
        const float* x_rows = p.x + int64_t(row0) * p.x_stride;
        float acc[kChannels][kRows];
#pragma unroll
        for (int c = 0; c < kChannels; ++c)
#pragma unroll
            for (int r = 0; r < kRows; ++r) acc[c][r] = 0.0f;

#pragma unroll(kRows == 1 ? 4 : 1)
        for (int32_t g = lane; g < groups; g += 32) {
            float4 xv[kRows];
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
                xv[r] = r < rows_here ? load_x4<kVector>(x_rows + r * p.x_stride, 4 * g, k) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
#pragma unroll
            for (int c = 0; c < kChannels; ++c) {
                const uint32_t word = __ldg(reinterpret_cast<const unsigned short*>(m_row[c]) + (g >> 2));
                const uint32_t nibble = (word >> (4 * (g & 3))) & 15u;
                const float2 v = load_value_pair<W, kVector>(v_row[c], 2 * int64_t(g));
#pragma unroll
                for (int r = 0; r < kRows; ++r) {
                    acc[c][r] = fmaf(v.x, pick(xv[r], nibble & 3u), acc[c][r]);
                    acc[c][r] = fmaf(v.y, pick(xv[r], nibble >> 2), acc[c][r]);
                }
            }
        }

#pragma unroll
        for (int c = 0; c < kChannels; ++c) {
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
                const float sum = warp_sum(acc[c][r]);
                if (lane == 0 && c < channels_here && r < rows_here) {
                    const int64_t channel = channel0 + c;
                    p.y[(row0 + r) * p.y_stride + channel] = sum + (p.bias ? p.bias[channel] : 0.0f);
                }
            }
        }
    }
}

// ---- bitmask GEMV -------------------------------------------------------------------------------

// grid: ceil(n / (kSparseGemvWarps * kChannels)) blocks of kSparseGemvThreads. Needs no
// alignment beyond the element types': x and the values are read one element per lane.
template <typename W, int kRows, int kChannels>
__global__ void __launch_bounds__(kSparseGemvThreads)
bitmask_gemv_kernel(const si_sparse_matmul_params p, const SparseLayout layout) {
    using Storage = typename W::Storage;
    const int lane = threadIdx.x & 31;
    const int64_t channel0 = (int64_t(blockIdx.x) * kSparseGemvWarps + (threadIdx.x >> 5)) * kChannels;
    if (channel0 >= p.n) return;
    const int channels_here = int(min(int64_t(kChannels), int64_t(p.n) - channel0));
    const int32_t k = p.k;
    const Storage* values = static_cast<const Storage*>(p.values);
    const uint32_t below = (1u << lane) - 1u;  // this lane's lanemask_lt

    const unsigned long long* mask_row[kChannels];
    int64_t row_begin[kChannels];
#pragma unroll
    for (int c = 0; c < kChannels; ++c) {
        const int64_t channel = channel0 + min(c, channels_here - 1);
        mask_row[c] = static_cast<const unsigned long long*>(p.index) + channel * layout.kw;
        row_begin[c] = load_offset(p.row_offsets, channel);
    }

    for (int row0 = 0; row0 < p.m; row0 += kRows) {
        const int rows_here = min(kRows, p.m - row0);
        const float* x_rows = p.x + int64_t(row0) * p.x_stride;
        float acc[kChannels][kRows];
        int64_t next[kChannels];  // offset of the first kept value of the current 32-k half word
#pragma unroll
        for (int c = 0; c < kChannels; ++c) {
            next[c] = row_begin[c];
#pragma unroll
            for (int r = 0; r < kRows; ++r) acc[c][r] = 0.0f;
        }

        for (int32_t word = 0; word < layout.kw; ++word) {
            uint64_t bits64[kChannels];
#pragma unroll
            for (int c = 0; c < kChannels; ++c) bits64[c] = __ldg(mask_row[c] + word);
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int32_t kk = word * 64 + half * 32 + lane;
                uint32_t bits[kChannels], any = 0;
#pragma unroll
                for (int c = 0; c < kChannels; ++c) {
                    bits[c] = uint32_t(bits64[c] >> (32 * half));
                    any |= bits[c];
                }
                // Bits at or past k are 0 (ABI); the k test only keeps bad metadata in bounds.
                const bool needed = ((any >> lane) & 1u) && kk < k;
                float xv[kRows];
#pragma unroll
                for (int r = 0; r < kRows; ++r) xv[r] = (needed && r < rows_here) ? __ldg(x_rows + r * p.x_stride + kk) : 0.0f;
#pragma unroll
                for (int c = 0; c < kChannels; ++c) {
                    if ((bits[c] >> lane) & 1u) {
                        const float v = W::load(values, next[c] + __popc(bits[c] & below));
#pragma unroll
                        for (int r = 0; r < kRows; ++r) acc[c][r] = fmaf(v, xv[r], acc[c][r]);
                    }
                    next[c] += __popc(bits[c]);
                }
            }
        }

#pragma unroll
        for (int c = 0; c < kChannels; ++c) {
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
                const float sum = warp_sum(acc[c][r]);
                if (lane == 0 && c < channels_here && r < rows_here) {
                    const int64_t channel = channel0 + c;
                    p.y[(row0 + r) * p.y_stride + channel] = sum + (p.bias ? p.bias[channel] : 0.0f);
                }
            }
        }
    }
}

// ---- tiled, f32 FMA, both formats -----------------------------------------------------------------

constexpr int kSparseTileM = 64, kSparseTileN = 64, kSparseTileK = 64, kSparseTileThreads = 256;
// Staging writes column `row` of a [k][row] tile; a row length of 65 spreads a warp's
// 32 rows over distinct banks.
constexpr int kSparseTilePad = 1;

struct Format24 {
    static constexpr si_sparse_format kFormat = SI_SPARSE_2_4;
};
struct FormatBitmask {
    static constexpr si_sparse_format kFormat = SI_SPARSE_BITMASK;
};

// grid: (ceil(n / 64), min(row_tiles, 65535)); blocks walk x-row tiles by gridDim.y. Each
// thread stages 16 k of one channel row per 64-k step: 2:4 reads one metadata word and 8
// values, bitmask one quarter of a mask word (its values start at the row's running offset
// plus the popcount of the quarters below).
// __launch_bounds__(threads, 2): with the thread count alone ptxas capped the bitmask variants
// at 64 registers and spilled; two blocks per SM allow 128.
template <typename F, typename W>
__global__ void __launch_bounds__(kSparseTileThreads, 2)
sparse_tiled_kernel(const si_sparse_matmul_params p, const SparseLayout layout) {
    using Storage = typename W::Storage;
    __shared__ float x_tile[kSparseTileK][kSparseTileM + kSparseTilePad];  // transposed: [k][m]
    __shared__ float w_tile[kSparseTileK][kSparseTileN + kSparseTilePad];  // transposed: [k][n]

    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t n0 = int64_t(blockIdx.x) * kSparseTileN;
    const int32_t k = p.k;
    const int stage_row = tid / 4, quarter = tid % 4;  // w staging: channel row, 16-k quarter
    const bool w_valid = n0 + stage_row < p.n;
    const int64_t channel = w_valid ? n0 + stage_row : 0;
    // Each format uses its own half of these ([[maybe_unused]]: the other instantiation).
    const Storage* values = static_cast<const Storage*>(p.values);
    [[maybe_unused]] const Storage* v_row = values + channel * (layout.kp / 2);                                    // 2:4
    [[maybe_unused]] const unsigned short* m_row = static_cast<const unsigned short*>(p.index) + channel * (layout.kp / 16);  // 2:4
    [[maybe_unused]] const unsigned long long* mask_row = static_cast<const unsigned long long*>(p.index) + channel * layout.kw;
    [[maybe_unused]] const int64_t row_begin = (F::kFormat == SI_SPARSE_BITMASK && w_valid) ? load_offset(p.row_offsets, channel) : 0;

    for (int32_t tile = blockIdx.y; tile < layout.row_tiles; tile += gridDim.y) {
        const int64_t m0 = int64_t(tile) * kSparseTileM;
        [[maybe_unused]] int64_t next = row_begin;  // bitmask: offset of the current word's first kept value

        float acc[4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

        for (int32_t k0 = 0; k0 < k; k0 += kSparseTileK) {
            // x: element e of the 64 x 64 tile is (row e / 64, k e % 64): a warp reads 32
            // consecutive k of one row.
#pragma unroll 4
            for (int e = tid; e < kSparseTileM * kSparseTileK; e += kSparseTileThreads) {
                const int r = e / kSparseTileK, kk = e % kSparseTileK;
                const int64_t row = m0 + r;
                x_tile[kk][r] = (row < p.m && k0 + kk < k) ? __ldg(p.x + row * p.x_stride + k0 + kk) : 0.0f;
            }
            // w: 16 k of channel `channel`, expanded to dense f32 with zeros.
            const int32_t kq = k0 + 16 * quarter;
            float w16[16];
#pragma unroll
            for (int j = 0; j < 16; ++j) w16[j] = 0.0f;
            if constexpr (F::kFormat == SI_SPARSE_2_4) {
                if (w_valid && kq < layout.kp) {
                    const uint32_t word = __ldg(m_row + kq / 16);
#pragma unroll
                    for (int g = 0; g < 4; ++g) {
                        const uint32_t nibble = (word >> (4 * g)) & 15u, i0 = nibble & 3u, i1 = nibble >> 2;
                        const float v0 = W::load(v_row, kq / 2 + 2 * g), v1 = W::load(v_row, kq / 2 + 2 * g + 1);
#pragma unroll
                        for (int j = 0; j < 4; ++j) w16[4 * g + j] = i0 == uint32_t(j) ? v0 : (i1 == uint32_t(j) ? v1 : 0.0f);
                    }
                }
            } else {
                if (w_valid) {
                    // k0 is a multiple of 64, so the tile is exactly mask word k0 / 64.
                    const uint64_t word = __ldg(mask_row + k0 / 64);
                    const uint32_t bits = uint32_t(word >> (16 * quarter)) & 0xffffu;
                    int64_t at = next + __popcll(word & ((uint64_t(1) << (16 * quarter)) - 1u));
#pragma unroll
                    for (int j = 0; j < 16; ++j) {
                        if ((bits >> j) & 1u) w16[j] = W::load(values, at++);
                    }
                    next += __popcll(word);
                }
            }
#pragma unroll
            for (int j = 0; j < 16; ++j) w_tile[16 * quarter + j][stage_row] = kq + j < k ? w16[j] : 0.0f;
            __syncthreads();
#pragma unroll 16
            for (int kk = 0; kk < kSparseTileK; ++kk) {
                float a[4], b[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) a[i] = x_tile[kk][ty + 16 * i];
#pragma unroll
                for (int j = 0; j < 4; ++j) b[j] = w_tile[kk][tx + 16 * j];
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
            }
            __syncthreads();
        }

#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int64_t col = n0 + tx + 16 * j;
            if (col >= p.n) continue;
            const float bias_value = p.bias ? p.bias[col] : 0.0f;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int64_t row = m0 + ty + 16 * i;
                if (row < p.m) p.y[row * p.y_stride + col] = acc[i][j] + bias_value;
            }
        }
    }
}

// ---- 2:4 on sparse tensor cores -------------------------------------------------------------------

namespace sparse_mma {

// One warp computes 64 channels x 32 x rows: 4 m16 tiles x 4 n8 tiles, 64 f32 accumulators.
constexpr int kWarpChannels = 64, kWarpRows = 32;
constexpr int kStepK = 32;  // logical k per pipeline stage: one mma.sp k32 step
// Shared-memory row pitches in 32-bit words. Values: 8 words (16 kept values = 32 k) + 4:
// rows g = 0..7 then start 12 g mod 32 banks apart, so the A fragment loads (word t or
// t + 4 of row g) hit 32 distinct banks. x: 16 words (32 k as f16x2) + 4, 20 g mod 32
// apart, likewise for the B loads (word t + 4 j of row g). Both are multiples of 16 bytes.
constexpr int kValuesPitch = 12, kXPitch = 20;
constexpr uint32_t kFillerMeta = 0x4444u;  // positions 0 and 1 in every group: valid, ordered

struct F16 {
    using Weight = F16Weight;
    __device__ __forceinline__ static uint32_t pack(float lo, float hi) {
        const __half2 h = __floats2half2_rn(lo, hi);  // .x (low 16 bits) = lo
        return *reinterpret_cast<const uint32_t*>(&h);
    }
    __device__ __forceinline__ static void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[4], uint32_t e) {
#if SI_SPARSE_MMA_ORDERED
        asm("mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32 "
#else
        asm("mma.sp.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32 "
#endif
            "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9, %10, %11}, {%0, %1, %2, %3}, %12, 0x0;\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e));
    }
};

struct BF16 {
    using Weight = BF16Weight;
    __device__ __forceinline__ static uint32_t pack(float lo, float hi) {
        const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<const uint32_t*>(&h);
    }
    __device__ __forceinline__ static void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[4], uint32_t e) {
#if SI_SPARSE_MMA_ORDERED
        asm("mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.bf16.bf16.f32 "
#else
        asm("mma.sp.sync.aligned.m16n8k32.row.col.f32.bf16.bf16.f32 "
#endif
            "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9, %10, %11}, {%0, %1, %2, %3}, %12, 0x0;\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e));
    }
};

// A metadata nibble with two equal indices (0b0000, 0b0101, 0b1010, 0b1111) is undefined
// behaviour for mma.sp; the ABI never has one, but zero-filled padding from a careless
// writer would. Turn each into 0b0100 (positions 0 and 1): its values are then paired with
// the first two k of the group instead of one.
__device__ __forceinline__ uint32_t repair_metadata(uint32_t e) {
    const uint32_t diff = e ^ (e >> 2);                          // low 2 bits of each nibble: i0 ^ i1
    const uint32_t equal = ~(diff | (diff >> 1)) & 0x11111111u;  // bit 0 of a nibble: i0 == i1
    return (e & ~(equal * 15u)) | (equal << 2);
}

}  // namespace sparse_mma

// grid: (ceil(n / kBlockChannels), min(row_tiles, 65535)) blocks of kWarpsN x kWarpsM warps;
// warp (wm, wn) owns channels [64 wm, 64 wm + 64) and x rows [32 wn, 32 wn + 32) of the block
// tile. Two shared-memory stages of 32 k: the next stage's global loads go to registers
// before the current stage's mma and to shared memory after it, one barrier per stage.
// Values rows are 16-byte aligned (launcher); kVecX: x rows 8-byte aligned (float2 loads).
template <typename T, int kWarpsM, int kWarpsN, bool kVecX>
__global__ void __launch_bounds__(kWarpsM * kWarpsN * 32, 1)
sparse24_mma_kernel(const si_sparse_matmul_params p, const SparseLayout layout) {
    using namespace sparse_mma;
    constexpr int kThreads = kWarpsM * kWarpsN * 32;
    constexpr int kBlockChannels = kWarpsM * kWarpChannels, kBlockRows = kWarpsN * kWarpRows;
    constexpr int kTilesM = kBlockChannels / 16;                               // m16 tiles per block
    constexpr int kValueChunks = kBlockChannels * 2;                           // uint4 (8 values) per stage
    constexpr int kMetaWords = kTilesM * 16;                                   // fragment-ordered words per stage
    constexpr int kXWords = kBlockRows * kStepK / 2;                           // f16x2 words per stage
    constexpr int kValueLoads = (kValueChunks + kThreads - 1) / kThreads;
    constexpr int kMetaLoads = (kMetaWords + kThreads - 1) / kThreads;
    constexpr int kXLoads = (kXWords + kThreads - 1) / kThreads;

    __shared__ __align__(16) uint32_t s_values[2][kBlockChannels * kValuesPitch];
    __shared__ uint32_t s_meta[2][kMetaWords];  // [m16 tile][g][t & 1]: the thread's register
    __shared__ __align__(16) uint32_t s_x[2][kBlockRows * kXPitch];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = warp % kWarpsM, wn = warp / kWarpsM;
    const int64_t n0 = int64_t(blockIdx.x) * kBlockChannels;
    const int32_t k = p.k;
    const int64_t values_row = layout.kp / 2, meta_row = layout.kp / 16;
    const int steps = int((layout.kp + kStepK - 1) / kStepK);
    const typename T::Weight::Storage* values = static_cast<const typename T::Weight::Storage*>(p.values);
    const unsigned short* meta = static_cast<const unsigned short*>(p.index);

    // One stage's global data in registers: values as raw 16-byte chunks, metadata already
    // combined into fragment registers, x already converted to f16x2 / bf16x2.
    uint4 r_values[kValueLoads];
    uint32_t r_meta[kMetaLoads];
    uint32_t r_x[kXLoads];

    for (int32_t tile = blockIdx.y; tile < layout.row_tiles; tile += gridDim.y) {
        const int64_t m0 = int64_t(tile) * kBlockRows;

        auto load_stage = [&](int step) {
            const int64_t k0 = int64_t(step) * kStepK;  // logical k of the stage
#pragma unroll
            for (int i = 0; i < kValueLoads; ++i) {
                const int chunk = tid + i * kThreads;
                const int row = chunk >> 1, part = chunk & 1;  // part: k0 + [0, 16) or [16, 32)
                const int64_t channel = n0 + row;
                uint4 v = make_uint4(0u, 0u, 0u, 0u);
                if (chunk < kValueChunks && channel < p.n && k0 + 16 * part < layout.kp)
                    v = __ldg(reinterpret_cast<const uint4*>(values + channel * values_row + k0 / 2 + 8 * part));
                r_values[i] = v;
            }
#pragma unroll
            for (int i = 0; i < kMetaLoads; ++i) {
                const int word = tid + i * kThreads;
                const int mtile = word >> 4, mg = (word >> 1) & 7, half = word & 1;
                const int64_t word_index = k0 / 16 + half;  // 16-bit word of the row
                const bool in_k = k0 + 16 * half < layout.kp;
                const int64_t row_lo = n0 + mtile * 16 + mg, row_hi = row_lo + 8;
                uint32_t lo = kFillerMeta, hi = kFillerMeta;
                if (word < kMetaWords && in_k && row_lo < p.n) lo = __ldg(meta + row_lo * meta_row + word_index);
                if (word < kMetaWords && in_k && row_hi < p.n) hi = __ldg(meta + row_hi * meta_row + word_index);
                r_meta[i] = repair_metadata(lo | (hi << 16));
            }
#pragma unroll
            for (int i = 0; i < kXLoads; ++i) {
                const int word = tid + i * kThreads;
                const int r = word / (kStepK / 2), pair = word % (kStepK / 2);
                const int64_t row = m0 + r;
                const int64_t kk = k0 + 2 * pair;
                float lo = 0.0f, hi = 0.0f;
                if (word < kXWords && row < p.m) {
                    const float* src = p.x + row * p.x_stride + kk;
                    if (kVecX && kk + 1 < k) {
                        const float2 v = __ldg(reinterpret_cast<const float2*>(src));
                        lo = v.x;
                        hi = v.y;
                    } else {
                        if (kk < k) lo = __ldg(src);
                        if (kk + 1 < k) hi = __ldg(src + 1);
                    }
                }
                r_x[i] = T::pack(lo, hi);
            }
        };

        auto store_stage = [&](int buffer) {
#pragma unroll
            for (int i = 0; i < kValueLoads; ++i) {
                const int chunk = tid + i * kThreads;
                if (chunk < kValueChunks)
                    *reinterpret_cast<uint4*>(&s_values[buffer][(chunk >> 1) * kValuesPitch + 4 * (chunk & 1)]) = r_values[i];
            }
#pragma unroll
            for (int i = 0; i < kMetaLoads; ++i) {
                const int word = tid + i * kThreads;
                if (word < kMetaWords) s_meta[buffer][word] = r_meta[i];
            }
#pragma unroll
            for (int i = 0; i < kXLoads; ++i) {
                const int word = tid + i * kThreads;
                if (word < kXWords) s_x[buffer][(word / (kStepK / 2)) * kXPitch + word % (kStepK / 2)] = r_x[i];
            }
        };

        float acc[4][4][4];  // [m16 tile][n8 tile][fragment]
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

        load_stage(0);
        store_stage(0);
        __syncthreads();
        for (int step = 0; step < steps; ++step) {
            const int buffer = step & 1;
            if (step + 1 < steps) load_stage(step + 1);

            const uint32_t* sv = s_values[buffer];
            const uint32_t* sx = s_x[buffer];
            const uint32_t* sm = s_meta[buffer];
            uint32_t b[4][4];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int row = wn * kWarpRows + j * 8 + g;  // x row = mma column
#pragma unroll
                for (int q = 0; q < 4; ++q) b[j][q] = sx[row * kXPitch + t + 4 * q];  // k = 2t + 8q, +1
            }
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int row = wm * kWarpChannels + i * 16 + g;  // channel = mma row
                uint32_t a[4];
                a[0] = sv[row * kValuesPitch + t];            // row g,     kept values 2t, 2t + 1
                a[1] = sv[(row + 8) * kValuesPitch + t];      // row g + 8, kept values 2t, 2t + 1
                a[2] = sv[row * kValuesPitch + t + 4];        // row g,     kept values 2t + 8, 2t + 9
                a[3] = sv[(row + 8) * kValuesPitch + t + 4];  // row g + 8, kept values 2t + 8, 2t + 9
                const uint32_t e = sm[(wm * 4 + i) * 16 + g * 2 + (t & 1)];
#pragma unroll
                for (int j = 0; j < 4; ++j) T::mma(acc[i][j], a, b[j], e);
            }

            if (step + 1 < steps) store_stage(buffer ^ 1);
            __syncthreads();
        }

        // d0, d1: channel g, x rows 2t, 2t + 1; d2, d3: channel g + 8, same rows.
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int64_t channel = n0 + wm * kWarpChannels + i * 16 + g + 8 * half;
                if (channel >= p.n) continue;
                const float bias_value = p.bias ? p.bias[channel] : 0.0f;
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const int64_t row = m0 + wn * kWarpRows + j * 8 + 2 * t;
                    if (row < p.m) p.y[row * p.y_stride + channel] = acc[i][j][2 * half] + bias_value;
                    if (row + 1 < p.m) p.y[(row + 1) * p.y_stride + channel] = acc[i][j][2 * half + 1] + bias_value;
                }
            }
        }
    }
}

}  // namespace si::cuda
