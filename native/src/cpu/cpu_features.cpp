// cpu_features.cpp: run-time ISA detection through the compiler's cpuid helpers (which also
// check that the OS saves the wide registers, via XGETBV).
#include "cpu/cpu_features.h"

#include <cstring>
#include <initializer_list>

namespace si::cpu {

Isa detect_isa() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                      __builtin_cpu_supports("f16c");
    const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    if (avx512) return Isa::Avx512;
    if (avx2) return Isa::Avx2;
#endif
    return Isa::Scalar;
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
