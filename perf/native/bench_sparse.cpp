// bench_sparse.cpp: Google Benchmark figures for the cpu backend's si_sparse_matmul through the
// C ABI on Llama-7B shapes (n x k = 4096 x 4096 q/k/v/o, 11008 x 4096 gate/up, 4096 x 11008
// down) at m = 1, 4, 16, 64, with f16 values, for the dense f16 si_matmul (the baseline), 2:4
// and bitmask at 50 / 70 / 90 % zeros, each beside:
//  - the speedup over the dense f16 matmul on the same shape and m, from the two timed in
//    alternation (best of 7 rounds each), so that bandwidth and load drifts on a shared
//    machine affect both alike;
//  - GB/s of weight bytes streamed per call (values + metadata + row offsets; dense: the f16
//    matrix) and its fraction of the streaming-read bandwidth measured in this binary (all
//    threads).
// Weights cycle through enough copies (>= 256 MiB) that every call streams them from DRAM, as a
// decode step does. Every case is first checked against the ref backend on its first 64 output
// channels (ref_check.h). A summary table, with the load average at start and end, is printed at the
// end; --benchmark_out=FILE --benchmark_out_format=json writes every row with its counters.
//
// Run: build/<dir>/perf/native/si_bench_sparse [--benchmark_filter=m:1/]
// SI_BENCH_THREADS sets the thread count (default: all hardware threads); SI_CPU_ISA lowers
// the ISA level (scalar|avx2).
#include <sharpinfer/sharpinfer.h>

#include "common/dtype.h"
#include "read_bandwidth.h"
#include "ref_check.h"

#include <benchmark/benchmark.h>

#include <cpuid.h>
// GCC 12.1/12.2 flag the self-initialisation inside _mm512_undefined_*() when AVX-512 comes
// from a target attribute (GCC PR105593); the warning follows the header's pragma state.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

int32_t bench_threads() {
    const char* text = std::getenv("SI_BENCH_THREADS");
    const int32_t n = text ? std::atoi(text) : 0;
    return n > 0 ? n : int32_t(std::max(1u, std::thread::hardware_concurrency()));
}

double now_seconds() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string load_average() {
    char text[128] = {};
    if (FILE* f = std::fopen("/proc/loadavg", "r")) {
        if (!std::fgets(text, sizeof text, f)) text[0] = 0;
        std::fclose(f);
    }
    std::string s = text;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s.empty() ? "unknown" : s;
}

// ---- machine bandwidth: streaming read (read_bandwidth.h) ------------------------------------

double read_gbps_all() {
    static const double gbps = si_bench::measure_read_gbps(bench_threads());
    return gbps;
}

// ---- problems -----------------------------------------------------------------------------

si_context* cpu_context() {
    static si_context* context = nullptr;
    if (!context) {
        si_context_options options{};
        options.backend = SI_BACKEND_CPU;
        options.num_threads = bench_threads();
        if (si_context_create(&options, &context) != SI_OK) {
            const char* message = "";
            si_last_error(&message);
            std::fprintf(stderr, "si_context_create failed: %s\n", message);
            std::exit(1);
        }
    }
    return context;
}

bool check(benchmark::State& state, si_result status) {
    if (status == SI_OK) return true;
    const char* message = "";
    si_last_error(&message);
    state.SkipWithError(message);
    return false;
}

uint32_t next_random(uint64_t& state) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(state >> 33);
}

float uniform(uint64_t& state) { return float(double(next_random(state)) / 2147483648.0) * 2.0f - 1.0f; }

const int32_t kShapes[][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};  // {n, k}
constexpr size_t kStreamBytes = size_t(256) << 20;                          // weights cycled per benchmark

enum Format { kDense = 0, k24 = 1, kBitmask50 = 2, kBitmask70 = 3, kBitmask90 = 4 };
const char* const kFormatNames[] = {"dense f16", "2:4 f16", "bitmask 50% f16", "bitmask 70% f16", "bitmask 90% f16"};
const double kZeros[] = {0.0, 0.5, 0.5, 0.7, 0.9};

size_t align64(size_t bytes) { return (bytes + 63) / 64 * 64; }

// `copies` copies of one weight matrix, each a contiguous block of `bytes`:
// [values | index | row_offsets] (row_offsets for the bitmask only) or [f16 matrix].
struct Weights {
    Format format;
    int32_t n, k;
    size_t values_bytes = 0, index_bytes = 0, offsets_bytes = 0;  // per copy, each 64-aligned
    size_t bytes = 0, copies = 0;
    double streamed = 0;  // bytes a call reads (unpadded)
    std::vector<uint8_t> data;

    Weights(Format format_, int32_t n_, int32_t k_) : format(format_), n(n_), k(k_) {
        uint64_t seed = 0x5eed + uint64_t(format) * 7919 + uint64_t(n) * 31 + uint64_t(k);
        const float amplitude = 1.0f / std::sqrt(float(k) * float(1.0 - kZeros[format]));
        auto random_f16 = [&] { return si::f32_to_f16(amplitude * uniform(seed)); };
        std::vector<uint16_t> values;
        std::vector<uint8_t> index;
        std::vector<int64_t> offsets;
        if (format == kDense) {
            values.resize(size_t(n) * size_t(k));
            for (uint16_t& v : values) v = random_f16();
        } else if (format == k24) {
            const int64_t kp = (int64_t(k) + 15) / 16 * 16;
            values.resize(size_t(n) * size_t(kp / 2));
            std::vector<uint16_t> meta(size_t(n) * size_t(kp / 16), 0);
            const uint8_t pairs[6] = {0x4, 0x8, 0xc, 0x9, 0xd, 0xe};  // (first, second) nibbles, first < second
            for (size_t g = 0; g < size_t(n) * size_t(kp / 4); ++g) {
                meta[g / 4] = uint16_t(meta[g / 4] | (pairs[next_random(seed) % 6] << (4 * (g % 4))));
                values[2 * g] = random_f16();
                values[2 * g + 1] = random_f16();
            }
            index.resize(meta.size() * 2);
            std::memcpy(index.data(), meta.data(), index.size());
        } else {
            const int64_t kw = (int64_t(k) + 63) / 64;
            std::vector<uint64_t> mask(size_t(n) * size_t(kw), 0);
            offsets.assign(size_t(n) + 1, 0);
            const uint32_t keep_below = uint32_t((1.0 - kZeros[format]) * 4294967296.0 / 2.0);  // next_random is 31-bit
            for (int32_t r = 0; r < n; ++r) {
                for (int32_t i = 0; i < k; ++i) {
                    if (next_random(seed) >= keep_below) continue;
                    mask[size_t(r) * size_t(kw) + size_t(i / 64)] |= uint64_t(1) << (i % 64);
                    values.push_back(random_f16());
                }
                offsets[size_t(r) + 1] = int64_t(values.size());
            }
            index.resize(mask.size() * 8);
            std::memcpy(index.data(), mask.data(), index.size());
        }
        values_bytes = align64(values.size() * 2);
        index_bytes = align64(index.size());
        offsets_bytes = align64(offsets.size() * 8);
        bytes = values_bytes + index_bytes + offsets_bytes;
        streamed = double(values.size() * 2 + index.size() + offsets.size() * 8);
        copies = std::max<size_t>(1, (kStreamBytes + bytes - 1) / bytes);
        data.assign(bytes * copies, 0);
        uint8_t* first = data.data();
        std::memcpy(first, values.data(), values.size() * 2);
        if (!index.empty()) std::memcpy(first + values_bytes, index.data(), index.size());
        if (!offsets.empty()) std::memcpy(first + values_bytes + index_bytes, offsets.data(), offsets.size() * 8);
        for (size_t c = 1; c < copies; ++c) std::memcpy(data.data() + c * bytes, first, bytes);
    }
};

// The weights of the last (format, shape) asked for, and the dense weights of the last shape:
// the benchmarks run grouped by shape, so one dense and one sparse set live at a time.
const Weights& weights_for(Format format, int shape) {
    static std::unique_ptr<Weights> dense, sparse;
    std::unique_ptr<Weights>& slot = format == kDense ? dense : sparse;
    if (!slot || slot->format != format || slot->n != kShapes[shape][0] || slot->k != kShapes[shape][1]) {
        slot.reset();
        slot = std::make_unique<Weights>(format, kShapes[shape][0], kShapes[shape][1]);
    }
    return *slot;
}

// One call on copy `copy` of the weights, on the cpu backend; or on `context` over the first
// `rows` output channels (the ref check), writing y with row stride `rows`.
si_result call(const Weights& weights, size_t copy, int32_t m, const float* x, float* y, si_context* context = nullptr, int32_t rows = 0) {
    const uint8_t* base = weights.data.data() + copy * weights.bytes;
    const int32_t n = rows > 0 ? rows : weights.n, k = weights.k;
    if (!context) context = cpu_context();
    if (weights.format == kDense) {
        si_matmul_params p{};
        p.x = x;
        p.w = base;
        p.y = y;
        p.x_stride = k;
        p.y_stride = n;
        p.m = m;
        p.n = n;
        p.k = k;
        p.w_dtype = SI_DTYPE_F16;
        return si_matmul(context, &p);
    }
    si_sparse_matmul_params p{};
    p.x = x;
    p.values = base;
    p.index = base + weights.values_bytes;
    p.row_offsets = weights.format == k24 ? nullptr : reinterpret_cast<const int64_t*>(base + weights.values_bytes + weights.index_bytes);
    p.y = y;
    p.x_stride = k;
    p.y_stride = n;
    p.m = m;
    p.n = n;
    p.k = k;
    p.values_dtype = SI_DTYPE_F16;
    p.format = weights.format == k24 ? SI_SPARSE_2_4 : SI_SPARSE_BITMASK;
    return si_sparse_matmul(context, &p);
}

// Seconds per call over `calls` calls, cycling the copies.
double seconds_per_call(const Weights& weights, int32_t m, const float* x, float* y, int calls, size_t* copy) {
    const double start = now_seconds();
    for (int i = 0; i < calls; ++i) {
        call(weights, *copy, m, x, y);
        *copy = (*copy + 1) % weights.copies;
    }
    return (now_seconds() - start) / calls;
}

// Args: shape, format, m.
void BM_sparse(benchmark::State& state) {
    const int shape = int(state.range(0));
    const Format format = Format(state.range(1));
    const int32_t m = int32_t(state.range(2));
    const int32_t n = kShapes[shape][0], k = kShapes[shape][1];
    const double bandwidth = read_gbps_all();
    const Weights& weights = weights_for(format, shape);
    uint64_t seed = 99;
    std::vector<float> x(size_t(m) * size_t(k)), y(size_t(m) * size_t(n));
    for (float& v : x) v = uniform(seed);
    {
        // Ref check: the first 64 channels of the same weights (each row is stored on its own, so
        // a prefix of rows is a valid matrix of every format).
        if (!check(state, call(weights, 0, m, x.data(), y.data()))) return;
        const int32_t rows = std::min(n, 64);
        std::vector<float> want(size_t(m) * size_t(rows));
        si_bench::Difference d;
        const si_result status = call(weights, 0, m, x.data(), want.data(), si_bench::ref_context(), rows);
        if (status == SI_OK) d.add(y.data(), n, want.data(), rows, m, rows);
        if (!si_bench::matches_ref(state, kFormatNames[format], status, d)) return;
    }

    size_t copy = 0;
    for (auto _ : state) {
        if (!check(state, call(weights, copy, m, x.data(), y.data()))) return;
        copy = (copy + 1) % weights.copies;
        benchmark::ClobberMemory();
    }
    const double gb = weights.streamed * 1e-9;
    state.counters["GB/s"] = benchmark::Counter(gb, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["bw_fraction"] = benchmark::Counter(gb / bandwidth, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["MB/call"] = gb * 1e3;
    if (format != kDense) {
        // The speedup from dense and sparse timed in alternation, the best of 7 rounds of about
        // 20 ms each, so that drifts of bandwidth and load on a shared machine hit both alike.
        const Weights& dense = weights_for(kDense, shape);
        size_t dense_copy = 0;
        const double once = seconds_per_call(dense, m, x.data(), y.data(), 1, &dense_copy);
        const int calls = std::max(2, int(0.02 / std::max(1e-6, once)));
        double best_dense = 1e30, best_sparse = 1e30;
        for (int round = 0; round < 7; ++round) {
            best_dense = std::min(best_dense, seconds_per_call(dense, m, x.data(), y.data(), calls, &dense_copy));
            best_sparse = std::min(best_sparse, seconds_per_call(weights, m, x.data(), y.data(), calls, &copy));
        }
        state.counters["vs_dense"] = best_dense / best_sparse;
    }
    state.SetLabel(std::string(kFormatNames[format]) + " m=" + std::to_string(m) + " " + std::to_string(n) + "x" + std::to_string(k));
}

// Grouped by shape, then format, then m.
void sparse_args(benchmark::internal::Benchmark* b) {
    b->ArgNames({"shape", "format", "m"});
    for (int shape : {0, 1, 2})
        for (int format : {kDense, k24, kBitmask50, kBitmask70, kBitmask90})
            for (int m : {1, 4, 16, 64}) b->Args({shape, format, m});
}
BENCHMARK(BM_sparse)->Apply(sparse_args)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.3);

// ---- summary ----------------------------------------------------------------------------------

class SummaryReporter : public benchmark::ConsoleReporter {
public:
    struct Row {
        std::string label;
        double us, gbps, fraction, speedup;
    };

    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const Run& run : runs) {
            if (run.error_occurred || run.report_label.empty()) continue;
            auto counter = [&](const char* key) {
                const auto it = run.counters.find(key);
                return it == run.counters.end() ? 0.0 : double(it->second);
            };
            rows_.push_back(Row{run.report_label, run.GetAdjustedRealTime(), counter("GB/s"), counter("bw_fraction"), counter("vs_dense")});
        }
    }

    void PrintSummary(const std::string& load_before) const {
        std::printf("\nSummary (cpu backend, %d thread(s)); measured read bandwidth %.1f GB/s\n", bench_threads(), read_gbps_all());
        std::printf("load average (1/5/15 min) at start: %s; at end: %s\n", load_before.c_str(), load_average().c_str());
        std::printf("  %-36s %10s %8s %9s %9s\n", "case", "us/call", "GB/s", "of bw", "vs dense");
        for (const Row& row : rows_) {
            std::printf("  %-36s %10.1f %8.1f %8.0f%% ", row.label.c_str(), row.us, row.gbps, 100.0 * row.fraction);
            if (row.speedup > 0) std::printf("%8.2fx\n", row.speedup);
            else std::printf("%9s\n", "-");
        }
        std::printf("  (GB/s: weight bytes per call, values + index + row offsets, or the dense f16 matrix; of bw: fraction of the read bandwidth)\n");
    }

private:
    std::vector<Row> rows_;
};

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    const std::string load_before = load_average();
    SummaryReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    reporter.PrintSummary(load_before);
    benchmark::Shutdown();
    return 0;
}
