// status.h: how native code reports failure without crossing the ABI with an exception.
// Every export body sits inside SI_API_BEGIN / SI_API_END, which turns any C++ exception
// into a status plus a thread-local message. Kernels return si_result and call fail().
#pragma once

#include <sharpinfer/sharpinfer.h>

#include <cstdio>
#include <new>
#include <string>

namespace si {

// The calling thread's last error message (read back through si_last_error).
std::string& last_error();

// Records a formatted message for this thread and returns the status, so a failing
// check reads `return fail(SI_ERR_INVALID_ARGUMENT, "rms_norm: dim %d < 1", dim);`.
template <typename... Args>
si_result fail(si_result status, const char* format, Args... args) {
    char buffer[1024];
    if constexpr (sizeof...(Args) == 0) {
        std::snprintf(buffer, sizeof buffer, "%s", format);
    } else {
        std::snprintf(buffer, sizeof buffer, format, args...);
    }
    last_error() = buffer;
    return status;
}

}  // namespace si

#define SI_RETURN_IF_ERROR(expr)                  \
    do {                                          \
        si_result si_status_ = (expr);            \
        if (si_status_ != SI_OK) return si_status_; \
    } while (0)

#define SI_API_BEGIN try {
#define SI_API_END                                                                   \
    }                                                                                \
    catch (const std::bad_alloc&) {                                                  \
        return ::si::fail(SI_ERR_OUT_OF_MEMORY, "%s: host allocation failed", __func__); \
    }                                                                                \
    catch (const std::exception& e) {                                                \
        return ::si::fail(SI_ERR_INTERNAL, "%s: %s", __func__, e.what());           \
    }                                                                                \
    catch (...) {                                                                    \
        return ::si::fail(SI_ERR_INTERNAL, "%s: unknown exception", __func__);      \
    }
