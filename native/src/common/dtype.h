// dtype.h: f16/bf16 <-> f32 conversions shared by every backend (host and device), so the
// cpu tests also exercise what the cuda kernels use.
#pragma once

#include <sharpinfer/sharpinfer.h>

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SI_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SI_HOST_DEVICE inline
#endif

namespace si {

SI_HOST_DEVICE float bits_to_f32(uint32_t bits) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(bits);
#else
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
#endif
}

SI_HOST_DEVICE uint32_t f32_to_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    return bits;
#endif
}

SI_HOST_DEVICE float bf16_to_f32(uint16_t h) { return bits_to_f32(uint32_t(h) << 16); }

// Round to nearest even; NaN stays NaN.
SI_HOST_DEVICE uint16_t f32_to_bf16(float f) {
    uint32_t bits = f32_to_bits(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return uint16_t(bits >> 16);
}

// IEEE binary16 -> f32, exact for every input (subnormals, inf, NaN).
SI_HOST_DEVICE float f16_to_f32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1f) return bits_to_f32(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
        if (mantissa == 0) return bits_to_f32(sign);
        // Subnormal: value = mantissa * 2^-24.
        float value = float(mantissa) * 5.9604644775390625e-8f;
        return sign ? -value : value;
    }
    return bits_to_f32(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// f32 -> IEEE binary16, round to nearest even, overflow to inf.
SI_HOST_DEVICE uint16_t f32_to_f16(float f) {
    const uint32_t bits = f32_to_bits(f);
    const uint32_t sign = (bits >> 16) & 0x8000u;
    const uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00u);
    if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: inf
    if (abs < 0x38800000u) {                                 // below the smallest normal
        // Subnormal or zero: scale so the result's LSB is 2^-24, then round to even.
        const float value = bits_to_f32(abs) * 16777216.0f;  // * 2^24
        const float rounded = value + 12582912.0f - 12582912.0f;  // round-half-even
        return uint16_t(sign | uint32_t(rounded));
    }
    uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
    return uint16_t(sign | ((rounded - 0x38000000u) >> 13));
}

inline int dtype_size(si_dtype dtype) {
    switch (dtype) {
        case SI_DTYPE_F32: return 4;
        case SI_DTYPE_F16: return 2;
        case SI_DTYPE_BF16: return 2;
        case SI_DTYPE_I32: return 4;
        case SI_DTYPE_I8: return 1;
        default: return 0;
    }
}

inline const char* dtype_name(si_dtype dtype) {
    switch (dtype) {
        case SI_DTYPE_F32: return "f32";
        case SI_DTYPE_F16: return "f16";
        case SI_DTYPE_BF16: return "bf16";
        case SI_DTYPE_I32: return "i32";
        case SI_DTYPE_I8: return "i8";
        default: return "unknown";
    }
}

// Loads element i of a weight row in any float dtype as f32.
SI_HOST_DEVICE float load_as_f32(const void* data, si_dtype dtype, int64_t i) {
    switch (dtype) {
        case SI_DTYPE_F16: return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
        case SI_DTYPE_BF16: return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
        default: return static_cast<const float*>(data)[i];
    }
}

}  // namespace si
