// qmatmul.cuh: y = x . dequant(q)^T (+ bias) kernels for int8 / int4 group-quantized weights
// (formats in sharpinfer.h), dequantizing in registers; the launcher is in qmatmul.cu.
//
//  - qmatmul_gemv_kernel (m <= kQGemvMaxRows, float activations: W8A16 / W4A16): each warp
//    owns kChannels output channels and walks k in 16-byte chunks of packed weights per lane
//    (16 int8 or 32 int4 weights), so one x load feeds kChannels channels and one weight
//    decode feeds kRows rows of x. int4 chunks pair with x directly: nibble t of 32-bit word
//    wd of a chunk is k = base + 8 wd + t.
//  - qmatmul_gemv_w8a8_kernel (m <= kQGemvMaxRows, W8A8): the block quantizes kRows rows of x
//    into shared memory (per-row scale by the int8 KV-cache rule, common/kv_quant.h, in
//    segments of kW8A8Segment k), then each warp takes kW8A8Channels channels with dp4a on
//    16-byte chunks; each chunk's int32 dot times its group's scale is accumulated in f32.
//  - qmatmul_tiled_kernel (larger m, float activations, or W8A8 with group sizes the dp4a
//    tile does not take): the dense tiled matmul with weights dequantized (and, for W8A8, x
//    quantized to integer-valued floats) while staging into shared memory.
//  - qmatmul_tiled_w8a8_kernel (W8A8, group size a multiple of 32 or >= k): 64x64 int8 tiles
//    in shared memory, dp4a, int32 per group, f32 across groups. No longer dispatched: the
//    launcher sends these shapes (m > kQGemvMaxRows) to qmatmul_mma_kernel.
//  - qmatmul_mma_kernel (m >= qmma::kMinRows; W8A8 per token with group size a multiple of 32
//    or >= k, and block-wise int8 activations with int8 or int4 weights): int8 tensor cores
//    (mma.sync m16n8k32), x quantized while staging into shared memory.
// Vector paths need 16-byte aligned packed rows; the launcher checks alignment, k and the
// group size and otherwise picks the per-element variant (kVector = false), which takes any
// group size and nibble position.
#pragma once

#include "common/kv_quant.h"
#include "cuda/reduce.cuh"

#include <sharpinfer/sharpinfer.h>

#include <cuda_runtime.h>

#include <cstdint>

namespace si::cuda {

si_result launch_qmatmul(const si_qmatmul_params& p, cudaStream_t stream);

constexpr int kQGemvThreads = 256, kQGemvWarps = kQGemvThreads / 32;
constexpr int kQGemvMaxRows = 16;    // as the dense matmul: beyond this the tiled kernels win
constexpr int kW8A8Channels = 4;     // channels per warp in the W8A8 GEMV (32 per block)
constexpr int kW8A8Segment = 4096;   // k per shared-memory segment of quantized x rows

// What the kernels need beyond the params, computed once by the launcher.
struct QLayout {
    int64_t row_bytes;   // bytes of q per channel
    int32_t n_groups;    // groups per channel
    int32_t group_shift; // log2(group_size) when it is a power of two, else -1
};

__device__ __forceinline__ int32_t group_of(const QLayout& layout, int32_t group_size, int32_t i) {
    return layout.group_shift >= 0 ? i >> layout.group_shift : i / group_size;
}

// ---- weight formats ---------------------------------------------------------------------------

// An int4 group's offset: from the offsets row, or -8 * scale for symmetric int4 (no offsets).
__device__ __forceinline__ float int4_offset(const float* o_row, float scale, int32_t group) {
    return o_row ? __ldg(o_row + group) : -8.0f * scale;
}

struct I8Weights {
    static constexpr int kChunk = 16;   // weights per 16-byte chunk
    static constexpr int kPerWord = 4;  // weights per 32-bit word
    static constexpr bool kOffsets = false;
    __device__ __forceinline__ static int32_t value(const uint8_t* row, int32_t i) {
        return int8_t(__ldg(row + i));
    }
    __device__ __forceinline__ static int64_t chunk_byte(int32_t base) { return base; }
    // Weight t (0..3) of a 32-bit word.
    __device__ __forceinline__ static float word_value(uint32_t word, int t) {
        return float(int8_t(uint8_t(word >> (8 * t))));
    }
};

struct I4Weights {
    static constexpr int kChunk = 32;
    static constexpr int kPerWord = 8;
    static constexpr bool kOffsets = true;
    __device__ __forceinline__ static int32_t value(const uint8_t* row, int32_t i) {
        const uint8_t byte = __ldg(row + i / 2);
        return (i & 1) ? (byte >> 4) : (byte & 15);
    }
    __device__ __forceinline__ static int64_t chunk_byte(int32_t base) { return base / 2; }
    // Nibble t (0..7) of a word: byte t/2, low nibble first, i.e. k = 8 wd + t of the chunk.
    // 2^23 + v has v in its low mantissa bits, so this is an exact, conversion-free float(v).
    __device__ __forceinline__ static float word_value(uint32_t word, int t) {
        return __uint_as_float(0x4b000000u | ((word >> (4 * t)) & 15u)) - 8388608.0f;
    }
};

// ---- GEMV, float activations ------------------------------------------------------------------

// grid: ceil(n / (kQGemvWarps * kChannels)) blocks of kQGemvThreads. kVector: 16-byte chunks
// (the launcher checked: q, x 16-byte aligned, x_stride % 4 == 0, k a multiple of kChunk,
// each chunk inside one group, or for int4 with group size 16 in groups g and g + 1).
// __launch_bounds__(threads, 1) here and below: with the thread count alone, ptxas capped
// some variants at 64 / 128 registers and spilled; one block per SM lifts the cap (they then
// use 52-122 registers, no spills; see perf/README-cuda-resource-usage.txt).
template <typename W, int kRows, int kChannels, bool kVector>
__global__ void __launch_bounds__(kQGemvThreads, 1)
qmatmul_gemv_kernel(const si_qmatmul_params p, const QLayout layout) {
    const int lane = threadIdx.x & 31;
    const int64_t channel0 = (int64_t(blockIdx.x) * kQGemvWarps + (threadIdx.x >> 5)) * kChannels;
    if (channel0 >= p.n) return;  // a whole warp leaves together, so shuffles below stay full
    const int channels_here = int(min(int64_t(kChannels), int64_t(p.n) - channel0));
    const int32_t k = p.k, gs = p.group_size;

    // Channels past n reuse the last valid one (results dropped) so every load stays in bounds.
    const uint8_t* q_row[kChannels];
    const float* s_row[kChannels];
    const float* o_row[kChannels];
#pragma unroll
    for (int c = 0; c < kChannels; ++c) {
        const int64_t channel = channel0 + min(c, channels_here - 1);
        q_row[c] = static_cast<const uint8_t*>(p.q) + channel * layout.row_bytes;
        s_row[c] = p.scales + channel * layout.n_groups;
        o_row[c] = W::kOffsets && p.offsets ? p.offsets + channel * layout.n_groups : nullptr;  // NULL: symmetric int4
    }

    for (int row0 = 0; row0 < p.m; row0 += kRows) {
        const int rows_here = min(kRows, p.m - row0);
        const float* x_rows = p.x + int64_t(row0) * p.x_stride;
        float acc[kChannels][kRows];
#pragma unroll
        for (int c = 0; c < kChannels; ++c)
#pragma unroll
            for (int r = 0; r < kRows; ++r) acc[c][r] = 0.0f;

        if constexpr (kVector) {
            for (int32_t base = lane * W::kChunk; base < k; base += 32 * W::kChunk) {
                uint4 packed[kChannels];
#pragma unroll
                for (int c = 0; c < kChannels; ++c) packed[c] = __ldg(reinterpret_cast<const uint4*>(q_row[c] + W::chunk_byte(base)));
                const int32_t g = group_of(layout, gs, base);
                // int4 with group size 16: words 0-1 are group g, words 2-3 group g + 1.
                const int32_t g_hi = (W::kChunk > 16 && gs == 16) ? g + 1 : g;
                // Two words at a time keep the 4-row variant's x loads in registers without spills.
#pragma unroll(kRows == 1 ? 4 : 2)
                for (int wd = 0; wd < 4; ++wd) {
                    const int32_t group = wd < 2 ? g : g_hi;
                    float w[kChannels][W::kPerWord];
#pragma unroll
                    for (int c = 0; c < kChannels; ++c) {
                        const uint32_t word = wd == 0 ? packed[c].x : wd == 1 ? packed[c].y : wd == 2 ? packed[c].z : packed[c].w;
                        const float s = __ldg(s_row[c] + group);
                        const float o = W::kOffsets ? int4_offset(o_row[c], s, group) : 0.0f;
#pragma unroll
                        for (int t = 0; t < W::kPerWord; ++t) {
                            w[c][t] = W::kOffsets ? fmaf(W::word_value(word, t), s, o) : W::word_value(word, t) * s;
                        }
                    }
#pragma unroll
                    for (int r = 0; r < kRows; ++r) {
                        if (r < rows_here) {
                            const float* xr = x_rows + r * p.x_stride + base + wd * W::kPerWord;
#pragma unroll
                            for (int t = 0; t < W::kPerWord; t += 4) {
                                const float4 xv = __ldg(reinterpret_cast<const float4*>(xr + t));
#pragma unroll
                                for (int c = 0; c < kChannels; ++c) {
                                    acc[c][r] = fmaf(xv.x, w[c][t], acc[c][r]);
                                    acc[c][r] = fmaf(xv.y, w[c][t + 1], acc[c][r]);
                                    acc[c][r] = fmaf(xv.z, w[c][t + 2], acc[c][r]);
                                    acc[c][r] = fmaf(xv.w, w[c][t + 3], acc[c][r]);
                                }
                            }
                        }
                    }
                }
            }
        } else {
            for (int32_t i = lane; i < k; i += 32) {
                const int32_t g = group_of(layout, gs, i);
                float w[kChannels];
#pragma unroll
                for (int c = 0; c < kChannels; ++c) {
                    const float q = float(W::value(q_row[c], i));
                    w[c] = W::kOffsets ? fmaf(q, __ldg(s_row[c] + g), int4_offset(o_row[c], __ldg(s_row[c] + g), g)) : q * __ldg(s_row[c] + g);
                }
#pragma unroll
                for (int r = 0; r < kRows; ++r) {
                    if (r < rows_here) {
                        const float xv = __ldg(x_rows + r * p.x_stride + i);
#pragma unroll
                        for (int c = 0; c < kChannels; ++c) acc[c][r] = fmaf(xv, w[c], acc[c][r]);
                    }
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

// ---- GEMV, W8A8 ---------------------------------------------------------------------------------

// grid: ceil(n / (kQGemvWarps * kW8A8Channels)) blocks of kQGemvThreads (no early exit: the
// block synchronizes). kVector: q 16-byte aligned, k a multiple of 16, each 16-k chunk inside
// one group.
template <int kRows, bool kVector>
__global__ void __launch_bounds__(kQGemvThreads, 1)
qmatmul_gemv_w8a8_kernel(const si_qmatmul_params p, const QLayout layout) {
    __shared__ __align__(16) int8_t xq[kRows][kW8A8Segment];
    __shared__ float row_scale[kRows];
    __shared__ float scratch[32];
    const int lane = threadIdx.x & 31;
    const int64_t channel0 = (int64_t(blockIdx.x) * kQGemvWarps + (threadIdx.x >> 5)) * kW8A8Channels;
    const int32_t k = p.k, gs = p.group_size;
    const int8_t* q = static_cast<const int8_t*>(p.q);

    for (int row0 = 0; row0 < p.m; row0 += kRows) {
        const int rows_here = min(kRows, p.m - row0);
        const float* x_rows = p.x + int64_t(row0) * p.x_stride;
        for (int r = 0; r < rows_here; ++r) {
            float max_abs = 0.0f;
            for (int32_t i = threadIdx.x; i < k; i += blockDim.x) max_abs = fmaxf(max_abs, fabsf(__ldg(x_rows + r * p.x_stride + i)));
            max_abs = block_max(max_abs, scratch);
            if (threadIdx.x == 0) row_scale[r] = int8_kv_scale(max_abs);
        }
        __syncthreads();

        float acc[kW8A8Channels][kRows];
#pragma unroll
        for (int c = 0; c < kW8A8Channels; ++c)
#pragma unroll
            for (int r = 0; r < kRows; ++r) acc[c][r] = 0.0f;

        for (int32_t seg0 = 0; seg0 < k; seg0 += kW8A8Segment) {
            const int32_t seg_len = min(kW8A8Segment, k - seg0);
            const int32_t seg_padded = (seg_len + 15) / 16 * 16;
            __syncthreads();  // every warp is done with the previous segment
            for (int r = 0; r < kRows; ++r) {
                const float scale = r < rows_here ? row_scale[r] : 0.0f;
                for (int32_t i = threadIdx.x; i < seg_padded; i += blockDim.x) {
                    xq[r][i] = (r < rows_here && i < seg_len) ? quantize_int8_kv(__ldg(x_rows + r * p.x_stride + seg0 + i), scale) : int8_t(0);
                }
            }
            __syncthreads();
#pragma unroll
            for (int c = 0; c < kW8A8Channels; ++c) {
                const int64_t channel = channel0 + c;
                if (channel >= p.n) continue;  // warp-uniform
                const int8_t* q_row = q + channel * layout.row_bytes + seg0;
                const float* s_row = p.scales + channel * layout.n_groups;
                if constexpr (kVector) {
#pragma unroll 2
                    for (int32_t i = lane * 16; i < seg_len; i += 32 * 16) {
                        const uint4 wv = __ldg(reinterpret_cast<const uint4*>(q_row + i));
                        const float s = __ldg(s_row + group_of(layout, gs, seg0 + i));
#pragma unroll
                        for (int r = 0; r < kRows; ++r) {
                            const uint4 xv = *reinterpret_cast<const uint4*>(&xq[r][i]);
                            int32_t dot = __dp4a(int(xv.x), int(wv.x), 0);
                            dot = __dp4a(int(xv.y), int(wv.y), dot);
                            dot = __dp4a(int(xv.z), int(wv.z), dot);
                            dot = __dp4a(int(xv.w), int(wv.w), dot);
                            acc[c][r] = fmaf(float(dot), s, acc[c][r]);
                        }
                    }
                } else {
                    for (int32_t i = lane; i < seg_len; i += 32) {
                        const int32_t w = __ldg(q_row + i);
                        const float s = __ldg(s_row + group_of(layout, gs, seg0 + i));
#pragma unroll
                        for (int r = 0; r < kRows; ++r) acc[c][r] = fmaf(float(int32_t(xq[r][i]) * w), s, acc[c][r]);
                    }
                }
            }
        }

#pragma unroll
        for (int c = 0; c < kW8A8Channels; ++c) {
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
                const float sum = warp_sum(acc[c][r]);
                const int64_t channel = channel0 + c;
                if (lane == 0 && channel < p.n && r < rows_here) {
                    p.y[(row0 + r) * p.y_stride + channel] = sum * row_scale[r] + (p.bias ? p.bias[channel] : 0.0f);
                }
            }
        }
        __syncthreads();  // row_scale is rewritten by the next pass
    }
}

// ---- tiled, float FMA ---------------------------------------------------------------------------

constexpr int kQTileM = 64, kQTileN = 64, kQTileK = 16, kQTileThreads = 256, kQTilePad = 2;

// The per-row scales of a 64-row tile of x for W8A8 (rows past m get 0): one warp per row.
__device__ __forceinline__ void tile_row_scales(const si_qmatmul_params& p, int64_t m0, float* row_scale) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int rr = warp; rr < kQTileM; rr += kQTileThreads / 32) {
        const int64_t row = m0 + rr;
        float max_abs = 0.0f;
        if (row < p.m)
            for (int32_t i = lane; i < p.k; i += 32) max_abs = fmaxf(max_abs, fabsf(__ldg(p.x + row * p.x_stride + i)));
        max_abs = warp_max(max_abs);
        if (lane == 0) row_scale[rr] = int8_kv_scale(max_abs);
    }
    __syncthreads();
}

// A 64x64 output tile per block of 256 threads, as matmul_tiled_kernel: each thread owns rows
// ty + 16i and columns tx + 16j. kQuantizeX (W8A8): x is staged as its int8 values (exact in
// f32) and the row scale applied at the end, which equals the int32 group sums scaled by group.
template <typename W, bool kQuantizeX>
__global__ void __launch_bounds__(kQTileThreads)
qmatmul_tiled_kernel(const si_qmatmul_params p, const QLayout layout) {
    __shared__ float x_tile[kQTileK][kQTileM + kQTilePad];  // transposed: [k][m]
    __shared__ float w_tile[kQTileK][kQTileN + kQTilePad];  // transposed: [k][n]
    __shared__ float row_scale[kQTileM];

    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t m0 = int64_t(blockIdx.y) * kQTileM, n0 = int64_t(blockIdx.x) * kQTileN;
    if constexpr (kQuantizeX) tile_row_scales(p, m0, row_scale);
    const int32_t k = p.k, gs = p.group_size;
    const int stage_row = tid / 4, stage_k = (tid % 4) * 4;
    const bool x_valid = m0 + stage_row < p.m, w_valid = n0 + stage_row < p.n;
    // Rows past m or n are never loaded; point them at row 0 to keep the address in bounds.
    const float* x_src = p.x + (x_valid ? (m0 + stage_row) * p.x_stride : 0);
    const int64_t w_channel = w_valid ? n0 + stage_row : 0;
    const uint8_t* q_row = static_cast<const uint8_t*>(p.q) + w_channel * layout.row_bytes;
    const float* s_row = p.scales + w_channel * layout.n_groups;
    const float* o_row = W::kOffsets && p.offsets ? p.offsets + w_channel * layout.n_groups : nullptr;  // NULL: symmetric int4
    const float x_scale = kQuantizeX ? row_scale[stage_row] : 0.0f;

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

    for (int32_t k0 = 0; k0 < k; k0 += kQTileK) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int32_t kk = k0 + stage_k + i;
            float xv = (x_valid && kk < k) ? __ldg(x_src + kk) : 0.0f;
            if constexpr (kQuantizeX) xv = float(quantize_int8_kv(xv, x_scale));
            x_tile[stage_k + i][stage_row] = xv;
            float wv = 0.0f;
            if (w_valid && kk < k) {
                const int32_t g = group_of(layout, gs, kk);
                const float q = float(W::value(q_row, kk));
                wv = W::kOffsets ? fmaf(q, __ldg(s_row + g), int4_offset(o_row, __ldg(s_row + g), g)) : q * __ldg(s_row + g);
            }
            w_tile[stage_k + i][stage_row] = wv;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kQTileK; ++kk) {
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
            if (row >= p.m) continue;
            const float value = kQuantizeX ? acc[i][j] * row_scale[ty + 16 * i] : acc[i][j];
            p.y[row * p.y_stride + col] = value + bias_value;
        }
    }
}

// ---- tiled, W8A8 with dp4a ------------------------------------------------------------------------

constexpr int kQ8TileK = 32;  // k (bytes) per step: the kernel's template argument

// grid: (ceil(n / 64), ceil(m / 64)). The group size is a multiple of kTileK or >= k, so a
// k step lies in one group: int32 sums per step run to the group's end, then scale into f32.
// kTileK = 32: each thread stages two words (8 k) of one row of each tile.
template <int kTileK>
__global__ void __launch_bounds__(kQTileThreads)
qmatmul_tiled_w8a8_kernel(const si_qmatmul_params p, const QLayout layout) {
    static_assert(kTileK == 32, "staging assumes 4 threads x 2 words per 32-byte tile row");
    constexpr int kQ8TileWords = kTileK / 4;        // 32-bit words per tile row
    constexpr int kQ8TilePitch = kQ8TileWords + 1;  // odd pitch: column reads hit distinct banks
    __shared__ int32_t x_tile[kQTileM][kQ8TilePitch];  // [m][k/4], 4 int8 per word
    __shared__ int32_t w_tile[kQTileN][kQ8TilePitch];  // [n][k/4]
    __shared__ float row_scale[kQTileM];

    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t m0 = int64_t(blockIdx.y) * kQTileM, n0 = int64_t(blockIdx.x) * kQTileN;
    tile_row_scales(p, m0, row_scale);
    const int32_t k = p.k, gs = p.group_size;
    const int stage_row = tid / 4, stage_word = (tid % 4) * 2;
    const bool x_valid = m0 + stage_row < p.m, w_valid = n0 + stage_row < p.n;
    const float* x_src = p.x + (x_valid ? (m0 + stage_row) * p.x_stride : 0);
    const int8_t* q_row = static_cast<const int8_t*>(p.q) + (w_valid ? n0 + stage_row : 0) * layout.row_bytes;
    const float x_scale = row_scale[stage_row];

    int32_t dot[4][4];
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            dot[i][j] = 0;
            acc[i][j] = 0.0f;
        }
    // Adds the finished group g's int32 sums, scaled, into acc.
    auto flush = [&](int32_t g) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int64_t col = n0 + tx + 16 * j;
            const float s = col < p.n ? __ldg(p.scales + col * layout.n_groups + g) : 0.0f;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                acc[i][j] = fmaf(float(dot[i][j]), s, acc[i][j]);
                dot[i][j] = 0;
            }
        }
    };

    int32_t g = 0, group_end = gs;
    for (int32_t k0 = 0; k0 < k; k0 += kTileK) {
        if (k0 >= group_end) {
            flush(g);
            ++g;
            group_end += gs;
        }
#pragma unroll
        for (int wd = 0; wd < 2; ++wd) {
            uint32_t x_word = 0, w_word = 0;
#pragma unroll
            for (int b = 0; b < 4; ++b) {
                const int32_t kk = k0 + (stage_word + wd) * 4 + b;
                const bool in_k = kk < k;
                const int8_t xq = (x_valid && in_k) ? quantize_int8_kv(__ldg(x_src + kk), x_scale) : int8_t(0);
                const int8_t wq = (w_valid && in_k) ? int8_t(__ldg(q_row + kk)) : int8_t(0);
                x_word |= uint32_t(uint8_t(xq)) << (8 * b);
                w_word |= uint32_t(uint8_t(wq)) << (8 * b);
            }
            x_tile[stage_row][stage_word + wd] = int32_t(x_word);
            w_tile[stage_row][stage_word + wd] = int32_t(w_word);
        }
        __syncthreads();
#pragma unroll
        for (int wd = 0; wd < kQ8TileWords; ++wd) {
            int32_t a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = x_tile[ty + 16 * i][wd];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = w_tile[tx + 16 * j][wd];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) dot[i][j] = __dp4a(a[i], b[j], dot[i][j]);
        }
        __syncthreads();
    }
    flush(g);

#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int64_t col = n0 + tx + 16 * j;
        if (col >= p.n) continue;
        const float bias_value = p.bias ? p.bias[col] : 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int64_t row = m0 + ty + 16 * i;
            if (row < p.m) p.y[row * p.y_stride + col] = acc[i][j] * row_scale[ty + 16 * i] + bias_value;
        }
    }
}

// ---- block-wise int8 activations (SI_ACTIVATIONS_I8_BLOCK32) --------------------------------
// Below qmma::kMinRows rows (qmatmul_mma_kernel takes larger m): grid (ceil(n / (kQGemvWarps * kB32Channels)), m), kQGemvThreads threads, dynamic shared
// memory b32_shared_bytes(k). The block quantizes its row of x per 32-k block into shared memory
// (the int8 KV-cache rule, common/kv_quant.h, as ref and cpu do), then each warp takes
// kB32Channels channels: lane l handles blocks l, l + 32, ..., adding scale_x[b] * (d_b *
// scale[g] (+ t_b * offset[g])) in f32 (t_b = sum of the block's q_x), and the warp reduces. A correct, simple path: the
// runner does not use the cuda backend for these models yet.
constexpr int kB32Channels = 4;
constexpr int kB32Block = 32;
inline size_t b32_shared_bytes(int32_t k) {
    const size_t blocks = (size_t(k) + kB32Block - 1) / kB32Block;
    return blocks * kB32Block + blocks * (sizeof(float) + sizeof(int32_t));
}

template <typename W>
__global__ void __launch_bounds__(kQGemvThreads)
qmatmul_b32_kernel(si_qmatmul_params p, QLayout layout) {
    extern __shared__ __align__(16) unsigned char b32_shared[];
    const int32_t k = p.k, n_blocks = (k + kB32Block - 1) / kB32Block;
    int8_t* qx = reinterpret_cast<int8_t*>(b32_shared);
    float* sx = reinterpret_cast<float*>(b32_shared + size_t(n_blocks) * kB32Block);
    int32_t* tq = reinterpret_cast<int32_t*>(sx + n_blocks);
    const int64_t row = blockIdx.y;
    const float* x = p.x + row * p.x_stride;
    for (int32_t b = threadIdx.x; b < n_blocks; b += blockDim.x) {
        const int32_t begin = b * kB32Block, end = min(begin + kB32Block, k);
        float max_abs = 0.0f;
        for (int32_t i = begin; i < end; ++i) max_abs = fmaxf(max_abs, fabsf(x[i]));
        const float scale = int8_kv_scale(max_abs);
        int32_t sum = 0;
        for (int32_t i = begin; i < end; ++i) {
            const int8_t q = quantize_int8_kv(x[i], scale);
            qx[i] = q;
            sum += q;
        }
        sx[b] = scale;
        tq[b] = sum;
    }
    __syncthreads();
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int64_t first = (int64_t(blockIdx.x) * kQGemvWarps + warp) * kB32Channels;
    for (int j = 0; j < kB32Channels; ++j) {
        const int64_t c = first + j;
        if (c >= p.n) break;
        const uint8_t* w = static_cast<const uint8_t*>(p.q) + c * layout.row_bytes;
        const float* scales = p.scales + c * layout.n_groups;
        float acc = 0.0f;
        for (int32_t b = lane; b < n_blocks; b += 32) {
            const int32_t begin = b * kB32Block, end = min(begin + kB32Block, k);
            int32_t dot = 0;
            for (int32_t i = begin; i < end; ++i) dot += int32_t(qx[i]) * W::value(w, i);
            const int32_t g = begin / p.group_size;
            float block = float(dot) * scales[g];
            if constexpr (W::kOffsets) block = fmaf(float(tq[b]), p.offsets ? p.offsets[c * layout.n_groups + g] : -8.0f * scales[g], block);
            acc = fmaf(sx[b], block, acc);
        }
        acc = warp_sum(acc);
        if (lane == 0) p.y[row * p.y_stride + c] = p.bias ? acc + p.bias[c] : acc;
    }
}

// ---- tiled, int8 tensor cores (mma.sync m16n8k32, sm_80+) ---------------------------------------
// W8A8 per token (SI_ACTIVATIONS_I8; group size a multiple of 32 or >= k) and block-wise
// (SI_ACTIVATIONS_I8_BLOCK32; int8 or int4 weights) for m >= kMinRows. grid (ceil(n / 64),
// ceil(m / 64)), kThreads = 128: four warps in 2 x 2, each owning a 32 x 32 output tile
// (2 x 4 m16n8 tiles). Per stage the block stages 64 k of x (quantized to int8 on the way:
// per row with the pre-pass row scales, or per 32-k block, 8 threads per block sharing its max
// by shuffles) and of the weights (int4 nibbles widened to int8 0..15) into shared memory,
// zero past m, n and k, plus each 32-k step's weight scale (and int4 offset) per channel.
// Every m16n8k32 step is one 32-k block:
//  - per token: int32 sums run to the group's end, then acc = fmaf(float(dot), scale, acc);
//    y = acc * row_scale + bias (as qmatmul_tiled_w8a8_kernel).
//  - block-wise: block = float(dot) * scale (+ fmaf(float(t_b), offset, ...) for int4);
//    acc = fmaf(scale_x[b], block, acc); y = acc (+ bias) (as qmatmul_b32_kernel).
// Fragments (PTX ISA, mma.m16n8k32 .s8; g = lane / 4, t = lane % 4, one 32-bit word = 4 k):
//   a0 = A(g, 4t..4t+3)  a1 = A(g+8, 4t..)  a2 = A(g, 16+4t..)  a3 = A(g+8, 16+4t..)
//   b0 = B(4t..4t+3, g) = W(channel g, 4t..)  b1 = W(channel g, 16+4t..)
//   c0, c1 = C(g, 2t), C(g, 2t+1)   c2, c3 = C(g+8, 2t), C(g+8, 2t+1)
// so with tiles stored [row or channel][k word], every fragment register is one word: word
// 8s + t (+ 4) of the step s. A pitch of 4 mod 8 words puts the 8 rows x 4 words of a
// fragment load on 32 distinct banks.
namespace qmma {

constexpr int kTileM = 64, kTileN = 64, kTileK = 64;
constexpr int kWarpsM = 2, kWarpsN = 2, kThreads = kWarpsM * kWarpsN * 32;
constexpr int kWarpM = kTileM / kWarpsM, kWarpN = kTileN / kWarpsN;  // 32 x 32 per warp
constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;           // 2 x 4 mma tiles per warp
constexpr int kStepK = 32;                                           // k per mma step = one activation block
constexpr int kSteps = kTileK / kStepK;                              // mma steps per stage
constexpr int kWords = kTileK / 4;                                   // 32-bit words per tile row per stage
constexpr int kPitch = kWords + 4;                                   // words per shared tile row
constexpr int kMinRows = 16;                                         // the launcher's threshold
static_assert(kPitch % 8 == 4, "conflict-free fragment loads need a pitch of 4 mod 8 words");
static_assert(kTileM * kSteps * 8 % kThreads == 0, "x staging: every thread takes the same number of blocks");
static_assert(kStepK == 32, "one mma step is one 32-k activation block");

// d += A . B (int32), A 16 x 32 s8 row-major, B 32 x 8 s8 column-major.
__device__ __forceinline__ void mma_s8(int32_t (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four nibbles (k = 4j..4j+3, low nibble first) of a 16-bit value as four int8 bytes 0..15.
__device__ __forceinline__ uint32_t widen_nibbles(uint32_t v) {
    return (v & 0xfu) | ((v & 0xf0u) << 4) | ((v & 0xf00u) << 8) | ((v & 0xf000u) << 12);
}

}  // namespace qmma

// kVecW: 16-byte weight loads (the launcher checked q 16-byte aligned and k a multiple of 16
// for int8, 32 for int4, so a chunk is wholly inside or outside k); else byte loads.
template <typename W, bool kBlock32, bool kVecW>
__global__ void __launch_bounds__(qmma::kThreads)
qmatmul_mma_kernel(const si_qmatmul_params p, const QLayout layout) {
    using namespace qmma;
    static_assert(kBlock32 || !W::kOffsets, "per-token int8 activations take int8 weights only");
    constexpr int kScaleSteps = kBlock32 ? kSteps : 1;
    constexpr int kOffsetSteps = W::kOffsets ? kSteps : 1;
    __shared__ __align__(16) uint32_t x_tile[kTileM][kPitch];  // [row][k word], 4 int8 per word
    __shared__ __align__(16) uint32_t w_tile[kTileN][kPitch];  // [channel][k word]
    __shared__ float w_scale[kSteps][kTileN];                  // the step's group scale per channel
    __shared__ float w_offset[kOffsetSteps][kTileN];           // int4: the step's group offset
    __shared__ float x_scale[kScaleSteps][kTileM];             // block-wise: per step; per token: per row
    __shared__ int32_t x_sum[kOffsetSteps][kTileM];            // int4: sum of the block's int8 x

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int warp_row = (warp / kWarpsN) * kWarpM, warp_col = (warp % kWarpsN) * kWarpN;
    const int64_t m0 = int64_t(blockIdx.y) * kTileM, n0 = int64_t(blockIdx.x) * kTileN;
    const int32_t k = p.k, gs = p.group_size;
    const uint8_t* q = static_cast<const uint8_t*>(p.q);
    // 16-byte x loads when every row's 4-k pieces are aligned (a piece then lies wholly inside
    // or outside k); block-uniform.
    const bool x_vector = reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && p.x_stride % 4 == 0 && k % 4 == 0;

    if constexpr (!kBlock32) {
        // Per-token row scales, one warp per row (rows past m get 0).
        for (int rr = warp; rr < kTileM; rr += kThreads / 32) {
            const int64_t row = m0 + rr;
            float max_abs = 0.0f;
            if (row < p.m)
                for (int32_t i = lane; i < k; i += 32) max_abs = fmaxf(max_abs, fabsf(__ldg(p.x + row * p.x_stride + i)));
            max_abs = warp_max(max_abs);
            if (lane == 0) x_scale[0][rr] = int8_kv_scale(max_abs);
        }
        __syncthreads();
    }

    float acc[kFragsM][kFragsN][4];
    int32_t dot[kBlock32 ? 1 : kFragsM][kBlock32 ? 1 : kFragsN][4];  // per token: the group's int32 sums
#pragma unroll
    for (int mi = 0; mi < kFragsM; ++mi)
#pragma unroll
        for (int ni = 0; ni < kFragsN; ++ni)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;
    if constexpr (!kBlock32) {
#pragma unroll
        for (int mi = 0; mi < kFragsM; ++mi)
#pragma unroll
            for (int ni = 0; ni < kFragsN; ++ni)
#pragma unroll
                for (int e = 0; e < 4; ++e) dot[mi][ni][e] = 0;
    }

    for (int32_t k0 = 0; k0 < k; k0 += kTileK) {
        // x: 8 threads per (row, 32-k block), 4 consecutive k each, packed into one word.
#pragma unroll 2
        for (int idx = tid; idx < kTileM * kSteps * 8; idx += kThreads) {
            const int l8 = idx & 7, pair = idx >> 3, s = pair % kSteps, r = pair / kSteps;
            const int64_t row = m0 + r;
            const int32_t kb = k0 + s * kStepK + l8 * 4;
            float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            if (row < p.m) {
                const float* x_row = p.x + row * p.x_stride;
                if (x_vector) {
                    if (kb < k) {
                        const float4 x4 = __ldg(reinterpret_cast<const float4*>(x_row + kb));
                        v[0] = x4.x;
                        v[1] = x4.y;
                        v[2] = x4.z;
                        v[3] = x4.w;
                    }
                } else {
#pragma unroll
                    for (int b = 0; b < 4; ++b)
                        if (kb + b < k) v[b] = __ldg(x_row + kb + b);
                }
            }
            float scale;
            if constexpr (kBlock32) {
                float max_abs = fmaxf(fmaxf(fabsf(v[0]), fabsf(v[1])), fmaxf(fabsf(v[2]), fabsf(v[3])));
                max_abs = fmaxf(max_abs, __shfl_xor_sync(kFullMask, max_abs, 1));
                max_abs = fmaxf(max_abs, __shfl_xor_sync(kFullMask, max_abs, 2));
                max_abs = fmaxf(max_abs, __shfl_xor_sync(kFullMask, max_abs, 4));
                scale = int8_kv_scale(max_abs);
            } else {
                scale = x_scale[0][r];
            }
            uint32_t word = 0;
            int32_t sum = 0;
#pragma unroll
            for (int b = 0; b < 4; ++b) {
                const int8_t qv = quantize_int8_kv(v[b], scale);
                word |= uint32_t(uint8_t(qv)) << (8 * b);
                sum += qv;
            }
            if constexpr (W::kOffsets) {
                sum += __shfl_xor_sync(kFullMask, sum, 1);
                sum += __shfl_xor_sync(kFullMask, sum, 2);
                sum += __shfl_xor_sync(kFullMask, sum, 4);
            }
            x_tile[r][s * 8 + l8] = word;
            if constexpr (kBlock32) {
                if (l8 == 0) {
                    x_scale[s][r] = scale;
                    if constexpr (W::kOffsets) x_sum[s][r] = sum;
                }
            }
        }

        // Weights, zero past n and k.
        if constexpr (kVecW && !W::kOffsets) {
            constexpr int kChunksPerRow = kTileK / 16;
            for (int idx = tid; idx < kTileN * kChunksPerRow; idx += kThreads) {
                const int r = idx / kChunksPerRow, c = idx % kChunksPerRow;
                const int64_t channel = n0 + r;
                const int32_t kb = k0 + c * 16;
                uint4 v = make_uint4(0u, 0u, 0u, 0u);
                if (channel < p.n && kb < k) v = __ldg(reinterpret_cast<const uint4*>(q + channel * layout.row_bytes + kb));
                *reinterpret_cast<uint4*>(&w_tile[r][c * 4]) = v;
            }
        } else if constexpr (kVecW) {
            // int4: a 16-byte chunk is 32 nibbles, one step; 16-bit half h of its word j / 2 is
            // k = 4j..4j+3.
            for (int idx = tid; idx < kTileN * kSteps; idx += kThreads) {
                const int r = idx / kSteps, s = idx % kSteps;
                const int64_t channel = n0 + r;
                const int32_t kb = k0 + s * kStepK;
                uint4 v = make_uint4(0u, 0u, 0u, 0u);
                if (channel < p.n && kb < k) v = __ldg(reinterpret_cast<const uint4*>(q + channel * layout.row_bytes + kb / 2));
                *reinterpret_cast<uint4*>(&w_tile[r][s * 8]) =
                    make_uint4(widen_nibbles(v.x & 0xffffu), widen_nibbles(v.x >> 16), widen_nibbles(v.y & 0xffffu), widen_nibbles(v.y >> 16));
                *reinterpret_cast<uint4*>(&w_tile[r][s * 8 + 4]) =
                    make_uint4(widen_nibbles(v.z & 0xffffu), widen_nibbles(v.z >> 16), widen_nibbles(v.w & 0xffffu), widen_nibbles(v.w >> 16));
            }
        } else {
            for (int idx = tid; idx < kTileN * kWords; idx += kThreads) {
                const int r = idx / kWords, wd = idx % kWords;
                const int64_t channel = n0 + r;
                const int32_t kb = k0 + wd * 4;
                uint32_t word = 0;
                if (channel < p.n) {
                    const uint8_t* q_row = q + channel * layout.row_bytes;
#pragma unroll
                    for (int b = 0; b < 4; ++b)
                        if (kb + b < k) word |= uint32_t(uint8_t(W::value(q_row, kb + b))) << (8 * b);
                }
                w_tile[r][wd] = word;
            }
        }

        // Each step's group scale (and int4 offset) per channel; 0 past n and k.
        for (int idx = tid; idx < kSteps * kTileN; idx += kThreads) {
            const int s = idx / kTileN, c = idx % kTileN;
            const int64_t channel = n0 + c;
            const int32_t ks = k0 + s * kStepK;
            float scale = 0.0f, offset = 0.0f;
            if (channel < p.n && ks < k) {
                const int32_t group = group_of(layout, gs, ks);
                scale = __ldg(p.scales + channel * layout.n_groups + group);
                if constexpr (W::kOffsets)
                    offset = int4_offset(p.offsets ? p.offsets + channel * layout.n_groups : nullptr, scale, group);
            }
            w_scale[s][c] = scale;
            if constexpr (W::kOffsets) w_offset[s][c] = offset;
        }
        __syncthreads();

#pragma unroll
        for (int s = 0; s < kSteps; ++s) {
            const int32_t ks = k0 + s * kStepK;
            if (ks >= k) break;  // block-uniform: a step wholly past k adds nothing
            uint32_t a[kFragsM][4], b[kFragsN][2];
#pragma unroll
            for (int mi = 0; mi < kFragsM; ++mi) {
                const int r = warp_row + mi * 16 + g;
                a[mi][0] = x_tile[r][s * 8 + t];
                a[mi][1] = x_tile[r + 8][s * 8 + t];
                a[mi][2] = x_tile[r][s * 8 + 4 + t];
                a[mi][3] = x_tile[r + 8][s * 8 + 4 + t];
            }
#pragma unroll
            for (int ni = 0; ni < kFragsN; ++ni) {
                const int c = warp_col + ni * 8 + g;
                b[ni][0] = w_tile[c][s * 8 + t];
                b[ni][1] = w_tile[c][s * 8 + 4 + t];
            }
            if constexpr (kBlock32) {
                float sx[kFragsM][2], tx[kFragsM][2], sw[kFragsN][2], ow[kFragsN][2];
#pragma unroll
                for (int mi = 0; mi < kFragsM; ++mi)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const int r = warp_row + mi * 16 + g + 8 * h;
                        sx[mi][h] = x_scale[s][r];
                        tx[mi][h] = W::kOffsets ? float(x_sum[W::kOffsets ? s : 0][r]) : 0.0f;
                    }
#pragma unroll
                for (int ni = 0; ni < kFragsN; ++ni)
#pragma unroll
                    for (int j = 0; j < 2; ++j) {
                        const int c = warp_col + ni * 8 + 2 * t + j;
                        sw[ni][j] = w_scale[s][c];
                        ow[ni][j] = W::kOffsets ? w_offset[W::kOffsets ? s : 0][c] : 0.0f;
                    }
#pragma unroll
                for (int mi = 0; mi < kFragsM; ++mi)
#pragma unroll
                    for (int ni = 0; ni < kFragsN; ++ni) {
                        int32_t d[4] = {0, 0, 0, 0};
                        mma_s8(d, a[mi], b[ni][0], b[ni][1]);
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const int h = e >> 1, j = e & 1;
                            float block = float(d[e]) * sw[ni][j];
                            if constexpr (W::kOffsets) block = fmaf(tx[mi][h], ow[ni][j], block);
                            acc[mi][ni][e] = fmaf(sx[mi][h], block, acc[mi][ni][e]);
                        }
                    }
            } else {
#pragma unroll
                for (int mi = 0; mi < kFragsM; ++mi)
#pragma unroll
                    for (int ni = 0; ni < kFragsN; ++ni) mma_s8(dot[mi][ni], a[mi], b[ni][0], b[ni][1]);
                // The group ends with this step: scale its int32 sums into f32.
                if (ks + kStepK >= k || (ks + kStepK) % gs == 0) {
#pragma unroll
                    for (int ni = 0; ni < kFragsN; ++ni)
#pragma unroll
                        for (int j = 0; j < 2; ++j) {
                            const float sw = w_scale[s][warp_col + ni * 8 + 2 * t + j];
#pragma unroll
                            for (int mi = 0; mi < kFragsM; ++mi)
#pragma unroll
                                for (int h = 0; h < 2; ++h) {
                                    acc[mi][ni][2 * h + j] = fmaf(float(dot[mi][ni][2 * h + j]), sw, acc[mi][ni][2 * h + j]);
                                    dot[mi][ni][2 * h + j] = 0;
                                }
                        }
                }
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int ni = 0; ni < kFragsN; ++ni)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const int64_t col = n0 + warp_col + ni * 8 + 2 * t + j;
            if (col >= p.n) continue;
            const float bias_value = p.bias ? p.bias[col] : 0.0f;
#pragma unroll
            for (int mi = 0; mi < kFragsM; ++mi)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int r = warp_row + mi * 16 + g + 8 * h;
                    const int64_t row = m0 + r;
                    if (row >= p.m) continue;
                    const float value = acc[mi][ni][2 * h + j];
                    if constexpr (kBlock32) p.y[row * p.y_stride + col] = p.bias ? value + bias_value : value;
                    else p.y[row * p.y_stride + col] = value * x_scale[0][r] + bias_value;
                }
        }
}

}  // namespace si::cuda
