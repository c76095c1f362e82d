// swiglu.cuh: out = silu(gate) * up elementwise over strided rows.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace si::cuda {

// Grid-stride over rows*n flattened. No __restrict__: out may alias gate or up, and each
// element is read and written by the same thread.
__global__ void swiglu_kernel(const float* gate,  // [rows, n], stride gate_stride
                              const float* up,    // [rows, n], stride up_stride
                              float* out,         // [rows, n], stride out_stride
                              int64_t gate_stride, int64_t up_stride, int64_t out_stride, int64_t total, int32_t n) {
    for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += int64_t(gridDim.x) * blockDim.x) {
        const int64_t row = idx / n, col = idx % n;
        const float g = gate[row * gate_stride + col];
        const float u = up[row * up_stride + col];
        // expf (not __expf) keeps full f32 accuracy; g very negative gives g/inf = -0.
        out[row * out_stride + col] = g / (1.0f + expf(-g)) * u;
    }
}

}  // namespace si::cuda
