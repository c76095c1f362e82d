// attention.cu: launches causal GQA attention, one block per (query token, head), choosing
// the block size by how many blocks there are and the q register count by head_dim.
#include "cuda/attention.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/launch.cuh"
#include "cuda/nvtx.cuh"

#include <climits>

namespace si::cuda {

namespace {

// Below this many blocks (about two per SM on an H100) each block gets 1024 threads, so a
// decode step over few heads still fills the SMs it runs on.
constexpr int64_t kFewBlocks = 256;

template <int kThreads>
si_result launch_with(const si_attention_params& p, unsigned blocks, cudaStream_t stream) {
    if (p.head_dim <= 32) {
        attention_kernel<kThreads, 1><<<blocks, kThreads, 0, stream>>>(p);
    } else if (p.head_dim <= 64) {
        attention_kernel<kThreads, 2><<<blocks, kThreads, 0, stream>>>(p);
    } else if (p.head_dim <= 128) {
        attention_kernel<kThreads, 4><<<blocks, kThreads, 0, stream>>>(p);
    } else {
        attention_kernel<kThreads, 8><<<blocks, kThreads, 0, stream>>>(p);
    }
    return check_launch("si_attention");
}

}  // namespace

si_result launch_attention(const si_attention_params& p, cudaStream_t stream) {
    if (p.head_dim > kAttentionMaxHeadDim) {
        return fail(SI_ERR_UNSUPPORTED, "si_attention: the cuda backend supports head_dim up to %d, got %d",
                    kAttentionMaxHeadDim, p.head_dim);
    }
    const int64_t blocks = int64_t(p.n_q) * p.n_heads;
    if (blocks > INT_MAX) {
        return fail(SI_ERR_UNSUPPORTED, "si_attention: n_q * n_heads = %lld exceeds the cuda grid limit", (long long)blocks);
    }
    NvtxRange range("si_attention");
    if (blocks < kFewBlocks) return launch_with<1024>(p, unsigned(blocks), stream);
    return launch_with<256>(p, unsigned(blocks), stream);
}

}  // namespace si::cuda
