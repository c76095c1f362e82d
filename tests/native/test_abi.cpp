// test_abi.cpp: the C ABI contract: versions, errors as statuses plus messages (never a
// crash), argument validation of every op, context lifetime counting, the cuda backend's
// behaviour on a machine without one, and exhaustive f16/bf16 conversion checks.
#include "op_cases.h"  // first: it tames <signal.h>'s si_result macro
#include "test_util.h"

#include "common/dtype.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cpuid.h>
#include <cstring>
#include <functional>
#include <immintrin.h>
#include <limits>

namespace si_test {
namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

int32_t live_contexts() {
    int32_t count = -1;
    EXPECT_EQ(si_live_context_count(&count), SI_OK);
    return count;
}

// ---- library -------------------------------------------------------------------------------

TEST(Library, AbiVersionMatchesHeader) {
    int32_t version = -1;
    ASSERT_EQ(si_abi_version(&version), SI_OK);
    EXPECT_EQ(version, SI_ABI_VERSION);
    EXPECT_EQ(si_abi_version(nullptr), SI_ERR_INVALID_ARGUMENT);
    EXPECT_FALSE(last_error_text().empty());
}

TEST(Library, LastErrorRejectsNull) { EXPECT_EQ(si_last_error(nullptr), SI_ERR_INVALID_ARGUMENT); }

TEST(Library, BuildInfoNamesBackendsAndIsa) {
    const char* info = nullptr;
    ASSERT_EQ(si_build_info(&info), SI_OK);
    ASSERT_NE(info, nullptr);
    EXPECT_NE(std::string(info).find("cpu isa: "), std::string::npos) << info;
    EXPECT_EQ(si_build_info(nullptr), SI_ERR_INVALID_ARGUMENT);
}

TEST(Library, BackendCompiled) {
    int32_t compiled = -1;
    ASSERT_EQ(si_backend_compiled(SI_BACKEND_REF, &compiled), SI_OK);
    EXPECT_EQ(compiled, 1);
    ASSERT_EQ(si_backend_compiled(SI_BACKEND_CPU, &compiled), SI_OK);
    EXPECT_EQ(compiled, 1);
    ASSERT_EQ(si_backend_compiled(SI_BACKEND_CUDA, &compiled), SI_OK);
    EXPECT_TRUE(compiled == 0 || compiled == 1);
    EXPECT_EQ(si_backend_compiled(42, &compiled), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_backend_compiled(SI_BACKEND_REF, nullptr), SI_ERR_INVALID_ARGUMENT);
}

// ---- contexts ------------------------------------------------------------------------------

TEST(Context, LiveCountReturnsToZero) {
    const int32_t before = live_contexts();
    {
        ContextPtr a = make_ref_context();
        ContextPtr b = make_cpu_context("", 1);
        ContextPtr c = make_cpu_context("", 0);  // 0 = all hardware threads
        ASSERT_TRUE(a && b && c) << last_error_text();
        EXPECT_EQ(live_contexts(), before + 3);
        EXPECT_EQ(si_context_synchronize(b.get()), SI_OK);
    }
    EXPECT_EQ(live_contexts(), before);
    EXPECT_EQ(before, 0);
    EXPECT_EQ(si_context_destroy(nullptr), SI_OK);
    EXPECT_EQ(si_live_context_count(nullptr), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_context_synchronize(nullptr), SI_ERR_INVALID_ARGUMENT);
}

TEST(Context, BadOptionsAreInvalidArguments) {
    si_context* context = reinterpret_cast<si_context*>(0x1);
    si_context_options options{};
    options.backend = SI_BACKEND_CPU;
    EXPECT_EQ(si_context_create(nullptr, &context), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_context_create(&options, nullptr), SI_ERR_INVALID_ARGUMENT);
    options.num_threads = -1;
    EXPECT_EQ(si_context_create(&options, &context), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(context, nullptr);
    EXPECT_FALSE(last_error_text().empty());
    options.num_threads = 1;
    options.reserved = 7;
    EXPECT_EQ(si_context_create(&options, &context), SI_ERR_INVALID_ARGUMENT);
    options.reserved = 0;
    options.backend = 9;
    EXPECT_EQ(si_context_create(&options, &context), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(live_contexts(), 0);
}

TEST(Context, UnknownForcedIsaIsRejected) {
    si_context* context = nullptr;
    EXPECT_EQ(create_cpu_context("avx9000", 1, &context), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(context, nullptr);
    EXPECT_NE(last_error_text().find("SI_CPU_ISA"), std::string::npos) << last_error_text();
    EXPECT_EQ(live_contexts(), 0);
}

// Without a GPU (this CI machine), asking for cuda fails cleanly: not compiled, or no
// device. On a machine with a device it simply works.
TEST(Context, CudaWithoutDeviceFailsCleanly) {
    int32_t compiled = 0;
    ASSERT_EQ(si_backend_compiled(SI_BACKEND_CUDA, &compiled), SI_OK);
    si_context_options options{};
    options.backend = SI_BACKEND_CUDA;
    si_context* context = nullptr;
    const si_result status = si_context_create(&options, &context);
    if (compiled && status == SI_OK) {
        EXPECT_NE(context, nullptr);
        si_context_destroy(context);
        GTEST_SKIP() << "a CUDA device is present";
    }
    EXPECT_EQ(context, nullptr);
    const std::string message = lower(last_error_text());
    if (compiled) {
        EXPECT_EQ(status, SI_ERR_NO_DEVICE) << message;
        EXPECT_NE(message.find("no cuda device"), std::string::npos) << message;
    } else {
        EXPECT_EQ(status, SI_ERR_NOT_COMPILED) << message;
        EXPECT_NE(message.find("not compiled"), std::string::npos) << message;
    }
    EXPECT_EQ(live_contexts(), 0);
}

// ---- op argument validation ----------------------------------------------------------------

// Valid params for every op over zeroed host buffers large enough for the shapes below;
// each check breaks one field.
struct ValidOps {
    std::vector<float> f = std::vector<float>(1 << 14, 0.0f);
    std::vector<float> out = std::vector<float>(1 << 14, 0.0f);
    std::vector<int32_t> ints = std::vector<int32_t>(64, 0);
    std::vector<int64_t> offsets = std::vector<int64_t>(64, 0);  // bitmask row offsets: all-zero rows

    si_embedding_params embedding() {
        si_embedding_params p{};
        p.table = f.data(); p.ids = ints.data(); p.out = out.data();
        p.table_dtype = SI_DTYPE_F32; p.vocab = 4; p.dim = 8; p.n_tokens = 2;
        return p;
    }
    si_rms_norm_params rms_norm() {
        si_rms_norm_params p{};
        p.x = f.data(); p.weight = f.data(); p.out = out.data();
        p.x_stride = 8; p.out_stride = 8; p.rows = 2; p.dim = 8; p.eps = 1e-5f;
        return p;
    }
    si_matmul_params matmul() {
        si_matmul_params p{};
        p.x = f.data(); p.w = f.data(); p.y = out.data();
        p.x_stride = 8; p.y_stride = 4; p.m = 2; p.n = 4; p.k = 8; p.w_dtype = SI_DTYPE_F32;
        return p;
    }
    si_rope_params rope() {
        si_rope_params p{};
        p.x = out.data(); p.positions = ints.data();
        p.token_stride = 16; p.n_tokens = 2; p.n_heads = 2; p.head_dim = 8; p.rotary_dim = 8;
        p.freq_base = 10000.0f; p.freq_scale = 1.0f; p.layout = SI_ROPE_ADJACENT_PAIRS;
        return p;
    }
    si_attention_params attention() {
        si_attention_params p{};
        p.q = f.data(); p.k_cache = f.data(); p.v_cache = f.data(); p.out = out.data();
        p.q_stride = 32; p.kv_stride = 16; p.out_stride = 32;
        p.n_q = 1; p.n_ctx = 3; p.n_heads = 4; p.n_kv_heads = 2; p.head_dim = 8; p.scale = 0.35f;
        return p;
    }
    si_swiglu_params swiglu() {
        si_swiglu_params p{};
        p.gate = f.data(); p.up = f.data(); p.out = out.data();
        p.gate_stride = 8; p.up_stride = 8; p.out_stride = 8; p.rows = 2; p.n = 8;
        return p;
    }
    si_add_params add() {
        si_add_params p{};
        p.a = f.data(); p.b = f.data(); p.out = out.data(); p.n = 8;
        return p;
    }
    si_softmax_params softmax() {
        si_softmax_params p{};
        p.x = f.data(); p.out = out.data();
        p.x_stride = 8; p.out_stride = 8; p.rows = 2; p.n = 8; p.inv_temperature = 1.0f;
        return p;
    }
    // A bitmask matrix with no kept weights ([4, 16]: one zero mask word per row).
    si_sparse_matmul_params sparse_matmul() {
        si_sparse_matmul_params p{};
        p.x = f.data(); p.values = f.data(); p.index = ints.data(); p.row_offsets = offsets.data(); p.y = out.data();
        p.x_stride = 16; p.y_stride = 4; p.m = 2; p.n = 4; p.k = 16;
        p.values_dtype = SI_DTYPE_F16; p.format = SI_SPARSE_BITMASK;
        return p;
    }
    si_argmax_params argmax() {
        si_argmax_params p{};
        p.x = f.data(); p.out = ints.data(); p.x_stride = 8; p.rows = 2; p.n = 8;
        return p;
    }
};

struct BadCall {
    const char* what;
    si_result expected;
    std::function<si_result(si_context*, ValidOps&)> call;
};

template <typename P, typename Op>
si_result with(ValidOps& v, P (ValidOps::*make)(), Op op, si_context* ctx, const std::function<void(P&)>& mutate) {
    P p = (v.*make)();
    mutate(p);
    return op(ctx, &p);
}

#define SI_BAD(op_name, expected, mutation)                                                                \
    BadCall {                                                                                              \
        #op_name ": " #mutation, expected, [](si_context* ctx, ValidOps& v) {                              \
            return with<si_##op_name##_params>(v, &ValidOps::op_name, si_##op_name, ctx,                   \
                                               [](si_##op_name##_params& p) { mutation; });                \
        }                                                                                                  \
    }

std::vector<BadCall> bad_calls() {
    const si_result inv = SI_ERR_INVALID_ARGUMENT, unsup = SI_ERR_UNSUPPORTED;
    return {
        SI_BAD(embedding, inv, p.table = nullptr), SI_BAD(embedding, inv, p.ids = nullptr), SI_BAD(embedding, inv, p.out = nullptr),
        SI_BAD(embedding, inv, p.vocab = 0), SI_BAD(embedding, inv, p.dim = 0), SI_BAD(embedding, inv, p.n_tokens = -1),
        SI_BAD(embedding, unsup, p.table_dtype = SI_DTYPE_I32), SI_BAD(embedding, unsup, p.table_dtype = 77),
        SI_BAD(rms_norm, inv, p.x = nullptr), SI_BAD(rms_norm, inv, p.weight = nullptr), SI_BAD(rms_norm, inv, p.out = nullptr),
        SI_BAD(rms_norm, inv, p.dim = 0), SI_BAD(rms_norm, inv, p.rows = -1), SI_BAD(rms_norm, inv, p.x_stride = 7),
        SI_BAD(rms_norm, inv, p.out_stride = 3), SI_BAD(rms_norm, inv, p.eps = -1.0f),
        SI_BAD(rms_norm, inv, p.eps = std::numeric_limits<float>::quiet_NaN()),
        SI_BAD(matmul, inv, p.x = nullptr), SI_BAD(matmul, inv, p.w = nullptr), SI_BAD(matmul, inv, p.y = nullptr),
        SI_BAD(matmul, inv, p.m = -1), SI_BAD(matmul, inv, p.n = 0), SI_BAD(matmul, inv, p.k = 0),
        SI_BAD(matmul, inv, p.x_stride = 7), SI_BAD(matmul, inv, p.y_stride = 3),
        SI_BAD(matmul, unsup, p.w_dtype = SI_DTYPE_I8), SI_BAD(matmul, unsup, p.w_dtype = 99),
        SI_BAD(rope, inv, p.x = nullptr), SI_BAD(rope, inv, p.positions = nullptr), SI_BAD(rope, inv, p.rotary_dim = 7),
        SI_BAD(rope, inv, p.rotary_dim = 10), SI_BAD(rope, inv, p.rotary_dim = 0), SI_BAD(rope, inv, p.head_dim = 1),
        SI_BAD(rope, inv, p.n_heads = 0), SI_BAD(rope, inv, p.n_tokens = -1), SI_BAD(rope, inv, p.token_stride = 15),
        SI_BAD(rope, inv, p.freq_base = 0.0f), SI_BAD(rope, inv, p.freq_scale = -1.0f), SI_BAD(rope, inv, p.layout = 5),
        SI_BAD(attention, inv, p.q = nullptr), SI_BAD(attention, inv, p.k_cache = nullptr), SI_BAD(attention, inv, p.v_cache = nullptr),
        SI_BAD(attention, inv, p.out = nullptr), SI_BAD(attention, inv, p.n_kv_heads = 3), SI_BAD(attention, inv, p.n_kv_heads = 0),
        SI_BAD(attention, inv, p.n_q = 0), SI_BAD(attention, inv, p.n_q = 4), SI_BAD(attention, inv, p.head_dim = 0),
        SI_BAD(attention, inv, p.q_stride = 31), SI_BAD(attention, inv, p.kv_stride = 15), SI_BAD(attention, inv, p.out_stride = 8),
        SI_BAD(attention, inv, p.scale = 0.0f),
        SI_BAD(swiglu, inv, p.gate = nullptr), SI_BAD(swiglu, inv, p.up = nullptr), SI_BAD(swiglu, inv, p.out = nullptr),
        SI_BAD(swiglu, inv, p.n = 0), SI_BAD(swiglu, inv, p.rows = -2), SI_BAD(swiglu, inv, p.up_stride = 7),
        SI_BAD(add, inv, p.a = nullptr), SI_BAD(add, inv, p.b = nullptr), SI_BAD(add, inv, p.out = nullptr), SI_BAD(add, inv, p.n = -1),
        SI_BAD(softmax, inv, p.x = nullptr), SI_BAD(softmax, inv, p.out = nullptr), SI_BAD(softmax, inv, p.n = 0),
        SI_BAD(softmax, inv, p.x_stride = 7), SI_BAD(softmax, inv, p.inv_temperature = 0.0f),
        SI_BAD(argmax, inv, p.x = nullptr), SI_BAD(argmax, inv, p.out = nullptr), SI_BAD(argmax, inv, p.n = 0),
        SI_BAD(argmax, inv, p.rows = -1), SI_BAD(argmax, inv, p.x_stride = 1),
        SI_BAD(sparse_matmul, inv, p.x = nullptr), SI_BAD(sparse_matmul, inv, p.values = nullptr),
        SI_BAD(sparse_matmul, inv, p.index = nullptr), SI_BAD(sparse_matmul, inv, p.y = nullptr),
        SI_BAD(sparse_matmul, inv, p.row_offsets = nullptr), SI_BAD(sparse_matmul, unsup, p.format = 2),
        SI_BAD(sparse_matmul, unsup, p.format = -1), SI_BAD(sparse_matmul, inv, p.reserved = 1),
        SI_BAD(sparse_matmul, unsup, p.values_dtype = SI_DTYPE_I8), SI_BAD(sparse_matmul, unsup, p.values_dtype = 42),
        SI_BAD(sparse_matmul, inv, p.m = -1), SI_BAD(sparse_matmul, inv, p.n = 0), SI_BAD(sparse_matmul, inv, p.k = 0),
        SI_BAD(sparse_matmul, inv, p.k = -16), SI_BAD(sparse_matmul, inv, p.x_stride = 15), SI_BAD(sparse_matmul, inv, p.y_stride = 3),
        SI_BAD(sparse_matmul, inv, (p.format = SI_SPARSE_2_4, p.x = nullptr)),
    };
}

class OpValidationTest : public testing::TestWithParam<si_backend> {};

TEST_P(OpValidationTest, BadArgumentsGiveStatusAndMessage) {
    si_context_options options{};
    options.backend = GetParam();
    options.num_threads = 1;
    si_context* raw = nullptr;
    ASSERT_EQ(si_context_create(&options, &raw), SI_OK) << last_error_text();
    ContextPtr context(raw);
    ValidOps valid;
    for (const BadCall& bad : bad_calls()) {
        std::fill(valid.out.begin(), valid.out.end(), 0.0f);
        const si_result status = bad.call(context.get(), valid);
        EXPECT_EQ(status, bad.expected) << bad.what;
        EXPECT_FALSE(last_error_text().empty()) << bad.what;
        EXPECT_TRUE(std::all_of(valid.out.begin(), valid.out.end(), [](float x) { return x == 0.0f; })) << bad.what << " wrote output";
    }
    // The unmodified params are accepted (so each failure above comes from its mutation).
    si_embedding_params e = valid.embedding();
    EXPECT_EQ(si_embedding(context.get(), &e), SI_OK) << last_error_text();
    si_matmul_params m = valid.matmul();
    EXPECT_EQ(si_matmul(context.get(), &m), SI_OK) << last_error_text();
    si_attention_params a = valid.attention();
    EXPECT_EQ(si_attention(context.get(), &a), SI_OK) << last_error_text();
    si_rope_params r = valid.rope();
    EXPECT_EQ(si_rope(context.get(), &r), SI_OK) << last_error_text();
    si_sparse_matmul_params s = valid.sparse_matmul();
    EXPECT_EQ(si_sparse_matmul(context.get(), &s), SI_OK) << last_error_text();
    s.format = SI_SPARSE_2_4;  // 2:4 needs no row offsets
    s.row_offsets = nullptr;
    EXPECT_EQ(si_sparse_matmul(context.get(), &s), SI_OK) << last_error_text();
}

TEST_P(OpValidationTest, NullContextOrParams) {
    si_context_options options{};
    options.backend = GetParam();
    si_context* raw = nullptr;
    ASSERT_EQ(si_context_create(&options, &raw), SI_OK) << last_error_text();
    ContextPtr context(raw);
    ValidOps v;
    si_matmul_params m = v.matmul();
    EXPECT_EQ(si_matmul(nullptr, &m), SI_ERR_INVALID_ARGUMENT);
    EXPECT_NE(last_error_text().find("context"), std::string::npos);
    EXPECT_EQ(si_embedding(context.get(), nullptr), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_rms_norm(context.get(), nullptr), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_matmul(context.get(), nullptr), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_rope(context.get(), nullptr), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_attention(context.get(), nullptr), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_swiglu(context.get(), nullptr), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_add(context.get(), nullptr), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_softmax(context.get(), nullptr), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_argmax(context.get(), nullptr), SI_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(si_sparse_matmul(context.get(), nullptr), SI_ERR_INVALID_ARGUMENT);
    si_sparse_matmul_params s = v.sparse_matmul();
    EXPECT_EQ(si_sparse_matmul(nullptr, &s), SI_ERR_INVALID_ARGUMENT);
    EXPECT_FALSE(last_error_text().empty());
}

// ids outside [0, vocab) are rejected by ref and cpu before anything is written.
TEST_P(OpValidationTest, EmbeddingIdOutOfRange) {
    si_context_options options{};
    options.backend = GetParam();
    si_context* raw = nullptr;
    ASSERT_EQ(si_context_create(&options, &raw), SI_OK) << last_error_text();
    ContextPtr context(raw);
    for (int32_t bad_id : {-1, 4, 1 << 30}) {
        ValidOps v;
        v.ints[0] = 1;
        v.ints[1] = bad_id;
        si_embedding_params p = v.embedding();
        EXPECT_EQ(si_embedding(context.get(), &p), SI_ERR_INVALID_ARGUMENT) << bad_id;
        EXPECT_NE(last_error_text().find("ids[1]"), std::string::npos) << last_error_text();
        EXPECT_TRUE(std::all_of(v.out.begin(), v.out.end(), [](float x) { return x == 0.0f; }));
    }
}

INSTANTIATE_TEST_SUITE_P(Backend, OpValidationTest, testing::Values(SI_BACKEND_REF, SI_BACKEND_CPU),
                         [](const testing::TestParamInfo<si_backend>& info) { return info.param == SI_BACKEND_REF ? "ref" : "cpu"; });

// ---- f16 / bf16 conversions ----------------------------------------------------------------

// Independent references: values from the IEEE formulas in double; rounding by searching
// the sorted table of representable values (ties to the even pattern).
double f16_value(uint16_t h) {
    const int sign = h >> 15, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    double magnitude;
    if (exponent == 0x1f) magnitude = mantissa ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
    else if (exponent == 0) magnitude = std::ldexp(double(mantissa), -24);
    else magnitude = std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
    return sign ? -magnitude : magnitude;
}

// Nearest of two adjacent patterns lo < hi (by magnitude) to |x|, ties to the even one.
uint16_t nearest(double magnitude, uint16_t lo, double lo_value, uint16_t hi, double hi_value) {
    const double below = magnitude - lo_value, above = hi_value - magnitude;
    if (below < above) return lo;
    if (above < below) return hi;
    return (lo & 1) ? hi : lo;
}

uint16_t reference_f32_to_f16(float x) {
    if (std::isnan(x)) return 0x7e00;
    const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    const double magnitude = std::fabs(double(x));
    // Patterns 0x0000..0x7c00 (inf) increase with value; treat inf as 65536 for rounding.
    auto value = [](uint16_t h) { return h == 0x7c00 ? 65536.0 : f16_value(h); };
    if (magnitude >= 65536.0) return sign | 0x7c00;
    uint16_t lo = 0, hi = 0x7c00;  // value(lo) <= magnitude < value(hi)
    while (hi - lo > 1) {
        const uint16_t mid = uint16_t((lo + hi) / 2);
        if (value(mid) <= magnitude) lo = mid;
        else hi = mid;
    }
    return sign | nearest(magnitude, lo, value(lo), hi, value(hi));
}

uint16_t reference_f32_to_bf16(float x) {
    if (std::isnan(x)) return 0x7fc0;
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    const uint16_t sign = uint16_t((bits >> 16) & 0x8000);
    const uint16_t lo = uint16_t((bits >> 16) & 0x7fff), hi = uint16_t(lo + 1);
    auto value = [](uint16_t h) { return h == 0x7f80 ? std::ldexp(1.0, 128) : double(si::bf16_to_f32(h)); };
    if (lo == 0x7f80) return sign | lo;  // inf stays inf
    return sign | nearest(std::fabs(double(x)), lo, value(lo), hi, value(hi));
}

__attribute__((target("f16c"))) float hardware_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) uint16_t hardware_f32_to_f16(float x) { return _cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT); }
bool has_f16c() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
}

TEST(Conversion, F16ToF32AllPatterns) {
    const bool hardware = has_f16c();
    for (uint32_t i = 0; i < 65536; ++i) {
        const uint16_t h = uint16_t(i);
        const float got = si::f16_to_f32(h);
        const double want = f16_value(h);
        if (std::isnan(want)) {
            ASSERT_TRUE(std::isnan(got)) << std::hex << i;
            continue;
        }
        ASSERT_EQ(double(got), want) << std::hex << i;
        ASSERT_EQ(std::signbit(got), std::signbit(want)) << std::hex << i;
        if (hardware) {
            ASSERT_EQ(si::f32_to_bits(got), si::f32_to_bits(hardware_f16_to_f32(h))) << std::hex << i;
        }
    }
}

TEST(Conversion, F16RoundTripAllPatterns) {
    for (uint32_t i = 0; i < 65536; ++i) {
        const uint16_t h = uint16_t(i);
        const uint16_t back = si::f32_to_f16(si::f16_to_f32(h));
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) ASSERT_TRUE((back & 0x7c00) == 0x7c00 && (back & 0x3ff)) << std::hex << i;
        else ASSERT_EQ(back, h) << std::hex << i;
    }
}

// f32 -> f16 rounding at every midpoint between adjacent f16 values (and one f32 ulp either
// side), plus a sweep over all f32 exponents.
TEST(Conversion, F32ToF16Rounding) {
    const bool hardware = has_f16c();
    std::vector<float> probes;
    for (uint32_t i = 0; i < 0x7c00; ++i) {
        const double mid = (f16_value(uint16_t(i)) + (i + 1 == 0x7c00 ? 65536.0 : f16_value(uint16_t(i + 1)))) / 2;
        const float m = float(mid);  // exact: a midpoint needs 12 significant bits
        probes.insert(probes.end(), {m, std::nextafter(m, 0.0f), std::nextafter(m, 1e30f), -m});
    }
    for (uint64_t bits = 0; bits < (1ull << 32); bits += 0x10001ull) probes.push_back(si::bits_to_f32(uint32_t(bits)));
    probes.insert(probes.end(), {65504.0f, 65519.99f, 65520.0f, 1e30f, -1e30f, std::numeric_limits<float>::infinity(),
                                 std::numeric_limits<float>::denorm_min(), 0.0f, -0.0f});
    int64_t wrong = 0;
    for (float x : probes) {
        if (std::isnan(x)) {
            EXPECT_TRUE((si::f32_to_f16(x) & 0x7c00) == 0x7c00 && (si::f32_to_f16(x) & 0x3ff));
            continue;
        }
        const uint16_t got = si::f32_to_f16(x), want = reference_f32_to_f16(x);
        if (got != want && ++wrong <= 5) ADD_FAILURE() << x << ": got 0x" << std::hex << got << " want 0x" << want;
        if (hardware && got != hardware_f32_to_f16(x) && ++wrong <= 5) ADD_FAILURE() << x << ": differs from F16C";
    }
    EXPECT_EQ(wrong, 0);
}

TEST(Conversion, Bf16AllPatterns) {
    for (uint32_t i = 0; i < 65536; ++i) {
        const uint16_t b = uint16_t(i);
        const float f = si::bf16_to_f32(b);
        ASSERT_EQ(si::f32_to_bits(f), i << 16);
        const uint16_t back = si::f32_to_bf16(f);
        if (std::isnan(f)) ASSERT_TRUE(std::isnan(si::bf16_to_f32(back))) << std::hex << i;
        else ASSERT_EQ(back, b) << std::hex << i;
    }
}

TEST(Conversion, F32ToBf16Rounding) {
    std::vector<float> probes;
    for (uint32_t i = 0; i < 65536; ++i) {
        const uint32_t mid = (i << 16) | 0x8000u;  // exactly halfway between i and i + 1
        for (uint32_t bits : {mid, mid - 1, mid + 1, (i << 16) | 0x1234u}) probes.push_back(si::bits_to_f32(bits));
    }
    int64_t wrong = 0;
    for (float x : probes) {
        if (std::isnan(x)) {
            EXPECT_TRUE(std::isnan(si::bf16_to_f32(si::f32_to_bf16(x))));
            continue;
        }
        const uint16_t got = si::f32_to_bf16(x), want = reference_f32_to_bf16(x);
        if (got != want && ++wrong <= 5) ADD_FAILURE() << x << ": got 0x" << std::hex << got << " want 0x" << want;
    }
    EXPECT_EQ(wrong, 0);
}

}  // namespace
}  // namespace si_test
