// bench_qmatmul.cpp: Google Benchmark figures for the cpu backend's si_qmatmul through the C
// ABI on TinyLlama-1.1B shapes (n x k = 2048 x 2048 q/o, 5632 x 2048 gate/up, 2048 x 5632
// down) at m = 1, 4, 16, 64, for int8 weights with f32 activations (W8A16, group 32), int4
// (W4A16, group 32, affine), int8 weights with int8 activations per token (W8A8, group 32), and
// block-wise int8 activations (per 32-k block, GGUF Q8_0 / Q4_0 style) with int8 weights (W8A8
// b32) and symmetric int4 weights (W4A8 b32 sym, no offsets stored), each beside:
//  - GB/s of quantized bytes streamed (q + scales + offsets) and its fraction of the
//    streaming-read bandwidth measured in this binary (all threads);
//  - the speedup over the dense f16 si_matmul on the same shape and m, timed in the same run
//    (the f16 rows are benchmarks too).
// Weights cycle through enough copies (>= 256 MiB) that every call streams them from DRAM, as a
// decode step does. Every case is first checked against the ref backend on its first 64
// output channels (ref_check.h). A summary table is printed at the end.
//
// Run: build/<dir>/perf/native/si_bench_qmatmul [--benchmark_filter=m:1/]
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
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

int32_t bench_threads() {
    const char* text = std::getenv("SI_BENCH_THREADS");
    const int32_t n = text ? std::atoi(text) : 0;
    return n > 0 ? n : int32_t(std::max(1u, std::thread::hardware_concurrency()));
}

double now_seconds() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

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

const int32_t kShapes[][2] = {{2048, 2048}, {5632, 2048}, {2048, 5632}};  // {n, k}
constexpr int32_t kGroup = 32;
constexpr size_t kStreamBytes = size_t(256) << 20;  // weights cycled per benchmark

// B32: int8 activations per 32-k block (llama.cpp's Q8_0 x Q4_0 / Q8_0 scheme).
enum Format { kF16 = 0, kW8A16 = 1, kW4A16 = 2, kW8A8 = 3, kW8A8B32 = 4, kW4A8B32 = 5 };
inline bool is_int4(int format) { return format == 2 || format == 5; }
// W4A8 b32 is symmetric int4 (no offsets stored: -8 * scale), as GGUF Q4_0 loads; W4A16 affine.
inline bool has_offsets(int format) { return format == 2; }
const char* const kFormatNames[] = {"f16", "W8A16 g32", "W4A16 g32", "W8A8 g32", "W8A8 g32 b32", "W4A8 g32 b32 sym"};

// `copies` copies of one weight matrix in a format, each a contiguous block of `bytes`.
struct Weights {
    size_t bytes = 0, copies = 0;
    size_t q_bytes = 0, scale_count = 0;  // per copy; quantized formats only
    std::vector<uint8_t> data;            // [copies][q | scales | offsets] or [copies][f16]

    Weights(Format format, int32_t n, int32_t k) {
        uint64_t seed = 0x5eed + uint64_t(format) * 7919 + uint64_t(n) * 31 + uint64_t(k);
        const int64_t n_groups = (k + kGroup - 1) / kGroup;
        if (format == kF16) {
            bytes = size_t(n) * size_t(k) * 2;
        } else {
            q_bytes = size_t(n) * size_t(is_int4(format) ? (k + 1) / 2 : k);
            scale_count = size_t(n) * size_t(n_groups);
            bytes = q_bytes + scale_count * sizeof(float) * (has_offsets(format) ? 2 : 1);
            bytes = (bytes + 63) / 64 * 64;
        }
        copies = std::max<size_t>(1, (kStreamBytes + bytes - 1) / bytes);
        data.resize(bytes * copies);
        uint8_t* first = data.data();
        if (format == kF16) {
            const float amplitude = 1.0f / std::sqrt(float(k));
            for (size_t i = 0; i < size_t(n) * size_t(k); ++i) {
                const uint16_t h = si::f32_to_f16(amplitude * uniform(seed));
                std::memcpy(first + 2 * i, &h, 2);
            }
        } else {
            for (size_t i = 0; i < q_bytes; ++i) first[i] = uint8_t(next_random(seed));
            float* scales = reinterpret_cast<float*>(first + q_bytes);
            const float base = (is_int4(format) ? 1.0f / 15.0f : 1.0f / 127.0f) / std::sqrt(float(k));
            for (size_t i = 0; i < scale_count; ++i) scales[i] = base * (1.0f + 0.5f * uniform(seed));
            if (has_offsets(format))
                for (size_t i = 0; i < scale_count; ++i) scales[scale_count + i] = -8.0f * scales[i] * (1.0f + 0.1f * uniform(seed));
        }
        for (size_t c = 1; c < copies; ++c) std::memcpy(data.data() + c * bytes, first, bytes);
    }
};

// One matmul of format `format` over `rows` output channels (y row stride = rows): si_matmul for
// f16 (q = the f16 matrix), else si_qmatmul with group 32 and the format's activation mode.
si_result run_format(Format format, si_context* context, const uint8_t* q, const float* scales, const float* offsets, int32_t rows,
                     int32_t k, int32_t m, const float* x, float* y) {
    if (format == kF16) {
        si_matmul_params p{};
        p.x = x;
        p.w = q;
        p.y = y;
        p.x_stride = k;
        p.y_stride = rows;
        p.m = m;
        p.n = rows;
        p.k = k;
        p.w_dtype = SI_DTYPE_F16;
        return si_matmul(context, &p);
    }
    si_qmatmul_params p{};
    p.x = x;
    p.q = q;
    p.scales = scales;
    p.offsets = offsets;
    p.y = y;
    p.x_stride = k;
    p.y_stride = rows;
    p.m = m;
    p.n = rows;
    p.k = k;
    p.group_size = kGroup;
    p.format = is_int4(format) ? SI_WEIGHT_I4 : SI_WEIGHT_I8;
    p.activations = format == kW8A8 ? SI_ACTIVATIONS_I8 : format >= kW8A8B32 ? SI_ACTIVATIONS_I8_BLOCK32 : SI_ACTIVATIONS_FLOAT;
    return si_qmatmul(context, &p);
}

// Seconds per f16 call at (m, shape), recorded by the f16 rows as they run.
std::map<std::pair<int, int>, double>& f16_seconds() {
    static std::map<std::pair<int, int>, double> times;
    return times;
}

// Args: format, m, shape.
void BM_qmatmul(benchmark::State& state) {
    const Format format = Format(state.range(0));
    const int32_t m = int32_t(state.range(1));
    const int shape = int(state.range(2));
    const int32_t n = kShapes[shape][0], k = kShapes[shape][1];
    const double bandwidth = read_gbps_all();
    const Weights weights(format, n, k);
    uint64_t seed = 99;
    std::vector<float> x(size_t(m) * size_t(k)), y(size_t(m) * size_t(n));
    for (float& v : x) v = uniform(seed);
    si_context* ctx = cpu_context();
    const int64_t n_groups = (k + kGroup - 1) / kGroup;

    // The timed call: copy `base` of the weights, all n channels.
    auto call = [&](si_context* context, const uint8_t* base, float* out) {
        const float* scales = format == kF16 ? nullptr : reinterpret_cast<const float*>(base + weights.q_bytes);
        return run_format(format, context, base, scales, has_offsets(format) ? scales + weights.scale_count : nullptr, n, k, m, x.data(), out);
    };
    {
        // Ref check on the first 64 output channels: every array is stored per channel, so the
        // first rows of each are the same matrix's first channels.
        if (!check(state, call(ctx, weights.data.data(), y.data()))) return;
        const int32_t rows = std::min(n, 64);
        std::vector<float> want(size_t(m) * size_t(rows));
        const uint8_t* base = weights.data.data();
        const float* scales = format == kF16 ? nullptr : reinterpret_cast<const float*>(base + weights.q_bytes);
        si_bench::Difference d;
        const si_result status = run_format(format, si_bench::ref_context(), base, scales,
                                            has_offsets(format) ? scales + weights.scale_count : nullptr, rows, k, m, x.data(), want.data());
        if (status == SI_OK) d.add(y.data(), n, want.data(), rows, m, rows);
        if (!si_bench::matches_ref(state, kFormatNames[format], status, d)) return;
    }

    size_t copy = 0;
    int64_t calls = 0;
    const double start = now_seconds();
    for (auto _ : state) {
        const uint8_t* base = weights.data.data() + copy * weights.bytes;
        copy = (copy + 1) % weights.copies;
        if (!check(state, call(ctx, base, y.data()))) return;
        ++calls;
        benchmark::ClobberMemory();
    }
    const double seconds_per_call = (now_seconds() - start) / double(std::max<int64_t>(calls, 1));
    const double streamed = format == kF16 ? double(weights.bytes)
                                           : double(weights.q_bytes + size_t(n) * size_t(n_groups) * sizeof(float) * (has_offsets(format) ? 2 : 1));
    const double gb = streamed * 1e-9;
    state.counters["GB/s"] = benchmark::Counter(gb, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["bw_fraction"] = benchmark::Counter(gb / bandwidth, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/s"] = benchmark::Counter(2e-9 * m * n * k, benchmark::Counter::kIsIterationInvariantRate);
    if (format == kF16) {
        f16_seconds()[{m, shape}] = seconds_per_call;
    } else if (const auto it = f16_seconds().find({m, shape}); it != f16_seconds().end()) {
        state.counters["vs_f16"] = it->second / seconds_per_call;
    }
    state.SetLabel(std::string(kFormatNames[format]) + " m=" + std::to_string(m) + " " + std::to_string(n) + "x" + std::to_string(k));
}

// f16 first at each (m, shape), so the quantized rows that follow find its time.
void qmatmul_args(benchmark::internal::Benchmark* b) {
    b->ArgNames({"format", "m", "shape"});
    for (int m : {1, 4, 16, 64})
        for (int shape : {0, 1, 2})
            for (int format : {kF16, kW8A16, kW4A16, kW8A8, kW8A8B32, kW4A8B32}) b->Args({format, m, shape});
}
BENCHMARK(BM_qmatmul)->Apply(qmatmul_args)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.3);

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
            rows_.push_back(Row{run.report_label, run.GetAdjustedRealTime(), counter("GB/s"), counter("bw_fraction"), counter("vs_f16")});
        }
    }

    void PrintSummary() const {
        std::printf("\nSummary (cpu backend, %d thread(s)); measured read bandwidth %.1f GB/s\n", bench_threads(), read_gbps_all());
        std::printf("  %-30s %10s %8s %9s %8s\n", "case", "us/call", "GB/s", "of bw", "vs f16");
        for (const Row& row : rows_) {
            std::printf("  %-30s %10.1f %8.1f %8.0f%% ", row.label.c_str(), row.us, row.gbps, 100.0 * row.fraction);
            if (row.speedup > 0) std::printf("%7.2fx\n", row.speedup);
            else std::printf("%8s\n", "-");
        }
        std::printf("  (GB/s: quantized bytes q + scales + offsets per call, or f16 weights; of bw: fraction of the read bandwidth)\n");
    }

private:
    std::vector<Row> rows_;
};

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    SummaryReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    reporter.PrintSummary();
    benchmark::Shutdown();
    return 0;
}
