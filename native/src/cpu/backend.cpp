// backend.cpp: the cpu backend object. Creation picks the ISA level once (the best the
// machine has, or a lower one forced with SI_CPU_ISA=scalar|avx2|avx512 for testing every
// path), fills the kernel table and starts the thread pool.
#include "common/backend.h"
#include "common/status.h"
#include "cpu/cpu_ops.h"

#include <cstdlib>
#include <string>

namespace si::cpu {
namespace {

class CpuBackend final : public Backend {
public:
    CpuBackend(int num_threads, const Kernels& kernels) : pool_(num_threads), kernels_(kernels) {
        name_ = std::string("cpu-") + isa_name(kernels_.isa);
    }
    const char* name() const override { return name_.c_str(); }
    si_result embedding(const si_embedding_params& p) override { return cpu::embedding(env(), p); }
    si_result rms_norm(const si_rms_norm_params& p) override { return cpu::rms_norm(env(), p); }
    si_result matmul(const si_matmul_params& p) override { return cpu::matmul(env(), p); }
    si_result rope(const si_rope_params& p) override { return cpu::rope(env(), p); }
    si_result attention(const si_attention_params& p) override { return cpu::attention(env(), p); }
    si_result swiglu(const si_swiglu_params& p) override { return cpu::swiglu(env(), p); }
    si_result add(const si_add_params& p) override { return cpu::add(env(), p); }
    si_result softmax(const si_softmax_params& p) override { return cpu::softmax(env(), p); }
    si_result argmax(const si_argmax_params& p) override { return cpu::argmax(env(), p); }
    si_result qmatmul(const si_qmatmul_params& p) override { return cpu::qmatmul(env(), p); }
    si_result sparse_matmul(const si_sparse_matmul_params& p) override { return cpu::sparse_matmul(env(), p); }
    si_result kv_write(const si_kv_write_params& p) override { return cpu::kv_write(env(), p); }
    si_result paged_attention_workspace_size(const si_paged_attention_params& p, int64_t* out_bytes) override {
        return cpu::paged_attention_workspace_size(env(), p, out_bytes);
    }
    si_result paged_attention(const si_paged_attention_params& p) override { return cpu::paged_attention(env(), p); }

private:
    Env env() { return Env{pool_, kernels_}; }
    ThreadPool pool_;
    Kernels kernels_;
    std::string name_;
};

}  // namespace

si_result create_backend(const si_context_options& options, std::unique_ptr<Backend>* out) {
    Isa isa = detect_isa();
    if (const char* forced = std::getenv("SI_CPU_ISA"); forced && *forced) {
        Isa requested;
        if (!parse_isa(forced, &requested))
            return fail(SI_ERR_INVALID_ARGUMENT, "SI_CPU_ISA='%s' is not one of scalar, avx2, avx512", forced);
        // Only ever lower the level: running instructions the CPU lacks would crash.
        if (requested < isa) isa = requested;
    }
    Kernels kernels;
    kernels.isa = isa;
    select_embedding(isa, &kernels);
    select_rms_norm(isa, &kernels);
    select_matmul(isa, &kernels);
    select_attention(isa, &kernels);
    select_swiglu(isa, &kernels);
    select_add(isa, &kernels);
    select_softmax(isa, &kernels);
    select_argmax(isa, &kernels);
    *out = std::make_unique<CpuBackend>(options.num_threads, kernels);
    return SI_OK;
}

}  // namespace si::cpu
