// cpu_features.cpp: run-time ISA detection from CPUID and XGETBV. Reading the bits
// directly (rather than __builtin_cpu_supports, whose feature names differ between GCC and
// clang) also checks that the OS saves the wider registers on a context switch.
#include "cpu/cpu_features.h"

#include <cstdint>
#include <cstring>
#include <initializer_list>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace si::cpu {

Isa detect_isa() {
#if defined(__x86_64__) || defined(__i386__)
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return Isa::Scalar;
    const bool fma = ecx & (1u << 12), osxsave = ecx & (1u << 27), avx = ecx & (1u << 28), f16c = ecx & (1u << 29);
    if (!(fma && osxsave && avx && f16c)) return Isa::Scalar;
    uint32_t xcr0_lo = 0, xcr0_hi = 0;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 0x6u) != 0x6u) return Isa::Scalar;  // OS saves XMM and YMM state
    if (__get_cpuid_max(0, nullptr) < 7) return Isa::Scalar;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const bool avx2 = ebx & (1u << 5);
    if (!avx2) return Isa::Scalar;
    const bool avx512 = (ebx & (1u << 16)) && (ebx & (1u << 17)) && (ebx & (1u << 30)) && (ebx & (1u << 31));  // f, dq, bw, vl
    const bool os_avx512 = (xcr0_lo & 0xe0u) == 0xe0u;  // opmask and upper ZMM state
    return avx512 && os_avx512 ? Isa::Avx512 : Isa::Avx2;
#else
    return Isa::Scalar;
#endif
}

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Avx512: return "avx512";
        case Isa::Avx2: return "avx2";
        default: return "scalar";
    }
}

bool parse_isa(const char* text, Isa* out) {
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
        if (std::strcmp(text, isa_name(isa)) == 0) {
            *out = isa;
            return true;
        }
    }
    return false;
}

}  // namespace si::cpu
