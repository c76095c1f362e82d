// read_bandwidth.h: this machine's streaming-read bandwidth as the CPU benchmarks measure it
// beside their own figures: 1 GiB of floats summed with wide loads and software prefetch 4 KiB
// ahead (as the kernels stream weights), split evenly over N threads, best of 4.
#pragma once

#include <benchmark/benchmark.h>

#include "cpu/simd.h"  // <immintrin.h> behind the GCC PR105593 diagnostic guard

#include <cpuid.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

namespace si_bench {

inline bool has_avx512f() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !(ebx & (1u << 16))) return false;
    uint32_t xcr0_lo = 0, xcr0_hi = 0;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    return (xcr0_lo & 0xe6u) == 0xe6u;
}

// Sums `count` floats (a multiple of 64; 64-byte aligned) with software prefetch ahead.
__attribute__((target("avx512f"))) inline float read_avx512(const float* data, size_t count) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 64 <= count; i += 64) {
        const char* ahead = reinterpret_cast<const char*>(data + i) + 4096;
        _mm_prefetch(ahead, _MM_HINT_T0);
        _mm_prefetch(ahead + 64, _MM_HINT_T0);
        _mm_prefetch(ahead + 128, _MM_HINT_T0);
        _mm_prefetch(ahead + 192, _MM_HINT_T0);
        a0 = _mm512_add_ps(a0, _mm512_load_ps(data + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(data + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(data + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(data + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// The same with 256-bit loads (count a multiple of 32).
__attribute__((target("avx2"))) inline float read_avx2(const float* data, size_t count) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 32 <= count; i += 32) {
        const char* ahead = reinterpret_cast<const char*>(data + i) + 4096;
        _mm_prefetch(ahead, _MM_HINT_T0);
        _mm_prefetch(ahead + 64, _MM_HINT_T0);
        a0 = _mm256_add_ps(a0, _mm256_load_ps(data + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(data + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(data + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(data + i + 24));
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    return lanes[0] + lanes[7];
}

// Sums `count` floats with the widest loads this CPU has.
inline float read_floats(const float* data, size_t count) {
    static const bool wide = has_avx512f();
    return wide ? read_avx512(data, count) : read_avx2(data, count);
}

// Best of 4 streaming reads of 1 GiB split evenly over `threads` threads, in GB/s. The buffer is
// allocated and touched once per process.
inline double measure_read_gbps(int32_t threads) {
    const size_t bytes = size_t(1) << 30, count = bytes / sizeof(float);
    static float* data = nullptr;
    if (!data) {
        data = static_cast<float*>(std::aligned_alloc(64, bytes));
        for (size_t i = 0; i < count; ++i) data[i] = float(i & 1023);  // touch every page
    }
    std::vector<float> sink(size_t(threads), 0.0f);
    auto part = [&](int32_t t) {
        const size_t begin = count * size_t(t) / size_t(threads) / 64 * 64, end = count * size_t(t + 1) / size_t(threads) / 64 * 64;
        sink[size_t(t)] = read_floats(data + begin, end - begin);
    };
    double best = 0.0;
    for (int rep = 0; rep < 4; ++rep) {
        const auto start = std::chrono::steady_clock::now();
        std::vector<std::thread> pool;
        for (int32_t t = 1; t < threads; ++t) pool.emplace_back(part, t);
        part(0);
        for (std::thread& th : pool) th.join();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        best = std::max(best, double(bytes) / seconds * 1e-9);
    }
    benchmark::DoNotOptimize(sink.data());
    return best;
}

}  // namespace si_bench
