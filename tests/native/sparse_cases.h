// sparse_cases.h: the si_sparse_matmul case grid and its host-side harness, shared by the cpu
// tier (test_sparse_matmul.cpp, test_batch_invariance.cpp) and the cuda tier
// (gpu/test_cuda_sparse_matmul.cpp): each runs every case on its backend and compares with the
// ref backend run on the same host bytes. Header-only.
//
// Data are small integers (weights, x and bias in [-3, 3]) and every values dtype holds them
// exactly, so every product and partial sum is an exact f32 (|sum| <= 9 * k + 3 < 2^24) and
// any summation order gives the same bits: backends must equal ref bit for bit.
//
// Weights (make_weights) follow the case's pattern, dense [n, k] with the zeros in place:
//  - 2:4: each group of 4 consecutive k keeps 0, 1 or 2 non-zeros (mostly 2), including the
//    ragged last group when k % 4 != 0 (its positions past k are never non-zero).
//  - bitmask: each row has round(sparsity * k) zeros at random positions (so a row may be
//    all zeros, e.g. k = 4 at 90%).
// pack() writes the exact ABI layout of sharpinfer.h. For a 2:4 group with fewer than two
// non-zeros, the kept zero sits at a random free position, which may lie past k in the ragged
// last group, and the all-padding groups up to kp carry random (valid) metadata too: kernels
// must neither rely on the metadata of a zero nor read x past k.
// Poison: x row gaps and a guard after x are NaN (a stray read of x makes a NaN output);
// y gaps and a guard after y hold a NaN sentinel whose bits must survive.
#pragma once

#include "op_cases.h"  // first: it tames <signal.h>'s si_result macro

#include <sharpinfer/sharpinfer.h>

#include "common/dtype.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace si_test::sparse {

struct Case {
    int32_t m, n, k;
    si_sparse_format format;
    float sparsity;   // bitmask: fraction of zeros per row (0.5 / 0.7 / 0.9); 2:4: 0.5
    si_dtype dtype;   // values dtype: F32, F16, BF16
    int32_t x_pad = 0;  // x row stride is k + x_pad
    int32_t y_pad = 0;  // y row stride is n + y_pad
    bool bias = false;

    int64_t x_stride() const { return int64_t(k) + x_pad; }
    int64_t y_stride() const { return int64_t(n) + y_pad; }
    int32_t percent() const { return int32_t(std::lround(double(sparsity) * 100.0)); }
    std::string format_name() const {
        return format == SI_SPARSE_2_4 ? std::string("s24") : "bitmask" + std::to_string(percent());
    }
    std::string name() const {
        std::ostringstream s;
        s << format_name() << "_" << si::dtype_name(dtype) << "_m" << m << "_n" << n << "_k" << k;
        if (x_pad) s << "_xs" << x_pad;
        if (y_pad) s << "_ys" << y_pad;
        if (bias) s << "_bias";
        return s.str();
    }
};

// gtest prints a parameter by its name rather than its bytes.
inline void PrintTo(const Case& c, std::ostream* os) { *os << c.name(); }

// The acceptance grid. Every (format, sparsity, dtype) variant sees every k in
// {4, 16, 33, 172, 257, 1000} (tails of the 16-wide chunks, ragged 2:4 groups, several mask
// words), every m in {1, 3, 16, 17, 64, 129} (register-block tails) and every n in
// {1, 7, 64, 97} (thread split tails), with and without bias and strides; f16 (the main case)
// also runs the decode batches 2, 4, 5, each variant one batch of 16 over k = 2100 and two
// decode batches (1 and 3) over k = 9001 and 8230. 96 cases, each small enough for a 2-core CI.
inline std::vector<Case> grid() {
    const int32_t ms[] = {1, 3, 16, 17, 64, 129};
    const int32_t ks[] = {4, 16, 33, 172, 257, 1000};
    const int32_t ns[] = {1, 7, 64, 97};
    const struct {
        si_sparse_format format;
        float sparsity;
    } variants[] = {{SI_SPARSE_2_4, 0.5f}, {SI_SPARSE_BITMASK, 0.5f}, {SI_SPARSE_BITMASK, 0.7f}, {SI_SPARSE_BITMASK, 0.9f}};
    const si_dtype dtypes[] = {SI_DTYPE_F32, SI_DTYPE_F16, SI_DTYPE_BF16};
    std::vector<Case> cases;
    int index = 0, combo = 0;
    for (const auto& v : variants) {
        for (si_dtype dtype : dtypes) {
            ++combo;
            for (int ki = 0; ki < 6; ++ki) {
                Case c{ms[(ki + combo) % 6], ns[(ki + combo / 3) % 4], ks[ki], v.format, v.sparsity, dtype};
                // Keep the biggest products (m 129 x k 1000) to n <= 64.
                if (c.m == 129 && c.k == 1000 && c.n > 64) c.n = 64;
                ++index;
                c.x_pad = index % 3 == 0 ? 3 : 0;
                c.y_pad = index % 4 == 1 ? 5 : 0;
                c.bias = index % 2 == 0;
                cases.push_back(c);
            }
        }
        for (int32_t m : {2, 4, 5}) {
            ++index;
            Case c{m, 97, 257, v.format, v.sparsity, SI_DTYPE_F16};
            c.x_pad = m == 4 ? 1 : 0;
            c.bias = m != 2;
            cases.push_back(c);
        }
        // A long row in a batch: the cpu's batched path works through k in tiles of 1024.
        Case long_row{16, 33, 2100, v.format, v.sparsity, SI_DTYPE_BF16};
        long_row.x_pad = 2;
        long_row.bias = true;
        cases.push_back(long_row);
        // Long rows in decode (x longer than L1 holds), a ragged last mask word.
        for (const auto& [m, k] : {std::pair<int32_t, int32_t>{1, 9001}, {3, 8230}}) {
            ++index;
            Case c{m, 40, k, v.format, v.sparsity, m == 1 ? SI_DTYPE_F16 : SI_DTYPE_F32};
            c.bias = m == 1;
            cases.push_back(c);
        }
    }
    return cases;
}

// ---- data ------------------------------------------------------------------------------------

class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull) {}
    uint32_t next() {
        state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
        return uint32_t(state_ >> 33);
    }
    int32_t range(int32_t lo, int32_t hi) { return lo + int32_t(next() % uint32_t(hi - lo + 1)); }  // [lo, hi]
    float nonzero() { return float(range(0, 1) ? range(1, 3) : -range(1, 3)); }                    // +-1..3

private:
    uint64_t state_;
};

inline uint64_t hash_name(const std::string& s) {
    uint64_t h = 1469598103934665603ull;
    for (char c : s) h = (h ^ uint8_t(c)) * 1099511628211ull;
    return h;
}

// Dense [n, k] weights (row-major, row stride k) with the case's zero pattern applied.
inline std::vector<float> make_weights(const Case& c, uint32_t seed) {
    Rng rng(uint64_t(seed) * 31 + 7);
    std::vector<float> w(size_t(c.n) * size_t(c.k), 0.0f);
    for (int32_t r = 0; r < c.n; ++r) {
        float* row = w.data() + size_t(r) * size_t(c.k);
        if (c.format == SI_SPARSE_2_4) {
            for (int32_t g = 0; g < c.k; g += 4) {
                const int32_t width = std::min(4, c.k - g);
                // 0, 1 or 2 non-zeros: mostly 2 (the pruned checkpoints' case), some fewer.
                const int32_t pick = rng.range(0, 9);
                int32_t keep = pick < 1 ? 0 : pick < 3 ? 1 : 2;
                keep = std::min(keep, width);
                int32_t positions[4] = {0, 1, 2, 3};
                for (int32_t i = width - 1; i > 0; --i) std::swap(positions[i], positions[rng.range(0, i)]);
                for (int32_t j = 0; j < keep; ++j) row[g + positions[j]] = rng.nonzero();
            }
        } else {
            const int32_t zeros = int32_t(std::lround(double(c.sparsity) * c.k));
            std::vector<int32_t> order(size_t(c.k));
            for (int32_t i = 0; i < c.k; ++i) order[size_t(i)] = i;
            for (int32_t i = c.k - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(rng.range(0, i))]);
            for (int32_t j = zeros; j < c.k; ++j) row[order[size_t(j)]] = rng.nonzero();
        }
    }
    return w;
}

// Dense [m, k] activations (row stride k), small integers in [-3, 3].
inline std::vector<float> make_inputs(int32_t m, int32_t k, uint32_t seed) {
    Rng rng(uint64_t(seed) * 131 + 3);
    std::vector<float> x(size_t(m) * size_t(k));
    for (float& v : x) v = float(rng.range(-3, 3));
    return x;
}

// [n] bias, small integers in [-3, 3].
inline std::vector<float> make_bias(int32_t n, uint32_t seed) {
    Rng rng(uint64_t(seed) * 17 + 11);
    std::vector<float> b(static_cast<size_t>(n));
    for (float& v : b) v = float(rng.range(-3, 3));
    return b;
}

// ---- packing into the ABI layout ---------------------------------------------------------------

struct Packed {
    std::vector<uint8_t> values;       // in the case's dtype (never empty: at least 16 bytes)
    std::vector<uint16_t> meta24;      // 2:4: [n, kp / 16]; else empty
    std::vector<uint64_t> mask;        // bitmask: [n, (k + 63) / 64]; else empty
    std::vector<int64_t> row_offsets;  // bitmask: [n + 1]; else empty

    const void* index() const {
        return meta24.empty() ? static_cast<const void*>(mask.data()) : static_cast<const void*>(meta24.data());
    }
    size_t index_bytes() const { return meta24.size() * sizeof(uint16_t) + mask.size() * sizeof(uint64_t); }
};

inline int64_t padded_k(int32_t k) { return (int64_t(k) + 15) / 16 * 16; }  // 2:4's kp
inline int64_t mask_words(int32_t k) { return (int64_t(k) + 63) / 64; }

inline void store_value(std::vector<uint8_t>* values, size_t i, si_dtype dtype, float v) {
    if (dtype == SI_DTYPE_F32) {
        std::memcpy(values->data() + 4 * i, &v, 4);
    } else {
        const uint16_t h = dtype == SI_DTYPE_F16 ? si::f32_to_f16(v) : si::f32_to_bf16(v);
        std::memcpy(values->data() + 2 * i, &h, 2);
    }
}

// Packs dense weights w ([n, k], zeros in place, matching c.format) into the ABI layout;
// throws std::invalid_argument for a 2:4 group with more than two non-zeros.
inline Packed pack(const Case& c, const std::vector<float>& w) {
    Packed out;
    const size_t elem = size_t(si::dtype_size(c.dtype));
    Rng rng(hash_name(c.name()) ^ 0x5bd1e995u);  // picks the free positions of kept zeros
    if (c.format == SI_SPARSE_2_4) {
        const int64_t kp = padded_k(c.k);
        out.values.assign(std::max<size_t>(size_t(c.n) * size_t(kp / 2) * elem, 16), 0);
        out.meta24.assign(size_t(c.n) * size_t(kp / 16), 0);
        for (int32_t r = 0; r < c.n; ++r) {
            const float* row = w.data() + size_t(r) * size_t(c.k);
            for (int64_t g = 0; g < kp / 4; ++g) {
                int32_t kept[2] = {0, 0};
                int32_t count = 0;
                for (int32_t p = 0; p < 4; ++p) {
                    const int64_t i = g * 4 + p;
                    if (i >= c.k || row[i] == 0.0f) continue;
                    if (count == 2) throw std::invalid_argument("pack: a 2:4 group has more than two non-zeros");
                    kept[count++] = p;
                }
                // Fill up to two distinct positions with kept zeros at random free places.
                while (count < 2) {
                    const int32_t p = rng.range(0, 3);
                    if (count == 1 && p == kept[0]) continue;
                    kept[count++] = p;
                }
                if (kept[0] > kept[1]) std::swap(kept[0], kept[1]);
                const size_t word = size_t(r) * size_t(kp / 16) + size_t(g / 4);
                out.meta24[word] = uint16_t(out.meta24[word] | ((kept[0] | (kept[1] << 2)) << (4 * (g % 4))));
                for (int32_t j = 0; j < 2; ++j) {
                    const int64_t i = g * 4 + kept[j];
                    const float v = i < c.k ? row[i] : 0.0f;
                    store_value(&out.values, size_t(r) * size_t(kp / 2) + size_t(g * 2 + j), c.dtype, v);
                }
            }
        }
    } else {
        const int64_t kw = mask_words(c.k);
        out.mask.assign(size_t(c.n) * size_t(kw), 0);
        out.row_offsets.assign(size_t(c.n) + 1, 0);
        std::vector<float> kept;
        for (int32_t r = 0; r < c.n; ++r) {
            const float* row = w.data() + size_t(r) * size_t(c.k);
            for (int32_t i = 0; i < c.k; ++i) {
                if (row[i] == 0.0f) continue;
                out.mask[size_t(r) * size_t(kw) + size_t(i / 64)] |= uint64_t(1) << (i % 64);
                kept.push_back(row[i]);
            }
            out.row_offsets[size_t(r) + 1] = int64_t(kept.size());
        }
        out.values.assign(std::max<size_t>(kept.size() * elem, 16), 0);
        for (size_t i = 0; i < kept.size(); ++i) store_value(&out.values, i, c.dtype, kept[i]);
    }
    return out;
}

// The params for the case with the given buffers (host or device pointers). Row strides are
// c.x_stride() / c.y_stride() (k / n when the case has no padding); bias is used only when
// the case has one.
inline si_sparse_matmul_params params(const Case& c, const void* values, const void* index, const int64_t* row_offsets,
                                      const float* x, float* y, const float* bias) {
    si_sparse_matmul_params p{};
    p.x = x;
    p.values = values;
    p.index = index;
    p.row_offsets = c.format == SI_SPARSE_BITMASK ? row_offsets : nullptr;
    p.bias = c.bias ? bias : nullptr;
    p.y = y;
    p.x_stride = c.x_stride();
    p.y_stride = c.y_stride();
    p.m = c.m;
    p.n = c.n;
    p.k = c.k;
    p.values_dtype = c.dtype;
    p.format = c.format;
    p.reserved = 0;
    return p;
}

// Host-pointer form: values, index and row_offsets from p.
inline si_sparse_matmul_params params(const Case& c, const Packed& p, const float* x, float* y, const float* bias) {
    return params(c, p.values.data(), p.index(), p.row_offsets.empty() ? nullptr : p.row_offsets.data(), x, y, bias);
}

// ---- a whole problem: buffers, a host run, the comparison --------------------------------------

constexpr size_t kGuard = 16;                // floats after x and y
constexpr uint32_t kSentinel = 0x7fc0beefu;  // a NaN that must keep its bits

inline float sentinel() {
    float f;
    std::memcpy(&f, &kSentinel, sizeof f);
    return f;
}

struct Problem {
    Case c;
    std::vector<float> w;       // [n, k] dense, zeros in place
    std::vector<float> x;       // [m, x_stride] + guard; gaps and guard NaN
    std::vector<float> bias;    // [n] (all used only when c.bias)
    std::vector<float> y_init;  // [m, y_stride] + guard, all sentinel
    Packed packed;

    explicit Problem(const Case& c_) : c(c_) {
        const uint32_t seed = uint32_t(hash_name(c.name()));
        w = make_weights(c, seed);
        packed = pack(c, w);
        const std::vector<float> dense_x = make_inputs(c.m, c.k, seed + 1);
        x.assign(size_t(c.m) * size_t(c.x_stride()) + kGuard, std::numeric_limits<float>::quiet_NaN());
        for (int32_t r = 0; r < c.m; ++r)
            std::copy_n(dense_x.data() + size_t(r) * size_t(c.k), size_t(c.k), x.data() + size_t(r) * size_t(c.x_stride()));
        bias = make_bias(c.n, seed + 2);
        y_init.assign(size_t(c.m) * size_t(c.y_stride()) + kGuard, sentinel());
    }

    si_sparse_matmul_params params(float* y) const { return sparse::params(c, packed, x.data(), y, bias.data()); }

    // Runs the case on a host-memory context (ref or cpu); returns the status and fills *y.
    si_result run_host(si_context* context, std::vector<float>* y) const {
        *y = y_init;
        const si_sparse_matmul_params p = params(y->data());
        return si_sparse_matmul(context, &p);
    }

    // The same product through si_matmul on the dense weights in f32 (an independent oracle
    // for ref and for pack()).
    si_result run_dense(si_context* context, std::vector<float>* y) const {
        *y = y_init;
        si_matmul_params p{};
        p.x = x.data();
        p.w = w.data();
        p.bias = c.bias ? bias.data() : nullptr;
        p.y = y->data();
        p.x_stride = c.x_stride();
        p.y_stride = c.y_stride();
        p.m = c.m;
        p.n = c.n;
        p.k = c.k;
        p.w_dtype = SI_DTYPE_F32;
        return si_matmul(context, &p);
    }

    // "" when every output of `got` has the bits of `want` and every element outside the
    // outputs kept its sentinel; else the first few differences.
    std::string compare(const std::vector<float>& want, const std::vector<float>& got) const {
        std::ostringstream errors;
        int reported = 0;
        auto report = [&](const std::string& text) {
            if (reported++ < 5) errors << text << "\n";
        };
        if (got.size() != want.size()) return "output size differs";
        const int64_t y_stride = c.y_stride();
        for (size_t at = 0; at < got.size(); ++at) {
            const int64_t r = int64_t(at) / y_stride, ch = int64_t(at) % y_stride;
            uint32_t got_bits, want_bits;
            std::memcpy(&got_bits, &got[at], 4);
            std::memcpy(&want_bits, &want[at], 4);
            if (!(r < c.m && ch < c.n)) {
                if (got_bits != kSentinel) report("wrote outside the outputs at element " + std::to_string(at));
            } else if (got_bits != want_bits) {
                std::ostringstream text;
                text << "y[" << r << ", " << ch << "]: got " << got[at] << " want " << want[at] << " (bits differ)";
                report(text.str());
            }
        }
        if (reported > 5) errors << "... " << reported << " differences in all\n";
        return errors.str();
    }
};

}  // namespace si_test::sparse
