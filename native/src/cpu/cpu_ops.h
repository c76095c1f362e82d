// cpu_ops.h: the fast cpu backend's ops. Each op file provides inner loops for every ISA
// level (scalar, AVX2, AVX-512) and fills its slots of the Kernels table once, when the
// backend is created; the op function then splits the work over the thread pool and calls
// the chosen loop. Every output element is computed by exactly one loop invocation whose
// arithmetic does not depend on the split, so results are identical for any batch size
// and thread count (batch invariance).
#pragma once

#include <sharpinfer/sharpinfer.h>

#include "cpu/cpu_features.h"
#include "cpu/thread_pool.h"

#include <cstdint>

namespace si::cpu {

struct Kernels {
    Isa isa = Isa::Scalar;
    // embedding: out[0, n) = f32(src[0, n)) for a row stored in dtype.
    void (*convert_row)(const void* src, si_dtype dtype, float* out, int64_t n) = nullptr;
    void (*rms_norm_row)(const float* x, const float* weight, float* out, int64_t dim, float eps) = nullptr;
    // matmul: y[rows [row_begin, row_end), channels [col_begin, col_end)].
    void (*matmul_tile)(const si_matmul_params& p, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) = nullptr;
    // attention: query token i, query head h; scratch holds >= n_ctx floats.
    void (*attention_head)(const si_attention_params& p, int32_t i, int32_t h, float* scratch) = nullptr;
    void (*swiglu_span)(const float* gate, const float* up, float* out, int64_t n) = nullptr;
    void (*add_span)(const float* a, const float* b, float* out, int64_t n) = nullptr;
    void (*softmax_row)(const float* x, float* out, int64_t n, float inv_temperature) = nullptr;
    int32_t (*argmax_row)(const float* x, int64_t n) = nullptr;
};

// Fill the op's Kernels slots for an ISA level this machine supports.
void select_embedding(Isa isa, Kernels* k);
void select_rms_norm(Isa isa, Kernels* k);
void select_matmul(Isa isa, Kernels* k);
void select_attention(Isa isa, Kernels* k);
void select_swiglu(Isa isa, Kernels* k);
void select_add(Isa isa, Kernels* k);
void select_softmax(Isa isa, Kernels* k);
void select_argmax(Isa isa, Kernels* k);

// What an op needs to run: the pool and the chosen loops.
struct Env {
    ThreadPool& pool;
    const Kernels& kernels;
};

si_result embedding(const Env& env, const si_embedding_params& p);
si_result rms_norm(const Env& env, const si_rms_norm_params& p);
si_result matmul(const Env& env, const si_matmul_params& p);
si_result rope(const Env& env, const si_rope_params& p);
si_result attention(const Env& env, const si_attention_params& p);
si_result swiglu(const Env& env, const si_swiglu_params& p);
si_result add(const Env& env, const si_add_params& p);
si_result softmax(const Env& env, const si_softmax_params& p);
si_result argmax(const Env& env, const si_argmax_params& p);
// qmatmul picks its loops from env.kernels.isa on each call (and whether the CPU has
// AVX512-VNNI), like the paged KV ops below.
si_result qmatmul(const Env& env, const si_qmatmul_params& p);
// sparse_matmul likewise picks its loops from env.kernels.isa (and AVX512-VBMI2) per call.
si_result sparse_matmul(const Env& env, const si_sparse_matmul_params& p);
// The paged KV ops pick their loops from env.kernels.isa on each call (a switch, no table
// slots): their inner loops are templates private to their files.
si_result kv_write(const Env& env, const si_kv_write_params& p);
si_result paged_attention_workspace_size(const Env& env, const si_paged_attention_params& p, int64_t* out_bytes);
si_result paged_attention(const Env& env, const si_paged_attention_params& p);

}  // namespace si::cpu
