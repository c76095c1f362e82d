// backend.cpp: the ref backend object, forwarding each Backend method to its op function.
#include "common/backend.h"
#include "ref/ref_ops.h"

namespace si::ref {
namespace {

class RefBackend final : public Backend {
public:
    const char* name() const override { return "ref"; }
    si_result embedding(const si_embedding_params& p) override { return ref::embedding(p); }
    si_result rms_norm(const si_rms_norm_params& p) override { return ref::rms_norm(p); }
    si_result matmul(const si_matmul_params& p) override { return ref::matmul(p); }
    si_result rope(const si_rope_params& p) override { return ref::rope(p); }
    si_result attention(const si_attention_params& p) override { return ref::attention(p); }
    si_result swiglu(const si_swiglu_params& p) override { return ref::swiglu(p); }
    si_result add(const si_add_params& p) override { return ref::add(p); }
    si_result softmax(const si_softmax_params& p) override { return ref::softmax(p); }
    si_result argmax(const si_argmax_params& p) override { return ref::argmax(p); }
    si_result qmatmul(const si_qmatmul_params& p) override { return ref::qmatmul(p); }
    si_result sparse_matmul(const si_sparse_matmul_params& p) override { return ref::sparse_matmul(p); }
    si_result kv_write(const si_kv_write_params& p) override { return ref::kv_write(p); }
    si_result paged_attention_workspace_size(const si_paged_attention_params& p, int64_t* out_bytes) override {
        return ref::paged_attention_workspace_size(p, out_bytes);
    }
    si_result paged_attention(const si_paged_attention_params& p) override { return ref::paged_attention(p); }
};

}  // namespace

si_result create_backend(const si_context_options& options, std::unique_ptr<Backend>* out) {
    *out = std::make_unique<RefBackend>();
    return SI_OK;
}

}  // namespace si::ref
