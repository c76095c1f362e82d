// ops.cpp: the op exports. Each validates its params once (shapes, strides, dtypes, null
// pointers) and dispatches to the context's backend, which trusts what it receives.
#include "common/backend.h"
#include "common/status.h"

#include <climits>

namespace {

using si::fail;

bool is_float_weight(si_dtype d) { return d == SI_DTYPE_F32 || d == SI_DTYPE_F16 || d == SI_DTYPE_BF16; }

si_result check_context(const si_context* ctx, const void* params, const char* op) {
    if (!ctx) return fail(SI_ERR_INVALID_ARGUMENT, "%s: context is null", op);
    if (!params) return fail(SI_ERR_INVALID_ARGUMENT, "%s: params is null", op);
    return SI_OK;
}

si_result validate(const si_embedding_params& p) {
    if (!p.table || !p.ids || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_embedding: null pointer");
    if (!is_float_weight(p.table_dtype)) return fail(SI_ERR_UNSUPPORTED, "si_embedding: table dtype %d is not f32/f16/bf16", p.table_dtype);
    if (p.vocab < 1 || p.dim < 1 || p.n_tokens < 0) return fail(SI_ERR_INVALID_ARGUMENT, "si_embedding: bad shape vocab=%d dim=%d n_tokens=%d", p.vocab, p.dim, p.n_tokens);
    return SI_OK;
}

si_result validate(const si_rms_norm_params& p) {
    if (!p.x || !p.weight || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_rms_norm: null pointer");
    if (p.rows < 0 || p.dim < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_rms_norm: bad shape rows=%d dim=%d", p.rows, p.dim);
    if (p.x_stride < p.dim || p.out_stride < p.dim) return fail(SI_ERR_INVALID_ARGUMENT, "si_rms_norm: row stride smaller than dim %d", p.dim);
    if (!(p.eps >= 0.0f)) return fail(SI_ERR_INVALID_ARGUMENT, "si_rms_norm: eps must be >= 0");
    return SI_OK;
}

si_result validate(const si_matmul_params& p) {
    if (!p.x || !p.w || !p.y) return fail(SI_ERR_INVALID_ARGUMENT, "si_matmul: null pointer");
    if (!is_float_weight(p.w_dtype)) return fail(SI_ERR_UNSUPPORTED, "si_matmul: weight dtype %d is not f32/f16/bf16", p.w_dtype);
    if (p.m < 0 || p.n < 1 || p.k < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_matmul: bad shape m=%d n=%d k=%d", p.m, p.n, p.k);
    if (p.x_stride < p.k || p.y_stride < p.n) return fail(SI_ERR_INVALID_ARGUMENT, "si_matmul: row stride too small (x_stride=%lld k=%d, y_stride=%lld n=%d)", (long long)p.x_stride, p.k, (long long)p.y_stride, p.n);
    return SI_OK;
}

si_result validate(const si_rope_params& p) {
    if (!p.x || !p.positions) return fail(SI_ERR_INVALID_ARGUMENT, "si_rope: null pointer");
    if (p.n_tokens < 0 || p.n_heads < 1 || p.head_dim < 2) return fail(SI_ERR_INVALID_ARGUMENT, "si_rope: bad shape n_tokens=%d n_heads=%d head_dim=%d", p.n_tokens, p.n_heads, p.head_dim);
    if (p.rotary_dim < 2 || p.rotary_dim > p.head_dim || p.rotary_dim % 2) return fail(SI_ERR_INVALID_ARGUMENT, "si_rope: rotary_dim %d must be even and in [2, head_dim=%d]", p.rotary_dim, p.head_dim);
    if (p.token_stride < int64_t(p.n_heads) * p.head_dim) return fail(SI_ERR_INVALID_ARGUMENT, "si_rope: token_stride smaller than n_heads*head_dim");
    if (!(p.freq_base > 0.0f) || !(p.freq_scale > 0.0f)) return fail(SI_ERR_INVALID_ARGUMENT, "si_rope: freq_base and freq_scale must be > 0");
    if (p.layout != SI_ROPE_ADJACENT_PAIRS && p.layout != SI_ROPE_ROTATE_HALF) return fail(SI_ERR_INVALID_ARGUMENT, "si_rope: unknown layout %d", p.layout);
    return SI_OK;
}

si_result validate(const si_attention_params& p) {
    if (!p.q || !p.k_cache || !p.v_cache || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_attention: null pointer");
    if (p.n_heads < 1 || p.n_kv_heads < 1 || p.head_dim < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_attention: bad heads n_heads=%d n_kv_heads=%d head_dim=%d", p.n_heads, p.n_kv_heads, p.head_dim);
    if (p.n_heads % p.n_kv_heads) return fail(SI_ERR_INVALID_ARGUMENT, "si_attention: n_heads %d is not a multiple of n_kv_heads %d", p.n_heads, p.n_kv_heads);
    if (p.n_q < 1 || p.n_q > p.n_ctx) return fail(SI_ERR_INVALID_ARGUMENT, "si_attention: need 1 <= n_q (%d) <= n_ctx (%d)", p.n_q, p.n_ctx);
    const int64_t q_row = int64_t(p.n_heads) * p.head_dim, kv_row = int64_t(p.n_kv_heads) * p.head_dim;
    if (p.q_stride < q_row || p.out_stride < q_row || p.kv_stride < kv_row) return fail(SI_ERR_INVALID_ARGUMENT, "si_attention: token stride smaller than heads*head_dim");
    if (!(p.scale > 0.0f)) return fail(SI_ERR_INVALID_ARGUMENT, "si_attention: scale must be > 0");
    return SI_OK;
}

si_result validate(const si_swiglu_params& p) {
    if (!p.gate || !p.up || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_swiglu: null pointer");
    if (p.rows < 0 || p.n < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_swiglu: bad shape rows=%d n=%d", p.rows, p.n);
    if (p.gate_stride < p.n || p.up_stride < p.n || p.out_stride < p.n) return fail(SI_ERR_INVALID_ARGUMENT, "si_swiglu: row stride smaller than n");
    return SI_OK;
}

si_result validate(const si_add_params& p) {
    if (!p.a || !p.b || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_add: null pointer");
    if (p.n < 0) return fail(SI_ERR_INVALID_ARGUMENT, "si_add: n < 0");
    return SI_OK;
}

si_result validate(const si_softmax_params& p) {
    if (!p.x || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_softmax: null pointer");
    if (p.rows < 0 || p.n < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_softmax: bad shape rows=%d n=%d", p.rows, p.n);
    if (p.x_stride < p.n || p.out_stride < p.n) return fail(SI_ERR_INVALID_ARGUMENT, "si_softmax: row stride smaller than n");
    if (!(p.inv_temperature > 0.0f)) return fail(SI_ERR_INVALID_ARGUMENT, "si_softmax: inv_temperature must be > 0");
    return SI_OK;
}

si_result validate(const si_argmax_params& p) {
    if (!p.x || !p.out) return fail(SI_ERR_INVALID_ARGUMENT, "si_argmax: null pointer");
    if (p.rows < 0 || p.n < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_argmax: bad shape rows=%d n=%d", p.rows, p.n);
    if (p.x_stride < p.n) return fail(SI_ERR_INVALID_ARGUMENT, "si_argmax: row stride smaller than n");
    return SI_OK;
}

si_result validate(const si_qmatmul_params& p) {
    if (!p.x || !p.q || !p.scales || !p.y) return fail(SI_ERR_INVALID_ARGUMENT, "si_qmatmul: null pointer");
    if (p.format != SI_WEIGHT_I8 && p.format != SI_WEIGHT_I4) return fail(SI_ERR_UNSUPPORTED, "si_qmatmul: unknown weight format %d", p.format);
    if (p.activations != SI_ACTIVATIONS_FLOAT && p.activations != SI_ACTIVATIONS_I8 && p.activations != SI_ACTIVATIONS_I8_BLOCK32)
        return fail(SI_ERR_UNSUPPORTED, "si_qmatmul: unknown activation mode %d", p.activations);
    if (p.activations == SI_ACTIVATIONS_I8 && p.format != SI_WEIGHT_I8) return fail(SI_ERR_UNSUPPORTED, "si_qmatmul: int8 activations need int8 weights (W8A8)");
    if (p.m < 0 || p.n < 1 || p.k < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_qmatmul: bad shape m=%d n=%d k=%d", p.m, p.n, p.k);
    if (p.group_size < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_qmatmul: group_size %d < 1", p.group_size);
    if (p.activations == SI_ACTIVATIONS_I8_BLOCK32 && p.group_size % 32 != 0 && p.group_size < p.k)
        return fail(SI_ERR_INVALID_ARGUMENT, "si_qmatmul: block-wise int8 activations need a group size that is a multiple of 32 or >= k (got %d for k %d)", p.group_size, p.k);
    if (p.x_stride < p.k || p.y_stride < p.n) return fail(SI_ERR_INVALID_ARGUMENT, "si_qmatmul: row stride too small");
    return SI_OK;
}

si_result validate(const si_sparse_matmul_params& p) {
    if (!p.x || !p.values || !p.index || !p.y) return fail(SI_ERR_INVALID_ARGUMENT, "si_sparse_matmul: null pointer");
    if (p.format != SI_SPARSE_2_4 && p.format != SI_SPARSE_BITMASK) return fail(SI_ERR_UNSUPPORTED, "si_sparse_matmul: unknown sparse format %d", p.format);
    if (p.format == SI_SPARSE_BITMASK && !p.row_offsets) return fail(SI_ERR_INVALID_ARGUMENT, "si_sparse_matmul: the bitmask format needs row_offsets");
    if (p.values_dtype != SI_DTYPE_F32 && p.values_dtype != SI_DTYPE_F16 && p.values_dtype != SI_DTYPE_BF16)
        return fail(SI_ERR_UNSUPPORTED, "si_sparse_matmul: values dtype %d is not f32/f16/bf16", p.values_dtype);
    if (p.m < 0 || p.n < 1 || p.k < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_sparse_matmul: bad shape m=%d n=%d k=%d", p.m, p.n, p.k);
    if (p.x_stride < p.k || p.y_stride < p.n) return fail(SI_ERR_INVALID_ARGUMENT, "si_sparse_matmul: row stride too small");
    if (p.reserved != 0) return fail(SI_ERR_INVALID_ARGUMENT, "si_sparse_matmul: reserved must be 0");
    return SI_OK;
}

si_result validate(const si_paged_kv& c, const char* op) {
    if (!c.k_pool || !c.v_pool) return fail(SI_ERR_INVALID_ARGUMENT, "%s: cache pools are null", op);
    if (c.num_blocks < 1 || c.block_size < 1 || c.n_kv_heads < 1 || c.head_dim < 1)
        return fail(SI_ERR_INVALID_ARGUMENT, "%s: bad cache shape num_blocks=%d block_size=%d n_kv_heads=%d head_dim=%d", op, c.num_blocks, c.block_size, c.n_kv_heads, c.head_dim);
    if (c.dtype != SI_DTYPE_F32 && c.dtype != SI_DTYPE_F16 && c.dtype != SI_DTYPE_BF16 && c.dtype != SI_DTYPE_I8)
        return fail(SI_ERR_UNSUPPORTED, "%s: cache dtype %d is not f32/f16/bf16/i8", op, c.dtype);
    if (c.dtype == SI_DTYPE_I8 && (!c.k_scale || !c.v_scale)) return fail(SI_ERR_INVALID_ARGUMENT, "%s: an i8 cache needs k_scale and v_scale", op);
    if (int64_t(c.num_blocks) * c.block_size > INT32_MAX) return fail(SI_ERR_INVALID_ARGUMENT, "%s: more than 2^31 cache slots", op);
    return SI_OK;
}

si_result validate(const si_kv_write_params& p) {
    SI_RETURN_IF_ERROR(validate(p.cache, "si_kv_write"));
    if (!p.k || !p.v || !p.slot_mapping) return fail(SI_ERR_INVALID_ARGUMENT, "si_kv_write: null pointer");
    if (p.n_tokens < 0) return fail(SI_ERR_INVALID_ARGUMENT, "si_kv_write: n_tokens < 0");
    const int64_t row = int64_t(p.cache.n_kv_heads) * p.cache.head_dim;
    if (p.k_stride < row || p.v_stride < row) return fail(SI_ERR_INVALID_ARGUMENT, "si_kv_write: token stride smaller than n_kv_heads*head_dim");
    return SI_OK;
}

si_result validate(const si_paged_attention_params& p) {
    SI_RETURN_IF_ERROR(validate(p.cache, "si_paged_attention"));
    if (!p.q || !p.out || !p.cu_seqlens_q || !p.context_lens || !p.block_tables) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: null pointer");
    if (p.n_seqs < 0 || p.max_blocks_per_seq < 1 || p.n_heads < 1) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: bad shape n_seqs=%d max_blocks_per_seq=%d n_heads=%d", p.n_seqs, p.max_blocks_per_seq, p.n_heads);
    if (p.n_heads % p.cache.n_kv_heads) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: n_heads %d is not a multiple of n_kv_heads %d", p.n_heads, p.cache.n_kv_heads);
    const int64_t row = int64_t(p.n_heads) * p.cache.head_dim;
    if (p.q_stride < row || p.out_stride < row) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: token stride smaller than n_heads*head_dim");
    if (!(p.scale > 0.0f)) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: scale must be > 0");
    if (p.variant.sliding_window < 0 || !(p.variant.logit_softcap >= 0.0f)) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: sliding_window and logit_softcap must be >= 0");
    if (p.max_context_len > int64_t(p.max_blocks_per_seq) * p.cache.block_size)
        return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: max_context_len %d exceeds what a block table of %d blocks covers (%lld tokens)", p.max_context_len, p.max_blocks_per_seq, (long long)p.max_blocks_per_seq * p.cache.block_size);
    if (p.workspace_bytes < 0 || (p.workspace_bytes > 0 && !p.workspace)) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: bad workspace");
    return SI_OK;
}

// Checks of the per-sequence arrays. They are host memory for the ref and cpu backends; on the
// cuda backend they are device memory, which the entry point cannot read (see sharpinfer.h).
si_result validate_sequences(const si_context& ctx, const si_paged_attention_params& p) {
    if (ctx.kind == SI_BACKEND_CUDA) return SI_OK;
    if (p.cu_seqlens_q[0] != 0) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: cu_seqlens_q[0] must be 0");
    int32_t max_q = 0, max_ctx = 0;
    for (int32_t s = 0; s < p.n_seqs; ++s) {
        const int32_t q_len = p.cu_seqlens_q[s + 1] - p.cu_seqlens_q[s];
        const int32_t ctx_len = p.context_lens[s];
        if (q_len < 0 || q_len > ctx_len) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: sequence %d has %d queries but a context of %d", s, q_len, ctx_len);
        if (ctx_len > int64_t(p.max_blocks_per_seq) * p.cache.block_size) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: sequence %d's context of %d tokens is longer than its block table covers", s, ctx_len);
        const int32_t used_blocks = (ctx_len + p.cache.block_size - 1) / p.cache.block_size;
        for (int32_t b = 0; b < used_blocks; ++b) {
            const int32_t block = p.block_tables[int64_t(s) * p.max_blocks_per_seq + b];
            if (block < 0 || block >= p.cache.num_blocks) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: sequence %d's block table entry %d is %d, outside the pool of %d blocks", s, b, block, p.cache.num_blocks);
        }
        if (q_len > max_q) max_q = q_len;
        if (ctx_len > max_ctx) max_ctx = ctx_len;
    }
    if (max_q != p.max_q_len || max_ctx != p.max_context_len) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: max_q_len/max_context_len (%d/%d) differ from the sequences' (%d/%d)", p.max_q_len, p.max_context_len, max_q, max_ctx);
    return SI_OK;
}

si_result validate_slots(const si_context& ctx, const si_kv_write_params& p) {
    if (ctx.kind == SI_BACKEND_CUDA) return SI_OK;
    const int64_t slots = int64_t(p.cache.num_blocks) * p.cache.block_size;
    for (int32_t t = 0; t < p.n_tokens; ++t)
        if (p.slot_mapping[t] >= slots) return fail(SI_ERR_INVALID_ARGUMENT, "si_kv_write: token %d's slot %d is outside the pool of %lld slots", t, p.slot_mapping[t], (long long)slots);
    return SI_OK;
}

}  // namespace

// One export per op: validate, then run on the context's backend.
#define SI_DEFINE_OP(op)                                                           \
    extern "C" SI_API si_result si_##op(si_context* ctx, const si_##op##_params* p) { \
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
SI_DEFINE_OP(qmatmul)
SI_DEFINE_OP(sparse_matmul)

extern "C" SI_API si_result si_kv_write(si_context* ctx, const si_kv_write_params* p) {
    SI_API_BEGIN
    SI_RETURN_IF_ERROR(check_context(ctx, p, "si_kv_write"));
    SI_RETURN_IF_ERROR(validate(*p));
    SI_RETURN_IF_ERROR(validate_slots(*ctx, *p));
    return ctx->backend->kv_write(*p);
    SI_API_END
}

extern "C" SI_API si_result si_paged_attention_workspace_size(si_context* ctx, const si_paged_attention_params* p, int64_t* out_bytes) {
    SI_API_BEGIN
    SI_RETURN_IF_ERROR(check_context(ctx, p, "si_paged_attention_workspace_size"));
    if (!out_bytes) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention_workspace_size: out_bytes is null");
    SI_RETURN_IF_ERROR(validate(*p));
    return ctx->backend->paged_attention_workspace_size(*p, out_bytes);
    SI_API_END
}

extern "C" SI_API si_result si_paged_attention(si_context* ctx, const si_paged_attention_params* p) {
    SI_API_BEGIN
    SI_RETURN_IF_ERROR(check_context(ctx, p, "si_paged_attention"));
    SI_RETURN_IF_ERROR(validate(*p));
    SI_RETURN_IF_ERROR(validate_sequences(*ctx, *p));
    int64_t needed = 0;
    SI_RETURN_IF_ERROR(ctx->backend->paged_attention_workspace_size(*p, &needed));
    if (p->workspace_bytes < needed) return fail(SI_ERR_INVALID_ARGUMENT, "si_paged_attention: workspace of %lld bytes is smaller than the %lld needed", (long long)p->workspace_bytes, (long long)needed);
    return ctx->backend->paged_attention(*p);
    SI_API_END
}
