// bench_qmatmul_cuda.cu: CUDA-event timings of si_qmatmul's cuda kernels against dense cuBLAS
// fp16 and the library's own dense bf16 matmul, figures rather than tests:
//   Llama-7B projections (n x k = 4096 x 4096, 11008 x 4096, 4096 x 11008), m = 1, 4, 16, 64
//   rows of x (f32), in six formats:
//   - W8A16       int8 per channel (group_size = k), f32 activations;
//   - W4A16-g128  int4 group 128, affine (scale + offset per group), f32 activations;
//   - W4A16-g32s  int4 group 32, symmetric (offsets = NULL: offset = -8 * scale);
//   - W8A8        int8 per channel, x quantized per row (per token) to int8 on the fly;
//   - W8A8-b32    int8 group 32, x quantized per 32-k block (SI_ACTIVATIONS_I8_BLOCK32);
//   - W4A8-b32    int4 group 32 symmetric, x quantized per 32-k block;
//   through the library's own launcher (qmatmul.cu compiled into this program, launched on
//   this program's stream, so the events bracket exactly its kernels), beside:
//   - cuBLAS fp16: cublasGemmEx, f16 weights and f16 x (converted beforehand, not timed), f32
//     accumulate and f32 output, as bench_sparse_cuda (without cuBLAS at build time that
//     column is left out and said so);
//   - si bf16: the library's dense si_matmul launcher (matmul.cu compiled in) with bf16
//     weights, f32 x and y, as the runtime runs unquantized models.
//   Weights rotate over enough copies to span >= 256 MiB, so every call streams them from
//   HBM rather than the 50 MB L2 (x and y stay small and hot), as in a decode step where each
//   layer's weights are read once.
//   Per case: microseconds per call, GB/s of weight bytes (values + scales + offsets; 2 bytes
//   per weight for the dense baselines) and its share of the theoretical HBM bandwidth
//   (memory clock x bus width), TFLOP/s (2 m n k), and the speedup over cuBLAS fp16 and over
//   si bf16 (baseline time / case time). The project's targets are checked at m <= 16:
//   W8A8 >= 1.8x si bf16, W4A16 >= 3.5x cuBLAS fp16.
// Every (format, shape, m) is first checked bit for bit against the ref backend (through the
// ABI, on host copies) on the first 64 output channels (rows of w: a valid 64 x k matrix)
// at the real k, m and group size, with small-integer data through the same launch path (the
// kernel choice depends on m, k, group size, format and alignment, not on n). The data are
// built so every product and partial sum is an exact f32 at k <= 11008 (x integers in
// [-2, 2] or v * 2^-e with |v| <= 4 plus one 127 * 2^-e per row / 32-k block so its int8
// scale is exactly 2^-e; power-of-two weight scales; int8 weights in [-16, 16] for the
// block-wise modes), so any summation order gives the same bits. A failing case prints
// "ref check FAILED ... not timed" and is not timed; failed checks (and launches the launcher
// refuses) are the only way this program fails (exit code = their number). The bf16 baseline
// is checked the same way; cuBLAS is not.
// Usage: si_bench_qmatmul_cuda [--quick] [--json FILE]
#include "common/dtype.h"
#include "cuda/launch.cuh"
#include "cuda/qmatmul.cuh"

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
#include <string>
#include <utility>
#include <vector>

// The launchers report failures through si::fail, whose message store lives in the library
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

// lo + (hi - lo) * u, u uniform in [0, 1).
__global__ void fill_f32(float* p, int64_t n, float lo, float hi, uint64_t seed) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        p[i] = lo + (hi - lo) * 0.5f * (uniform_at(seed, i) + 1.0f);
}
__global__ void fill_words(uint32_t* p, int64_t n, uint64_t seed) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        p[i] = uint32_t(hash_at(seed, i));
}

// ---- formats ------------------------------------------------------------------------------------

struct Format {
    const char* label;
    si_weight_format format;
    si_activation_mode activations;
    int32_t group_size;  // 0: per channel (group_size = k)
    bool symmetric;      // int4 without offsets
};

const Format kFormats[] = {
    {"W8A16", SI_WEIGHT_I8, SI_ACTIVATIONS_FLOAT, 0, false},
    {"W4A16-g128", SI_WEIGHT_I4, SI_ACTIVATIONS_FLOAT, 128, false},
    {"W4A16-g32s", SI_WEIGHT_I4, SI_ACTIVATIONS_FLOAT, 32, true},
    {"W8A8", SI_WEIGHT_I8, SI_ACTIVATIONS_I8, 0, false},
    {"W8A8-b32", SI_WEIGHT_I8, SI_ACTIVATIONS_I8_BLOCK32, 32, false},
    {"W4A8-b32", SI_WEIGHT_I4, SI_ACTIVATIONS_I8_BLOCK32, 32, true},
};

struct QLayoutHost {
    int64_t row_bytes, n_groups;
    int32_t group_size;
    bool offsets;
};
QLayoutHost layout_of(const Format& f, int32_t k) {
    QLayoutHost l{};
    l.group_size = f.group_size > 0 ? f.group_size : k;
    l.row_bytes = f.format == SI_WEIGHT_I4 ? (int64_t(k) + 1) / 2 : k;
    l.n_groups = (int64_t(k) + l.group_size - 1) / l.group_size;
    l.offsets = f.format == SI_WEIGHT_I4 && !f.symmetric;
    return l;
}
// Bytes a call must read of the weights: values + scales (+ offsets).
double weight_bytes(const Format& f, int32_t n, int32_t k) {
    const QLayoutHost l = layout_of(f, k);
    return double(n) * (double(l.row_bytes) + 4.0 * double(l.n_groups) * (l.offsets ? 2.0 : 1.0));
}

si_qmatmul_params make_params(const Format& f, const float* x, const void* q, const float* scales, const float* offsets, float* y,
                              int32_t m, int32_t n, int32_t k) {
    const QLayoutHost l = layout_of(f, k);
    si_qmatmul_params p{};
    p.x = x;
    p.q = q;
    p.scales = scales;
    p.offsets = l.offsets ? offsets : nullptr;
    p.bias = nullptr;
    p.y = y;
    p.x_stride = k;
    p.y_stride = n;
    p.m = m;
    p.n = n;
    p.k = k;
    p.group_size = l.group_size;
    p.format = f.format;
    p.activations = f.activations;
    return p;
}

// ---- the ref checks -----------------------------------------------------------------------------

class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed * 0x9e3779b97f4a7c15ull + 1) {}
    uint32_t next() {
        state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
        return uint32_t(state_ >> 33);
    }
    int32_t range(int32_t lo, int32_t hi) { return lo + int32_t(next() % uint32_t(hi - lo + 1)); }  // [lo, hi]

private:
    uint64_t state_;
};

constexpr int32_t kCheckChannels = 64;
constexpr uint32_t kSentinel = 0x7fc0deadu;  // a NaN that outputs overwrite

float sentinel() {
    float f;
    std::memcpy(&f, &kSentinel, sizeof f);
    return f;
}

// Runs the ref backend on host buffers (qmatmul or matmul through the ABI); false on failure.
template <typename Params, typename Call>
bool run_ref(const Params& p, Call call) {
    si_context* ref = nullptr;
    const si_context_options options{SI_BACKEND_REF, 1, 0, 0};
    const bool ok = si_context_create(&options, &ref) == SI_OK && call(ref, &p) == SI_OK;
    if (!ok) {
        const char* message = "";
        si_last_error(&message);
        std::fprintf(stderr, "ref failed: %s\n", message);
    }
    si_context_destroy(ref);
    return ok;
}

// Outputs of got that differ from want in any bit (or -1 if a call failed); *first describes the first.
int64_t count_differences(const std::vector<float>& got, const std::vector<float>& want, int32_t n, std::string* first) {
    int64_t wrong = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            if (wrong++ == 0) {
                char text[160];
                std::snprintf(text, sizeof text, "first at y[%zu, %zu]: got %.9g want %.9g", i / size_t(n), i % size_t(n), double(got[i]),
                              double(want[i]));
                *first = text;
            }
        }
    }
    return wrong;
}

// Checks launch_qmatmul against ref on the first 64 channels at the real k, m and group size
// with exact small-integer data: returns the number of differing outputs, or -1 if a call failed.
int64_t check_qmatmul(const Format& f, int32_t m, int32_t k, cudaStream_t stream, std::string* detail) {
    const int32_t n = kCheckChannels;
    const QLayoutHost l = layout_of(f, k);
    Rng rng(0x51a7e5ull ^ (uint64_t(m) << 8) ^ (uint64_t(k) << 20) ^ (uint64_t(f.format) << 40) ^ (uint64_t(f.activations) << 44) ^
            (uint64_t(l.group_size) << 48));
    std::vector<float> x(size_t(m) * size_t(k));
    for (int32_t r = 0; r < m; ++r) {
        float* row = x.data() + size_t(r) * size_t(k);
        if (f.activations == SI_ACTIVATIONS_FLOAT) {
            for (int32_t i = 0; i < k; ++i) row[i] = float(rng.range(-2, 2));
        } else if (f.activations == SI_ACTIVATIONS_I8) {
            // max |x| = 127 * 2^-e exactly, so the row's scale is 2^-e and q = v.
            const float unit = std::ldexp(1.0f, -(r % 4));
            for (int32_t i = 0; i < k; ++i) row[i] = float(rng.range(-4, 4)) * unit;
            row[(r * 7) % k] = (r % 2 ? -127.0f : 127.0f) * unit;
        } else {
            // Every 32-k block has max |x| = 127 * 2^-e (scale 2^-e, q = v); one unit per row
            // keeps partial sums on a 2^-3 grid.
            const float unit = std::ldexp(1.0f, -(r % 2));
            for (int32_t i = 0; i < k; ++i) row[i] = float(rng.range(-4, 4)) * unit;
            for (int32_t begin = 0, b = 0; begin < k; begin += 32, ++b) {
                const int32_t len = std::min(32, k - begin);
                row[begin + (r * 7 + b * 5) % len] = ((r + b) % 2 ? -127.0f : 127.0f) * unit;
            }
        }
    }
    std::vector<uint8_t> q(size_t(n) * size_t(l.row_bytes));
    for (uint8_t& b : q) b = uint8_t(rng.next());
    if (f.format == SI_WEIGHT_I8 && f.activations == SI_ACTIVATIONS_I8_BLOCK32) {
        // Block-wise: |q| <= 16 keeps every block's dot product times scale far below 2^21.
        for (uint8_t& b : q) b = uint8_t(int8_t(rng.range(-16, 16)));
    }
    std::vector<float> scales(size_t(n) * size_t(l.n_groups)), offsets(l.offsets ? scales.size() : 1, 0.0f);
    for (size_t i = 0; i < scales.size(); ++i) {
        scales[i] = std::ldexp(1.0f, rng.range(-2, 0));
        if (l.offsets) offsets[i] = float(rng.range(-8, 0)) * scales[i];
    }

    float* d_x = device_copy(x);
    uint8_t* d_q = device_copy(q);
    float* d_s = device_copy(scales);
    float* d_o = device_copy(offsets);
    const std::vector<float> y_init(size_t(m) * size_t(n), sentinel());
    float* d_y = device_copy(y_init);
    si_qmatmul_params p = make_params(f, d_x, d_q, d_s, d_o, d_y, m, n, k);
    const si_result launched = si::cuda::launch_qmatmul(p, stream);
    CHECK_CUDA(cudaStreamSynchronize(stream));
    const std::vector<float> got = host_copy(d_y, y_init.size());
    cudaFree(d_x);
    cudaFree(d_q);
    cudaFree(d_s);
    cudaFree(d_o);
    cudaFree(d_y);
    if (launched != SI_OK) {
        *detail = "launch failed: " + si::last_error();
        return -1;
    }
    std::vector<float> want = y_init;
    p = make_params(f, x.data(), q.data(), scales.data(), offsets.data(), want.data(), m, n, k);
    if (!run_ref(p, si_qmatmul)) {
        *detail = "ref failed";
        return -1;
    }
    return count_differences(got, want, n, detail);
}

// The same for the dense bf16 launcher (small integers are exact in bf16).
int64_t check_bf16_matmul(int32_t m, int32_t k, cudaStream_t stream, std::string* detail) {
    const int32_t n = kCheckChannels;
    Rng rng(0xbf16ull ^ (uint64_t(m) << 8) ^ (uint64_t(k) << 20));
    std::vector<float> x(size_t(m) * size_t(k));
    for (float& v : x) v = float(rng.range(-3, 3));
    std::vector<uint16_t> w(size_t(n) * size_t(k));
    for (uint16_t& v : w) v = si::f32_to_bf16(float(rng.range(-8, 8)));
    float* d_x = device_copy(x);
    uint16_t* d_w = device_copy(w);
    const std::vector<float> y_init(size_t(m) * size_t(n), sentinel());
    float* d_y = device_copy(y_init);
    si_matmul_params p{};
    p.x = d_x;
    p.w = d_w;
    p.y = d_y;
    p.x_stride = k;
    p.y_stride = n;
    p.m = m;
    p.n = n;
    p.k = k;
    p.w_dtype = SI_DTYPE_BF16;
    const si_result launched = si::cuda::launch_matmul(p, stream);
    CHECK_CUDA(cudaStreamSynchronize(stream));
    const std::vector<float> got = host_copy(d_y, y_init.size());
    cudaFree(d_x);
    cudaFree(d_w);
    cudaFree(d_y);
    if (launched != SI_OK) {
        *detail = "launch failed: " + si::last_error();
        return -1;
    }
    std::vector<float> want = y_init;
    p.x = x.data();
    p.w = w.data();
    p.y = want.data();
    if (!run_ref(p, si_matmul)) {
        *detail = "ref failed";
        return -1;
    }
    return count_differences(got, want, n, detail);
}

// ---- timing ---------------------------------------------------------------------------------------

// Mean milliseconds per call: 2 warm-up calls, then enough calls for ~50 ms (3 to 100; quick:
// 3 to 20). fn gets the call's index (to rotate weight copies).
double time_ms(const std::function<void(cudaStream_t, int)>& fn, cudaStream_t stream, bool quick) {
    cudaEvent_t start, stop;
    CHECK_CUDA(cudaEventCreate(&start));
    CHECK_CUDA(cudaEventCreate(&stop));
    int call = 0;
    fn(stream, call++);
    CHECK_CUDA(cudaEventRecord(start, stream));
    fn(stream, call++);
    CHECK_CUDA(cudaEventRecord(stop, stream));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float one = 0.0f;
    CHECK_CUDA(cudaEventElapsedTime(&one, start, stop));
    const int reps = std::max(3, std::min(quick ? 20 : 100, int(50.0f / std::max(one, 1e-3f))));
    CHECK_CUDA(cudaEventRecord(start, stream));
    for (int i = 0; i < reps; ++i) fn(stream, call++);
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
    double theoretical_gbs = 0.0, read_gbs = 0.0;
};

Bandwidth measure_bandwidth(int device, cudaStream_t stream, bool quick) {
    Bandwidth bw;
    int clock_khz = 0, bus_bits = 0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device) == cudaSuccess &&
        cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device) == cudaSuccess) {
        bw.theoretical_gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;  // double data rate
    }
    const size_t bytes = size_t(quick ? 256 : 1024) << 20;
    int4* a = device_alloc<int4>(bytes / 16);
    int* sink = device_alloc<int>(1);
    CHECK_CUDA(cudaMemset(a, 1, bytes));
    int sms = 0;
    CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    const double ms = time_ms([&](cudaStream_t s, int) { read_kernel<<<sms * 8, 512, 0, s>>>(a, int64_t(bytes / 16), sink); }, stream, quick);
    cudaFree(a);
    cudaFree(sink);
    bw.read_gbs = bytes / (ms * 1e-3) / 1e9;
    return bw;
}

// Copies of a weight set so that all of them span >= 256 MiB (1 to 64), each `stride` bytes
// apart (a multiple of 256, so every copy keeps the allocation's alignment).
int copies_for(double bytes) { return std::max(1, std::min(64, int(std::ceil(double(256 << 20) / std::max(bytes, 1.0))))); }
size_t round256(size_t bytes) { return (bytes + 255) / 256 * 256; }

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
    const Bandwidth bw = measure_bandwidth(device, stream, quick);
    std::printf("device: %s, %d SMs, sm_%d%d, HBM theoretical %.0f GB/s, measured read %.0f GB/s\n", prop.name, prop.multiProcessorCount,
                prop.major, prop.minor, bw.theoretical_gbs, bw.read_gbs);
#if SI_BENCH_CUBLAS
    cublasHandle_t cublas = nullptr;
    const bool have_cublas = cublasCreate(&cublas) == CUBLAS_STATUS_SUCCESS && cublasSetStream(cublas, stream) == CUBLAS_STATUS_SUCCESS;
    std::printf("baseline cuBLAS-f16: cublasGemmEx, f16 w and x, f32 accumulate and output%s\n",
                have_cublas ? "" : " (cublasCreate FAILED: left out)");
#else
    const bool have_cublas = false;
    std::printf("baseline cuBLAS-f16: none (cuBLAS was not found when this benchmark was built)\n");
#endif
    std::printf("baseline si-bf16: si_matmul cuda launcher, bf16 w, f32 x and y\n");
    std::printf("weights rotate over copies spanning >= 256 MiB (streamed from HBM, not L2); GB/s = weight bytes (values + scales + offsets) / time\n");

    struct Shape {
        int32_t n, k;
    };
    std::vector<Shape> shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    std::vector<int32_t> ms = {1, 4, 16, 64};
    if (quick) {
        shapes = {{4096, 4096}};
        ms = {1, 16};
    }
    const int32_t max_m = *std::max_element(ms.begin(), ms.end());

    int failures = 0, checks_passed = 0, checks_failed = 0;
    std::string json = "{\n  \"device\": \"" + std::string(prop.name) + "\",\n  \"hbm_theoretical_gbs\": " + std::to_string(bw.theoretical_gbs) +
                       ",\n  \"read_gbs\": " + std::to_string(bw.read_gbs) + ",\n  \"cublas_baseline\": \"" +
                       (have_cublas ? "cublasGemmEx f16/f16 -> f32" : "none") + "\",\n  \"quick\": " + (quick ? "true" : "false") +
                       ",\n  \"results\": [\n";
    bool first_row = true;
    auto add_json = [&](const std::string& kind, const Shape& s, int32_t m, int32_t group_size, const std::string& status, double t_ms,
                        double bytes, double cublas_ms, double bf16_ms) {
        std::string row = std::string(first_row ? "" : ",\n") + "    {\"kind\": \"" + kind + "\", \"n\": " + std::to_string(s.n) +
                          ", \"k\": " + std::to_string(s.k) + ", \"m\": " + std::to_string(m) + ", \"group_size\": " +
                          std::to_string(group_size) + ", \"status\": \"" + status + "\"";
        if (t_ms > 0) {
            const double gbs = bytes / (t_ms * 1e-3) / 1e9;
            row += ", \"us\": " + std::to_string(t_ms * 1e3) + ", \"weight_bytes\": " + std::to_string(int64_t(bytes)) +
                   ", \"weight_gbs\": " + std::to_string(gbs) +
                   (bw.theoretical_gbs > 0 ? ", \"hbm_fraction\": " + std::to_string(gbs / bw.theoretical_gbs) : std::string()) +
                   ", \"tflops\": " + std::to_string(2.0 * m * s.n * double(s.k) / (t_ms * 1e-3) / 1e12) +
                   (cublas_ms > 0 ? ", \"speedup_vs_cublas_f16\": " + std::to_string(cublas_ms / t_ms) : std::string()) +
                   (bf16_ms > 0 ? ", \"speedup_vs_si_bf16\": " + std::to_string(bf16_ms / t_ms) : std::string());
        }
        json += row + "}";
        first_row = false;
    };
    auto figures = [&](const Shape& s, int32_t m, double t_ms, double bytes) {
        const double gbs = bytes / (t_ms * 1e-3) / 1e9;
        return fmt("%9.1f us", t_ms * 1e3) + fmt(" %6.0f GB/s", gbs) +
               (bw.theoretical_gbs > 0 ? fmt(" (%5.1f%% of HBM)", 100.0 * gbs / bw.theoretical_gbs) : std::string()) +
               fmt(" %6.2f TFLOP/s", 2.0 * m * s.n * double(s.k) / (t_ms * 1e-3) / 1e12);
    };

    // Targets at m <= 16: the lowest speedup seen and how many cases met it.
    struct Target {
        const char* what;
        double goal;
        int met = 0, seen = 0;
        double worst = 1e30;
        std::string worst_at;
    };
    Target w8a8_target{"W8A8 (per-token) vs si-bf16", 1.8}, w4a16_target{"W4A16-g128 vs cuBLAS-f16", 3.5};
    auto record = [](Target& t, double speedup, const std::string& at) {
        ++t.seen;
        if (speedup >= t.goal) ++t.met;
        if (speedup < t.worst) {
            t.worst = speedup;
            t.worst_at = at;
        }
    };

    for (const Shape& s : shapes) {
        float* x = device_alloc<float>(size_t(max_m) * size_t(s.k));
        float* y = device_alloc<float>(size_t(max_m) * size_t(s.n));
        fill_f32<<<1024, 256>>>(x, int64_t(max_m) * s.k, -1.0f, 1.0f, 11);
        // Dense baselines: 2 bytes per weight, rotated copies.
        const double dense_bytes = 2.0 * s.n * double(s.k);
        const int dense_copies = copies_for(dense_bytes);
        const size_t dense_stride = round256(size_t(dense_bytes)) / 2;  // in elements
        uint16_t* wbf16 = device_alloc<uint16_t>(dense_stride * dense_copies);
        fill_bf16<<<1024, 256>>>(wbf16, int64_t(dense_stride) * dense_copies, 13);
        uint16_t* x16 = nullptr;
        uint16_t* w16 = nullptr;
        if (have_cublas) {
            x16 = device_alloc<uint16_t>(size_t(max_m) * size_t(s.k));
            w16 = device_alloc<uint16_t>(dense_stride * dense_copies);
            f32_to_f16<<<1024, 256>>>(x, x16, int64_t(max_m) * s.k);
            fill_f16<<<1024, 256>>>(w16, int64_t(dense_stride) * dense_copies, 12);
        }
        CHECK_CUDA(cudaGetLastError());
        CHECK_CUDA(cudaDeviceSynchronize());

        // Quantized weights: one buffer per part, big enough for the largest format's copies
        // (random bytes serve int8 and int4 alike; scales and offsets random, as in a model).
        struct QSet {
            int copies;
            size_t q_stride, s_stride;  // bytes
            uint8_t* q;
            float* scales;
            float* offsets;
        };
        std::vector<QSet> qsets;
        for (const Format& f : kFormats) {
            const QLayoutHost l = layout_of(f, s.k);
            QSet set{};
            set.copies = copies_for(weight_bytes(f, s.n, s.k));
            set.q_stride = round256(size_t(s.n) * size_t(l.row_bytes));
            set.s_stride = round256(size_t(s.n) * size_t(l.n_groups) * 4);
            set.q = device_alloc<uint8_t>(set.q_stride * set.copies);
            set.scales = device_alloc<float>(set.s_stride / 4 * set.copies);
            set.offsets = l.offsets ? device_alloc<float>(set.s_stride / 4 * set.copies) : nullptr;
            fill_words<<<1024, 256>>>(reinterpret_cast<uint32_t*>(set.q), int64_t(set.q_stride / 4) * set.copies, 21);
            const float unit = f.format == SI_WEIGHT_I4 ? 1.0f / 15.0f : 1.0f / 127.0f;
            fill_f32<<<1024, 256>>>(set.scales, int64_t(set.s_stride / 4) * set.copies, 0.5f * unit, 1.5f * unit, 22);
            if (set.offsets) fill_f32<<<1024, 256>>>(set.offsets, int64_t(set.s_stride / 4) * set.copies, -9.0f * unit, -7.0f * unit, 23);
            qsets.push_back(set);
        }
        CHECK_CUDA(cudaGetLastError());
        CHECK_CUDA(cudaDeviceSynchronize());

        for (int32_t m : ms) {
            const std::string at = "n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) + " m=" + std::to_string(m);
            char prefix[64];
            std::snprintf(prefix, sizeof prefix, "n=%-5d k=%-5d m=%-2d ", s.n, s.k, m);
            double cublas_ms = 0.0, bf16_ms = 0.0;
#if SI_BENCH_CUBLAS
            if (have_cublas) {
                const float alpha = 1.0f, beta = 0.0f;
                bool ok = true;
                cublas_ms = time_ms([&](cudaStream_t, int call) {
                    const uint16_t* w = w16 + dense_stride * size_t(call % dense_copies);
                    // y^T [n, m] (column-major) = w [n, k] (row-major = k x n column-major, transposed) . x^T
                    ok &= cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, s.n, m, s.k, &alpha, w, CUDA_R_16F, s.k, x16, CUDA_R_16F, s.k,
                                       &beta, y, CUDA_R_32F, s.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS;
                }, stream, quick);
                if (!ok) cublas_ms = 0.0;
                if (cublas_ms > 0) {
                    std::printf("%s%-11s %s\n", prefix, "cuBLAS-f16", figures(s, m, cublas_ms, dense_bytes).c_str());
                    add_json("cublas_f16", s, m, 0, "ok", cublas_ms, dense_bytes, 0.0, 0.0);
                } else {
                    std::printf("%s%-11s FAILED (cublasGemmEx)\n", prefix, "cuBLAS-f16");
                    add_json("cublas_f16", s, m, 0, "cublasGemmEx failed", 0.0, 0.0, 0.0, 0.0);
                }
            }
#endif
            {
                std::string detail;
                const int64_t wrong = check_bf16_matmul(m, s.k, stream, &detail);
                if (wrong == 0) ++checks_passed;
                else ++checks_failed;
                if (wrong != 0) {
                    ++failures;
                    std::printf("%s%-11s ref check FAILED (64 channels, %s) %s: not timed\n", prefix, "si-bf16",
                                wrong < 0 ? "call failed" : (std::to_string(wrong) + " outputs differ").c_str(), detail.c_str());
                    add_json("si_bf16", s, m, 0, "ref check failed", 0.0, 0.0, 0.0, 0.0);
                } else {
                    si_matmul_params p{};
                    p.x = x;
                    p.y = y;
                    p.x_stride = s.k;
                    p.y_stride = s.n;
                    p.m = m;
                    p.n = s.n;
                    p.k = s.k;
                    p.w_dtype = SI_DTYPE_BF16;
                    si_result status = SI_OK;
                    bf16_ms = time_ms([&](cudaStream_t st, int call) {
                        p.w = wbf16 + dense_stride * size_t(call % dense_copies);
                        if (status == SI_OK) status = si::cuda::launch_matmul(p, st);
                    }, stream, quick);
                    if (status != SI_OK) {
                        ++failures;
                        bf16_ms = 0.0;
                        std::printf("%s%-11s FAILED (%s)\n", prefix, "si-bf16", si::last_error().c_str());
                        add_json("si_bf16", s, m, 0, "launch failed", 0.0, 0.0, 0.0, 0.0);
                    } else {
                        std::printf("%s%-11s %s%s\n", prefix, "si-bf16", figures(s, m, bf16_ms, dense_bytes).c_str(),
                                    cublas_ms > 0 ? fmt("  x%.2f vs cuBLAS-f16", cublas_ms / bf16_ms).c_str() : "");
                        add_json("si_bf16", s, m, 0, "ok", bf16_ms, dense_bytes, cublas_ms, 0.0);
                    }
                }
            }
            for (size_t fi = 0; fi < sizeof kFormats / sizeof kFormats[0]; ++fi) {
                const Format& f = kFormats[fi];
                const QSet& set = qsets[fi];
                const QLayoutHost l = layout_of(f, s.k);
                std::string detail;
                const int64_t wrong = check_qmatmul(f, m, s.k, stream, &detail);
                if (wrong == 0) ++checks_passed;
                else ++checks_failed;
                if (wrong != 0) {
                    ++failures;
                    std::printf("%s%-11s ref check FAILED (64 channels, g%d, %s) %s: not timed\n", prefix, f.label, l.group_size,
                                wrong < 0 ? "call failed" : (std::to_string(wrong) + " outputs differ").c_str(), detail.c_str());
                    add_json(f.label, s, m, l.group_size, "ref check failed", 0.0, 0.0, 0.0, 0.0);
                    continue;
                }
                si_qmatmul_params p = make_params(f, x, set.q, set.scales, set.offsets, y, m, s.n, s.k);
                si_result status = SI_OK;
                const double t = time_ms([&](cudaStream_t st, int call) {
                    const size_t c = size_t(call % set.copies);
                    p.q = set.q + set.q_stride * c;
                    p.scales = set.scales + set.s_stride / 4 * c;
                    if (set.offsets) p.offsets = set.offsets + set.s_stride / 4 * c;
                    if (status == SI_OK) status = si::cuda::launch_qmatmul(p, st);
                }, stream, quick);
                if (status != SI_OK) {
                    ++failures;
                    std::printf("%s%-11s FAILED (%s)\n", prefix, f.label, si::last_error().c_str());
                    add_json(f.label, s, m, l.group_size, "launch failed", 0.0, 0.0, 0.0, 0.0);
                    continue;
                }
                const double bytes = weight_bytes(f, s.n, s.k);
                char label[32];
                std::snprintf(label, sizeof label, "%-11s ", f.label);
                std::string line = std::string(prefix) + label + figures(s, m, t, bytes);
                line += cublas_ms > 0 ? fmt("  x%.2f vs cuBLAS-f16", cublas_ms / t) : std::string("  (no cuBLAS)");
                if (bf16_ms > 0) line += fmt("  x%.2f vs si-bf16", bf16_ms / t);
                if (m <= 16 && f.activations == SI_ACTIVATIONS_I8 && bf16_ms > 0) {
                    record(w8a8_target, bf16_ms / t, at);
                    line += bf16_ms / t >= w8a8_target.goal ? "  [target >= 1.8x si-bf16: met]" : "  [target >= 1.8x si-bf16: MISSED]";
                }
                if (m <= 16 && !std::strcmp(f.label, "W4A16-g128") && cublas_ms > 0) {
                    record(w4a16_target, cublas_ms / t, at);
                    line += cublas_ms / t >= w4a16_target.goal ? "  [target >= 3.5x cuBLAS-f16: met]" : "  [target >= 3.5x cuBLAS-f16: MISSED]";
                }
                std::printf("%s\n", line.c_str());
                add_json(f.label, s, m, l.group_size, "ok", t, bytes, cublas_ms, bf16_ms);
            }
            std::fflush(stdout);
        }
        cudaFree(x);
        cudaFree(y);
        cudaFree(x16);
        cudaFree(w16);
        cudaFree(wbf16);
        for (QSet& set : qsets) {
            cudaFree(set.q);
            cudaFree(set.scales);
            cudaFree(set.offsets);
        }
    }
    std::printf("ref checks: %d passed, %d failed (bit for bit against ref, first %d channels at the real k, m, group size)\n",
                checks_passed, checks_failed, kCheckChannels);
    for (const Target* t : {&w8a8_target, &w4a16_target}) {
        if (t->seen == 0) {
            std::printf("target %s >= %.1fx at m <= 16: not measured\n", t->what, t->goal);
        } else {
            std::printf("target %s >= %.1fx at m <= 16: met in %d of %d cases (lowest x%.2f at %s)\n", t->what, t->goal, t->met, t->seen,
                        t->worst, t->worst_at.c_str());
        }
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
