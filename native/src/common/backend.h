// backend.h: the interface every backend (ref, cpu, cuda) implements, one method per op.
// The ABI entry points (api/ops.cpp) validate arguments once and then call these, so
// implementations may trust their inputs. Each method returns SI_OK, SI_ERR_UNSUPPORTED
// for a case the backend lacks (with a message naming it), or a device error.
#pragma once

#include <sharpinfer/sharpinfer.h>

#include "common/status.h"

#include <memory>

namespace si {

class Backend {
public:
    virtual ~Backend() = default;
    virtual const char* name() const = 0;
    virtual si_result synchronize() { return SI_OK; }

    virtual si_result embedding(const si_embedding_params& p) = 0;
    virtual si_result rms_norm(const si_rms_norm_params& p) = 0;
    virtual si_result matmul(const si_matmul_params& p) = 0;
    virtual si_result rope(const si_rope_params& p) = 0;
    virtual si_result attention(const si_attention_params& p) = 0;
    virtual si_result swiglu(const si_swiglu_params& p) = 0;
    virtual si_result add(const si_add_params& p) = 0;
    virtual si_result softmax(const si_softmax_params& p) = 0;
    virtual si_result argmax(const si_argmax_params& p) = 0;

    // Quantized matmul (int8 / int4 weights).
    virtual si_result qmatmul(const si_qmatmul_params& p) {
        return fail(SI_ERR_UNSUPPORTED, "si_qmatmul: not available in the %s backend", name());
    }

    // Sparse (pruned) matmul: 2:4 and bitmask formats.
    virtual si_result sparse_matmul(const si_sparse_matmul_params& p) {
        return fail(SI_ERR_UNSUPPORTED, "si_sparse_matmul: not available in the %s backend", name());
    }

    // Paged KV cache ops. A backend that lacks them reports SI_ERR_UNSUPPORTED by name.
    virtual si_result kv_write(const si_kv_write_params& p) {
        return fail(SI_ERR_UNSUPPORTED, "si_kv_write: not available in the %s backend", name());
    }
    virtual si_result paged_attention_workspace_size(const si_paged_attention_params& p, int64_t* out_bytes) {
        *out_bytes = 0;
        return SI_OK;
    }
    virtual si_result paged_attention(const si_paged_attention_params& p) {
        return fail(SI_ERR_UNSUPPORTED, "si_paged_attention: not available in the %s backend", name());
    }
};

// Factories, one per backend (defined in ref/backend.cpp, cpu/backend.cpp, cuda/backend.cu).
namespace ref { si_result create_backend(const si_context_options& options, std::unique_ptr<Backend>* out); }
namespace cpu { si_result create_backend(const si_context_options& options, std::unique_ptr<Backend>* out); }
namespace cuda { si_result create_backend(const si_context_options& options, std::unique_ptr<Backend>* out); }

}  // namespace si

struct si_context {
    si_backend kind;
    std::unique_ptr<si::Backend> backend;
};
