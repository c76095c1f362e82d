// bench_attention.cpp: Google Benchmark figures for the cpu backend's paged attention through
// the C ABI, each beside what this machine can do, measured in the same run:
//  - prefill (one causal sequence, q_len 512 / 2048, head dim 128, 32/8 heads): GFLOP/s of
//    the visible (query, key) pairs (4 * head_dim flops each) as a fraction of the measured
//    peak f32 FMA throughput (independent FMA chains in the widest registers, all threads);
//  - decode (batch 1 / 8, context 4096 / 16384, f16 and int8 caches): GB/s of K/V (and int8
//    scales) read as a fraction of the measured streaming-read bandwidth (all threads). The
//    caches sit on huge pages, as the runtime allocates its pool (host_alloc.h), and cycle
//    through enough copies (>= 512 MiB) that every iteration reads from DRAM. Beside it, the
//    same machine's rate for the paged pattern alone (32 KiB blocks in random order, no
//    arithmetic), which bounds what a kernel reading a paged cache can reach.
// Every case is first checked against the ref backend (ref_check.h): decode on the whole
// output, prefill on its first and last 16 query tokens. A summary table is printed at the end.
//
// Run: build/<dir>/perf/native/si_bench_attention [--benchmark_filter=decode]
// SI_BENCH_THREADS sets the context's thread count (default: all hardware threads); the
// ISA level can be lowered with SI_CPU_ISA=scalar|avx2.
#include <sharpinfer/sharpinfer.h>

#include "common/dtype.h"
#include "host_alloc.h"
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
#include <numeric>
#include <string>
#include <thread>
#include <vector>

namespace {

int32_t hardware_threads() { return int32_t(std::max(1u, std::thread::hardware_concurrency())); }

int32_t bench_threads() {
    const char* text = std::getenv("SI_BENCH_THREADS");
    const int32_t n = text ? std::atoi(text) : 0;
    return n > 0 ? n : hardware_threads();
}


uint64_t next_random(uint64_t& state) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
}

// Runs fn(thread index) on `threads` std::threads and returns the wall seconds.
template <typename Fn>
double timed_on_threads(int32_t threads, Fn fn) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int32_t t = 1; t < threads; ++t) pool.emplace_back(fn, t);
    fn(0);
    for (std::thread& th : pool) th.join();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---- machine peak: independent FMA chains --------------------------------------------------

// 16 independent chains: enough to cover FMA latency (4-5 cycles) x 2-4 pipes on current
// cores. Returns a value derived from every chain so none is optimized away.
__attribute__((target("avx512f"))) float fma_chains_avx512(int64_t iterations) {
    __m512 a[16];
    for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ps(1.0f + 0.001f * float(i));
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
    }
    __m512 s = a[0];
    for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float fma_chains_avx2(int64_t iterations) {
    __m256 a[12];
    for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(1.0f + 0.001f * float(i));
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
    }
    __m256 s = a[0];
    for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, s);
    return lanes[0] + lanes[7];
}

// f32 FMA GFLOP/s (2 flops per lane) over `threads` threads.
double measure_peak_gflops(int32_t threads) {
    const bool wide = si_bench::has_avx512f();
    const int64_t iterations = 40'000'000;
    const double flops_per_iteration = wide ? 16.0 * 16 * 2 : 12.0 * 8 * 2;
    std::vector<float> sink(static_cast<size_t>(threads));
    auto run = [&](int32_t t) { sink[size_t(t)] = wide ? fma_chains_avx512(iterations) : fma_chains_avx2(iterations); };
    timed_on_threads(threads, [&](int32_t t) { sink[size_t(t)] = wide ? fma_chains_avx512(iterations / 10) : fma_chains_avx2(iterations / 10); });  // clocks up
    double best = 0.0;
    for (int rep = 0; rep < 3; ++rep) best = std::max(best, double(threads) * iterations * flops_per_iteration / timed_on_threads(threads, run) * 1e-9);
    benchmark::DoNotOptimize(sink.data());
    return best;
}

// ---- machine bandwidth: streaming read -----------------------------------------------------

// The paged cache's access pattern without the arithmetic: 32 KiB blocks (16 tokens x 8 kv
// heads x 128 dims in f16) in random order over 1 GiB, each read front to back. Context for
// the decode figures: how much of the streaming bandwidth this pattern itself reaches, on huge
// pages (as the runtime allocates its pool) and on 4 KiB pages (where the hardware prefetchers
// stop at every page and every block takes fresh TLB misses).
double measure_block_read_gbps(int32_t threads, bool huge_pages) {
    const size_t bytes = size_t(1) << 30, block = 32768, n_blocks = bytes / block;
    static si_bench::HostArray<float> buffers[2];
    static std::vector<uint32_t> order;
    si_bench::HostArray<float>& buffer = buffers[huge_pages ? 1 : 0];
    if (!buffer.data()) {
        buffer = si_bench::HostArray<float>(bytes / sizeof(float), huge_pages);
        for (size_t i = 0; i < bytes / sizeof(float); ++i) buffer[i] = float(i & 1023);
    }
    if (order.empty()) {
        order.resize(n_blocks);
        std::iota(order.begin(), order.end(), 0u);
        uint64_t seed = 7;
        for (size_t i = n_blocks - 1; i > 0; --i) std::swap(order[i], order[next_random(seed) % (i + 1)]);
    }
    const float* data = buffer.data();
    std::vector<double> sink(static_cast<size_t>(threads));
    auto run = [&](int32_t t) {
        double total = 0.0;
        for (size_t b = n_blocks * size_t(t) / size_t(threads); b < n_blocks * size_t(t + 1) / size_t(threads); ++b) {
            const float* at = data + size_t(order[b]) * (block / sizeof(float));
            total += si_bench::read_floats(at, block / sizeof(float));
        }
        sink[size_t(t)] = total;
    };
    double best = 0.0;
    for (int rep = 0; rep < 3; ++rep) best = std::max(best, double(bytes) / timed_on_threads(threads, run) * 1e-9);
    benchmark::DoNotOptimize(sink.data());
    return best;
}

// Measured once, on first use, so every figure below is a fraction of the same numbers.
struct Machine {
    double peak_gflops_1 = 0, peak_gflops_all = 0, read_gbps_1 = 0, read_gbps_all = 0;
    double block_gbps_1 = 0, block_gbps_all = 0, block_4k_gbps_all = 0;  // huge pages; 4 KiB pages
};

const Machine& machine() {
    static const Machine m = [] {
        Machine r;
        r.peak_gflops_1 = measure_peak_gflops(1);
        r.peak_gflops_all = measure_peak_gflops(bench_threads());
        r.read_gbps_1 = si_bench::measure_read_gbps(1);
        r.read_gbps_all = si_bench::measure_read_gbps(bench_threads());
        r.block_gbps_1 = measure_block_read_gbps(1, true);
        r.block_gbps_all = measure_block_read_gbps(bench_threads(), true);
        r.block_4k_gbps_all = measure_block_read_gbps(bench_threads(), false);
        return r;
    }();
    return m;
}

// ---- the results table -----------------------------------------------------------------------

struct Row {
    std::string name;
    double value;       // GFLOP/s or GB/s
    const char* unit;
    double fraction;    // of the measured peak / bandwidth
    double ms;          // per call
};

void BM_machine_peak_fma(benchmark::State& state) {
    const int32_t threads = state.range(0) == 0 ? bench_threads() : int32_t(state.range(0));
    double gflops = 0;
    for (auto _ : state) gflops = measure_peak_gflops(threads);
    state.counters["GFLOP/s"] = gflops;
    state.counters["threads"] = threads;
}
BENCHMARK(BM_machine_peak_fma)->Arg(1)->Arg(0)->ArgName("threads(0=all)")->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_machine_read_bandwidth(benchmark::State& state) {
    const int32_t threads = state.range(0) == 0 ? bench_threads() : int32_t(state.range(0));
    double gbps = 0;
    for (auto _ : state) gbps = si_bench::measure_read_gbps(threads);
    state.counters["GB/s"] = gbps;
    state.counters["threads"] = threads;
}
BENCHMARK(BM_machine_read_bandwidth)->Arg(1)->Arg(0)->ArgName("threads(0=all)")->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- attention problems ----------------------------------------------------------------------

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

constexpr int32_t kHeads = 32, kKvHeads = 8, kHeadDim = 128, kBlockSize = 16;


// `copies` independent caches of the same shape (so a decode loop can cycle through them),
// each holding `n_seqs` sequences of `context` tokens in shuffled blocks.
struct PagedProblem {
    si_dtype dtype;
    int32_t n_seqs, q_len, context, copies, blocks_per_seq, num_blocks;
    si_bench::HostArray<uint8_t> k_pool, v_pool;  // huge pages, as the runtime's pool; [copies][num_blocks, block, kv_heads, head_dim]
    std::vector<float> k_scale, v_scale;  // [copies][num_blocks, block, kv_heads]
    std::vector<int32_t> cu, context_lens, tables;
    std::vector<float> q, out;
    std::vector<uint8_t> workspace;
    size_t pool_bytes = 0, scale_count = 0;

    PagedProblem(si_dtype dtype_, int32_t n_seqs_, int32_t q_len_, int32_t context_, int32_t copies_)
        : dtype(dtype_), n_seqs(n_seqs_), q_len(q_len_), context(context_), copies(copies_) {
        blocks_per_seq = (context + kBlockSize - 1) / kBlockSize;
        num_blocks = blocks_per_seq * n_seqs;
        const size_t elems = size_t(num_blocks) * kBlockSize * kKvHeads * kHeadDim;
        pool_bytes = elems * size_t(si::dtype_size(dtype));
        scale_count = size_t(num_blocks) * kBlockSize * kKvHeads;
        k_pool = si_bench::HostArray<uint8_t>(pool_bytes * size_t(copies));
        v_pool = si_bench::HostArray<uint8_t>(pool_bytes * size_t(copies));
        uint64_t seed = 42;
        for (si_bench::HostArray<uint8_t>* pool : {&k_pool, &v_pool}) {
            for (size_t i = 0; i < elems; ++i) {
                const float x = float(double(next_random(seed) >> 7) * 0x1p-24) * 2.0f - 1.0f;
                if (dtype == SI_DTYPE_I8) {
                    (*pool)[i] = uint8_t(int8_t(std::lround(x * 127.0f)));
                } else {
                    const uint16_t h = si::f32_to_f16(x);
                    std::memcpy(pool->data() + 2 * i, &h, 2);
                }
            }
            for (int32_t c = 1; c < copies; ++c) std::memcpy(pool->data() + size_t(c) * pool_bytes, pool->data(), pool_bytes);
        }
        k_scale.assign(scale_count * size_t(copies), 1.0f / 127.0f);
        v_scale = k_scale;
        std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
        std::iota(ids.begin(), ids.end(), 0);
        for (size_t i = ids.size() - 1; i > 0; --i) std::swap(ids[i], ids[next_random(seed) % (i + 1)]);
        tables = ids;  // sequence s owns ids[s * blocks_per_seq, ...)
        cu.push_back(0);
        for (int32_t s = 0; s < n_seqs; ++s) {
            cu.push_back(cu.back() + q_len);
            context_lens.push_back(context);
        }
        q.resize(size_t(n_seqs) * q_len * kHeads * kHeadDim);
        for (float& x : q) x = float(double(next_random(seed) >> 7) * 0x1p-24) * 2.0f - 1.0f;
        out.resize(q.size());
    }

    si_paged_attention_params params(int32_t copy) {
        si_paged_attention_params p{};
        p.q = q.data();
        p.out = out.data();
        p.cu_seqlens_q = cu.data();
        p.context_lens = context_lens.data();
        p.block_tables = tables.data();
        p.cache.k_pool = k_pool.data() + size_t(copy) * pool_bytes;
        p.cache.v_pool = v_pool.data() + size_t(copy) * pool_bytes;
        if (dtype == SI_DTYPE_I8) {
            p.cache.k_scale = k_scale.data() + size_t(copy) * scale_count;
            p.cache.v_scale = v_scale.data() + size_t(copy) * scale_count;
        }
        p.cache.num_blocks = num_blocks;
        p.cache.block_size = kBlockSize;
        p.cache.n_kv_heads = kKvHeads;
        p.cache.head_dim = kHeadDim;
        p.cache.dtype = dtype;
        p.q_stride = int64_t(kHeads) * kHeadDim;
        p.out_stride = p.q_stride;
        p.n_seqs = n_seqs;
        p.max_blocks_per_seq = blocks_per_seq;
        p.n_heads = kHeads;
        p.max_q_len = q_len;
        p.max_context_len = context;
        p.scale = 1.0f / std::sqrt(float(kHeadDim));
        return p;
    }

    // Sizes the workspace for these params and points them at it.
    si_result prepare(si_paged_attention_params* p) {
        int64_t bytes = 0;
        const si_result status = si_paged_attention_workspace_size(cpu_context(), p, &bytes);
        if (status != SI_OK) return status;
        workspace.resize(size_t(bytes) + 64);
        p->workspace = workspace.data();
        p->workspace_bytes = bytes;
        return SI_OK;
    }

    // K/V bytes one call reads: every key of every sequence, once per kv head (GQA heads
    // share the load), plus the int8 scales.
    double kv_bytes() const {
        const double keys = double(n_seqs) * context * kKvHeads;
        return 2.0 * keys * (kHeadDim * si::dtype_size(dtype) + (dtype == SI_DTYPE_I8 ? 4 : 0));
    }
};

// Checks the cpu output in problem.out (of `p`, already run) against the ref backend: all of it
// when `whole`, else the first and the last 16 query tokens (each as a chunk over its context,
// which is how the op defines a query starting mid-sequence), since a naive 2048-token prefill
// would take the ref half a minute.
bool matches_ref(benchmark::State& state, PagedProblem& problem, const si_paged_attention_params& p, bool whole) {
    const int32_t q_len = p.max_q_len, chunk = whole ? q_len : std::min(16, q_len);
    const int64_t row = p.q_stride;
    si_bench::Difference d;
    si_result status = SI_OK;
    for (const int32_t start : whole ? std::vector<int32_t>{0} : std::vector<int32_t>{0, q_len - chunk}) {
        si_paged_attention_params r = p;
        std::vector<int32_t> cu = problem.cu, context = problem.context_lens;
        if (!whole) {
            cu = {0, chunk};
            context = {start + chunk};
            r.q = problem.q.data() + size_t(start) * size_t(row);
            r.max_q_len = chunk;
            r.max_context_len = start + chunk;
        }
        r.cu_seqlens_q = cu.data();
        r.context_lens = context.data();
        const int64_t rows = whole ? int64_t(problem.q.size()) / row : chunk;
        std::vector<float> want(size_t(rows * row));
        r.out = want.data();
        int64_t bytes = 0;
        status = si_paged_attention_workspace_size(si_bench::ref_context(), &r, &bytes);
        std::vector<uint8_t> workspace(size_t(bytes) + 64);
        r.workspace = workspace.data();
        r.workspace_bytes = bytes;
        if (status == SI_OK) status = si_paged_attention(si_bench::ref_context(), &r);
        if (status != SI_OK) break;
        d.add(problem.out.data() + size_t(start) * size_t(row), row, want.data(), row, rows, row);
    }
    return si_bench::matches_ref(state, "paged attention", status, d);
}

// Args: q_len (context = q_len), cache dtype.
void BM_prefill(benchmark::State& state) {
    const int32_t q_len = int32_t(state.range(0));
    const si_dtype dtype = si_dtype(state.range(1));
    const Machine& m = machine();
    PagedProblem problem(dtype, 1, q_len, q_len, 1);
    si_paged_attention_params p = problem.params(0);
    if (!check(state, problem.prepare(&p))) return;
    if (!check(state, si_paged_attention(cpu_context(), &p)) || !matches_ref(state, problem, p, false)) return;
    for (auto _ : state) {
        if (!check(state, si_paged_attention(cpu_context(), &p))) return;
        benchmark::ClobberMemory();
    }
    // Causal: query i sees i + 1 keys; QK^T and PV are 2 * head_dim flops per pair each.
    const double pairs = double(q_len) * (q_len + 1) / 2.0;
    const double flops = 4.0 * kHeadDim * kHeads * pairs;
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["peak_fraction"] = benchmark::Counter(flops * 1e-9 / m.peak_gflops_all, benchmark::Counter::kIsIterationInvariantRate);
    const std::string name = "prefill q_len " + std::to_string(q_len) + " " + si::dtype_name(dtype) + " cache";
    state.SetLabel(name);
}
BENCHMARK(BM_prefill)
    ->ArgNames({"q_len", "dtype"})
    ->Args({512, SI_DTYPE_F16})
    ->Args({2048, SI_DTYPE_F16})
    ->Args({512, SI_DTYPE_F32})
    ->Args({2048, SI_DTYPE_F32})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);

// Args: batch, context, cache dtype.
void BM_decode(benchmark::State& state) {
    const int32_t batch = int32_t(state.range(0)), context = int32_t(state.range(1));
    const si_dtype dtype = si_dtype(state.range(2));
    const Machine& m = machine();
    // Enough copies that the caches of one pass over them exceed 512 MiB (the last-level
    // cache is far smaller), so every call streams its K/V from DRAM.
    const double layer_bytes = 2.0 * batch * context * kKvHeads * kHeadDim * si::dtype_size(dtype);
    const int32_t copies = std::max(1, int32_t(std::ceil(512.0 * (1 << 20) / layer_bytes)));
    PagedProblem problem(dtype, batch, 1, context, copies);
    std::vector<si_paged_attention_params> params;
    for (int32_t c = 0; c < copies; ++c) {
        params.push_back(problem.params(c));
        if (!check(state, problem.prepare(&params.back()))) return;
    }
    if (!check(state, si_paged_attention(cpu_context(), &params[0])) || !matches_ref(state, problem, params[0], true)) return;
    int32_t copy = 0;
    for (auto _ : state) {
        if (!check(state, si_paged_attention(cpu_context(), &params[size_t(copy)]))) return;
        copy = (copy + 1) % copies;
        benchmark::ClobberMemory();
    }
    const double gb = problem.kv_bytes() * 1e-9;
    state.counters["KV_GB/s"] = benchmark::Counter(gb, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["bw_fraction"] = benchmark::Counter(gb / m.read_gbps_all, benchmark::Counter::kIsIterationInvariantRate);
    const std::string name = "decode batch " + std::to_string(batch) + " context " + std::to_string(context) + " " + si::dtype_name(dtype) + " cache";
    state.SetLabel(name);
}
BENCHMARK(BM_decode)
    ->ArgNames({"batch", "context", "dtype"})
    ->ArgsProduct({{1, 8}, {4096, 16384}, {SI_DTYPE_F16, SI_DTYPE_I8}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);

// Collects the finished runs' counters for the summary table.
class SummaryReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const Run& run : runs) {
            if (run.error_occurred || run.report_label.empty()) continue;
            Row row{run.report_label, 0.0, "", 0.0, run.GetAdjustedRealTime()};
            auto counter = [&](const char* key) {
                const auto it = run.counters.find(key);
                return it == run.counters.end() ? 0.0 : double(it->second);
            };
            if (run.counters.count("GFLOP/s")) {
                row.value = counter("GFLOP/s");
                row.unit = "GFLOP/s";
                row.fraction = counter("peak_fraction");
            } else {
                row.value = counter("KV_GB/s");
                row.unit = "GB/s";
                row.fraction = counter("bw_fraction");
            }
            rows_.push_back(row);
        }
    }
    void PrintSummary() const {
        const Machine& m = machine();
        std::printf("\nSummary (cpu backend, %d thread(s))\n", bench_threads());
        std::printf("  measured peak f32 FMA: %.1f GFLOP/s (1 thread), %.1f GFLOP/s (%d threads)\n", m.peak_gflops_1, m.peak_gflops_all, bench_threads());
        std::printf("  measured read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (%d threads)\n", m.read_gbps_1, m.read_gbps_all, bench_threads());
        std::printf("  random 32 KiB block reads (the paged pattern, no arithmetic), huge pages: %.1f GB/s (1 thread), %.1f GB/s (%d threads);"
                    " on 4 KiB pages: %.1f GB/s (%d threads)\n",
                    m.block_gbps_1, m.block_gbps_all, bench_threads(), m.block_4k_gbps_all, bench_threads());
        std::printf("  %-44s %10s %8s %10s %9s\n", "case", "ms/call", "rate", "unit", "fraction");
        for (const Row& row : rows_)
            std::printf("  %-44s %10.3f %8.1f %10s %8.1f%%\n", row.name.c_str(), row.ms, row.value, row.unit, 100.0 * row.fraction);
        std::printf("  (prefill: fraction of peak FMA, all threads; decode: fraction of read bandwidth, all threads)\n");
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
