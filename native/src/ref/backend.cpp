// backend.cpp: the ref backend object, forwarding each Backend method to its op function.
#include "common/backend.h"
#include "ref/ref_ops.h"

namespace si::ref {
namespace {

class RefBackend final : public Backend {
public:
    const char* name() const override { return "ref"; }
    si_status embedding(const si_embedding_params& p) override { return ref::embedding(p); }
    si_status rms_norm(const si_rms_norm_params& p) override { return ref::rms_norm(p); }
    si_status matmul(const si_matmul_params& p) override { return ref::matmul(p); }
    si_status rope(const si_rope_params& p) override { return ref::rope(p); }
    si_status attention(const si_attention_params& p) override { return ref::attention(p); }
    si_status swiglu(const si_swiglu_params& p) override { return ref::swiglu(p); }
    si_status add(const si_add_params& p) override { return ref::add(p); }
    si_status softmax(const si_softmax_params& p) override { return ref::softmax(p); }
    si_status argmax(const si_argmax_params& p) override { return ref::argmax(p); }
    si_status qmatmul(const si_qmatmul_params& p) override { return ref::qmatmul(p); }
    si_status kv_write(const si_kv_write_params& p) override { return ref::kv_write(p); }
    si_status paged_attention_workspace_size(const si_paged_attention_params& p, int64_t* out_bytes) override {
        return ref::paged_attention_workspace_size(p, out_bytes);
    }
    si_status paged_attention(const si_paged_attention_params& p) override { return ref::paged_attention(p); }
};

}  // namespace

si_status create_backend(const si_context_options& options, std::unique_ptr<Backend>* out) {
    *out = std::make_unique<RefBackend>();
    return SI_OK;
}

}  // namespace si::ref
