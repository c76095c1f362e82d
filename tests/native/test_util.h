// test_util.h: small helpers shared by the native tests: owning context handles, cpu
// contexts pinned to an ISA level (through SI_CPU_ISA, read at context creation), and the
// ISA levels this machine can run.
#pragma once

#include <sharpinfer/sharpinfer.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace si_test {

struct ContextDeleter {
    void operator()(si_context* context) const { si_context_destroy(context); }
};
using ContextPtr = std::unique_ptr<si_context, ContextDeleter>;

// Creates a cpu context restricted to `isa` ("scalar", "avx2", "avx512"; "" = best).
inline si_result create_cpu_context(const std::string& isa, int32_t num_threads, si_context** out) {
    const char* previous = std::getenv("SI_CPU_ISA");
    const std::string saved = previous ? previous : "";
    if (isa.empty()) unsetenv("SI_CPU_ISA");
    else setenv("SI_CPU_ISA", isa.c_str(), 1);
    si_context_options options{};
    options.backend = SI_BACKEND_CPU;
    options.num_threads = num_threads;
    const si_result status = si_context_create(&options, out);
    if (previous) setenv("SI_CPU_ISA", saved.c_str(), 1);
    else unsetenv("SI_CPU_ISA");
    return status;
}

inline ContextPtr make_cpu_context(const std::string& isa, int32_t num_threads) {
    si_context* context = nullptr;
    if (create_cpu_context(isa, num_threads, &context) != SI_OK) return nullptr;
    return ContextPtr(context);
}

inline ContextPtr make_ref_context() {
    si_context_options options{};
    options.backend = SI_BACKEND_REF;
    si_context* context = nullptr;
    if (si_context_create(&options, &context) != SI_OK) return nullptr;
    return ContextPtr(context);
}

// Every ISA level up to the one the library detected (si_build_info reports it).
inline std::vector<std::string> available_isas() {
    const char* info = nullptr;
    std::string detected = "scalar";
    if (si_build_info(&info) == SI_OK && info) {
        const std::string text = info;
        const size_t at = text.find("cpu isa: ");
        if (at != std::string::npos) detected = text.substr(at + 9, text.find_first_of("; ", at + 9) - (at + 9));
    }
    std::vector<std::string> isas{"scalar"};
    if (detected == "avx2" || detected == "avx512") isas.push_back("avx2");
    if (detected == "avx512") isas.push_back("avx512");
    return isas;
}

}  // namespace si_test
