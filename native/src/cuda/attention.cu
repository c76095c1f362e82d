// attention.cu: launches causal GQA attention, one block per (query token, head).
#include "cuda/attention.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/launch.cuh"
#include "cuda/nvtx.cuh"

#include <climits>

namespace si::cuda {

si_status launch_attention(const si_attention_params& p, cudaStream_t stream) {
    if (p.head_dim > kAttentionMaxHeadDim) {
        return fail(SI_ERR_UNSUPPORTED, "si_attention: the cuda backend supports head_dim up to %d, got %d",
                    kAttentionMaxHeadDim, p.head_dim);
    }
    const int64_t blocks = int64_t(p.n_q) * p.n_heads;
    if (blocks > INT_MAX) {
        return fail(SI_ERR_UNSUPPORTED, "si_attention: n_q * n_heads = %lld exceeds the cuda grid limit", (long long)blocks);
    }
    NvtxRange range("si_attention");
    attention_kernel<<<unsigned(blocks), kAttentionThreads, 0, stream>>>(p);
    return check_launch("si_attention");
}

}  // namespace si::cuda
