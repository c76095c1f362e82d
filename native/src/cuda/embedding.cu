// embedding.cu: launches the embedding gather (one block per token) for each table dtype.
#include "cuda/cuda_check.cuh"
#include "cuda/dispatch.cuh"
#include "cuda/embedding.cuh"
#include "cuda/launch.cuh"
#include "cuda/nvtx.cuh"

#include <algorithm>

namespace si::cuda {

si_result launch_embedding(const si_embedding_params& p, cudaStream_t stream) {
    if (p.n_tokens == 0) return SI_OK;
    NvtxRange range("si_embedding");
    const int threads = std::min(256, (p.dim + 31) / 32 * 32);
    return dispatch_weight_dtype(p.table_dtype, "si_embedding", [&](auto weight) {
        using W = decltype(weight);
        embedding_kernel<W><<<p.n_tokens, threads, 0, stream>>>(
            static_cast<const typename W::Storage*>(p.table), p.ids, p.out, p.vocab, p.dim);
        return check_launch("si_embedding");
    });
}

}  // namespace si::cuda
