// matmul.cuh: y[m, n] = x[m, k] . w[n, k]^T (+ bias) kernels, templated on weight dtype.
// Two shapes: a GEMV-style kernel for decode-sized m (weight-bandwidth bound: one warp per
// output channel streams its weight row once for up to kRows rows of x), and a tiled
// shared-memory kernel for prefill-sized m (compute bound; tensor cores come later).
#pragma once

#include "cuda/reduce.cuh"
#include "cuda/weights.cuh"

namespace si::cuda {

constexpr int kGemvThreads = 256;  // 8 warps = 8 output channels per block
// Largest m the GEMV kernel takes. Up to here (four passes of 4 rows) streaming the weights
// beats the tiled kernel, whose 64-row tiles sit mostly idle and whose grid is too small
// to fill the GPU at small m (H100, n = k = 4096 bf16: m = 16 took 274 us tiled; m = 8
// took 40 us as two 4-row passes but 65 us as one 8-row pass, at 80 registers).
constexpr int kGemvMaxRows = 16;

// kRows: rows of x handled per pass over the weight row (1 for decode, 4 otherwise).
// kVector: 16-byte loads of w and x; the launcher sets it only when w, x and x_stride are
// 16-byte aligned and k is a multiple of W::kVector, so no row needs a scalar tail.
template <typename W, int kRows, bool kVector>
__global__ void __launch_bounds__(kGemvThreads)
matmul_gemv_kernel(const float* __restrict__ x,                 // [m, k], stride x_stride
                   const typename W::Storage* __restrict__ w,   // [n, k]
                   const float* __restrict__ bias,              // [n] or null
                   float* __restrict__ y,                       // [m, n], stride y_stride
                   int64_t x_stride, int64_t y_stride, int32_t m, int32_t n, int32_t k) {
    const int lane = threadIdx.x & 31;
    const int64_t channel = int64_t(blockIdx.x) * (kGemvThreads / 32) + (threadIdx.x >> 5);
    if (channel >= n) return;  // a whole warp leaves together, so shuffles below stay full
    const typename W::Storage* w_row = w + channel * k;
    const float bias_value = bias ? bias[channel] : 0.0f;

    for (int row0 = 0; row0 < m; row0 += kRows) {
        const int rows_here = min(kRows, m - row0);
        const float* x_rows = x + int64_t(row0) * x_stride;
        float acc[kRows];
#pragma unroll
        for (int r = 0; r < kRows; ++r) acc[r] = 0.0f;

        if constexpr (kVector) {
            constexpr int V = W::kVector;
#pragma unroll 2
            for (int64_t base = int64_t(lane) * V; base < k; base += 32 * V) {
                float wv[V];
                W::load_vector(w_row + base, wv);
#pragma unroll
                for (int r = 0; r < kRows; ++r) {
                    if (r < rows_here) {
                        const float* xr = x_rows + r * x_stride + base;
#pragma unroll
                        for (int j = 0; j < V; j += 4) {
                            const float4 xv = __ldg(reinterpret_cast<const float4*>(xr + j));
                            acc[r] = fmaf(wv[j], xv.x, acc[r]);
                            acc[r] = fmaf(wv[j + 1], xv.y, acc[r]);
                            acc[r] = fmaf(wv[j + 2], xv.z, acc[r]);
                            acc[r] = fmaf(wv[j + 3], xv.w, acc[r]);
                        }
                    }
                }
            }
        } else {
            for (int64_t i = lane; i < k; i += 32) {
                const float wv = W::load(w_row, i);
#pragma unroll
                for (int r = 0; r < kRows; ++r) {
                    if (r < rows_here) acc[r] = fmaf(wv, __ldg(x_rows + r * x_stride + i), acc[r]);
                }
            }
        }

#pragma unroll
        for (int r = 0; r < kRows; ++r) acc[r] = warp_sum(acc[r]);
        if (lane == 0) {
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
                if (r < rows_here) y[(row0 + r) * y_stride + channel] = acc[r] + bias_value;
            }
        }
    }
}

// Tiled kernel: a 64x64 output tile per block of 256 threads, each thread a 4x4 sub-tile
// strided by 16 (rows ty + 16i, cols tx + 16j) so shared-memory reads broadcast or hit
// distinct banks and the final stores are coalesced along n. Weights are widened to f32
// when staged into shared memory.
constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kTileThreads = 256;
// Staging writes column `row` of a [k][row] tile from threads that differ in row (0..7)
// and k group (0, 4, 8, 12); a row length of 66 puts those k groups 8 banks apart.
constexpr int kTilePad = 2;

template <typename W>
__global__ void __launch_bounds__(kTileThreads)
matmul_tiled_kernel(const float* __restrict__ x,                 // [m, k], stride x_stride
                    const typename W::Storage* __restrict__ w,   // [n, k]
                    const float* __restrict__ bias,              // [n] or null
                    float* __restrict__ y,                       // [m, n], stride y_stride
                    int64_t x_stride, int64_t y_stride, int32_t m, int32_t n, int32_t k) {
    __shared__ float x_tile[kTileK][kTileM + kTilePad];  // transposed: [k][m]
    __shared__ float w_tile[kTileK][kTileN + kTilePad];  // transposed: [k][n]

    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t m0 = int64_t(blockIdx.y) * kTileM, n0 = int64_t(blockIdx.x) * kTileN;
    // Each thread stages 4 consecutive k of one row of each tile.
    const int stage_row = tid / 4, stage_k = (tid % 4) * 4;
    const bool x_valid = m0 + stage_row < m, w_valid = n0 + stage_row < n;
    // Rows past m or n are never loaded; point them at row 0 to keep the address in bounds.
    const float* x_src = x + (x_valid ? (m0 + stage_row) * x_stride : 0);
    const typename W::Storage* w_src = w + (w_valid ? (n0 + stage_row) * k : 0);

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < k; k0 += kTileK) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int kk = k0 + stage_k + i;
            x_tile[stage_k + i][stage_row] = (x_valid && kk < k) ? __ldg(x_src + kk) : 0.0f;
            w_tile[stage_k + i][stage_row] = (w_valid && kk < k) ? W::load(w_src, kk) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kTileK; ++kk) {
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
        if (col >= n) continue;
        const float bias_value = bias ? bias[col] : 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int64_t row = m0 + ty + 16 * i;
            if (row < m) y[row * y_stride + col] = acc[i][j] + bias_value;
        }
    }
}

}  // namespace si::cuda
