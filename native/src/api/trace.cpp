// trace.cpp: the si_trace_* exports, thin wrappers over NVTX v3 (header-only: it finds the
// profiler's injection library at run time, so nothing is linked). Without the headers the
// exports still exist and do nothing, so managed callers never need to ask.
#include "common/status.h"

#include <sharpinfer/sharpinfer.h>

#if !defined(SI_NVTX)
#if __has_include(<nvtx3/nvToolsExt.h>)
#define SI_NVTX 1
#else
#define SI_NVTX 0
#endif
#endif

#if SI_NVTX
#include <nvtx3/nvToolsExt.h>
#endif

extern "C" {

SI_API si_result si_trace_available(int32_t* out_available) {
    if (!out_available) return si::fail(SI_ERR_INVALID_ARGUMENT, "si_trace_available: out_available is null");
    *out_available = SI_NVTX;
    return SI_OK;
}

SI_API si_result si_trace_push(const char* name) {
    if (!name) return si::fail(SI_ERR_INVALID_ARGUMENT, "si_trace_push: name is null");
#if SI_NVTX
    nvtxRangePushA(name);
#endif
    return SI_OK;
}

SI_API si_result si_trace_pop(void) {
#if SI_NVTX
    nvtxRangePop();
#endif
    return SI_OK;
}

SI_API si_result si_trace_range_start(const char* name, uint64_t* out_id) {
    if (!name || !out_id) return si::fail(SI_ERR_INVALID_ARGUMENT, "si_trace_range_start: null pointer");
#if SI_NVTX
    *out_id = nvtxRangeStartA(name);
#else
    *out_id = 0;
#endif
    return SI_OK;
}

SI_API si_result si_trace_range_end(uint64_t id) {
#if SI_NVTX
    if (id != 0) nvtxRangeEnd(id);
#else
    (void)id;
#endif
    return SI_OK;
}

}  // extern "C"
