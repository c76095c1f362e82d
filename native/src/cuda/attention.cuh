// attention.cuh: causal grouped-query attention over a contiguous KV cache. One block per
// (query token, head); keys are visited in chunks of 32 with an online softmax, so any
// context length runs in fixed shared memory.
#pragma once

#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"

#include <sharpinfer/sharpinfer.h>

namespace si::cuda {

constexpr int kAttentionThreads = 128;
constexpr int kAttentionWarps = kAttentionThreads / 32;
constexpr int kAttentionChunk = 32;  // keys per step: one per lane of warp 0 in the softmax update
constexpr int kAttentionDimsPerThread = kAttentionMaxHeadDim / kAttentionThreads;

// Per chunk: (1) each warp scores its share of keys (lanes split head_dim, shuffle sum);
// (2) warp 0 folds the chunk into the running max / denominator and turns scores into
// weights; (3) every thread rescales its output dims and adds the weighted V rows.
// Only keys 0..position are touched, so cache rows past the query (and past n_ctx) are
// never read: poison there cannot leak in.
__global__ void __launch_bounds__(kAttentionThreads) attention_kernel(const si_attention_params p) {
    __shared__ float q_scaled[kAttentionMaxHeadDim];
    __shared__ float weights[kAttentionChunk];
    __shared__ float chunk_correction;
    __shared__ float inv_denominator;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int head = int(blockIdx.x % unsigned(p.n_heads));
    const int64_t query = blockIdx.x / unsigned(p.n_heads);
    const int kv_head = head / (p.n_heads / p.n_kv_heads);
    const int head_dim = p.head_dim;
    const int n_keys = int(p.n_ctx - p.n_q + query + 1);  // causal: keys 0..position

    const float* q_row = p.q + query * p.q_stride + int64_t(head) * head_dim;
    for (int d = tid; d < head_dim; d += kAttentionThreads) q_scaled[d] = q_row[d] * p.scale;
    const float* k_head = p.k_cache + int64_t(kv_head) * head_dim;
    const float* v_head = p.v_cache + int64_t(kv_head) * head_dim;

    float acc[kAttentionDimsPerThread];
#pragma unroll
    for (int r = 0; r < kAttentionDimsPerThread; ++r) acc[r] = 0.0f;
    float running_max = -INFINITY, running_sum = 0.0f;  // meaningful in warp 0 only
    __syncthreads();

    for (int chunk0 = 0; chunk0 < n_keys; chunk0 += kAttentionChunk) {
        const int chunk = min(kAttentionChunk, n_keys - chunk0);
        for (int j = warp; j < chunk; j += kAttentionWarps) {
            const float* k_row = k_head + int64_t(chunk0 + j) * p.kv_stride;
            float score = 0.0f;
            for (int d = lane; d < head_dim; d += 32) score = fmaf(q_scaled[d], __ldg(k_row + d), score);
            score = warp_sum(score);
            if (lane == 0) weights[j] = score;
        }
        __syncthreads();

        if (warp == 0) {
            const float score = lane < chunk ? weights[lane] : -INFINITY;
            const float new_max = fmaxf(running_max, warp_max(score));
            const float weight = lane < chunk ? expf(score - new_max) : 0.0f;
            // First chunk: running_max is -inf and the (empty) old sum is scaled by 0.
            const float correction = running_max == -INFINITY ? 0.0f : expf(running_max - new_max);
            running_sum = running_sum * correction + warp_sum(weight);
            running_max = new_max;
            weights[lane] = weight;
            if (lane == 0) chunk_correction = correction;
        }
        __syncthreads();

        const float correction = chunk_correction;
#pragma unroll
        for (int r = 0; r < kAttentionDimsPerThread; ++r) {
            const int d = tid + r * kAttentionThreads;
            if (d < head_dim) {
                const float* v_col = v_head + int64_t(chunk0) * p.kv_stride + d;
                // Two partial sums halve the dependent-add chain per chunk.
                float even = acc[r] * correction, odd = 0.0f;
                int j = 0;
                for (; j + 1 < chunk; j += 2) {
                    even = fmaf(weights[j], __ldg(v_col + int64_t(j) * p.kv_stride), even);
                    odd = fmaf(weights[j + 1], __ldg(v_col + int64_t(j + 1) * p.kv_stride), odd);
                }
                if (j < chunk) even = fmaf(weights[j], __ldg(v_col + int64_t(j) * p.kv_stride), even);
                acc[r] = even + odd;
            }
        }
        __syncthreads();  // weights[] is rewritten by the next chunk's scores
    }

    if (tid == 0) inv_denominator = 1.0f / running_sum;
    __syncthreads();
    float* out_row = p.out + query * p.out_stride + int64_t(head) * head_dim;
#pragma unroll
    for (int r = 0; r < kAttentionDimsPerThread; ++r) {
        const int d = tid + r * kAttentionThreads;
        if (d < head_dim) out_row[d] = acc[r] * inv_denominator;
    }
}

}  // namespace si::cuda
