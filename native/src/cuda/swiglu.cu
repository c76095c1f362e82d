// swiglu.cu: launches the SwiGLU elementwise kernel.
#include "cuda/cuda_check.cuh"
#include "cuda/launch.cuh"
#include "cuda/nvtx.cuh"
#include "cuda/swiglu.cuh"

#include <algorithm>

namespace si::cuda {

si_result launch_swiglu(const si_swiglu_params& p, cudaStream_t stream) {
    const int64_t total = int64_t(p.rows) * p.n;
    if (total == 0) return SI_OK;
    NvtxRange range("si_swiglu");
    constexpr int kThreads = 256;
    const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, 1 << 20);
    swiglu_kernel<<<unsigned(blocks), kThreads, 0, stream>>>(p.gate, p.up, p.out, p.gate_stride, p.up_stride,
                                                             p.out_stride, total, p.n);
    return check_launch("si_swiglu");
}

}  // namespace si::cuda
