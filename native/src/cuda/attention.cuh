// attention.cuh: causal grouped-query attention over a contiguous KV cache. One block per
// (query token, head); keys are visited in chunks with an online softmax, so any context
// length runs in fixed shared memory. FlashAttention-style tiling over queries comes later.
#pragma once

#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"

#include <sharpinfer/sharpinfer.h>

namespace si::cuda {

// The kernel is latency bound (one block per query and head, few blocks at decode), so
// everything below is arranged to keep many independent loads in flight per thread.
//
// kThreads: 256 when there are many blocks (prefill), 1024 when there are few (decode),
//   so a block alone keeps an SM busy.
// kDimsPerLane: head_dim / 32 rounded up to 1, 2, 4 or 8 (head_dim <= 256): the q
//   elements each lane holds in registers while scoring.
template <int kThreads>
struct AttentionShape {
    static constexpr int kWarps = kThreads / 32;
    // Keys a warp scores per chunk, all loads issued before any reduction; 4 at 1024
    // threads keeps the kernel within its 64-register budget.
    static constexpr int kKeysPerWarp = kThreads >= 1024 ? 4 : 8;
    static constexpr int kChunk = kWarps * kKeysPerWarp;  // 64 or 128 keys per step
    static constexpr int kScoresPerLane = kChunk / 32;     // softmax update by warp 0
};

// Per chunk:
//  1. scores: warp w takes keys w*kKeysPerWarp.. onward; lanes split head_dim (q sits in
//     registers). Out-of-range keys and dims load a clamped, valid address (row chunk0,
//     dim head_dim-1) and are masked afterwards, so loads need no branches and the
//     compiler issues them all at once;
//  2. warp 0 folds the chunk into the running max and denominator and turns the scores
//     into weights;
//  3. V: the block splits into `groups` of round_up(head_dim, 32) threads (one output dim
//     each); group g adds keys g, g + groups, ... eight loads at a time. All groups share
//     one running max, so their partial outputs merge by plain addition at the end.
// Only keys 0..position are touched, so cache rows past the query (and past n_ctx) are
// never read: poison there cannot leak in.
template <int kThreads, int kDimsPerLane>
__global__ void __launch_bounds__(kThreads) attention_kernel(const si_attention_params p) {
    using Shape = AttentionShape<kThreads>;
    __shared__ float weights[Shape::kChunk];
    __shared__ float partial[kThreads];
    __shared__ float chunk_correction;
    __shared__ float inv_denominator;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int head = int(blockIdx.x % unsigned(p.n_heads));
    const int64_t query = blockIdx.x / unsigned(p.n_heads);
    const int kv_head = head / (p.n_heads / p.n_kv_heads);
    const int head_dim = p.head_dim;
    const int n_keys = int(p.n_ctx - p.n_q + query + 1);  // causal: keys 0..position

    const float* q_row = p.q + query * p.q_stride + int64_t(head) * head_dim;
    float q[kDimsPerLane];
    int k_dim[kDimsPerLane];  // clamped to a valid element; q is 0 where it was clamped
#pragma unroll
    for (int c = 0; c < kDimsPerLane; ++c) {
        const int d = lane + 32 * c;
        q[c] = d < head_dim ? q_row[d] * p.scale : 0.0f;
        k_dim[c] = min(d, head_dim - 1);
    }
    const float* k_head = p.k_cache + int64_t(kv_head) * head_dim;
    const float* v_head = p.v_cache + int64_t(kv_head) * head_dim;

    const int dims_per_group = (head_dim + 31) / 32 * 32;
    const int groups = kThreads / dims_per_group;
    const int group = tid / dims_per_group, v_dim = tid % dims_per_group;
    const bool v_active = group < groups && v_dim < head_dim;

    float acc = 0.0f;
    float running_max = -INFINITY, running_sum = 0.0f;  // meaningful in warp 0 only

    for (int chunk0 = 0; chunk0 < n_keys; chunk0 += Shape::kChunk) {
        const int chunk = min(Shape::kChunk, n_keys - chunk0);

        float score[Shape::kKeysPerWarp];
#pragma unroll
        for (int i = 0; i < Shape::kKeysPerWarp; ++i) {
            const int j = warp * Shape::kKeysPerWarp + i;
            const float* k_row = k_head + int64_t(chunk0 + (j < chunk ? j : 0)) * p.kv_stride;
            score[i] = 0.0f;
#pragma unroll
            for (int c = 0; c < kDimsPerLane; ++c) score[i] = fmaf(q[c], __ldg(k_row + k_dim[c]), score[i]);
        }
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1) {
#pragma unroll
            for (int i = 0; i < Shape::kKeysPerWarp; ++i) score[i] += __shfl_xor_sync(kFullMask, score[i], offset);
        }
        if (lane == 0) {
#pragma unroll
            for (int i = 0; i < Shape::kKeysPerWarp; ++i) {
                const int j = warp * Shape::kKeysPerWarp + i;
                weights[j] = j < chunk ? score[i] : -INFINITY;
            }
        }
        __syncthreads();

        if (warp == 0) {
            float s[Shape::kScoresPerLane];
            float chunk_max = -INFINITY;
#pragma unroll
            for (int t = 0; t < Shape::kScoresPerLane; ++t) {
                s[t] = weights[lane + 32 * t];  // -inf past the chunk's end
                chunk_max = fmaxf(chunk_max, s[t]);
            }
            const float new_max = fmaxf(running_max, warp_max(chunk_max));
            float sum = 0.0f;
#pragma unroll
            for (int t = 0; t < Shape::kScoresPerLane; ++t) {
                const float w = lane + 32 * t < chunk ? expf(s[t] - new_max) : 0.0f;
                weights[lane + 32 * t] = w;
                sum += w;
            }
            // First chunk: running_max is -inf and the (empty) old sum is scaled by 0.
            const float correction = running_max == -INFINITY ? 0.0f : expf(running_max - new_max);
            running_sum = running_sum * correction + warp_sum(sum);
            running_max = new_max;
            if (lane == 0) chunk_correction = correction;
        }
        __syncthreads();

        if (v_active) {
            const float* v_col = v_head + int64_t(chunk0) * p.kv_stride + v_dim;
            float sums[8] = {};
            for (int j = group; j < chunk; j += 8 * groups) {
#pragma unroll
                for (int u = 0; u < 8; ++u) {
                    const int key = j + u * groups;
                    const bool valid = key < chunk;
                    const float value = __ldg(v_col + int64_t(valid ? key : 0) * p.kv_stride);
                    sums[u] = fmaf(valid ? weights[key] : 0.0f, value, sums[u]);
                }
            }
            acc = acc * chunk_correction + (((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7])));
        }
        __syncthreads();  // weights[] is rewritten by the next chunk's scores
    }

    partial[tid] = acc;
    if (tid == 0) inv_denominator = 1.0f / running_sum;
    __syncthreads();
    if (group == 0 && v_dim < head_dim) {
        float total = 0.0f;
        for (int g = 0; g < groups; ++g) total += partial[g * dims_per_group + v_dim];
        float* out_row = p.out + query * p.out_stride + int64_t(head) * head_dim;
        out_row[v_dim] = total * inv_denominator;
    }
}

}  // namespace si::cuda
