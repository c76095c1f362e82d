// cuda_driver.cpp: loads the driver API subset of cuda_driver.h with dlopen/dlsym.
#include "cuda_driver.h"

#include <dlfcn.h>

namespace si_test::cuda_driver {

namespace {

struct Loaded {
    Api api{};
    CUcontext primary = nullptr;  // device 0's primary context, retained for the process
    bool ok = false;
    std::string error;
};

template <typename Fn>
bool bind(void* library, const char* symbol, Fn* slot, std::string* error) {
    void* address = dlsym(library, symbol);
    if (!address) {
        *error = std::string("libcuda.so.1 lacks ") + symbol;
        return false;
    }
    *slot = reinterpret_cast<Fn>(address);
    return true;
}

Loaded load() {
    Loaded loaded;
    void* library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char* why = dlerror();
        loaded.error = std::string("cannot load libcuda.so.1: ") + (why ? why : "unknown reason");
        return loaded;
    }
    Api& a = loaded.api;
    // The _v2 symbols are the 64-bit entry points cuda.h maps these names to since CUDA 4.
    if (!bind(library, "cuInit", &a.cuInit, &loaded.error) ||
        !bind(library, "cuDeviceGet", &a.cuDeviceGet, &loaded.error) ||
        !bind(library, "cuDevicePrimaryCtxRetain", &a.cuDevicePrimaryCtxRetain, &loaded.error) ||
        !bind(library, "cuCtxSetCurrent", &a.cuCtxSetCurrent, &loaded.error) ||
        !bind(library, "cuMemAlloc_v2", &a.cuMemAlloc, &loaded.error) ||
        !bind(library, "cuMemFree_v2", &a.cuMemFree, &loaded.error) ||
        !bind(library, "cuMemcpyHtoD_v2", &a.cuMemcpyHtoD, &loaded.error) ||
        !bind(library, "cuMemcpyDtoH_v2", &a.cuMemcpyDtoH, &loaded.error) ||
        !bind(library, "cuGetErrorString", &a.cuGetErrorString, &loaded.error)) {
        return loaded;
    }
    CUdevice device = 0;
    if (CUresult r = a.cuInit(0)) {
        loaded.error = describe(a, "cuInit", r);
    } else if (CUresult r = a.cuDeviceGet(&device, 0)) {
        loaded.error = describe(a, "cuDeviceGet", r);
    } else if (CUresult r = a.cuDevicePrimaryCtxRetain(&loaded.primary, device)) {
        loaded.error = describe(a, "cuDevicePrimaryCtxRetain", r);
    } else {
        loaded.ok = true;
    }
    return loaded;
}

}  // namespace

std::string describe(const Api& api, const char* what, CUresult result) {
    const char* text = nullptr;
    if (api.cuGetErrorString(result, &text) != 0 || !text) text = "unknown error";
    return std::string(what) + " failed: " + text + " (" + std::to_string(result) + ")";
}

const Api* api(std::string* error) {
    static const Loaded loaded = load();
    if (!loaded.ok) {
        *error = loaded.error;
        return nullptr;
    }
    // Current contexts are per thread: make the primary one current on the caller's.
    if (CUresult r = loaded.api.cuCtxSetCurrent(loaded.primary)) {
        *error = describe(loaded.api, "cuCtxSetCurrent", r);
        return nullptr;
    }
    return &loaded.api;
}

}  // namespace si_test::cuda_driver
