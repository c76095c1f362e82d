// softmax.cuh: row softmax of x * inv_temperature, one block per row, three passes (max,
// sum of exponentials, write) over a row that stays in L1/L2 between passes.
#pragma once

#include "cuda/reduce.cuh"

namespace si::cuda {

// No __restrict__: out may alias x; only the last pass writes, each element by the thread
// that reads it.
__global__ void softmax_kernel(const float* x,  // [rows, n], stride x_stride
                               float* out,      // [rows, n], stride out_stride
                               int64_t x_stride, int64_t out_stride, int32_t n, float inv_temperature) {
    __shared__ float scratch[32];
    const float* x_row = x + blockIdx.x * x_stride;
    float* out_row = out + blockIdx.x * out_stride;

    float row_max = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x) row_max = fmaxf(row_max, x_row[i] * inv_temperature);
    row_max = block_max(row_max, scratch);

    float sum = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) sum += expf(x_row[i] * inv_temperature - row_max);
    sum = block_sum(sum, scratch);

    for (int i = threadIdx.x; i < n; i += blockDim.x) out_row[i] = expf(x_row[i] * inv_temperature - row_max) / sum;
}

}  // namespace si::cuda
