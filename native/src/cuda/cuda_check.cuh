// cuda_check.cuh: turns a cudaError_t into an si_result plus a thread-local message, so a
// CUDA failure is reported to the caller instead of aborting the host process.
#pragma once

#include "common/status.h"

#include <cuda_runtime_api.h>

namespace si::cuda {

// cudaErrorMemoryAllocation maps to SI_ERR_OUT_OF_MEMORY so the managed scheduler can react
// (preempt); every other CUDA error is SI_ERR_DEVICE with CUDA's own words.
inline si_result check(cudaError_t error, const char* what) {
    if (error == cudaSuccess) return SI_OK;
    const si_result status = error == cudaErrorMemoryAllocation ? SI_ERR_OUT_OF_MEMORY : SI_ERR_DEVICE;
    return fail(status, "%s: %s (%s)", what, cudaGetErrorString(error), cudaGetErrorName(error));
}

// Call right after a <<<...>>> launch: bad launch configurations surface here; faults inside
// a kernel surface later, at the next synchronize, as sticky errors.
inline si_result check_launch(const char* op) { return check(cudaGetLastError(), op); }

}  // namespace si::cuda

// Returns from the enclosing function with the mapped status when a CUDA call fails.
#define SI_CUDA_CHECK(expr) SI_RETURN_IF_ERROR(::si::cuda::check((expr), #expr))
