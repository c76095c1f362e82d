// add.cu: launches the residual add, vectorized when every pointer is 16-byte aligned.
#include "cuda/add.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/dispatch.cuh"
#include "cuda/launch.cuh"
#include "cuda/nvtx.cuh"

#include <algorithm>

namespace si::cuda {

si_result launch_add(const si_add_params& p, cudaStream_t stream) {
    if (p.n == 0) return SI_OK;
    NvtxRange range("si_add");
    const bool vector = ((reinterpret_cast<uintptr_t>(p.a) | reinterpret_cast<uintptr_t>(p.b) |
                          reinterpret_cast<uintptr_t>(p.out)) % 16) == 0;
    constexpr int kThreads = 256;
    const int64_t per_thread = vector ? 4 : 1;
    const int64_t blocks = std::min<int64_t>((p.n + kThreads * per_thread - 1) / (kThreads * per_thread), 1 << 20);
    return dispatch_bool(vector, [&](auto vec) {
        add_kernel<decltype(vec)::value><<<unsigned(blocks), kThreads, 0, stream>>>(p.a, p.b, p.out, p.n);
        return check_launch("si_add");
    });
}

}  // namespace si::cuda
