// paged_attention.cu: plans and launches paged attention (paged_attention.cuh): picks the
// flash-decoding split count, lays out the workspace, instantiates the kernel per head dim x
// cache dtype (20 kernels, plus 5 combine kernels) and runs the combine kernel when decode
// rows were split.
#include "cuda/cuda_check.cuh"
#include "cuda/nvtx.cuh"
#include "cuda/paged_attention.cuh"

#include <algorithm>
#include <atomic>
#include <climits>
#include <type_traits>

namespace si::cuda {

namespace {

si_result unsupported_head_dim(int head_dim) {
    return fail(SI_ERR_UNSUPPORTED,
                "si_paged_attention: head_dim %d not supported by the cuda paged attention (supported: 64, 80, 96, 128, 256)",
                head_dim);
}

// Head dim -> std::integral_constant<int, D> for the compiled ones.
template <typename Fn>
si_result dispatch_head_dim(int head_dim, Fn&& fn) {
    switch (head_dim) {
        case 64: return fn(std::integral_constant<int, 64>{});
        case 80: return fn(std::integral_constant<int, 80>{});
        case 96: return fn(std::integral_constant<int, 96>{});
        case 128: return fn(std::integral_constant<int, 128>{});
        case 256: return fn(std::integral_constant<int, 256>{});
        default: return unsupported_head_dim(head_dim);
    }
}

// Cache dtype -> its traits (paged::F32Cache, F16Cache, BF16Cache, I8Cache).
template <typename Fn>
si_result dispatch_cache_dtype(si_dtype dtype, Fn&& fn) {
    switch (dtype) {
        case SI_DTYPE_F32: return fn(paged::F32Cache{});
        case SI_DTYPE_F16: return fn(paged::F16Cache{});
        case SI_DTYPE_BF16: return fn(paged::BF16Cache{});
        case SI_DTYPE_I8: return fn(paged::I8Cache{});
        default: return fail(SI_ERR_UNSUPPORTED, "si_paged_attention: the cuda backend has no kernel for cache dtype %d", dtype);
    }
}

// One launch's plan, the same for workspace sizing and for the launch itself.
struct Plan {
    int n_splits = 1;
    int64_t split_out_bytes = 0;  // workspace: partial outputs, then their stats
    int64_t workspace_bytes = 0;
    dim3 grid;
};

// Once per kernel and device: allow its dynamic shared memory (over 48 KiB for D >= 128) and
// ask how many blocks an SM holds. Cached, since decode calls this every layer of every step.
constexpr int kMaxDevices = 64;
template <int D, typename Cache>
si_result prepare_kernel(int device, int* resident_blocks) {
    static std::atomic<int> cached[kMaxDevices];  // 0 = not yet prepared on that device
    const int slot = device < kMaxDevices ? device : kMaxDevices - 1;
    int resident = device < kMaxDevices ? cached[slot].load(std::memory_order_relaxed) : 0;
    if (resident == 0) {
        constexpr int smem = paged::PagedSmem<D>::kBytes;
        SI_CUDA_CHECK(cudaFuncSetAttribute(paged_attention_kernel<D, Cache>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        SI_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, paged_attention_kernel<D, Cache>, paged::kThreads, smem));
        resident = std::max(resident, 1);
        if (device < kMaxDevices) cached[slot].store(resident, std::memory_order_relaxed);
    }
    *resident_blocks = resident;
    return SI_OK;
}

si_result make_plan(const si_paged_attention_params& p, Plan* plan) {
    if (!paged_attention_head_dim_supported(p.cache.head_dim)) return unsupported_head_dim(p.cache.head_dim);
    if (p.n_seqs > 65535 || p.cache.n_kv_heads > 65535) {
        return fail(SI_ERR_UNSUPPORTED, "si_paged_attention: the cuda grid holds at most 65535 sequences and kv heads (got %d, %d)",
                    p.n_seqs, p.cache.n_kv_heads);
    }
    const int group = p.n_heads / p.cache.n_kv_heads;
    const int64_t row_tiles = (int64_t(p.max_q_len) * group + paged::kBlockRows - 1) / paged::kBlockRows;
    if (row_tiles > INT_MAX) return fail(SI_ERR_UNSUPPORTED, "si_paged_attention: max_q_len * group = %lld rows is too many", (long long)row_tiles * paged::kBlockRows);

    int n_splits = 1;
    const int64_t keys = p.variant.sliding_window > 0 ? std::min(p.max_context_len, p.variant.sliding_window) : p.max_context_len;
    if (p.n_seqs > 0 && p.max_q_len > 0 && keys >= 4 * paged::tile_keys(p.cache.head_dim)) {
        int device = 0, sms = 0, resident = 0;
        SI_CUDA_CHECK(cudaGetDevice(&device));
        SI_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
        SI_RETURN_IF_ERROR(dispatch_head_dim(p.cache.head_dim, [&](auto head_dim) {
            constexpr int D = decltype(head_dim)::value;
            return dispatch_cache_dtype(p.cache.dtype, [&](auto cache) { return prepare_kernel<D, decltype(cache)>(device, &resident); });
        }));
        n_splits = paged_attention_splits(p.n_seqs, p.cache.n_kv_heads, keys, p.cache.head_dim, sms, resident);
    }
    plan->n_splits = n_splits;
    if (n_splits > 1) {
        const int64_t partials = int64_t(p.n_seqs) * p.n_heads * n_splits;
        plan->split_out_bytes = partials * p.cache.head_dim * int64_t(sizeof(float));
        plan->workspace_bytes = plan->split_out_bytes + partials * int64_t(sizeof(SoftmaxPartial));
    }
    const int64_t decode_blocks = int64_t(n_splits) * ((group + paged::kBlockRows - 1) / paged::kBlockRows);
    plan->grid = dim3(unsigned(std::max(row_tiles, decode_blocks)), unsigned(p.cache.n_kv_heads), unsigned(p.n_seqs));
    return SI_OK;
}

}  // namespace

si_result paged_attention_workspace_size(const si_paged_attention_params& p, int64_t* out_bytes) {
    Plan plan;
    SI_RETURN_IF_ERROR(make_plan(p, &plan));
    *out_bytes = plan.workspace_bytes;
    return SI_OK;
}

si_result launch_paged_attention(const si_paged_attention_params& p, cudaStream_t stream) {
    Plan plan;
    SI_RETURN_IF_ERROR(make_plan(p, &plan));
    if (p.n_seqs == 0 || p.max_q_len == 0) return SI_OK;
    const uintptr_t pools = reinterpret_cast<uintptr_t>(p.cache.k_pool) | reinterpret_cast<uintptr_t>(p.cache.v_pool);
    if (pools % 16 != 0) return fail(SI_ERR_UNSUPPORTED, "si_paged_attention: the cuda backend needs 16-byte aligned k_pool and v_pool");

    int device = 0;
    SI_CUDA_CHECK(cudaGetDevice(&device));

    PagedAttentionArgs a{};
    a.q = p.q;
    a.out = p.out;
    a.cu_seqlens_q = p.cu_seqlens_q;
    a.context_lens = p.context_lens;
    a.block_tables = p.block_tables;
    a.k_pool = p.cache.k_pool;
    a.v_pool = p.cache.v_pool;
    a.k_scale = p.cache.k_scale;
    a.v_scale = p.cache.v_scale;
    if (plan.n_splits > 1) {
        a.split_out = static_cast<float*>(p.workspace);
        a.split_stats = reinterpret_cast<SoftmaxPartial*>(static_cast<char*>(p.workspace) + plan.split_out_bytes);
    }
    a.q_stride = p.q_stride;
    a.out_stride = p.out_stride;
    a.max_blocks_per_seq = p.max_blocks_per_seq;
    a.block_size = p.cache.block_size;
    a.n_heads = p.n_heads;
    a.n_kv_heads = p.cache.n_kv_heads;
    a.group = p.n_heads / p.cache.n_kv_heads;
    a.n_splits = plan.n_splits;
    a.scale = p.scale;
    a.variant.mask.window = p.variant.sliding_window > 0 ? p.variant.sliding_window : INT_MAX;
    a.variant.softcap.cap = p.variant.logit_softcap;
    a.variant.softcap.inv_cap = p.variant.logit_softcap > 0.0f ? 1.0f / p.variant.logit_softcap : 0.0f;

    {
        NvtxRange range("si_paged_attention");
        SI_RETURN_IF_ERROR(dispatch_head_dim(p.cache.head_dim, [&](auto head_dim) {
            constexpr int D = decltype(head_dim)::value;
            return dispatch_cache_dtype(p.cache.dtype, [&](auto cache) {
                using Cache = decltype(cache);
                constexpr int smem = paged::PagedSmem<D>::kBytes;
                int resident = 0;
                SI_RETURN_IF_ERROR((prepare_kernel<D, Cache>(device, &resident)));
                paged_attention_kernel<D, Cache><<<plan.grid, paged::kThreads, smem, stream>>>(a);
                return check_launch("si_paged_attention");
            });
        }));
    }
    if (plan.n_splits > 1) {
        NvtxRange range("si_paged_attention/combine");
        return dispatch_head_dim(p.cache.head_dim, [&](auto head_dim) {
            constexpr int D = decltype(head_dim)::value;
            paged_attention_combine_kernel<D><<<dim3(unsigned(p.n_heads), unsigned(p.n_seqs)), std::min(D, 256), 0, stream>>>(a);
            return check_launch("si_paged_attention/combine");
        });
    }
    return SI_OK;
}

}  // namespace si::cuda
