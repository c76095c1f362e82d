// host_alloc.h: benchmark buffers allocated the way the runtime allocates its KV pools and
// activations (interop/HostMemory.cs): 64-byte aligned, and from 2 MiB up aligned to 2 MiB and
// advised to use transparent huge pages before the first touch, so a benchmark reads memory
// laid out as the runtime's is.
#pragma once

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <memory>

namespace si_bench {

constexpr size_t kHugePageBytes = size_t(2) << 20;

struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};

// Zeroed bytes; huge-page backed when `huge` and at least one huge page (else plain 4 KiB pages).
inline std::unique_ptr<void, FreeDeleter> host_alloc(size_t bytes, bool huge = true) {
    bytes = bytes ? bytes : 1;
    huge = huge && bytes >= kHugePageBytes;
    const size_t alignment = huge ? kHugePageBytes : 64;
    bytes = (bytes + alignment - 1) / alignment * alignment;
    void* data = std::aligned_alloc(alignment, bytes);
    if (!data) return nullptr;
    if (huge) madvise(data, bytes, MADV_HUGEPAGE);  // a hint: without THP the pages stay 4 KiB
    std::memset(data, 0, bytes);
    return std::unique_ptr<void, FreeDeleter>(data);
}

// A fixed-size array in host_alloc memory.
template <typename T>
class HostArray {
public:
    HostArray() = default;
    explicit HostArray(size_t count, bool huge_pages = true) : memory_(host_alloc(count * sizeof(T), huge_pages)), size_(count) {}
    T* data() { return static_cast<T*>(memory_.get()); }
    const T* data() const { return static_cast<const T*>(memory_.get()); }
    size_t size() const { return size_; }
    T& operator[](size_t i) { return data()[i]; }

private:
    std::unique_ptr<void, FreeDeleter> memory_;
    size_t size_ = 0;
};

}  // namespace si_bench
