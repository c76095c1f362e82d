// rms_norm.cuh: RMSNorm kernel, one block per row, f32 sum of squares by block reduction.
#pragma once

#include "cuda/reduce.cuh"

namespace si::cuda {

// No __restrict__ on x/out: the ABI lets out alias x. That is safe here because every
// element is read and written by the same thread, and all reads of the sum pass finish at
// block_sum's barrier before the first write.
__global__ void rms_norm_kernel(const float* x,                     // [rows, dim], stride x_stride
                                const float* __restrict__ weight,   // [dim]
                                float* out,                         // [rows, dim], stride out_stride
                                int64_t x_stride, int64_t out_stride, int32_t dim, float eps) {
    __shared__ float scratch[32];
    const float* x_row = x + blockIdx.x * x_stride;
    float* out_row = out + blockIdx.x * out_stride;
    float sum_squares = 0.0f;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        const float v = x_row[d];
        sum_squares = fmaf(v, v, sum_squares);
    }
    sum_squares = block_sum(sum_squares, scratch);
    // sqrtf and the division are IEEE-rounded (no fast math), unlike rsqrtf.
    const float inv_rms = 1.0f / sqrtf(sum_squares / float(dim) + eps);
    for (int d = threadIdx.x; d < dim; d += blockDim.x) out_row[d] = x_row[d] * inv_rms * weight[d];
}

}  // namespace si::cuda
