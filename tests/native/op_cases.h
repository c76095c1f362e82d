// op_cases.h: the one table of op cases that every backend runs against the ref oracle,
// and the harness that runs them. Used by the cpu tier (test_cpu_ops.cpp) and the cuda tier
// (tests/native/gpu), which differ only in the context they create and the MemoryAdapter
// that moves buffers into the backend's memory space.
//
// How a case runs (run_op_case):
//   1. make_buffers() builds the case's host buffers from a seed derived from its name:
//      inputs hold random data, with NaN poison wherever the op must not read (row-stride
//      gaps, KV-cache rows past n_ctx, a guard after every buffer); outputs hold a NaN
//      sentinel, with a per-element `checked` mask saying which elements the op writes.
//   2. The case runs on a fresh ref context over host memory: that is the expected result.
//   3. It runs on the target context: adapter.upload() returns one pointer per buffer
//      (in the target's memory space), run() fills the params struct with them and calls
//      the op, adapter.download() copies outputs back.
//   4. Checked output elements must match ref within tolerance(op, dtype); unchecked ones
//      (gaps, guards, the untouched part of a rope head) must keep their initial bits.
//
// Plugging in a device: implement MemoryAdapter (upload: allocate and copy every buffer
// to the device, return the device pointers; download: si_context_synchronize, copy each
// Output/InOut buffer back into buffers[i].data, free everything), then either call
// register_op_case_tests("CudaOps", make_cuda_context, make_device_adapter) from main()
// before RUN_ALL_TESTS(), or iterate op_cases() with run_op_case() yourself.
#pragma once

// <signal.h> (pulled in by GoogleTest) defines si_result as a macro for a siginfo_t field,
// which would rewrite the ABI's si_result type. Include it first, then drop the macro, so
// the ABI name works in every file that includes this header, in any include order.
#include <gtest/gtest.h>
#include <csignal>
#undef si_result

#include <sharpinfer/sharpinfer.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace si_test {

// ---- buffers and memory adapters ---------------------------------------------------------

enum class Role {
    Input,  // read by the op; must come back unchanged
    Output, // written by the op; compared with ref where checked
    InOut   // both (in-place ops such as rope, or an output aliasing an input)
};

// f32 activations and weights, f16/bf16 weights (bit patterns), i32 ids/positions/indices.
using HostData = std::variant<std::vector<float>, std::vector<uint16_t>, std::vector<int32_t>>;

struct Buffer {
    std::string name;
    Role role = Role::Input;
    HostData data;
    // Outputs only, one entry per element: 1 = written by the op and compared with ref,
    // 0 = must keep its initial bits. Empty = every element is checked.
    std::vector<uint8_t> checked;

    size_t count() const;
    size_t element_size() const;
    size_t size_bytes() const { return count() * element_size(); }
    void* host_data();
    const void* host_data() const;
    bool is_output() const { return role != Role::Input; }
};

// Moves a case's buffers into the memory space of a context's backend and back.
class MemoryAdapter {
public:
    virtual ~MemoryAdapter() = default;
    virtual const char* name() const = 0;
    // Returns one pointer per buffer, in order, to a copy of its contents that `context`'s
    // backend can use. Every buffer is non-empty (guards), so no pointer is null.
    virtual std::vector<void*> upload(si_context* context, std::vector<Buffer>& buffers) = 0;
    // Called once after every upload, even when the op failed: waits for the context,
    // copies every Output/InOut buffer back into buffers[i].data, releases what upload
    // allocated. Returns SI_OK or the first failing status.
    virtual si_result download(si_context* context, std::vector<Buffer>& buffers, const std::vector<void*>& pointers) = 0;
};

// For host backends (ref, cpu): the op reads and writes the host vectors directly.
class HostMemoryAdapter final : public MemoryAdapter {
public:
    const char* name() const override { return "host"; }
    std::vector<void*> upload(si_context* context, std::vector<Buffer>& buffers) override;
    si_result download(si_context* context, std::vector<Buffer>& buffers, const std::vector<void*>& pointers) override;
};

// ---- tolerances ----------------------------------------------------------------------------

// An element passes when |got - want| <= abs + rel * |want| (both finite). {0, 0} = exact.
struct Tolerance {
    double abs;
    double rel;
};

// The one tolerance table, by op and case dtype (the weight/table dtype; f32 otherwise).
// Returns false when the table has no row for the pair (the harness then fails the case).
bool find_tolerance(const std::string& op, si_dtype dtype, Tolerance* out);

// ---- cases ---------------------------------------------------------------------------------

struct OpCase {
    std::string op;    // "matmul", the si_<op> it calls
    std::string name;  // unique, [A-Za-z0-9_] only: "matmul_m17_n97_k65_f16_xs5_bias"
    si_dtype dtype = SI_DTYPE_F32;  // selects the tolerance row
    // Deterministic: the same buffers on every call (seeded by name).
    std::function<std::vector<Buffer>()> make_buffers;
    // Fills the params struct from pointers[i] (buffer i, as upload returned them) and calls
    // the op on the context. Returns the op's status.
    std::function<si_result(si_context*, const std::vector<void*>& pointers)> run;
};

// Every case, built once (cheap: buffers are made when a case runs).
const std::vector<OpCase>& op_cases();

enum class Outcome { Passed, Failed, Unsupported };

struct CaseResult {
    Outcome outcome = Outcome::Failed;
    std::string message;  // why it failed or is unsupported; "" when passed
    // Largest error / allowed error over the toleranced elements (0 when exact): how much
    // headroom the backend has. Printed per test when SI_TEST_PRINT_ERRORS is set.
    double worst_error_ratio = 0.0;
};

// Runs one case on `target` (through `adapter`) and on a ref context, and compares.
// A target returning SI_ERR_UNSUPPORTED gives Outcome::Unsupported, never Passed.
CaseResult run_op_case(const OpCase& op_case, si_context* target, MemoryAdapter& adapter);

// Runs every case whose name contains `filter` ("" = all).
std::vector<std::pair<const OpCase*, CaseResult>> run_op_case_grid(si_context* target, MemoryAdapter& adapter,
                                                                   const std::string& filter = "");

// ---- GoogleTest registration -------------------------------------------------------------

using ContextFactory = std::function<si_result(si_context** out_context)>;
using AdapterFactory = std::function<std::unique_ptr<MemoryAdapter>()>;
using CaseFilter = std::function<bool(const OpCase&)>;

// Registers one test per case, named <suite>.<case name>; each creates a context with
// make_context, runs the case, destroys the context and checks that the live-context
// count is back where it started. Unsupported cases are reported as skipped. Call from
// main() after testing::InitGoogleTest and before RUN_ALL_TESTS.
void register_op_case_tests(const std::string& suite, ContextFactory make_context, AdapterFactory make_adapter,
                            CaseFilter include = nullptr);

// The calling thread's si_last_error() text.
std::string last_error_text();

}  // namespace si_test
