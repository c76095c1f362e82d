// test_cuda_qmatmul.cpp: GPU tier for si_qmatmul: the cuda backend against the ref backend
// run on host copies of the same bytes, over the case grid of qmatmul_cases.h (exact cases
// bit for bit, random ones within its tolerance; y gaps and a guard after y must keep their
// sentinel, and the x gaps / guard are NaN so a stray read shows up), plus the same cases
// with misaligned device pointers (forcing the per-element kernels on shapes that otherwise
// take the 16-byte vector paths). Without a device every test skips with "no CUDA device: ...".
#include "cuda_test_support.h"  // first: see the si_result note there
#include "cuda_driver.h"
#include "qmatmul_cases.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace si_test::qmatmul {
namespace {

using cuda_driver::CUdeviceptr;

// One device allocation holding a copy of a host vector, `offset` bytes into it (to test
// misaligned pointers); freed on destruction.
class DeviceCopy {
public:
    template <typename T>
    DeviceCopy(const std::vector<T>& host, size_t offset = 0) : bytes_(host.size() * sizeof(T)), offset_(offset) {
        std::string error;
        api_ = cuda_driver::api(&error);
        if (!api_) throw std::runtime_error(error);
        if (const int r = api_->cuMemAlloc(&base_, std::max<size_t>(bytes_ + offset_, 16)))
            throw std::runtime_error(cuda_driver::describe(*api_, "cuMemAlloc", r));
        if (const int r = api_->cuMemcpyHtoD(base_ + offset_, host.data(), bytes_))
            throw std::runtime_error(cuda_driver::describe(*api_, "cuMemcpyHtoD", r));
    }
    ~DeviceCopy() {
        if (base_) api_->cuMemFree(base_);
    }
    DeviceCopy(const DeviceCopy&) = delete;
    DeviceCopy& operator=(const DeviceCopy&) = delete;

    template <typename T = void>
    T* get() const { return reinterpret_cast<T*>(base_ + offset_); }

    template <typename T>
    void download(std::vector<T>* host) const {
        if (const int r = api_->cuMemcpyDtoH(host->data(), base_ + offset_, host->size() * sizeof(T)))
            throw std::runtime_error(cuda_driver::describe(*api_, "cuMemcpyDtoH", r));
    }

private:
    const cuda_driver::Api* api_ = nullptr;
    CUdeviceptr base_ = 0;
    size_t bytes_;
    size_t offset_;
};

// Runs the case on the cuda context with x and q placed `misalign` bytes past an aligned
// address (x by whole floats), and compares with ref.
void run_case(si_context* context, const Case& c, size_t misalign) {
    const Problem problem(c);
    ContextPtr ref = make_ref_context();
    ASSERT_TRUE(ref) << last_error_text();
    std::vector<float> want;
    ASSERT_EQ(problem.run_host(ref.get(), &want), SI_OK) << last_error_text();

    const DeviceCopy x(problem.x, misalign * sizeof(float)), q(problem.q, misalign), scales(problem.scales),
        offsets(problem.offsets), bias(problem.bias), y(problem.y_init);
    const si_qmatmul_params p =
        problem.params(x.get<float>(), q.get(), scales.get<float>(), offsets.get<float>(), bias.get<float>(), y.get<float>());
    ASSERT_EQ(si_qmatmul(context, &p), SI_OK) << last_error_text();
    ASSERT_EQ(si_context_synchronize(context), SI_OK) << last_error_text();
    std::vector<float> got(problem.y_init.size());
    y.download(&got);
    const std::string errors = problem.compare(want, got);
    EXPECT_TRUE(errors.empty()) << c.name() << (misalign ? " (misaligned x and q)" : "") << ":\n" << errors;
}

class CudaQmatmul : public testing::TestWithParam<Case> {
protected:
    void SetUp() override {
        ASSERT_EQ(si_live_context_count(&live_before_), SI_OK);
        std::string reason;
        if (!cuda_usable(&reason)) GTEST_SKIP() << reason;
        ASSERT_EQ(make_cuda_context(&context_), SI_OK) << last_error_text();
    }
    void TearDown() override {
        if (context_) {
            EXPECT_EQ(si_context_destroy(context_), SI_OK) << last_error_text();
        }
        context_ = nullptr;
        int32_t live_after = -1;
        ASSERT_EQ(si_live_context_count(&live_after), SI_OK);
        EXPECT_EQ(live_after, live_before_) << "a context leaked";
    }

    si_context* context_ = nullptr;
    int32_t live_before_ = 0;
};

TEST_P(CudaQmatmul, MatchesRef) { run_case(context_, GetParam(), 0); }

INSTANTIATE_TEST_SUITE_P(Cases, CudaQmatmul, testing::ValuesIn(grid()),
                         [](const testing::TestParamInfo<Case>& info) { return info.param.name(); });

// The vector-eligible shapes (k a multiple of 32; the others take the per-element kernels
// anyway) again, with x and q one element off 16-byte alignment.
class CudaQmatmulMisaligned : public CudaQmatmul {};

TEST_P(CudaQmatmulMisaligned, MatchesRef) { run_case(context_, GetParam(), 1); }

std::vector<Case> vector_eligible_cases() {
    std::vector<Case> cases;
    for (const Case& c : grid())
        if (c.k % 32 == 0) cases.push_back(c);
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaQmatmulMisaligned, testing::ValuesIn(vector_eligible_cases()),
                         [](const testing::TestParamInfo<Case>& info) { return info.param.name(); });

}  // namespace
}  // namespace si_test::qmatmul
