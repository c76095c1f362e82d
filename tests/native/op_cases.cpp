// op_cases.cpp: the op case grid (shapes with tails, strides, aliasing, poison), the
// tolerance table, and the harness that runs a case on a backend and on ref and compares.
#include "op_cases.h"

#include "common/dtype.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>

namespace si_test {

// ---- buffers -------------------------------------------------------------------------------

size_t Buffer::count() const {
    return std::visit([](const auto& v) { return v.size(); }, data);
}

size_t Buffer::element_size() const {
    return std::visit([](const auto& v) { return sizeof(typename std::decay_t<decltype(v)>::value_type); }, data);
}

void* Buffer::host_data() {
    return std::visit([](auto& v) { return static_cast<void*>(v.data()); }, data);
}

const void* Buffer::host_data() const {
    return std::visit([](const auto& v) { return static_cast<const void*>(v.data()); }, data);
}

std::vector<void*> HostMemoryAdapter::upload(si_context*, std::vector<Buffer>& buffers) {
    std::vector<void*> pointers;
    for (Buffer& b : buffers) pointers.push_back(b.host_data());
    return pointers;
}

si_result HostMemoryAdapter::download(si_context* context, std::vector<Buffer>&, const std::vector<void*>&) {
    return si_context_synchronize(context);
}

std::string last_error_text() {
    const char* message = nullptr;
    if (si_last_error(&message) != SI_OK || !message) return "(si_last_error failed)";
    return message;
}

// ---- tolerances ----------------------------------------------------------------------------

namespace {

struct ToleranceRow {
    const char* op;
    si_dtype dtype;
    Tolerance tolerance;
};

// THE tolerance table. Inputs are scaled so outputs are O(1) (matmul weights by 1/sqrt(k)),
// so one absolute term serves every shape in the grid. Weights in f16/bf16 convert to f32
// exactly, so their rows equal the f32 one: a backend must compute in f32 as the ABI says
// (no TF32, no activations rounded to 16 bits). The f32 rows leave room for other summation
// orders and exp implementations (the cuda tier was brought up against these values); every
// cpu path uses at most ~2% of them (run with SI_TEST_PRINT_ERRORS=1 to see each case's
// error / allowed ratio), so they can be tightened once the cuda tier reports its ratios.
constexpr ToleranceRow kTolerances[] = {
    // Exact: a conversion (f16/bf16 -> f32 is exact), one correctly rounded f32 add.
    {"embedding", SI_DTYPE_F32, {0.0, 0.0}},
    {"embedding", SI_DTYPE_F16, {0.0, 0.0}},
    {"embedding", SI_DTYPE_BF16, {0.0, 0.0}},
    {"add", SI_DTYPE_F32, {0.0, 0.0}},
    {"argmax", SI_DTYPE_F32, {0.0, 0.0}},  // integers
    // f32 reductions over at most a few thousand terms (k, n_ctx, dim), O(1) outputs.
    {"matmul", SI_DTYPE_F32, {2e-5, 2e-5}},
    {"matmul", SI_DTYPE_F16, {2e-5, 2e-5}},
    {"matmul", SI_DTYPE_BF16, {2e-5, 2e-5}},
    {"rms_norm", SI_DTYPE_F32, {1e-5, 1e-5}},
    {"attention", SI_DTYPE_F32, {2e-5, 2e-5}},
    // Probabilities down to ~1e-30 must keep their relative accuracy.
    {"softmax", SI_DTYPE_F32, {1e-9, 2e-5}},
    // Elementwise: a few ulp of exp and one division.
    {"swiglu", SI_DTYPE_F32, {1e-6, 1e-5}},
    // Rope angles reach 4100 rad: an f32 angle (as Hugging Face and llama.cpp compute it) is
    // off by up to ulp(4100)/2 = 2.4e-4 rad, which moves an O(1) element by as much. The cpu
    // backend computes angles in double and lands far inside this.
    {"rope", SI_DTYPE_F32, {5e-4, 1e-5}},
};

}  // namespace

bool find_tolerance(const std::string& op, si_dtype dtype, Tolerance* out) {
    for (const ToleranceRow& row : kTolerances) {
        if (op == row.op && dtype == row.dtype) {
            *out = row.tolerance;
            return true;
        }
    }
    return false;
}

// ---- case building helpers ---------------------------------------------------------------

namespace {

constexpr int64_t kGuard = 5;                  // elements after every buffer
constexpr uint32_t kPoisonBits = 0x7fc0deadu;   // quiet NaN: input the op must not read
constexpr uint32_t kUnwrittenBits = 0x7fc0beefu; // quiet NaN: output before the op runs
constexpr int32_t kUnwrittenInt = -777;
constexpr uint16_t kPoisonF16 = 0x7e00u, kPoisonBf16 = 0x7fc0u;

float from_bits(uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
    char buffer[512];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(buffer, sizeof buffer, fmt, args);
    va_end(args);
    return buffer;
}

// SplitMix64 seeded by FNV-1a of the case name: portable, unlike std:: distributions.
class Rng {
public:
    explicit Rng(const std::string& seed_text) {
        state_ = 1469598103934665603ull;
        for (unsigned char c : seed_text) state_ = (state_ ^ c) * 1099511628211ull;
    }
    uint64_t next() {
        uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    float uniform(float lo, float hi) { return lo + (hi - lo) * float(double(next() >> 40) * 0x1p-24); }
    int32_t below(int32_t n) { return int32_t(next() % uint64_t(n)); }

private:
    uint64_t state_;
};

// A row-major matrix inside a buffer: rows of `cols` elements, `stride` apart.
struct Layout {
    int64_t rows, cols, stride;
    int64_t span() const { return rows == 0 ? 0 : (rows - 1) * stride + cols; }
    int64_t size() const { return span() + kGuard; }
    bool inside(int64_t i) const { return i < span() && i % stride < cols; }
};

std::vector<float> poisoned(int64_t size) { return std::vector<float>(size_t(size), from_bits(kPoisonBits)); }

// Random values in [lo, hi) inside the layout, NaN poison in gaps and the guard.
std::vector<float> random_matrix(const Layout& l, Rng& rng, float lo, float hi) {
    std::vector<float> v = poisoned(l.size());
    for (int64_t i = 0; i < l.span(); ++i) {
        if (l.inside(i)) v[size_t(i)] = rng.uniform(lo, hi);
    }
    return v;
}

std::vector<uint8_t> mask_of(const Layout& l) {
    std::vector<uint8_t> m(size_t(l.size()), 0);
    for (int64_t i = 0; i < l.span(); ++i) m[size_t(i)] = l.inside(i) ? 1 : 0;
    return m;
}

Buffer input(std::string name, HostData data) { return Buffer{std::move(name), Role::Input, std::move(data), {}}; }

Buffer output_matrix(std::string name, const Layout& l) {
    return Buffer{std::move(name), Role::Output, std::vector<float>(size_t(l.size()), from_bits(kUnwrittenBits)), mask_of(l)};
}

// An in-place buffer: random data in the layout, poison elsewhere.
Buffer inout_matrix(std::string name, const Layout& l, Rng& rng, float lo, float hi) {
    return Buffer{std::move(name), Role::InOut, random_matrix(l, rng, lo, hi), mask_of(l)};
}

// `count` weights in dtype from uniform(-scale, scale), followed by a poisoned guard.
HostData random_weights(int64_t count, si_dtype dtype, float scale, Rng& rng) {
    if (dtype == SI_DTYPE_F32) {
        std::vector<float> w = poisoned(count + kGuard);
        for (int64_t i = 0; i < count; ++i) w[size_t(i)] = rng.uniform(-scale, scale);
        return w;
    }
    std::vector<uint16_t> w(size_t(count + kGuard), dtype == SI_DTYPE_F16 ? kPoisonF16 : kPoisonBf16);
    for (int64_t i = 0; i < count; ++i) {
        const float value = rng.uniform(-scale, scale);
        w[size_t(i)] = dtype == SI_DTYPE_F16 ? si::f32_to_f16(value) : si::f32_to_bf16(value);
    }
    return w;
}

template <typename T>
T* ptr(const std::vector<void*>& pointers, size_t i) { return static_cast<T*>(pointers[i]); }

// ---- the grid, op by op --------------------------------------------------------------------

OpCase embedding_case(int32_t vocab, int32_t dim, int32_t n_tokens, si_dtype dtype) {
    OpCase c;
    c.op = "embedding";
    c.dtype = dtype;
    c.name = format("embedding_v%d_d%d_t%d_%s", vocab, dim, n_tokens, si::dtype_name(dtype));
    c.make_buffers = [=, name = c.name] {
        Rng rng(name);
        std::vector<Buffer> b;
        // Values spread over many binades so f16 subnormals and bf16 small exponents occur.
        HostData table = random_weights(int64_t(vocab) * dim, dtype, 1.0f, rng);
        if (dtype == SI_DTYPE_F32) {
            auto& t = std::get<std::vector<float>>(table);
            for (int64_t i = 0; i < int64_t(vocab) * dim; ++i) t[size_t(i)] = std::ldexp(t[size_t(i)], -rng.below(20));
        }
        b.push_back(input("table", std::move(table)));
        std::vector<int32_t> ids(size_t(n_tokens + kGuard), -1);
        for (int32_t t = 0; t < n_tokens; ++t) ids[size_t(t)] = rng.below(vocab);
        if (n_tokens > 0) ids[0] = vocab - 1;  // the last row: catches an off-by-one row stride
        b.push_back(input("ids", std::move(ids)));
        b.push_back(output_matrix("out", Layout{n_tokens, dim, dim}));
        return b;
    };
    c.run = [=](si_context* ctx, const std::vector<void*>& p) {
        si_embedding_params params{};
        params.table = p[0];
        params.ids = ptr<int32_t>(p, 1);
        params.out = ptr<float>(p, 2);
        params.table_dtype = dtype;
        params.vocab = vocab;
        params.dim = dim;
        params.n_tokens = n_tokens;
        return si_embedding(ctx, &params);
    };
    return c;
}

OpCase rms_norm_case(int32_t rows, int32_t dim, int32_t x_pad, int32_t out_pad, float eps, bool in_place) {
    OpCase c;
    c.op = "rms_norm";
    c.name = format("rms_norm_r%d_d%d_xs%d_os%d_eps%g%s", rows, dim, x_pad, out_pad, double(eps), in_place ? "_inplace" : "");
    std::replace(c.name.begin(), c.name.end(), '-', 'm');
    std::replace(c.name.begin(), c.name.end(), '.', 'p');
    const Layout x_layout{rows, dim, dim + x_pad};
    const Layout out_layout{rows, dim, dim + out_pad};
    c.make_buffers = [=, name = c.name] {
        Rng rng(name);
        std::vector<Buffer> b;
        if (in_place) {
            b.push_back(inout_matrix("x_out", x_layout, rng, -2.0f, 2.0f));
        } else {
            b.push_back(input("x", random_matrix(x_layout, rng, -2.0f, 2.0f)));
        }
        std::vector<float> weight = poisoned(dim + kGuard);
        for (int32_t d = 0; d < dim; ++d) weight[size_t(d)] = rng.uniform(-1.5f, 1.5f);
        b.push_back(input("weight", std::move(weight)));
        if (!in_place) b.push_back(output_matrix("out", out_layout));
        return b;
    };
    c.run = [=](si_context* ctx, const std::vector<void*>& p) {
        si_rms_norm_params params{};
        params.x = ptr<float>(p, 0);
        params.weight = ptr<float>(p, 1);
        params.out = in_place ? ptr<float>(p, 0) : ptr<float>(p, 2);
        params.x_stride = x_layout.stride;
        params.out_stride = in_place ? x_layout.stride : out_layout.stride;
        params.rows = rows;
        params.dim = dim;
        params.eps = eps;
        return si_rms_norm(ctx, &params);
    };
    return c;
}

OpCase matmul_case(int32_t m, int32_t n, int32_t k, si_dtype dtype, int32_t x_pad, int32_t y_pad, bool bias) {
    OpCase c;
    c.op = "matmul";
    c.dtype = dtype;
    c.name = format("matmul_m%d_n%d_k%d_%s_xs%d_ys%d%s", m, n, k, si::dtype_name(dtype), x_pad, y_pad, bias ? "_bias" : "");
    const Layout x_layout{m, k, k + x_pad};
    const Layout y_layout{m, n, n + y_pad};
    c.make_buffers = [=, name = c.name] {
        Rng rng(name);
        std::vector<Buffer> b;
        b.push_back(input("x", random_matrix(x_layout, rng, -1.0f, 1.0f)));
        // 1/sqrt(k) keeps y = O(1) for every k, so one absolute tolerance fits all shapes.
        b.push_back(input("w", random_weights(int64_t(n) * k, dtype, 1.0f / std::sqrt(float(k)), rng)));
        if (bias) b.push_back(input("bias", random_matrix(Layout{1, n, n}, rng, -1.0f, 1.0f)));
        b.push_back(output_matrix("y", y_layout));
        return b;
    };
    c.run = [=](si_context* ctx, const std::vector<void*>& p) {
        si_matmul_params params{};
        params.x = ptr<float>(p, 0);
        params.w = p[1];
        params.bias = bias ? ptr<float>(p, 2) : nullptr;
        params.y = ptr<float>(p, bias ? 3 : 2);
        params.x_stride = x_layout.stride;
        params.y_stride = y_layout.stride;
        params.m = m;
        params.n = n;
        params.k = k;
        params.w_dtype = dtype;
        return si_matmul(ctx, &params);
    };
    return c;
}

struct RopeShape {
    int32_t n_tokens, n_heads, head_dim, rotary_dim;
    int32_t pad;
    float freq_base, freq_scale;
    int32_t max_position;
};

OpCase rope_case(const RopeShape& s, si_rope_layout layout) {
    OpCase c;
    c.op = "rope";
    c.name = format("rope_%s_t%d_h%d_hd%d_rd%d_ts%d_base%d_scale%d_pos%d", layout == SI_ROPE_ADJACENT_PAIRS ? "adjacent" : "half",
                    s.n_tokens, s.n_heads, s.head_dim, s.rotary_dim, s.pad, int(s.freq_base), int(s.freq_scale * 100), s.max_position);
    const Layout x_layout{s.n_tokens, int64_t(s.n_heads) * s.head_dim, int64_t(s.n_heads) * s.head_dim + s.pad};
    c.make_buffers = [=, name = c.name] {
        Rng rng(name);
        std::vector<Buffer> b;
        Buffer x = inout_matrix("x", x_layout, rng, -1.0f, 1.0f);
        // Only the first rotary_dim elements of each head change; the rest must not.
        for (int64_t i = 0; i < x_layout.span(); ++i) {
            if (x_layout.inside(i) && (i % x_layout.stride) % s.head_dim >= s.rotary_dim) x.checked[size_t(i)] = 0;
        }
        b.push_back(std::move(x));
        std::vector<int32_t> positions(size_t(s.n_tokens + kGuard), -1);
        for (int32_t t = 0; t < s.n_tokens; ++t) positions[size_t(t)] = rng.below(s.max_position + 1);
        if (s.n_tokens > 0) positions[0] = 0;
        if (s.n_tokens > 1) positions[size_t(s.n_tokens - 1)] = s.max_position;
        b.push_back(input("positions", std::move(positions)));
        return b;
    };
    c.run = [=](si_context* ctx, const std::vector<void*>& p) {
        si_rope_params params{};
        params.x = ptr<float>(p, 0);
        params.positions = ptr<int32_t>(p, 1);
        params.token_stride = x_layout.stride;
        params.n_tokens = s.n_tokens;
        params.n_heads = s.n_heads;
        params.head_dim = s.head_dim;
        params.rotary_dim = s.rotary_dim;
        params.freq_base = s.freq_base;
        params.freq_scale = s.freq_scale;
        params.layout = layout;
        return si_rope(ctx, &params);
    };
    return c;
}

struct AttentionShape {
    int32_t n_q, n_ctx, n_heads, n_kv_heads, head_dim;
    int32_t pad = 0;            // extra elements per token row in q, kv and out
    float scale_factor = 1.0f;  // scale = scale_factor / sqrt(head_dim); > 1 sharpens softmax
};

OpCase attention_case(const AttentionShape& s) {
    OpCase c;
    c.op = "attention";
    c.name = format("attention_q%d_ctx%d_h%d_kv%d_hd%d_pad%d_sf%d", s.n_q, s.n_ctx, s.n_heads, s.n_kv_heads, s.head_dim, s.pad,
                    int(s.scale_factor));
    const int64_t q_row = int64_t(s.n_heads) * s.head_dim, kv_row = int64_t(s.n_kv_heads) * s.head_dim;
    const Layout q_layout{s.n_q, q_row, q_row + s.pad};
    const Layout out_layout{s.n_q, q_row, q_row + 2 * s.pad};
    const int32_t capacity = s.n_ctx + 3;  // rows past n_ctx exist but are poisoned
    const Layout kv_layout{capacity, kv_row, kv_row + s.pad};
    c.make_buffers = [=, name = c.name] {
        Rng rng(name);
        std::vector<Buffer> b;
        b.push_back(input("q", random_matrix(q_layout, rng, -1.0f, 1.0f)));
        for (const char* which : {"k_cache", "v_cache"}) {
            std::vector<float> cache = random_matrix(kv_layout, rng, -1.0f, 1.0f);
            std::fill(cache.begin() + s.n_ctx * kv_layout.stride, cache.end(), from_bits(kPoisonBits));
            b.push_back(input(which, std::move(cache)));
        }
        b.push_back(output_matrix("out", out_layout));
        return b;
    };
    c.run = [=](si_context* ctx, const std::vector<void*>& p) {
        si_attention_params params{};
        params.q = ptr<float>(p, 0);
        params.k_cache = ptr<float>(p, 1);
        params.v_cache = ptr<float>(p, 2);
        params.out = ptr<float>(p, 3);
        params.q_stride = q_layout.stride;
        params.kv_stride = kv_layout.stride;
        params.out_stride = out_layout.stride;
        params.n_q = s.n_q;
        params.n_ctx = s.n_ctx;
        params.n_heads = s.n_heads;
        params.n_kv_heads = s.n_kv_heads;
        params.head_dim = s.head_dim;
        params.scale = s.scale_factor / std::sqrt(float(s.head_dim));
        return si_attention(ctx, &params);
    };
    return c;
}

// alias: 0 = separate out, 1 = out is gate, 2 = out is up.
OpCase swiglu_case(int32_t rows, int32_t n, int32_t pad, int alias, float gate_range) {
    OpCase c;
    c.op = "swiglu";
    c.name = format("swiglu_r%d_n%d_pad%d_%s_g%d", rows, n, pad, alias == 1 ? "outgate" : alias == 2 ? "outup" : "sep",
                    int(gate_range));
    const Layout gate_layout{rows, n, n + pad}, up_layout{rows, n, n + 2 * pad}, out_layout{rows, n, n + 3 * pad};
    c.make_buffers = [=, name = c.name] {
        Rng rng(name);
        std::vector<Buffer> b;
        if (alias == 1) b.push_back(inout_matrix("gate_out", gate_layout, rng, -gate_range, gate_range));
        else b.push_back(input("gate", random_matrix(gate_layout, rng, -gate_range, gate_range)));
        if (alias == 2) b.push_back(inout_matrix("up_out", up_layout, rng, -1.0f, 1.0f));
        else b.push_back(input("up", random_matrix(up_layout, rng, -1.0f, 1.0f)));
        if (alias == 0) b.push_back(output_matrix("out", out_layout));
        return b;
    };
    c.run = [=](si_context* ctx, const std::vector<void*>& p) {
        si_swiglu_params params{};
        params.gate = ptr<float>(p, 0);
        params.up = ptr<float>(p, 1);
        params.out = ptr<float>(p, alias == 0 ? 2 : alias == 1 ? 0 : 1);
        params.gate_stride = gate_layout.stride;
        params.up_stride = up_layout.stride;
        params.out_stride = alias == 0 ? out_layout.stride : alias == 1 ? gate_layout.stride : up_layout.stride;
        params.rows = rows;
        params.n = n;
        return si_swiglu(ctx, &params);
    };
    return c;
}

// alias: 0 = separate out, 1 = out is a, 2 = out is b.
OpCase add_case(int64_t n, int alias) {
    OpCase c;
    c.op = "add";
    c.name = format("add_n%" PRId64 "_%s", n, alias == 1 ? "outa" : alias == 2 ? "outb" : "sep");
    const Layout layout{1, n, n};
    c.make_buffers = [=, name = c.name] {
        Rng rng(name);
        std::vector<Buffer> b;
        b.push_back(alias == 1 ? inout_matrix("a_out", layout, rng, -4.0f, 4.0f) : input("a", random_matrix(layout, rng, -4.0f, 4.0f)));
        b.push_back(alias == 2 ? inout_matrix("b_out", layout, rng, -4.0f, 4.0f) : input("b", random_matrix(layout, rng, -4.0f, 4.0f)));
        if (alias == 0) b.push_back(output_matrix("out", layout));
        return b;
    };
    c.run = [=](si_context* ctx, const std::vector<void*>& p) {
        si_add_params params{};
        params.a = ptr<float>(p, 0);
        params.b = ptr<float>(p, 1);
        params.out = ptr<float>(p, alias == 0 ? 2 : alias == 1 ? 0 : 1);
        params.n = n;
        return si_add(ctx, &params);
    };
    return c;
}

// offset shifts every logit (1000s: only max-subtraction keeps exp finite); spread is the
// half-width of the uniform logits around it.
OpCase softmax_case(int32_t rows, int32_t n, int32_t pad, float inv_temperature, float offset, float spread, bool in_place) {
    OpCase c;
    c.op = "softmax";
    c.name = format("softmax_r%d_n%d_pad%d_it%d_off%d_spread%d%s", rows, n, pad, int(inv_temperature * 100), int(offset), int(spread),
                    in_place ? "_inplace" : "");
    std::replace(c.name.begin(), c.name.end(), '-', 'm');
    const Layout x_layout{rows, n, n + pad}, out_layout{rows, n, n + 2 * pad};
    c.make_buffers = [=, name = c.name] {
        Rng rng(name);
        std::vector<Buffer> b;
        if (in_place) b.push_back(inout_matrix("x_out", x_layout, rng, offset - spread, offset + spread));
        else b.push_back(input("x", random_matrix(x_layout, rng, offset - spread, offset + spread)));
        if (!in_place) b.push_back(output_matrix("out", out_layout));
        return b;
    };
    c.run = [=](si_context* ctx, const std::vector<void*>& p) {
        si_softmax_params params{};
        params.x = ptr<float>(p, 0);
        params.out = ptr<float>(p, in_place ? 0 : 1);
        params.x_stride = x_layout.stride;
        params.out_stride = in_place ? x_layout.stride : out_layout.stride;
        params.rows = rows;
        params.n = n;
        params.inv_temperature = inv_temperature;
        return si_softmax(ctx, &params);
    };
    return c;
}

enum class ArgmaxStyle {
    Random,     // distinct values
    Ties,       // values from {-1, 0, 1, 2}: the first 2 must win
    Nan,        // a third NaN, the rest ties
    AllNan,     // whole rows NaN: index 0
    NegInf,     // all -inf but one NaN: the first -inf wins
    SignedZero, // +0 and -0 only: equal, so index 0... or the first non-NaN
    TailMax     // the maximum is the last element, and an equal value sits early
};

const char* style_name(ArgmaxStyle s) {
    switch (s) {
        case ArgmaxStyle::Random: return "random";
        case ArgmaxStyle::Ties: return "ties";
        case ArgmaxStyle::Nan: return "nan";
        case ArgmaxStyle::AllNan: return "allnan";
        case ArgmaxStyle::NegInf: return "neginf";
        case ArgmaxStyle::SignedZero: return "signedzero";
        default: return "tailmax";
    }
}

OpCase argmax_case(int32_t rows, int32_t n, int32_t pad, ArgmaxStyle style) {
    OpCase c;
    c.op = "argmax";
    c.name = format("argmax_r%d_n%d_pad%d_%s", rows, n, pad, style_name(style));
    const Layout x_layout{rows, n, n + pad};
    c.make_buffers = [=, name = c.name] {
        Rng rng(name);
        std::vector<float> x = random_matrix(x_layout, rng, -1.0f, 1.0f);
        const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
        for (int32_t r = 0; r < rows; ++r) {
            float* row = x.data() + r * x_layout.stride;
            for (int32_t j = 0; j < n; ++j) {
                switch (style) {
                    case ArgmaxStyle::Ties: row[j] = float(rng.below(4) - 1); break;
                    case ArgmaxStyle::Nan: row[j] = rng.below(3) == 0 ? nan : float(rng.below(4) - 1); break;
                    case ArgmaxStyle::AllNan: row[j] = nan; break;
                    case ArgmaxStyle::NegInf: row[j] = rng.below(5) == 0 ? nan : -inf; break;
                    case ArgmaxStyle::SignedZero: row[j] = rng.below(2) ? 0.0f : -0.0f; break;
                    default: break;
                }
            }
            if (style == ArgmaxStyle::TailMax) {
                row[n - 1] = 2.0f;
                if (n > 2) row[rng.below(n - 1)] = 2.0f;  // an equal, earlier maximum wins
            }
        }
        std::vector<Buffer> b;
        b.push_back(input("x", std::move(x)));
        b.push_back(Buffer{"out", Role::Output, std::vector<int32_t>(size_t(rows + kGuard), kUnwrittenInt), mask_of(Layout{1, rows, rows})});
        return b;
    };
    c.run = [=](si_context* ctx, const std::vector<void*>& p) {
        si_argmax_params params{};
        params.x = ptr<float>(p, 0);
        params.out = ptr<int32_t>(p, 1);
        params.x_stride = x_layout.stride;
        params.rows = rows;
        params.n = n;
        return si_argmax(ctx, &params);
    };
    return c;
}

std::vector<OpCase> build_grid() {
    std::vector<OpCase> cases;
    const si_dtype weight_dtypes[] = {SI_DTYPE_F32, SI_DTYPE_F16, SI_DTYPE_BF16};

    // embedding: every dtype over tails and a long row.
    for (si_dtype dt : weight_dtypes) {
        cases.push_back(embedding_case(1, 1, 1, dt));
        cases.push_back(embedding_case(33, 17, 7, dt));
        cases.push_back(embedding_case(97, 1025, 3, dt));
        cases.push_back(embedding_case(7, 64, 64, dt));
    }

    // rms_norm
    cases.push_back(rms_norm_case(1, 1, 0, 0, 1e-5f, false));
    cases.push_back(rms_norm_case(1, 7, 0, 0, 1e-6f, false));
    cases.push_back(rms_norm_case(3, 8, 1, 3, 1e-5f, false));
    cases.push_back(rms_norm_case(17, 63, 0, 0, 1e-5f, false));
    cases.push_back(rms_norm_case(1, 64, 0, 0, 0.0f, false));
    cases.push_back(rms_norm_case(5, 65, 2, 0, 1e-5f, false));
    cases.push_back(rms_norm_case(3, 257, 0, 5, 1e-6f, false));
    cases.push_back(rms_norm_case(2, 1025, 0, 0, 1e-5f, false));
    cases.push_back(rms_norm_case(64, 172, 3, 3, 1e-5f, false));
    cases.push_back(rms_norm_case(1, 2048, 0, 0, 1e-5f, false));
    cases.push_back(rms_norm_case(4, 97, 0, 0, 1e-5f, true));
    cases.push_back(rms_norm_case(3, 33, 7, 0, 1e-5f, true));
    cases.push_back(rms_norm_case(0, 16, 0, 0, 1e-5f, false));
    cases.push_back(rms_norm_case(257, 2048, 0, 0, 1e-5f, false));

    // matmul: every batch size with two odd core shapes and all dtypes, more shapes for a
    // few batch sizes; strides and bias rotate so every combination appears.
    int variant = 0;
    auto add_matmul = [&](int32_t m, int32_t n, int32_t k, si_dtype dt) {
        const int32_t x_pads[] = {0, 5, 1}, y_pads[] = {0, 0, 2, 7};
        cases.push_back(matmul_case(m, n, k, dt, x_pads[variant % 3], y_pads[variant % 4], variant % 2 == 1));
        ++variant;
    };
    for (int32_t m : {1, 2, 3, 4, 5, 8, 16, 17, 64}) {
        for (si_dtype dt : weight_dtypes) {
            add_matmul(m, 17, 33, dt);
            add_matmul(m, 97, 65, dt);
        }
    }
    const int32_t extra_shapes[][2] = {{1, 1}, {7, 3}, {64, 128}, {63, 257}, {172, 97}, {33, 1025}};
    for (int32_t m : {1, 5, 17}) {
        for (si_dtype dt : weight_dtypes) {
            for (const auto& nk : extra_shapes) add_matmul(m, nk[0], nk[1], dt);
        }
    }
    add_matmul(64, 65, 1025, SI_DTYPE_F16);
    add_matmul(0, 16, 16, SI_DTYPE_F32);
    // Many channel blocks (work spread over every thread), long k (a TinyLlama down
    // projection row), and more rows than one 64-row block.
    for (si_dtype dt : weight_dtypes) {
        add_matmul(1, 1025, 257, dt);
        add_matmul(3, 33, 5632, dt);
        add_matmul(97, 129, 172, dt);
    }

    // rope: both layouts; partial rotary_dim; head_dim 8, 64, 128 and odd; positions to 4100.
    const RopeShape rope_shapes[] = {
        {1, 1, 8, 8, 0, 10000.0f, 1.0f, 4100},     {5, 3, 64, 64, 0, 10000.0f, 1.0f, 4100},
        {3, 2, 128, 128, 4, 500000.0f, 1.0f, 4100}, {17, 4, 64, 32, 0, 10000.0f, 1.0f, 2048},
        {2, 2, 128, 64, 0, 10000.0f, 0.25f, 4100},  {4, 1, 8, 4, 3, 10000.0f, 1.0f, 97},
        {3, 2, 7, 6, 0, 10000.0f, 1.0f, 4100},      {33, 2, 80, 80, 0, 1000000.0f, 1.0f, 4100},
        {257, 32, 64, 64, 0, 10000.0f, 1.0f, 4100},  // a TinyLlama prefill chunk: threaded
    };
    for (const RopeShape& s : rope_shapes) {
        cases.push_back(rope_case(s, SI_ROPE_ADJACENT_PAIRS));
        cases.push_back(rope_case(s, SI_ROPE_ROTATE_HALF));
    }

    // attention: head_dim 8/64/80/128 and odd, GQA ratios 1/2/4/8/32, decode (n_q = 1),
    // several queries, and full prefill (n_q = n_ctx).
    const int32_t heads[][2] = {{2, 2}, {4, 2}, {8, 2}, {8, 1}};
    const int32_t contexts[] = {1, 33, 97, 1025};
    int rotation = 0;
    for (int32_t hd : {8, 64, 80, 128}) {
        for (const auto& h : heads) {
            AttentionShape s{1, contexts[rotation % 4], h[0], h[1], hd};
            s.pad = rotation % 3 == 2 ? 3 : 0;
            cases.push_back(attention_case(s));
            ++rotation;
        }
    }
    for (int32_t hd : {7, 33, 129}) {
        cases.push_back(attention_case(AttentionShape{1, 97, 4, 1, hd}));
        cases.push_back(attention_case(AttentionShape{5, 33, 4, 2, hd, 1}));
    }
    cases.push_back(attention_case(AttentionShape{1, 97, 32, 1, 64}));
    cases.push_back(attention_case(AttentionShape{3, 33, 32, 1, 16, 2}));
    cases.push_back(attention_case(AttentionShape{5, 33, 4, 2, 64}));
    cases.push_back(attention_case(AttentionShape{17, 97, 8, 2, 80, 5}));
    cases.push_back(attention_case(AttentionShape{7, 1025, 4, 1, 64}));
    cases.push_back(attention_case(AttentionShape{33, 33, 4, 1, 64}));
    cases.push_back(attention_case(AttentionShape{97, 97, 2, 1, 128, 1}));
    cases.push_back(attention_case(AttentionShape{1025, 1025, 2, 1, 64}));
    cases.push_back(attention_case(AttentionShape{8, 97, 4, 4, 64, 0, 8.0f}));  // peaked softmax
    cases.push_back(attention_case(AttentionShape{1, 4100, 32, 4, 64}));        // TinyLlama decode

    // swiglu
    cases.push_back(swiglu_case(1, 1, 0, 0, 10.0f));
    cases.push_back(swiglu_case(3, 7, 1, 0, 10.0f));
    cases.push_back(swiglu_case(1, 64, 0, 0, 10.0f));
    cases.push_back(swiglu_case(5, 65, 0, 0, 10.0f));
    cases.push_back(swiglu_case(2, 1025, 3, 0, 10.0f));
    cases.push_back(swiglu_case(1, 5000, 0, 0, 10.0f));
    cases.push_back(swiglu_case(17, 97, 0, 1, 10.0f));
    cases.push_back(swiglu_case(3, 33, 2, 2, 10.0f));
    cases.push_back(swiglu_case(2, 257, 0, 0, 100.0f));  // exp(-gate) overflows f32
    cases.push_back(swiglu_case(64, 5632, 0, 0, 10.0f));

    // add
    for (int64_t n : {0, 1, 7, 17, 64, 1025}) cases.push_back(add_case(n, 0));
    cases.push_back(add_case(97, 1));
    cases.push_back(add_case(4099, 2));
    cases.push_back(add_case(100003, 0));

    // softmax
    cases.push_back(softmax_case(1, 1, 0, 1.0f, 0.0f, 5.0f, false));
    cases.push_back(softmax_case(3, 7, 2, 1.0f, 0.0f, 5.0f, false));
    cases.push_back(softmax_case(1, 64, 0, 0.7f, 0.0f, 5.0f, false));
    cases.push_back(softmax_case(5, 65, 0, 2.0f, 0.0f, 5.0f, false));
    cases.push_back(softmax_case(2, 1025, 1, 1.0f, 0.0f, 10.0f, false));
    cases.push_back(softmax_case(1, 32000, 0, 1.0f, 0.0f, 10.0f, false));
    cases.push_back(softmax_case(3, 97, 0, 1.0f, 30000.0f, 15.0f, false));
    cases.push_back(softmax_case(2, 257, 0, 0.5f, -30000.0f, 15.0f, false));
    cases.push_back(softmax_case(2, 33, 0, 1.0f, 0.0f, 2000.0f, false));  // most exps underflow
    cases.push_back(softmax_case(4, 33, 0, 1.0f, 0.0f, 5.0f, true));
    cases.push_back(softmax_case(17, 63, 3, 1.3f, 100.0f, 5.0f, true));

    // argmax
    cases.push_back(argmax_case(1, 1, 0, ArgmaxStyle::Random));
    cases.push_back(argmax_case(3, 7, 0, ArgmaxStyle::Random));
    cases.push_back(argmax_case(1, 32000, 0, ArgmaxStyle::Random));
    cases.push_back(argmax_case(17, 65, 2, ArgmaxStyle::Ties));
    cases.push_back(argmax_case(3, 1025, 0, ArgmaxStyle::Ties));
    cases.push_back(argmax_case(5, 97, 1, ArgmaxStyle::Nan));
    cases.push_back(argmax_case(2, 33, 0, ArgmaxStyle::AllNan));
    cases.push_back(argmax_case(3, 17, 0, ArgmaxStyle::NegInf));
    cases.push_back(argmax_case(3, 64, 0, ArgmaxStyle::SignedZero));
    cases.push_back(argmax_case(4, 63, 0, ArgmaxStyle::TailMax));
    cases.push_back(argmax_case(2, 1025, 3, ArgmaxStyle::TailMax));
    cases.push_back(argmax_case(1, 8, 0, ArgmaxStyle::TailMax));
    return cases;
}

// ---- comparison ----------------------------------------------------------------------------

struct Mismatches {
    int64_t count = 0;
    std::string details;  // the first few
    void add(const std::string& what) {
        if (++count <= 4) details += "\n    " + what;
    }
};

template <typename T>
uint64_t bits_of(T value) {
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof value);
    return bits;
}

template <typename T>
void compare_buffer(const std::string& label, const Buffer& initial, const Buffer& got, const Buffer& want, const Tolerance& tol,
                    Mismatches* bad, double* worst_ratio) {
    const auto& g = std::get<std::vector<T>>(got.data);
    const auto& w = std::get<std::vector<T>>(want.data);
    const auto& init = std::get<std::vector<T>>(initial.data);
    if (g.size() != init.size() || w.size() != init.size()) {
        bad->add(label + ": buffer size changed");
        return;
    }
    for (size_t i = 0; i < init.size(); ++i) {
        const bool checked = got.is_output() && (got.checked.empty() || got.checked[i]);
        if (!checked) {
            // Inputs, gaps and guards keep their bits on both sides.
            if (bits_of(g[i]) != bits_of(init[i]))
                bad->add(format("%s[%zu]: must stay unchanged, target wrote %.9g over %.9g", label.c_str(), i, double(g[i]), double(init[i])));
            if (bits_of(w[i]) != bits_of(init[i]))
                bad->add(format("%s[%zu]: must stay unchanged, ref wrote %.9g", label.c_str(), i, double(w[i])));
            continue;
        }
        if constexpr (std::is_floating_point_v<T>) {
            const double gv = g[i], wv = w[i];
            if (!std::isfinite(wv)) {
                bad->add(format("%s[%zu]: ref gave %g (read poison?)", label.c_str(), i, wv));
                continue;
            }
            const double err = std::fabs(gv - wv), allowed = tol.abs + tol.rel * std::fabs(wv);
            if (!(err <= allowed)) {
                bad->add(format("%s[%zu]: got %.9g want %.9g (err %.3g, allowed %.3g)", label.c_str(), i, gv, wv, err, allowed));
            } else if (allowed > 0) {
                *worst_ratio = std::max(*worst_ratio, err / allowed);
            }
        } else {
            if (g[i] != w[i]) bad->add(format("%s[%zu]: got %lld want %lld", label.c_str(), i, (long long)g[i], (long long)w[i]));
        }
    }
}

}  // namespace

const std::vector<OpCase>& op_cases() {
    static const std::vector<OpCase> cases = build_grid();
    return cases;
}

CaseResult run_op_case(const OpCase& op_case, si_context* target, MemoryAdapter& adapter) {
    CaseResult result;
    Tolerance tol{};
    if (!find_tolerance(op_case.op, op_case.dtype, &tol)) {
        result.message = format("no tolerance row for %s/%s in the table", op_case.op.c_str(), si::dtype_name(op_case.dtype));
        return result;
    }
    const std::vector<Buffer> initial = op_case.make_buffers();

    // Expected: ref over host memory.
    si_context_options ref_options{};
    ref_options.backend = SI_BACKEND_REF;
    si_context* ref = nullptr;
    if (si_context_create(&ref_options, &ref) != SI_OK) {
        result.message = "creating the ref context failed: " + last_error_text();
        return result;
    }
    std::vector<Buffer> want = initial;
    HostMemoryAdapter host;
    si_result status = op_case.run(ref, host.upload(ref, want));
    const std::string ref_error = status == SI_OK ? "" : last_error_text();
    si_context_destroy(ref);
    if (status != SI_OK) {
        result.message = format("ref failed with status %d: %s", status, ref_error.c_str());
        return result;
    }

    // Actual: the target through its adapter.
    std::vector<Buffer> got = initial;
    const std::vector<void*> pointers = adapter.upload(target, got);
    status = op_case.run(target, pointers);
    const std::string run_error = status == SI_OK ? "" : last_error_text();
    const si_result download_status = adapter.download(target, got, pointers);
    if (status == SI_ERR_UNSUPPORTED) {
        result.outcome = Outcome::Unsupported;
        result.message = "unsupported: " + run_error;
        return result;
    }
    if (status != SI_OK) {
        result.message = format("target failed with status %d: %s", status, run_error.c_str());
        return result;
    }
    if (download_status != SI_OK) {
        result.message = format("%s adapter download failed with status %d: %s", adapter.name(), download_status, last_error_text().c_str());
        return result;
    }

    Mismatches bad;
    double worst_ratio = 0.0;
    for (size_t b = 0; b < initial.size(); ++b) {
        const Buffer& buffer = initial[b];
        if (std::holds_alternative<std::vector<float>>(buffer.data)) {
            compare_buffer<float>(buffer.name, buffer, got[b], want[b], tol, &bad, &worst_ratio);
        } else if (std::holds_alternative<std::vector<uint16_t>>(buffer.data)) {
            compare_buffer<uint16_t>(buffer.name, buffer, got[b], want[b], Tolerance{0, 0}, &bad, &worst_ratio);
        } else {
            compare_buffer<int32_t>(buffer.name, buffer, got[b], want[b], Tolerance{0, 0}, &bad, &worst_ratio);
        }
    }
    if (bad.count > 0) {
        result.message = format("%lld element(s) wrong (tolerance abs %g rel %g):", (long long)bad.count, tol.abs, tol.rel) + bad.details;
        return result;
    }
    result.outcome = Outcome::Passed;
    result.worst_error_ratio = worst_ratio;
    return result;
}

std::vector<std::pair<const OpCase*, CaseResult>> run_op_case_grid(si_context* target, MemoryAdapter& adapter, const std::string& filter) {
    std::vector<std::pair<const OpCase*, CaseResult>> results;
    for (const OpCase& c : op_cases()) {
        if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
        results.emplace_back(&c, run_op_case(c, target, adapter));
    }
    return results;
}

// ---- GoogleTest registration -------------------------------------------------------------

namespace {

class OpCaseTest : public testing::Test {
public:
    OpCaseTest(const OpCase* op_case, ContextFactory make_context, AdapterFactory make_adapter)
        : op_case_(op_case), make_context_(std::move(make_context)), make_adapter_(std::move(make_adapter)) {}

    void TestBody() override {
        int32_t live_before = -1, live_after = -1;
        ASSERT_EQ(si_live_context_count(&live_before), SI_OK);
        si_context* context = nullptr;
        const si_result created = make_context_(&context);
        ASSERT_EQ(created, SI_OK) << "creating the target context failed: " << last_error_text();
        std::unique_ptr<MemoryAdapter> adapter = make_adapter_();
        const CaseResult result = run_op_case(*op_case_, context, *adapter);
        adapter.reset();
        EXPECT_EQ(si_context_destroy(context), SI_OK);
        ASSERT_EQ(si_live_context_count(&live_after), SI_OK);
        EXPECT_EQ(live_after, live_before) << "a context leaked";
        RecordProperty("worst_error_ratio", std::to_string(result.worst_error_ratio));
        if (std::getenv("SI_TEST_PRINT_ERRORS"))
            std::printf("worst_error_ratio %.4f %s\n", result.worst_error_ratio, op_case_->name.c_str());
        if (result.outcome == Outcome::Unsupported) GTEST_SKIP() << result.message;
        EXPECT_EQ(result.outcome, Outcome::Passed) << op_case_->name << ": " << result.message;
    }

private:
    const OpCase* op_case_;
    ContextFactory make_context_;
    AdapterFactory make_adapter_;
};

}  // namespace

void register_op_case_tests(const std::string& suite, ContextFactory make_context, AdapterFactory make_adapter, CaseFilter include) {
    for (const OpCase& c : op_cases()) {
        if (include && !include(c)) continue;
        const OpCase* op_case = &c;
        testing::RegisterTest(suite.c_str(), c.name.c_str(), nullptr, nullptr, __FILE__, __LINE__,
                              [op_case, make_context, make_adapter]() -> testing::Test* {
                                  return new OpCaseTest(op_case, make_context, make_adapter);
                              });
    }
}

}  // namespace si_test
