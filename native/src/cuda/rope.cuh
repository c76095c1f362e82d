// rope.cuh: rotary position embedding in place, one thread per (token, head, pair).
#pragma once

#include <sharpinfer/sharpinfer.h>

#include <cuda_runtime.h>

namespace si::cuda {

// The angle is formed and range-reduced in double: positions reach 1e5+, where an f32
// angle is already off by ~1e-2 rad. Rope is a tiny fraction of a forward pass, so the few
// fp64 operations cost nothing measurable even on GPUs with slow fp64.
__global__ void rope_kernel(float* __restrict__ x,                  // [n_tokens, n_heads, head_dim], stride token_stride
                            const int32_t* __restrict__ positions,  // [n_tokens]
                            int64_t token_stride, int64_t total_pairs, int32_t n_heads, int32_t head_dim,
                            int32_t rotary_dim, float freq_base, float freq_scale, si_rope_layout layout) {
    const int32_t half = rotary_dim / 2;
    for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total_pairs;
         idx += int64_t(gridDim.x) * blockDim.x) {
        const int32_t pair = int32_t(idx % half);
        const int64_t token_head = idx / half;
        const int32_t head = int32_t(token_head % n_heads);
        const int64_t token = token_head / n_heads;

        const double inv_freq = exp2(-2.0 * pair / rotary_dim * log2(double(freq_base)));
        // angle / pi, reduced exactly to [-1, 1] in double; then f32 sincospi is accurate
        // and, unlike sin/cos of a large argument, needs no local-memory reduction table.
        double half_turns = double(positions[token]) * double(freq_scale) * inv_freq * (1.0 / 3.14159265358979323846);
        half_turns -= 2.0 * rint(0.5 * half_turns);
        float s, c;
        sincospif(float(half_turns), &s, &c);

        float* xh = x + token * token_stride + int64_t(head) * head_dim;
        const int32_t i0 = layout == SI_ROPE_ADJACENT_PAIRS ? 2 * pair : pair;
        const int32_t i1 = layout == SI_ROPE_ADJACENT_PAIRS ? 2 * pair + 1 : pair + half;
        const float a = xh[i0], b = xh[i1];
        xh[i0] = a * c - b * s;
        xh[i1] = a * s + b * c;
    }
}

}  // namespace si::cuda
