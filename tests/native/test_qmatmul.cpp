// test_qmatmul.cpp: si_qmatmul on the cpu backend against ref, on every ISA level the machine
// has (SI_CPU_ISA scalar / avx2 / avx512; avx512 runs the VNNI kernels where the CPU has
// them), over the case grid of qmatmul_cases.h (exact cases bit for bit, random cases within
// the tolerance there); plus batch invariance (a row's bits do not depend on m or on the
// thread count) and the entry's handling of empty and unsupported requests.
#include "qmatmul_cases.h"  // first: op_cases.h tames <signal.h>'s si_result macro
#include "test_util.h"

#include <gtest/gtest.h>

#include <cstring>
#include <tuple>

namespace si_test::qmatmul {
namespace {

constexpr int32_t kThreads = 2;  // the pool splits work (and the caller participates)

class QmatmulGrid : public testing::TestWithParam<Case> {};

TEST_P(QmatmulGrid, CpuMatchesRef) {
    const Problem problem(GetParam());
    ContextPtr ref = make_ref_context();
    ASSERT_TRUE(ref) << last_error_text();
    std::vector<float> want;
    ASSERT_EQ(problem.run_host(ref.get(), &want), SI_OK) << last_error_text();
    for (const std::string& isa : available_isas()) {
        ContextPtr cpu = make_cpu_context(isa, kThreads);
        ASSERT_TRUE(cpu) << last_error_text();
        std::vector<float> got;
        ASSERT_EQ(problem.run_host(cpu.get(), &got), SI_OK) << isa << ": " << last_error_text();
        const std::string errors = problem.compare(want, got);
        EXPECT_TRUE(errors.empty()) << "isa " << isa << ":\n" << errors;
    }
}

// Lower-case prefixes: every CTest name here contains "qmatmul" (ctest -R qmatmul).
INSTANTIATE_TEST_SUITE_P(qmatmul, QmatmulGrid, testing::ValuesIn(grid()),
                         [](const testing::TestParamInfo<Case>& info) { return info.param.name(); });

// ---- batch invariance ----------------------------------------------------------------------

using InvarianceParam = std::tuple<std::string, int>;  // isa, mode index

Case invariance_case(int mode, int32_t n, int32_t k, int32_t group_size) {
    // 0 W8A16, 1 W4A16, 2 W8A8, 3 W8A8 block-wise, 4 W4A8 block-wise.
    const si_weight_format format = mode == 1 || mode == 4 ? SI_WEIGHT_I4 : SI_WEIGHT_I8;
    const si_activation_mode activations = mode == 2 ? SI_ACTIVATIONS_I8 : mode >= 3 ? SI_ACTIVATIONS_I8_BLOCK32 : SI_ACTIVATIONS_FLOAT;
    return Case{17, n, k, group_size, format, activations, 3, 0, true, Data::Random};
}

// y for rows [row0, row0 + rows) of the problem's x.
std::vector<float> run_rows(si_context* context, const Problem& problem, int32_t row0, int32_t rows) {
    std::vector<float> y(size_t(rows) * size_t(problem.c.n), -1.0f);
    si_qmatmul_params p = problem.params(problem.x.data() + size_t(row0) * size_t(problem.x_stride), problem.q.data(),
                                         problem.scales.data(), problem.offsets.data(), problem.bias.data(), y.data());
    p.m = rows;
    p.y_stride = problem.c.n;
    EXPECT_EQ(si_qmatmul(context, &p), SI_OK) << last_error_text();
    return y;
}

bool same_bits(const float* a, const float* b, size_t count) { return std::memcmp(a, b, count * sizeof(float)) == 0; }

std::string invariance_name(const testing::TestParamInfo<InvarianceParam>& info) {
    const char* const modes[] = {"W8A16", "W4A16", "W8A8", "W8A8B32", "W4A8B32"};
    return std::get<0>(info.param) + "_" + modes[std::get<1>(info.param)];
}

class QmatmulBatchInvariance : public testing::TestWithParam<InvarianceParam> {};

TEST_P(QmatmulBatchInvariance, RowsMatchAcrossBatchSizesAndThreads) {
    const auto& [isa, mode] = GetParam();
    // n spans several pool chunks; k has ragged groups and vector tails; group sizes take the
    // small-group, large-group, per-channel and generic paths.
    // The last shape (block-wise modes only) gives 2 threads tiles of int4 weights over half of
    // L2 and 3 threads tiles under it: the two traversal orders of the block-wise kernel.
    for (const Shape& s : {Shape{97, 1000, 32}, Shape{200, 300, 16}, Shape{64, 300, 128}, Shape{50, 300, 300}, Shape{40, 300, 24},
                           Shape{2800, 3072, 32}}) {
        if (mode >= 3 && s.group_size % 32 != 0 && s.group_size < s.k) continue;  // would split a block
        if (mode < 3 && s.n > 1000) continue;
        const Problem problem(invariance_case(mode, s.n, s.k, s.group_size));
        const size_t n = size_t(s.n);
        ContextPtr two = make_cpu_context(isa, 2);
        ASSERT_TRUE(two) << last_error_text();
        const std::vector<float> batch = run_rows(two.get(), problem, 0, 17);
        for (int32_t r = 0; r < 17; ++r) {
            const std::vector<float> single = run_rows(two.get(), problem, r, 1);
            EXPECT_TRUE(same_bits(single.data(), batch.data() + size_t(r) * n, n)) << problem.c.name() << ": row " << r << " differs between m=1 and m=17";
        }
        for (int32_t rows : {2, 3, 4, 5, 8, 16}) {
            const std::vector<float> part = run_rows(two.get(), problem, 17 - rows, rows);
            EXPECT_TRUE(same_bits(part.data(), batch.data() + size_t(17 - rows) * n, size_t(rows) * n)) << problem.c.name() << ": m=" << rows;
        }
        for (int32_t threads : {1, 3}) {
            ContextPtr other = make_cpu_context(isa, threads);
            ASSERT_TRUE(other) << last_error_text();
            EXPECT_TRUE(same_bits(run_rows(other.get(), problem, 0, 17).data(), batch.data(), batch.size())) << problem.c.name() << ": " << threads << " threads vs 2";
            EXPECT_TRUE(same_bits(run_rows(other.get(), problem, 5, 1).data(), batch.data() + 5 * n, n)) << problem.c.name() << ": " << threads << " threads, m=1";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(qmatmul_isa, QmatmulBatchInvariance, testing::Combine(testing::ValuesIn(available_isas()), testing::Values(0, 1, 2, 3, 4)),
                         invariance_name);

// ---- the entry point -------------------------------------------------------------------------

TEST(qmatmul_entry, EmptyBatchWritesNothingAndUnsupportedModesAreRefused) {
    const Problem problem(Case{3, 8, 64, 32, SI_WEIGHT_I4, SI_ACTIVATIONS_FLOAT, 0, 0, false, Data::Exact});
    ContextPtr ref = make_ref_context();
    ContextPtr cpu = make_cpu_context("", kThreads);
    ASSERT_TRUE(ref && cpu) << last_error_text();
    for (si_context* context : {ref.get(), cpu.get()}) {
        std::vector<float> y = problem.y_init;
        si_qmatmul_params p = problem.params(problem.x.data(), problem.q.data(), problem.scales.data(), problem.offsets.data(),
                                             problem.bias.data(), y.data());
        p.m = 0;
        EXPECT_EQ(si_qmatmul(context, &p), SI_OK) << last_error_text();
        EXPECT_TRUE(same_bits(y.data(), problem.y_init.data(), y.size()));
        p.m = 3;
        p.activations = SI_ACTIVATIONS_I8;  // int8 activations need int8 weights
        EXPECT_EQ(si_qmatmul(context, &p), SI_ERR_UNSUPPORTED);
        p.activations = SI_ACTIVATIONS_FLOAT;
        p.offsets = problem.offsets.data();
        p.activations = SI_ACTIVATIONS_I8_BLOCK32;
        p.group_size = 16;  // block-wise activations: a group may not split a 32-k block
        EXPECT_EQ(si_qmatmul(context, &p), SI_ERR_INVALID_ARGUMENT);
        EXPECT_NE(last_error_text().find("multiple of 32"), std::string::npos) << last_error_text();
        p.group_size = 64;  // per channel (>= k) is fine
        EXPECT_EQ(si_qmatmul(context, &p), SI_OK) << last_error_text();
    }
}

// Symmetric int4 (offsets = NULL) means offset = -8 * scale: the same bits as affine int4 given
// those offsets explicitly, in every activation mode, on ref and cpu.
TEST(qmatmul_entry, SymmetricInt4EqualsAffineWithMinusEightScaleOffsets) {
    for (si_activation_mode activations : {SI_ACTIVATIONS_FLOAT, SI_ACTIVATIONS_I8_BLOCK32}) {
        const Problem problem(Case{5, 21, 172, 32, SI_WEIGHT_I4, activations, 1, 2, true, Data::Random});
        std::vector<float> minus_eight(problem.scales.size());
        for (size_t i = 0; i < minus_eight.size(); ++i) minus_eight[i] = -8.0f * problem.scales[i];
        ContextPtr ref = make_ref_context();
        ContextPtr cpu = make_cpu_context("", kThreads);
        ASSERT_TRUE(ref && cpu) << last_error_text();
        for (si_context* context : {ref.get(), cpu.get()}) {
            std::vector<float> affine = problem.y_init, symmetric = problem.y_init;
            si_qmatmul_params p = problem.params(problem.x.data(), problem.q.data(), problem.scales.data(), minus_eight.data(),
                                                 problem.bias.data(), affine.data());
            ASSERT_EQ(si_qmatmul(context, &p), SI_OK) << last_error_text();
            p.offsets = nullptr;
            p.y = symmetric.data();
            ASSERT_EQ(si_qmatmul(context, &p), SI_OK) << last_error_text();
            EXPECT_TRUE(same_bits(affine.data(), symmetric.data(), affine.size())) << problem.c.name();
        }
    }
}

}  // namespace
}  // namespace si_test::qmatmul
