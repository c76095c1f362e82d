// bench_attention_cuda.cu: CUDA-event timings of the cuda paged attention kernel
// (native/src/cuda/paged_attention.cuh), figures rather than tests:
//   prefill TFLOP/s: bf16 cache, head dim 128, 32 heads, sequence 8192, batch 1 and 2, causal
//     (FLOPs = 4 * B * H * D * S(S+1)/2) and non-causal (4 * B * H * D * S^2);
//   decode GB/s of K/V read: 32 query heads / 8 kv heads, head dim 128, bf16 cache, block 16,
//     batch 8 and 32 x context 4096 and 16384 (split-K and combine included), as a fraction
//     of the device's theoretical HBM bandwidth (memory clock x bus width) and of the read
//     bandwidth measured in the same run.
// The kernel is compiled into this program from the same header as the library and launched
// on this program's stream, so the events bracket exactly the kernels (the library runs on a
// stream of its own). Every configuration is first checked against the ref backend (through
// the ABI, on host copies) at a small size through the same launch path.
// Non-causal attention rides on the kernel's GQA row packing: one query token whose "group"
// is the S queries of a head, all at the last position, so every row sees every key.
// Versions: v1 = the src/ kernel (unified FA2-style mma.sync prefill/decode + split-K combine).
// Usage: si_bench_attention_cuda [--quick] [--json FILE]
#include "cuda/paged_attention.cuh"
#include "cuda_bench.cuh"

#include <sharpinfer/sharpinfer.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

namespace {

using namespace si_bench;

using si::cuda::PagedAttentionArgs;
using si::cuda::paged::BF16Cache;

constexpr int kHeadDim = 128;
constexpr int kBlockSize = 16;

// ---- device data ------------------------------------------------------------------------------

__global__ void fill_f32(float* p, int64_t n, uint64_t seed, float scale) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        p[i] = scale * uniform_at(seed, i);
}

// ---- one problem -----------------------------------------------------------------------------

struct Config {
    std::string kind;  // "prefill-causal", "prefill-noncausal", "decode"
    int batch;
    int seq;       // context per sequence
    int heads;     // query heads
    int kv_heads;
};

struct Problem {
    Config cfg;
    si_paged_attention_params p{};  // device pointers, as the ABI would receive them
    int64_t q_elems = 0, out_elems = 0, pool_elems = 0, workspace_bytes = 0;
    int32_t total_q = 0;
    std::vector<int32_t> cu, lens, tables;
    PagedAttentionArgs args{};
    dim3 grid;
    int n_splits = 1;
};

int resident_blocks() {
    int resident = 0;
    constexpr int smem = si::cuda::paged::PagedSmem<kHeadDim>::kBytes;
    CHECK_CUDA(cudaFuncSetAttribute(si::cuda::paged_attention_kernel<kHeadDim, BF16Cache>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    CHECK_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, si::cuda::paged_attention_kernel<kHeadDim, BF16Cache>,
                                                             si::cuda::paged::kThreads, smem));
    return resident;
}

Problem make_problem(const Config& cfg, int sms, uint64_t seed) {
    Problem pr;
    pr.cfg = cfg;
    const bool noncausal = cfg.kind == "prefill-noncausal", decode = cfg.kind == "decode";
    // Non-causal: per sequence one token with heads * seq query "heads" (group = seq rows per
    // kv head at the last position). The tensor layout [1, heads * seq, D] is Q as [heads, seq, D].
    const int q_len = decode || noncausal ? 1 : cfg.seq;
    const int n_heads = noncausal ? cfg.heads * cfg.seq : cfg.heads;
    pr.total_q = cfg.batch * q_len;
    pr.cu.resize(size_t(cfg.batch) + 1);
    for (int s = 0; s <= cfg.batch; ++s) pr.cu[size_t(s)] = s * q_len;
    pr.lens.assign(size_t(cfg.batch), cfg.seq);
    const int blocks_per_seq = (cfg.seq + kBlockSize - 1) / kBlockSize;
    const int num_blocks = cfg.batch * blocks_per_seq;
    // [batch, blocks_per_seq]: a random permutation of the pool (Fisher-Yates, splitmix64;
    // <random> does not compile under nvcc 11.8 with libstdc++ 12).
    pr.tables.resize(static_cast<size_t>(num_blocks));
    std::iota(pr.tables.begin(), pr.tables.end(), 0);
    uint64_t state = seed;
    for (int i = num_blocks - 1; i > 0; --i) {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        std::swap(pr.tables[size_t(i)], pr.tables[size_t((z ^ (z >> 31)) % uint64_t(i + 1))]);
    }

    pr.q_elems = int64_t(pr.total_q) * n_heads * kHeadDim;
    pr.out_elems = pr.q_elems;
    pr.pool_elems = int64_t(num_blocks) * kBlockSize * cfg.kv_heads * kHeadDim;
    float* q = device_alloc<float>(size_t(pr.q_elems));
    float* out = device_alloc<float>(size_t(pr.out_elems));
    uint16_t* k_pool = device_alloc<uint16_t>(size_t(pr.pool_elems));
    uint16_t* v_pool = device_alloc<uint16_t>(size_t(pr.pool_elems));
    fill_f32<<<1024, 256>>>(q, pr.q_elems, seed + 1, 1.5f);
    fill_bf16<<<1024, 256>>>(k_pool, pr.pool_elems, seed + 2);
    fill_bf16<<<1024, 256>>>(v_pool, pr.pool_elems, seed + 3);
    CHECK_CUDA(cudaGetLastError());

    si_paged_attention_params& p = pr.p;
    p.q = q;
    p.out = out;
    p.cu_seqlens_q = device_copy(pr.cu);
    p.context_lens = device_copy(pr.lens);
    p.block_tables = device_copy(pr.tables);
    p.cache = {k_pool, v_pool, nullptr, nullptr, num_blocks, kBlockSize, cfg.kv_heads, kHeadDim, SI_DTYPE_BF16, 0};
    p.q_stride = int64_t(n_heads) * kHeadDim;
    p.out_stride = p.q_stride;
    p.n_seqs = cfg.batch;
    p.max_blocks_per_seq = blocks_per_seq;
    p.n_heads = n_heads;
    p.max_q_len = q_len;
    p.max_context_len = cfg.seq;
    p.scale = 1.0f / std::sqrt(float(kHeadDim));

    // The library's plan (paged_attention.cu make_plan), with non-causal rows never split.
    const int group = n_heads / cfg.kv_heads;
    pr.n_splits = noncausal ? 1 : si::cuda::paged_attention_splits(cfg.batch, cfg.kv_heads, cfg.seq, kHeadDim, sms, resident_blocks());
    const int64_t row_tiles = (int64_t(q_len) * group + 63) / 64;
    const int64_t decode_blocks = int64_t(pr.n_splits) * ((group + 63) / 64);
    pr.grid = dim3(unsigned(std::max(row_tiles, decode_blocks)), unsigned(cfg.kv_heads), unsigned(cfg.batch));

    PagedAttentionArgs& a = pr.args;
    a.q = p.q;
    a.out = p.out;
    a.cu_seqlens_q = p.cu_seqlens_q;
    a.context_lens = p.context_lens;
    a.block_tables = p.block_tables;
    a.k_pool = k_pool;
    a.v_pool = v_pool;
    a.q_stride = p.q_stride;
    a.out_stride = p.out_stride;
    a.max_blocks_per_seq = blocks_per_seq;
    a.block_size = kBlockSize;
    a.n_heads = n_heads;
    a.n_kv_heads = cfg.kv_heads;
    a.group = group;
    a.n_splits = pr.n_splits;
    a.scale = p.scale;
    a.variant.mask.window = INT_MAX;
    if (pr.n_splits > 1) {
        const int64_t partials = int64_t(cfg.batch) * n_heads * pr.n_splits;
        a.split_out = device_alloc<float>(size_t(partials * kHeadDim));
        a.split_stats = device_alloc<si::SoftmaxPartial>(size_t(partials));
        pr.workspace_bytes = partials * (kHeadDim * 4 + int64_t(sizeof(si::SoftmaxPartial)));
    }
    CHECK_CUDA(cudaDeviceSynchronize());
    return pr;
}

void free_problem(Problem& pr) {
    cudaFree(const_cast<float*>(pr.p.q));
    cudaFree(pr.p.out);
    cudaFree(const_cast<int32_t*>(pr.p.cu_seqlens_q));
    cudaFree(const_cast<int32_t*>(pr.p.context_lens));
    cudaFree(const_cast<int32_t*>(pr.p.block_tables));
    cudaFree(pr.p.cache.k_pool);
    cudaFree(pr.p.cache.v_pool);
    cudaFree(pr.args.split_out);
    cudaFree(pr.args.split_stats);
}

void launch(const Problem& pr, cudaStream_t stream) {
    constexpr int smem = si::cuda::paged::PagedSmem<kHeadDim>::kBytes;
    si::cuda::paged_attention_kernel<kHeadDim, BF16Cache><<<pr.grid, si::cuda::paged::kThreads, smem, stream>>>(pr.args);
    if (pr.n_splits > 1) {
        si::cuda::paged_attention_combine_kernel<kHeadDim>
            <<<dim3(unsigned(pr.args.n_heads), unsigned(pr.cfg.batch)), std::min(kHeadDim, 256), 0, stream>>>(pr.args);
    }
}

// Max |cuda - ref| over all outputs, ref = the ref backend on host copies.
double check_against_ref(const Problem& pr, cudaStream_t stream) {
    launch(pr, stream);
    CHECK_CUDA(cudaStreamSynchronize(stream));
    CHECK_CUDA(cudaGetLastError());
    const std::vector<float> got = host_copy(pr.p.out, size_t(pr.out_elems));
    std::vector<float> q = host_copy(pr.p.q, size_t(pr.q_elems));
    std::vector<uint16_t> k = host_copy(static_cast<const uint16_t*>(pr.p.cache.k_pool), size_t(pr.pool_elems));
    std::vector<uint16_t> v = host_copy(static_cast<const uint16_t*>(pr.p.cache.v_pool), size_t(pr.pool_elems));
    std::vector<float> want(size_t(pr.out_elems), 0.0f);
    si_paged_attention_params p = pr.p;
    p.q = q.data();
    p.out = want.data();
    p.cu_seqlens_q = pr.cu.data();
    p.context_lens = pr.lens.data();
    p.block_tables = pr.tables.data();
    p.cache.k_pool = k.data();
    p.cache.v_pool = v.data();
    p.workspace = nullptr;
    p.workspace_bytes = 0;
    si_context* ref = nullptr;
    const si_context_options options{SI_BACKEND_REF, 1, 0, 0};
    const char* message = "";
    if (si_context_create(&options, &ref) != SI_OK || si_paged_attention(ref, &p) != SI_OK) {
        si_last_error(&message);
        std::fprintf(stderr, "ref failed: %s\n", message);
        si_context_destroy(ref);
        return INFINITY;
    }
    si_context_destroy(ref);
    double err = 0.0;
    for (size_t i = 0; i < got.size(); ++i) {
        const double e = std::fabs(double(got[i]) - double(want[i]));
        if (!(e <= err)) err = std::isnan(e) ? INFINITY : std::max(err, e);
    }
    return err;
}

// Mean milliseconds per call: 2 warm-up calls, then enough calls for ~50 ms (3 to 50).
double time_ms(const std::function<void(cudaStream_t)>& fn, cudaStream_t stream, bool quick) {
    cudaEvent_t start, stop;
    CHECK_CUDA(cudaEventCreate(&start));
    CHECK_CUDA(cudaEventCreate(&stop));
    fn(stream);
    CHECK_CUDA(cudaEventRecord(start, stream));
    fn(stream);
    CHECK_CUDA(cudaEventRecord(stop, stream));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float one = 0.0f;
    CHECK_CUDA(cudaEventElapsedTime(&one, start, stop));
    const int reps = quick ? 3 : std::max(3, std::min(50, int(50.0f / std::max(one, 1e-3f))));
    CHECK_CUDA(cudaEventRecord(start, stream));
    for (int i = 0; i < reps; ++i) fn(stream);
    CHECK_CUDA(cudaEventRecord(stop, stream));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float total = 0.0f;
    CHECK_CUDA(cudaEventElapsedTime(&total, start, stop));
    CHECK_CUDA(cudaGetLastError());
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return double(total) / reps;
}

struct Bandwidth {
    double theoretical_gbs = 0.0, read_gbs = 0.0, copy_gbs = 0.0;
};

Bandwidth measure_bandwidth(int device, cudaStream_t stream, bool quick) {
    Bandwidth bw;
    int clock_khz = 0, bus_bits = 0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device) == cudaSuccess &&
        cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device) == cudaSuccess) {
        bw.theoretical_gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;  // double data rate
    }
    (void)cudaGetLastError();
    const size_t bytes = size_t(quick ? 256 : 2048) << 20;
    int4* a = device_alloc<int4>(bytes / 16);
    int4* b = device_alloc<int4>(bytes / 16);
    int* sink = device_alloc<int>(1);
    CHECK_CUDA(cudaMemset(a, 1, bytes));
    int sms = 0;
    CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    const double read_ms = time_ms([&](cudaStream_t s) { read_kernel<<<sms * 8, 512, 0, s>>>(a, int64_t(bytes / 16), sink); }, stream, quick);
    const double copy_ms = time_ms([&](cudaStream_t s) { CHECK_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s)); }, stream, quick);
    bw.read_gbs = bytes / (read_ms * 1e-3) / 1e9;
    bw.copy_gbs = 2.0 * bytes / (copy_ms * 1e-3) / 1e9;  // read + write
    cudaFree(a);
    cudaFree(b);
    cudaFree(sink);
    return bw;
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false;
    const char* json_path = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--quick")) quick = true;
        else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
        else {
            std::fprintf(stderr, "usage: %s [--quick] [--json FILE]\n", argv[0]);
            return 2;
        }
    }
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count < 1) {
        std::printf("no CUDA device: nothing to measure\n");
        return 0;
    }
    const int device = 0;
    CHECK_CUDA(cudaSetDevice(device));
    cudaDeviceProp prop{};
    CHECK_CUDA(cudaGetDeviceProperties(&prop, device));
    cudaStream_t stream;
    CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const Bandwidth bw = measure_bandwidth(device, stream, quick);
    std::printf("device: %s, %d SMs, sm_%d%d, HBM theoretical %.0f GB/s, measured read %.0f GB/s, d2d copy %.0f GB/s (read+write)\n",
                prop.name, prop.multiProcessorCount, prop.major, prop.minor, bw.theoretical_gbs, bw.read_gbs, bw.copy_gbs);
    std::printf("kernel: paged_attention_kernel<128, bf16 cache>, %d resident blocks/SM\n", resident_blocks());

    std::string json = "{\n  \"device\": \"" + std::string(prop.name) + "\",\n  \"hbm_theoretical_gbs\": " + std::to_string(bw.theoretical_gbs) +
                       ",\n  \"read_gbs\": " + std::to_string(bw.read_gbs) + ",\n  \"copy_gbs\": " + std::to_string(bw.copy_gbs) + ",\n  \"results\": [\n";
    int failures = 0;
    bool first = true;

    // Correctness at a small size through the same launch path, then the timed size.
    struct Item {
        Config check, timed;
    };
    const int seq = quick ? 2048 : 8192;
    std::vector<Item> items = {
        {{"prefill-causal", 2, 256, 8, 8}, {"prefill-causal", 1, seq, 32, 32}},
        {{"prefill-causal", 2, 256, 8, 8}, {"prefill-causal", 2, seq, 32, 32}},
        {{"prefill-noncausal", 1, 256, 8, 8}, {"prefill-noncausal", 1, seq, 32, 32}},
        {{"prefill-noncausal", 1, 256, 8, 8}, {"prefill-noncausal", 2, seq, 32, 32}},
        {{"decode", 8, 1024, 32, 8}, {"decode", 8, 4096, 32, 8}},
        {{"decode", 8, 1024, 32, 8}, {"decode", 8, 16384, 32, 8}},
        {{"decode", 32, 300, 32, 8}, {"decode", 32, 4096, 32, 8}},
        {{"decode", 32, 300, 32, 8}, {"decode", 32, 16384, 32, 8}},
    };
    for (const Item& item : items) {
        Problem small = make_problem(item.check, prop.multiProcessorCount, 17);
        const double err = check_against_ref(small, stream);
        free_problem(small);
        const bool ok = err <= 2e-2;
        Problem pr = make_problem(item.timed, prop.multiProcessorCount, 29);
        const Config& c = item.timed;
        char line[512];
        if (!ok) {
            ++failures;
            std::snprintf(line, sizeof line, "%-18s B=%-2d S=%-5d H=%d/%d: ref check FAILED at S=%d (max|err| %.3g): not timed",
                          c.kind.c_str(), c.batch, c.seq, c.heads, c.kv_heads, item.check.seq, err);
            std::printf("%s\n", line);
            free_problem(pr);
            continue;
        }
        const double ms = time_ms([&](cudaStream_t s) { launch(pr, s); }, stream, quick);
        std::string figure;
        double value = 0.0;
        if (c.kind == "decode") {
            const double bytes = 2.0 * c.batch * double(c.seq) * c.kv_heads * kHeadDim * 2.0;  // K and V, bf16
            value = bytes / (ms * 1e-3) / 1e9;
            std::snprintf(line, sizeof line, "%-18s B=%-2d ctx=%-5d H=%d/%d D=128 bf16 splits=%-2d %9.1f us %7.0f GB/s (%4.1f%% of theoretical, %4.1f%% of measured read) [check max|err| %.2g]",
                          c.kind.c_str(), c.batch, c.seq, c.heads, c.kv_heads, pr.n_splits, ms * 1e3, value,
                          bw.theoretical_gbs > 0 ? 100.0 * value / bw.theoretical_gbs : 0.0, 100.0 * value / bw.read_gbs, err);
            figure = "gbs";
        } else {
            const double s = c.seq;
            const double flops = c.kind == "prefill-causal" ? 4.0 * c.batch * c.heads * kHeadDim * s * (s + 1) / 2 : 4.0 * c.batch * c.heads * kHeadDim * s * s;
            value = flops / (ms * 1e-3) / 1e12;
            std::snprintf(line, sizeof line, "%-18s B=%-2d S=%-5d H=%d/%d D=128 bf16 %9.3f ms %7.1f TFLOP/s [check max|err| %.2g]",
                          c.kind.c_str(), c.batch, c.seq, c.heads, c.kv_heads, ms, value, err);
            figure = "tflops";
        }
        std::printf("%s\n", line);
        std::fflush(stdout);
        json += std::string(first ? "" : ",\n") + "    {\"kind\": \"" + c.kind + "\", \"batch\": " + std::to_string(c.batch) + ", \"seq\": " +
                std::to_string(c.seq) + ", \"heads\": " + std::to_string(c.heads) + ", \"kv_heads\": " + std::to_string(c.kv_heads) +
                ", \"splits\": " + std::to_string(pr.n_splits) + ", \"ms\": " + std::to_string(ms) + ", \"" + figure + "\": " +
                std::to_string(value) + ", \"check_max_err\": " + std::to_string(err) + "}";
        first = false;
        free_problem(pr);
    }
    json += "\n  ]\n}\n";
    if (json_path) {
        if (FILE* f = std::fopen(json_path, "w")) {
            std::fputs(json.c_str(), f);
            std::fclose(f);
        }
    }
    cudaStreamDestroy(stream);
    return failures;
}
