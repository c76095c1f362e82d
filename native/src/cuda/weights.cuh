// weights.cuh: one traits struct per weight dtype (f32/f16/bf16): how to load one element or
// one 16-byte vector and widen it to f32 in registers. Kernels take these as template
// arguments (see dispatch.cuh), so the dtype costs no branch in the inner loop.
#pragma once

#include <sharpinfer/sharpinfer.h>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace si::cuda {

// Widen the two halves of a 32-bit word. Hardware cvt is exact for every f16 input
// (subnormals, inf, NaN), so results equal si::f16_to_f32 on the host.
__device__ __forceinline__ void f16x2_to_f32(uint32_t word, float& lo, float& hi) {
    lo = __half2float(__ushort_as_half(static_cast<unsigned short>(word & 0xffffu)));
    hi = __half2float(__ushort_as_half(static_cast<unsigned short>(word >> 16)));
}

// bf16 is the top half of an f32, so widening is a shift.
__device__ __forceinline__ void bf16x2_to_f32(uint32_t word, float& lo, float& hi) {
    lo = __uint_as_float(word << 16);
    hi = __uint_as_float(word & 0xffff0000u);
}

struct F32Weight {
    using Storage = float;
    static constexpr si_dtype kDtype = SI_DTYPE_F32;
    static constexpr int kVector = 4;  // elements per 16-byte load
    __device__ __forceinline__ static float load(const Storage* data, int64_t i) { return __ldg(data + i); }
    // `data` must be 16-byte aligned.
    __device__ __forceinline__ static void load_vector(const Storage* data, float (&out)[kVector]) {
        const float4 v = __ldg(reinterpret_cast<const float4*>(data));
        out[0] = v.x; out[1] = v.y; out[2] = v.z; out[3] = v.w;
    }
};

struct F16Weight {
    using Storage = uint16_t;
    static constexpr si_dtype kDtype = SI_DTYPE_F16;
    static constexpr int kVector = 8;
    __device__ __forceinline__ static float load(const Storage* data, int64_t i) {
        return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(data) + i)));
    }
    __device__ __forceinline__ static void load_vector(const Storage* data, float (&out)[kVector]) {
        const uint4 v = __ldg(reinterpret_cast<const uint4*>(data));
        f16x2_to_f32(v.x, out[0], out[1]);
        f16x2_to_f32(v.y, out[2], out[3]);
        f16x2_to_f32(v.z, out[4], out[5]);
        f16x2_to_f32(v.w, out[6], out[7]);
    }
};

struct BF16Weight {
    using Storage = uint16_t;
    static constexpr si_dtype kDtype = SI_DTYPE_BF16;
    static constexpr int kVector = 8;
    __device__ __forceinline__ static float load(const Storage* data, int64_t i) {
        return __uint_as_float(uint32_t(__ldg(reinterpret_cast<const unsigned short*>(data) + i)) << 16);
    }
    __device__ __forceinline__ static void load_vector(const Storage* data, float (&out)[kVector]) {
        const uint4 v = __ldg(reinterpret_cast<const uint4*>(data));
        bf16x2_to_f32(v.x, out[0], out[1]);
        bf16x2_to_f32(v.y, out[2], out[3]);
        bf16x2_to_f32(v.z, out[4], out[5]);
        bf16x2_to_f32(v.w, out[6], out[7]);
    }
};

}  // namespace si::cuda
