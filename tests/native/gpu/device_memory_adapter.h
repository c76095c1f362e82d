// device_memory_adapter.h: the GPU tier's MemoryAdapter: each case buffer gets its own
// device allocation (driver API, like the managed runtime), filled from the host copy so
// NaN poison and guards travel with it, and comes back after the op.
#pragma once

#include "op_cases.h"

namespace si_test {

class DeviceMemoryAdapter final : public MemoryAdapter {
public:
    const char* name() const override { return "cuda-device"; }
    // Throws std::runtime_error when the driver is unusable or an allocation/copy fails;
    // GoogleTest reports that as a failure of the case. Partial allocations are freed.
    std::vector<void*> upload(si_context* context, std::vector<Buffer>& buffers) override;
    // Synchronizes the context first (ops are asynchronous on its stream), then copies
    // back every buffer, inputs included: a kernel that writes into an input (or past an
    // output into a guard) then shows up in the harness's comparison.
    si_result download(si_context* context, std::vector<Buffer>& buffers, const std::vector<void*>& pointers) override;
};

}  // namespace si_test
