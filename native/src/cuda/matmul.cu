// matmul.cu: picks the GEMV or tiled matmul kernel by m and launches it for the weight dtype.
#include "cuda/cuda_check.cuh"
#include "cuda/dispatch.cuh"
#include "cuda/launch.cuh"
#include "cuda/matmul.cuh"
#include "cuda/nvtx.cuh"

#include <cstdint>

namespace si::cuda {

namespace {

bool aligned16(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; }

template <typename W, int kRows>
si_result launch_gemv(const si_matmul_params& p, cudaStream_t stream) {
    const bool vector = aligned16(p.w) && aligned16(p.x) && p.x_stride % 4 == 0 && p.k % W::kVector == 0;
    const unsigned blocks = unsigned((int64_t(p.n) + kGemvThreads / 32 - 1) / (kGemvThreads / 32));
    return dispatch_bool(vector, [&](auto vec) {
        constexpr bool kVector = decltype(vec)::value;
        matmul_gemv_kernel<W, kRows, kVector><<<blocks, kGemvThreads, 0, stream>>>(
            p.x, static_cast<const typename W::Storage*>(p.w), p.bias, p.y, p.x_stride, p.y_stride, p.m, p.n, p.k);
        return check_launch("si_matmul");
    });
}

}  // namespace

si_result launch_matmul(const si_matmul_params& p, cudaStream_t stream) {
    if (p.m == 0) return SI_OK;
    const bool gemv = p.m <= kGemvMaxRows;
    NvtxRange range(gemv ? "si_matmul/gemv" : "si_matmul/tiled");
    return dispatch_weight_dtype(p.w_dtype, "si_matmul", [&](auto weight) {
        using W = decltype(weight);
        if (gemv) return p.m == 1 ? launch_gemv<W, 1>(p, stream) : launch_gemv<W, 4>(p, stream);
        const dim3 grid(unsigned((p.n + kTileN - 1) / kTileN), unsigned((p.m + kTileM - 1) / kTileM));
        if (grid.y > 65535u) return fail(SI_ERR_UNSUPPORTED, "si_matmul: cuda backend supports m up to %d, got %d", 65535 * kTileM, p.m);
        matmul_tiled_kernel<W><<<grid, kTileThreads, 0, stream>>>(
            p.x, static_cast<const typename W::Storage*>(p.w), p.bias, p.y, p.x_stride, p.y_stride, p.m, p.n, p.k);
        return check_launch("si_matmul");
    });
}

}  // namespace si::cuda
