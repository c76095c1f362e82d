// softmax.cu: launches the row softmax, one block per row.
#include "cuda/cuda_check.cuh"
#include "cuda/launch.cuh"
#include "cuda/nvtx.cuh"
#include "cuda/softmax.cuh"

namespace si::cuda {

si_result launch_softmax(const si_softmax_params& p, cudaStream_t stream) {
    if (p.rows == 0) return SI_OK;
    NvtxRange range("si_softmax");
    softmax_kernel<<<p.rows, row_block_size(p.n), 0, stream>>>(p.x, p.out, p.x_stride, p.out_stride, p.n, p.inv_temperature);
    return check_launch("si_softmax");
}

}  // namespace si::cuda
