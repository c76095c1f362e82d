// reduce.cuh: warp- and block-wide sum/max used by the row kernels (rms_norm, softmax).
// Block reductions assume blockDim.x is a multiple of 32 and at most 1024.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace si::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float value) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(kFullMask, value, offset);
    return value;
}

__device__ __forceinline__ float warp_max(float value) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(kFullMask, value, offset));
    return value;
}

// Every thread gets the block's result. `scratch` holds 32 floats of shared memory; the
// trailing barrier lets the caller reuse it for the next reduction right away.
__device__ __forceinline__ float block_sum(float value, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    value = warp_sum(value);
    if (lane == 0) scratch[warp] = value;
    __syncthreads();
    value = warp_sum(lane < warps ? scratch[lane] : 0.0f);
    __syncthreads();
    return value;
}

__device__ __forceinline__ float block_max(float value, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    value = warp_max(value);
    if (lane == 0) scratch[warp] = value;
    __syncthreads();
    value = warp_max(lane < warps ? scratch[lane] : -INFINITY);
    __syncthreads();
    return value;
}

// Threads per block for one-block-per-row kernels: enough to cover wide rows (vocab-sized
// softmax/argmax) without idling most of a block on narrow ones.
inline int row_block_size(int64_t n) {
    if (n >= 16384) return 1024;
    if (n >= 2048) return 512;
    if (n >= 512) return 256;
    return 128;
}

}  // namespace si::cuda
