// library.cpp: library-level exports: ABI version, last error, build info, contexts.
#include "common/backend.h"
#include "common/status.h"
#include "cpu/cpu_features.h"

#include <atomic>
#include <string>

namespace si {

std::string& last_error() {
    thread_local std::string message;
    return message;
}

namespace {
std::atomic<int32_t> g_live_contexts{0};

bool cuda_compiled() {
#if defined(SI_WITH_CUDA)
    return true;
#else
    return false;
#endif
}
}  // namespace

}  // namespace si

extern "C" {

SI_API si_result si_abi_version(int32_t* out_version) {
    if (!out_version) return si::fail(SI_ERR_INVALID_ARGUMENT, "si_abi_version: out_version is null");
    *out_version = SI_ABI_VERSION;
    return SI_OK;
}

SI_API si_result si_last_error(const char** out_message) {
    if (!out_message) return SI_ERR_INVALID_ARGUMENT;
    *out_message = si::last_error().c_str();
    return SI_OK;
}

SI_API si_result si_backend_compiled(si_backend backend, int32_t* out_compiled) {
    if (!out_compiled) return si::fail(SI_ERR_INVALID_ARGUMENT, "si_backend_compiled: out_compiled is null");
    switch (backend) {
        case SI_BACKEND_REF:
        case SI_BACKEND_CPU: *out_compiled = 1; return SI_OK;
        case SI_BACKEND_CUDA: *out_compiled = si::cuda_compiled() ? 1 : 0; return SI_OK;
        default: return si::fail(SI_ERR_INVALID_ARGUMENT, "si_backend_compiled: unknown backend %d", backend);
    }
}

SI_API si_result si_build_info(const char** out_info) {
    SI_API_BEGIN
    if (!out_info) return si::fail(SI_ERR_INVALID_ARGUMENT, "si_build_info: out_info is null");
    static const std::string info = std::string("sharpinfer abi ") + std::to_string(SI_ABI_VERSION) +
                                    "; backends: ref cpu" + (si::cuda_compiled() ? " cuda" : "") +
                                    "; cpu isa: " + si::cpu::isa_name(si::cpu::detect_isa());
    *out_info = info.c_str();
    return SI_OK;
    SI_API_END
}

SI_API si_result si_context_create(const si_context_options* options, si_context** out_context) {
    SI_API_BEGIN
    if (!options || !out_context) return si::fail(SI_ERR_INVALID_ARGUMENT, "si_context_create: null argument");
    *out_context = nullptr;
    if (options->num_threads < 0) return si::fail(SI_ERR_INVALID_ARGUMENT, "si_context_create: num_threads %d < 0", options->num_threads);
    if (options->reserved != 0) return si::fail(SI_ERR_INVALID_ARGUMENT, "si_context_create: reserved must be 0");
    std::unique_ptr<si::Backend> backend;
    switch (options->backend) {
        case SI_BACKEND_REF: SI_RETURN_IF_ERROR(si::ref::create_backend(*options, &backend)); break;
        case SI_BACKEND_CPU: SI_RETURN_IF_ERROR(si::cpu::create_backend(*options, &backend)); break;
        case SI_BACKEND_CUDA:
#if defined(SI_WITH_CUDA)
            SI_RETURN_IF_ERROR(si::cuda::create_backend(*options, &backend));
            break;
#else
            return si::fail(SI_ERR_NOT_COMPILED, "the cuda backend is not compiled into this libsharpinfer (configure with -DSI_CUDA=ON and a CUDA toolkit)");
#endif
        default: return si::fail(SI_ERR_INVALID_ARGUMENT, "si_context_create: unknown backend %d", options->backend);
    }
    *out_context = new si_context{options->backend, std::move(backend)};
    si::g_live_contexts.fetch_add(1);
    return SI_OK;
    SI_API_END
}

SI_API si_result si_context_destroy(si_context* context) {
    SI_API_BEGIN
    if (!context) return SI_OK;
    delete context;
    si::g_live_contexts.fetch_sub(1);
    return SI_OK;
    SI_API_END
}

SI_API si_result si_context_synchronize(si_context* context) {
    SI_API_BEGIN
    if (!context) return si::fail(SI_ERR_INVALID_ARGUMENT, "si_context_synchronize: context is null");
    return context->backend->synchronize();
    SI_API_END
}

SI_API si_result si_live_context_count(int32_t* out_count) {
    if (!out_count) return si::fail(SI_ERR_INVALID_ARGUMENT, "si_live_context_count: out_count is null");
    *out_count = si::g_live_contexts.load();
    return SI_OK;
}

}  // extern "C"
