// test_trace.cpp: the si_trace_* exports reach NVTX. An injection library (nvtx_recorder.cpp)
// stands in for Nsight Systems and records what it is sent; each gtest case runs in its own
// process (CTest), so NVTX initializes with the recorder set below.
#include <sharpinfer/sharpinfer.h>

#include <gtest/gtest.h>

#include <dlfcn.h>
#include <cstdlib>
#include <string>

namespace {

std::string recorded_events() {
    void* recorder = dlopen(SI_NVTX_RECORDER_PATH, RTLD_NOW | RTLD_NOLOAD);
    if (!recorder) return "(recorder not loaded)";
    auto events = reinterpret_cast<const char* (*)()>(dlsym(recorder, "si_test_nvtx_events"));
    std::string text = events ? events() : "(no si_test_nvtx_events)";
    dlclose(recorder);
    return text;
}

TEST(Trace, RangesReachTheProfiler) {
    ASSERT_EQ(setenv("NVTX_INJECTION64_PATH", SI_NVTX_RECORDER_PATH, 1), 0);
    int32_t available = -1;
    ASSERT_EQ(si_trace_available(&available), SI_OK);
    if (!available) GTEST_SKIP() << "this build has no NVTX headers, so ranges are compiled out";

    ASSERT_EQ(si_trace_push("step"), SI_OK);
    ASSERT_EQ(si_trace_push("forward"), SI_OK);
    ASSERT_EQ(si_trace_pop(), SI_OK);
    ASSERT_EQ(si_trace_pop(), SI_OK);
    uint64_t id = 0;
    ASSERT_EQ(si_trace_range_start("request 7", &id), SI_OK);
    EXPECT_NE(id, 0u);
    ASSERT_EQ(si_trace_range_end(id), SI_OK);
    EXPECT_EQ(recorded_events(), "push step;push forward;pop;pop;start request 7 #1;end #1;");
}

TEST(Trace, WithoutAProfilerRangesAreHarmless) {
    unsetenv("NVTX_INJECTION64_PATH");
    ASSERT_EQ(si_trace_push("x"), SI_OK);
    ASSERT_EQ(si_trace_pop(), SI_OK);
    uint64_t id = 123;
    ASSERT_EQ(si_trace_range_start("y", &id), SI_OK);
    EXPECT_EQ(id, 0u);  // no tool attached: NVTX hands out no ids
    EXPECT_EQ(si_trace_range_end(id), SI_OK);
}

TEST(Trace, NullArgumentsAreErrors) {
    EXPECT_EQ(si_trace_push(nullptr), SI_ERR_INVALID_ARGUMENT);
    uint64_t id = 0;
    EXPECT_EQ(si_trace_range_start(nullptr, &id), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_trace_range_start("x", nullptr), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_trace_available(nullptr), SI_ERR_INVALID_ARGUMENT);
}

}  // namespace
