// cuda_test_support.cpp: device probing and the CudaTest fixture (see the header).
#include "cuda_test_support.h"

#include "op_cases.h"

namespace si_test {

namespace {

struct Probe {
    bool usable = false;
    std::string reason;
};

Probe probe() {
    Probe result;
    si_context* context = nullptr;
    const si_result status = make_cuda_context(&context);
    if (status == SI_OK) {
        result.usable = true;
        si_context_destroy(context);
    } else if (status == SI_ERR_NO_DEVICE) {
        result.reason = last_error_text();  // already reads "no CUDA device: ..."
    } else {
        result.reason = "cuda backend unusable here (status " + std::to_string(status) + "): " + last_error_text();
    }
    return result;
}

}  // namespace

si_result make_cuda_context(si_context** out_context) {
    const si_context_options options{SI_BACKEND_CUDA, 0, 0, 0};
    return si_context_create(&options, out_context);
}

bool cuda_usable(std::string* reason) {
    static const Probe result = probe();
    if (reason) *reason = result.reason;
    return result.usable;
}

void CudaTest::SetUp() {
    ASSERT_EQ(si_live_context_count(&live_before_), SI_OK);
    std::string reason;
    if (!cuda_usable(&reason)) GTEST_SKIP() << reason;
    ASSERT_EQ(make_cuda_context(&context_), SI_OK) << last_error_text();
}

void CudaTest::TearDown() {
    if (context_) {
        EXPECT_EQ(si_context_destroy(context_), SI_OK) << last_error_text();
    }
    context_ = nullptr;
    int32_t live_after = -1;
    ASSERT_EQ(si_live_context_count(&live_after), SI_OK);
    EXPECT_EQ(live_after, live_before_) << "a context leaked";
}

}  // namespace si_test
