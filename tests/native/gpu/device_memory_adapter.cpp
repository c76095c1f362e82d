// device_memory_adapter.cpp: moves op-case buffers to the GPU and back (see the header).
#include "device_memory_adapter.h"

#include "cuda_driver.h"

#include <stdexcept>
#include <string>

namespace si_test {

using cuda_driver::CUdeviceptr;
using cuda_driver::CUresult;

namespace {

const cuda_driver::Api& require_api() {
    std::string error;
    const cuda_driver::Api* api = cuda_driver::api(&error);
    if (!api) throw std::runtime_error("device adapter: " + error);
    return *api;
}

void free_all(const cuda_driver::Api& api, const std::vector<void*>& pointers) {
    for (void* p : pointers) {
        if (p) (void)api.cuMemFree(reinterpret_cast<CUdeviceptr>(p));
    }
}

}  // namespace

std::vector<void*> DeviceMemoryAdapter::upload(si_context* /*context*/, std::vector<Buffer>& buffers) {
    const cuda_driver::Api& api = require_api();
    std::vector<void*> pointers;
    pointers.reserve(buffers.size());
    for (Buffer& buffer : buffers) {
        CUdeviceptr device = 0;
        CUresult r = api.cuMemAlloc(&device, buffer.size_bytes());
        if (r == 0) {
            pointers.push_back(reinterpret_cast<void*>(device));
            r = api.cuMemcpyHtoD(device, buffer.host_data(), buffer.size_bytes());
        }
        if (r != 0) {
            free_all(api, pointers);
            throw std::runtime_error("device adapter: buffer '" + buffer.name + "' (" +
                                     std::to_string(buffer.size_bytes()) + " bytes): " +
                                     cuda_driver::describe(api, "cuMemAlloc/cuMemcpyHtoD", r));
        }
    }
    return pointers;
}

si_result DeviceMemoryAdapter::download(si_context* context, std::vector<Buffer>& buffers,
                                        const std::vector<void*>& pointers) {
    const cuda_driver::Api& api = require_api();
    si_result status = si_context_synchronize(context);
    // After a failed synchronize (a kernel fault) the context is unusable and the copies
    // would fail too; the status already says what happened.
    if (status == SI_OK) {
        for (size_t i = 0; i < buffers.size() && i < pointers.size(); ++i) {
            const CUresult r = api.cuMemcpyDtoH(buffers[i].host_data(), reinterpret_cast<CUdeviceptr>(pointers[i]),
                                                buffers[i].size_bytes());
            if (r != 0) {
                status = SI_ERR_DEVICE;
                break;
            }
        }
    }
    free_all(api, pointers);
    return status;
}

}  // namespace si_test
