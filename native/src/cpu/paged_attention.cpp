// paged_attention.cpp (cpu): causal attention of a batch of sequences over the paged KV
// cache, threaded over cost-sorted work items, with SIMD inner loops for AVX-512, AVX2 and
// scalar code chosen at run time.
//
// Rows. The rows of a (sequence, kv head) pair are its (query token, query head) pairs for
// the query heads of that kv head's GQA group, token-major: row r is token r / G, head
// kv_head * G + r % G. Every kernel processes all rows of a group together, so the heads of
// a group share each K/V load. Two kernels, chosen per sequence:
//  - tiled (FlashAttention-style) when a sequence has more than kDecodeMaxRows rows per kv
//    head. An item is (kv head, tile of up to 64 rows (32 when head_dim > 128), key range);
//    rows are SIMD lanes. Per tile of kKeyTile keys it converts K/V to an f32 tile, computes
//    S^T = K Q^T into a [keys][rows] buffer that stays in L1 (a 4-row-vector x 6-key register
//    block on AVX-512), applies the logit hook and mask, updates each row's running max and
//    sum (online softmax; lanes are rows, so no horizontal reductions) and accumulates
//    O[rows][head_dim] += P^T V (4 rows x up to 6 vectors of head_dim in registers). The
//    full score matrix never exists; Q^T, O and the K/V tile stay in L2.
//  - decode when a sequence has at most kDecodeMaxRows rows per kv head (decode steps,
//    short chunks with small groups). An item is (range of up to kDecodeMaxHeads kv heads,
//    key range); head_dim is the SIMD axis and K/V rows are read straight from the cache,
//    converted (f16/bf16) or dequantized (int8: the scales fold into the scores and the
//    weights) in registers. Keys are visited key-major across the item's heads, so each
//    cache block (which stores a token's kv heads side by side) is read front to back.
//    Per tile: scores (K), softmax, PV (V). Each phase's rows are software-prefetched during
//    the phase before, a few lines per inner step (the tile's V during its scores, the next
//    tile's K and int8 scales during its scores/PV), so DRAM stays busy through both phases;
//    only the first tile's K is fetched in a burst. (Prefetching only during the scores
//    phase, a fixed number of keys ahead, left memory idle during PV: half the bandwidth.
//    Starting the next tile's K already during the scores, fewer kv heads per item and L2
//    instead of L1 hints all measured slower or no faster.)
// Split-K (flash-decoding). A sequence with q_len <= kSplitMaxQ and more than kSplitKeys
// keys is split into ceil(context / kSplitKeys) key ranges of kSplitKeys keys; each range is
// its own item writing a partial (unnormalized O, max, sum) per row to the caller's
// workspace, and a second phase merges a row's partials in split order (common/kv_quant.h).
// Whether and where a sequence splits depends on its own q_len and context length only, so
// results never depend on the batch or the thread count (batch invariance); the batch size
// and thread count only decide scheduling (how many kv heads a decode item covers, which
// thread runs which item), which never changes a row's arithmetic.
// Workspace bytes = 4 * sum over split sequences of q_len * n_heads * n_splits * (head_dim + 2).
//
// Determinism. Key tiles start at multiples of kKeyTile (absolute positions), splits at
// multiples of kSplitKeys, each row's arithmetic is independent of the other rows of its
// item, and partials merge in a fixed order, so every output has the same bits for any batch
// composition and thread count.
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
constexpr int32_t kDecodeMaxHeads = 8;  // kv heads per decode item
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
    int32_t kv_head, kv_head_end;  // kv heads [kv_head, kv_head_end): one for tiled items
    int32_t row_begin, row_end;    // rows of (seq, each kv head), see the file comment
    int32_t key_begin, key_end;    // keys considered (before masking)
    int32_t split;                 // split index; its partial goes to the workspace when n_splits > 1
    int64_t cost;                  // estimated multiply-adds, for scheduling
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
    float* kp;      // [kKeyTile][dpad]: K tile as f32
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

// Scratch of the decode kernel for H kv heads of R <= kDecodeMaxRows rows each.
struct DecodeScratch {
    static constexpr int32_t kScoreStride = kKeyTile + kMaxLanes;  // room for full-vector loads
    float* q;        // [H * R][dpad]: Q * scale, zero padded
    float* o;        // [H * R][dpad]
    float* s;        // per head [kScoreStride / KG groups][R * KG]: see decode_item
    float* k_scale;  // [H][kScoreStride] int8 scales of the tile's keys
    float* v_scale;  // [H][kScoreStride]
    int32_t* hi;     // [R] (a row's keys depend on its token only)
    int32_t* lo;     // [R]
    int32_t* lane_hi;   // [R * KG] hi of each score lane's row, capped to the tile
    int32_t* lane_lo;   // [R * KG]
    int32_t* lane_key;  // [R * KG] key offset of each lane inside its group
    float* lane_tmp;    // [R * KG]
    float* m;        // [H * R]
    float* l;        // [H * R]
    float* alpha;    // [H * R]
    const uint8_t** kr;  // [kKeyTile + kMaxLanes] row of each key of the tile for the item's first kv head
    const uint8_t** vr;  // [kKeyTile]
    int64_t* rows;       // [kKeyTile] cache row index (see KeyCursor::row) of each key of the tile
    int64_t* next_rows;  // [kKeyTile] the same for the next tile

    static DecodeScratch take(Bump& b, int32_t heads, int32_t rows, int32_t dpad) {
        DecodeScratch t;
        const size_t head_rows = size_t(heads) * size_t(rows);
        t.q = b.take<float>(head_rows * dpad);
        t.o = b.take<float>(head_rows * dpad);
        t.s = b.take<float>(head_rows * kScoreStride);
        t.k_scale = b.take<float>(size_t(heads) * kScoreStride);
        t.v_scale = b.take<float>(size_t(heads) * kScoreStride);
        t.hi = b.take<int32_t>(size_t(rows));
        t.lo = b.take<int32_t>(size_t(rows));
        const size_t lanes = size_t(std::max(rows, kMaxLanes));  // R * KG is max(R, W)
        t.lane_hi = b.take<int32_t>(lanes);
        t.lane_lo = b.take<int32_t>(lanes);
        t.lane_key = b.take<int32_t>(lanes);
        t.lane_tmp = b.take<float>(lanes);
        t.m = b.take<float>(head_rows);
        t.l = b.take<float>(head_rows);
        t.alpha = b.take<float>(head_rows);
        t.kr = b.take<const uint8_t*>(size_t(kKeyTile + kMaxLanes));
        t.vr = b.take<const uint8_t*>(size_t(kKeyTile));
        t.rows = b.take<int64_t>(size_t(kKeyTile));
        t.next_rows = b.take<int64_t>(size_t(kKeyTile));
        return t;
    }
};

// Bytes of scratch any item of this plan needs on any ISA (padding for the widest one).
inline size_t scratch_bytes(const Plan& plan) {
    const int32_t dpad = round_up(plan.head_dim, kMaxLanes);
    Bump tiled{nullptr}, decode{nullptr};
    TileScratch::take(tiled, plan.head_dim, round_up(plan.tile_rows, kMaxLanes), dpad);
    DecodeScratch::take(decode, kDecodeMaxHeads, kDecodeMaxRows, dpad);
    return std::max(tiled.used, decode.used) + 64;
}

// Walks keys in order without a division per key: the block-table entry and slot of the
// current key.
struct KeyCursor {
    const int32_t* table;
    int32_t block_size;
    int32_t block;
    int32_t slot;
    KeyCursor(const int32_t* table_, int32_t block_size_, int32_t key)
        : table(table_), block_size(block_size_), block(key / block_size_), slot(key % block_size_) {}
    // Row index (for element offsets times head_dim, and for the int8 scales) of kv_head.
    int64_t row(int32_t n_kv_heads, int32_t kv_head) const {
        return (int64_t(table[block]) * block_size + slot) * n_kv_heads + kv_head;
    }
    void next() {
        if (++slot == block_size) {
            slot = 0;
            ++block;
        }
    }
};

// Software prefetch of a list of cache rows, a few lines per call, so the fetches of the
// next phase's K/V spread evenly over the current phase's arithmetic: blocks sit at random
// places, so the hardware prefetchers stop at every page and a burst would overflow the miss
// queues. Row i is [base + rows[i] * stride, + bytes).
struct PrefetchRows {
    const uint8_t* base = nullptr;
    const int64_t* rows = nullptr;
    int32_t n = 0;
    int64_t stride = 0, bytes = 0;
    int32_t i = 0;
    uintptr_t at = 0, end = 0;

    PrefetchRows() = default;
    PrefetchRows(const void* base_, const int64_t* rows_, int32_t n_, int64_t stride_, int64_t bytes_)
        : base(static_cast<const uint8_t*>(base_)), rows(rows_), n(n_), stride(stride_), bytes(bytes_) {
        if (n > 0) set(0);
    }
    void set(int32_t k) {
        const uintptr_t a = reinterpret_cast<uintptr_t>(base + rows[k] * stride);
        at = a & ~uintptr_t(63);
        end = a + uintptr_t(bytes);
    }
    // Lines of all rows (an upper bound: a row may straddle one more line).
    int64_t lines() const { return int64_t(n) * ((bytes + 63) / 64 + 1); }
    bool done() const { return i >= n; }
    void step(int32_t count) {
        for (; count > 0 && i < n; --count) {
            _mm_prefetch(reinterpret_cast<const char*>(at), _MM_HINT_T0);
            at += 64;
            if (at >= end && ++i < n) set(i);
        }
    }
    void all() {
        while (i < n) step(64);
    }
};

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

// Items: tiled sequences get one per (kv head, row tile, split); decode sequences one per
// (split, range of kv heads), where the range is as wide as parallelism allows (up to
// kDecodeMaxHeads) because a wide range streams each cache block contiguously. Neither
// choice changes any row's arithmetic, so both may depend on the thread count.
Plan make_plan(const si_paged_attention_params& p, int32_t threads) {
    Plan plan;
    plan.p = &p;
    plan.group = p.n_heads / p.cache.n_kv_heads;
    plan.head_dim = p.cache.head_dim;
    plan.tile_rows = tile_rows_for(p.cache.head_dim);
    plan.partials = static_cast<float*>(p.workspace);
    const int32_t n_kv = p.cache.n_kv_heads;
    const int32_t window = p.variant.sliding_window;
    int64_t partial_offset = 0, decode_units = 0, tiled_items = 0;
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
        if (seq.decode) decode_units += seq.n_splits;
        else tiled_items += int64_t(n_kv) * ((rows + plan.tile_rows - 1) / plan.tile_rows) * seq.n_splits;
    }
    int32_t heads_per_item = std::min(n_kv, kDecodeMaxHeads);
    while (heads_per_item > 1 && tiled_items + decode_units * ((n_kv + heads_per_item - 1) / heads_per_item) < 4 * int64_t(threads))
        heads_per_item = (heads_per_item + 1) / 2;

    for (int32_t s = 0; s < p.n_seqs; ++s) {
        const SeqInfo& seq = plan.seqs[size_t(s)];
        if (seq.q_len == 0) continue;
        const int32_t rows = seq.q_len * plan.group;
        const int32_t row_step = seq.decode ? rows : plan.tile_rows;
        const int32_t head_step = seq.decode ? heads_per_item : 1;
        for (int32_t kv_head = 0; kv_head < n_kv; kv_head += head_step) {
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
                    item.kv_head_end = std::min(n_kv, kv_head + head_step);
                    item.row_begin = row;
                    item.row_end = row_end;
                    item.key_begin = seq.n_splits > 1 ? split * kSplitKeys : 0;
                    item.key_end = seq.n_splits > 1 ? std::min(seq.context, (split + 1) * kSplitKeys) : seq.context;
                    item.split = split;
                    const int64_t keys = std::max(0, std::min(item.key_end, last_pos + 1) - std::max(item.key_begin, first_key));
                    // The decode kernel does about twice the work per row and key (horizontal
                    // sums, no lane sharing); every item pays a fixed start-up cost.
                    const int64_t head_rows = int64_t(row_end - row) * (item.kv_head_end - item.kv_head);
                    item.cost = (keys * head_rows * (seq.decode ? 2 : 1) + 256) * plan.head_dim;
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

si_result paged_attention_workspace_size(const Env&, const si_paged_attention_params& p, int64_t* out_bytes) {
    *out_bytes = workspace_floats(p) * int64_t(sizeof(float));
    return SI_OK;
}

si_result paged_attention(const Env& env, const si_paged_attention_params& p) {
    const Plan plan = make_plan(p, env.pool.num_threads());
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
    // Lane i of the result = the sum of a[i]'s lanes, for 16 vectors: a transposing tree
    // (45 shuffles and adds instead of 16 separate horizontal sums).
    SI_PA_TARGET static V reduce_lanes(const V* a) {
        V pairs[8];
        for (int i = 0; i < 8; ++i) pairs[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
        V quads[4];  // per 128-bit lane: partial sums of a[4i .. 4i+3]
        for (int i = 0; i < 4; ++i)
            quads[i] = _mm512_add_ps(_mm512_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], 0x44), _mm512_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], 0xee));
        const V h01 = _mm512_add_ps(_mm512_shuffle_f32x4(quads[0], quads[1], 0x88), _mm512_shuffle_f32x4(quads[0], quads[1], 0xdd));
        const V h23 = _mm512_add_ps(_mm512_shuffle_f32x4(quads[2], quads[3], 0x88), _mm512_shuffle_f32x4(quads[2], quads[3], 0xdd));
        return _mm512_add_ps(_mm512_shuffle_f32x4(h01, h23, 0x88), _mm512_shuffle_f32x4(h01, h23, 0xdd));
    }
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
    // Lanes are (row, key) pairs: -inf where key_base + key[lane] lies outside [lo, hi].
    SI_PA_TARGET static V mask_lanes(V x, int32_t key_base, const int32_t* key, const int32_t* hi, const int32_t* lo) {
        const __m512i k = _mm512_add_epi32(_mm512_set1_epi32(key_base), _mm512_loadu_si512(key));
        const __mmask16 hidden = _mm512_cmpgt_epi32_mask(k, _mm512_loadu_si512(hi)) | _mm512_cmplt_epi32_mask(k, _mm512_loadu_si512(lo));
        return _mm512_mask_mov_ps(x, hidden, _mm512_set1_ps(-INFINITY));
    }
    // Lane i = p[i % KG].
    template <int KG>
    SI_PA_TARGET static V load_repeated(const float* p) {
        if constexpr (KG >= 16) return _mm512_loadu_ps(p);
        else if constexpr (KG == 8) return _mm512_broadcast_f32x8(_mm256_loadu_ps(p));
        else if constexpr (KG == 4) return _mm512_broadcast_f32x4(_mm_loadu_ps(p));
        else if constexpr (KG == 2) {
            double pair;
            std::memcpy(&pair, p, sizeof pair);
            return _mm512_castpd_ps(_mm512_set1_pd(pair));
        } else {
            return _mm512_set1_ps(*p);
        }
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
    // Lane i of the result = the sum of a[i]'s lanes, for 8 vectors.
    SI_PA_TARGET static V reduce_lanes(const V* a) {
        const V t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
        const V t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
        const V u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);  // per 128-bit half
        return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
    }
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
    SI_PA_TARGET static V mask_lanes(V x, int32_t key_base, const int32_t* key, const int32_t* hi, const int32_t* lo) {
        const __m256i k = _mm256_add_epi32(_mm256_set1_epi32(key_base), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(key)));
        const __m256i hidden = _mm256_or_si256(_mm256_cmpgt_epi32(k, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi))),
                                               _mm256_cmpgt_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo)), k));
        return _mm256_blendv_ps(x, _mm256_set1_ps(-INFINITY), _mm256_castsi256_ps(hidden));
    }
    template <int KG>
    SI_PA_TARGET static V load_repeated(const float* p) {
        if constexpr (KG >= 8) return _mm256_loadu_ps(p);
        else if constexpr (KG == 4) return _mm256_broadcast_ps(reinterpret_cast<const __m128*>(p));
        else if constexpr (KG == 2) {
            double pair;
            std::memcpy(&pair, p, sizeof pair);
            return _mm256_castpd_ps(_mm256_set1_pd(pair));
        } else {
            return _mm256_set1_ps(*p);
        }
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
    static V reduce_lanes(const V* a) { return a[0]; }
    static float hmax(V v) { return v; }
    static V zero_if_neg_inf(V x) { return x == -INFINITY ? 0.0f : x; }
    static V mask_rows(V x, int32_t key, const int32_t* hi, const int32_t* lo) { return key > *hi || key < *lo ? -INFINITY : x; }
    static V mask_keys(V x, int32_t key0, int32_t hi, int32_t lo) { return key0 > hi || key0 < lo ? -INFINITY : x; }
    static V mask_lanes(V x, int32_t key_base, const int32_t* key, const int32_t* hi, const int32_t* lo) {
        return key_base + *key > *hi || key_base + *key < *lo ? -INFINITY : x;
    }
    template <int KG>
    static V load_repeated(const float* p) { return *p; }
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
inline void finish_rows(const Plan& plan, const Item& it, int32_t kv_head, const float* o, int32_t o_stride, const float* m, const float* l) {
    const si_paged_attention_params& p = *plan.p;
    const SeqInfo& seq = plan.seqs[size_t(it.seq)];
    const int32_t dim = plan.head_dim;
    for (int32_t r = 0; r < it.row_end - it.row_begin; ++r) {
        const int32_t row = it.row_begin + r;
        const int32_t token = row / plan.group;
        const int32_t head = kv_head * plan.group + row % plan.group;
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
    const int64_t row_bytes = int64_t(dim) * dtype_size(D);
    const int32_t first = std::max(it.key_begin, t.lo[0]);
    const int32_t last = std::min(it.key_end, t.hi[n_rows - 1] + 1);  // exclusive
    KeyCursor cursor(table, c.block_size, first);
    for (int32_t tile = first - first % kKeyTile; tile < last; tile += kKeyTile) {
        const int32_t ta = std::max(tile, first), tb = std::min(tile + kKeyTile, last);
        const int32_t n_keys = tb - ta;
        for (int32_t j = 0; j < n_keys; ++j, cursor.next()) {
            // Always copied into the tile, even f32: rows of one kv head sit n_kv_heads *
            // head_dim apart in the pool, often a multiple of 4 KiB, and read in place they
            // would compete for a few cache sets.
            const int64_t row = cursor.row(c.n_kv_heads, it.kv_head);
            const int64_t offset = row * row_bytes;
            const float k_scale = D == SI_DTYPE_I8 ? c.k_scale[row] : 1.0f;
            const float v_scale = D == SI_DTYPE_I8 ? c.v_scale[row] : 1.0f;
            convert_row<D>(static_cast<const char*>(c.k_pool) + offset, k_scale, dim, dpad, t.kp + int64_t(j) * dpad);
            convert_row<D>(static_cast<const char*>(c.v_pool) + offset, v_scale, dim, dpad, t.vp + int64_t(j) * dpad);
            t.kr[j] = t.kp + int64_t(j) * dpad;
            t.vr[j] = t.vp + int64_t(j) * dpad;
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
    finish_rows(plan, it, it.kv_head, t.o, dpad, t.m, t.l);
}

// ---- decode kernel ---------------------------------------------------------------------------
//
// Scores live in the order decode_scores produces them: per kv head, key group g (KG =
// max(1, W / R) consecutive keys) holds N = R * KG lanes, lane r * KG + k for row r and key
// g * KG + k. The softmax works on those lanes directly (per-lane running max and sum over
// the groups, then a fixed-order combine of a row's KG lanes), so no transposition is needed.

// Where one kv head's rows of the decode scratch live.
struct DecodeHead {
    const float* s;      // [groups][R * KG] probabilities (int8: times the V scale)
    const float* alpha;  // [R]
    float* o;            // [R][dpad]
    int64_t v_offset;    // bytes from a key's first-head V row to this head's
};

// O[r][d0 .. d0 + DV*W] = O * alpha + sum_j P[r][j] V[j][d] for R rows, V rows read from the
// cache and converted in registers (tail: the last vector of the row is partial).
template <si_dtype D, int R, int DV>
SI_PA_TARGET void decode_pv_block(const DecodeHead& h, const uint8_t* const* vr, int32_t n_keys, int32_t d0, int32_t tail, int32_t dpad,
                                  PrefetchRows& pf_state, int32_t pf_lines) {
    constexpr int KG = std::max(1, W / R);
    PrefetchRows pf = pf_state;  // in registers: through the reference, each line would wait on a store
    V acc[R][DV];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        const V a = Simd::set1(h.alpha[r]);
#pragma GCC unroll 8
        for (int v = 0; v < DV; ++v) acc[r][v] = Simd::mul(Simd::load(h.o + int64_t(r) * dpad + d0 + v * W), a);
    }
    for (int32_t j = 0; j < n_keys; ++j) {
        pf.step(pf_lines);
        const uint8_t* row = vr[j] + h.v_offset;
        const float* p = h.s + (j / KG) * (R * KG) + j % KG;  // row r's weight at p[r * KG]
        V x[DV];
#pragma GCC unroll 8
        for (int v = 0; v < DV; ++v)
            x[v] = (v == DV - 1 && tail) ? Simd::template load_row_n<D>(row, d0 + v * W, tail) : Simd::template load_row<D>(row, d0 + v * W);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const V w = Simd::set1(p[r * KG]);
#pragma GCC unroll 8
            for (int v = 0; v < DV; ++v) acc[r][v] = Simd::fmadd(w, x[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < DV; ++v) Simd::store(h.o + int64_t(r) * dpad + d0 + v * W, acc[r][v]);
    pf_state = pf;
}

template <int R>
constexpr int decode_max_dv() { return std::max(1, std::min(8, Simd::kDecodeAccumulators / R)); }

// d-blocks (passes over the tile's V rows) of decode_pv.
template <int R>
inline int32_t decode_pv_blocks(int32_t dpad) {
    return (dpad / W + decode_max_dv<R>() - 1) / decode_max_dv<R>();
}

template <si_dtype D, int R>
SI_PA_TARGET void decode_pv(const DecodeHead& h, const uint8_t* const* vr, int32_t n_keys, int32_t head_dim, int32_t dpad, PrefetchRows& pf,
                            int32_t pf_lines) {
    constexpr int kMaxDv = decode_max_dv<R>();
    const int32_t n_vectors = dpad / W;
    const int32_t n_blocks = decode_pv_blocks<R>(dpad);
    const int32_t row_tail = head_dim % W;
    int32_t d0 = 0;
    for (int32_t b = 0; b < n_blocks; ++b) {
        const int32_t dv = n_vectors / n_blocks + (b < n_vectors % n_blocks ? 1 : 0);
        const int32_t tail = b == n_blocks - 1 ? row_tail : 0;
        switch (dv) {
            case 8: if constexpr (kMaxDv >= 8) decode_pv_block<D, R, 8>(h, vr, n_keys, d0, tail, dpad, pf, pf_lines); break;
            case 7: if constexpr (kMaxDv >= 7) decode_pv_block<D, R, 7>(h, vr, n_keys, d0, tail, dpad, pf, pf_lines); break;
            case 6: if constexpr (kMaxDv >= 6) decode_pv_block<D, R, 6>(h, vr, n_keys, d0, tail, dpad, pf, pf_lines); break;
            case 5: if constexpr (kMaxDv >= 5) decode_pv_block<D, R, 5>(h, vr, n_keys, d0, tail, dpad, pf, pf_lines); break;
            case 4: if constexpr (kMaxDv >= 4) decode_pv_block<D, R, 4>(h, vr, n_keys, d0, tail, dpad, pf, pf_lines); break;
            case 3: if constexpr (kMaxDv >= 3) decode_pv_block<D, R, 3>(h, vr, n_keys, d0, tail, dpad, pf, pf_lines); break;
            case 2: if constexpr (kMaxDv >= 2) decode_pv_block<D, R, 2>(h, vr, n_keys, d0, tail, dpad, pf, pf_lines); break;
            default: decode_pv_block<D, R, 1>(h, vr, n_keys, d0, tail, dpad, pf, pf_lines); break;
        }
        d0 += dv * W;
    }
}

// Scores of R rows against one key group: R * KG independent FMA chains (one per row and
// key), then one transposing reduction per W of them. out[r * KG + k] = q_r . key_k.
template <si_dtype D, int R>
SI_PA_TARGET void decode_scores(const uint8_t* const* keys, int64_t key_offset, const float* q, int32_t dpad, int32_t full, int32_t tail, float* out) {
    constexpr int KG = std::max(1, W / R);
    constexpr int N = R * KG;  // a multiple of W
    V acc[N];
#pragma GCC unroll 16
    for (int i = 0; i < N; ++i) acc[i] = Simd::zero();
    const uint8_t* key[KG];
#pragma GCC unroll 16
    for (int k = 0; k < KG; ++k) key[k] = keys[k] + key_offset;
    for (int32_t d = 0; d < full; d += W) {
        V qv[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) qv[r] = Simd::load(q + int64_t(r) * dpad + d);
#pragma GCC unroll 16
        for (int k = 0; k < KG; ++k) {
            const V kv = Simd::template load_row<D>(key[k], d);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) acc[r * KG + k] = Simd::fmadd(qv[r], kv, acc[r * KG + k]);
        }
    }
    if (tail) {
#pragma GCC unroll 16
        for (int k = 0; k < KG; ++k) {
            const V kv = Simd::template load_row_n<D>(key[k], full, tail);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) acc[r * KG + k] = Simd::fmadd(Simd::load(q + int64_t(r) * dpad + full), kv, acc[r * KG + k]);
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < N; c += W) Simd::store(out + c, Simd::reduce_lanes(acc + c));
}

// R rows (padded copies of the last past n_rows) of each kv head in [kv_head, kv_head_end).
// Keys are visited key-major across the item's heads, so each cache block, which stores a
// key's heads side by side, is read front to back; see the file comment for the prefetching.
template <si_dtype D, int R, typename Logits>
SI_PA_TARGET void decode_item(const Plan& plan, const Item& it, void* scratch, const Logits& logits) {
    constexpr int KG = std::max(1, W / R);
    constexpr int N = R * KG;
    const si_paged_attention_params& p = *plan.p;
    const si_paged_kv& c = p.cache;
    const SeqInfo& seq = plan.seqs[size_t(it.seq)];
    const int32_t dim = c.head_dim, group = plan.group;
    const int32_t n_rows = it.row_end - it.row_begin;
    const int32_t n_heads = it.kv_head_end - it.kv_head;
    const int32_t dpad = round_up(dim, W);
    const int32_t full = dim / W * W, tail = dim - full;
    constexpr int32_t kStride = DecodeScratch::kScoreStride;  // floats per head: >= (kKeyTile + KG) * R
    Bump bump{static_cast<char*>(scratch)};
    const DecodeScratch t = DecodeScratch::take(bump, n_heads, R, dpad);

    const int32_t window = p.variant.sliding_window;
    for (int32_t r = 0; r < R; ++r) {
        const int32_t pos = seq.context - seq.q_len + (it.row_begin + std::min(r, n_rows - 1)) / group;
        t.hi[r] = pos;
        t.lo[r] = window > 0 ? pos - window + 1 : 0;
    }
    for (int32_t i = 0; i < N; ++i) {
        t.lane_key[i] = i % KG;
        t.lane_lo[i] = t.lo[i / KG];
    }
    for (int32_t h = 0; h < n_heads; ++h) {
        for (int32_t r = 0; r < R; ++r) {
            const int32_t row = it.row_begin + std::min(r, n_rows - 1);
            const float* q = p.q + (seq.q_begin + row / group) * p.q_stride + int64_t((it.kv_head + h) * group + row % group) * dim;
            float* qs = t.q + int64_t(h * R + r) * dpad;
            for (int32_t d = 0; d < dpad; ++d) qs[d] = d < dim ? q[d] * p.scale : 0.0f;
            t.m[h * R + r] = -INFINITY;
            t.l[h * R + r] = 0.0f;
        }
    }
    std::memset(t.o, 0, sizeof(float) * size_t(n_heads) * R * size_t(dpad));

    const int32_t* table = p.block_tables + int64_t(it.seq) * p.max_blocks_per_seq;
    const int64_t row_bytes = int64_t(dim) * dtype_size(D);
    const int32_t first = std::max(it.key_begin, t.lo[0]);
    const int32_t last = std::min(it.key_end, t.hi[n_rows - 1] + 1);  // exclusive
    if (first < last) {
        // Memory: blocks sit at random places, so the hardware prefetchers stop at every
        // page; every K/V row is fetched by software one phase ahead of use, spread evenly
        // over the phase before: the tile's V rows during its scores, the next tile's K rows
        // (and int8 scales) during its PV. Only the first tile's K is fetched in a burst.
        KeyCursor cursor(table, c.block_size, first);
        int64_t* rows = t.rows;
        int64_t* next_rows = t.next_rows;
        // Fills next_rows with the keys of the tile starting at `tile`; returns their count.
        auto fill = [&](int32_t tile) {
            const int32_t ta = std::max(tile, first), tb = std::min(tile + kKeyTile, last);
            for (int32_t j = 0; j < tb - ta; ++j, cursor.next()) next_rows[j] = cursor.row(c.n_kv_heads, it.kv_head);
            return std::max(0, tb - ta);
        };
        const int64_t head_bytes = row_bytes * n_heads;  // one key's rows of the item's heads
        int32_t n_next = fill(first - first % kKeyTile);
        PrefetchRows(c.k_pool, next_rows, n_next, row_bytes, head_bytes).all();
        if (D == SI_DTYPE_I8) {
            PrefetchRows(c.k_scale, next_rows, n_next, sizeof(float), sizeof(float) * n_heads).all();
            PrefetchRows(c.v_scale, next_rows, n_next, sizeof(float), sizeof(float) * n_heads).all();
        }
        const int32_t pv_steps_per_key = n_heads * decode_pv_blocks<R>(dpad);
        for (int32_t tile = first - first % kKeyTile; tile < last; tile += kKeyTile) {
            const int32_t ta = std::max(tile, first), tb = std::min(tile + kKeyTile, last);
            const int32_t n_keys = tb - ta, n_groups = (n_keys + KG - 1) / KG;
            std::swap(rows, next_rows);
            n_next = tile + kKeyTile < last ? fill(tile + kKeyTile) : 0;
            for (int32_t j = 0; j < n_keys; ++j) {
                const int64_t row = rows[j];
                t.kr[j] = static_cast<const uint8_t*>(c.k_pool) + row * row_bytes;
                t.vr[j] = static_cast<const uint8_t*>(c.v_pool) + row * row_bytes;
                if (D == SI_DTYPE_I8) {
                    for (int32_t h = 0; h < n_heads; ++h) {
                        t.k_scale[h * kStride + j] = c.k_scale[row + h];
                        t.v_scale[h * kStride + j] = c.v_scale[row + h];
                    }
                }
            }
            // The last group is padded with the tile's last key; its extra lanes are masked.
            for (int32_t j = n_keys; j < n_groups * KG; ++j) {
                t.kr[j] = t.kr[n_keys - 1];
                if (D == SI_DTYPE_I8)
                    for (int32_t h = 0; h < n_heads; ++h) t.k_scale[h * kStride + j] = t.v_scale[h * kStride + j] = 0.0f;
            }
            for (int32_t i = 0; i < N; ++i) t.lane_hi[i] = std::min(t.hi[i / KG], tb - 1);

            // Scores, one key group at a time for all heads (key-major over the block), while
            // this tile's V rows and the next tile's int8 scales are fetched.
            {
                PrefetchRows pf_v(c.v_pool, rows, n_keys, row_bytes, head_bytes);
                PrefetchRows pf_ks, pf_vs;
                if (D == SI_DTYPE_I8) {
                    pf_ks = PrefetchRows(c.k_scale, next_rows, n_next, sizeof(float), sizeof(float) * n_heads);
                    pf_vs = PrefetchRows(c.v_scale, next_rows, n_next, sizeof(float), sizeof(float) * n_heads);
                }
                const int32_t steps = n_groups * n_heads;
                const int32_t v_lines = int32_t((pf_v.lines() + steps - 1) / steps);
                for (int32_t g = 0; g < n_groups; ++g) {
                    if (D == SI_DTYPE_I8) {
                        pf_ks.step(2);
                        pf_vs.step(2);
                    }
                    for (int32_t h = 0; h < n_heads; ++h) {
                        pf_v.step(v_lines);
                        decode_scores<D, R>(t.kr + g * KG, h * row_bytes, t.q + int64_t(h * R) * dpad, dpad, full, tail, t.s + int64_t(h) * kStride * R + g * N);
                    }
                }
                pf_v.all();
                if (D == SI_DTYPE_I8) {
                    pf_ks.all();
                    pf_vs.all();
                }
            }

            // Per head: int8 key scales, logit hook, mask, then the online softmax per lane
            // and a fixed-order combine of each row's KG lanes.
            for (int32_t h = 0; h < n_heads; ++h) {
                float* s = t.s + int64_t(h) * kStride * R;
                const float* k_scale = t.k_scale + h * kStride;
                const float* v_scale = t.v_scale + h * kStride;
                float* m = t.m + h * R;
                float* l = t.l + h * R;
                for (int32_t lane = 0; lane < N; lane += W) {
                    V lane_max = Simd::set1(-INFINITY);
                    for (int32_t g = 0; g < n_groups; ++g) {
                        V x = Simd::load(s + g * N + lane);
                        if (D == SI_DTYPE_I8) x = Simd::mul(x, Simd::template load_repeated<KG>(k_scale + g * KG));
                        x = Simd::mask_lanes(logits(x), ta + g * KG, t.lane_key + lane, t.lane_hi + lane, t.lane_lo + lane);
                        Simd::store(s + g * N + lane, x);
                        lane_max = Simd::max(lane_max, x);
                    }
                    Simd::store(t.lane_tmp + lane, lane_max);
                }
                float shift[R];
                for (int r = 0; r < R; ++r) {
                    float tile_max = -INFINITY;
                    for (int k = 0; k < KG; ++k) tile_max = std::max(tile_max, t.lane_tmp[r * KG + k]);
                    const float new_max = std::max(m[r], tile_max);
                    shift[r] = new_max == -INFINITY ? 0.0f : new_max;
                    t.alpha[h * R + r] = std::exp(m[r] - shift[r]);
                    m[r] = new_max;
                }
                for (int32_t i = 0; i < N; ++i) t.lane_tmp[i] = shift[i / KG];
                for (int32_t lane = 0; lane < N; lane += W) {
                    const V shift_v = Simd::load(t.lane_tmp + lane);
                    V sum = Simd::zero();
                    for (int32_t g = 0; g < n_groups; ++g) {
                        V e = Simd::exp(Simd::sub(Simd::load(s + g * N + lane), shift_v));
                        sum = Simd::add(sum, e);
                        // An int8 value's scale multiplies its weight instead of each element.
                        if (D == SI_DTYPE_I8) e = Simd::mul(e, Simd::template load_repeated<KG>(v_scale + g * KG));
                        Simd::store(s + g * N + lane, e);
                    }
                    Simd::store(t.lane_tmp + lane, sum);
                }
                for (int r = 0; r < R; ++r) {
                    float tile_sum = 0.0f;
                    for (int k = 0; k < KG; ++k) tile_sum += t.lane_tmp[r * KG + k];
                    l[r] = l[r] * t.alpha[h * R + r] + tile_sum;
                }
            }

            // PV, while the next tile's K rows are fetched.
            PrefetchRows pf_k(c.k_pool, next_rows, n_next, row_bytes, head_bytes);
            const int64_t pv_steps = int64_t(n_keys) * pv_steps_per_key;
            const int32_t k_lines = int32_t((pf_k.lines() + pv_steps - 1) / pv_steps);
            for (int32_t h = 0; h < n_heads; ++h) {
                const DecodeHead head{t.s + int64_t(h) * kStride * R, t.alpha + h * R, t.o + int64_t(h * R) * dpad, h * row_bytes};
                decode_pv<D, R>(head, t.vr, n_keys, dim, dpad, pf_k, k_lines);
            }
            pf_k.all();
        }
    }
    for (int32_t h = 0; h < n_heads; ++h)
        finish_rows(plan, it, it.kv_head + h, t.o + int64_t(h * R) * dpad, dpad, t.m + h * R, t.l + h * R);
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
