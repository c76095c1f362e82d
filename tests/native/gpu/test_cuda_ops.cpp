// test_cuda_ops.cpp: the GPU tier's case grid and main(): every case of op_cases() runs on
// SI_BACKEND_CUDA through DeviceMemoryAdapter and is compared with ref, one GoogleTest
// test per case (CudaOps.<case name>). Without a device each test is skipped with
// "no CUDA device: <reason>"; a case the cuda backend reports unsupported is skipped with
// its message, never counted as passed.
#include "cuda_test_support.h"  // first: see the si_result note there
#include "device_memory_adapter.h"
#include "op_cases.h"

#include <gtest/gtest.h>

namespace si_test {
namespace {

class CudaOpCaseTest : public CudaTest {
public:
    explicit CudaOpCaseTest(const OpCase* op_case) : op_case_(op_case) {}

    void TestBody() override {
        DeviceMemoryAdapter adapter;
        const CaseResult result = run_op_case(*op_case_, context_, adapter);
        switch (result.outcome) {
            case Outcome::Passed: return;
            case Outcome::Unsupported: GTEST_SKIP() << "unsupported on cuda: " << result.message;
            case Outcome::Failed: FAIL() << result.message;
        }
    }

private:
    const OpCase* op_case_;
};

void register_cuda_op_case_tests() {
    for (const OpCase& op_case : op_cases()) {
        const OpCase* pointer = &op_case;  // op_cases() lives for the whole run
        ::testing::RegisterTest("CudaOps", op_case.name.c_str(), nullptr, nullptr, __FILE__, __LINE__,
                                [pointer]() -> CudaTest* { return new CudaOpCaseTest(pointer); });
    }
}

}  // namespace
}  // namespace si_test

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    si_test::register_cuda_op_case_tests();
    return RUN_ALL_TESTS();
}
