// test_cuda_nodevice.cpp: on a machine without a usable device (CTest hides any GPU with
// CUDA_VISIBLE_DEVICES=-1, so this also runs on GPU machines and in CI without a driver),
// creating a cuda context fails cleanly: SI_ERR_NO_DEVICE, a readable message, no context,
// the same answer when asked again, and the host backends unaffected.
#include "cuda_test_support.h"  // first: see the si_result note there
#include "op_cases.h"

#include <sharpinfer/sharpinfer.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace si_test {
namespace {

TEST(CudaNoDevice, ContextCreateReportsNoDevice) {
    int32_t live_before = -1;
    ASSERT_EQ(si_live_context_count(&live_before), SI_OK);
    const si_context_options options{SI_BACKEND_CUDA, 0, 0, 0};
    for (int attempt = 0; attempt < 2; ++attempt) {
        si_context* context = reinterpret_cast<si_context*>(&live_before);  // must be reset to null
        const si_result status = si_context_create(&options, &context);
        if (status == SI_OK) {
            si_context_destroy(context);
            const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
            GTEST_SKIP() << "a CUDA device is visible (CUDA_VISIBLE_DEVICES=" << (visible ? visible : "<unset>")
                         << "); ctest runs this test with CUDA_VISIBLE_DEVICES=-1";
        }
        EXPECT_EQ(status, SI_ERR_NO_DEVICE) << last_error_text();
        EXPECT_EQ(context, nullptr);
        const std::string message = last_error_text();
        const std::string prefix = "no CUDA device: ";
        EXPECT_EQ(message.compare(0, prefix.size(), prefix), 0) << message;
        EXPECT_GT(message.size(), prefix.size() + 8) << "the reason is missing: " << message;
        std::printf("attempt %d: %s\n", attempt + 1, message.c_str());
    }

    // The failed probe left no state that breaks host backends.
    si_context* ref = nullptr;
    const si_context_options ref_options{SI_BACKEND_REF, 0, 0, 0};
    ASSERT_EQ(si_context_create(&ref_options, &ref), SI_OK) << last_error_text();
    EXPECT_EQ(si_context_destroy(ref), SI_OK);
    int32_t live_after = -1;
    ASSERT_EQ(si_live_context_count(&live_after), SI_OK);
    EXPECT_EQ(live_after, live_before);
}

}  // namespace
}  // namespace si_test
