// sparse_matmul.cu: picks the sparse-matmul kernel (sparse_matmul.cuh) by format, m, values
// dtype and alignment, and launches it:
//   m <= kSparseGemvMaxRows            2:4 GEMV / bitmask GEMV (1 row per pass for m = 1, else 4)
//   2:4, f16/bf16, values 16B-aligned  sparse tensor cores (mma.sp), 64 x 64 block tiles up to
//                                      m = 64, else 128 x 128
//   otherwise                          the f32 tiled kernel (bitmask; 2:4 with f32 values or
//                                      with values the tensor-core kernel cannot load)
// Vector variants need aligned pointers and strides; the launcher checks them and otherwise
// takes the per-element variant, so any pointer the ABI accepts runs.
#include "cuda/cuda_check.cuh"
#include "cuda/dispatch.cuh"
#include "cuda/nvtx.cuh"
#include "cuda/sparse_matmul.cuh"

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace si::cuda {

namespace {

bool aligned(const void* pointer, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(pointer) % bytes == 0; }

// Largest m the 64 x 64 tensor-core tiles take: past it the 128 x 128 tiles have enough
// blocks to fill the device and reuse each staged byte twice as often.
constexpr int32_t kMmaSmallTileMaxRows = 64;

SparseLayout make_layout(const si_sparse_matmul_params& p, int32_t rows_per_tile) {
    SparseLayout layout{};
    layout.kp = (int64_t(p.k) + 15) / 16 * 16;
    layout.kw = int32_t((int64_t(p.k) + 63) / 64);
    layout.row_tiles = int32_t((int64_t(p.m) + rows_per_tile - 1) / rows_per_tile);
    return layout;
}

unsigned gemv_blocks(const si_sparse_matmul_params& p) {
    constexpr int64_t kPerBlock = int64_t(kSparseGemvWarps) * kSparseGemvChannels;
    return unsigned((int64_t(p.n) + kPerBlock - 1) / kPerBlock);
}

template <typename W>
si_result launch_gemv_2_4(const si_sparse_matmul_params& p, cudaStream_t stream) {
    const SparseLayout layout = make_layout(p, 1);
    // Value pairs as one 4-byte (f16/bf16) or 8-byte (f32) load; x rows as float4.
    const bool vector = aligned(p.values, 2 * sizeof(typename W::Storage)) && aligned(p.x, 16) && p.x_stride % 4 == 0;
    NvtxRange range("si_sparse_matmul/gemv_2_4");
    return dispatch_bool(vector, [&](auto vec) {
        constexpr bool kVector = decltype(vec)::value;
        if (p.m == 1) sparse24_gemv_kernel<W, 1, kSparseGemvChannels, kVector><<<gemv_blocks(p), kSparseGemvThreads, 0, stream>>>(p, layout);
        else sparse24_gemv_kernel<W, 4, kSparseGemvChannels, kVector><<<gemv_blocks(p), kSparseGemvThreads, 0, stream>>>(p, layout);
        return check_launch("si_sparse_matmul");
    });
}

template <typename W>
si_result launch_gemv_bitmask(const si_sparse_matmul_params& p, cudaStream_t stream) {
    const SparseLayout layout = make_layout(p, 1);
    NvtxRange range("si_sparse_matmul/gemv_bitmask");
    if (p.m == 1) bitmask_gemv_kernel<W, 1, kSparseGemvChannels><<<gemv_blocks(p), kSparseGemvThreads, 0, stream>>>(p, layout);
    else bitmask_gemv_kernel<W, 4, kSparseGemvChannels><<<gemv_blocks(p), kSparseGemvThreads, 0, stream>>>(p, layout);
    return check_launch("si_sparse_matmul");
}

template <typename F, typename W>
si_result launch_tiled(const si_sparse_matmul_params& p, cudaStream_t stream) {
    const SparseLayout layout = make_layout(p, kSparseTileM);
    const dim3 grid(unsigned((int64_t(p.n) + kSparseTileN - 1) / kSparseTileN), unsigned(std::min(layout.row_tiles, 65535)));
    NvtxRange range(F::kFormat == SI_SPARSE_2_4 ? "si_sparse_matmul/tiled_2_4" : "si_sparse_matmul/tiled_bitmask");
    sparse_tiled_kernel<F, W><<<grid, kSparseTileThreads, 0, stream>>>(p, layout);
    return check_launch("si_sparse_matmul");
}

template <typename T, int kWarpsM, int kWarpsN>
si_result launch_mma(const si_sparse_matmul_params& p, cudaStream_t stream) {
    constexpr int kBlockChannels = kWarpsM * sparse_mma::kWarpChannels, kBlockRows = kWarpsN * sparse_mma::kWarpRows;
    const SparseLayout layout = make_layout(p, kBlockRows);
    const dim3 grid(unsigned((int64_t(p.n) + kBlockChannels - 1) / kBlockChannels), unsigned(std::min(layout.row_tiles, 65535)));
    const bool vector_x = aligned(p.x, 8) && p.x_stride % 2 == 0;
    NvtxRange range("si_sparse_matmul/mma_2_4");
    return dispatch_bool(vector_x, [&](auto vec) {
        constexpr bool kVecX = decltype(vec)::value;
        sparse24_mma_kernel<T, kWarpsM, kWarpsN, kVecX><<<grid, kWarpsM * kWarpsN * 32, 0, stream>>>(p, layout);
        return check_launch("si_sparse_matmul");
    });
}

template <typename W>
si_result launch_2_4(const si_sparse_matmul_params& p, cudaStream_t stream) {
    if (p.m <= kSparseGemvMaxRows) return launch_gemv_2_4<W>(p, stream);
    if constexpr (!std::is_same_v<W, F32Weight>) {
        using T = std::conditional_t<std::is_same_v<W, F16Weight>, sparse_mma::F16, sparse_mma::BF16>;
        // 16-byte chunks of every values row (rows are kp / 2 values = a multiple of 16 bytes).
        if (aligned(p.values, 16)) {
            if (p.m <= kMmaSmallTileMaxRows) return launch_mma<T, 1, 2>(p, stream);
            return launch_mma<T, 2, 4>(p, stream);
        }
    }
    return launch_tiled<Format24, W>(p, stream);
}

}  // namespace

si_result launch_sparse_matmul(const si_sparse_matmul_params& p, cudaStream_t stream) {
    if (p.m == 0) return SI_OK;
    return dispatch_weight_dtype(p.values_dtype, "si_sparse_matmul", [&](auto weight) {
        using W = decltype(weight);
        if (p.format == SI_SPARSE_2_4) return launch_2_4<W>(p, stream);
        if (p.format == SI_SPARSE_BITMASK) {
            if (p.m <= kSparseGemvMaxRows) return launch_gemv_bitmask<W>(p, stream);
            return launch_tiled<FormatBitmask, W>(p, stream);
        }
        return fail(SI_ERR_UNSUPPORTED, "si_sparse_matmul: the cuda backend has no kernel for sparse format %d", p.format);
    });
}

}  // namespace si::cuda
