// nvtx.cuh: a scoped NVTX range around every launch so an Nsight timeline reads like the op
// list. Header-only NVTX v3; compiled out when its header is missing or SI_NVTX is 0.
#pragma once

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

namespace si::cuda {

// Names are string literals with static storage; keep them stable ("si_<op>/<variant>"),
// profiles and scripts key on them.
class NvtxRange {
public:
    explicit NvtxRange(const char* name) {
#if SI_NVTX
        nvtxRangePushA(name);
#else
        (void)name;
#endif
    }
    ~NvtxRange() {
#if SI_NVTX
        nvtxRangePop();
#endif
    }
    NvtxRange(const NvtxRange&) = delete;
    NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace si::cuda
