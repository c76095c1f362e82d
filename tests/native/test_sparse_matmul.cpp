// test_sparse_matmul.cpp: si_sparse_matmul on the cpu backend against ref, on every ISA level
// the machine has (SI_CPU_ISA scalar / avx2 / avx512), over the case grid of sparse_cases.h,
// bit for bit (small-integer data: every order of summation is exact). y gaps and a guard
// after y must keep their sentinel; x gaps and a guard after x are NaN, so reading x past k
// (a 2:4 kept zero in the ragged last group, the padding up to kp) shows up. The ref itself is
// checked against the dense si_matmul of the unpacked weights, which also checks pack().
#include "sparse_cases.h"  // first: op_cases.h tames <signal.h>'s si_result macro
#include "test_util.h"

#include <gtest/gtest.h>

#include <cstring>

namespace si_test::sparse {
namespace {

constexpr int32_t kThreads = 2;  // the pool splits work (and the caller participates)

class SparseGrid : public testing::TestWithParam<Case> {};

TEST_P(SparseGrid, CpuMatchesRef) {
    const Problem problem(GetParam());
    ContextPtr ref = make_ref_context();
    ASSERT_TRUE(ref) << last_error_text();
    std::vector<float> want, dense;
    ASSERT_EQ(problem.run_host(ref.get(), &want), SI_OK) << last_error_text();
    ASSERT_EQ(problem.run_dense(ref.get(), &dense), SI_OK) << last_error_text();
    const std::string ref_errors = problem.compare(dense, want);
    EXPECT_TRUE(ref_errors.empty()) << "ref sparse vs ref dense:\n" << ref_errors;
    for (const std::string& isa : available_isas()) {
        ContextPtr cpu = make_cpu_context(isa, kThreads);
        ASSERT_TRUE(cpu) << last_error_text();
        std::vector<float> got;
        ASSERT_EQ(problem.run_host(cpu.get(), &got), SI_OK) << isa << ": " << last_error_text();
        const std::string errors = problem.compare(want, got);
        EXPECT_TRUE(errors.empty()) << "isa " << isa << ":\n" << errors;
    }
}

// Lower-case prefix: every CTest name here contains "sparse" (ctest -R sparse).
INSTANTIATE_TEST_SUITE_P(sparse, SparseGrid, testing::ValuesIn(grid()),
                         [](const testing::TestParamInfo<Case>& info) { return info.param.name(); });

bool same_bits(const float* a, const float* b, size_t count) { return std::memcmp(a, b, count * sizeof(float)) == 0; }

// The grid has what it promises: the patterns are real (so a kernel that ignored them would
// fail) and the 2:4 data contain groups with 0, 1 and 2 non-zeros and ragged last groups.
TEST(sparse_cases, PatternsHoldAndCoverEdgeGroups) {
    int groups_by_count[3] = {0, 0, 0};
    bool ragged_seen = false;
    for (const Case& c : grid()) {
        const std::vector<float> w = make_weights(c, 1234);
        const Packed packed = pack(c, w);
        if (c.format == SI_SPARSE_2_4) {
            ragged_seen |= c.k % 4 != 0;
            for (int32_t r = 0; r < c.n; ++r)
                for (int32_t g = 0; g < c.k; g += 4) {
                    int count = 0;
                    for (int32_t i = g; i < std::min(g + 4, c.k); ++i) count += w[size_t(r) * size_t(c.k) + size_t(i)] != 0.0f;
                    ASSERT_LE(count, 2) << c.name();
                    ++groups_by_count[count];
                }
        } else {
            const int64_t zeros = std::lround(double(c.sparsity) * c.k);
            for (int32_t r = 0; r < c.n; ++r) {
                int64_t nnz = 0;
                for (int32_t i = 0; i < c.k; ++i) nnz += w[size_t(r) * size_t(c.k) + size_t(i)] != 0.0f;
                ASSERT_EQ(nnz, c.k - zeros) << c.name() << " row " << r;
                ASSERT_EQ(packed.row_offsets[size_t(r) + 1] - packed.row_offsets[size_t(r)], nnz) << c.name();
            }
        }
    }
    EXPECT_GT(groups_by_count[0], 0);
    EXPECT_GT(groups_by_count[1], 0);
    EXPECT_GT(groups_by_count[2], groups_by_count[1]);
    EXPECT_TRUE(ragged_seen);
}

// ---- the entry point -------------------------------------------------------------------------

TEST(sparse_entry, EmptyBatchWritesNothing) {
    for (si_sparse_format format : {SI_SPARSE_2_4, SI_SPARSE_BITMASK}) {
        const Problem problem(Case{3, 8, 64, format, 0.5f, SI_DTYPE_F16});
        ContextPtr ref = make_ref_context();
        ContextPtr cpu = make_cpu_context("", kThreads);
        ASSERT_TRUE(ref && cpu) << last_error_text();
        for (si_context* context : {ref.get(), cpu.get()}) {
            std::vector<float> y = problem.y_init;
            si_sparse_matmul_params p = problem.params(y.data());
            p.m = 0;
            EXPECT_EQ(si_sparse_matmul(context, &p), SI_OK) << last_error_text();
            EXPECT_TRUE(same_bits(y.data(), problem.y_init.data(), y.size()));
        }
    }
}

}  // namespace
}  // namespace si_test::sparse
