// argmax.cu: launches the row argmax, one block per row.
#include "cuda/argmax.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/launch.cuh"
#include "cuda/nvtx.cuh"

namespace si::cuda {

si_result launch_argmax(const si_argmax_params& p, cudaStream_t stream) {
    if (p.rows == 0) return SI_OK;
    NvtxRange range("si_argmax");
    argmax_kernel<<<p.rows, row_block_size(p.n), 0, stream>>>(p.x, p.out, p.x_stride, p.n);
    return check_launch("si_argmax");
}

}  // namespace si::cuda
