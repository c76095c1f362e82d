// cuda_test_support.h: what every GPU-tier test shares: whether a usable CUDA device is
// present (asked once, through the library itself) and a fixture that owns one cuda
// context, skips with "no CUDA device: <reason>" when there is none, and checks that no
// context leaks.
#pragma once

// op_cases.h comes first everywhere: it neutralizes glibc's si_result macro (<signal.h>)
// before sharpinfer.h is seen, so this header must be the first include of every
// GPU-tier test source.
#include "op_cases.h"

#include <sharpinfer/sharpinfer.h>

#include <gtest/gtest.h>

#include <string>

namespace si_test {

// True when si_context_create(SI_BACKEND_CUDA) succeeds. Otherwise false, with *reason
// set to the library's message: "no CUDA device: ..." for SI_ERR_NO_DEVICE, or what made
// the device unusable (e.g. compute capability below 8.0). Computed on first call.
bool cuda_usable(std::string* reason);

// Creates a cuda context on device 0.
si_result make_cuda_context(si_context** out_context);

class CudaTest : public ::testing::Test {
protected:
    void SetUp() override;
    void TearDown() override;

    si_context* context_ = nullptr;

private:
    int32_t live_before_ = 0;
};

}  // namespace si_test
