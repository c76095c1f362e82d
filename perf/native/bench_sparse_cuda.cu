// bench_sparse_cuda.cu: CUDA-event timings of si_sparse_matmul's cuda kernels against dense
// cuBLAS, figures rather than tests:
//   Llama-7B-like projections (n x k = 4096 x 4096, 11008 x 4096, 4096 x 11008), f16 values,
//   m = 1, 16, 64, 512, 4096 rows of x:
//   - 2:4 (semi-structured) through the library's own launcher (sparse_matmul.cu compiled
//     into this program, launched on this program's stream, so the events bracket exactly its
//     kernels: GEMV for m <= 16, mma.sp tensor cores above);
//   - dense cublasGemmEx, f16 weights and f16 x (converted beforehand, not timed), f32
//     accumulate and f32 output, as the dense baseline (without cuBLAS at build time the
//     dense column is left out and said so);
//   - bitmask at 50/70/90% sparsity for m <= 64 (decode and small batches, where reading
//     fewer bytes is the point).
//   Speedup = dense time / sparse time; GB/s = bytes the kernel must move (compressed
//   weights + metadata + x + y) per second, beside the read bandwidth measured in the same
//   run; TFLOP/s counts the dense-equivalent 2 m n k.
// Every (format, sparsity, m) is first checked bit for bit against the ref backend (through
// the ABI, on host copies) at n = 200, k = 528 with small-integer data through the same
// launch path (m above 200 is checked at m = 200, which takes the same kernel). A failed
// check is the only way this program fails (exit code = failed checks).
// Versions: v1 = the src/ kernels (2:4 GEMV + mma.sp m16n8k32 with register-staged double
// buffering; bitmask GEMV + f32 tiled).
// Usage: si_bench_sparse_cuda [--quick] [--json FILE]
#include "common/dtype.h"
#include "cuda/sparse_matmul.cuh"

#include <sharpinfer/sharpinfer.h>

#include "cuda_bench.cuh"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#if SI_BENCH_CUBLAS
#include <cublas_v2.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <utility>
#include <string>
#include <vector>

// The launcher reports failures through si::fail, whose message store lives in the library
// with hidden visibility; this program keeps its own.
namespace si {
std::string& last_error() {
    thread_local std::string message;
    return message;
}
}  // namespace si

namespace {

using namespace si_bench;

// ---- device data ------------------------------------------------------------------------------

__global__ void fill_f32(float* p, int64_t n, uint64_t seed) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) p[i] = uniform_at(seed, i);
}
// Random valid 2:4 metadata: every nibble one of the 6 ordered pairs of distinct positions.
__global__ void fill_meta24(uint16_t* p, int64_t n, uint64_t seed) {
    const uint16_t pairs[6] = {0x4, 0x8, 0xc, 0x9, 0xd, 0xe};  // (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const uint64_t h = hash_at(seed, i);
        uint16_t word = 0;
        for (int g = 0; g < 4; ++g) word = uint16_t(word | (pairs[(h >> (8 * g)) % 6] << (4 * g)));
        p[i] = word;
    }
}
// Random mask words, each bit kept with probability `density`; bits past k cleared.
__global__ void fill_mask(uint64_t* p, int64_t rows, int32_t kw, int32_t k, float density, uint64_t seed) {
    const uint32_t threshold = uint32_t(double(density) * 4294967296.0 > 4294967295.0 ? 4294967295.0 : double(density) * 4294967296.0);
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows * kw; i += int64_t(gridDim.x) * blockDim.x) {
        const int32_t word = int32_t(i % kw);
        uint64_t bits = 0;
        for (int b = 0; b < 64; ++b) {
            if (word * 64 + b < k && uint32_t(hash_at(seed, i * 64 + b)) < threshold) bits |= uint64_t(1) << b;
        }
        p[i] = bits;
    }
}
__global__ void row_popcounts(const uint64_t* mask, int64_t rows, int32_t kw, int64_t* counts) {
    for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows; r += int64_t(gridDim.x) * blockDim.x) {
        int64_t c = 0;
        for (int32_t w = 0; w < kw; ++w) c += __popcll(mask[r * kw + w]);
        counts[r] = c;
    }
}

// ---- a sparse weight matrix on the device --------------------------------------------------------

struct SparseWeights {
    si_sparse_format format = SI_SPARSE_2_4;
    float sparsity = 0.5f;
    int32_t n = 0, k = 0;
    uint16_t* values = nullptr;     // f16
    void* index = nullptr;          // 2:4 metadata or bitmask words
    int64_t* row_offsets = nullptr; // bitmask
    int64_t value_count = 0, index_bytes = 0;

    int64_t weight_bytes() const { return value_count * 2 + index_bytes + (row_offsets ? (int64_t(n) + 1) * 8 : 0); }
    void release() {
        cudaFree(values);
        cudaFree(index);
        cudaFree(row_offsets);
    }
};

SparseWeights make_weights(si_sparse_format format, float sparsity, int32_t n, int32_t k, uint64_t seed) {
    SparseWeights w;
    w.format = format;
    w.sparsity = sparsity;
    w.n = n;
    w.k = k;
    if (format == SI_SPARSE_2_4) {
        const int64_t kp = (int64_t(k) + 15) / 16 * 16;
        w.value_count = int64_t(n) * (kp / 2);
        w.values = device_alloc<uint16_t>(size_t(w.value_count));
        auto* meta = device_alloc<uint16_t>(size_t(int64_t(n) * (kp / 16)));
        fill_f16<<<1024, 256>>>(w.values, w.value_count, seed);
        fill_meta24<<<1024, 256>>>(meta, int64_t(n) * (kp / 16), seed + 1);
        w.index = meta;
        w.index_bytes = int64_t(n) * (kp / 16) * 2;
    } else {
        const int32_t kw = (k + 63) / 64;
        auto* mask = device_alloc<uint64_t>(size_t(int64_t(n) * kw));
        fill_mask<<<1024, 256>>>(mask, n, kw, k, 1.0f - sparsity, seed);
        int64_t* counts = device_alloc<int64_t>(size_t(n));
        row_popcounts<<<256, 256>>>(mask, n, kw, counts);
        const std::vector<int64_t> c = host_copy(counts, size_t(n));
        cudaFree(counts);
        std::vector<int64_t> offsets(size_t(n) + 1, 0);
        for (int32_t r = 0; r < n; ++r) offsets[size_t(r) + 1] = offsets[size_t(r)] + c[size_t(r)];
        w.value_count = offsets.back();
        w.values = device_alloc<uint16_t>(size_t(std::max<int64_t>(w.value_count, 8)));
        fill_f16<<<1024, 256>>>(w.values, w.value_count, seed + 2);
        w.row_offsets = device_copy(offsets);
        w.index = mask;
        w.index_bytes = int64_t(n) * kw * 8;
    }
    CHECK_CUDA(cudaGetLastError());
    CHECK_CUDA(cudaDeviceSynchronize());
    return w;
}

si_sparse_matmul_params make_params(const SparseWeights& w, const float* x, float* y, int32_t m) {
    si_sparse_matmul_params p{};
    p.x = x;
    p.values = w.values;
    p.index = w.index;
    p.row_offsets = w.row_offsets;
    p.bias = nullptr;
    p.y = y;
    p.x_stride = w.k;
    p.y_stride = w.n;
    p.m = m;
    p.n = w.n;
    p.k = w.k;
    p.values_dtype = SI_DTYPE_F16;
    p.format = w.format;
    return p;
}

// ---- the ref check --------------------------------------------------------------------------------

uint16_t host_f16(float v) { return si::f32_to_f16(v); }  // exact for the small integers used here

// Bit-for-bit check of the launcher against ref at n = 200, k = 528 with small-integer data
// (every summation order is exact): returns the number of differing outputs, or -1 if a
// call failed.
int64_t check_against_ref(si_sparse_format format, float sparsity, int32_t m, cudaStream_t stream) {
    const int32_t n = 200, k = 528;
    uint64_t state = 0x2545f4914f6cdd1dull ^ uint64_t(m) ^ (uint64_t(format) << 32) ^ uint64_t(sparsity * 1000.0f);
    auto next = [&]() {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return uint32_t(state >> 33);
    };
    std::vector<uint16_t> values;
    std::vector<uint16_t> meta;
    std::vector<uint64_t> mask;
    std::vector<int64_t> offsets;
    if (format == SI_SPARSE_2_4) {
        const int64_t kp = (int64_t(k) + 15) / 16 * 16;
        values.resize(size_t(n * kp / 2));
        meta.resize(size_t(n * kp / 16));
        const uint16_t pairs[6] = {0x4, 0x8, 0xc, 0x9, 0xd, 0xe};
        for (auto& word : meta) {
            word = 0;
            for (int g = 0; g < 4; ++g) word = uint16_t(word | (pairs[next() % 6] << (4 * g)));
        }
        for (auto& v : values) v = host_f16(float(int(next() % 7) - 3));
    } else {
        const int32_t kw = (k + 63) / 64;
        mask.assign(size_t(n) * size_t(kw), 0);
        offsets.assign(size_t(n) + 1, 0);
        for (int32_t r = 0; r < n; ++r) {
            for (int32_t i = 0; i < k; ++i)
                if (float(next() % 1000) >= sparsity * 1000.0f) mask[size_t(r) * kw + size_t(i / 64)] |= uint64_t(1) << (i % 64);
            int64_t count = 0;
            for (int32_t w = 0; w < kw; ++w) count += __builtin_popcountll(mask[size_t(r) * kw + size_t(w)]);
            offsets[size_t(r) + 1] = offsets[size_t(r)] + count;
        }
        values.resize(size_t(std::max<int64_t>(offsets.back(), 8)));
        for (auto& v : values) v = host_f16(float(int(next() % 7) - 3));
    }
    std::vector<float> x(size_t(m) * size_t(k));
    for (auto& v : x) v = float(int(next() % 7) - 3);

    // Device run through the launcher on this program's stream.
    float* d_x = device_copy(x);
    float* d_y = device_alloc<float>(size_t(m) * size_t(n));
    uint16_t* d_values = device_copy(values);
    void* d_index = format == SI_SPARSE_2_4 ? static_cast<void*>(device_copy(meta)) : static_cast<void*>(device_copy(mask));
    int64_t* d_offsets = format == SI_SPARSE_BITMASK ? device_copy(offsets) : nullptr;
    si_sparse_matmul_params p{};
    p.x = d_x;
    p.values = d_values;
    p.index = d_index;
    p.row_offsets = d_offsets;
    p.y = d_y;
    p.x_stride = k;
    p.y_stride = n;
    p.m = m;
    p.n = n;
    p.k = k;
    p.values_dtype = SI_DTYPE_F16;
    p.format = format;
    const si_result launched = si::cuda::launch_sparse_matmul(p, stream);
    CHECK_CUDA(cudaStreamSynchronize(stream));
    const std::vector<float> got = host_copy(d_y, size_t(m) * size_t(n));
    cudaFree(d_x);
    cudaFree(d_y);
    cudaFree(d_values);
    cudaFree(d_index);
    cudaFree(d_offsets);
    if (launched != SI_OK) {
        std::fprintf(stderr, "launch failed: %s\n", si::last_error().c_str());
        return -1;
    }

    // Ref on host copies.
    std::vector<float> want(size_t(m) * size_t(n), 0.0f);
    p.x = x.data();
    p.values = values.data();
    p.index = format == SI_SPARSE_2_4 ? static_cast<const void*>(meta.data()) : static_cast<const void*>(mask.data());
    p.row_offsets = format == SI_SPARSE_BITMASK ? offsets.data() : nullptr;
    p.y = want.data();
    si_context* ref = nullptr;
    const si_context_options options{SI_BACKEND_REF, 1, 0, 0};
    if (si_context_create(&options, &ref) != SI_OK || si_sparse_matmul(ref, &p) != SI_OK) {
        const char* message = "";
        si_last_error(&message);
        std::fprintf(stderr, "ref failed: %s\n", message);
        si_context_destroy(ref);
        return -1;
    }
    si_context_destroy(ref);
    int64_t wrong = 0;
    for (size_t i = 0; i < got.size(); ++i) wrong += std::memcmp(&got[i], &want[i], sizeof(float)) != 0;
    return wrong;
}

// ---- timing ---------------------------------------------------------------------------------------

// Mean milliseconds per call: 2 warm-up calls, then enough calls for ~50 ms (3 to 100).
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
    const int reps = quick ? 3 : std::max(3, std::min(100, int(50.0f / std::max(one, 1e-3f))));
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

double measure_read_gbs(int device, cudaStream_t stream, bool quick) {
    const size_t bytes = size_t(quick ? 256 : 1024) << 20;
    int4* a = device_alloc<int4>(bytes / 16);
    int* sink = device_alloc<int>(1);
    CHECK_CUDA(cudaMemset(a, 1, bytes));
    int sms = 0;
    CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    const double ms = time_ms([&](cudaStream_t s) { read_kernel<<<sms * 8, 512, 0, s>>>(a, int64_t(bytes / 16), sink); }, stream, quick);
    cudaFree(a);
    cudaFree(sink);
    return bytes / (ms * 1e-3) / 1e9;
}

std::string fmt(const char* format, double value) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, format, value);
    return buffer;
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
    const double read_gbs = measure_read_gbs(device, stream, quick);
    std::printf("device: %s, %d SMs, sm_%d%d, measured read %.0f GB/s\n", prop.name, prop.multiProcessorCount, prop.major, prop.minor, read_gbs);
#if SI_BENCH_CUBLAS
    cublasHandle_t cublas = nullptr;
    const bool have_cublas = cublasCreate(&cublas) == CUBLAS_STATUS_SUCCESS && cublasSetStream(cublas, stream) == CUBLAS_STATUS_SUCCESS;
    std::printf("dense baseline: cublasGemmEx, f16 w and x, f32 accumulate and output%s\n", have_cublas ? "" : " (cublasCreate FAILED: left out)");
#else
    const bool have_cublas = false;
    std::printf("dense baseline: none (cuBLAS was not found when this benchmark was built)\n");
#endif

    struct Shape {
        int32_t n, k;
    };
    std::vector<Shape> shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    std::vector<int32_t> ms = {1, 16, 64, 512, 4096};
    if (quick) {
        shapes = {{4096, 4096}};
        ms = {1, 16, 512};
    }
    const int32_t bitmask_max_m = 64;
    const float sparsities[] = {0.5f, 0.7f, 0.9f};

    // Ref checks, once per (format, sparsity, checked m).
    int failures = 0;
    // (<map>'s emplace does not compile under nvcc 11.8 with libstdc++ 12: a list will do.)
    std::vector<std::pair<std::string, int64_t>> checks;
    auto checked = [&](si_sparse_format format, float sparsity, int32_t m) {
        const int32_t check_m = std::min(m, 200);
        const std::string key = std::to_string(format) + "/" + std::to_string(sparsity) + "/" + std::to_string(check_m);
        for (const auto& done : checks)
            if (done.first == key) return done.second == 0;
        const int64_t wrong = check_against_ref(format, sparsity, check_m, stream);
        if (wrong != 0) {
            ++failures;
            std::printf("ref check FAILED: %s %.0f%% m=%d n=200 k=528: %s\n", format == SI_SPARSE_2_4 ? "2:4" : "bitmask",
                        sparsity * 100.0f, check_m, wrong < 0 ? "call failed" : (std::to_string(wrong) + " outputs differ").c_str());
        } else {
            std::printf("ref check ok: %s %.0f%% m=%d n=200 k=528 (bit for bit)\n", format == SI_SPARSE_2_4 ? "2:4" : "bitmask",
                        sparsity * 100.0f, check_m);
        }
        checks.push_back({key, wrong});
        return wrong == 0;
    };

    std::string json = "{\n  \"device\": \"" + std::string(prop.name) + "\",\n  \"read_gbs\": " + std::to_string(read_gbs) +
                       ",\n  \"dense_baseline\": \"" + (have_cublas ? "cublasGemmEx f16/f16 -> f32" : "none") + "\",\n  \"results\": [\n";
    bool first = true;
    auto add_json = [&](const std::string& kind, const Shape& s, int32_t m, double ms_value, double gbs, double dense_ms) {
        json += std::string(first ? "" : ",\n") + "    {\"kind\": \"" + kind + "\", \"n\": " + std::to_string(s.n) + ", \"k\": " +
                std::to_string(s.k) + ", \"m\": " + std::to_string(m) + ", \"us\": " + std::to_string(ms_value * 1e3) + ", \"gbs\": " +
                std::to_string(gbs) + ", \"tflops\": " + std::to_string(2.0 * m * s.n * double(s.k) / (ms_value * 1e-3) / 1e12) +
                (dense_ms > 0 ? ", \"speedup_vs_dense\": " + std::to_string(dense_ms / ms_value) : std::string()) + "}";
        first = false;
    };

    for (const Shape& s : shapes) {
        const int32_t max_m = *std::max_element(ms.begin(), ms.end());
        float* x = device_alloc<float>(size_t(max_m) * size_t(s.k));
        float* y = device_alloc<float>(size_t(max_m) * size_t(s.n));
        fill_f32<<<1024, 256>>>(x, int64_t(max_m) * s.k, 11);
        uint16_t* x16 = nullptr;
        uint16_t* w16 = nullptr;
        if (have_cublas) {
            x16 = device_alloc<uint16_t>(size_t(max_m) * size_t(s.k));
            w16 = device_alloc<uint16_t>(size_t(s.n) * size_t(s.k));
            f32_to_f16<<<1024, 256>>>(x, x16, int64_t(max_m) * s.k);
            fill_f16<<<1024, 256>>>(w16, int64_t(s.n) * s.k, 12);
        }
        CHECK_CUDA(cudaGetLastError());
        SparseWeights w24 = make_weights(SI_SPARSE_2_4, 0.5f, s.n, s.k, 21);
        std::vector<SparseWeights> masks;
        for (float sp : sparsities) masks.push_back(make_weights(SI_SPARSE_BITMASK, sp, s.n, s.k, 31 + uint64_t(sp * 100)));

        for (int32_t m : ms) {
            std::string line = "n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) + " m=" + std::to_string(m) + ":";
            double dense_ms = 0.0;
#if SI_BENCH_CUBLAS
            if (have_cublas) {
                const float alpha = 1.0f, beta = 0.0f;
                bool ok = true;
                dense_ms = time_ms([&](cudaStream_t) {
                    // y^T [n, m] (column-major) = w [n, k] (row-major = k x n column-major, transposed) . x^T
                    ok &= cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, s.n, m, s.k, &alpha, w16, CUDA_R_16F, s.k, x16, CUDA_R_16F, s.k,
                                       &beta, y, CUDA_R_32F, s.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS;
                }, stream, quick);
                if (!ok) dense_ms = 0.0;
                if (dense_ms > 0) {
                    const double bytes = 2.0 * s.n * double(s.k) + 2.0 * m * double(s.k) + 4.0 * m * double(s.n);
                    line += " dense " + fmt("%.1f us", dense_ms * 1e3) + fmt(" (%.0f GB/s,", bytes / (dense_ms * 1e-3) / 1e9) +
                            fmt(" %.1f TFLOP/s)", 2.0 * m * s.n * double(s.k) / (dense_ms * 1e-3) / 1e12);
                    add_json("dense", s, m, dense_ms, bytes / (dense_ms * 1e-3) / 1e9, 0.0);
                } else {
                    line += " dense FAILED (cublasGemmEx)";
                }
            }
#endif
            auto run_sparse = [&](const SparseWeights& w, const std::string& label) {
                if (!checked(w.format, w.sparsity, m)) {
                    line += " " + label + " not timed (ref check failed)";
                    return;
                }
                const si_sparse_matmul_params p = make_params(w, x, y, m);
                si_result status = SI_OK;
                const double t = time_ms([&](cudaStream_t st) {
                    if (status == SI_OK) status = si::cuda::launch_sparse_matmul(p, st);
                }, stream, quick);
                if (status != SI_OK) {
                    line += " " + label + " FAILED (" + si::last_error() + ")";
                    ++failures;
                    return;
                }
                const double bytes = double(w.weight_bytes()) + 4.0 * m * double(s.k) + 4.0 * m * double(s.n);
                line += " | " + label + " " + fmt("%.1f us", t * 1e3) + fmt(" %.0f GB/s", bytes / (t * 1e-3) / 1e9) +
                        fmt(" %.1f TFLOP/s", 2.0 * m * s.n * double(s.k) / (t * 1e-3) / 1e12);
                if (dense_ms > 0) line += fmt(" x%.2f", dense_ms / t);
                add_json(label, s, m, t, bytes / (t * 1e-3) / 1e9, dense_ms);
            };
            run_sparse(w24, "2:4");
            if (m <= bitmask_max_m) {
                for (const SparseWeights& w : masks) run_sparse(w, "bitmask" + std::to_string(int(std::lround(w.sparsity * 100))));
            }
            std::printf("%s\n", line.c_str());
            std::fflush(stdout);
        }
        cudaFree(x);
        cudaFree(y);
        cudaFree(x16);
        cudaFree(w16);
        w24.release();
        for (SparseWeights& w : masks) w.release();
    }
    json += "\n  ]\n}\n";
    if (json_path) {
        if (FILE* f = std::fopen(json_path, "w")) {
            std::fputs(json.c_str(), f);
            std::fclose(f);
        }
    }
#if SI_BENCH_CUBLAS
    if (cublas) cublasDestroy(cublas);
#endif
    cudaStreamDestroy(stream);
    std::printf("%d failure(s)\n", failures);
    return failures;
}
