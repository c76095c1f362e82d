// paged_attention.cpp (cpu): causal attention of a batch of sequences over the paged KV
// cache, threaded over cost-sorted work items, with SIMD inner loops for AVX-512, AVX2 and
// scalar code chosen at run time.
//
// Work items. The rows of a (sequence, kv head) pair are its (query token, query head)
// pairs for the query heads of that kv head's GQA group, token-major: row r is token r / G,
// head kv_head * G + r % G. One item is a range of those rows over a range of keys, so the
// heads of a group share every K/V load. Two kernels:
//  - tiled (FlashAttention-style) when a sequence has more than kDecodeMaxRows rows: rows
//    are SIMD lanes. Per tile of kKeyTile keys it computes S^T = K Q^T into an L1-sized
//    [keys][rows] buffer, applies the logit hook and mask, updates the running max/sum per
//    row (online softmax; lanes are rows, so no horizontal reductions) and accumulates
//    O[rows][head_dim] += P^T V. The full score matrix never exists. Up to 64 rows (32
//    when head_dim > 128) per item keep Q^T, O and the f32 K/V tile inside L2.
//  - decode when a sequence has at most kDecodeMaxRows rows (decode, small GQA groups):
//    head_dim is the SIMD axis, K/V rows stream straight from the cache and are converted
//    (f16/bf16) or dequantized (int8: the scales fold into the scores and the weights) in
//    registers.
// Split-K (flash-decoding). A sequence with q_len <= kSplitMaxQ and more than kSplitKeys
// keys is split into ceil(context / kSplitKeys) key ranges of kSplitKeys keys; each range is
// its own item writing a partial (unnormalized O, max, sum) to the caller's workspace, and a
// second phase merges a row's partials in split order (common/kv_quant.h). Many decode
// sequences need no splitting for parallelism, but splitting is decided by the sequence's
// own q_len and context length only: results never depend on the batch or the thread count
// (batch invariance), and the batch size only changes how items are scheduled.
// Workspace bytes = 4 * sum over split sequences of q_len * n_heads * n_splits * (head_dim + 2).
//
// Determinism. Key tiles start at multiples of kKeyTile (absolute positions), splits at
// multiples of kSplitKeys, and an item's arithmetic depends only on its sequence, so every
// output has the same bits for any batch composition and thread count.
//
// One source, three instruction sets: the kernels below are written once against a small
// `Simd` traits struct, and this file includes itself once per ISA with that struct and the
// matching target attribute (the re-inclusion pattern of Highway's foreach_target), because
// a template cannot take its target attribute from a template argument.
#ifndef SI_CPU_PAGED_ATTENTION_ISA

#include "common/dtype.h"
#include "common/kv_quant.h"
#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstring>
#include <new>
#include <numeric>
#include <vector>

namespace si::cpu::paged {

constexpr int32_t kKeyTile = 64;        // keys per tile: S^T [64][<=64 rows] is 16 KiB
constexpr int32_t kDecodeMaxRows = 8;   // rows per sequence and kv head for the decode kernel
constexpr int32_t kSplitKeys = 512;     // keys per split-K range (a multiple of kKeyTile)
constexpr int32_t kSplitMaxQ = 16;      // sequences with more queries are not split
constexpr int32_t kMaxLanes = 16;       // the widest SIMD (AVX-512), for buffer padding
constexpr int32_t kMaxQkKeys = 8;       // keys per QK micro-kernel call, for padding

struct SeqInfo {
    int32_t q_begin;
    int32_t q_len;
    int32_t context;
    int32_t n_splits;        // 1 = written straight to out
    int64_t partial_offset;  // in floats, into the workspace (n_splits > 1)
    bool decode;             // decode kernel (q_len * group <= kDecodeMaxRows)
};

struct Item {
    int32_t seq;
    int32_t kv_head;
    int32_t row_begin, row_end;  // rows of (seq, kv_head), see the file comment
    int32_t key_begin, key_end;  // keys considered (before masking)
    int32_t split;               // split index; its partial goes to the workspace when n_splits > 1
    int64_t cost;                // estimated multiply-adds, for scheduling
};

struct Plan {
    const si_paged_attention_params* p;
    int32_t group;
    int32_t head_dim;
    int32_t tile_rows;  // rows per tiled item
    std::vector<SeqInfo> seqs;
    std::vector<Item> items;
    float* partials;  // the workspace, as f32
};

inline int32_t round_up(int32_t x, int32_t m) { return (x + m - 1) / m * m; }

inline int32_t split_count(int32_t q_len, int32_t context) {
    if (q_len < 1 || q_len > kSplitMaxQ || context <= kSplitKeys) return 1;
    return int32_t((int64_t(context) + kSplitKeys - 1) / kSplitKeys);
}

inline int32_t tile_rows_for(int32_t head_dim) { return head_dim > 128 ? 32 : 64; }

// A bump allocator over one scratch block; with a null base it only measures.
struct Bump {
    char* base;
    size_t used = 0;
    template <typename T>
    T* take(size_t count) {
        const size_t at = (used + 63) / 64 * 64;
        used = at + count * sizeof(T);
        return base ? reinterpret_cast<T*>(base + at) : nullptr;
    }
};

// Scratch of the tiled kernel for `rows_pad` rows and rows of `dpad` floats.
struct TileScratch {
    float* qt;      // [head_dim][rows_pad]: Q^T * scale
    float* o;       // [rows_pad][dpad]: unnormalized output
    float* s;       // [kKeyTile + kMaxQkKeys][rows_pad]: scores, then probabilities
    float* kp;      // [kKeyTile][dpad]: K tile as f32 (caches that are not plain f32)
    float* vp;      // [kKeyTile][dpad]: V tile as f32
    float* m;       // [rows_pad] running max
    float* l;       // [rows_pad] running sum
    float* alpha;   // [rows_pad] this tile's rescale factor
    int32_t* hi;    // [rows_pad] last visible key (the query's position)
    int32_t* lo;    // [rows_pad] first visible key (sliding window; 0 without)
    const float** kr;  // [kKeyTile + kMaxQkKeys] K row of each key in the tile
    const float** vr;  // [kKeyTile] V row of each key

    static TileScratch take(Bump& b, int32_t head_dim, int32_t rows_pad, int32_t dpad) {
        TileScratch t;
        t.qt = b.take<float>(size_t(head_dim) * rows_pad);
        t.o = b.take<float>(size_t(rows_pad) * dpad);
        t.s = b.take<float>(size_t(kKeyTile + kMaxQkKeys) * rows_pad);
        t.kp = b.take<float>(size_t(kKeyTile) * dpad);
        t.vp = b.take<float>(size_t(kKeyTile) * dpad);
        t.m = b.take<float>(size_t(rows_pad));
        t.l = b.take<float>(size_t(rows_pad));
        t.alpha = b.take<float>(size_t(rows_pad));
        t.hi = b.take<int32_t>(size_t(rows_pad));
        t.lo = b.take<int32_t>(size_t(rows_pad));
        t.kr = b.take<const float*>(size_t(kKeyTile + kMaxQkKeys));
        t.vr = b.take<const float*>(size_t(kKeyTile));
        return t;
    }
};

// Scratch of the decode kernel for R <= kDecodeMaxRows rows.
struct DecodeScratch {
    static constexpr int32_t kScoreStride = kKeyTile + kMaxLanes;  // room for full-vector loads
    float* q;        // [R][dpad]: Q * scale, zero padded
    float* o;        // [R][dpad]
    float* s;        // [R][kScoreStride]
    float* k_scale;  // [kScoreStride] int8 scales of the tile's keys
    float* v_scale;  // [kScoreStride]
    int32_t* hi;     // [R]
    int32_t* lo;     // [R]
    float* m;        // [R]
    float* l;        // [R]
    float* alpha;    // [R]
    const uint8_t** kr;  // [kKeyTile] K row of each key in the tile, in the cache
    const uint8_t** vr;  // [kKeyTile]

    static DecodeScratch take(Bump& b, int32_t rows, int32_t dpad) {
        DecodeScratch t;
        t.q = b.take<float>(size_t(rows) * dpad);
        t.o = b.take<float>(size_t(rows) * dpad);
        t.s = b.take<float>(size_t(rows) * kScoreStride);
        t.k_scale = b.take<float>(size_t(kScoreStride));
        t.v_scale = b.take<float>(size_t(kScoreStride));
        t.hi = b.take<int32_t>(size_t(rows));
        t.lo = b.take<int32_t>(size_t(rows));
        t.m = b.take<float>(size_t(rows));
        t.l = b.take<float>(size_t(rows));
        t.alpha = b.take<float>(size_t(rows));
        t.kr = b.take<const uint8_t*>(size_t(kKeyTile));
        t.vr = b.take<const uint8_t*>(size_t(kKeyTile));
        return t;
    }
};

// Bytes of scratch any item of this plan needs on any ISA (padding for the widest one).
inline size_t scratch_bytes(const Plan& plan) {
    const int32_t dpad = round_up(plan.head_dim, kMaxLanes);
    Bump tiled{nullptr}, decode{nullptr};
    TileScratch::take(tiled, plan.head_dim, round_up(plan.tile_rows, kMaxLanes), dpad);
    DecodeScratch::take(decode, kDecodeMaxRows, dpad);
    return std::max(tiled.used, decode.used) + 64;
}

// Where the row of key `key` of a sequence lives, as an element index into the pools (times
// head_dim) and a row index into the scales.
inline int64_t cache_row(const si_paged_kv& c, const int32_t* table, int32_t key, int32_t kv_head) {
    const int64_t slot = int64_t(table[key / c.block_size]) * c.block_size + key % c.block_size;
    return slot * c.n_kv_heads + kv_head;
}

// Where a row's partial (O[head_dim], max, sum) for one split lives in the workspace.
inline float* partial_at(const Plan& plan, const SeqInfo& seq, int32_t token, int32_t head, int32_t split) {
    const int64_t index = (int64_t(token) * plan.p->n_heads + head) * seq.n_splits + split;
    return plan.partials + seq.partial_offset + index * (plan.head_dim + 2);
}

using ItemFn = void (*)(const Plan& plan, const Item& item, void* scratch);

}  // namespace si::cpu::paged

// ---- the kernels, once per ISA ------------------------------------------------------------

#define SI_CPU_PAGED_ATTENTION_ISA 2
#include "cpu/paged_attention.cpp"
#undef SI_CPU_PAGED_ATTENTION_ISA
#define SI_CPU_PAGED_ATTENTION_ISA 1
#include "cpu/paged_attention.cpp"
#undef SI_CPU_PAGED_ATTENTION_ISA
#define SI_CPU_PAGED_ATTENTION_ISA 0
#include "cpu/paged_attention.cpp"
#undef SI_CPU_PAGED_ATTENTION_ISA

// ---- planning, scheduling, split-K combine -------------------------------------------------

namespace si::cpu {
namespace {

using namespace paged;

int64_t workspace_floats(const si_paged_attention_params& p) {
    int64_t floats = 0;
    for (int32_t s = 0; s < p.n_seqs; ++s) {
        // Unvalidated when called through si_paged_attention_workspace_size: clamp.
        const int32_t q_len = std::max(0, p.cu_seqlens_q[s + 1] - p.cu_seqlens_q[s]);
        const int32_t context = std::max(0, p.context_lens[s]);
        const int32_t splits = split_count(q_len, context);
        if (splits > 1) floats += int64_t(q_len) * p.n_heads * splits * (p.cache.head_dim + 2);
    }
    return floats;
}

Plan make_plan(const si_paged_attention_params& p) {
    Plan plan;
    plan.p = &p;
    plan.group = p.n_heads / p.cache.n_kv_heads;
    plan.head_dim = p.cache.head_dim;
    plan.tile_rows = tile_rows_for(p.cache.head_dim);
    plan.partials = static_cast<float*>(p.workspace);
    const int32_t window = p.variant.sliding_window;
    int64_t partial_offset = 0;
    plan.seqs.resize(size_t(p.n_seqs));
    for (int32_t s = 0; s < p.n_seqs; ++s) {
        SeqInfo& seq = plan.seqs[size_t(s)];
        seq.q_begin = p.cu_seqlens_q[s];
        seq.q_len = p.cu_seqlens_q[s + 1] - seq.q_begin;
        seq.context = p.context_lens[s];
        seq.n_splits = split_count(seq.q_len, seq.context);
        seq.partial_offset = partial_offset;
        if (seq.n_splits > 1) partial_offset += int64_t(seq.q_len) * p.n_heads * seq.n_splits * (plan.head_dim + 2);
        const int32_t rows = seq.q_len * plan.group;
        seq.decode = rows <= kDecodeMaxRows;
        if (seq.q_len == 0) continue;
        const int32_t row_step = seq.decode ? rows : plan.tile_rows;
        for (int32_t kv_head = 0; kv_head < p.cache.n_kv_heads; ++kv_head) {
            for (int32_t row = 0; row < rows; row += row_step) {
                const int32_t row_end = std::min(rows, row + row_step);
                // Keys the rows can see: from the first row's window start to the last row's position.
                const int32_t first_pos = seq.context - seq.q_len + row / plan.group;
                const int32_t last_pos = seq.context - seq.q_len + (row_end - 1) / plan.group;
                const int32_t first_key = window > 0 ? std::max(0, first_pos - window + 1) : 0;
                for (int32_t split = 0; split < seq.n_splits; ++split) {
                    Item item;
                    item.seq = s;
                    item.kv_head = kv_head;
                    item.row_begin = row;
                    item.row_end = row_end;
                    item.key_begin = seq.n_splits > 1 ? split * kSplitKeys : 0;
                    item.key_end = seq.n_splits > 1 ? std::min(seq.context, (split + 1) * kSplitKeys) : seq.context;
                    item.split = split;
                    const int64_t keys = std::max(0, std::min(item.key_end, last_pos + 1) - std::max(item.key_begin, first_key));
                    // The decode kernel does about twice the work per row and key (horizontal
                    // sums, no lane sharing); every item pays a fixed start-up cost.
                    item.cost = (keys * (row_end - row) * (seq.decode ? 2 : 1) + 256) * plan.head_dim;
                    plan.items.push_back(item);
                }
            }
        }
    }
    return plan;
}

ItemFn item_function(Isa isa) {
    switch (isa) {
        case Isa::Avx512: return paged::avx512::run_item;
        case Isa::Avx2: return paged::avx2::run_item;
        default: return paged::scalar::run_item;
    }
}

// Per-thread scratch that lives as long as the thread (pool workers live as long as the
// context), so steady-state calls allocate nothing.
void* thread_scratch(size_t bytes) {
    struct Block {
        void* data = nullptr;
        size_t bytes = 0;
        ~Block() { ::operator delete(data, std::align_val_t(64)); }
    };
    thread_local Block block;
    if (block.bytes < bytes) {
        ::operator delete(block.data, std::align_val_t(64));
        block.data = nullptr;
        block.bytes = 0;
        block.data = ::operator new(bytes, std::align_val_t(64));
        block.bytes = bytes;
    }
    return block.data;
}

// out[row] = merge of the row's partials in split order.
void combine(const Env& env, const Plan& plan) {
    const si_paged_attention_params& p = *plan.p;
    std::vector<int32_t> split_seqs;
    std::vector<int64_t> first_task{0};
    for (int32_t s = 0; s < p.n_seqs; ++s) {
        const SeqInfo& seq = plan.seqs[size_t(s)];
        if (seq.n_splits <= 1 || seq.q_len == 0) continue;
        split_seqs.push_back(s);
        first_task.push_back(first_task.back() + int64_t(seq.q_len) * p.n_heads);
    }
    if (split_seqs.empty()) return;
    const int32_t dim = plan.head_dim;
    env.pool.parallel_for(first_task.back(), 16, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const size_t k = size_t(std::upper_bound(first_task.begin(), first_task.end(), task) - first_task.begin() - 1);
            const SeqInfo& seq = plan.seqs[size_t(split_seqs[k])];
            const int32_t token = int32_t((task - first_task[k]) / p.n_heads);
            const int32_t head = int32_t((task - first_task[k]) % p.n_heads);
            float* out = p.out + (seq.q_begin + token) * p.out_stride + int64_t(head) * dim;
            SoftmaxPartial total{-INFINITY, 0.0f};
            for (int32_t d = 0; d < dim; ++d) out[d] = 0.0f;
            for (int32_t split = 0; split < seq.n_splits; ++split) {
                const float* part = partial_at(plan, seq, token, head, split);
                float scale_total = 0.0f, scale_part = 0.0f;
                merge_softmax_partials(&total, SoftmaxPartial{part[dim], part[dim + 1]}, &scale_total, &scale_part);
                for (int32_t d = 0; d < dim; ++d) out[d] = out[d] * scale_total + part[d] * scale_part;
            }
            const float inv_sum = 1.0f / total.sum;
            for (int32_t d = 0; d < dim; ++d) out[d] *= inv_sum;
        }
    });
}

}  // namespace

si_status paged_attention_workspace_size(const Env&, const si_paged_attention_params& p, int64_t* out_bytes) {
    *out_bytes = workspace_floats(p) * int64_t(sizeof(float));
    return SI_OK;
}

si_status paged_attention(const Env& env, const si_paged_attention_params& p) {
    const Plan plan = make_plan(p);
    const int64_t n_items = int64_t(plan.items.size());
    if (n_items == 0) return SI_OK;
    // Longest first, so the last items to start are short ones (greedy LPT); ties keep plan
    // order. Which thread runs an item never changes its arithmetic.
    std::vector<int32_t> order(static_cast<size_t>(n_items));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return plan.items[size_t(a)].cost > plan.items[size_t(b)].cost; });
    const ItemFn run_item = item_function(env.kernels.isa);
    const size_t scratch = scratch_bytes(plan);
    std::atomic<int64_t> next{0};
    auto worker = [&](int64_t, int64_t) {
        void* buffer = thread_scratch(scratch);
        for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n_items; i = next.fetch_add(1, std::memory_order_relaxed))
            run_item(plan, plan.items[size_t(order[size_t(i)])], buffer);
    };
    const int64_t workers = std::min<int64_t>(env.pool.num_threads(), n_items);
    if (workers <= 1) worker(0, 1);
    else env.pool.parallel_for(workers, 1, worker);
    combine(env, plan);
    return SI_OK;
}

}  // namespace si::cpu

#else  // SI_CPU_PAGED_ATTENTION_ISA: one pass per instruction set

#if SI_CPU_PAGED_ATTENTION_ISA == 2
#define SI_PA_NS avx512
#define SI_PA_TARGET SI_TARGET_AVX512
#elif SI_CPU_PAGED_ATTENTION_ISA == 1
#define SI_PA_NS avx2
#define SI_PA_TARGET SI_TARGET_AVX2
#else
#define SI_PA_NS scalar
#define SI_PA_TARGET
#endif

namespace si::cpu::paged::SI_PA_NS {

// ---- the vector operations the kernels use ----------------------------------------------

#if SI_CPU_PAGED_ATTENTION_ISA == 2
struct Simd {
    using V = __m512;
    static constexpr int32_t W = 16;
    static constexpr int32_t kQkMaxRowVectors = 4;  // QK micro-kernel: 4 row vectors x 6 keys = 24 accumulators
    static constexpr int32_t kPvMaxVectors = 6;     // PV micro-kernel: 4 rows x 6 vectors = 24 accumulators
    static constexpr int32_t kDecodeAccumulators = 24;
    SI_PA_TARGET static V zero() { return _mm512_setzero_ps(); }
    SI_PA_TARGET static V set1(float x) { return _mm512_set1_ps(x); }
    SI_PA_TARGET static V load(const float* p) { return _mm512_loadu_ps(p); }
    SI_PA_TARGET static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
    SI_PA_TARGET static V load_n(const float* p, int32_t n) { return _mm512_maskz_loadu_ps(simd::tail_mask16(n), p); }
    SI_PA_TARGET static void store_n(float* p, V v, int32_t n) { _mm512_mask_storeu_ps(p, simd::tail_mask16(n), v); }
    SI_PA_TARGET static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    SI_PA_TARGET static V add(V a, V b) { return _mm512_add_ps(a, b); }
    SI_PA_TARGET static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    SI_PA_TARGET static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    SI_PA_TARGET static V div(V a, V b) { return _mm512_div_ps(a, b); }
    SI_PA_TARGET static V max(V a, V b) { return _mm512_max_ps(a, b); }
    SI_PA_TARGET static V exp(V x) { return simd::exp512(x); }
    SI_PA_TARGET static float hsum(V v) { return _mm512_reduce_add_ps(v); }
    SI_PA_TARGET static float hmax(V v) { return _mm512_reduce_max_ps(v); }
    // -inf -> 0, so exp(x - max) of a row that has seen no key yet is exp(-inf) = 0.
    SI_PA_TARGET static V zero_if_neg_inf(V x) {
        return _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ), _mm512_setzero_ps());
    }
    // Lanes are rows: -inf where `key` lies outside [lo[lane], hi[lane]].
    SI_PA_TARGET static V mask_rows(V x, int32_t key, const int32_t* hi, const int32_t* lo) {
        const __m512i k = _mm512_set1_epi32(key);
        const __mmask16 hidden = _mm512_cmpgt_epi32_mask(k, _mm512_loadu_si512(hi)) | _mm512_cmplt_epi32_mask(k, _mm512_loadu_si512(lo));
        return _mm512_mask_mov_ps(x, hidden, _mm512_set1_ps(-INFINITY));
    }
    // Lanes are keys key0 + lane: -inf outside [lo, hi].
    SI_PA_TARGET static V mask_keys(V x, int32_t key0, int32_t hi, int32_t lo) {
        const __m512i keys = _mm512_add_epi32(_mm512_set1_epi32(key0), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
        const __mmask16 hidden = _mm512_cmpgt_epi32_mask(keys, _mm512_set1_epi32(hi)) | _mm512_cmplt_epi32_mask(keys, _mm512_set1_epi32(lo));
        return _mm512_mask_mov_ps(x, hidden, _mm512_set1_ps(-INFINITY));
    }
    // W elements i.. of a cache row as f32 (int8 without its scale).
    template <si_dtype D>
    SI_PA_TARGET static V load_row(const void* row, int64_t i) {
        if constexpr (D == SI_DTYPE_I8) {
            const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const int8_t*>(row) + i));
            return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q));
        } else {
            return simd::load16<D>(row, i);
        }
    }
    template <si_dtype D>
    SI_PA_TARGET static V load_row_n(const void* row, int64_t i, int32_t n) {
        if constexpr (D == SI_DTYPE_I8) {
            const __m128i q = _mm_maskz_loadu_epi8(simd::tail_mask16(n), static_cast<const int8_t*>(row) + i);
            return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q));
        } else {
            return simd::load16_masked<D>(row, i, simd::tail_mask16(n));
        }
    }
};
#elif SI_CPU_PAGED_ATTENTION_ISA == 1
struct Simd {
    using V = __m256;
    static constexpr int32_t W = 8;
    static constexpr int32_t kQkMaxRowVectors = 2;  // 16 registers: 2 row vectors x 6 keys
    static constexpr int32_t kPvMaxVectors = 3;     // 4 rows x 3 vectors
    static constexpr int32_t kDecodeAccumulators = 12;
    SI_PA_TARGET static V zero() { return _mm256_setzero_ps(); }
    SI_PA_TARGET static V set1(float x) { return _mm256_set1_ps(x); }
    SI_PA_TARGET static V load(const float* p) { return _mm256_loadu_ps(p); }
    SI_PA_TARGET static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
    SI_PA_TARGET static V load_n(const float* p, int32_t n) { return _mm256_maskload_ps(p, simd::tail_mask8(n)); }
    SI_PA_TARGET static void store_n(float* p, V v, int32_t n) { _mm256_maskstore_ps(p, simd::tail_mask8(n), v); }
    SI_PA_TARGET static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    SI_PA_TARGET static V add(V a, V b) { return _mm256_add_ps(a, b); }
    SI_PA_TARGET static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
    SI_PA_TARGET static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    SI_PA_TARGET static V div(V a, V b) { return _mm256_div_ps(a, b); }
    SI_PA_TARGET static V max(V a, V b) { return _mm256_max_ps(a, b); }
    SI_PA_TARGET static V exp(V x) { return simd::exp256(x); }
    SI_PA_TARGET static float hsum(V v) { return simd::hsum256(v); }
    SI_PA_TARGET static float hmax(V v) { return simd::hmax256(v); }
    SI_PA_TARGET static V zero_if_neg_inf(V x) {
        return _mm256_blendv_ps(x, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ));
    }
    SI_PA_TARGET static V mask_rows(V x, int32_t key, const int32_t* hi, const int32_t* lo) {
        const __m256i k = _mm256_set1_epi32(key);
        const __m256i hidden = _mm256_or_si256(_mm256_cmpgt_epi32(k, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi))),
                                               _mm256_cmpgt_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo)), k));
        return _mm256_blendv_ps(x, _mm256_set1_ps(-INFINITY), _mm256_castsi256_ps(hidden));
    }
    SI_PA_TARGET static V mask_keys(V x, int32_t key0, int32_t hi, int32_t lo) {
        const __m256i keys = _mm256_add_epi32(_mm256_set1_epi32(key0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const __m256i hidden = _mm256_or_si256(_mm256_cmpgt_epi32(keys, _mm256_set1_epi32(hi)), _mm256_cmpgt_epi32(_mm256_set1_epi32(lo), keys));
        return _mm256_blendv_ps(x, _mm256_set1_ps(-INFINITY), _mm256_castsi256_ps(hidden));
    }
    template <si_dtype D>
    SI_PA_TARGET static V load_row(const void* row, int64_t i) {
        if constexpr (D == SI_DTYPE_I8) {
            const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const int8_t*>(row) + i));
            return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
        } else {
            return simd::load8<D>(row, i);
        }
    }
    // AVX2 has no byte-masked load: the tail goes through a small buffer.
    template <si_dtype D>
    SI_PA_TARGET static V load_row_n(const void* row, int64_t i, int32_t n) {
        if constexpr (D == SI_DTYPE_I8) {
            alignas(16) int8_t buffer[16] = {};
            std::memcpy(buffer, static_cast<const int8_t*>(row) + i, size_t(n));
            return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(buffer))));
        } else {
            return simd::load8_partial<D>(row, i, n);
        }
    }
};
#else
struct Simd {
    using V = float;
    static constexpr int32_t W = 1;
    static constexpr int32_t kQkMaxRowVectors = 2;
    static constexpr int32_t kPvMaxVectors = 3;
    static constexpr int32_t kDecodeAccumulators = 12;
    static V zero() { return 0.0f; }
    static V set1(float x) { return x; }
    static V load(const float* p) { return *p; }
    static void store(float* p, V v) { *p = v; }
    static V load_n(const float* p, int32_t n) { return n > 0 ? *p : 0.0f; }
    static void store_n(float* p, V v, int32_t n) {
        if (n > 0) *p = v;
    }
    static V fmadd(V a, V b, V c) { return std::fma(a, b, c); }
    static V add(V a, V b) { return a + b; }
    static V sub(V a, V b) { return a - b; }
    static V mul(V a, V b) { return a * b; }
    static V div(V a, V b) { return a / b; }
    static V max(V a, V b) { return a > b ? a : b; }
    static V exp(V x) { return std::exp(x); }
    static float hsum(V v) { return v; }
    static float hmax(V v) { return v; }
    static V zero_if_neg_inf(V x) { return x == -INFINITY ? 0.0f : x; }
    static V mask_rows(V x, int32_t key, const int32_t* hi, const int32_t* lo) { return key > *hi || key < *lo ? -INFINITY : x; }
    static V mask_keys(V x, int32_t key0, int32_t hi, int32_t lo) { return key0 > hi || key0 < lo ? -INFINITY : x; }
    template <si_dtype D>
    static V load_row(const void* row, int64_t i) {
        if constexpr (D == SI_DTYPE_I8) return float(static_cast<const int8_t*>(row)[i]);
        else return load_as_f32(row, D, i);
    }
    template <si_dtype D>
    static V load_row_n(const void* row, int64_t i, int32_t n) { return n > 0 ? load_row<D>(row, i) : 0.0f; }
};
#endif

using V = Simd::V;
constexpr int32_t W = Simd::W;

// ---- attention variants: the logit hook (the mask hook is the [lo, hi] key range) ---------

struct PlainLogits {
    static constexpr bool kIdentity = true;
    SI_PA_TARGET V operator()(V x) const { return x; }
};

// softcap * tanh(x / softcap), with tanh(y) = 1 - 2 / (exp(2y) + 1) (exp saturates, so the
// result stays in [-1, 1] for any y).
struct SoftcapLogits {
    static constexpr bool kIdentity = false;
    float cap;
    SI_PA_TARGET V operator()(V x) const {
        const V y = Simd::mul(x, Simd::set1(2.0f / cap));
        const V t = Simd::sub(Simd::set1(1.0f), Simd::div(Simd::set1(2.0f), Simd::add(Simd::exp(y), Simd::set1(1.0f))));
        return Simd::mul(Simd::set1(cap), t);
    }
};

// ---- tiled kernel ----------------------------------------------------------------------------

// S^T[k][rows v0*W ..] = sum_d K[k][d] * Q^T[d][rows], for NK keys and MV row vectors: the
// keys come from NK row pointers (broadcast), the rows are SIMD lanes.
template <int MV, int NK>
SI_PA_TARGET void qk_block(const float* qt, int32_t rows_pad, const float* const* kr, int32_t head_dim, float* s) {
    V acc[NK][MV];
#pragma GCC unroll 8
    for (int k = 0; k < NK; ++k)
#pragma GCC unroll 4
        for (int v = 0; v < MV; ++v) acc[k][v] = Simd::zero();
    const float* key[NK];
#pragma GCC unroll 8
    for (int k = 0; k < NK; ++k) key[k] = kr[k];
    for (int32_t d = 0; d < head_dim; ++d) {
        V q[MV];
#pragma GCC unroll 4
        for (int v = 0; v < MV; ++v) q[v] = Simd::load(qt + int64_t(d) * rows_pad + v * W);
#pragma GCC unroll 8
        for (int k = 0; k < NK; ++k) {
            const V b = Simd::set1(key[k][d]);
#pragma GCC unroll 4
            for (int v = 0; v < MV; ++v) acc[k][v] = Simd::fmadd(q[v], b, acc[k][v]);
        }
    }
#pragma GCC unroll 8
    for (int k = 0; k < NK; ++k)
#pragma GCC unroll 4
        for (int v = 0; v < MV; ++v) Simd::store(s + int64_t(k) * rows_pad + v * W, acc[k][v]);
}

// Scores for n_keys keys (kr padded to a multiple of the block) and every row vector.
template <int MV>
SI_PA_TARGET void qk_rows(const float* qt, int32_t rows_pad, int32_t v0, const float* const* kr, int32_t n_keys, int32_t head_dim, float* s) {
    constexpr int NK = MV >= 4 ? 6 : (MV == 3 ? 8 : (W == 16 ? 8 : 6));
    for (int32_t j = 0; j < n_keys; j += NK) qk_block<MV, NK>(qt + v0 * W, rows_pad, kr + j, head_dim, s + int64_t(j) * rows_pad + v0 * W);
}

SI_PA_TARGET void qk_tile(const float* qt, int32_t rows_pad, const float* const* kr, int32_t n_keys, int32_t head_dim, float* s) {
    const int32_t n_vectors = rows_pad / W;
    for (int32_t v0 = 0; v0 < n_vectors;) {
        const int32_t mv = std::min(Simd::kQkMaxRowVectors, n_vectors - v0);
        switch (mv) {
            case 4: if constexpr (Simd::kQkMaxRowVectors >= 4) qk_rows<4>(qt, rows_pad, v0, kr, n_keys, head_dim, s); break;
            case 3: if constexpr (Simd::kQkMaxRowVectors >= 3) qk_rows<3>(qt, rows_pad, v0, kr, n_keys, head_dim, s); break;
            case 2: qk_rows<2>(qt, rows_pad, v0, kr, n_keys, head_dim, s); break;
            default: qk_rows<1>(qt, rows_pad, v0, kr, n_keys, head_dim, s); break;
        }
        v0 += mv;
    }
}

// O[r0 .. r0+4][d0 .. d0 + DV*W] = O * alpha + sum_j P^T[j][r] V[j][d], all in registers.
template <int DV>
SI_PA_TARGET void pv_block(const float* s, int32_t rows_pad, int32_t r0, const float* const* vr, int32_t n_keys, int32_t d0,
                           const float* alpha, float* o, int32_t dpad) {
    constexpr int R = 4;
    V acc[R][DV];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
        const V a = Simd::set1(alpha[r0 + r]);
#pragma GCC unroll 8
        for (int v = 0; v < DV; ++v) acc[r][v] = Simd::mul(Simd::load(o + int64_t(r0 + r) * dpad + d0 + v * W), a);
    }
    const float* p = s + r0;
    for (int32_t j = 0; j < n_keys; ++j, p += rows_pad) {
        const float* row = vr[j] + d0;
        V x[DV];
#pragma GCC unroll 8
        for (int v = 0; v < DV; ++v) x[v] = Simd::load(row + v * W);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
            const V w = Simd::set1(p[r]);
#pragma GCC unroll 8
            for (int v = 0; v < DV; ++v) acc[r][v] = Simd::fmadd(w, x[v], acc[r][v]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < DV; ++v) Simd::store(o + int64_t(r0 + r) * dpad + d0 + v * W, acc[r][v]);
}

SI_PA_TARGET void pv_tile(const float* s, int32_t rows_pad, const float* const* vr, int32_t n_keys, const float* alpha, float* o, int32_t dpad) {
    // head_dim in blocks of at most kPvMaxVectors vectors, as even as possible; the d-block
    // loop is outside so a block's slice of the V tile stays in L1 for all rows.
    const int32_t n_vectors = dpad / W;
    const int32_t n_blocks = (n_vectors + Simd::kPvMaxVectors - 1) / Simd::kPvMaxVectors;
    int32_t d0 = 0;
    for (int32_t b = 0; b < n_blocks; ++b) {
        const int32_t dv = n_vectors / n_blocks + (b < n_vectors % n_blocks ? 1 : 0);
        for (int32_t r0 = 0; r0 < rows_pad; r0 += 4) {
            switch (dv) {
                case 6: if constexpr (Simd::kPvMaxVectors >= 6) pv_block<6>(s, rows_pad, r0, vr, n_keys, d0, alpha, o, dpad); break;
                case 5: if constexpr (Simd::kPvMaxVectors >= 5) pv_block<5>(s, rows_pad, r0, vr, n_keys, d0, alpha, o, dpad); break;
                case 4: if constexpr (Simd::kPvMaxVectors >= 4) pv_block<4>(s, rows_pad, r0, vr, n_keys, d0, alpha, o, dpad); break;
                case 3: pv_block<3>(s, rows_pad, r0, vr, n_keys, d0, alpha, o, dpad); break;
                case 2: pv_block<2>(s, rows_pad, r0, vr, n_keys, d0, alpha, o, dpad); break;
                default: pv_block<1>(s, rows_pad, r0, vr, n_keys, d0, alpha, o, dpad); break;
            }
        }
        d0 += dv * W;
    }
}

// One cache row as f32 into dst[0, dpad), zero padded; int8 rows are scaled.
template <si_dtype D>
SI_PA_TARGET void convert_row(const void* row, float scale, int32_t head_dim, int32_t dpad, float* dst) {
    const int32_t full = head_dim / W * W;
    const V sv = Simd::set1(scale);
    for (int32_t d = 0; d < full; d += W) {
        const V x = Simd::template load_row<D>(row, d);
        Simd::store(dst + d, D == SI_DTYPE_I8 ? Simd::mul(x, sv) : x);
    }
    if (full < dpad) {
        const V x = Simd::template load_row_n<D>(row, full, head_dim - full);
        Simd::store(dst + full, D == SI_DTYPE_I8 ? Simd::mul(x, sv) : x);
    }
}

// Writes the finished rows of an item: out = O / sum, or the partial (O, max, sum).
inline void finish_rows(const Plan& plan, const Item& it, const float* o, int32_t o_stride, const float* m, const float* l) {
    const si_paged_attention_params& p = *plan.p;
    const SeqInfo& seq = plan.seqs[size_t(it.seq)];
    const int32_t dim = plan.head_dim;
    for (int32_t r = 0; r < it.row_end - it.row_begin; ++r) {
        const int32_t row = it.row_begin + r;
        const int32_t token = row / plan.group;
        const int32_t head = it.kv_head * plan.group + row % plan.group;
        const float* src = o + int64_t(r) * o_stride;
        if (seq.n_splits > 1) {
            float* part = partial_at(plan, seq, token, head, it.split);
            std::memcpy(part, src, size_t(dim) * sizeof(float));
            part[dim] = m[r];
            part[dim + 1] = l[r];
        } else {
            float* out = p.out + (seq.q_begin + token) * p.out_stride + int64_t(head) * dim;
            const float inv_sum = 1.0f / l[r];
            for (int32_t d = 0; d < dim; ++d) out[d] = src[d] * inv_sum;
        }
    }
}

template <si_dtype D, typename Logits>
SI_PA_TARGET void tiled_item(const Plan& plan, const Item& it, void* scratch, const Logits& logits) {
    const si_paged_attention_params& p = *plan.p;
    const si_paged_kv& c = p.cache;
    const SeqInfo& seq = plan.seqs[size_t(it.seq)];
    const int32_t dim = c.head_dim, group = plan.group;
    const int32_t n_rows = it.row_end - it.row_begin;
    const int32_t rows_pad = round_up(n_rows, std::max<int32_t>(W, 4));  // PV works on 4 rows at a time
    const int32_t dpad = round_up(dim, W);
    // Plain f32 rows whose length is a whole number of vectors are used in place.
    const bool in_place = D == SI_DTYPE_F32 && dim % W == 0;
    Bump bump{static_cast<char*>(scratch)};
    const TileScratch t = TileScratch::take(bump, dim, rows_pad, dpad);

    // Rows: positions, visible key ranges, Q^T * scale. Padding rows copy the last row's
    // range and have Q = 0: they compute finite values nobody reads.
    const int32_t window = p.variant.sliding_window;
    for (int32_t r = 0; r < rows_pad; ++r) {
        const int32_t row = it.row_begin + std::min(r, n_rows - 1);
        const int32_t pos = seq.context - seq.q_len + row / group;
        t.hi[r] = pos;
        t.lo[r] = window > 0 ? pos - window + 1 : 0;
        if (r < n_rows) {
            const float* q = p.q + (seq.q_begin + row / group) * p.q_stride + int64_t(it.kv_head * group + row % group) * dim;
            for (int32_t d = 0; d < dim; ++d) t.qt[int64_t(d) * rows_pad + r] = q[d] * p.scale;
        } else {
            for (int32_t d = 0; d < dim; ++d) t.qt[int64_t(d) * rows_pad + r] = 0.0f;
        }
        t.m[r] = -INFINITY;
        t.l[r] = 0.0f;
    }
    std::memset(t.o, 0, sizeof(float) * size_t(rows_pad) * size_t(dpad));

    const int32_t* table = p.block_tables + int64_t(it.seq) * p.max_blocks_per_seq;
    const int32_t first = std::max(it.key_begin, t.lo[0]);
    const int32_t last = std::min(it.key_end, t.hi[n_rows - 1] + 1);  // exclusive
    for (int32_t tile = first - first % kKeyTile; tile < last; tile += kKeyTile) {
        const int32_t ta = std::max(tile, first), tb = std::min(tile + kKeyTile, last);
        const int32_t n_keys = tb - ta;
        for (int32_t j = 0; j < n_keys; ++j) {
            const int64_t row = cache_row(c, table, ta + j, it.kv_head);
            if (in_place) {
                t.kr[j] = static_cast<const float*>(c.k_pool) + row * dim;
                t.vr[j] = static_cast<const float*>(c.v_pool) + row * dim;
            } else {
                const int64_t offset = row * dim * int64_t(dtype_size(D));
                const float k_scale = D == SI_DTYPE_I8 ? c.k_scale[row] : 1.0f;
                const float v_scale = D == SI_DTYPE_I8 ? c.v_scale[row] : 1.0f;
                convert_row<D>(static_cast<const char*>(c.k_pool) + offset, k_scale, dim, dpad, t.kp + int64_t(j) * dpad);
                convert_row<D>(static_cast<const char*>(c.v_pool) + offset, v_scale, dim, dpad, t.vp + int64_t(j) * dpad);
                t.kr[j] = t.kp + int64_t(j) * dpad;
                t.vr[j] = t.vp + int64_t(j) * dpad;
            }
        }
        for (int32_t j = n_keys; j < n_keys + kMaxQkKeys; ++j) t.kr[j] = t.kr[n_keys - 1];  // block padding

        qk_tile(t.qt, rows_pad, t.kr, n_keys, dim, t.s);

        // Logit hook, then the mask where some row cannot see some key of the tile (hi and
        // lo grow with the row, so the first and last rows bound them).
        const bool all_visible = tb - 1 <= t.hi[0] && ta >= t.lo[rows_pad - 1];
        if (!Logits::kIdentity || !all_visible) {
            for (int32_t j = 0; j < n_keys; ++j) {
                for (int32_t r = 0; r < rows_pad; r += W) {
                    float* x = t.s + int64_t(j) * rows_pad + r;
                    V v = logits(Simd::load(x));
                    if (!all_visible) v = Simd::mask_rows(v, ta + j, t.hi + r, t.lo + r);
                    Simd::store(x, v);
                }
            }
        }

        // Online softmax, one row vector at a time: new max, rescale factor, probabilities.
        for (int32_t r = 0; r < rows_pad; r += W) {
            V tile_max = Simd::set1(-INFINITY);
            for (int32_t j = 0; j < n_keys; ++j) tile_max = Simd::max(tile_max, Simd::load(t.s + int64_t(j) * rows_pad + r));
            const V old_max = Simd::load(t.m + r);
            const V new_max = Simd::max(old_max, tile_max);
            const V shift = Simd::zero_if_neg_inf(new_max);
            const V alpha = Simd::exp(Simd::sub(old_max, shift));
            V sum = Simd::zero();
            for (int32_t j = 0; j < n_keys; ++j) {
                float* x = t.s + int64_t(j) * rows_pad + r;
                const V e = Simd::exp(Simd::sub(Simd::load(x), shift));
                Simd::store(x, e);
                sum = Simd::add(sum, e);
            }
            Simd::store(t.l + r, Simd::fmadd(Simd::load(t.l + r), alpha, sum));
            Simd::store(t.m + r, new_max);
            Simd::store(t.alpha + r, alpha);
        }

        pv_tile(t.s, rows_pad, t.vr, n_keys, t.alpha, t.o, dpad);
    }
    finish_rows(plan, it, t.o, dpad, t.m, t.l);
}

// ---- decode kernel ---------------------------------------------------------------------------

// O[r][d0 .. d0 + DV*W] = O * alpha + sum_j P[r][j] V[j][d] for R rows, V rows read from the
// cache and converted in registers (tail: the last vector of the row is partial).
template <si_dtype D, int R, int DV>
SI_PA_TARGET void decode_pv_block(const DecodeScratch& t, int32_t n_keys, int32_t d0, int32_t tail, int32_t dpad) {
    V acc[R][DV];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        const V a = Simd::set1(t.alpha[r]);
#pragma GCC unroll 8
        for (int v = 0; v < DV; ++v) acc[r][v] = Simd::mul(Simd::load(t.o + int64_t(r) * dpad + d0 + v * W), a);
    }
    for (int32_t j = 0; j < n_keys; ++j) {
        const uint8_t* row = t.vr[j];
        V x[DV];
#pragma GCC unroll 8
        for (int v = 0; v < DV; ++v)
            x[v] = (v == DV - 1 && tail) ? Simd::template load_row_n<D>(row, d0 + v * W, tail) : Simd::template load_row<D>(row, d0 + v * W);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const V w = Simd::set1(t.s[int64_t(r) * DecodeScratch::kScoreStride + j]);
#pragma GCC unroll 8
            for (int v = 0; v < DV; ++v) acc[r][v] = Simd::fmadd(w, x[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < DV; ++v) Simd::store(t.o + int64_t(r) * dpad + d0 + v * W, acc[r][v]);
}

template <si_dtype D, int R>
SI_PA_TARGET void decode_pv(const DecodeScratch& t, int32_t n_keys, int32_t head_dim, int32_t dpad) {
    constexpr int kMaxDv = std::max(1, std::min(8, Simd::kDecodeAccumulators / R));
    const int32_t n_vectors = dpad / W;
    const int32_t n_blocks = (n_vectors + kMaxDv - 1) / kMaxDv;
    const int32_t row_tail = head_dim % W;
    int32_t d0 = 0;
    for (int32_t b = 0; b < n_blocks; ++b) {
        const int32_t dv = n_vectors / n_blocks + (b < n_vectors % n_blocks ? 1 : 0);
        const int32_t tail = b == n_blocks - 1 ? row_tail : 0;
        switch (dv) {
            case 8: if constexpr (kMaxDv >= 8) decode_pv_block<D, R, 8>(t, n_keys, d0, tail, dpad); break;
            case 7: if constexpr (kMaxDv >= 7) decode_pv_block<D, R, 7>(t, n_keys, d0, tail, dpad); break;
            case 6: if constexpr (kMaxDv >= 6) decode_pv_block<D, R, 6>(t, n_keys, d0, tail, dpad); break;
            case 5: if constexpr (kMaxDv >= 5) decode_pv_block<D, R, 5>(t, n_keys, d0, tail, dpad); break;
            case 4: if constexpr (kMaxDv >= 4) decode_pv_block<D, R, 4>(t, n_keys, d0, tail, dpad); break;
            case 3: if constexpr (kMaxDv >= 3) decode_pv_block<D, R, 3>(t, n_keys, d0, tail, dpad); break;
            case 2: if constexpr (kMaxDv >= 2) decode_pv_block<D, R, 2>(t, n_keys, d0, tail, dpad); break;
            default: decode_pv_block<D, R, 1>(t, n_keys, d0, tail, dpad); break;
        }
        d0 += dv * W;
    }
}

template <si_dtype D, int R, typename Logits>
SI_PA_TARGET void decode_item(const Plan& plan, const Item& it, void* scratch, const Logits& logits) {
    const si_paged_attention_params& p = *plan.p;
    const si_paged_kv& c = p.cache;
    const SeqInfo& seq = plan.seqs[size_t(it.seq)];
    const int32_t dim = c.head_dim, group = plan.group;
    const int32_t n_rows = it.row_end - it.row_begin;  // <= R; rows past it repeat the last
    const int32_t dpad = round_up(dim, W);
    const int32_t full = dim / W * W, tail = dim - full;
    Bump bump{static_cast<char*>(scratch)};
    const DecodeScratch t = DecodeScratch::take(bump, R, dpad);

    const int32_t window = p.variant.sliding_window;
    for (int32_t r = 0; r < R; ++r) {
        const int32_t row = it.row_begin + std::min(r, n_rows - 1);
        const int32_t pos = seq.context - seq.q_len + row / group;
        t.hi[r] = pos;
        t.lo[r] = window > 0 ? pos - window + 1 : 0;
        const float* q = p.q + (seq.q_begin + row / group) * p.q_stride + int64_t(it.kv_head * group + row % group) * dim;
        for (int32_t d = 0; d < dpad; ++d) t.q[int64_t(r) * dpad + d] = d < dim ? q[d] * p.scale : 0.0f;
        t.m[r] = -INFINITY;
        t.l[r] = 0.0f;
    }
    std::memset(t.o, 0, sizeof(float) * size_t(R) * size_t(dpad));

    const int32_t* table = p.block_tables + int64_t(it.seq) * p.max_blocks_per_seq;
    const int64_t row_bytes = int64_t(dim) * dtype_size(D);
    const int32_t first = std::max(it.key_begin, t.lo[0]);
    const int32_t last = std::min(it.key_end, t.hi[n_rows - 1] + 1);  // exclusive
    for (int32_t tile = first - first % kKeyTile; tile < last; tile += kKeyTile) {
        const int32_t ta = std::max(tile, first), tb = std::min(tile + kKeyTile, last);
        const int32_t n_keys = tb - ta;
        for (int32_t j = 0; j < n_keys; ++j) {
            const int64_t row = cache_row(c, table, ta + j, it.kv_head);
            t.kr[j] = static_cast<const uint8_t*>(c.k_pool) + row * row_bytes;
            t.vr[j] = static_cast<const uint8_t*>(c.v_pool) + row * row_bytes;
            if (D == SI_DTYPE_I8) {
                t.k_scale[j] = c.k_scale[row];
                t.v_scale[j] = c.v_scale[row];
            }
        }
        if (D == SI_DTYPE_I8)
            for (int32_t j = n_keys; j < DecodeScratch::kScoreStride; ++j) t.v_scale[j] = 0.0f;

        // Scores: each K row is loaded once for all R rows; an int8 key's scale multiplies
        // its dot product instead of each element.
        for (int32_t j = 0; j < n_keys; ++j) {
            const uint8_t* key = t.kr[j];
            V acc[R];
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) acc[r] = Simd::zero();
            for (int32_t d = 0; d < full; d += W) {
                const V k = Simd::template load_row<D>(key, d);
#pragma GCC unroll 8
                for (int r = 0; r < R; ++r) acc[r] = Simd::fmadd(Simd::load(t.q + int64_t(r) * dpad + d), k, acc[r]);
            }
            if (tail) {
                const V k = Simd::template load_row_n<D>(key, full, tail);
#pragma GCC unroll 8
                for (int r = 0; r < R; ++r) acc[r] = Simd::fmadd(Simd::load(t.q + int64_t(r) * dpad + full), k, acc[r]);
            }
            const float key_scale = D == SI_DTYPE_I8 ? t.k_scale[j] : 1.0f;
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) t.s[int64_t(r) * DecodeScratch::kScoreStride + j] = Simd::hsum(acc[r]) * key_scale;
        }

        // Per row: logit hook, mask (also hides the lanes past the tile), online softmax.
        for (int r = 0; r < R; ++r) {
            float* s = t.s + int64_t(r) * DecodeScratch::kScoreStride;
            const int32_t hi = std::min(t.hi[r], tb - 1);
            V tile_max = Simd::set1(-INFINITY);
            for (int32_t j = 0; j < n_keys; j += W) {
                const V v = Simd::mask_keys(logits(Simd::load(s + j)), ta + j, hi, t.lo[r]);
                Simd::store(s + j, v);
                tile_max = Simd::max(tile_max, v);
            }
            const float new_max = std::max(t.m[r], Simd::hmax(tile_max));
            const float shift = new_max == -INFINITY ? 0.0f : new_max;
            const V shift_v = Simd::set1(shift);
            V sum = Simd::zero();
            for (int32_t j = 0; j < n_keys; j += W) {
                V e = Simd::exp(Simd::sub(Simd::load(s + j), shift_v));
                sum = Simd::add(sum, e);
                // An int8 value's scale multiplies its weight instead of each element.
                if (D == SI_DTYPE_I8) e = Simd::mul(e, Simd::load(t.v_scale + j));
                Simd::store(s + j, e);
            }
            t.alpha[r] = std::exp(t.m[r] - shift);
            t.l[r] = t.l[r] * t.alpha[r] + Simd::hsum(sum);
            t.m[r] = new_max;
        }

        decode_pv<D, R>(t, n_keys, dim, dpad);
    }
    finish_rows(plan, it, t.o, dpad, t.m, t.l);
}

// ---- dispatch ------------------------------------------------------------------------------

template <si_dtype D, typename Logits>
SI_PA_TARGET void run_item_as(const Plan& plan, const Item& it, void* scratch, const Logits& logits) {
    if (!plan.seqs[size_t(it.seq)].decode) return tiled_item<D>(plan, it, scratch, logits);
    const int32_t rows = it.row_end - it.row_begin;
    if (rows <= 1) return decode_item<D, 1>(plan, it, scratch, logits);
    if (rows <= 2) return decode_item<D, 2>(plan, it, scratch, logits);
    if (rows <= 4) return decode_item<D, 4>(plan, it, scratch, logits);
    return decode_item<D, 8>(plan, it, scratch, logits);
}

template <si_dtype D>
SI_PA_TARGET void run_item_dtype(const Plan& plan, const Item& it, void* scratch) {
    const float softcap = plan.p->variant.logit_softcap;
    if (softcap > 0.0f) run_item_as<D>(plan, it, scratch, SoftcapLogits{softcap});
    else run_item_as<D>(plan, it, scratch, PlainLogits{});
}

void run_item(const Plan& plan, const Item& it, void* scratch) {
    switch (plan.p->cache.dtype) {
        case SI_DTYPE_F16: run_item_dtype<SI_DTYPE_F16>(plan, it, scratch); break;
        case SI_DTYPE_BF16: run_item_dtype<SI_DTYPE_BF16>(plan, it, scratch); break;
        case SI_DTYPE_I8: run_item_dtype<SI_DTYPE_I8>(plan, it, scratch); break;
        default: run_item_dtype<SI_DTYPE_F32>(plan, it, scratch); break;
    }
}

}  // namespace si::cpu::paged::SI_PA_NS

#undef SI_PA_NS
#undef SI_PA_TARGET

#endif  // SI_CPU_PAGED_ATTENTION_ISA
