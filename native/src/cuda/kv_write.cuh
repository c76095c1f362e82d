// kv_write.cuh: the paged KV-cache write (reshape_and_cache): one warp per (token, kv head)
// converts that token's K and V rows to the cache dtype and stores them in its slot; int8
// rows are quantized with their per-(token, head) scale by common/kv_quant.h's rule.
#pragma once

#include "common/dtype.h"
#include "common/kv_quant.h"
#include "cuda/reduce.cuh"

#include <sharpinfer/sharpinfer.h>

#include <cuda_runtime.h>

#include <cstdint>

namespace si::cuda {

si_result launch_kv_write(const si_kv_write_params& p, cudaStream_t stream);

constexpr int kKvWriteWarps = 4;  // rows per 128-thread block

// One row of head_dim f32 values -> one cache row (and its scale for int8).
template <si_dtype kDtype>
__device__ __forceinline__ void kv_write_row(const float* src, void* pool, float* scales, int64_t row, int head_dim, int lane) {
    const int64_t at = row * head_dim;
    if constexpr (kDtype == SI_DTYPE_I8) {
        float max_abs = 0.0f;
        for (int d = lane; d < head_dim; d += 32) max_abs = fmaxf(max_abs, fabsf(__ldg(src + d)));
        const float scale = int8_kv_scale(warp_max(max_abs));
        int8_t* dst = static_cast<int8_t*>(pool) + at;
        for (int d = lane; d < head_dim; d += 32) dst[d] = quantize_int8_kv(__ldg(src + d), scale);
        if (lane == 0) scales[row] = scale;
    } else if constexpr (kDtype == SI_DTYPE_F32) {
        float* dst = static_cast<float*>(pool) + at;
        for (int d = lane; d < head_dim; d += 32) dst[d] = __ldg(src + d);
    } else {
        uint16_t* dst = static_cast<uint16_t*>(pool) + at;
        for (int d = lane; d < head_dim; d += 32) {
            const float x = __ldg(src + d);
            dst[d] = kDtype == SI_DTYPE_F16 ? f32_to_f16(x) : f32_to_bf16(x);
        }
    }
}

// grid: ceil(n_tokens * n_kv_heads / kKvWriteWarps) blocks of 32 * kKvWriteWarps threads.
// A warp whose token has a negative slot (padding) writes nothing.
template <si_dtype kDtype>
__global__ void __launch_bounds__(32 * kKvWriteWarps) kv_write_kernel(const si_kv_write_params p) {
    const int64_t row = int64_t(blockIdx.x) * kKvWriteWarps + (threadIdx.x >> 5);
    const int lane = int(threadIdx.x & 31);
    const si_paged_kv& c = p.cache;
    if (row >= int64_t(p.n_tokens) * c.n_kv_heads) return;
    const int64_t token = row / c.n_kv_heads;
    const int head = int(row % c.n_kv_heads);
    const int32_t slot = p.slot_mapping[token];
    if (slot < 0) return;
    const int64_t dst_row = int64_t(slot) * c.n_kv_heads + head;
    kv_write_row<kDtype>(p.k + token * p.k_stride + int64_t(head) * c.head_dim, c.k_pool, c.k_scale, dst_row, c.head_dim, lane);
    kv_write_row<kDtype>(p.v + token * p.v_stride + int64_t(head) * c.head_dim, c.v_pool, c.v_scale, dst_row, c.head_dim, lane);
}

}  // namespace si::cuda
