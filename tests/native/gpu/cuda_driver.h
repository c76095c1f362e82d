// cuda_driver.h: the few CUDA driver API calls the GPU tests use, loaded at run time from
// libcuda.so.1. Tests allocate device memory the way the managed runtime does (driver API,
// primary context), and the executable still starts on machines without a driver.
#pragma once

#include <cstddef>
#include <string>

namespace si_test::cuda_driver {

// Driver API types, spelled out so no CUDA header is needed to build the tests.
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
struct CUctx_st;
using CUcontext = CUctx_st*;

struct Api {
    CUresult (*cuInit)(unsigned flags);
    CUresult (*cuDeviceGet)(CUdevice* device, int ordinal);
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext* context, CUdevice device);
    CUresult (*cuCtxSetCurrent)(CUcontext context);
    CUresult (*cuMemAlloc)(CUdeviceptr* pointer, size_t bytes);
    CUresult (*cuMemFree)(CUdeviceptr pointer);
    CUresult (*cuMemcpyHtoD)(CUdeviceptr destination, const void* source, size_t bytes);
    CUresult (*cuMemcpyDtoH)(void* destination, CUdeviceptr source, size_t bytes);
    CUresult (*cuGetErrorString)(CUresult error, const char** text);
};

// Loads libcuda, initializes it and makes device 0's primary context current on the
// calling thread (the context the cuda backend's runtime API uses). Returns null and sets
// *error when any step fails. Thread-safe; loads once per process.
const Api* api(std::string* error);

// "cuMemAlloc failed: out of memory (2)".
std::string describe(const Api& api, const char* what, CUresult result);

}  // namespace si_test::cuda_driver
