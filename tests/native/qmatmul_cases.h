// qmatmul_cases.h: the si_qmatmul case grid and its host-side harness, shared by the cpu tier
// (test_qmatmul.cpp) and the cuda tier (gpu/test_cuda_qmatmul.cpp): both run every case on
// their backend and compare with the ref backend run on the same host bytes.
//
// Two kinds of data:
//  - Exact: small integers everywhere (x in [-3, 3]; for W8A8 x = v * 2^-e with |v| <= 4 and
//    one +-127 * 2^-e per row, so the row's scale is exactly 2^-e and q = v; block-wise
//    activations likewise per 32-k block), power-of-two
//    scales, offsets = small integer * scale, integer bias. Every product and partial sum is
//    an exact f32, so any summation order gives the same bits: backends must equal ref bit
//    for bit (integer GEMMs on small-integer inputs match exactly).
//  - Random: uniform x, random scales/offsets; |got - want| <= 2^-17 * sum_i |x_i w_i| + 1e-6
//    (f32 accumulation over k; the ref accumulates in double).
// Poison: x row gaps and a guard after x are NaN (a stray read shows up as a non-finite or
// wrong output); y gaps and a guard after y hold a NaN sentinel that must keep its bits.
#pragma once

#include "op_cases.h"  // first: it tames <signal.h>'s si_result macro

#include <sharpinfer/sharpinfer.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace si_test::qmatmul {

enum class Data { Exact, Random };

struct Case {
    int32_t m, n, k, group_size;
    si_weight_format format;
    si_activation_mode activations;
    int32_t x_pad, y_pad;  // row strides are k + x_pad and n + y_pad
    bool bias;
    Data data;
    bool symmetric = false;  // int4 without offsets (offsets = NULL: offset = -8 * scale)

    std::string mode() const {
        const std::string sym = symmetric ? "S" : "";
        if (activations == SI_ACTIVATIONS_I8) return "W8A8";
        if (activations == SI_ACTIVATIONS_I8_BLOCK32) return format == SI_WEIGHT_I8 ? "W8A8B32" : "W4" + sym + "A8B32";
        return format == SI_WEIGHT_I8 ? "W8A16" : "W4" + sym + "A16";
    }
    std::string name() const {
        std::ostringstream s;
        s << mode() << "_m" << m << "_n" << n << "_k" << k << "_g" << group_size;
        if (x_pad) s << "_xs" << x_pad;
        if (y_pad) s << "_ys" << y_pad;
        if (bias) s << "_bias";
        s << (data == Data::Exact ? "_exact" : "_random");
        return s.str();
    }
};

struct Shape {
    int32_t n, k, group_size;
};

// K and N off every tile and group size: ragged last groups (172 = 5 * 32 + 12), per-channel
// groups (group_size = k), group sizes without a vector path (24, 48, 5), and shapes the
// vectorized cuda paths take (k a multiple of 32).
inline const std::vector<Shape>& exact_shapes() {
    static const std::vector<Shape> shapes{
        {37, 172, 32}, {19, 33, 16},  {21, 33, 33},  {40, 257, 64},  {24, 257, 128}, {33, 1000, 32},
        {17, 1000, 1000}, {20, 100, 24}, {18, 257, 48}, {35, 64, 16}, {16, 1000, 128}, {9, 7, 5},
        {48, 256, 32}, {40, 512, 128}, {23, 512, 16}, {26, 512, 512}};
    return shapes;
}

inline std::vector<Case> grid() {
    const struct {
        si_weight_format format;
        si_activation_mode activations;
        bool symmetric;
    } modes[] = {{SI_WEIGHT_I8, SI_ACTIVATIONS_FLOAT, false},
                 {SI_WEIGHT_I4, SI_ACTIVATIONS_FLOAT, false},
                 {SI_WEIGHT_I8, SI_ACTIVATIONS_I8, false},
                 {SI_WEIGHT_I8, SI_ACTIVATIONS_I8_BLOCK32, false},
                 {SI_WEIGHT_I4, SI_ACTIVATIONS_I8_BLOCK32, false},
                 {SI_WEIGHT_I4, SI_ACTIVATIONS_FLOAT, true},
                 {SI_WEIGHT_I4, SI_ACTIVATIONS_I8_BLOCK32, true}};
    std::vector<Case> cases;
    int index = 0;
    for (const auto& mode : modes) {
        // Block-wise activations take group sizes that never split a 32-k block.
        auto fits = [&](const Shape& s) {
            return mode.activations != SI_ACTIVATIONS_I8_BLOCK32 || s.group_size % 32 == 0 || s.group_size >= s.k;
        };
        // Symmetric int4 differs from affine only in where the offset comes from: fewer batches.
        const std::vector<int32_t> ms = mode.symmetric ? std::vector<int32_t>{1, 17, 64} : std::vector<int32_t>{1, 3, 16, 17, 64, 129};
        for (const Shape& s : exact_shapes()) {
            if (!fits(s)) continue;
            for (int32_t m : ms) {
                ++index;
                // Strides and bias vary over the grid so each shape sees both.
                cases.push_back(Case{m, s.n, s.k, s.group_size, mode.format, mode.activations, index % 2 ? 3 : 0,
                                     index % 3 == 0 ? 5 : 0, index % 2 == 0, Data::Exact, mode.symmetric});
            }
        }
        for (const Shape& s : {Shape{37, 172, 32}, Shape{40, 257, 64}, Shape{33, 1000, 32}, Shape{17, 1000, 1000},
                               Shape{35, 64, 16}, Shape{64, 512, 128}, Shape{20, 100, 24}, Shape{29, 2048, 256},
                               Shape{21, 5632, 32}}) {  // long rows: the cpu block-wise kernel splits k
            if (!fits(s)) continue;
            for (int32_t m : {1, 17, 64}) {
                ++index;
                cases.push_back(Case{m, s.n, s.k, s.group_size, mode.format, mode.activations, index % 2 ? 1 : 0,
                                     index % 3 == 0 ? 2 : 0, index % 2 == 1, Data::Random, mode.symmetric});
            }
        }
        // Wide: with 2 threads (8 tiles) a cpu tile of int4 weights exceeds half of L2, so the
        // block-wise kernel goes block of channels by block of channels instead of row block by
        // row block (k stays in one segment).
        if (mode.activations == SI_ACTIVATIONS_I8_BLOCK32) {
            ++index;
            cases.push_back(Case{17, 2800, 3072, 32, mode.format, mode.activations, 0, 0, true, Data::Random, mode.symmetric});
        }
    }
    return cases;
}

// ---- host buffers ----------------------------------------------------------------------------

constexpr size_t kGuard = 16;            // floats after x and y
constexpr uint32_t kSentinel = 0x7fc0deadu;  // a NaN that must keep its bits

inline float sentinel() {
    float f;
    std::memcpy(&f, &kSentinel, sizeof f);
    return f;
}

class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed * 0x9e3779b97f4a7c15ull + 1) {}
    uint32_t next() {
        state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
        return uint32_t(state_ >> 33);
    }
    int32_t range(int32_t lo, int32_t hi) { return lo + int32_t(next() % uint32_t(hi - lo + 1)); }  // [lo, hi]
    float uniform(float lo, float hi) { return lo + (hi - lo) * float(double(next()) / 2147483648.0); }

private:
    uint64_t state_;
};

inline uint64_t hash_name(const std::string& s) {
    uint64_t h = 1469598103934665603ull;
    for (char c : s) h = (h ^ uint8_t(c)) * 1099511628211ull;
    return h;
}

struct Problem {
    Case c;
    int64_t x_stride, y_stride, row_bytes, n_groups;
    std::vector<float> x;        // [m, x_stride] + guard
    std::vector<uint8_t> q;      // [n, row_bytes]
    std::vector<float> scales;   // [n, n_groups]
    std::vector<float> offsets;  // [n, n_groups] (I4; else one unused element)
    std::vector<float> bias;     // [n] (or one unused element)
    std::vector<float> y_init;   // [m, y_stride] + guard, all sentinel
    std::vector<double> magnitude;  // [m, n]: sum_i |x_i w_i| + |bias|, for the tolerance

    explicit Problem(const Case& c_) : c(c_) {
        x_stride = int64_t(c.k) + c.x_pad;
        y_stride = int64_t(c.n) + c.y_pad;
        row_bytes = c.format == SI_WEIGHT_I4 ? (int64_t(c.k) + 1) / 2 : c.k;
        n_groups = (int64_t(c.k) + c.group_size - 1) / c.group_size;
        Rng rng(hash_name(c.name()));
        const bool exact = c.data == Data::Exact;
        const float nan = std::numeric_limits<float>::quiet_NaN();

        x.assign(size_t(c.m) * size_t(x_stride) + kGuard, nan);
        for (int32_t r = 0; r < c.m; ++r) {
            float* row = x.data() + size_t(r) * size_t(x_stride);
            if (c.activations == SI_ACTIVATIONS_I8_BLOCK32 && exact) {
                // Every 32-k block has max |x| = 127 * 2^-e exactly (so its scale is 2^-e and
                // q = v); row 1 is all zeros and row 2's second block too (scale 0).
                const float unit = std::ldexp(1.0f, -(r % 4));
                for (int32_t i = 0; i < c.k; ++i) row[i] = r == 1 ? 0.0f : float(rng.range(-4, 4)) * unit;
                for (int32_t begin = 0, b = 0; begin < c.k && r != 1; begin += 32, ++b) {
                    const int32_t len = std::min(32, c.k - begin);
                    if (r == 2 && b == 1) {
                        for (int32_t i = begin; i < begin + len; ++i) row[i] = 0.0f;
                        continue;
                    }
                    row[begin + (r * 7 + b * 5) % len] = ((r + b) % 2 ? -127.0f : 127.0f) * unit;
                }
            } else if (c.activations == SI_ACTIVATIONS_I8 && exact) {
                // Row 1 is all zeros (scale 0); the others have max |x| = 127 * 2^-e exactly.
                const float unit = std::ldexp(1.0f, -(r % 4));
                for (int32_t i = 0; i < c.k; ++i) row[i] = r == 1 ? 0.0f : float(rng.range(-4, 4)) * unit;
                if (r != 1) row[(r * 7) % c.k] = (r % 2 ? -127.0f : 127.0f) * unit;
            } else {
                for (int32_t i = 0; i < c.k; ++i) row[i] = exact ? float(rng.range(-3, 3)) : rng.uniform(-1.0f, 1.0f);
            }
        }

        q.resize(size_t(c.n) * size_t(row_bytes));
        for (uint8_t& b : q) b = uint8_t(rng.next());
        if (c.format == SI_WEIGHT_I8) {
            // -128 is a valid stored value; keep it rare but present.
            for (uint8_t& b : q)
                if (b == 0x80 && rng.range(0, 3) != 0) b = 0x81;
        }

        scales.resize(size_t(c.n) * size_t(n_groups));
        offsets.assign(c.format == SI_WEIGHT_I4 ? scales.size() : 1, 0.0f);
        for (size_t i = 0; i < scales.size(); ++i) {
            if (exact) {
                scales[i] = std::ldexp(1.0f, rng.range(-3, 1));
                if (c.format == SI_WEIGHT_I4) offsets[i] = float(c.symmetric ? -8 : rng.range(-8, 0)) * scales[i];
            } else {
                const float base = c.format == SI_WEIGHT_I4 ? 1.0f / 15.0f : 1.0f / 127.0f;
                scales[i] = base * rng.uniform(0.5f, 1.5f);
                if (c.format == SI_WEIGHT_I4) offsets[i] = -8.0f * scales[i] * (c.symmetric ? 1.0f : rng.uniform(0.8f, 1.2f));
            }
        }
        bias.assign(c.bias ? size_t(c.n) : 1, 0.0f);
        if (c.bias)
            for (float& b : bias) b = exact ? float(rng.range(-4, 4)) : rng.uniform(-1.0f, 1.0f);

        y_init.assign(size_t(c.m) * size_t(y_stride) + kGuard, sentinel());

        magnitude.assign(size_t(c.m) * size_t(c.n), 0.0);
        for (int32_t r = 0; r < c.m; ++r) {
            const float* row = x.data() + size_t(r) * size_t(x_stride);
            for (int32_t ch = 0; ch < c.n; ++ch) {
                double sum = c.bias ? std::fabs(double(bias[size_t(ch)])) : 0.0;
                for (int32_t i = 0; i < c.k; ++i) sum += std::fabs(double(row[i]) * weight(ch, i));
                magnitude[size_t(r) * size_t(c.n) + size_t(ch)] = sum;
            }
        }
    }

    double weight(int32_t channel, int32_t i) const {
        const size_t g = size_t(channel) * size_t(n_groups) + size_t(i / c.group_size);
        if (c.format == SI_WEIGHT_I8) return double(int8_t(q[size_t(channel) * size_t(row_bytes) + size_t(i)])) * scales[g];
        const uint8_t byte = q[size_t(channel) * size_t(row_bytes) + size_t(i / 2)];
        return double((i & 1) ? byte >> 4 : byte & 15) * scales[g] + offsets[g];
    }

    // The params with the given buffer pointers (host or device).
    si_qmatmul_params params(const float* x_ptr, const void* q_ptr, const float* scales_ptr, const float* offsets_ptr,
                             const float* bias_ptr, float* y_ptr) const {
        si_qmatmul_params p{};
        p.x = x_ptr;
        p.q = q_ptr;
        p.scales = scales_ptr;
        p.offsets = c.format == SI_WEIGHT_I4 && !c.symmetric ? offsets_ptr : nullptr;  // symmetric: the kernel derives -8 * scale
        p.bias = c.bias ? bias_ptr : nullptr;
        p.y = y_ptr;
        p.x_stride = x_stride;
        p.y_stride = y_stride;
        p.m = c.m;
        p.n = c.n;
        p.k = c.k;
        p.group_size = c.group_size;
        p.format = c.format;
        p.activations = c.activations;
        return p;
    }

    // Runs the case on a host-memory context (ref or cpu); returns the status and fills *y.
    si_result run_host(si_context* context, std::vector<float>* y) const {
        *y = y_init;
        const si_qmatmul_params p = params(x.data(), q.data(), scales.data(), offsets.data(), bias.data(), y->data());
        return si_qmatmul(context, &p);
    }

    // "" when `got` matches `want` (the ref result) by the case's rule and every element
    // outside the outputs kept its sentinel bits; else the first few differences.
    std::string compare(const std::vector<float>& want, const std::vector<float>& got) const {
        std::ostringstream errors;
        int reported = 0;
        auto report = [&](const std::string& text) {
            if (reported++ < 5) errors << text << "\n";
        };
        if (got.size() != want.size()) return "output size differs";
        for (size_t at = 0; at < got.size(); ++at) {
            const int64_t r = int64_t(at) / y_stride, ch = int64_t(at) % y_stride;
            const bool output = r < c.m && ch < c.n;
            uint32_t got_bits, want_bits;
            std::memcpy(&got_bits, &got[at], 4);
            std::memcpy(&want_bits, &want[at], 4);
            if (!output) {
                if (got_bits != kSentinel) report("wrote outside the outputs at element " + std::to_string(at));
                continue;
            }
            std::ostringstream where;
            where << "y[" << r << ", " << ch << "]: got " << got[at] << " want " << want[at];
            if (!std::isfinite(got[at])) {
                report(where.str() + " (not finite)");
            } else if (c.data == Data::Exact) {
                if (got_bits != want_bits) report(where.str() + " (exact case: bits differ)");
            } else {
                const double allowed = std::ldexp(magnitude[size_t(r) * size_t(c.n) + size_t(ch)], -17) + 1e-6;
                if (!(std::fabs(double(got[at]) - double(want[at])) <= allowed)) {
                    std::ostringstream text;
                    text << where.str() << " (error " << std::fabs(double(got[at]) - double(want[at])) << " > " << allowed << ")";
                    report(text.str());
                }
            }
        }
        if (reported > 5) errors << "... " << reported << " differences in all\n";
        return errors.str();
    }
};

}  // namespace si_test::qmatmul
