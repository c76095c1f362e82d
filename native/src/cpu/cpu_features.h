// cpu_features.h: which x86 SIMD level this machine (and OS) supports, chosen once at run
// time so that one library binary runs everywhere and uses AVX-512 where it exists.
#pragma once

namespace si::cpu {

// Ordered: a higher level implies every lower one.
enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// The best level this CPU supports: Avx2 needs avx2+fma+f16c, Avx512 needs
// avx512f+avx512bw+avx512vl+avx512dq on top of that.
Isa detect_isa();

// "scalar", "avx2" or "avx512".
const char* isa_name(Isa isa);

// Parses "scalar" / "avx2" / "avx512"; returns false for anything else.
bool parse_isa(const char* text, Isa* out);

}  // namespace si::cpu
