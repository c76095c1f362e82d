// embedding.cuh: the embedding gather kernel, one block per token, templated on table dtype.
#pragma once

#include "cuda/weights.cuh"

namespace si::cuda {

// out[t, :] = f32(table[ids[t], :]); ids outside [0, vocab) give a row of zeros, because a
// kernel cannot report an error and a bad id must not read out of bounds.
template <typename W>
__global__ void embedding_kernel(const typename W::Storage* __restrict__ table,  // [vocab, dim]
                                 const int32_t* __restrict__ ids,                // [n_tokens]
                                 float* __restrict__ out,                        // [n_tokens, dim]
                                 int32_t vocab, int32_t dim) {
    const int64_t token = blockIdx.x;
    const int32_t id = ids[token];
    float* out_row = out + token * dim;
    if (id < 0 || id >= vocab) {
        for (int d = threadIdx.x; d < dim; d += blockDim.x) out_row[d] = 0.0f;
        return;
    }
    const typename W::Storage* row = table + int64_t(id) * dim;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) out_row[d] = W::load(row, d);
}

}  // namespace si::cuda
