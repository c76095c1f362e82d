// paged_attention.cuh: attention over the paged KV cache for prefill, chunked prefill and
// decode rows in one kernel (FlashAttention-2 tiling, mma.sync tensor cores, cp.async),
// plus the split-K combine kernel and the launcher declarations backend.cu calls.
//
// Kernel shape (one block = 4 warps = 128 threads):
//   grid (x, n_kv_heads, n_seqs). A block owns up to 64 "rows" of one sequence and one KV
//   head, a row being a (query token, query head of the GQA group) pair: row r of the
//   sequence is query r / group, head kv_head * group + r % group. Packing the group's heads
//   into rows makes the heads share every K/V tile load (decode reads K/V once per group).
//   - q_len > 1, or no split: blockIdx.x is the row tile, heaviest (latest) tile first.
//   - q_len == 1 with n_splits > 1 (flash-decoding): blockIdx.x is the key split (times the
//     row tile when a group has over 64 heads); the block writes an unnormalized partial
//     and its softmax stats to the workspace, and the combine kernel merges the splits
//     (common/kv_quant.h merge_softmax_partials).
//   Blocks past their sequence's work exit at once (the host only knows max_q_len).
// Keys stream through shared memory in tiles of 64 (32 at D = 256), each key's row found
// through the block table; K(t+1) loads while softmax and P.V of tile t run, V(t+1) while S
// of tile t+1 runs. Warps split the block's 64 rows (4 x 16) for prefill; a block with <= 16
// (<= 32) rows lets 4 (2) warps take different keys of each tile instead, merged at the end,
// so a decode block does not leave three warps idle. Each warp keeps S and O in mma
// accumulators:
//   S[16 x keys] = Q[16 x D] K^T   (m16n8k16; A = Q from registers or shared, B = K rows)
//   O[16 x D]   += P[16 x keys] V  (A = P straight from S's accumulators, B = V via ldmatrix.trans)
// Operands are bf16 (f16 for an f16 cache: the cache's own values, unrounded). An f32 cache
// is rounded to bf16 as it is loaded; an int8 cache is widened exactly (int8 fits bf16) and
// its per-(token, head) scales are applied in f32: k_scale to S, v_scale folded into P.
#pragma once

#include "common/kv_quant.h"

#include <sharpinfer/sharpinfer.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

namespace si::cuda {

// ---- launchers (paged_attention.cu) ---------------------------------------------------------

// Workspace the launch needs for these params on the current device (0 when no decode row is
// split). A function of the params' host-visible fields (n_seqs, n_heads, n_kv_heads,
// head_dim, max_context_len, sliding window) and the device's SM count only.
si_result paged_attention_workspace_size(const si_paged_attention_params& p, int64_t* out_bytes);
si_result launch_paged_attention(const si_paged_attention_params& p, cudaStream_t stream);

// ---- tile shape -----------------------------------------------------------------------------

namespace paged {
constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kBlockRows = 64;  // (query, head) rows per block, 16 per warp
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
}  // namespace paged

// Head dims with a compiled kernel; anything else is SI_ERR_UNSUPPORTED.
constexpr bool paged_attention_head_dim_supported(int head_dim) {
    return head_dim == 64 || head_dim == 80 || head_dim == 96 || head_dim == 128 || head_dim == 256;
}

// ---- attention variants: a mask hook and a logits hook ---------------------------------------

// Which keys a query sees: causal always; with a window, only the last `window` positions up
// to and including its own. window = INT_MAX is plain causal (same two comparisons).
struct CausalWindowMask {
    int window;
    __device__ __forceinline__ bool visible(int query_pos, int key_pos) const {
        return key_pos <= query_pos && query_pos - key_pos < window;
    }
    __device__ __forceinline__ int first_key(int query_pos) const { return query_pos >= window ? query_pos - window + 1 : 0; }
};

// Logit soft-cap: logit -> cap * tanh(logit / cap). cap = 0 leaves logits alone; the kernel
// tests enabled() once per tile, so an uncapped model pays nothing.
struct LogitSoftcap {
    float cap;
    float inv_cap;
    __device__ __forceinline__ bool enabled() const { return cap > 0.0f; }
    __device__ __forceinline__ float operator()(float logit) const { return cap * tanhf(logit * inv_cap); }
};

struct AttentionVariant {
    CausalWindowMask mask;
    LogitSoftcap softcap;
};

// What the kernels read: si_paged_attention_params plus the plan (group, splits, workspace).
struct PagedAttentionArgs {
    const float* q;               // [total_q, n_heads, head_dim], token stride q_stride
    float* out;                   // [total_q, n_heads, head_dim], token stride out_stride
    const int32_t* cu_seqlens_q;  // [n_seqs + 1]
    const int32_t* context_lens;  // [n_seqs]
    const int32_t* block_tables;  // [n_seqs, max_blocks_per_seq]
    const void* k_pool;           // [num_blocks, block_size, n_kv_heads, head_dim], cache dtype
    const void* v_pool;           // [num_blocks, block_size, n_kv_heads, head_dim], cache dtype
    const float* k_scale;         // [num_blocks, block_size, n_kv_heads] (int8 caches only)
    const float* v_scale;         // [num_blocks, block_size, n_kv_heads] (int8 caches only)
    float* split_out;             // [n_seqs, n_heads, n_splits, head_dim] unnormalized partials
    SoftmaxPartial* split_stats;  // [n_seqs, n_heads, n_splits] their (max, sum), natural log
    int64_t q_stride;
    int64_t out_stride;
    int32_t max_blocks_per_seq;
    int32_t block_size;
    int32_t n_heads;
    int32_t n_kv_heads;
    int32_t group;     // n_heads / n_kv_heads
    int32_t n_splits;  // key splits of each decode row (q_len == 1); 1 = none
    float scale;       // applied to q.k before the variant's logits hook
    AttentionVariant variant;
};

// ---- warp-level primitives (sm_80+) -------------------------------------------------------------

namespace paged {

__device__ __forceinline__ uint32_t smem_address(const void* pointer) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// 16 bytes global -> shared without passing through registers; fill = false writes zeros
// (src-size 0: nothing is read, `src` only has to be a valid address).
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool fill) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(fill ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i. Lane l receives
// row l/4, columns 2(l%4) and 2(l%4)+1 of each (low half = lower column).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
}
// Transposed: lane l receives rows 2(l%4) and 2(l%4)+1 of column l/4.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
}

// mma.sync m16n8k16, f32 accumulate. With g = lane/4, t = lane%4:
//   a[0] = A(g, 2t..2t+1)  a[1] = A(g+8, 2t..)  a[2] = A(g, 2t+8..)  a[3] = A(g+8, 2t+8..)
//   b0 = B(2t..2t+1, g)    b1 = B(2t+8.., g)
//   c[0..1] = C(g, 2t..2t+1)   c[2..3] = C(g+8, 2t..2t+1)
struct Bf16Operand {
    __device__ __forceinline__ static uint32_t pack(float lo, float hi) {
        const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<const uint32_t*>(&v);
    }
    __device__ __forceinline__ static void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
            "{%0, %1, %2, %3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

struct F16Operand {
    __device__ __forceinline__ static uint32_t pack(float lo, float hi) {
        const __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<const uint32_t*>(&v);
    }
    __device__ __forceinline__ static void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
            "{%0, %1, %2, %3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

// ---- cache dtypes: how a 16-byte chunk of a K/V row reaches the operand tile ----------------

// f16 / bf16: the cache is the operand; cp.async copies it (asynchronously).
template <typename Op, si_dtype kCacheDtype>
struct HalfCache {
    using Element = uint16_t;
    using Operand = Op;
    static constexpr si_dtype kDtype = kCacheDtype;
    static constexpr bool kScaled = false;
    static constexpr int kChunkElements = 8;
    __device__ __forceinline__ static void copy_chunk(uint16_t* dst, const Element* src, bool valid) {
        cp_async_16(smem_address(dst), src, valid);
    }
};
using F16Cache = HalfCache<F16Operand, SI_DTYPE_F16>;
using BF16Cache = HalfCache<Bf16Operand, SI_DTYPE_BF16>;

// f32: rounded to bf16 on the way in (range-safe, unlike f16).
struct F32Cache {
    using Element = float;
    using Operand = Bf16Operand;
    static constexpr si_dtype kDtype = SI_DTYPE_F32;
    static constexpr bool kScaled = false;
    static constexpr int kChunkElements = 4;
    __device__ __forceinline__ static void copy_chunk(uint16_t* dst, const Element* src, bool valid) {
        const float4 v = valid ? __ldg(reinterpret_cast<const float4*>(src)) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        *reinterpret_cast<uint2*>(dst) = make_uint2(Operand::pack(v.x, v.y), Operand::pack(v.z, v.w));
    }
};

// int8: widened exactly to bf16 (|q| <= 127 needs 7 bits); scales are applied in f32.
struct I8Cache {
    using Element = int8_t;
    using Operand = Bf16Operand;
    static constexpr si_dtype kDtype = SI_DTYPE_I8;
    static constexpr bool kScaled = true;
    static constexpr int kChunkElements = 16;
    __device__ __forceinline__ static uint32_t widen(uint32_t word, int half) {
        const int lo = static_cast<int8_t>((word >> (16 * half)) & 0xffu);
        const int hi = static_cast<int8_t>((word >> (16 * half + 8)) & 0xffu);
        return Operand::pack(static_cast<float>(lo), static_cast<float>(hi));
    }
    __device__ __forceinline__ static void copy_chunk(uint16_t* dst, const Element* src, bool valid) {
        const int4 v = valid ? __ldg(reinterpret_cast<const int4*>(src)) : make_int4(0, 0, 0, 0);
        const uint32_t w[4] = {uint32_t(v.x), uint32_t(v.y), uint32_t(v.z), uint32_t(v.w)};
        uint4* out = reinterpret_cast<uint4*>(dst);
        out[0] = make_uint4(widen(w[0], 0), widen(w[0], 1), widen(w[1], 0), widen(w[1], 1));
        out[1] = make_uint4(widen(w[2], 0), widen(w[2], 1), widen(w[3], 0), widen(w[3], 1));
    }
};

// ---- shared memory ------------------------------------------------------------------------------

// Per head dim: keys per K/V tile, and the blocks per SM the register budget is set for
// (__launch_bounds__ min blocks 3 or 2 = at most 168 or 255 registers). D <= 80 fits 168
// with room to spare (130-160 on sm_80/sm_90; an f32 cache's conversion needs more at 80);
// 128 would spill at D = 64. D = 256 takes 32-key tiles so that O (128 registers) and S fit.
constexpr int tile_keys(int head_dim) { return head_dim > 128 ? 32 : 64; }

template <int D, typename Cache>
constexpr int min_blocks_per_sm() {
    return D <= 64 || (D <= 80 && Cache::kDtype != SI_DTYPE_F32) ? 3 : 2;
}

template <int D>
struct PagedShape {
    static constexpr int kTileKeys = tile_keys(D);
    static constexpr int kKeyTiles = kTileKeys / 8;     // n8 tiles of S per warp, at most
    static constexpr int kKeySteps = kTileKeys / 16;    // k16 steps of P.V per warp, at most
};

// A Q tile of 64 rows and K, V tiles of kTileKeys rows, D operand elements each, every row
// padded by 8 elements (16 bytes) so the 8 row addresses of an ldmatrix hit 8 different
// 4-bank groups. After the key loop the same bytes hold the warps' unnormalized outputs for
// the cross-warp merge (Q is dead by then: in registers, or read only inside the loop).
template <int D>
struct PagedSmem {
    static constexpr int kTileKeys = PagedShape<D>::kTileKeys;
    static constexpr int kStride = D + 8;  // elements per tile row
    static constexpr int kQ = 0;                                        // u16 [64][kStride]
    static constexpr int kK = kBlockRows * kStride * 2;                 // u16 [kTileKeys][kStride]
    static constexpr int kV = kK + kTileKeys * kStride * 2;             // u16 [kTileKeys][kStride]
    static constexpr int kSlots = kV + kTileKeys * kStride * 2;         // int [2 buffers][kTileKeys]: cache slot of each key, -1 = none
    static constexpr int kKScale = kSlots + 2 * kTileKeys * 4;          // float [2][kTileKeys] (int8 caches)
    static constexpr int kVScale = kKScale + 2 * kTileKeys * 4;         // float [2][kTileKeys] (int8 caches)
    static constexpr int kStats = kVScale + 2 * kTileKeys * 4;          // SoftmaxPartial [4 warps][16 rows]
    static constexpr int kBytes = kStats + kWarps * 16 * int(sizeof(SoftmaxPartial));
    static constexpr int kMergeOut = 0;                                 // float [4 warps][16 rows][D]
    static_assert(kWarps * 16 * D * 4 <= kSlots, "the merge area must fit in the Q, K and V tiles");
};

// Issues the loads of one K or V tile (kTileKeys keys x D) into `tile`. slots[k] is key k's cache
// slot or -1 (outside the block's key range: zeros, never read from the cache).
template <int D, typename Cache>
__device__ __forceinline__ void load_kv_tile(uint16_t* tile, const typename Cache::Element* pool, const float* scale_pool,
                                             float* tile_scales, const int* slots, int n_kv_heads, int kv_head) {
    constexpr int kStride = PagedSmem<D>::kStride;
    constexpr int kTileKeys = PagedShape<D>::kTileKeys;
    constexpr int kChunksPerRow = D / Cache::kChunkElements;
    constexpr int kChunks = kTileKeys * kChunksPerRow;
    constexpr int kRounds = (kChunks + kThreads - 1) / kThreads;
#pragma unroll
    for (int i = 0; i < kRounds; ++i) {
        const int c = int(threadIdx.x) + i * kThreads;
        if (kChunks % kThreads == 0 || c < kChunks) {
            const int row = c / kChunksPerRow, col = c % kChunksPerRow;
            const int slot = slots[row];
            const int64_t at = slot >= 0 ? (int64_t(slot) * n_kv_heads + kv_head) * D + col * Cache::kChunkElements : 0;
            Cache::copy_chunk(tile + row * kStride + col * Cache::kChunkElements, pool + at, slot >= 0);
        }
    }
    if constexpr (Cache::kScaled) {
        if (threadIdx.x < kTileKeys) {
            const int slot = slots[threadIdx.x];
            tile_scales[threadIdx.x] = slot >= 0 ? __ldg(scale_pool + int64_t(slot) * n_kv_heads + kv_head) : 0.0f;
        }
    }
}

}  // namespace paged

// ---- the attention kernel -----------------------------------------------------------------------

template <int D, typename Cache>
__global__ void __launch_bounds__(paged::kThreads, (paged::min_blocks_per_sm<D, Cache>()))
    paged_attention_kernel(const PagedAttentionArgs a) {
    using namespace paged;
    using Operand = typename Cache::Operand;
    using Element = typename Cache::Element;
    using Smem = PagedSmem<D>;
    using Shape = PagedShape<D>;
    constexpr int kTileKeys = Shape::kTileKeys;
    constexpr int kStride = Smem::kStride;
    constexpr int kDimSteps = D / 16;              // k16 steps of Q.K^T; pairs of n8 tiles of O
    constexpr bool kQInRegisters = D <= 128;       // D = 256 reads Q fragments from shared memory
    constexpr uint32_t kRowBytes = kStride * 2;

    extern __shared__ __align__(16) unsigned char smem[];
    uint16_t* s_q = reinterpret_cast<uint16_t*>(smem + Smem::kQ);
    uint16_t* s_k = reinterpret_cast<uint16_t*>(smem + Smem::kK);
    uint16_t* s_v = reinterpret_cast<uint16_t*>(smem + Smem::kV);
    int* s_slots = reinterpret_cast<int*>(smem + Smem::kSlots);
    float* s_k_scale = reinterpret_cast<float*>(smem + Smem::kKScale);
    float* s_v_scale = reinterpret_cast<float*>(smem + Smem::kVScale);
    SoftmaxPartial* s_stats = reinterpret_cast<SoftmaxPartial*>(smem + Smem::kStats);
    float* s_merge = reinterpret_cast<float*>(smem + Smem::kMergeOut);

    const int seq = int(blockIdx.z), kv_head = int(blockIdx.y);
    const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
    const int q_begin = a.cu_seqlens_q[seq];
    const int q_len = a.cu_seqlens_q[seq + 1] - q_begin;
    if (q_len <= 0) return;
    const int context = a.context_lens[seq];
    const int group = a.group;
    const int rows = q_len * group;

    // Which rows and keys this block owns (block-uniform; exits happen before any barrier).
    const bool split = q_len == 1 && a.n_splits > 1;
    const int row_tiles = (rows + kBlockRows - 1) / kBlockRows;
    int row0 = 0, split_index = 0;
    if (split) {  // blockIdx.x = row tile * n_splits + split (one row tile unless group > 64)
        if (int(blockIdx.x) >= row_tiles * a.n_splits) return;
        row0 = int(blockIdx.x) / a.n_splits * kBlockRows;
        split_index = int(blockIdx.x) % a.n_splits;
    } else {
        if (int(blockIdx.x) >= row_tiles) return;
        row0 = (row_tiles - 1 - int(blockIdx.x)) * kBlockRows;  // latest rows (most keys) first
    }
    const int block_rows = min(kBlockRows, rows - row0);
    const int row_warps = block_rows <= 16 ? 1 : block_rows <= 32 ? 2 : 4;
    const int key_warps = min(kWarps / row_warps, Shape::kKeySteps);  // warps sharing a row range
    const int warp_row = warp / key_warps, warp_key = warp % key_warps;
    const int warp_keys = kTileKeys / key_warps;  // keys of each tile this warp scores: 16 to 64
    const int warp_key_steps = warp_keys / 16;    // k16 steps of P.V

    const CausalWindowMask mask = a.variant.mask;
    const int pos0 = context - q_len;  // position of query 0
    const int block_last_pos = pos0 + (row0 + block_rows - 1) / group;
    const int kv_lo = mask.first_key(pos0 + row0 / group);
    const int kv_tiles = (block_last_pos - kv_lo) / kTileKeys + 1;
    int tile_begin = 0, tile_end = kv_tiles;
    if (split) {
        const int per_split = (kv_tiles + a.n_splits - 1) / a.n_splits;
        tile_begin = min(kv_tiles, split_index * per_split);
        tile_end = min(kv_tiles, tile_begin + per_split);
    }
    const int load_hi = min(block_last_pos, kv_lo + tile_end * kTileKeys - 1);  // last key read

    // This thread's two rows (g and g + 8 of its warp's 16) and the warp's position range.
    const int g = lane >> 2, t4 = lane & 3;
    const int warp_row0 = warp_row * 16;
    const bool warp_has_rows = warp_row < row_warps && warp_row0 < block_rows;
    int row_pos[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const int r = warp_row0 + g + 8 * i;
        row_pos[i] = r < block_rows ? pos0 + (row0 + r) / group : block_last_pos;
    }
    const int warp_first_pos = pos0 + (row0 + min(warp_row0, block_rows - 1)) / group;
    const int warp_last_pos = pos0 + (row0 + min(warp_row0 + 15, block_rows - 1)) / group;
    const int warp_first_key = mask.first_key(warp_first_pos);  // no row of the warp sees a key before it
    const int warp_common_key = mask.first_key(warp_last_pos);  // every row sees keys from here to warp_first_pos

    // Q tile, one warp per row, converted to the operand type. Rows a warp computes but the
    // block does not own are zeros.
    for (int r = warp; r < 16 * row_warps; r += kWarps) {
        uint32_t* dst = reinterpret_cast<uint32_t*>(s_q + r * kStride);
        if (r < block_rows) {
            const int row = row0 + r;
            const float* src = a.q + int64_t(q_begin + row / group) * a.q_stride + int64_t(kv_head * group + row % group) * D;
            for (int d2 = lane; d2 < D / 2; d2 += 32) dst[d2] = Operand::pack(__ldg(src + 2 * d2), __ldg(src + 2 * d2 + 1));
        } else {
            for (int d2 = lane; d2 < D / 2; d2 += 32) dst[d2] = 0u;
        }
    }

    const int32_t* table = a.block_tables + int64_t(seq) * a.max_blocks_per_seq;
    // Key k of tile `tile` -> its cache slot, by the first 64 threads.
    auto find_slots = [&](int tile, int* slots) {
        if (tid < kTileKeys) {
            const int key = kv_lo + tile * kTileKeys + tid;
            int slot = -1;
            if (key <= load_hi) {
                const int block = key / a.block_size;
                slot = table[block] * a.block_size + (key - block * a.block_size);
            }
            slots[tid] = slot;
        }
    };
    const Element* k_pool = static_cast<const Element*>(a.k_pool);
    const Element* v_pool = static_cast<const Element*>(a.v_pool);

    if (tile_begin < tile_end) find_slots(tile_begin, s_slots);
    __syncthreads();  // Q tile and the first slots are in place

    // ldmatrix lane addresses. Q/V: matrices (rows 0-7 | 8-15) x (cols 0-7 | 8-15) in order
    // (0,0) (8,0) (0,8) (8,8); K: (0,0) (0,8) (8,0) (8,8), i.e. two n8 tiles' b0/b1 pairs.
    const int m_lo = (lane >> 3) & 1, m_hi = lane >> 4, m_row = lane & 7;
    const uint32_t q_address = smem_address(s_q) + uint32_t((warp_row0 + m_lo * 8 + m_row) * kStride + m_hi * 8) * 2;
    const uint32_t k_address =
        smem_address(s_k) + uint32_t((warp_key * warp_keys + m_hi * 8 + m_row) * kStride + m_lo * 8) * 2;
    const uint32_t v_address =
        smem_address(s_v) + uint32_t((warp_key * warp_keys + m_lo * 8 + m_row) * kStride + m_hi * 8) * 2;

    [[maybe_unused]] uint32_t q_frag[kQInRegisters ? kDimSteps : 1][4];  // unused at D = 256
    if constexpr (kQInRegisters) {
#pragma unroll
        for (int kk = 0; kk < kDimSteps; ++kk) ldmatrix_x4(q_frag[kk], q_address + kk * 32);
    }

    if (tile_begin < tile_end) {
        load_kv_tile<D, Cache>(s_k, k_pool, a.k_scale, s_k_scale, s_slots, a.n_kv_heads, kv_head);
        cp_async_commit();
        load_kv_tile<D, Cache>(s_v, v_pool, a.v_scale, s_v_scale, s_slots, a.n_kv_heads, kv_head);
        cp_async_commit();
    }

    float o[D / 8][4];  // O[16 x D] of the warp's rows over its keys, unnormalized
#pragma unroll
    for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float row_max[2] = {-INFINITY, -INFINITY};  // log2 domain
    float row_sum[2] = {0.0f, 0.0f};            // this thread's columns only; the quad adds up at the end

    const LogitSoftcap softcap = a.variant.softcap;
    const float scale = a.scale, scale_log2 = a.scale * kLog2e;

    for (int tile = tile_begin; tile < tile_end; ++tile) {
        const int buf = (tile - tile_begin) & 1;
        const int warp_key0 = kv_lo + tile * kTileKeys + warp_key * warp_keys;
        const int warp_key_end = warp_key0 + warp_keys - 1;
        // Skip a tile slice no row of the warp sees; mask only a slice some row sees partly.
        const bool active = warp_has_rows && warp_key0 <= warp_last_pos && warp_key0 <= load_hi && warp_key_end >= warp_first_key;
        const bool needs_mask = !(warp_key_end <= warp_first_pos && warp_key_end <= load_hi && warp_key0 >= warp_common_key);

        cp_async_wait<1>();
        __syncthreads();  // K(tile) landed for every thread
        if (tile + 1 < tile_end) find_slots(tile + 1, s_slots + (buf ^ 1) * kTileKeys);

        float s[Shape::kKeyTiles][4];  // S of the warp's 16 rows x its keys: n8 tile j = keys 8j..8j+7
#pragma unroll
        for (int j = 0; j < Shape::kKeyTiles; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
        if (active) {
#pragma unroll
            for (int kk = 0; kk < kDimSteps; ++kk) {
                uint32_t qa[4];
                if constexpr (kQInRegisters) {
                    qa[0] = q_frag[kk][0], qa[1] = q_frag[kk][1], qa[2] = q_frag[kk][2], qa[3] = q_frag[kk][3];
                } else {
                    ldmatrix_x4(qa, q_address + kk * 32);
                }
#pragma unroll
                for (int jp = 0; jp < Shape::kKeySteps; ++jp) {
                    if (jp < warp_key_steps) {
                        uint32_t kb[4];
                        ldmatrix_x4(kb, k_address + jp * 16 * kRowBytes + kk * 32);
                        Operand::mma(s[2 * jp], qa, kb[0], kb[1]);
                        Operand::mma(s[2 * jp + 1], qa, kb[2], kb[3]);
                    }
                }
            }
        }

        cp_async_wait<0>();
        __syncthreads();  // every warp is done with K(tile); V(tile) landed
        if (tile + 1 < tile_end) {
            const int* next_slots = s_slots + (buf ^ 1) * kTileKeys;
            load_kv_tile<D, Cache>(s_k, k_pool, a.k_scale, s_k_scale + (buf ^ 1) * kTileKeys, next_slots, a.n_kv_heads, kv_head);
            cp_async_commit();
        }

        if (active) {
            // Logits in the log2 domain, through the variant's hooks.
            const float* k_scale = s_k_scale + buf * kTileKeys + warp_key * warp_keys;
            auto logits = [&](auto capped) {
#pragma unroll
                for (int j = 0; j < Shape::kKeyTiles; ++j) {
                    if (j < 2 * warp_key_steps) {
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const int key = 8 * j + 2 * t4 + (e & 1);
                            float x = s[j][e];
                            if constexpr (Cache::kScaled) x *= k_scale[key];
                            if constexpr (decltype(capped)::value) {
                                x = softcap(x * scale) * kLog2e;
                            } else {
                                x *= scale_log2;
                            }
                            if (needs_mask) {
                                const int key_pos = warp_key0 + key;
                                if (!(key_pos <= load_hi && mask.visible(row_pos[e >> 1], key_pos))) x = -INFINITY;
                            }
                            s[j][e] = x;
                        }
                    }
                }
            };
            if (softcap.enabled()) {
                logits(std::true_type{});
            } else {
                logits(std::false_type{});
            }

            // Online softmax: new running max per row (the 4 lanes of a quad share a row).
            float tile_max[2] = {row_max[0], row_max[1]};
#pragma unroll
            for (int j = 0; j < Shape::kKeyTiles; ++j) {
                if (j < 2 * warp_key_steps) {
                    tile_max[0] = fmaxf(tile_max[0], fmaxf(s[j][0], s[j][1]));
                    tile_max[1] = fmaxf(tile_max[1], fmaxf(s[j][2], s[j][3]));
                }
            }
            float base[2];
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xffffffffu, tile_max[i], 1));
                tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xffffffffu, tile_max[i], 2));
                // A row that has seen no visible key yet keeps max -inf; exponents use 0 then,
                // so its weights are exp2(-inf) = 0 rather than NaN.
                base[i] = tile_max[i] == -INFINITY ? 0.0f : tile_max[i];
                const float correction = exp2f(row_max[i] - base[i]);
                row_max[i] = tile_max[i];
                row_sum[i] *= correction;
#pragma unroll
                for (int j = 0; j < D / 8; ++j) {
                    o[j][2 * i] *= correction;
                    o[j][2 * i + 1] *= correction;
                }
            }
#pragma unroll
            for (int j = 0; j < Shape::kKeyTiles; ++j) {
                if (j < 2 * warp_key_steps) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        s[j][e] = exp2f(s[j][e] - base[e >> 1]);
                        row_sum[e >> 1] += s[j][e];
                    }
                }
            }

            // O += P V, P taken straight from S's accumulators (C layout of two n8 tiles =
            // A layout of one k16 step). An int8 cache's v_scale goes into P here.
            const float* v_scale = s_v_scale + buf * kTileKeys + warp_key * warp_keys;
#pragma unroll
            for (int c = 0; c < Shape::kKeySteps; ++c) {
                if (c < warp_key_steps) {
                    if constexpr (Cache::kScaled) {
#pragma unroll
                        for (int h = 0; h < 2; ++h) {
                            const float v0 = v_scale[16 * c + 8 * h + 2 * t4], v1 = v_scale[16 * c + 8 * h + 2 * t4 + 1];
                            s[2 * c + h][0] *= v0;
                            s[2 * c + h][1] *= v1;
                            s[2 * c + h][2] *= v0;
                            s[2 * c + h][3] *= v1;
                        }
                    }
                    const uint32_t pa[4] = {Operand::pack(s[2 * c][0], s[2 * c][1]), Operand::pack(s[2 * c][2], s[2 * c][3]),
                                            Operand::pack(s[2 * c + 1][0], s[2 * c + 1][1]),
                                            Operand::pack(s[2 * c + 1][2], s[2 * c + 1][3])};
#pragma unroll
                    for (int np = 0; np < kDimSteps; ++np) {
                        uint32_t vb[4];
                        ldmatrix_x4_trans(vb, v_address + c * 16 * kRowBytes + np * 32);
                        Operand::mma(o[2 * np], pa, vb[0], vb[1]);
                        Operand::mma(o[2 * np + 1], pa, vb[2], vb[3]);
                    }
                }
            }
        }

        __syncthreads();  // every warp is done with V(tile)
        if (tile + 1 < tile_end) {
            const int* next_slots = s_slots + (buf ^ 1) * kTileKeys;
            load_kv_tile<D, Cache>(s_v, v_pool, a.v_scale, s_v_scale + (buf ^ 1) * kTileKeys, next_slots, a.n_kv_heads, kv_head);
            cp_async_commit();
        }
    }
    // The merge area overwrites the Q, K and V tiles: wait until every warp is past the loop
    // (and its Q fragment loads, when there was no tile).
    __syncthreads();

    // Each warp's rows -> shared memory: (max, sum) in the natural-log domain and O.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        row_sum[i] += __shfl_xor_sync(0xffffffffu, row_sum[i], 1);
        row_sum[i] += __shfl_xor_sync(0xffffffffu, row_sum[i], 2);
    }
    if (warp_has_rows) {
        if (t4 == 0) {
            s_stats[warp * 16 + g] = SoftmaxPartial{row_max[0] * kLn2, row_sum[0]};
            s_stats[warp * 16 + g + 8] = SoftmaxPartial{row_max[1] * kLn2, row_sum[1]};
        }
        float* merge = s_merge + warp * 16 * D;
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
            *reinterpret_cast<float2*>(merge + g * D + 8 * j + 2 * t4) = make_float2(o[j][0], o[j][1]);
            *reinterpret_cast<float2*>(merge + (g + 8) * D + 8 * j + 2 * t4) = make_float2(o[j][2], o[j][3]);
        }
    }
    __syncthreads();

    // Merge the key warps of each row and write it: one warp per row, lanes over dims.
    for (int r = warp; r < block_rows; r += kWarps) {
        const int first_warp = (r / 16) * key_warps, rr = r % 16;
        SoftmaxPartial total = s_stats[first_warp * 16 + rr];
        float weight[kWarps] = {1.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int kw = 1; kw < kWarps; ++kw) {
            if (kw < key_warps) {
                float scale_total, scale_new;
                merge_softmax_partials(&total, s_stats[(first_warp + kw) * 16 + rr], &scale_total, &scale_new);
#pragma unroll
                for (int i = 0; i < kw; ++i) weight[i] *= scale_total;
                weight[kw] = scale_new;
            }
        }
        const int row = row0 + r;
        const int head = kv_head * group + row % group;
        const float* merged = s_merge + (first_warp * 16 + rr) * D;
        float* dst;
        float normalize;
        if (split) {
            const int64_t at = (int64_t(seq) * a.n_heads + head) * a.n_splits + split_index;
            dst = a.split_out + at * D;
            normalize = 1.0f;  // partials stay unnormalized; the combine divides by the merged sum
            if (lane == 0) a.split_stats[at] = total;
        } else {
            dst = a.out + int64_t(q_begin + row / group) * a.out_stride + int64_t(head) * D;
            normalize = total.sum > 0.0f ? 1.0f / total.sum : 0.0f;
        }
        for (int d = lane; d < D; d += 32) {
            float acc = 0.0f;
#pragma unroll
            for (int kw = 0; kw < kWarps; ++kw) {
                if (kw < key_warps) acc += weight[kw] * merged[kw * 16 * D + d];
            }
            dst[d] = acc * normalize;
        }
    }
}

// Flash-decoding combine: out = merge of the n_splits partials of each decode row.
// grid (n_heads, n_seqs), min(D, 256) threads; sequences with q_len != 1 were written by
// the attention kernel.
template <int D>
__global__ void __launch_bounds__(256) paged_attention_combine_kernel(const PagedAttentionArgs a) {
    const int head = int(blockIdx.x), seq = int(blockIdx.y);
    const int q_begin = a.cu_seqlens_q[seq];
    if (a.cu_seqlens_q[seq + 1] - q_begin != 1) return;
    const int64_t at = (int64_t(seq) * a.n_heads + head) * a.n_splits;
    const SoftmaxPartial* stats = a.split_stats + at;
    const float* partial = a.split_out + at * D;
    float* dst = a.out + int64_t(q_begin) * a.out_stride + int64_t(head) * D;
    for (int d = int(threadIdx.x); d < D; d += int(blockDim.x)) {
        SoftmaxPartial total = stats[0];
        float acc = partial[d];
        for (int i = 1; i < a.n_splits; ++i) {
            float scale_total, scale_new;
            merge_softmax_partials(&total, stats[i], &scale_total, &scale_new);
            acc = acc * scale_total + partial[int64_t(i) * D + d] * scale_new;
        }
        dst[d] = total.sum > 0.0f ? acc / total.sum : 0.0f;
    }
}

// ---- planning (host) ------------------------------------------------------------------------------

// Flash-decoding split count: split a decode row's keys so that the (sequence, kv head,
// split) blocks fill the device about once (`resident_per_sm` blocks on each of `sms` SMs).
// A decode block streams one K/V tile at a time, so the bytes in flight, hence bandwidth,
// grow with resident blocks. Each split keeps at least 2 tiles so the partial write and the
// combine stay small next to the reads; at most 32 splits.
inline int paged_attention_splits(int64_t n_seqs, int64_t n_kv_heads, int64_t max_keys, int head_dim, int sms, int resident_per_sm) {
    const int tile = paged::tile_keys(head_dim);
    const int64_t tiles = (max_keys + tile - 1) / tile;
    if (n_seqs < 1 || tiles < 4) return 1;
    const int64_t target = int64_t(resident_per_sm > 0 ? resident_per_sm : 1) * sms;
    const int64_t blocks = n_seqs * n_kv_heads;
    int64_t splits = (target + blocks / 2) / blocks;  // rounded
    splits = std::min<int64_t>(std::min<int64_t>(splits, tiles / 2), 32);
    if (splits <= 1) return 1;
    const int64_t per_split = (tiles + splits - 1) / splits;  // drop splits no sequence reaches
    return int((tiles + per_split - 1) / per_split);
}

}  // namespace si::cuda
