// qmatmul.cu: picks the quantized-matmul kernel (qmatmul.cuh) by m, activation mode, weight
// format, group size and alignment, and launches it.
#include "cuda/cuda_check.cuh"
#include "cuda/dispatch.cuh"
#include "cuda/nvtx.cuh"
#include "cuda/qmatmul.cuh"

#include <cstdint>

namespace si::cuda {

namespace {

bool aligned16(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; }

// The weight format as I8Weights / I4Weights (the api entry rejected anything else).
template <typename Fn>
si_result dispatch_weight_format(si_weight_format format, Fn&& fn) {
    if (format == SI_WEIGHT_I4) return fn(I4Weights{});
    return fn(I8Weights{});
}

QLayout make_layout(const si_qmatmul_params& p) {
    QLayout layout{};
    layout.row_bytes = p.format == SI_WEIGHT_I4 ? (int64_t(p.k) + 1) / 2 : p.k;
    layout.n_groups = int32_t((int64_t(p.k) + p.group_size - 1) / p.group_size);
    layout.group_shift = -1;
    for (int shift = 0; shift < 31; ++shift) {
        if ((int64_t(1) << shift) == p.group_size) layout.group_shift = shift;
    }
    return layout;
}

// Float activations, m <= kQGemvMaxRows: one row (decode) with 4 channels per warp, or passes
// of 4 rows with 2 channels per warp (fewer registers).
template <typename W>
si_result launch_gemv(const si_qmatmul_params& p, const QLayout& layout, cudaStream_t stream) {
    const int32_t gs = p.group_size;
    const bool chunk_in_groups = gs >= p.k || gs % W::kChunk == 0 || (W::kChunk == 32 && gs == 16);
    const bool vector = chunk_in_groups && p.k % W::kChunk == 0 && aligned16(p.q) && aligned16(p.x) && p.x_stride % 4 == 0;
    return dispatch_bool(vector, [&](auto vec) {
        constexpr bool kVector = decltype(vec)::value;
        if (p.m == 1) {
            constexpr int kChannels = 4;
            const unsigned blocks = unsigned((int64_t(p.n) + kQGemvWarps * kChannels - 1) / (kQGemvWarps * kChannels));
            qmatmul_gemv_kernel<W, 1, kChannels, kVector><<<blocks, kQGemvThreads, 0, stream>>>(p, layout);
        } else {
            constexpr int kChannels = 2;
            const unsigned blocks = unsigned((int64_t(p.n) + kQGemvWarps * kChannels - 1) / (kQGemvWarps * kChannels));
            qmatmul_gemv_kernel<W, 4, kChannels, kVector><<<blocks, kQGemvThreads, 0, stream>>>(p, layout);
        }
        return check_launch("si_qmatmul");
    });
}

si_result launch_gemv_w8a8(const si_qmatmul_params& p, const QLayout& layout, cudaStream_t stream) {
    const int32_t gs = p.group_size;
    const bool vector = (gs >= p.k || gs % 16 == 0) && p.k % 16 == 0 && aligned16(p.q);
    const unsigned blocks = unsigned((int64_t(p.n) + kQGemvWarps * kW8A8Channels - 1) / (kQGemvWarps * kW8A8Channels));
    return dispatch_bool(vector, [&](auto vec) {
        constexpr bool kVector = decltype(vec)::value;
        if (p.m == 1) qmatmul_gemv_w8a8_kernel<1, kVector><<<blocks, kQGemvThreads, 0, stream>>>(p, layout);
        else qmatmul_gemv_w8a8_kernel<4, kVector><<<blocks, kQGemvThreads, 0, stream>>>(p, layout);
        return check_launch("si_qmatmul");
    });
}

si_result launch_b32(const si_qmatmul_params& p, const QLayout& layout, cudaStream_t stream) {
    const size_t shared = b32_shared_bytes(p.k);
    if (shared > 48 * 1024)
        return fail(SI_ERR_UNSUPPORTED, "si_qmatmul: cuda block-wise int8 activations support k up to %d, got %d", 48 * 1024 * kB32Block / (kB32Block + 8), p.k);
    if (p.m > 65535) return fail(SI_ERR_UNSUPPORTED, "si_qmatmul: cuda block-wise int8 activations support m up to 65535, got %d", p.m);
    const dim3 grid(unsigned((int64_t(p.n) + kQGemvWarps * kB32Channels - 1) / (kQGemvWarps * kB32Channels)), unsigned(p.m));
    NvtxRange range("si_qmatmul/block32");
    return dispatch_weight_format(p.format, [&](auto format) {
        qmatmul_b32_kernel<decltype(format)><<<grid, kQGemvThreads, shared, stream>>>(p, layout);
        return check_launch("si_qmatmul");
    });
}

// Int8 tensor cores (qmatmul_mma_kernel): W8A8 per token or block-wise, int8 or int4 weights.
si_result launch_mma(const si_qmatmul_params& p, const QLayout& layout, cudaStream_t stream) {
    const dim3 grid(unsigned((int64_t(p.n) + qmma::kTileN - 1) / qmma::kTileN), unsigned((int64_t(p.m) + qmma::kTileM - 1) / qmma::kTileM));
    if (grid.y > 65535u) return fail(SI_ERR_UNSUPPORTED, "si_qmatmul: cuda backend supports m up to %d, got %d", 65535 * qmma::kTileM, p.m);
    const bool block32 = p.activations == SI_ACTIVATIONS_I8_BLOCK32;
    NvtxRange range(block32 ? "si_qmatmul/mma_block32" : "si_qmatmul/mma_w8a8");
    return dispatch_weight_format(p.format, [&](auto format) {
        using W = decltype(format);
        const bool vector = aligned16(p.q) && p.k % (W::kOffsets ? 32 : 16) == 0;
        return dispatch_bool(block32, [&](auto b32) {
            constexpr bool kBlock32 = decltype(b32)::value;
            // Per-token int8 activations need int8 weights: never instantiate int4 there.
            if constexpr (!kBlock32 && W::kOffsets) {
                return fail(SI_ERR_INTERNAL, "si_qmatmul: int8 activations with int4 weights reached the cuda launcher");
            } else {
                return dispatch_bool(vector, [&](auto vec) {
                    qmatmul_mma_kernel<W, kBlock32, decltype(vec)::value><<<grid, qmma::kThreads, 0, stream>>>(p, layout);
                    return check_launch("si_qmatmul");
                });
            }
        });
    });
}

}  // namespace

si_result launch_qmatmul(const si_qmatmul_params& p, cudaStream_t stream) {
    if (p.m == 0) return SI_OK;
    const QLayout layout = make_layout(p);
    const bool w8a8 = p.activations == SI_ACTIVATIONS_I8;
    // Int8 tensor cores from kMinRows rows: block-wise activations at any group size (a step's
    // scale is its first k's group, as ref), per token where a 32-k step lies in one group.
    if (p.m >= qmma::kMinRows && (p.activations == SI_ACTIVATIONS_I8_BLOCK32 || (w8a8 && (p.group_size >= p.k || p.group_size % 32 == 0))))
        return launch_mma(p, layout, stream);
    if (p.activations == SI_ACTIVATIONS_I8_BLOCK32) return launch_b32(p, layout, stream);
    const bool gemv = p.m <= kQGemvMaxRows;
    if (gemv) {
        NvtxRange range(w8a8 ? "si_qmatmul/gemv_w8a8" : "si_qmatmul/gemv");
        if (w8a8) return launch_gemv_w8a8(p, layout, stream);
        return dispatch_weight_format(p.format, [&](auto format) { return launch_gemv<decltype(format)>(p, layout, stream); });
    }
    const dim3 grid(unsigned((int64_t(p.n) + kQTileN - 1) / kQTileN), unsigned((int64_t(p.m) + kQTileM - 1) / kQTileM));
    if (grid.y > 65535u) return fail(SI_ERR_UNSUPPORTED, "si_qmatmul: cuda backend supports m up to %d, got %d", 65535 * kQTileM, p.m);
    if (w8a8 && (p.group_size >= p.k || p.group_size % kQ8TileK == 0)) {
        NvtxRange range("si_qmatmul/tiled_w8a8");
        qmatmul_tiled_w8a8_kernel<kQ8TileK><<<grid, kQTileThreads, 0, stream>>>(p, layout);
        return check_launch("si_qmatmul");
    }
    NvtxRange range(w8a8 ? "si_qmatmul/tiled_w8a8_fma" : "si_qmatmul/tiled");
    return dispatch_weight_format(p.format, [&](auto format) {
        using W = decltype(format);
        return dispatch_bool(w8a8, [&](auto quantize) {
            constexpr bool kQuantizeX = decltype(quantize)::value;
            // W8A8 needs int8 weights: never instantiate int4 with quantized x.
            if constexpr (kQuantizeX && W::kOffsets) {
                return fail(SI_ERR_INTERNAL, "si_qmatmul: int8 activations with int4 weights reached the cuda launcher");
            } else {
                qmatmul_tiled_kernel<W, kQuantizeX><<<grid, kQTileThreads, 0, stream>>>(p, layout);
                return check_launch("si_qmatmul");
            }
        });
    });
}

}  // namespace si::cuda
