// bench_ops.cpp: Google Benchmark timings of the cpu backend's ops through the C ABI, on
// TinyLlama-like shapes, beside the machine's own memory bandwidth (memory_bandwidth/...)
// so the matmul "weights_GB/s" counters can be read as a fraction of what the memory
// delivers. Decode matmuls cycle through enough weight copies (>= 256 MiB) that every
// iteration streams its weights from DRAM, as a real decode step does.
//
// Every case is first checked against the ref backend on the same inputs (ref_check.h).
//
// Run: build/<dir>/perf/native/si_bench_ops [--benchmark_filter=matmul]
// The ISA level can be forced with SI_CPU_ISA=scalar|avx2|avx512 and the thread count with
// SI_BENCH_THREADS (default: all hardware threads).
#include <sharpinfer/sharpinfer.h>

#include "common/dtype.h"
#include "ref_check.h"

#include <benchmark/benchmark.h>

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

int32_t bench_threads() {
    const char* text = std::getenv("SI_BENCH_THREADS");
    return text ? std::atoi(text) : 0;
}

int32_t hardware_threads() { return int32_t(std::max(1u, std::thread::hardware_concurrency())); }

// One cpu context per thread count for the whole run (creating pools per benchmark would
// time thread start-up).
si_context* cpu_context(int32_t num_threads) {
    static si_context* contexts[256] = {};
    const int32_t slot = std::clamp(num_threads, 0, 255);
    if (!contexts[slot]) {
        si_context_options options{};
        options.backend = SI_BACKEND_CPU;
        options.num_threads = num_threads;
        if (si_context_create(&options, &contexts[slot]) != SI_OK) {
            const char* message = "";
            si_last_error(&message);
            std::fprintf(stderr, "si_context_create failed: %s\n", message);
            std::exit(1);
        }
    }
    return contexts[slot];
}

bool check(benchmark::State& state, si_result status) {
    if (status == SI_OK) return true;
    const char* message = "";
    si_last_error(&message);
    state.SkipWithError(message);
    return false;
}

std::vector<float> random_floats(size_t count, float scale) {
    std::vector<float> v(count);
    uint64_t seed = 0x1234567;
    for (float& f : v) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        f = scale * (float(double(seed >> 40) * 0x1p-24) * 2.0f - 1.0f);
    }
    return v;
}

// ---- machine bandwidth -------------------------------------------------------------------

__attribute__((target("avx2"))) uint64_t sum_avx2(const uint64_t* data, size_t count) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 16 <= count; i += 16) {
        // Prefetching ahead (as the matmul kernels do) keeps enough misses in flight for one
        // core to approach what the memory can deliver; without it a plain loop reads less.
        _mm_prefetch(reinterpret_cast<const char*>(data + i) + 2048, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(data + i) + 2048 + 64, _MM_HINT_T0);
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(data + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(data + i + 4)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(data + i + 8)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(data + i + 12)));
    }
    alignas(32) uint64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

uint64_t sum_scalar(const uint64_t* data, size_t count) {
    uint64_t s[4] = {0, 0, 0, 0};
    for (size_t i = 0; i + 4 <= count; i += 4) {
        s[0] += data[i];
        s[1] += data[i + 1];
        s[2] += data[i + 2];
        s[3] += data[i + 3];
    }
    return s[0] + s[1] + s[2] + s[3];
}

bool has_avx2() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (ebx & (1u << 5));
}

// Read-only streaming sum over 1 GiB, split evenly over `threads` std::threads.
void BM_memory_bandwidth(benchmark::State& state) {
    const int threads = state.range(0) == 0 ? hardware_threads() : int(state.range(0));
    const size_t bytes = size_t(1) << 30, count = bytes / sizeof(uint64_t);
    static uint64_t* data = nullptr;
    if (!data) {
        data = static_cast<uint64_t*>(std::aligned_alloc(64, bytes));
        for (size_t i = 0; i < count; ++i) data[i] = i;  // touch every page
    }
    const bool avx2 = has_avx2();
    for (auto _ : state) {
        std::vector<std::thread> pool;
        std::vector<uint64_t> sums(size_t(threads), 0);
        for (int t = 0; t < threads; ++t) {
            pool.emplace_back([&, t] {
                const size_t begin = count * t / threads / 16 * 16, end = count * (t + 1) / threads / 16 * 16;
                sums[size_t(t)] = avx2 ? sum_avx2(data + begin, end - begin) : sum_scalar(data + begin, end - begin);
            });
        }
        for (std::thread& th : pool) th.join();
        benchmark::DoNotOptimize(sums.data());
    }
    state.counters["GB/s"] = benchmark::Counter(double(bytes) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["threads"] = threads;
}
BENCHMARK(BM_memory_bandwidth)->Arg(1)->Arg(0)->ArgName("threads(0=all)")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);

// ---- matmul ------------------------------------------------------------------------------

const int32_t kShapes[][2] = {{2048, 2048}, {5632, 2048}, {2048, 5632}};  // {n, k}: q/o, gate/up, down

// Args: dtype, m, shape index, threads (0 = all).
void BM_matmul(benchmark::State& state) {
    const si_dtype dtype = si_dtype(state.range(0));
    const int32_t m = int32_t(state.range(1));
    const int32_t n = kShapes[state.range(2)][0], k = kShapes[state.range(2)][1];
    const int32_t threads = int32_t(state.range(3));
    const size_t weight_bytes = size_t(n) * k * si::dtype_size(dtype);
    const size_t copies = std::max<size_t>(1, ((size_t(256) << 20) + weight_bytes - 1) / weight_bytes);
    // One random matrix, copied: the copies exist only to defeat the caches.
    std::vector<uint8_t> weights(weight_bytes * copies);
    {
        const std::vector<float> w = random_floats(size_t(n) * k, 1.0f / std::sqrt(float(k)));
        for (size_t i = 0; i < w.size(); ++i) {
            if (dtype == SI_DTYPE_F32) std::memcpy(weights.data() + 4 * i, &w[i], 4);
            else {
                const uint16_t h = dtype == SI_DTYPE_F16 ? si::f32_to_f16(w[i]) : si::f32_to_bf16(w[i]);
                std::memcpy(weights.data() + 2 * i, &h, 2);
            }
        }
        for (size_t c = 1; c < copies; ++c) std::memcpy(weights.data() + c * weight_bytes, weights.data(), weight_bytes);
    }
    const std::vector<float> x = random_floats(size_t(m) * k, 1.0f);
    std::vector<float> y(size_t(m) * n);
    si_context* ctx = cpu_context(threads);
    si_matmul_params p{};
    p.x = x.data();
    p.y = y.data();
    p.x_stride = k;
    p.y_stride = n;
    p.m = m;
    p.n = n;
    p.k = k;
    p.w_dtype = dtype;
    {
        // Ref check on the first (up to) 64 output channels: the same weight rows and inputs.
        p.w = weights.data();
        if (!check(state, si_matmul(ctx, &p))) return;
        si_matmul_params ref = p;
        ref.n = std::min(n, 64);
        std::vector<float> y_ref(size_t(m) * size_t(ref.n));
        ref.y = y_ref.data();
        ref.y_stride = ref.n;
        si_bench::Difference d;
        const si_result status = si_matmul(si_bench::ref_context(), &ref);
        if (status == SI_OK) d.add(y.data(), n, y_ref.data(), ref.n, m, ref.n);
        if (!si_bench::matches_ref(state, "matmul", status, d)) return;
    }
    size_t copy = 0;
    for (auto _ : state) {
        p.w = weights.data() + copy * weight_bytes;
        copy = (copy + 1) % copies;
        if (!check(state, si_matmul(ctx, &p))) break;
        benchmark::ClobberMemory();
    }
    state.counters["weights_GB/s"] = benchmark::Counter(double(weight_bytes) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/s"] = benchmark::Counter(2e-9 * m * n * k, benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel(std::string(si::dtype_name(dtype)) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
}

void matmul_args(benchmark::internal::Benchmark* b) {
    b->ArgNames({"dtype", "m", "shape", "threads"});
    for (int dtype : {SI_DTYPE_F32, SI_DTYPE_F16, SI_DTYPE_BF16}) {
        for (int m : {1, 4, 16, 64}) {
            for (int shape : {0, 1, 2}) b->Args({dtype, m, shape, bench_threads()});
        }
    }
    // Single-thread decode, to see the per-core rate beside the 1-thread bandwidth.
    for (int dtype : {SI_DTYPE_F32, SI_DTYPE_F16, SI_DTYPE_BF16}) b->Args({dtype, 1, 0, 1});
}
BENCHMARK(BM_matmul)->Apply(matmul_args)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- rms_norm, rope ----------------------------------------------------------------------

void BM_rms_norm(benchmark::State& state) {
    const int32_t rows = int32_t(state.range(0)), dim = 2048;
    std::vector<float> x = random_floats(size_t(rows) * dim, 2.0f), w = random_floats(size_t(dim), 1.0f), out(x.size());
    si_rms_norm_params p{};
    p.x = x.data();
    p.weight = w.data();
    p.out = out.data();
    p.x_stride = dim;
    p.out_stride = dim;
    p.rows = rows;
    p.dim = dim;
    p.eps = 1e-5f;
    si_context* ctx = cpu_context(bench_threads());
    {
        if (!check(state, si_rms_norm(ctx, &p))) return;
        std::vector<float> want(out.size());
        si_rms_norm_params ref = p;
        ref.out = want.data();
        si_bench::Difference d;
        const si_result status = si_rms_norm(si_bench::ref_context(), &ref);
        if (status == SI_OK) d.add(out.data(), dim, want.data(), dim, rows, dim);
        if (!si_bench::matches_ref(state, "rms_norm", status, d)) return;
    }
    for (auto _ : state) {
        if (!check(state, si_rms_norm(ctx, &p))) break;
    }
    state.counters["GB/s"] = benchmark::Counter(8e-9 * rows * dim, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_rms_norm)->ArgName("rows")->Arg(1)->Arg(64)->Arg(512)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Args: n_tokens, layout. 32 heads of 64 (TinyLlama q).
void BM_rope(benchmark::State& state) {
    const int32_t tokens = int32_t(state.range(0)), heads = 32, head_dim = 64;
    std::vector<float> x = random_floats(size_t(tokens) * heads * head_dim, 1.0f);
    std::vector<int32_t> positions(static_cast<size_t>(tokens));
    for (int32_t t = 0; t < tokens; ++t) positions[size_t(t)] = 1000 + t;
    si_rope_params p{};
    p.x = x.data();
    p.positions = positions.data();
    p.token_stride = int64_t(heads) * head_dim;
    p.n_tokens = tokens;
    p.n_heads = heads;
    p.head_dim = head_dim;
    p.rotary_dim = head_dim;
    p.freq_base = 10000.0f;
    p.freq_scale = 1.0f;
    p.layout = si_rope_layout(state.range(1));
    si_context* ctx = cpu_context(bench_threads());
    {
        // Rope rotates in place: each backend rotates its own copy once.
        std::vector<float> got = x, want = x;
        si_rope_params cpu = p, ref = p;
        cpu.x = got.data();
        ref.x = want.data();
        if (!check(state, si_rope(ctx, &cpu))) return;
        si_bench::Difference d;
        const si_result status = si_rope(si_bench::ref_context(), &ref);
        if (status == SI_OK) d.add(got.data(), 0, want.data(), 0, 1, int64_t(got.size()));
        if (!si_bench::matches_ref(state, "rope", status, d)) return;
    }
    for (auto _ : state) {
        if (!check(state, si_rope(ctx, &p))) break;
    }
}
BENCHMARK(BM_rope)->ArgNames({"tokens", "layout"})->ArgsProduct({{1, 64, 512}, {SI_ROPE_ADJACENT_PAIRS, SI_ROPE_ROTATE_HALF}})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- attention ---------------------------------------------------------------------------

// Args: n_q, n_ctx. 32 query heads, 4 KV heads of 64 (TinyLlama).
void BM_attention(benchmark::State& state) {
    const int32_t n_q = int32_t(state.range(0)), n_ctx = int32_t(state.range(1));
    const int32_t heads = 32, kv_heads = 4, head_dim = 64;
    const int64_t q_row = int64_t(heads) * head_dim, kv_row = int64_t(kv_heads) * head_dim;
    std::vector<float> q = random_floats(size_t(n_q * q_row), 1.0f), k = random_floats(size_t(n_ctx * kv_row), 1.0f);
    std::vector<float> v = random_floats(size_t(n_ctx * kv_row), 1.0f), out(q.size());
    si_attention_params p{};
    p.q = q.data();
    p.k_cache = k.data();
    p.v_cache = v.data();
    p.out = out.data();
    p.q_stride = q_row;
    p.kv_stride = kv_row;
    p.out_stride = q_row;
    p.n_q = n_q;
    p.n_ctx = n_ctx;
    p.n_heads = heads;
    p.n_kv_heads = kv_heads;
    p.head_dim = head_dim;
    p.scale = 0.125f;
    si_context* ctx = cpu_context(bench_threads());
    {
        if (!check(state, si_attention(ctx, &p))) return;
        std::vector<float> want(out.size());
        si_attention_params ref = p;
        ref.out = want.data();
        si_bench::Difference d;
        const si_result status = si_attention(si_bench::ref_context(), &ref);
        if (status == SI_OK) d.add(out.data(), q_row, want.data(), q_row, n_q, q_row);
        if (!si_bench::matches_ref(state, "attention", status, d)) return;
    }
    for (auto _ : state) {
        if (!check(state, si_attention(ctx, &p))) break;
    }
    // Causal: query i sees n_ctx - n_q + i + 1 keys; 2 flops x 2 (QK and PV) per element.
    double pairs = 0;
    for (int32_t i = 0; i < n_q; ++i) pairs += double(n_ctx - n_q + i + 1);
    state.counters["GFLOP/s"] = benchmark::Counter(4e-9 * pairs * heads * head_dim, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["kv_GB/s"] = benchmark::Counter(8e-9 * double(n_ctx) * kv_row, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_attention)->ArgNames({"n_q", "n_ctx"})->Args({1, 512})->Args({1, 2048})->Args({128, 512})->Args({512, 512})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- softmax, argmax over a vocabulary ---------------------------------------------------

void BM_softmax(benchmark::State& state) {
    const int32_t rows = int32_t(state.range(0)), n = 32000;
    std::vector<float> x = random_floats(size_t(rows) * n, 10.0f), out(x.size());
    si_softmax_params p{};
    p.x = x.data();
    p.out = out.data();
    p.x_stride = n;
    p.out_stride = n;
    p.rows = rows;
    p.n = n;
    p.inv_temperature = 1.0f;
    si_context* ctx = cpu_context(bench_threads());
    {
        if (!check(state, si_softmax(ctx, &p))) return;
        std::vector<float> want(out.size());
        si_softmax_params ref = p;
        ref.out = want.data();
        si_bench::Difference d;
        const si_result status = si_softmax(si_bench::ref_context(), &ref);
        if (status == SI_OK) d.add(out.data(), n, want.data(), n, rows, n);
        if (!si_bench::matches_ref(state, "softmax", status, d)) return;
    }
    for (auto _ : state) {
        if (!check(state, si_softmax(ctx, &p))) break;
    }
    state.counters["Gelem/s"] = benchmark::Counter(1e-9 * rows * n, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_softmax)->ArgName("rows")->Arg(1)->Arg(8)->Arg(64)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_argmax(benchmark::State& state) {
    const int32_t rows = int32_t(state.range(0)), n = 32000;
    std::vector<float> x = random_floats(size_t(rows) * n, 10.0f);
    std::vector<int32_t> out(static_cast<size_t>(rows));
    si_argmax_params p{};
    p.x = x.data();
    p.out = out.data();
    p.x_stride = n;
    p.rows = rows;
    p.n = n;
    si_context* ctx = cpu_context(bench_threads());
    {
        // Exact: the index of each row's maximum (random floats: no ties).
        if (!check(state, si_argmax(ctx, &p))) return;
        std::vector<int32_t> want(out.size());
        si_argmax_params ref = p;
        ref.out = want.data();
        if (!check(state, si_argmax(si_bench::ref_context(), &ref))) return;
        if (want != out) {
            state.SkipWithError("argmax differs from ref: not timed");
            return;
        }
    }
    for (auto _ : state) {
        if (!check(state, si_argmax(ctx, &p))) break;
    }
    state.counters["Gelem/s"] = benchmark::Counter(1e-9 * rows * n, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_argmax)->ArgName("rows")->Arg(1)->Arg(8)->Arg(64)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    const char* info = "";
    si_build_info(&info);
    benchmark::AddCustomContext("sharpinfer", info);
    const char* isa = std::getenv("SI_CPU_ISA");
    benchmark::AddCustomContext("SI_CPU_ISA", isa ? isa : "(best)");
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
