// test_cuda_sparse_matmul.cpp: GPU tier for si_sparse_matmul: the cuda backend against the
// ref backend run on host copies of the same bytes.
//  - CudaSparseGrid: the shared case grid of sparse_cases.h (2:4 and bitmask at 50/70/90%,
//    f32/f16/bf16 values, k/m/n tails, strides, bias), bit for bit: small-integer data make
//    every summation order exact, and x rounded to f16/bf16 by the tensor-core path stays
//    exact. Again with the values and x pointers one element off alignment (forcing the
//    per-element GEMV and the f32 tiled kernel where the aligned case takes vector loads or
//    tensor cores) and the 2:4 metadata 2 bytes off 4-byte alignment.
//  - CudaSparseKernels: extra shapes aimed at the kernels' own tails: the tensor-core path's
//    64 x 64 and 128 x 128 block tiles (m past 64 and 128, n past 64 and 128, k with a half
//    last 32-k step, odd x strides that take scalar x loads) and the tiled kernel with
//    several 64-k steps, bit for bit.
//  - CudaSparseRandom: larger random magnitudes (weights in [-2, 2], x in [-64, 64]) within a
//    stated tolerance: per output, twice the error of ref run on x rounded to the values
//    dtype (the only rounding the tensor-core path adds; 0 for f32 values) plus 1e-5 of
//    sum |x| |w| for the order of f32 accumulation.
//  - CudaSparseApi: unsupported dtype and format give SI_ERR_UNSUPPORTED with a message;
//    m = 0 writes nothing.
// y gaps and a guard after y must keep their NaN sentinel; x gaps and a guard after x are
// NaN, so a read of x past k shows up. Without a device every test skips with
// "no CUDA device: ...".
#include "cuda_test_support.h"  // first: see the si_result note there
#include "cuda_driver.h"
#include "sparse_cases.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace si_test::sparse {
namespace {

using cuda_driver::CUdeviceptr;

// One device allocation holding a copy of a host vector, `offset` bytes into it (to test
// misaligned pointers); freed on destruction. An empty vector gives a null pointer.
class DeviceCopy {
public:
    template <typename T>
    explicit DeviceCopy(const std::vector<T>& host, size_t offset = 0) : bytes_(host.size() * sizeof(T)), offset_(offset) {
        if (host.empty()) return;
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
    T* get() const { return base_ ? reinterpret_cast<T*>(base_ + offset_) : nullptr; }

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

// Where the device copies sit relative to an aligned allocation.
struct Misalign {
    size_t values_bytes = 0;
    size_t x_bytes = 0;
    size_t index_bytes = 0;
    std::string describe() const {
        if (!values_bytes && !x_bytes && !index_bytes) return "";
        return " (values +" + std::to_string(values_bytes) + " B, x +" + std::to_string(x_bytes) + " B, index +" +
               std::to_string(index_bytes) + " B)";
    }
};

Misalign one_element_off(const Case& c) {
    Misalign m;
    m.values_bytes = size_t(si::dtype_size(c.dtype));
    m.x_bytes = sizeof(float);
    m.index_bytes = c.format == SI_SPARSE_2_4 ? sizeof(uint16_t) : 0;  // uint64 mask words stay aligned
    return m;
}

// Runs the problem on the cuda context and returns y as downloaded (gaps and guard included).
std::vector<float> run_cuda(si_context* context, const Problem& problem, const Misalign& misalign) {
    const Packed& packed = problem.packed;
    const DeviceCopy x(problem.x, misalign.x_bytes), values(packed.values, misalign.values_bytes),
        meta(packed.meta24, misalign.index_bytes), mask(packed.mask), row_offsets(packed.row_offsets), bias(problem.bias),
        y(problem.y_init);
    const void* index = problem.c.format == SI_SPARSE_2_4 ? meta.get() : mask.get();
    const si_sparse_matmul_params p =
        params(problem.c, values.get(), index, row_offsets.get<int64_t>(), x.get<float>(), y.get<float>(), bias.get<float>());
    const si_result status = si_sparse_matmul(context, &p);
    if (status != SI_OK) throw std::runtime_error("si_sparse_matmul: status " + std::to_string(status) + ": " + last_error_text());
    if (si_context_synchronize(context) != SI_OK) throw std::runtime_error("si_context_synchronize: " + last_error_text());
    std::vector<float> got(problem.y_init.size());
    y.download(&got);
    return got;
}

void expect_bitwise(si_context* context, const Problem& problem, const Misalign& misalign) {
    ContextPtr ref = make_ref_context();
    ASSERT_TRUE(ref) << last_error_text();
    std::vector<float> want;
    ASSERT_EQ(problem.run_host(ref.get(), &want), SI_OK) << last_error_text();
    const std::vector<float> got = run_cuda(context, problem, misalign);
    const std::string errors = problem.compare(want, got);
    EXPECT_TRUE(errors.empty()) << problem.c.name() << misalign.describe() << ":\n" << errors;
}

class CudaSparseFixture : public testing::TestWithParam<Case> {
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

std::string case_name(const testing::TestParamInfo<Case>& info) { return info.param.name(); }

// ---- the shared grid ------------------------------------------------------------------------------

class CudaSparseGrid : public CudaSparseFixture {};

TEST_P(CudaSparseGrid, MatchesRef) { expect_bitwise(context_, Problem(GetParam()), Misalign{}); }

TEST_P(CudaSparseGrid, MisalignedMatchesRef) {
    const Case& c = GetParam();
    expect_bitwise(context_, Problem(c), one_element_off(c));
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaSparseGrid, testing::ValuesIn(grid()), case_name);

// ---- kernel-specific shapes -------------------------------------------------------------------------

Case make_case(si_sparse_format format, float sparsity, si_dtype dtype, int32_t m, int32_t n, int32_t k, int32_t x_pad = 0,
               int32_t y_pad = 0, bool bias = false) {
    Case c{m, n, k, format, sparsity, dtype};
    c.x_pad = x_pad;
    c.y_pad = y_pad;
    c.bias = bias;
    return c;
}

std::vector<Case> kernel_cases() {
    std::vector<Case> cases;
    // Tensor cores (2:4, f16/bf16, m > 16): 64 x 64 tiles up to m = 64, 128 x 128 beyond.
    // k = 16 and 48: a last 32-k step with only its first half inside kp; 1000: kp = 1008.
    // x_pad 1 makes the x stride odd (scalar x loads), 3 keeps it odd with another k.
    for (si_dtype dtype : {SI_DTYPE_F16, SI_DTYPE_BF16}) {
        cases.push_back(make_case(SI_SPARSE_2_4, 0.5f, dtype, 17, 64, 16));
        cases.push_back(make_case(SI_SPARSE_2_4, 0.5f, dtype, 33, 65, 48, 0, 3, true));
        cases.push_back(make_case(SI_SPARSE_2_4, 0.5f, dtype, 64, 97, 100, 1, 0, true));
        cases.push_back(make_case(SI_SPARSE_2_4, 0.5f, dtype, 65, 128, 256, 0, 0, false));
        cases.push_back(make_case(SI_SPARSE_2_4, 0.5f, dtype, 128, 129, 1000, 3, 5, true));
        cases.push_back(make_case(SI_SPARSE_2_4, 0.5f, dtype, 300, 200, 259, 0, 0, true));
        cases.push_back(make_case(SI_SPARSE_2_4, 0.5f, dtype, 257, 16, 64, 2, 1, false));
    }
    // The tiled kernel: f32 2:4 and bitmask at every sparsity, several 64-k steps, tails.
    cases.push_back(make_case(SI_SPARSE_2_4, 0.5f, SI_DTYPE_F32, 100, 130, 333, 1, 2, true));
    for (float sparsity : {0.5f, 0.7f, 0.9f}) {
        cases.push_back(make_case(SI_SPARSE_BITMASK, sparsity, SI_DTYPE_F16, 70, 129, 200, 0, 1, true));
        cases.push_back(make_case(SI_SPARSE_BITMASK, sparsity, SI_DTYPE_BF16, 200, 65, 64, 1, 0, false));
        cases.push_back(make_case(SI_SPARSE_BITMASK, sparsity, SI_DTYPE_F32, 17, 33, 129, 0, 0, true));
    }
    // GEMV: wide rows (many 128-k windows / mask words) and the 4-row passes with a tail.
    cases.push_back(make_case(SI_SPARSE_2_4, 0.5f, SI_DTYPE_F16, 1, 300, 4100, 0, 0, true));
    cases.push_back(make_case(SI_SPARSE_2_4, 0.5f, SI_DTYPE_BF16, 7, 33, 2049, 1, 0, false));
    cases.push_back(make_case(SI_SPARSE_BITMASK, 0.7f, SI_DTYPE_F16, 1, 300, 4100, 0, 0, true));
    cases.push_back(make_case(SI_SPARSE_BITMASK, 0.9f, SI_DTYPE_F32, 15, 33, 2049, 2, 3, false));
    return cases;
}

class CudaSparseKernels : public CudaSparseFixture {};

TEST_P(CudaSparseKernels, MatchesRef) { expect_bitwise(context_, Problem(GetParam()), Misalign{}); }

TEST_P(CudaSparseKernels, MisalignedMatchesRef) {
    const Case& c = GetParam();
    expect_bitwise(context_, Problem(c), one_element_off(c));
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaSparseKernels, testing::ValuesIn(kernel_cases()), case_name);

// ---- random magnitudes, within a tolerance ------------------------------------------------------------

float uniform(Rng* rng, float lo, float hi) { return lo + (hi - lo) * float(rng->next() & 0xffffffu) / 16777216.0f; }

// A value as the dtype stores it.
float round_to(si_dtype dtype, float v) {
    if (dtype == SI_DTYPE_F16) return si::f16_to_f32(si::f32_to_f16(v));
    if (dtype == SI_DTYPE_BF16) return si::bf16_to_f32(si::f32_to_bf16(v));
    return v;
}

// The case's sparsity pattern with random weights in [-2, 2] (exact in the dtype) and random
// x in [-64, 64]; bias random too.
Problem random_problem(const Case& c) {
    Problem problem(c);
    Rng rng(hash_name(c.name()) + 99);
    for (float& w : problem.w) {
        if (w == 0.0f) continue;
        float v = round_to(c.dtype, uniform(&rng, -2.0f, 2.0f));
        if (v == 0.0f) v = 0.5f;  // keep the pattern
        w = v;
    }
    problem.packed = pack(c, problem.w);
    for (int32_t r = 0; r < c.m; ++r)
        for (int32_t i = 0; i < c.k; ++i) problem.x[size_t(r) * size_t(c.x_stride()) + size_t(i)] = uniform(&rng, -64.0f, 64.0f);
    for (float& b : problem.bias) b = uniform(&rng, -4.0f, 4.0f);
    return problem;
}

class CudaSparseRandom : public CudaSparseFixture {};

TEST_P(CudaSparseRandom, WithinTolerance) {
    const Case& c = GetParam();
    const Problem problem = random_problem(c);
    ContextPtr ref = make_ref_context();
    ASSERT_TRUE(ref) << last_error_text();
    std::vector<float> want, want_rounded;
    ASSERT_EQ(problem.run_host(ref.get(), &want), SI_OK) << last_error_text();
    Problem rounded = problem;  // x rounded to the values dtype, as the tensor-core path stages it
    for (float& v : rounded.x)
        if (!std::isnan(v)) v = round_to(c.dtype, v);
    ASSERT_EQ(rounded.run_host(ref.get(), &want_rounded), SI_OK) << last_error_text();

    std::vector<float> got;
    ASSERT_NO_THROW(got = run_cuda(context_, problem, Misalign{}));
    ASSERT_EQ(got.size(), want.size());
    int reported = 0;
    for (int32_t r = 0; r < c.m; ++r) {
        const float* x = problem.x.data() + size_t(r) * size_t(c.x_stride());
        for (int32_t ch = 0; ch < c.n; ++ch) {
            const float* w = problem.w.data() + size_t(ch) * size_t(c.k);
            double magnitude = 0.0;  // sum |x| |w|
            for (int32_t i = 0; i < c.k; ++i) magnitude += std::fabs(double(x[i]) * double(w[i]));
            const size_t at = size_t(r) * size_t(c.y_stride()) + size_t(ch);
            const double rounding = std::fabs(double(want_rounded[at]) - double(want[at]));
            const double allowed = 2.0 * rounding + 1e-5 * magnitude + 1e-6;
            const double error = std::fabs(double(got[at]) - double(want[at]));
            if (!(error <= allowed) && reported++ < 5) {
                ADD_FAILURE() << c.name() << ": y[" << r << ", " << ch << "] = " << got[at] << ", ref " << want[at]
                              << ": error " << error << " > allowed " << allowed << " (x rounding alone: " << rounding
                              << ", sum |x w| " << magnitude << ")";
            }
        }
    }
    // Outside the outputs nothing may change.
    for (size_t at = 0; at < got.size(); ++at) {
        const int64_t r = int64_t(at) / c.y_stride(), ch = int64_t(at) % c.y_stride();
        if (r < c.m && ch < c.n) continue;
        uint32_t bits;
        std::memcpy(&bits, &got[at], 4);
        if (bits != kSentinel && reported++ < 5) ADD_FAILURE() << c.name() << ": wrote outside the outputs at element " << at;
    }
}

std::vector<Case> random_cases() {
    return {
        make_case(SI_SPARSE_2_4, 0.5f, SI_DTYPE_F16, 200, 192, 2048, 0, 0, true),   // tensor cores, 128 x 128 tiles
        make_case(SI_SPARSE_2_4, 0.5f, SI_DTYPE_BF16, 200, 192, 2048, 0, 0, true),
        make_case(SI_SPARSE_2_4, 0.5f, SI_DTYPE_F16, 40, 100, 1000, 1, 0, false),   // 64 x 64 tiles, scalar x
        make_case(SI_SPARSE_2_4, 0.5f, SI_DTYPE_F16, 1, 256, 4096, 0, 0, true),     // decode GEMV
        make_case(SI_SPARSE_2_4, 0.5f, SI_DTYPE_BF16, 9, 96, 3000, 0, 0, false),    // 4-row GEMV passes
        make_case(SI_SPARSE_2_4, 0.5f, SI_DTYPE_F32, 80, 96, 1500, 0, 0, true),     // tiled
        make_case(SI_SPARSE_BITMASK, 0.7f, SI_DTYPE_F16, 5, 160, 3000, 0, 0, true), // bitmask GEMV
        make_case(SI_SPARSE_BITMASK, 0.9f, SI_DTYPE_BF16, 100, 96, 2000, 0, 0, false),  // bitmask tiled
        make_case(SI_SPARSE_BITMASK, 0.5f, SI_DTYPE_F32, 1, 128, 4096, 0, 0, true),
    };
}

INSTANTIATE_TEST_SUITE_P(Random, CudaSparseRandom, testing::ValuesIn(random_cases()), case_name);

// ---- API behaviour on the cuda context ---------------------------------------------------------------

class CudaSparseApi : public CudaTest {};

TEST_F(CudaSparseApi, UnsupportedDtypeAndFormatAreReported) {
    const Problem problem(make_case(SI_SPARSE_2_4, 0.5f, SI_DTYPE_F16, 3, 8, 32));
    const DeviceCopy x(problem.x), values(problem.packed.values), meta(problem.packed.meta24), y(problem.y_init);
    si_sparse_matmul_params p = params(problem.c, values.get(), meta.get(), nullptr, x.get<float>(), y.get<float>(), nullptr);
    p.values_dtype = SI_DTYPE_I8;
    EXPECT_EQ(si_sparse_matmul(context_, &p), SI_ERR_UNSUPPORTED);
    EXPECT_NE(last_error_text().find("si_sparse_matmul"), std::string::npos) << last_error_text();
    p.values_dtype = SI_DTYPE_F16;
    p.format = 7;
    EXPECT_EQ(si_sparse_matmul(context_, &p), SI_ERR_UNSUPPORTED);
    EXPECT_NE(last_error_text().find("si_sparse_matmul"), std::string::npos) << last_error_text();
}

TEST_F(CudaSparseApi, EmptyBatchWritesNothing) {
    for (si_sparse_format format : {SI_SPARSE_2_4, SI_SPARSE_BITMASK}) {
        Case c = make_case(format, 0.5f, SI_DTYPE_F16, 2, 8, 40);
        const Problem problem(c);
        const DeviceCopy x(problem.x), values(problem.packed.values), meta(problem.packed.meta24), mask(problem.packed.mask),
            row_offsets(problem.packed.row_offsets), y(problem.y_init);
        si_sparse_matmul_params p = params(c, values.get(), format == SI_SPARSE_2_4 ? meta.get() : mask.get(),
                                           row_offsets.get<int64_t>(), x.get<float>(), y.get<float>(), nullptr);
        p.m = 0;
        ASSERT_EQ(si_sparse_matmul(context_, &p), SI_OK) << last_error_text();
        ASSERT_EQ(si_context_synchronize(context_), SI_OK) << last_error_text();
        std::vector<float> got(problem.y_init.size());
        y.download(&got);
        EXPECT_EQ(std::memcmp(got.data(), problem.y_init.data(), got.size() * sizeof(float)), 0) << c.format_name();
    }
}

}  // namespace
}  // namespace si_test::sparse
