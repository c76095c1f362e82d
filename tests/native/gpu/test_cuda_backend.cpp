// test_cuda_backend.cpp: behavior specific to the cuda backend that the ref comparison grid
// cannot show: context and device errors, out-of-range embedding ids (zeros on cuda, an
// error on ref/cpu), the head_dim limit, empty work, and that ops are asynchronous.
#include "cuda_test_support.h"  // first: see the si_result note there
#include "cuda_driver.h"
#include "op_cases.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

namespace si_test {
namespace {

using cuda_driver::CUdeviceptr;

// One device allocation for the life of a test, filled from and read back to host vectors.
class DeviceBuffer {
public:
    explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
        std::string error;
        api_ = cuda_driver::api(&error);
        if (!api_) throw std::runtime_error(error);
        if (api_->cuMemAlloc(&pointer_, bytes)) throw std::runtime_error("cuMemAlloc failed");
    }
    ~DeviceBuffer() {
        if (pointer_) api_->cuMemFree(pointer_);
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    template <typename T>
    T* get() const { return reinterpret_cast<T*>(pointer_); }
    template <typename T>
    void upload(const std::vector<T>& host) {
        ASSERT_LE(host.size() * sizeof(T), bytes_);
        ASSERT_EQ(api_->cuMemcpyHtoD(pointer_, host.data(), host.size() * sizeof(T)), 0);
    }
    template <typename T>
    std::vector<T> download(size_t count) const {
        std::vector<T> host(count);
        EXPECT_EQ(api_->cuMemcpyDtoH(host.data(), pointer_, count * sizeof(T)), 0);
        return host;
    }

private:
    const cuda_driver::Api* api_ = nullptr;
    CUdeviceptr pointer_ = 0;
    size_t bytes_;
};

TEST(CudaContext, BadOrdinalsAreRejectedWithMessages) {
    std::string reason;
    if (!cuda_usable(&reason)) GTEST_SKIP() << reason;
    si_context* context = nullptr;
    si_context_options options{SI_BACKEND_CUDA, 0, 1 << 20, 0};
    EXPECT_EQ(si_context_create(&options, &context), SI_ERR_NO_DEVICE);
    EXPECT_EQ(context, nullptr);
    EXPECT_NE(last_error_text().find("ordinal"), std::string::npos) << last_error_text();
    options.device_ordinal = -1;
    EXPECT_EQ(si_context_create(&options, &context), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(context, nullptr);
    // The failures leave nothing behind: a good context still works.
    options.device_ordinal = 0;
    ASSERT_EQ(si_context_create(&options, &context), SI_OK) << last_error_text();
    EXPECT_EQ(si_context_synchronize(context), SI_OK) << last_error_text();
    EXPECT_EQ(si_context_destroy(context), SI_OK);
}

TEST_F(CudaTest, ManyContextsCoexist) {
    std::vector<si_context*> contexts(4, nullptr);
    for (si_context*& c : contexts) ASSERT_EQ(make_cuda_context(&c), SI_OK) << last_error_text();
    for (si_context* c : contexts) EXPECT_EQ(si_context_synchronize(c), SI_OK);
    for (si_context* c : contexts) EXPECT_EQ(si_context_destroy(c), SI_OK);
}

TEST_F(CudaTest, EmbeddingOutOfRangeIdsGiveZeroRows) {
    const int vocab = 5, dim = 7;
    std::vector<float> table(vocab * dim);
    for (size_t i = 0; i < table.size(); ++i) table[i] = float(i) + 1.0f;
    const std::vector<int32_t> ids = {2, -1, 5, 0, 1 << 30};
    DeviceBuffer d_table(table.size() * 4), d_ids(ids.size() * 4), d_out(ids.size() * dim * 4);
    d_table.upload(table);
    d_ids.upload(ids);
    d_out.upload(std::vector<float>(ids.size() * dim, NAN));
    si_embedding_params p{};
    p.table = d_table.get<void>();
    p.ids = d_ids.get<int32_t>();
    p.out = d_out.get<float>();
    p.table_dtype = SI_DTYPE_F32;
    p.vocab = vocab;
    p.dim = dim;
    p.n_tokens = int32_t(ids.size());
    ASSERT_EQ(si_embedding(context_, &p), SI_OK) << last_error_text();
    ASSERT_EQ(si_context_synchronize(context_), SI_OK) << last_error_text();
    const std::vector<float> out = d_out.download<float>(ids.size() * dim);
    for (size_t t = 0; t < ids.size(); ++t) {
        const bool valid = ids[t] >= 0 && ids[t] < vocab;
        for (int d = 0; d < dim; ++d) {
            const float want = valid ? table[size_t(ids[t]) * dim + d] : 0.0f;
            EXPECT_EQ(out[t * dim + d], want) << "token " << t << " (id " << ids[t] << ") dim " << d;
        }
    }
}

TEST_F(CudaTest, AttentionHeadDimAboveLimitIsUnsupported) {
    const int head_dim = 264;
    DeviceBuffer buffer(head_dim * 4);
    si_attention_params p{};
    p.q = p.k_cache = p.v_cache = buffer.get<float>();
    p.out = buffer.get<float>();
    p.q_stride = p.kv_stride = p.out_stride = head_dim;
    p.n_q = p.n_ctx = 1;
    p.n_heads = p.n_kv_heads = 1;
    p.head_dim = head_dim;
    p.scale = 1.0f;
    EXPECT_EQ(si_attention(context_, &p), SI_ERR_UNSUPPORTED);
    EXPECT_NE(last_error_text().find("head_dim"), std::string::npos) << last_error_text();
    EXPECT_EQ(si_context_synchronize(context_), SI_OK) << "an unsupported case must not poison the context";
}

TEST_F(CudaTest, EmptyWorkLaunchesNothing) {
    // Zero rows/tokens are valid calls; a zero-sized grid would be a launch error.
    DeviceBuffer buffer(64);
    float* f = buffer.get<float>();
    si_rms_norm_params norm{f, f, f, 4, 4, 0, 4, 1e-5f, 0};
    EXPECT_EQ(si_rms_norm(context_, &norm), SI_OK) << last_error_text();
    si_matmul_params mm{f, f, nullptr, f, 4, 4, 0, 4, 4, SI_DTYPE_F32};
    EXPECT_EQ(si_matmul(context_, &mm), SI_OK) << last_error_text();
    si_add_params add{f, f, f, 0};
    EXPECT_EQ(si_add(context_, &add), SI_OK) << last_error_text();
    si_softmax_params sm{f, f, 4, 4, 0, 4, 1.0f, 0};
    EXPECT_EQ(si_softmax(context_, &sm), SI_OK) << last_error_text();
    si_argmax_params am{f, buffer.get<int32_t>(), 4, 0, 4};
    EXPECT_EQ(si_argmax(context_, &am), SI_OK) << last_error_text();
    si_swiglu_params sw{f, f, f, 4, 4, 4, 0, 4};
    EXPECT_EQ(si_swiglu(context_, &sw), SI_OK) << last_error_text();
    si_embedding_params emb{f, buffer.get<int32_t>(), f, SI_DTYPE_F32, 1, 4, 0};
    EXPECT_EQ(si_embedding(context_, &emb), SI_OK) << last_error_text();
    si_rope_params rope{f, buffer.get<int32_t>(), 4, 0, 1, 4, 4, 10000.0f, 1.0f, SI_ROPE_ADJACENT_PAIRS, 0};
    EXPECT_EQ(si_rope(context_, &rope), SI_OK) << last_error_text();
    EXPECT_EQ(si_context_synchronize(context_), SI_OK) << last_error_text();
}

TEST_F(CudaTest, ArgmaxTiesNaNAndLongRowsOnDevice) {
    // Ties and NaN placement across threads and warps of one block (n spans several
    // strided passes), which per-thread ordering alone would get wrong.
    const int n = 50000;
    std::vector<float> x(3 * size_t(n), -1.0f);
    x[40000] = 7.0f; x[123] = 7.0f; x[33000] = NAN;              // row 0: tie -> 123
    for (int i = 0; i < n; ++i) x[size_t(n) + i] = NAN;          // row 1: all NaN -> 0
    x[2 * size_t(n) + 0] = NAN; x[2 * size_t(n) + n - 1] = INFINITY;  // row 2: inf at the end
    DeviceBuffer d_x(x.size() * 4), d_out(3 * 4);
    d_x.upload(x);
    si_argmax_params p{d_x.get<float>(), d_out.get<int32_t>(), n, 3, n};
    ASSERT_EQ(si_argmax(context_, &p), SI_OK) << last_error_text();
    ASSERT_EQ(si_context_synchronize(context_), SI_OK) << last_error_text();
    const std::vector<int32_t> out = d_out.download<int32_t>(3);
    EXPECT_EQ(out[0], 123);
    EXPECT_EQ(out[1], 0);
    EXPECT_EQ(out[2], n - 1);
}

TEST_F(CudaTest, AttentionOverLongContextMatchesRef) {
    // A decode step over 5000 keys: many online-softmax chunks, large score range.
    const int n_ctx = 5000, n_q = 2, n_heads = 4, n_kv = 2, hd = 128;
    std::vector<float> q(size_t(n_q) * n_heads * hd), k(size_t(n_ctx) * n_kv * hd), v(k.size());
    uint32_t state = 12345u;
    auto next = [&] { state = state * 1664525u + 1013904223u; return float(int32_t(state >> 9) - (1 << 22)) / float(1 << 22); };
    for (float& e : q) e = 3.0f * next();
    for (float& e : k) e = next();
    for (float& e : v) e = next();
    std::vector<float> want(q.size()), got(q.size());
    si_attention_params p{};
    p.q_stride = n_heads * hd;
    p.kv_stride = n_kv * hd;
    p.out_stride = n_heads * hd;
    p.n_q = n_q; p.n_ctx = n_ctx; p.n_heads = n_heads; p.n_kv_heads = n_kv; p.head_dim = hd;
    p.scale = 1.0f / std::sqrt(float(hd));

    si_context* ref = nullptr;
    const si_context_options ref_options{SI_BACKEND_REF, 0, 0, 0};
    ASSERT_EQ(si_context_create(&ref_options, &ref), SI_OK);
    p.q = q.data(); p.k_cache = k.data(); p.v_cache = v.data(); p.out = want.data();
    ASSERT_EQ(si_attention(ref, &p), SI_OK) << last_error_text();
    si_context_destroy(ref);

    DeviceBuffer d_q(q.size() * 4), d_k(k.size() * 4), d_v(v.size() * 4), d_out(q.size() * 4);
    d_q.upload(q); d_k.upload(k); d_v.upload(v);
    p.q = d_q.get<float>(); p.k_cache = d_k.get<float>(); p.v_cache = d_v.get<float>(); p.out = d_out.get<float>();
    ASSERT_EQ(si_attention(context_, &p), SI_OK) << last_error_text();
    ASSERT_EQ(si_context_synchronize(context_), SI_OK) << last_error_text();
    got = d_out.download<float>(q.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5 + 1e-4 * std::fabs(want[i])) << "element " << i;
}

}  // namespace
}  // namespace si_test
