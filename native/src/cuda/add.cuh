// add.cuh: out = a + b over n contiguous floats (the residual add).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace si::cuda {

// kVector: float4 loads/stores, chosen by the launcher when a, b and out are all 16-byte
// aligned; the last n % 4 elements then go scalar. No __restrict__: out may alias a or b.
template <bool kVector>
__global__ void add_kernel(const float* a, const float* b, float* out, int64_t n) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    int64_t scalar_begin = 0;
    if constexpr (kVector) {
        const int64_t n4 = n / 4;
        const float4* a4 = reinterpret_cast<const float4*>(a);
        const float4* b4 = reinterpret_cast<const float4*>(b);
        float4* out4 = reinterpret_cast<float4*>(out);
        for (int64_t i = first; i < n4; i += stride) {
            const float4 x = a4[i], y = b4[i];
            out4[i] = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
        }
        scalar_begin = n4 * 4;
    }
    for (int64_t i = scalar_begin + first; i < n; i += stride) out[i] = a[i] + b[i];
}

}  // namespace si::cuda
