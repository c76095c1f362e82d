// test_cpu_ops.cpp: the cpu backend against ref over the whole op case grid, once per ISA
// level the machine has (CpuOps_scalar, CpuOps_avx2, CpuOps_avx512), plus exhaustive checks
// of the SIMD f16/bf16 conversions through si_embedding.
#include "op_cases.h"  // first: it tames <signal.h>'s si_result macro
#include "test_util.h"

#include "common/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace si_test {
namespace {

// Two threads: the pool splits work (and the caller participates) on every case.
constexpr int32_t kGridThreads = 2;

class CpuConversionTest : public testing::TestWithParam<std::string> {};

// Every 16-bit pattern as one embedding row: the SIMD conversion must agree with the
// scalar one in common/dtype.h bit for bit (NaN payloads may be quieted, so NaN only needs
// to stay NaN).
TEST_P(CpuConversionTest, AllPatternsThroughEmbedding) {
    ContextPtr context = make_cpu_context(GetParam(), kGridThreads);
    ASSERT_TRUE(context) << last_error_text();
    for (si_dtype dtype : {SI_DTYPE_F16, SI_DTYPE_BF16}) {
        std::vector<uint16_t> table(65536);
        for (uint32_t i = 0; i < 65536; ++i) table[i] = uint16_t(i);
        std::vector<int32_t> ids{0};
        std::vector<float> out(65536 + 8, 0.0f);
        si_embedding_params p{};
        p.table = table.data();
        p.ids = ids.data();
        p.out = out.data();
        p.table_dtype = dtype;
        p.vocab = 1;
        p.dim = 65536;
        p.n_tokens = 1;
        ASSERT_EQ(si_embedding(context.get(), &p), SI_OK) << last_error_text();
        int64_t wrong = 0;
        for (uint32_t i = 0; i < 65536; ++i) {
            const float want = dtype == SI_DTYPE_F16 ? si::f16_to_f32(uint16_t(i)) : si::bf16_to_f32(uint16_t(i));
            const bool same = std::isnan(want) ? std::isnan(out[i]) : si::f32_to_bits(out[i]) == si::f32_to_bits(want);
            if (!same && ++wrong <= 3) ADD_FAILURE() << si::dtype_name(dtype) << " pattern 0x" << std::hex << i << ": got " << out[i] << " want " << want;
        }
        EXPECT_EQ(wrong, 0);
        for (size_t i = 65536; i < out.size(); ++i) EXPECT_EQ(out[i], 0.0f) << "wrote past the row";
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, CpuConversionTest, testing::ValuesIn(available_isas()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace si_test

int main(int argc, char** argv) {
    testing::InitGoogleTest(&argc, argv);
    for (const std::string& isa : si_test::available_isas()) {
        si_test::register_op_case_tests(
            "CpuOps_" + isa,
            [isa](si_context** out) { return si_test::create_cpu_context(isa, si_test::kGridThreads, out); },
            [] { return std::make_unique<si_test::HostMemoryAdapter>(); });
    }
    return RUN_ALL_TESTS();
}
