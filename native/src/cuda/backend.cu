// backend.cu: the cuda backend: checks the device at creation, owns one non-blocking stream
// and forwards each si::Backend op to its launcher (launch.cuh) on that stream.
#include "common/backend.h"
#include "common/status.h"
#include "cuda/cuda_check.cuh"
#include "cuda/kv_write.cuh"
#include "cuda/launch.cuh"
#include "cuda/paged_attention.cuh"
#include "cuda/qmatmul.cuh"
#include "cuda/sparse_matmul.cuh"

#include <cuda_runtime_api.h>

#include <memory>
#include <new>

namespace si::cuda {

namespace {

// Launched never; cudaFuncGetAttributes on it tells whether this build carries code
// (SASS or PTX) the device can run, before the first real op fails with an obscure error.
__global__ void probe_kernel() {}

// Makes `device` current on the calling thread for one call and restores the previous
// device after: a stream accepts launches only while its device is current, and the
// caller's own choice of current device should survive our calls.
class ScopedDevice {
public:
    si_result enter(int device) {
        SI_CUDA_CHECK(cudaGetDevice(&previous_));
        if (previous_ != device) {
            SI_CUDA_CHECK(cudaSetDevice(device));
            restore_ = true;
        }
        return SI_OK;
    }
    ~ScopedDevice() {
        if (restore_) (void)cudaSetDevice(previous_);
    }

private:
    int previous_ = 0;
    bool restore_ = false;
};

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(int device) : device_(device) {}
    ~CudaBackend() override {
        if (!stream_) return;
        ScopedDevice scope;
        // Destroy does not wait: queued work still completes, then the stream is released.
        // Errors cannot be reported from a destructor and a sticky one is already reported.
        if (scope.enter(device_) == SI_OK) (void)cudaStreamDestroy(stream_);
    }
    CudaBackend(const CudaBackend&) = delete;
    CudaBackend& operator=(const CudaBackend&) = delete;

    si_result create_stream() {
        ScopedDevice scope;
        SI_RETURN_IF_ERROR(scope.enter(device_));
        // Non-blocking: no implicit sync with the legacy default stream other code may use.
        SI_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        return SI_OK;
    }

    const char* name() const override { return "cuda"; }

    si_result synchronize() override {
        ScopedDevice scope;
        SI_RETURN_IF_ERROR(scope.enter(device_));
        return check(cudaStreamSynchronize(stream_), "si_context_synchronize");
    }

    si_result embedding(const si_embedding_params& p) override { return run(launch_embedding, p); }
    si_result rms_norm(const si_rms_norm_params& p) override { return run(launch_rms_norm, p); }
    si_result matmul(const si_matmul_params& p) override { return run(launch_matmul, p); }
    si_result rope(const si_rope_params& p) override { return run(launch_rope, p); }
    si_result attention(const si_attention_params& p) override { return run(launch_attention, p); }
    si_result swiglu(const si_swiglu_params& p) override { return run(launch_swiglu, p); }
    si_result add(const si_add_params& p) override { return run(launch_add, p); }
    si_result softmax(const si_softmax_params& p) override { return run(launch_softmax, p); }
    si_result argmax(const si_argmax_params& p) override { return run(launch_argmax, p); }
    si_result qmatmul(const si_qmatmul_params& p) override { return run(launch_qmatmul, p); }
    si_result sparse_matmul(const si_sparse_matmul_params& p) override { return run(launch_sparse_matmul, p); }
    si_result kv_write(const si_kv_write_params& p) override { return run(launch_kv_write, p); }
    si_result paged_attention_workspace_size(const si_paged_attention_params& p, int64_t* out_bytes) override {
        ScopedDevice scope;
        SI_RETURN_IF_ERROR(scope.enter(device_));
        return cuda::paged_attention_workspace_size(p, out_bytes);
    }
    si_result paged_attention(const si_paged_attention_params& p) override { return run(launch_paged_attention, p); }

private:
    template <typename Params>
    si_result run(si_result (*launch)(const Params&, cudaStream_t), const Params& p) {
        ScopedDevice scope;
        SI_RETURN_IF_ERROR(scope.enter(device_));
        return launch(p, stream_);
    }

    int device_;
    cudaStream_t stream_ = nullptr;
};

}  // namespace

si_result create_backend(const si_context_options& options, std::unique_ptr<Backend>* out) {
    int count = 0;
    const cudaError_t count_error = cudaGetDeviceCount(&count);
    if (count_error != cudaSuccess) {
        // No driver, too old a driver, or no device: clear the runtime's last error so the
        // failed probe does not resurface from a later, unrelated CUDA call.
        (void)cudaGetLastError();
        return fail(SI_ERR_NO_DEVICE, "no CUDA device: %s (%s)", cudaGetErrorString(count_error), cudaGetErrorName(count_error));
    }
    if (count < 1) return fail(SI_ERR_NO_DEVICE, "no CUDA device: the driver reports 0 devices");
    const int device = options.device_ordinal;
    if (device < 0) return fail(SI_ERR_INVALID_ARGUMENT, "si_context_create: device_ordinal %d < 0", device);
    if (device >= count) {
        return fail(SI_ERR_NO_DEVICE, "no CUDA device with ordinal %d: %d device(s) visible (CUDA_VISIBLE_DEVICES narrows them)",
                    device, count);
    }

    int major = 0, minor = 0;
    SI_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    SI_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    if (major < 8) {
        return fail(SI_ERR_UNSUPPORTED, "the cuda backend needs compute capability 8.0 (Ampere) or newer; device %d is %d.%d",
                    device, major, minor);
    }

    {
        ScopedDevice scope;
        SI_RETURN_IF_ERROR(scope.enter(device));
        cudaFuncAttributes attributes{};
        const cudaError_t probe_error = cudaFuncGetAttributes(&attributes, probe_kernel);
        if (probe_error == cudaErrorNoKernelImageForDevice || probe_error == cudaErrorInvalidDeviceFunction) {
            (void)cudaGetLastError();
            return fail(SI_ERR_UNSUPPORTED,
                        "this libsharpinfer has no CUDA code for device %d (sm_%d%d): rebuild with SI_CUDA_ARCHITECTURES including %d%d",
                        device, major, minor, major, minor);
        }
        SI_RETURN_IF_ERROR(check(probe_error, "cuda backend probe"));
    }

    auto backend = std::unique_ptr<CudaBackend>(new (std::nothrow) CudaBackend(device));
    if (!backend) return fail(SI_ERR_OUT_OF_MEMORY, "si_context_create: host allocation failed");
    SI_RETURN_IF_ERROR(backend->create_stream());
    *out = std::move(backend);
    return SI_OK;
}

}  // namespace si::cuda
