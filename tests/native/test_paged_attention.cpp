// test_paged_attention.cpp: si_kv_write and si_paged_attention through the C ABI: the cpu
// backend (every ISA level this machine has) against the ref oracle over a sampled grid of
// batches, query/context lengths, GQA ratios, head dims, block sizes, cache dtypes and
// attention variants; paged vs contiguous attention; int8 KV vs f16 KV; bad input;
// thread-count and batch invariance.
//
// Every problem poisons what the kernels must not read: cache slots past each context and
// unused blocks hold NaN (int8 caches: NaN scales), block-table entries past a sequence's
// blocks point far outside the pool, q row padding is NaN, the workspace starts as NaN;
// output row padding and a guard after the output hold sentinel bits that must survive.
//
// int8 KV tolerance: against an f16 cache of the same K/V, the attention output of an int8
// cache (per-(token, head) symmetric scales, common/kv_quant.h) differs by at most
// kInt8VsF16MaxAbs = 1e-2 absolute for inputs in [-1, 1] (measured worst: ~2e-3).
#include "op_cases.h"  // first: it tames <signal.h>'s si_result macro
#include "test_util.h"

#include "common/dtype.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

namespace si_test {
namespace {

constexpr int32_t kThreads = 2;
constexpr uint32_t kPoisonBits = 0x7fc0deadu;    // quiet NaN: input the op must not read
constexpr uint32_t kSentinelBits = 0x7fc0beefu;  // quiet NaN: output the op must not write
constexpr int64_t kGuard = 7;                    // elements after every output
constexpr int32_t kOutsidePool = 1 << 28;        // block-table entries nobody may follow

// ---- tolerances: the one table of this file ----------------------------------------------

// cpu (any ISA) against ref, by cache dtype. Cached values become f32 exactly (f16, bf16)
// or with one f32 rounding (int8 * scale), so every row equals the f32 "attention" row of
// op_cases.cpp: the differences are f32 accumulation order and the vector exp.
struct ToleranceRow {
    si_dtype dtype;
    Tolerance tolerance;
};
constexpr ToleranceRow kTolerances[] = {
    {SI_DTYPE_F32, {2e-5, 2e-5}},
    {SI_DTYPE_F16, {2e-5, 2e-5}},
    {SI_DTYPE_BF16, {2e-5, 2e-5}},
    {SI_DTYPE_I8, {2e-5, 2e-5}},
};
// int8 cache against f16 cache (both through ref): quantization error, see the file comment.
constexpr double kInt8VsF16MaxAbs = 1e-2;
// cpu paged attention against cpu si_attention on the gathered (f32) K/V.
constexpr Tolerance kPagedVsContiguous = {2e-5, 2e-5};

Tolerance tolerance_for(si_dtype dtype) {
    for (const ToleranceRow& row : kTolerances)
        if (row.dtype == dtype) return row.tolerance;
    return {0.0, 0.0};
}

float from_bits(uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

uint32_t bits_of(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    return bits;
}

struct Rng {
    uint64_t state;
    uint64_t next() {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return state >> 33;
    }
    float uniform() { return float(double(next() >> 7) * 0x1p-24) * 2.0f - 1.0f; }  // [-1, 1)
};

// ---- problems ------------------------------------------------------------------------------

struct Seq {
    int32_t q_len;
    int32_t context;
};

struct Spec {
    std::string name;
    std::vector<Seq> seqs;
    int32_t n_heads = 8;
    int32_t n_kv_heads = 8;
    int32_t head_dim = 64;
    int32_t block_size = 16;
    si_dtype dtype = SI_DTYPE_F32;
    int32_t window = 0;
    float softcap = 0.0f;
    float q_scale = 1.0f;      // larger logits for the soft-cap cases
    bool at_max_length = false;  // max_blocks_per_seq = the longest sequence's block count exactly
    uint64_t seed = 1;
};

// gtest prints a failing case's parameter: its name, not its bytes.
void PrintTo(const Spec& spec, std::ostream* os) { *os << spec.name; }

// A batch over a paged cache built with ref si_kv_write from random K/V.
struct Problem {
    Spec spec;
    int32_t num_blocks = 0;
    int32_t max_blocks = 0;
    int32_t total_q = 0;
    int32_t max_q = 0;
    int32_t max_context = 0;
    std::vector<int32_t> cu, context, tables;
    int64_t q_stride = 0, out_stride = 0;
    std::vector<float> q;
    std::vector<std::vector<float>> k_src, v_src;  // per sequence: [context][n_kv_heads][head_dim]
    std::vector<uint8_t> k_pool, v_pool;
    std::vector<float> k_scale, v_scale;

    int64_t row_elems() const { return int64_t(spec.n_kv_heads) * spec.head_dim; }

    si_paged_kv cache() {
        si_paged_kv c{};
        c.k_pool = k_pool.data();
        c.v_pool = v_pool.data();
        c.k_scale = spec.dtype == SI_DTYPE_I8 ? k_scale.data() : nullptr;
        c.v_scale = spec.dtype == SI_DTYPE_I8 ? v_scale.data() : nullptr;
        c.num_blocks = num_blocks;
        c.block_size = spec.block_size;
        c.n_kv_heads = spec.n_kv_heads;
        c.head_dim = spec.head_dim;
        c.dtype = spec.dtype;
        return c;
    }

    si_paged_attention_params params(float* out) {
        si_paged_attention_params p{};
        p.q = q.data();
        p.out = out;
        p.cu_seqlens_q = cu.data();
        p.context_lens = context.data();
        p.block_tables = tables.data();
        p.cache = cache();
        p.q_stride = q_stride;
        p.out_stride = out_stride;
        p.n_seqs = int32_t(spec.seqs.size());
        p.max_blocks_per_seq = max_blocks;
        p.n_heads = spec.n_heads;
        p.max_q_len = max_q;
        p.max_context_len = max_context;
        p.scale = 1.0f / std::sqrt(float(spec.head_dim));
        p.variant.sliding_window = spec.window;
        p.variant.logit_softcap = spec.softcap;
        return p;
    }

    size_t out_count() const { return size_t(total_q) * size_t(out_stride) + kGuard; }
};

void fill_pool_poison(Problem& pr, std::vector<uint8_t>& pool, Rng& rng) {
    switch (pr.spec.dtype) {
        case SI_DTYPE_F32:
            for (size_t i = 0; i + 4 <= pool.size(); i += 4) std::memcpy(&pool[i], &kPoisonBits, 4);
            break;
        case SI_DTYPE_F16:
        case SI_DTYPE_BF16: {
            const uint16_t nan = pr.spec.dtype == SI_DTYPE_F16 ? 0x7e00u : 0x7fc0u;
            for (size_t i = 0; i + 2 <= pool.size(); i += 2) std::memcpy(&pool[i], &nan, 2);
            break;
        }
        default:  // int8 has no NaN: random bytes, with NaN scales
            for (uint8_t& b : pool) b = uint8_t(rng.next());
            break;
    }
}

// Writes rows [0, n) of a sequence's source K/V into its slots through si_kv_write.
void write_cache(Problem& pr, si_context* ctx, int32_t s) {
    const int32_t n = pr.context[size_t(s)];
    if (n == 0) return;
    std::vector<int32_t> slots(static_cast<size_t>(n));
    for (int32_t pos = 0; pos < n; ++pos)
        slots[size_t(pos)] = pr.tables[size_t(s) * pr.max_blocks + pos / pr.spec.block_size] * pr.spec.block_size + pos % pr.spec.block_size;
    si_kv_write_params w{};
    w.k = pr.k_src[size_t(s)].data();
    w.v = pr.v_src[size_t(s)].data();
    w.slot_mapping = slots.data();
    w.cache = pr.cache();
    w.k_stride = pr.row_elems();
    w.v_stride = pr.row_elems();
    w.n_tokens = n;
    ASSERT_EQ(si_kv_write(ctx, &w), SI_OK) << last_error_text();
}

Problem make_problem(const Spec& spec) {
    Problem pr;
    pr.spec = spec;
    Rng rng{spec.seed * 0x9e3779b97f4a7c15ull + 12345};
    Rng poison_rng{spec.seed + 99};  // separate, so the K/V values do not depend on the dtype
    const int32_t bs = spec.block_size;
    const size_t n_seqs = spec.seqs.size();
    pr.cu.push_back(0);
    for (const Seq& s : spec.seqs) {
        pr.cu.push_back(pr.cu.back() + s.q_len);
        pr.context.push_back(s.context);
        pr.max_q = std::max(pr.max_q, s.q_len);
        pr.max_context = std::max(pr.max_context, s.context);
    }
    pr.total_q = pr.cu.back();
    pr.max_blocks = std::max(1, (pr.max_context + bs - 1) / bs);
    if (!spec.at_max_length) pr.max_blocks += 2;  // table longer than any context needs
    // Blocks in use, plus three nobody uses, handed out in a shuffled order.
    int32_t used = 0;
    for (const Seq& s : spec.seqs) used += (s.context + bs - 1) / bs;
    pr.num_blocks = used + 3;
    std::vector<int32_t> ids(size_t(pr.num_blocks));
    std::iota(ids.begin(), ids.end(), 0);
    for (size_t i = ids.size() - 1; i > 0; --i) std::swap(ids[i], ids[size_t(rng.next() % (i + 1))]);
    pr.tables.assign(n_seqs * size_t(pr.max_blocks), kOutsidePool);
    size_t next_id = 0;
    for (size_t s = 0; s < n_seqs; ++s)
        for (int32_t b = 0; b < (spec.seqs[s].context + bs - 1) / bs; ++b) pr.tables[s * pr.max_blocks + b] = ids[next_id++];

    // Queries with NaN in the row padding.
    pr.q_stride = int64_t(spec.n_heads) * spec.head_dim + 3;
    pr.out_stride = int64_t(spec.n_heads) * spec.head_dim + 5;
    pr.q.assign(size_t(pr.total_q) * pr.q_stride + kGuard, from_bits(kPoisonBits));
    for (int32_t t = 0; t < pr.total_q; ++t)
        for (int64_t e = 0; e < int64_t(spec.n_heads) * spec.head_dim; ++e) pr.q[size_t(t * pr.q_stride + e)] = spec.q_scale * rng.uniform();

    const int64_t pool_elems = int64_t(pr.num_blocks) * bs * pr.row_elems();
    const size_t element = size_t(si::dtype_size(spec.dtype));
    pr.k_pool.resize(size_t(pool_elems) * element);
    pr.v_pool.resize(size_t(pool_elems) * element);
    fill_pool_poison(pr, pr.k_pool, poison_rng);
    fill_pool_poison(pr, pr.v_pool, poison_rng);
    pr.k_scale.assign(size_t(pr.num_blocks) * bs * spec.n_kv_heads, from_bits(kPoisonBits));
    pr.v_scale = pr.k_scale;

    for (size_t s = 0; s < n_seqs; ++s) {
        std::vector<float> k(size_t(spec.seqs[s].context) * pr.row_elems()), v(k.size());
        for (float& x : k) x = rng.uniform();
        for (float& x : v) x = rng.uniform();
        pr.k_src.push_back(std::move(k));
        pr.v_src.push_back(std::move(v));
    }
    ContextPtr ref = make_ref_context();
    for (size_t s = 0; s < n_seqs; ++s) write_cache(pr, ref.get(), int32_t(s));
    return pr;
}

struct RunResult {
    si_result status = SI_ERR_INTERNAL;
    std::string error;
    std::vector<float> out;
};

RunResult run(si_context* ctx, Problem& pr) {
    RunResult result;
    result.out.assign(pr.out_count(), from_bits(kSentinelBits));
    si_paged_attention_params p = pr.params(result.out.data());
    int64_t bytes = 0;
    result.status = si_paged_attention_workspace_size(ctx, &p, &bytes);
    if (result.status != SI_OK) {
        result.error = last_error_text();
        return result;
    }
    std::vector<float> workspace(size_t(bytes / 4 + 1), from_bits(kPoisonBits));
    p.workspace = bytes > 0 ? workspace.data() : nullptr;
    p.workspace_bytes = bytes;
    result.status = si_paged_attention(ctx, &p);
    if (result.status != SI_OK) result.error = last_error_text();
    return result;
}

// Checks got against want over the written elements (within tol) and that every other
// element still holds the sentinel. Returns the worst error / allowed error.
double expect_close(const Problem& pr, const std::vector<float>& got, const std::vector<float>& want, Tolerance tol, const std::string& what) {
    const int64_t row = int64_t(pr.spec.n_heads) * pr.spec.head_dim;
    double worst = 0.0;
    int64_t bad = 0, untouched_bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        const bool written = int64_t(i) < int64_t(pr.total_q) * pr.out_stride && int64_t(i) % pr.out_stride < row;
        if (!written) {
            if (bits_of(got[i]) != kSentinelBits && ++untouched_bad <= 3) ADD_FAILURE() << what << ": element " << i << " outside the output rows was written";
            continue;
        }
        const double allowed = tol.abs + tol.rel * std::fabs(double(want[i]));
        const double error = std::fabs(double(got[i]) - double(want[i]));
        if (!(error <= allowed)) {
            if (++bad <= 5) {
                const int64_t token = int64_t(i) / pr.out_stride, e = int64_t(i) % pr.out_stride;
                ADD_FAILURE() << what << ": token " << token << " head " << e / pr.spec.head_dim << " dim " << e % pr.spec.head_dim << ": got " << got[i]
                              << " want " << want[i] << " (allowed " << allowed << ")";
            }
        } else if (allowed > 0.0) {
            worst = std::max(worst, error / allowed);
        }
    }
    EXPECT_EQ(bad, 0) << what;
    EXPECT_EQ(untouched_bad, 0) << what;
    return worst;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// ---- the grid ------------------------------------------------------------------------------

std::vector<Seq> cycle(int32_t batch, std::vector<int32_t> q_lens, std::vector<int32_t> contexts) {
    std::vector<Seq> seqs;
    for (int32_t s = 0; s < batch; ++s) {
        const int32_t q = q_lens[size_t(s) % q_lens.size()];
        seqs.push_back(Seq{q, std::max(q, contexts[size_t(s) % contexts.size()])});
    }
    return seqs;
}

Spec spec(std::string name, std::vector<Seq> seqs, int32_t heads, int32_t kv_heads, int32_t head_dim, int32_t block_size, si_dtype dtype) {
    Spec s;
    s.name = std::move(name);
    s.seqs = std::move(seqs);
    s.n_heads = heads;
    s.n_kv_heads = kv_heads;
    s.head_dim = head_dim;
    s.block_size = block_size;
    s.dtype = dtype;
    s.seed = std::hash<std::string>{}(s.name);
    return s;
}

// A sampled grid, not the cartesian product: every batch size (1, 3, 17), query length
// (1, 7, 64, 300), context length (1, 33, 97, 1025, 4100), head layout (8/8, 32/8, 32/1),
// head dim (8, 64, 80, 96, 128, 256, and 20 for vector tails), block size (8, 16, 32) and
// cache dtype appears in several cases; ref's cost keeps the whole file under a minute.
std::vector<Spec> grid() {
    const si_dtype f32 = SI_DTYPE_F32, f16 = SI_DTYPE_F16, bf16 = SI_DTYPE_BF16, i8 = SI_DTYPE_I8;
    std::vector<Spec> g;
    g.push_back(spec("b1_q1_ctx1_h8kv8_d8_bs8_f32", {{1, 1}}, 8, 8, 8, 8, f32));
    g.push_back(spec("b1_q7_ctx33_h32kv8_d64_bs16_f16", {{7, 33}}, 32, 8, 64, 16, f16));
    g.push_back(spec("b3_mixed_h8kv8_d80_bs32_bf16", {{1, 97}, {7, 33}, {64, 64}}, 8, 8, 80, 32, bf16));
    g.push_back(spec("b17_decode_h32kv8_d128_bs16_f16", cycle(17, {1}, {1, 33, 97, 1025, 4100}), 32, 8, 128, 16, f16));
    g.push_back(spec("b1_q300_ctx300_h8kv8_d64_bs16_f32", {{300, 300}}, 8, 8, 64, 16, f32));
    g.push_back(spec("b1_q300_ctx1025_h8kv8_d96_bs32_f16", {{300, 1025}}, 8, 8, 96, 32, f16));
    g.push_back(spec("b3_mqa_h32kv1_d64_bs8_f32", {{64, 1025}, {1, 4100}, {7, 97}}, 32, 1, 64, 8, f32));
    g.push_back(spec("b1_q1_ctx4100_h32kv1_d128_bs32_i8", {{1, 4100}}, 32, 1, 128, 32, i8));
    g.push_back(spec("b17_mixed_h8kv8_d256_bs8_bf16", cycle(17, {1, 1, 7, 1, 64, 0}, {33, 97, 1, 1025, 97, 33, 4100}), 8, 8, 256, 8, bf16));
    g.push_back(spec("b3_q64_ctx97_h32kv8_d256_bs16_f32", {{64, 97}, {1, 97}, {33, 33}}, 32, 8, 256, 16, f32));
    g.push_back(spec("b17_decode_h32kv1_d64_bs16_f32", cycle(17, {1}, {4100, 97, 1025, 33}), 32, 1, 64, 16, f32));
    g.push_back(spec("b1_q7_ctx4100_h8kv8_d80_bs8_i8", {{7, 4100}}, 8, 8, 80, 8, i8));
    g.push_back(spec("b1_q16_ctx1025_h32kv8_d128_bs16_f16", {{16, 1025}}, 32, 8, 128, 16, f16));
    g.push_back(spec("b3_h8kv8_d8_bs32_f16", {{300, 300}, {7, 1025}, {1, 4100}}, 8, 8, 8, 32, f16));
    g.push_back(spec("b3_h32kv8_d20_bs8_i8", {{64, 97}, {7, 7}, {1, 1025}}, 32, 8, 20, 8, i8));
    g.push_back(spec("b17_h8kv8_d96_bs32_i8", cycle(17, {1, 7}, {97, 1025, 33}), 8, 8, 96, 32, i8));
    g.push_back(spec("b3_h32kv1_d80_bs16_bf16", {{7, 97}, {1, 33}, {64, 1025}}, 32, 1, 80, 16, bf16));
    g.push_back(spec("b1_q64_ctx4100_h8kv8_d128_bs32_bf16", {{64, 4100}}, 8, 8, 128, 32, bf16));
    // One sequence exactly at the table's capacity (context = max_blocks_per_seq * block_size).
    Spec full = spec("b3_at_max_length_h32kv8_d64_bs16_f16", {{1, 1024}, {64, 512}, {7, 100}}, 32, 8, 64, 16, f16);
    full.at_max_length = true;
    g.push_back(full);
    Spec full_decode = spec("b1_at_max_length_h8kv8_d128_bs32_f32", {{1, 4096}}, 8, 8, 128, 32, f32);
    full_decode.at_max_length = true;
    g.push_back(full_decode);
    // Variants.
    Spec window = spec("b3_window40_h32kv8_d64_bs16_f16", {{7, 97}, {64, 1025}, {1, 4100}}, 32, 8, 64, 16, f16);
    window.window = 40;
    g.push_back(window);
    Spec window_long = spec("b3_window700_h8kv8_d128_bs8_f32", {{1, 4100}, {300, 1025}, {7, 33}}, 8, 8, 128, 8, f32);
    window_long.window = 700;
    g.push_back(window_long);
    Spec softcap = spec("b3_softcap_h32kv8_d128_bs32_f32", {{1, 1025}, {64, 97}, {7, 33}}, 32, 8, 128, 32, f32);
    softcap.softcap = 5.0f;
    softcap.q_scale = 8.0f;
    g.push_back(softcap);
    Spec both = spec("b3_window_softcap_h32kv1_d96_bs16_i8", {{1, 4100}, {64, 300}, {7, 97}}, 32, 1, 96, 16, i8);
    both.window = 64;
    both.softcap = 3.0f;
    both.q_scale = 6.0f;
    g.push_back(both);
    return g;
}

class PagedAttentionGrid : public testing::TestWithParam<Spec> {};

TEST_P(PagedAttentionGrid, CpuMatchesRef) {
    Problem pr = make_problem(GetParam());
    ContextPtr ref = make_ref_context();
    ASSERT_TRUE(ref);
    const RunResult want = run(ref.get(), pr);
    ASSERT_EQ(want.status, SI_OK) << want.error;
    for (const std::string& isa : available_isas()) {
        ContextPtr cpu = make_cpu_context(isa, kThreads);
        ASSERT_TRUE(cpu) << last_error_text();
        const RunResult got = run(cpu.get(), pr);
        ASSERT_EQ(got.status, SI_OK) << isa << ": " << got.error;
        const double worst = expect_close(pr, got.out, want.out, tolerance_for(pr.spec.dtype), isa);
        if (std::getenv("SI_TEST_PRINT_ERRORS")) std::printf("  %s %s: worst error / allowed = %.3g\n", pr.spec.name.c_str(), isa.c_str(), worst);
    }
}

INSTANTIATE_TEST_SUITE_P(Grid, PagedAttentionGrid, testing::ValuesIn(grid()),
                         [](const testing::TestParamInfo<Spec>& info) { return info.param.name; });

// ---- paged vs contiguous -------------------------------------------------------------------

// Each sequence's result equals si_attention over its gathered K/V: exactly on ref (same
// arithmetic), within tolerance on cpu.
TEST(PagedAttention, EqualsContiguousAttentionOnGatheredKv) {
    Problem pr = make_problem(spec("contiguous", {{1, 1025}, {64, 97}, {7, 7}, {300, 300}, {1, 4100}}, 32, 8, 64, 16, SI_DTYPE_F32));
    ContextPtr ref = make_ref_context();
    ContextPtr cpu = make_cpu_context("", kThreads);
    ASSERT_TRUE(ref && cpu);
    const RunResult paged_ref = run(ref.get(), pr), paged_cpu = run(cpu.get(), pr);
    ASSERT_EQ(paged_ref.status, SI_OK) << paged_ref.error;
    ASSERT_EQ(paged_cpu.status, SI_OK) << paged_cpu.error;
    const int64_t row = int64_t(pr.spec.n_heads) * pr.spec.head_dim;
    for (size_t s = 0; s < pr.spec.seqs.size(); ++s) {
        const Seq seq = pr.spec.seqs[s];
        for (si_context* ctx : {ref.get(), cpu.get()}) {
            std::vector<float> out(size_t(seq.q_len * row));
            si_attention_params a{};
            a.q = pr.q.data() + pr.cu[s] * pr.q_stride;
            a.k_cache = pr.k_src[s].data();
            a.v_cache = pr.v_src[s].data();
            a.out = out.data();
            a.q_stride = pr.q_stride;
            a.kv_stride = pr.row_elems();
            a.out_stride = row;
            a.n_q = seq.q_len;
            a.n_ctx = seq.context;
            a.n_heads = pr.spec.n_heads;
            a.n_kv_heads = pr.spec.n_kv_heads;
            a.head_dim = pr.spec.head_dim;
            a.scale = 1.0f / std::sqrt(float(pr.spec.head_dim));
            ASSERT_EQ(si_attention(ctx, &a), SI_OK) << last_error_text();
            const std::vector<float>& paged = ctx == ref.get() ? paged_ref.out : paged_cpu.out;
            const Tolerance tol = ctx == ref.get() ? Tolerance{0.0, 0.0} : kPagedVsContiguous;
            int64_t bad = 0;
            for (int32_t t = 0; t < seq.q_len; ++t) {
                for (int64_t e = 0; e < row; ++e) {
                    const float want = out[size_t(t * row + e)];
                    const float got = paged[size_t((pr.cu[s] + t) * pr.out_stride + e)];
                    if (!(std::fabs(double(got) - want) <= tol.abs + tol.rel * std::fabs(double(want))) && ++bad <= 3)
                        ADD_FAILURE() << (ctx == ref.get() ? "ref" : "cpu") << " seq " << s << " token " << t << " elem " << e << ": paged " << got << " contiguous " << want;
                }
            }
            EXPECT_EQ(bad, 0);
        }
    }
}

// ---- int8 KV vs f16 KV ---------------------------------------------------------------------

TEST(PagedAttention, Int8CacheStaysWithinToleranceOfF16Cache) {
    for (const int32_t head_dim : {64, 128}) {
        Spec base = spec("int8_vs_f16", {{1, 4100}, {64, 1025}, {7, 97}, {1, 33}}, 32, 8, head_dim, 16, SI_DTYPE_F16);
        Problem f16 = make_problem(base);
        base.dtype = SI_DTYPE_I8;
        Problem i8 = make_problem(base);  // same seed: the same K/V, q and tables
        ContextPtr ref = make_ref_context();
        ContextPtr cpu = make_cpu_context("", kThreads);
        const RunResult want = run(ref.get(), f16);
        const RunResult got_ref = run(ref.get(), i8), got_cpu = run(cpu.get(), i8);
        ASSERT_EQ(want.status, SI_OK) << want.error;
        ASSERT_EQ(got_ref.status, SI_OK) << got_ref.error;
        ASSERT_EQ(got_cpu.status, SI_OK) << got_cpu.error;
        double worst_ref = 0.0, worst_cpu = 0.0;
        const int64_t row = int64_t(f16.spec.n_heads) * head_dim;
        for (int64_t t = 0; t < f16.total_q; ++t) {
            for (int64_t e = 0; e < row; ++e) {
                const size_t i = size_t(t * f16.out_stride + e);
                worst_ref = std::max(worst_ref, std::fabs(double(got_ref.out[i]) - want.out[i]));
                worst_cpu = std::max(worst_cpu, std::fabs(double(got_cpu.out[i]) - want.out[i]));
            }
        }
        EXPECT_LE(worst_ref, kInt8VsF16MaxAbs) << "head_dim " << head_dim;
        EXPECT_LE(worst_cpu, kInt8VsF16MaxAbs) << "head_dim " << head_dim;
        std::printf("  int8 vs f16 KV, head_dim %d: max |difference| ref %.3g, cpu %.3g (bound %.3g)\n", head_dim, worst_ref, worst_cpu, kInt8VsF16MaxAbs);
    }
}

// ---- kv_write ------------------------------------------------------------------------------

// cpu stores the same bits as ref for every dtype and ISA (int8: the same codes and scales),
// skips negative slots and leaves every other slot alone; int8 codes also match a direct
// evaluation of the format (scale = max|x| / 127, q = nearest-even(x / scale)).
TEST(PagedAttention, KvWriteMatchesRefBitForBit) {
    for (const si_dtype dtype : {SI_DTYPE_F32, SI_DTYPE_F16, SI_DTYPE_BF16, SI_DTYPE_I8}) {
        for (const int32_t head_dim : {8, 20, 64, 80, 128}) {
            const int32_t n_kv = 3, block_size = 8, num_blocks = 5, n_tokens = 13;
            const int64_t row = int64_t(n_kv) * head_dim, stride = row + 2;
            Rng rng{uint64_t(head_dim) * 31 + uint64_t(dtype)};
            std::vector<float> k(size_t(n_tokens * stride)), v(k.size());
            for (float& x : k) x = 3.0f * rng.uniform();
            for (float& x : v) x = 0.5f * rng.uniform();
            for (int64_t e = 0; e < head_dim; ++e) k[size_t(2 * stride + e)] = 0.0f;  // an all-zero row: scale 0
            std::vector<int32_t> slots(static_cast<size_t>(n_tokens));
            for (int32_t t = 0; t < n_tokens; ++t) slots[size_t(t)] = t % 4 == 3 ? -1 : (t * 7) % (num_blocks * block_size);
            const size_t pool_bytes = size_t(num_blocks * block_size * row) * size_t(si::dtype_size(dtype));
            auto write = [&](si_context* ctx, std::vector<uint8_t>& kp, std::vector<uint8_t>& vp, std::vector<float>& ks, std::vector<float>& vs) {
                kp.assign(pool_bytes, 0xa5);
                vp.assign(pool_bytes, 0x5a);
                ks.assign(size_t(num_blocks * block_size * n_kv), -3.0f);
                vs = ks;
                si_kv_write_params w{};
                w.k = k.data();
                w.v = v.data();
                w.slot_mapping = slots.data();
                w.cache.k_pool = kp.data();
                w.cache.v_pool = vp.data();
                w.cache.k_scale = dtype == SI_DTYPE_I8 ? ks.data() : nullptr;
                w.cache.v_scale = dtype == SI_DTYPE_I8 ? vs.data() : nullptr;
                w.cache.num_blocks = num_blocks;
                w.cache.block_size = block_size;
                w.cache.n_kv_heads = n_kv;
                w.cache.head_dim = head_dim;
                w.cache.dtype = dtype;
                w.k_stride = stride;
                w.v_stride = stride;
                w.n_tokens = n_tokens;
                return si_kv_write(ctx, &w);
            };
            std::vector<uint8_t> want_k, want_v;
            std::vector<float> want_ks, want_vs;
            ContextPtr ref = make_ref_context();
            ASSERT_EQ(write(ref.get(), want_k, want_v, want_ks, want_vs), SI_OK) << last_error_text();
            if (dtype == SI_DTYPE_I8) {
                // Independent evaluation of the int8 format for the K rows.
                for (int32_t t = 0; t < n_tokens; ++t) {
                    if (slots[size_t(t)] < 0) continue;
                    for (int32_t h = 0; h < n_kv; ++h) {
                        const float* x = k.data() + t * stride + h * head_dim;
                        float max_abs = 0.0f;
                        for (int32_t d = 0; d < head_dim; ++d) max_abs = std::max(max_abs, std::fabs(x[d]));
                        const float scale = max_abs / 127.0f;
                        const int64_t r = int64_t(slots[size_t(t)]) * n_kv + h;
                        ASSERT_EQ(bits_of(want_ks[size_t(r)]), bits_of(scale));
                        for (int32_t d = 0; d < head_dim; ++d) {
                            const int want_code = scale == 0.0f ? 0 : int(std::nearbyint(x[d] / scale));
                            ASSERT_EQ(int(int8_t(want_k[size_t(r * head_dim + d)])), std::clamp(want_code, -127, 127)) << "t " << t << " h " << h << " d " << d;
                        }
                    }
                }
            }
            for (const std::string& isa : available_isas()) {
                ContextPtr cpu = make_cpu_context(isa, kThreads);
                std::vector<uint8_t> got_k, got_v;
                std::vector<float> got_ks, got_vs;
                ASSERT_EQ(write(cpu.get(), got_k, got_v, got_ks, got_vs), SI_OK) << last_error_text();
                EXPECT_TRUE(got_k == want_k && got_v == want_v) << isa << " " << si::dtype_name(dtype) << " head_dim " << head_dim << ": pools differ";
                EXPECT_EQ(std::memcmp(got_ks.data(), want_ks.data(), got_ks.size() * 4), 0) << isa << " " << si::dtype_name(dtype) << ": k scales differ";
                EXPECT_EQ(std::memcmp(got_vs.data(), want_vs.data(), got_vs.size() * 4), 0) << isa << " " << si::dtype_name(dtype) << ": v scales differ";
            }
        }
    }
}

// ---- bad input -----------------------------------------------------------------------------

class PagedAttentionBadInput : public testing::Test {
protected:
    void SetUp() override {
        pr = make_problem(spec("bad", {{1, 40}, {7, 20}}, 8, 8, 64, 16, SI_DTYPE_I8));
        contexts.push_back(make_ref_context());
        contexts.push_back(make_cpu_context("", kThreads));
    }
    // Runs params (with the workspace the context asks for unless given) on every backend
    // and expects SI_ERR_INVALID_ARGUMENT with a message containing `needle`.
    void expect_rejected(si_paged_attention_params p, const std::string& needle, bool keep_workspace = false) {
        for (ContextPtr& ctx : contexts) {
            std::vector<float> workspace(1 << 16);
            if (!keep_workspace) {
                p.workspace = workspace.data();
                p.workspace_bytes = int64_t(workspace.size() * 4);
            }
            EXPECT_EQ(si_paged_attention(ctx.get(), &p), SI_ERR_INVALID_ARGUMENT) << needle;
            EXPECT_NE(last_error_text().find(needle), std::string::npos) << "message '" << last_error_text() << "' does not name '" << needle << "'";
        }
    }
    Problem pr;
    std::vector<ContextPtr> contexts;
    std::vector<float> out = std::vector<float>(4096);
};

TEST_F(PagedAttentionBadInput, BlockTableEntryOutsideThePool) {
    pr.tables[1] = pr.num_blocks;  // sequence 0's second block (context 40 uses three)
    expect_rejected(pr.params(out.data()), "outside the pool");
    pr.tables[1] = -2;
    expect_rejected(pr.params(out.data()), "outside the pool");
}

TEST_F(PagedAttentionBadInput, ContextLongerThanTheTableCovers) {
    const int32_t covered = pr.max_blocks * pr.spec.block_size;
    pr.context[1] = covered + 1;
    si_paged_attention_params p = pr.params(out.data());
    p.max_context_len = covered + 1;  // caught by the plan-wide check
    expect_rejected(p, "exceeds what a block table");
    p.max_context_len = 40;  // caught by the per-sequence check
    expect_rejected(p, "longer than its block table covers");
}

TEST_F(PagedAttentionBadInput, MoreQueriesThanContext) {
    pr.context[1] = 5;  // 7 queries
    si_paged_attention_params p = pr.params(out.data());
    p.max_context_len = 40;
    expect_rejected(p, "has 7 queries but a context of 5");
}

TEST_F(PagedAttentionBadInput, Int8CacheWithoutScales) {
    si_paged_attention_params p = pr.params(out.data());
    p.cache.v_scale = nullptr;
    expect_rejected(p, "needs k_scale and v_scale");
}

TEST_F(PagedAttentionBadInput, WorkspaceTooSmall) {
    Problem split = make_problem(spec("bad_workspace", {{1, 2000}}, 8, 8, 64, 16, SI_DTYPE_F16));
    std::vector<float> big_out(size_t(split.out_count()));
    si_paged_attention_params p = split.params(big_out.data());
    ContextPtr cpu = make_cpu_context("", kThreads);
    int64_t needed = 0;
    ASSERT_EQ(si_paged_attention_workspace_size(cpu.get(), &p, &needed), SI_OK) << last_error_text();
    ASSERT_GT(needed, 0) << "a long decode context splits and needs a workspace";
    std::vector<uint8_t> workspace(static_cast<size_t>(needed));
    p.workspace = workspace.data();
    p.workspace_bytes = needed - 1;
    EXPECT_EQ(si_paged_attention(cpu.get(), &p), SI_ERR_INVALID_ARGUMENT);
    EXPECT_NE(last_error_text().find("smaller than the"), std::string::npos) << last_error_text();
    p.workspace_bytes = needed;
    EXPECT_EQ(si_paged_attention(cpu.get(), &p), SI_OK) << last_error_text();
}

// ---- determinism ---------------------------------------------------------------------------

Spec invariance_spec(si_dtype dtype, int32_t heads, int32_t kv_heads, int32_t head_dim) {
    // Decode rows with and without split-K, a small prefill chunk, a long prefill.
    return spec("invariance", cycle(17, {1, 1, 7, 64, 1, 0, 16}, {4100, 97, 1025, 300, 1, 64, 33, 2000}), heads, kv_heads, head_dim, 16, dtype);
}

TEST(PagedAttention, ThreadCountInvariant) {
    for (const si_dtype dtype : {SI_DTYPE_F32, SI_DTYPE_I8}) {
        Problem pr = make_problem(invariance_spec(dtype, 32, 8, 64));
        for (const std::string& isa : available_isas()) {
            ContextPtr one = make_cpu_context(isa, 1);
            const RunResult base = run(one.get(), pr);
            ASSERT_EQ(base.status, SI_OK) << base.error;
            for (const int32_t threads : {2, 3}) {
                ContextPtr many = make_cpu_context(isa, threads);
                const RunResult other = run(many.get(), pr);
                ASSERT_EQ(other.status, SI_OK) << other.error;
                EXPECT_TRUE(same_bits(base.out, other.out)) << isa << " " << si::dtype_name(dtype) << ": 1 thread and " << threads << " threads differ";
            }
        }
    }
}

// Sequence `s` of a batch run alone (its own q rows, context and block-table row, the same
// pools) gives the same bits as inside the batch of 17.
TEST(PagedAttention, BatchInvariant) {
    for (const auto& [heads, kv_heads, head_dim, dtype] :
         {std::tuple<int32_t, int32_t, int32_t, si_dtype>{32, 8, 64, SI_DTYPE_F16}, {32, 1, 128, SI_DTYPE_I8}, {8, 8, 80, SI_DTYPE_F32}}) {
        Problem pr = make_problem(invariance_spec(dtype, heads, kv_heads, head_dim));
        const int64_t row = int64_t(heads) * head_dim;
        for (const std::string& isa : available_isas()) {
            ContextPtr cpu = make_cpu_context(isa, kThreads);
            const RunResult batch = run(cpu.get(), pr);
            ASSERT_EQ(batch.status, SI_OK) << batch.error;
            for (size_t s = 0; s < pr.spec.seqs.size(); ++s) {
                const Seq seq = pr.spec.seqs[s];
                if (seq.q_len == 0) continue;
                std::vector<float> out(size_t(seq.q_len) * size_t(pr.out_stride), 0.0f);
                const int32_t cu[2] = {0, seq.q_len};
                si_paged_attention_params p = pr.params(out.data());
                p.q = pr.q.data() + pr.cu[s] * pr.q_stride;
                p.cu_seqlens_q = cu;
                p.context_lens = &pr.context[s];
                p.block_tables = &pr.tables[s * size_t(pr.max_blocks)];
                p.n_seqs = 1;
                p.max_q_len = seq.q_len;
                p.max_context_len = seq.context;
                int64_t bytes = 0;
                ASSERT_EQ(si_paged_attention_workspace_size(cpu.get(), &p, &bytes), SI_OK);
                std::vector<uint8_t> workspace(size_t(bytes) + 1);
                p.workspace = workspace.data();
                p.workspace_bytes = bytes;
                ASSERT_EQ(si_paged_attention(cpu.get(), &p), SI_OK) << last_error_text();
                bool same = true;
                for (int32_t t = 0; t < seq.q_len; ++t)
                    same = same && std::memcmp(&out[size_t(t * pr.out_stride)], &batch.out[size_t((pr.cu[s] + t) * pr.out_stride)], size_t(row) * 4) == 0;
                EXPECT_TRUE(same) << isa << " " << si::dtype_name(dtype) << " heads " << heads << "/" << kv_heads << ": sequence " << s << " (q_len " << seq.q_len
                                  << ", context " << seq.context << ") alone differs from inside the batch";
            }
        }
    }
}

TEST(PagedAttention, EmptyBatchAndEmptySequencesWriteNothing) {
    Problem pr = make_problem(spec("empty", {{0, 33}, {0, 1}}, 8, 8, 64, 16, SI_DTYPE_F16));
    std::vector<ContextPtr> contexts;
    contexts.push_back(make_ref_context());
    contexts.push_back(make_cpu_context("", kThreads));
    for (ContextPtr& ctx : contexts) {
        const RunResult r = run(ctx.get(), pr);
        ASSERT_EQ(r.status, SI_OK) << r.error;
        for (float x : r.out) EXPECT_EQ(bits_of(x), kSentinelBits);
    }
}

TEST(PagedAttention, NoContextsLeak) {
    int32_t live = -1;
    ASSERT_EQ(si_live_context_count(&live), SI_OK);
    EXPECT_EQ(live, 0);
}

}  // namespace
}  // namespace si_test
