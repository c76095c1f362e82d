// argmax.cuh: row argmax, one block per row. Ties go to the lowest index and NaN never
// wins; an all-NaN row gives 0.
#pragma once

#include "cuda/reduce.cuh"

#include <cstdint>

namespace si::cuda {

// A candidate is (value, index); index -1 means "none yet". NaNs never become candidates,
// so comparisons below only see numbers (including +-inf).
__device__ __forceinline__ bool argmax_better(float value, int32_t index, float best_value, int32_t best_index) {
    if (index < 0) return false;
    if (best_index < 0) return true;
    return value > best_value || (value == best_value && index < best_index);
}

__global__ void argmax_kernel(const float* __restrict__ x,  // [rows, n], stride x_stride
                              int32_t* __restrict__ out,    // [rows]
                              int64_t x_stride, int32_t n) {
    __shared__ float warp_values[32];
    __shared__ int32_t warp_indices[32];
    const float* x_row = x + blockIdx.x * x_stride;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;

    // Each thread scans increasing indices, so a strict > keeps its lowest index on ties.
    float best_value = 0.0f;
    int32_t best_index = -1;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = x_row[i];
        if (!isnan(v) && (best_index < 0 || v > best_value)) {
            best_value = v;
            best_index = i;
        }
    }
    for (int round = 0; round < 2; ++round) {
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1) {
            const float other_value = __shfl_xor_sync(kFullMask, best_value, offset);
            const int32_t other_index = __shfl_xor_sync(kFullMask, best_index, offset);
            if (argmax_better(other_value, other_index, best_value, best_index)) {
                best_value = other_value;
                best_index = other_index;
            }
        }
        if (round == 1) break;
        if (lane == 0) {
            warp_values[warp] = best_value;
            warp_indices[warp] = best_index;
        }
        __syncthreads();
        best_value = lane < warps ? warp_values[lane] : 0.0f;
        best_index = lane < warps ? warp_indices[lane] : -1;
    }
    if (threadIdx.x == 0) out[blockIdx.x] = best_index < 0 ? 0 : best_index;
}

}  // namespace si::cuda
