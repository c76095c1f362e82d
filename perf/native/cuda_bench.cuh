// cuda_bench.cuh: what the CUDA benchmarks share: a fatal CUDA error check, deterministic
// device-side fills (a counter-based hash, so any element can be regenerated), a streaming-read
// kernel for the measured HBM bandwidth, and device/host copies. One benchmark program per
// translation unit includes it.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK_CUDA(expr)                                                                              \
    do {                                                                                              \
        const cudaError_t e_ = (expr);                                                                \
        if (e_ != cudaSuccess) {                                                                      \
            std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
            std::exit(2);                                                                             \
        }                                                                                             \
    } while (0)

namespace si_bench {

// ---- device data ------------------------------------------------------------------------------

__device__ __forceinline__ uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
__device__ __forceinline__ uint64_t hash_at(uint64_t seed, int64_t i) { return mix(seed + uint64_t(i) * 0x9e3779b97f4a7c15ull); }
// Uniform in [-1, 1).
__device__ __forceinline__ float uniform_at(uint64_t seed, int64_t i) { return float(hash_at(seed, i) >> 40) * (1.0f / 8388608.0f) - 1.0f; }

__global__ void fill_f16(uint16_t* p, int64_t n, uint64_t seed) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        p[i] = __half_as_ushort(__float2half_rn(uniform_at(seed, i)));
}
__global__ void fill_bf16(uint16_t* p, int64_t n, uint64_t seed) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        p[i] = uint16_t(__float_as_uint(uniform_at(seed, i)) >> 16);
}
__global__ void f32_to_f16(const float* in, uint16_t* out, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        out[i] = __half_as_ushort(__float2half_rn(in[i]));
}
// Reads n 16-byte words once (the measured HBM read bandwidth).
__global__ void read_kernel(const int4* p, int64_t n, int* sink) {
    int acc = 0;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int4 v = __ldg(p + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678) *sink = acc;  // keeps the loads
}

// ---- host <-> device --------------------------------------------------------------------------

template <typename T>
T* device_alloc(size_t count) {
    void* p = nullptr;
    CHECK_CUDA(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(T)));
    return static_cast<T*>(p);
}
template <typename T>
T* device_copy(const std::vector<T>& host) {
    T* p = device_alloc<T>(host.size());
    CHECK_CUDA(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    return p;
}
template <typename T>
std::vector<T> host_copy(const T* p, size_t count) {
    std::vector<T> host(count);
    CHECK_CUDA(cudaMemcpy(host.data(), p, count * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
}

}  // namespace si_bench
