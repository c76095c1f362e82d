// ref_check.h: the check every benchmark runs before it times a case: the same op on the same
// inputs through the ref backend (the naive oracle), compared with the timed backend's output.
// A case whose output is off is skipped with an error naming the difference, so a fast wrong
// kernel shows up as an error, never as a figure. Where the ref would take seconds (large
// matmuls) the check covers a prefix of the output channels: the ref runs on the first rows of
// the same weight matrix.
#pragma once

#include <sharpinfer/sharpinfer.h>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace si_bench {

// One ref context for the whole run.
inline si_context* ref_context() {
    static si_context* context = [] {
        si_context_options options{};
        options.backend = SI_BACKEND_REF;
        options.num_threads = 1;
        si_context* created = nullptr;
        if (si_context_create(&options, &created) != SI_OK) {
            const char* message = "";
            si_last_error(&message);
            std::fprintf(stderr, "ref context: %s\n", message);
            std::exit(1);
        }
        return created;
    }();
    return context;
}

// The largest |got - want| and |want| over a [rows, cols] block of two strided outputs.
struct Difference {
    double max_error = 0.0;
    double max_want = 0.0;
    bool non_finite = false;

    void add(const float* got, int64_t got_stride, const float* want, int64_t want_stride, int64_t rows, int64_t cols) {
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < cols; ++c) {
                const double g = got[r * got_stride + c], w = want[r * want_stride + c];
                if (!std::isfinite(g)) non_finite = true;
                max_error = std::max(max_error, std::fabs(g - w));
                max_want = std::max(max_want, std::fabs(w));
            }
        }
    }
    double relative() const { return max_error / std::max(max_want, 1e-30); }
};

// Skips the benchmark with an error when the ref call failed or the outputs differ by more than
// `tolerance` of the largest ref output (f32 accumulation against the ref's: ~1e-6 for these
// shapes; a wrong kernel is off by O(1)). Returns whether the case may be timed.
inline bool matches_ref(benchmark::State& state, const char* op, si_result ref_status, const Difference& d, double tolerance = 1e-3) {
    char message[320];
    if (ref_status != SI_OK) {
        const char* error = "";
        si_last_error(&error);
        std::snprintf(message, sizeof message, "%s: the ref check could not run (%s): not timed", op, error);
    } else if (d.non_finite || !(d.relative() <= tolerance)) {
        std::snprintf(message, sizeof message, "%s differs from ref: max |err| %.3g = %.3g of max |ref| %.3g (tolerance %.1g)%s: not timed", op,
                      d.max_error, d.relative(), d.max_want, tolerance, d.non_finite ? ", non-finite outputs" : "");
    } else {
        return true;
    }
    state.SkipWithError(message);
    return false;
}

}  // namespace si_bench
