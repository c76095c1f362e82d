// rope.cu: launches rotary position embedding over every (token, head, pair).
#include "cuda/cuda_check.cuh"
#include "cuda/launch.cuh"
#include "cuda/nvtx.cuh"
#include "cuda/rope.cuh"

#include <algorithm>

namespace si::cuda {

si_result launch_rope(const si_rope_params& p, cudaStream_t stream) {
    const int64_t total_pairs = int64_t(p.n_tokens) * p.n_heads * (p.rotary_dim / 2);
    if (total_pairs == 0) return SI_OK;
    NvtxRange range("si_rope");
    constexpr int kThreads = 256;
    // The kernel loops grid-stride, so the grid is capped well below the 2^31 limit.
    const int64_t blocks = std::min<int64_t>((total_pairs + kThreads - 1) / kThreads, 1 << 20);
    rope_kernel<<<unsigned(blocks), kThreads, 0, stream>>>(p.x, p.positions, p.token_stride, total_pairs, p.n_heads,
                                                           p.head_dim, p.rotary_dim, p.freq_base, p.freq_scale, p.layout);
    return check_launch("si_rope");
}

}  // namespace si::cuda
