// kv_write.cu: launches the paged KV-cache write (kv_write.cuh) for the cache dtype.
#include "cuda/cuda_check.cuh"
#include "cuda/kv_write.cuh"
#include "cuda/nvtx.cuh"

namespace si::cuda {

si_result launch_kv_write(const si_kv_write_params& p, cudaStream_t stream) {
    const int64_t rows = int64_t(p.n_tokens) * p.cache.n_kv_heads;
    if (rows == 0) return SI_OK;
    const int64_t blocks = (rows + kKvWriteWarps - 1) / kKvWriteWarps;
    if (blocks > INT32_MAX) return fail(SI_ERR_UNSUPPORTED, "si_kv_write: %lld rows exceed the cuda grid", (long long)rows);
    NvtxRange range("si_kv_write");
    const dim3 grid{unsigned(blocks)}, block{32 * kKvWriteWarps};
    switch (p.cache.dtype) {
        case SI_DTYPE_F32: kv_write_kernel<SI_DTYPE_F32><<<grid, block, 0, stream>>>(p); break;
        case SI_DTYPE_F16: kv_write_kernel<SI_DTYPE_F16><<<grid, block, 0, stream>>>(p); break;
        case SI_DTYPE_BF16: kv_write_kernel<SI_DTYPE_BF16><<<grid, block, 0, stream>>>(p); break;
        case SI_DTYPE_I8: kv_write_kernel<SI_DTYPE_I8><<<grid, block, 0, stream>>>(p); break;
        default: return fail(SI_ERR_UNSUPPORTED, "si_kv_write: the cuda backend has no kernel for cache dtype %s", dtype_name(p.cache.dtype));
    }
    return check_launch("si_kv_write");
}

}  // namespace si::cuda
