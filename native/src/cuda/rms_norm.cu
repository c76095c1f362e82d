// rms_norm.cu: launches RMSNorm, one block per row.
#include "cuda/cuda_check.cuh"
#include "cuda/launch.cuh"
#include "cuda/nvtx.cuh"
#include "cuda/rms_norm.cuh"

namespace si::cuda {

si_result launch_rms_norm(const si_rms_norm_params& p, cudaStream_t stream) {
    if (p.rows == 0) return SI_OK;
    NvtxRange range("si_rms_norm");
    rms_norm_kernel<<<p.rows, row_block_size(p.dim), 0, stream>>>(p.x, p.weight, p.out, p.x_stride, p.out_stride, p.dim, p.eps);
    return check_launch("si_rms_norm");
}

}  // namespace si::cuda
