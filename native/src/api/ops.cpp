// ops.cpp: the op exports. Each validates its params once (shapes, strides, dtypes, null
// pointers) and dispatches to the context's backend, which trusts what it receives.
#include "common/backend.h"
#include "common/status.h"

namespace {

using si::fail;

bool is_float_weight(si_dtype d) { return d == SI_DTYPE_F32 || d == SI_DTYPE_F16 || d == SI_DTYPE_BF16; }

si_status check_context(const si_context* ctx, const void* params, const char* op) {
    if (!ctx) return fail(SI_ERR_INVALID_ARGUMENT, "%s: context is null", op);
    if (!params) return fail(SI_ERR_INVALID_ARGUMENT, "%s: params is null", op);
    return SI_OK;
}

si_status validate(const si_embedding_params& p) {
    if (!p.table || !p.ids || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_embedding: null pointer");
    if (!is_float_weight(p.table_dtype)) return fail(SI_ERR_UNSUPPORTED, "si_embedding: table dtype %d is not f32/f16/bf16", p.table_dtype);
    if (p.vocab < 1 || p.dim < 1 || p.n_tokens < 0) return fail(SI_ERR_INVALID_ARGUMENT, "si_embedding: bad shape vocab=%d dim=%d n_tokens=%d", p.vocab, p.dim, p.n_tokens);
    return SI_OK;
}

si_status validate(const si_rms_norm_params& p) {
    if (!p.x || !p.weight || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_rms_norm: null pointer");
    if (p.rows < 0 || p.dim < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_rms_norm: bad shape rows=%d dim=%d", p.rows, p.dim);
    if (p.x_stride < p.dim || p.out_stride < p.dim) return fail(SI_ERR_INVALID_ARGUMENT, "si_rms_norm: row stride smaller than dim %d", p.dim);
    if (!(p.eps >= 0.0f)) return fail(SI_ERR_INVALID_ARGUMENT, "si_rms_norm: eps must be >= 0");
    return SI_OK;
}

si_status validate(const si_matmul_params& p) {
    if (!p.x || !p.w || !p.y) return fail(SI_ERR_INVALID_ARGUMENT, "si_matmul: null pointer");
    if (!is_float_weight(p.w_dtype)) return fail(SI_ERR_UNSUPPORTED, "si_matmul: weight dtype %d is not f32/f16/bf16", p.w_dtype);
    if (p.m < 0 || p.n < 1 || p.k < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_matmul: bad shape m=%d n=%d k=%d", p.m, p.n, p.k);
    if (p.x_stride < p.k || p.y_stride < p.n) return fail(SI_ERR_INVALID_ARGUMENT, "si_matmul: row stride too small (x_stride=%lld k=%d, y_stride=%lld n=%d)", (long long)p.x_stride, p.k, (long long)p.y_stride, p.n);
    return SI_OK;
}

si_status validate(const si_rope_params& p) {
    if (!p.x || !p.positions) return fail(SI_ERR_INVALID_ARGUMENT, "si_rope: null pointer");
    if (p.n_tokens < 0 || p.n_heads < 1 || p.head_dim < 2) return fail(SI_ERR_INVALID_ARGUMENT, "si_rope: bad shape n_tokens=%d n_heads=%d head_dim=%d", p.n_tokens, p.n_heads, p.head_dim);
    if (p.rotary_dim < 2 || p.rotary_dim > p.head_dim || p.rotary_dim % 2) return fail(SI_ERR_INVALID_ARGUMENT, "si_rope: rotary_dim %d must be even and in [2, head_dim=%d]", p.rotary_dim, p.head_dim);
    if (p.token_stride < int64_t(p.n_heads) * p.head_dim) return fail(SI_ERR_INVALID_ARGUMENT, "si_rope: token_stride smaller than n_heads*head_dim");
    if (!(p.freq_base > 0.0f) || !(p.freq_scale > 0.0f)) return fail(SI_ERR_INVALID_ARGUMENT, "si_rope: freq_base and freq_scale must be > 0");
    if (p.layout != SI_ROPE_ADJACENT_PAIRS && p.layout != SI_ROPE_ROTATE_HALF) return fail(SI_ERR_INVALID_ARGUMENT, "si_rope: unknown layout %d", p.layout);
    return SI_OK;
}

si_status validate(const si_attention_params& p) {
    if (!p.q || !p.k_cache || !p.v_cache || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_attention: null pointer");
    if (p.n_heads < 1 || p.n_kv_heads < 1 || p.head_dim < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_attention: bad heads n_heads=%d n_kv_heads=%d head_dim=%d", p.n_heads, p.n_kv_heads, p.head_dim);
    if (p.n_heads % p.n_kv_heads) return fail(SI_ERR_INVALID_ARGUMENT, "si_attention: n_heads %d is not a multiple of n_kv_heads %d", p.n_heads, p.n_kv_heads);
    if (p.n_q < 1 || p.n_q > p.n_ctx) return fail(SI_ERR_INVALID_ARGUMENT, "si_attention: need 1 <= n_q (%d) <= n_ctx (%d)", p.n_q, p.n_ctx);
    const int64_t q_row = int64_t(p.n_heads) * p.head_dim, kv_row = int64_t(p.n_kv_heads) * p.head_dim;
    if (p.q_stride < q_row || p.out_stride < q_row || p.kv_stride < kv_row) return fail(SI_ERR_INVALID_ARGUMENT, "si_attention: token stride smaller than heads*head_dim");
    if (!(p.scale > 0.0f)) return fail(SI_ERR_INVALID_ARGUMENT, "si_attention: scale must be > 0");
    return SI_OK;
}

si_status validate(const si_swiglu_params& p) {
    if (!p.gate || !p.up || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_swiglu: null pointer");
    if (p.rows < 0 || p.n < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_swiglu: bad shape rows=%d n=%d", p.rows, p.n);
    if (p.gate_stride < p.n || p.up_stride < p.n || p.out_stride < p.n) return fail(SI_ERR_INVALID_ARGUMENT, "si_swiglu: row stride smaller than n");
    return SI_OK;
}

si_status validate(const si_add_params& p) {
    if (!p.a || !p.b || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_add: null pointer");
    if (p.n < 0) return fail(SI_ERR_INVALID_ARGUMENT, "si_add: n < 0");
    return SI_OK;
}

si_status validate(const si_softmax_params& p) {
    if (!p.x || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_softmax: null pointer");
    if (p.rows < 0 || p.n < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_softmax: bad shape rows=%d n=%d", p.rows, p.n);
    if (p.x_stride < p.n || p.out_stride < p.n) return fail(SI_ERR_INVALID_ARGUMENT, "si_softmax: row stride smaller than n");
    if (!(p.inv_temperature > 0.0f)) return fail(SI_ERR_INVALID_ARGUMENT, "si_softmax: inv_temperature must be > 0");
    return SI_OK;
}

si_status validate(const si_argmax_params& p) {
    if (!p.x || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_argmax: null pointer");
    if (p.rows < 0 || p.n < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_argmax: bad shape rows=%d n=%d", p.rows, p.n);
    if (p.x_stride < p.n) return fail(SI_ERR_INVALID_ARGUMENT, "si_argmax: row stride smaller than n");
    return SI_OK;
}

}  // namespace

// One export per op: validate, then run on the context's backend.
#define SI_DEFINE_OP(op)                                                           \
    extern "C" SI_API si_status si_##op(si_context* ctx, const si_##op##_params* p) { \
        SI_API_BEGIN                                                               \
        SI_RETURN_IF_ERROR(check_context(ctx, p, "si_" #op));                      \
        SI_RETURN_IF_ERROR(validate(*p));                                          \
        return ctx->backend->op(*p);                                               \
        SI_API_END                                                                 \
    }

SI_DEFINE_OP(embedding)
SI_DEFINE_OP(rms_norm)
SI_DEFINE_OP(matmul)
SI_DEFINE_OP(rope)
SI_DEFINE_OP(attention)
SI_DEFINE_OP(swiglu)
SI_DEFINE_OP(add)
SI_DEFINE_OP(softmax)
SI_DEFINE_OP(argmax)
