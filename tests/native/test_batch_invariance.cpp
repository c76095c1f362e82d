// test_batch_invariance.cpp: a row's result must not depend on what else is in the batch
// or on the thread count: matmul and sparse matmul (2:4, bitmask) row r is bit-identical for
// m = 1 and m = 17 and for 1, 2 and 3 threads, on every ISA level; an attention query gives
// the same bits in decode (n_q = 1) and inside a prefill (n_q = n_ctx).
#include "op_cases.h"  // first: it tames <signal.h>'s si_result macro
#include "sparse_cases.h"
#include "test_util.h"

#include "common/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <tuple>

namespace si_test {
namespace {

std::vector<float> random_floats(size_t count, uint64_t seed, float scale) {
    std::vector<float> v(count);
    for (size_t i = 0; i < count; ++i) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = scale * (float(double(seed >> 40) * 0x1p-24) * 2.0f - 1.0f);
    }
    return v;
}

bool same_bits(const float* a, const float* b, size_t count) { return std::memcmp(a, b, count * sizeof(float)) == 0; }

struct MatmulProblem {
    int32_t m, n, k;
    si_dtype dtype;
    std::vector<float> x;          // [m, k + 3] (strided)
    std::vector<float> w_f32;      // [n, k]
    std::vector<uint16_t> w_16;    // [n, k] when dtype is f16/bf16
    std::vector<float> bias;       // [n]

    MatmulProblem(int32_t m_, int32_t n_, int32_t k_, si_dtype dtype_) : m(m_), n(n_), k(k_), dtype(dtype_) {
        x = random_floats(size_t(m) * (k + 3), 1, 1.0f);
        w_f32 = random_floats(size_t(n) * k, 2, 1.0f / std::sqrt(float(k)));
        bias = random_floats(size_t(n), 3, 1.0f);
        if (dtype == SI_DTYPE_F16) for (float f : w_f32) w_16.push_back(si::f32_to_f16(f));
        if (dtype == SI_DTYPE_BF16) for (float f : w_f32) w_16.push_back(si::f32_to_bf16(f));
    }

    // y for rows [row0, row0 + rows) of x, with y row stride n.
    std::vector<float> run(si_context* context, int32_t row0, int32_t rows) const {
        std::vector<float> y(size_t(rows) * n, -1.0f);
        si_matmul_params p{};
        p.x = x.data() + size_t(row0) * (k + 3);
        p.w = dtype == SI_DTYPE_F32 ? static_cast<const void*>(w_f32.data()) : static_cast<const void*>(w_16.data());
        p.bias = bias.data();
        p.y = y.data();
        p.x_stride = k + 3;
        p.y_stride = n;
        p.m = rows;
        p.n = n;
        p.k = k;
        p.w_dtype = dtype;
        EXPECT_EQ(si_matmul(context, &p), SI_OK) << last_error_text();
        return y;
    }
};

using InvarianceParam = std::tuple<std::string, si_dtype>;

class BatchInvarianceTest : public testing::TestWithParam<InvarianceParam> {};

TEST_P(BatchInvarianceTest, MatmulRowsMatchAcrossBatchSizesAndThreads) {
    const auto& [isa, dtype] = GetParam();
    // n spans several pool chunks; k has a tail for both 8- and 16-lane loops.
    for (const auto& [n, k] : {std::pair<int32_t, int32_t>{97, 1025}, {1000, 300}}) {
        const MatmulProblem problem(17, n, k, dtype);
        ContextPtr two = make_cpu_context(isa, 2);
        ASSERT_TRUE(two) << last_error_text();
        const std::vector<float> batch = problem.run(two.get(), 0, 17);
        for (int32_t r = 0; r < 17; ++r) {
            const std::vector<float> single = problem.run(two.get(), r, 1);
            EXPECT_TRUE(same_bits(single.data(), batch.data() + size_t(r) * n, size_t(n))) << "row " << r << " differs between m=1 and m=17";
        }
        // Sub-batches of every size also start at arbitrary rows.
        for (int32_t rows : {2, 3, 4, 5, 8, 16}) {
            const std::vector<float> part = problem.run(two.get(), 17 - rows, rows);
            EXPECT_TRUE(same_bits(part.data(), batch.data() + size_t(17 - rows) * n, size_t(rows) * n)) << "m=" << rows;
        }
        for (int32_t threads : {1, 3}) {
            ContextPtr other = make_cpu_context(isa, threads);
            ASSERT_TRUE(other) << last_error_text();
            EXPECT_TRUE(same_bits(problem.run(other.get(), 0, 17).data(), batch.data(), batch.size())) << threads << " threads vs 2";
            EXPECT_TRUE(same_bits(problem.run(other.get(), 5, 1).data(), batch.data() + size_t(5) * n, size_t(n))) << threads << " threads, m=1";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, BatchInvarianceTest,
                         testing::Combine(testing::ValuesIn(available_isas()), testing::Values(SI_DTYPE_F32, SI_DTYPE_F16, SI_DTYPE_BF16)),
                         [](const testing::TestParamInfo<InvarianceParam>& info) {
                             return std::get<0>(info.param) + "_" + si::dtype_name(std::get<1>(info.param));
                         });

// Sparse weights with random values (so the order of summation shows in the bits) on the
// patterns of sparse_cases.h, and random x with a row stride of k + 3.
struct SparseProblem {
    sparse::Case c;
    std::vector<float> x;
    std::vector<float> bias;
    sparse::Packed packed;

    SparseProblem(int32_t n, int32_t k, si_sparse_format format, si_dtype dtype)
        : c{17, n, k, format, format == SI_SPARSE_2_4 ? 0.5f : 0.7f, dtype, 3, 0, true} {
        std::vector<float> w = sparse::make_weights(c, 11);
        const std::vector<float> values = random_floats(w.size(), 12, 1.0f / std::sqrt(float(k)));
        for (size_t i = 0; i < w.size(); ++i)
            if (w[i] != 0.0f) w[i] = values[i] != 0.0f ? values[i] : 0.5f;  // keep the pattern
        packed = sparse::pack(c, w);
        x = random_floats(size_t(c.m) * size_t(c.x_stride()), 13, 1.0f);
        bias = random_floats(size_t(n), 14, 1.0f);
    }

    // y for rows [row0, row0 + rows) of x, with y row stride n.
    std::vector<float> run(si_context* context, int32_t row0, int32_t rows) const {
        std::vector<float> y(size_t(rows) * size_t(c.n), -1.0f);
        si_sparse_matmul_params p = sparse::params(c, packed, x.data() + size_t(row0) * size_t(c.x_stride()), y.data(), bias.data());
        p.m = rows;
        p.y_stride = c.n;
        EXPECT_EQ(si_sparse_matmul(context, &p), SI_OK) << last_error_text();
        return y;
    }
};

using SparseInvarianceParam = std::tuple<std::string, si_sparse_format, si_dtype>;

class SparseBatchInvarianceTest : public testing::TestWithParam<SparseInvarianceParam> {};

TEST_P(SparseBatchInvarianceTest, RowsMatchAcrossBatchSizesAndThreads) {
    const auto& [isa, format, dtype] = GetParam();
    // n spans several pool chunks; k has tails for 8- and 16-lane chunks and 64-bit mask words;
    // k = 9001: rows longer than L1 holds, in the decode path (m < 8) and the batched one.
    for (const auto& [n, k] : {std::pair<int32_t, int32_t>{97, 1025}, {300, 300}, {40, 9001}}) {
        const SparseProblem problem(n, k, format, dtype);
        const size_t ns = size_t(n);
        ContextPtr two = make_cpu_context(isa, 2);
        ASSERT_TRUE(two) << last_error_text();
        const std::vector<float> batch = problem.run(two.get(), 0, 17);
        for (int32_t r = 0; r < 17; ++r) {
            const std::vector<float> single = problem.run(two.get(), r, 1);
            EXPECT_TRUE(same_bits(single.data(), batch.data() + size_t(r) * ns, ns)) << problem.c.name() << ": row " << r << " differs between m=1 and m=17";
        }
        for (int32_t rows : {2, 3, 4, 5, 8, 16}) {
            const std::vector<float> part = problem.run(two.get(), 17 - rows, rows);
            EXPECT_TRUE(same_bits(part.data(), batch.data() + size_t(17 - rows) * ns, size_t(rows) * ns)) << problem.c.name() << ": m=" << rows;
        }
        for (int32_t threads : {1, 3}) {
            ContextPtr other = make_cpu_context(isa, threads);
            ASSERT_TRUE(other) << last_error_text();
            EXPECT_TRUE(same_bits(problem.run(other.get(), 0, 17).data(), batch.data(), batch.size())) << problem.c.name() << ": " << threads << " threads vs 2";
            EXPECT_TRUE(same_bits(problem.run(other.get(), 5, 1).data(), batch.data() + 5 * ns, ns)) << problem.c.name() << ": " << threads << " threads, m=1";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, SparseBatchInvarianceTest,
                         testing::Combine(testing::ValuesIn(available_isas()), testing::Values(SI_SPARSE_2_4, SI_SPARSE_BITMASK),
                                          testing::Values(SI_DTYPE_F32, SI_DTYPE_F16, SI_DTYPE_BF16)),
                         [](const testing::TestParamInfo<SparseInvarianceParam>& info) {
                             return "sparse_" + std::get<0>(info.param) + (std::get<1>(info.param) == SI_SPARSE_2_4 ? "_s24_" : "_bitmask_") +
                                    si::dtype_name(std::get<2>(info.param));
                         });

class AttentionInvarianceTest : public testing::TestWithParam<std::string> {};

TEST_P(AttentionInvarianceTest, DecodeEqualsLastPrefillRow) {
    const int32_t n_ctx = 97, n_heads = 8, n_kv = 2, hd = 80;
    const int64_t q_row = int64_t(n_heads) * hd, kv_row = int64_t(n_kv) * hd;
    const std::vector<float> q = random_floats(size_t(n_ctx * q_row), 4, 1.0f);
    const std::vector<float> k = random_floats(size_t(n_ctx * kv_row), 5, 1.0f);
    const std::vector<float> v = random_floats(size_t(n_ctx * kv_row), 6, 1.0f);
    // The last n_q tokens of the same sequence as queries.
    auto run = [&](si_context* context, int32_t n_q) {
        std::vector<float> out(size_t(n_q * q_row), -1.0f);
        si_attention_params p{};
        p.q = q.data() + size_t(n_ctx - n_q) * q_row;
        p.k_cache = k.data();
        p.v_cache = v.data();
        p.out = out.data();
        p.q_stride = q_row;
        p.kv_stride = kv_row;
        p.out_stride = q_row;
        p.n_q = n_q;
        p.n_ctx = n_ctx;
        p.n_heads = n_heads;
        p.n_kv_heads = n_kv;
        p.head_dim = hd;
        p.scale = 1.0f / std::sqrt(float(hd));
        EXPECT_EQ(si_attention(context, &p), SI_OK) << last_error_text();
        return out;
    };
    ContextPtr two = make_cpu_context(GetParam(), 2), one = make_cpu_context(GetParam(), 1);
    ASSERT_TRUE(two && one) << last_error_text();
    const std::vector<float> prefill = run(two.get(), n_ctx);
    const std::vector<float> decode = run(one.get(), 1);
    EXPECT_TRUE(same_bits(decode.data(), prefill.data() + size_t(n_ctx - 1) * q_row, size_t(q_row)));
    const std::vector<float> tail = run(one.get(), 5);
    EXPECT_TRUE(same_bits(tail.data(), prefill.data() + size_t(n_ctx - 5) * q_row, size_t(5 * q_row)));
}

INSTANTIATE_TEST_SUITE_P(Isa, AttentionInvarianceTest, testing::ValuesIn(available_isas()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace si_test
