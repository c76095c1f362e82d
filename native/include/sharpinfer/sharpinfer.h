/*
 * sharpinfer.h: the C ABI of libsharpinfer, the one contract between native kernels and
 * the managed runtime.
 *
 * Conventions (every export follows them):
 *  - Every export returns an si_result (0 = SI_OK). On failure, si_last_error() gives a
 *    human-readable message for the calling thread. Nothing here aborts, exits or throws
 *    across the boundary.
 *  - Opaque handles come in create/destroy pairs. Destroy accepts NULL.
 *  - The caller allocates every output and workspace. Pointers given to an op live in the
 *    context's memory space: host memory for the ref and cpu backends, device memory for
 *    the cuda backend (allocated by the caller through the CUDA driver API).
 *  - Only fixed-width types cross (pointers are 64-bit); structs are ordered by field size
 *    and their sizes are static_asserted in native/src/api/abi_layout.cpp and mirrored in
 *    interop/NativeMethods.cs.
 *  - Inputs are validated once at the entry point; kernels trust them. Shape errors return
 *    SI_ERR_INVALID_ARGUMENT, a dtype or size a backend lacks returns SI_ERR_UNSUPPORTED.
 *  - Thread safety: a context may be used by one thread at a time; different contexts are
 *    independent. Ops on a cuda context are asynchronous on its stream: call
 *    si_context_synchronize before reading results.
 *  - Matrices are row-major. "stride" fields count elements (not bytes) between rows.
 */
#ifndef SHARPINFER_H
#define SHARPINFER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SI_API __declspec(dllexport)
#else
#define SI_API __attribute__((visibility("default")))
#endif

/* Bumped on any change to a signature, struct layout or enum value below. */
#define SI_ABI_VERSION 3

/* (Not "si_status": glibc's <signal.h> defines si_status as a macro.) */
typedef int32_t si_result;
enum {
    SI_OK = 0,
    SI_ERR_INVALID_ARGUMENT = 1, /* null pointer, bad shape, out-of-range value */
    SI_ERR_UNSUPPORTED = 2,      /* valid request this backend cannot run (dtype, head dim) */
    SI_ERR_OUT_OF_MEMORY = 3,    /* host or device allocation failed */
    SI_ERR_NO_DEVICE = 4,        /* cuda backend: no usable CUDA device or driver */
    SI_ERR_DEVICE = 5,           /* cuda backend: a CUDA call failed */
    SI_ERR_NOT_COMPILED = 6,     /* backend not compiled into this build of the library */
    SI_ERR_INTERNAL = 7          /* a bug: please report with the message */
};

typedef int32_t si_dtype;
enum {
    SI_DTYPE_F32 = 0,
    SI_DTYPE_F16 = 1,  /* IEEE binary16 */
    SI_DTYPE_BF16 = 2, /* bfloat16: the top 16 bits of an f32 */
    SI_DTYPE_I32 = 3,
    SI_DTYPE_I8 = 4
};

typedef int32_t si_backend;
enum {
    SI_BACKEND_REF = 0, /* naive scalar oracle, single-threaded */
    SI_BACKEND_CPU = 1, /* SIMD (AVX-512 or AVX2 chosen at run time) and threads */
    SI_BACKEND_CUDA = 2 /* NVIDIA GPUs, sm_80 and newer */
};

typedef int32_t si_rope_layout;
enum {
    /* Rotate (x[2i], x[2i+1]): Meta/llama2.c order, as GGUF stores q/k. */
    SI_ROPE_ADJACENT_PAIRS = 0,
    /* Rotate (x[i], x[i + rotary_dim/2]): Hugging Face rotate_half order. */
    SI_ROPE_ROTATE_HALF = 1
};

/* ---------------------------------------------------------------------------------------
 * Library
 * ------------------------------------------------------------------------------------- */

/* Writes SI_ABI_VERSION of the loaded library. Managed code refuses a mismatch. */
SI_API si_result si_abi_version(int32_t* out_version);

/* Message for the last failed call on this thread ("" if none). The pointer stays valid
 * until the next si_* call on the same thread. */
SI_API si_result si_last_error(const char** out_message);

/* Writes 1 if the backend is compiled into this library, else 0. (Compiled is not usable:
 * the cuda backend also needs a device; si_context_create reports SI_ERR_NO_DEVICE.) */
SI_API si_result si_backend_compiled(si_backend backend, int32_t* out_compiled);

/* Static description of this build: version, compiled backends, CPU features detected.
 * The string is owned by the library and lives as long as it is loaded. */
SI_API si_result si_build_info(const char** out_info);

/* ---------------------------------------------------------------------------------------
 * Context: a backend instance (thread pool for cpu, device + stream for cuda).
 * ------------------------------------------------------------------------------------- */

typedef struct si_context si_context;

typedef struct si_context_options {
    si_backend backend;
    int32_t num_threads;    /* cpu: worker threads, 0 = all hardware threads; else ignored */
    int32_t device_ordinal; /* cuda: device index; else ignored */
    int32_t reserved;       /* must be 0 */
} si_context_options;

/* Returns SI_ERR_NOT_COMPILED, SI_ERR_NO_DEVICE (cuda without device/driver),
 * SI_ERR_OUT_OF_MEMORY or SI_ERR_INVALID_ARGUMENT. */
SI_API si_result si_context_create(const si_context_options* options, si_context** out_context);
SI_API si_result si_context_destroy(si_context* context);
/* Waits for all work queued on the context (no-op on host backends). */
SI_API si_result si_context_synchronize(si_context* context);
/* Number of live contexts in this process: tests assert it returns to zero. */
SI_API si_result si_live_context_count(int32_t* out_count);

/* ---------------------------------------------------------------------------------------
 * Ops for a Llama-family forward pass. Activations are f32; weights may be f32/f16/bf16.
 * ------------------------------------------------------------------------------------- */

/* out[t, :] = f32(table[ids[t], :]). ids must lie in [0, vocab): ref/cpu return
 * SI_ERR_INVALID_ARGUMENT otherwise; cuda writes zeros for such rows. */
typedef struct si_embedding_params {
    const void* table;   /* [vocab, dim] in table_dtype */
    const int32_t* ids;  /* [n_tokens] */
    float* out;          /* [n_tokens, dim], row stride dim */
    si_dtype table_dtype; /* F32, F16, BF16 */
    int32_t vocab;
    int32_t dim;
    int32_t n_tokens;
} si_embedding_params;
SI_API si_result si_embedding(si_context* ctx, const si_embedding_params* p);

/* out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight. out may alias x. */
typedef struct si_rms_norm_params {
    const float* x;      /* [rows, dim], row stride x_stride */
    const float* weight; /* [dim] */
    float* out;          /* [rows, dim], row stride out_stride */
    int64_t x_stride;
    int64_t out_stride;
    int32_t rows;
    int32_t dim;
    float eps;
    int32_t reserved;
} si_rms_norm_params;
SI_API si_result si_rms_norm(si_context* ctx, const si_rms_norm_params* p);

/* y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]). w is stored one output channel per row,
 * as GGUF and Hugging Face store linear weights. y must not alias x. */
typedef struct si_matmul_params {
    const float* x;    /* [m, k], row stride x_stride */
    const void* w;     /* [n, k] in w_dtype, row stride k */
    const float* bias; /* [n] or NULL */
    float* y;          /* [m, n], row stride y_stride */
    int64_t x_stride;
    int64_t y_stride;
    int32_t m;
    int32_t n;
    int32_t k;
    si_dtype w_dtype; /* F32, F16, BF16 */
} si_matmul_params;
SI_API si_result si_matmul(si_context* ctx, const si_matmul_params* p);

/* Rotary position embedding in place on the first rotary_dim elements of every head.
 * Pair i (0 <= i < rotary_dim/2) is rotated by angle
 *   positions[t] * freq_scale * freq_base^(-2i / rotary_dim).
 * The layout says which two elements form pair i (see si_rope_layout). */
typedef struct si_rope_params {
    float* x;                 /* [n_tokens, n_heads, head_dim], token stride token_stride */
    const int32_t* positions; /* [n_tokens], >= 0 */
    int64_t token_stride;     /* elements between consecutive tokens (>= n_heads*head_dim) */
    int32_t n_tokens;
    int32_t n_heads;
    int32_t head_dim;
    int32_t rotary_dim; /* even, <= head_dim */
    float freq_base;
    float freq_scale;
    si_rope_layout layout;
    int32_t reserved;
} si_rope_params;
SI_API si_result si_rope(si_context* ctx, const si_rope_params* p);

/* Causal attention of n_q new query tokens of one sequence over its contiguous KV cache of
 * n_ctx tokens (the n_q new tokens are the last n_q of the cache). Query i sits at position
 * n_ctx - n_q + i and attends to keys 0..that position. Grouped-query: query head h reads
 * KV head h / (n_heads / n_kv_heads). out = softmax(scale * q k^T) v, accumulated in f32.
 * Cache rows at positions >= n_ctx are never read. */
typedef struct si_attention_params {
    const float* q;       /* [n_q, n_heads, head_dim], token stride q_stride */
    const float* k_cache; /* [>= n_ctx, n_kv_heads, head_dim], token stride kv_stride */
    const float* v_cache; /* [>= n_ctx, n_kv_heads, head_dim], token stride kv_stride */
    float* out;           /* [n_q, n_heads, head_dim], token stride out_stride */
    int64_t q_stride;
    int64_t kv_stride;
    int64_t out_stride;
    int32_t n_q;   /* 1 <= n_q <= n_ctx */
    int32_t n_ctx;
    int32_t n_heads; /* multiple of n_kv_heads */
    int32_t n_kv_heads;
    int32_t head_dim;
    float scale; /* usually 1/sqrt(head_dim) */
} si_attention_params;
SI_API si_result si_attention(si_context* ctx, const si_attention_params* p);

/* out = silu(gate) * up, elementwise, silu(g) = g / (1 + exp(-g)). out may alias either. */
typedef struct si_swiglu_params {
    const float* gate; /* [rows, n], row stride gate_stride */
    const float* up;   /* [rows, n], row stride up_stride */
    float* out;        /* [rows, n], row stride out_stride */
    int64_t gate_stride;
    int64_t up_stride;
    int64_t out_stride;
    int32_t rows;
    int32_t n;
} si_swiglu_params;
SI_API si_result si_swiglu(si_context* ctx, const si_swiglu_params* p);

/* out = a + b elementwise over n contiguous elements (the residual add). out may alias. */
typedef struct si_add_params {
    const float* a;
    const float* b;
    float* out;
    int64_t n;
} si_add_params;
SI_API si_result si_add(si_context* ctx, const si_add_params* p);

/* out[r, :] = softmax(x[r, :] * inv_temperature), max-subtracted, in f32. out may alias x. */
typedef struct si_softmax_params {
    const float* x; /* [rows, n], row stride x_stride */
    float* out;     /* [rows, n], row stride out_stride */
    int64_t x_stride;
    int64_t out_stride;
    int32_t rows;
    int32_t n;
    float inv_temperature; /* > 0 */
    int32_t reserved;
} si_softmax_params;
SI_API si_result si_softmax(si_context* ctx, const si_softmax_params* p);

/* out[r] = index of the largest x[r, :]; ties go to the lowest index; NaN never wins
 * unless the whole row is NaN (then 0). */
typedef struct si_argmax_params {
    const float* x; /* [rows, n], row stride x_stride */
    int32_t* out;   /* [rows] */
    int64_t x_stride;
    int32_t rows;
    int32_t n;
} si_argmax_params;
SI_API si_result si_argmax(si_context* ctx, const si_argmax_params* p);

/* ---------------------------------------------------------------------------------------
 * Paged KV cache and the attention kernels that read it (prefill and decode).
 *
 * Layout of one layer's cache (the pools are shared by every sequence):
 *   k_pool, v_pool  [num_blocks, block_size, n_kv_heads, head_dim] in cache dtype
 *   k_scale, v_scale [num_blocks, block_size, n_kv_heads] f32, only for SI_DTYPE_I8
 *                    (symmetric per-(token, head) scale: value = int8 * scale)
 * The token at position p of a sequence lives in block block_table[p / block_size], slot
 * p % block_size. A slot index ("slot mapping") is block * block_size + slot.
 * ------------------------------------------------------------------------------------- */

typedef struct si_paged_kv {
    void* k_pool;   /* [num_blocks, block_size, n_kv_heads, head_dim] */
    void* v_pool;   /* [num_blocks, block_size, n_kv_heads, head_dim] */
    float* k_scale; /* [num_blocks, block_size, n_kv_heads] (I8 only, else NULL) */
    float* v_scale; /* [num_blocks, block_size, n_kv_heads] (I8 only, else NULL) */
    int32_t num_blocks;
    int32_t block_size; /* 8, 16 or 32 (cpu/ref: any >= 1) */
    int32_t n_kv_heads;
    int32_t head_dim;
    si_dtype dtype;     /* F32, F16, BF16 or I8 */
    int32_t reserved;
} si_paged_kv;

/* Writes n_tokens new K/V rows into their slots, converting (and for I8 quantizing) to the
 * cache dtype. A negative slot skips the token (padding). */
typedef struct si_kv_write_params {
    const float* k;              /* [n_tokens, n_kv_heads, head_dim], token stride k_stride */
    const float* v;              /* [n_tokens, n_kv_heads, head_dim], token stride v_stride */
    const int32_t* slot_mapping; /* [n_tokens], in [0, num_blocks*block_size) or < 0 */
    si_paged_kv cache;
    int64_t k_stride;
    int64_t v_stride;
    int32_t n_tokens;
    int32_t reserved;
} si_kv_write_params;
SI_API si_result si_kv_write(si_context* ctx, const si_kv_write_params* p);

/* Attention variants. Each is an independent, composable rule applied to the logits:
 * causal masking always applies; the others are off at 0. */
typedef struct si_attention_variant {
    int32_t sliding_window; /* > 0: a query at position p sees keys in (p - window, p] */
    float logit_softcap;    /* > 0: logits become softcap * tanh(logits / softcap) */
} si_attention_variant;

/* Causal attention of a batch of sequences over the paged cache (whose new K/V were already
 * written with si_kv_write). Sequence s owns queries [cu_seqlens_q[s], cu_seqlens_q[s+1]);
 * it has context_lens[s] tokens in the cache, and its queries are the last ones, so query i
 * sits at position context_lens[s] - q_len + i. Decode rows are sequences with q_len = 1;
 * a mixed batch holds both. Query head h reads KV head h / (n_heads / n_kv_heads).
 * The backend picks its kernel (tiled FlashAttention for long q, split-K paged decode for
 * short q over long contexts); workspace_bytes must be at least what
 * si_paged_attention_workspace_size reports for the same params (0 = none needed).
 * ref/cpu check every sequence (q_len <= context_len, the table covers the context, block ids
 * inside the pool) and return SI_ERR_INVALID_ARGUMENT naming the first bad one; on cuda those
 * arrays are device memory and the caller (the block manager) guarantees them. */
typedef struct si_paged_attention_params {
    const float* q;              /* [total_q, n_heads, head_dim], token stride q_stride */
    float* out;                  /* [total_q, n_heads, head_dim], token stride out_stride */
    const int32_t* cu_seqlens_q; /* [n_seqs + 1], cu_seqlens_q[0] = 0 */
    const int32_t* context_lens; /* [n_seqs] */
    const int32_t* block_tables; /* [n_seqs, max_blocks_per_seq] */
    void* workspace;             /* caller-owned scratch, workspace_bytes long */
    si_paged_kv cache;
    int64_t q_stride;
    int64_t out_stride;
    int64_t workspace_bytes;
    int32_t n_seqs;
    int32_t max_blocks_per_seq;
    int32_t n_heads;
    int32_t max_q_len;           /* max over s of q_len (a planning hint, must be exact) */
    int32_t max_context_len;     /* max over s of context_lens[s] (must be exact) */
    float scale;
    si_attention_variant variant;
} si_paged_attention_params;
SI_API si_result si_paged_attention_workspace_size(si_context* ctx, const si_paged_attention_params* p,
                                                   int64_t* out_bytes);
SI_API si_result si_paged_attention(si_context* ctx, const si_paged_attention_params* p);

/* ---------------------------------------------------------------------------------------
 * Quantized matmul. Weights are stored per output channel (row) in groups of group_size
 * consecutive k; the last group of a row may be shorter (ragged) when k % group_size != 0.
 * Every GGUF quant type we load maps onto these exactly (Q8_0 -> I8 g32; Q4_0/Q4_1/Q4_K ->
 * I4 g32 with offsets; Q6_K -> I8 g16), as do AWQ/GPTQ int4 checkpoints.
 * ------------------------------------------------------------------------------------- */

typedef int32_t si_weight_format;
enum {
    /* int8, symmetric: w = q * scale. q: [n, k] int8, row stride k. */
    SI_WEIGHT_I8 = 0,
    /* uint4, affine: w = q * scale + offset, q in [0, 15]. Packed two per byte along k:
     * byte j of a row holds k = 2j in the low nibble and k = 2j + 1 in the high nibble;
     * row stride (k + 1) / 2 bytes. offsets = NULL means symmetric: offset = -8 * scale,
     * i.e. w = (q - 8) * scale (GGUF Q4_0, symmetric GPTQ), with 4 bytes less per group. */
    SI_WEIGHT_I4 = 1
};

typedef int32_t si_activation_mode;
enum {
    SI_ACTIVATIONS_FLOAT = 0, /* W8A16 / W4A16: x stays floating point */
    SI_ACTIVATIONS_I8 = 1,    /* W8A8: each row of x quantized to int8 on the fly (symmetric,
                                 scale = max|x|/127), integer dot products per group;
                                 SI_WEIGHT_I8 only */
    /* W8A8 / W4A8 with block-wise activations, as llama.cpp computes Q8_0/Q4_0 on CPUs: each
     * block of 32 consecutive k of a row of x is quantized to int8 with its own scale
     * (max|x| / 127 over the block); per block b, with its integer dot product d_b =
     * sum q_x * q_w and (int4) q_x sum t_b = sum q_x:
     *   y = sum_b scale_x[b] * (d_b * scale[g(b)] + t_b * offset[g(b)])   (+ bias)
     * where the offset term is int4 only. SI_WEIGHT_I8 and SI_WEIGHT_I4; group_size must be a
     * multiple of 32 or >= k (a group never splits a block). */
    SI_ACTIVATIONS_I8_BLOCK32 = 2
};

typedef struct si_qmatmul_params {
    const float* x;        /* [m, k], row stride x_stride */
    const void* q;         /* [n, k] quantized values in format (see si_weight_format) */
    const float* scales;   /* [n, n_groups], n_groups = (k + group_size - 1) / group_size */
    const float* offsets;  /* [n, n_groups] for SI_WEIGHT_I4 (NULL: symmetric, see above), else NULL */
    const float* bias;     /* [n] or NULL */
    float* y;              /* [m, n], row stride y_stride; must not alias x */
    int64_t x_stride;
    int64_t y_stride;
    int32_t m;
    int32_t n;
    int32_t k;
    int32_t group_size;    /* >= 1; k for one group per row (per-channel) */
    si_weight_format format;
    si_activation_mode activations;
} si_qmatmul_params;
SI_API si_result si_qmatmul(si_context* ctx, const si_qmatmul_params* p);

/* ---------------------------------------------------------------------------------------
 * Profiler ranges: NVTX ranges that Nsight Systems shows on the timeline next to the ops'
 * own ranges ("si_<op>/..."), so the managed engine can mark its phases (schedule,
 * forward, sample) and each request's lifetime. They cost a few nanoseconds when no
 * profiler is attached. In a build without the NVTX headers they do nothing and
 * si_trace_available reports 0. The name is copied; it need not outlive the call.
 * ------------------------------------------------------------------------------------- */

/* Writes 1 if ranges reach NVTX in this build, else 0. */
SI_API si_result si_trace_available(int32_t* out_available);
/* A range nested on the calling thread: push ... pop. */
SI_API si_result si_trace_push(const char* name);
SI_API si_result si_trace_pop(void);
/* A range that may start and end on different threads (e.g. a request): start gives an id
 * for end. out_id is 0 when NVTX is not compiled in; ending 0 does nothing. */
SI_API si_result si_trace_range_start(const char* name, uint64_t* out_id);
SI_API si_result si_trace_range_end(uint64_t id);

/* ---------------------------------------------------------------------------------------
 * Sparse (pruned) matmul: y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]) where w keeps only
 * its non-zero weights. Two formats, both row-major over the output channels (rows of w):
 *
 * SI_SPARSE_2_4 (semi-structured): in every group of 4 consecutive k of a row at most 2
 * weights are non-zero. Let kp = k rounded up to a multiple of 16 (the padding is zero).
 *   values: [n, kp / 2] in values_dtype: the 2 kept weights of each group, in k order.
 *   index:  uint16 [n, kp / 16]: the metadata of 4 groups per word, group g of the word in
 *           bits [4g, 4g + 4): bits 0-1 the position (0-3) of the first kept weight, bits
 *           2-3 the position of the second, first < second (a group with fewer non-zeros
 *           keeps a zero). This is, row by row, the metadata that sm_80+ sparse tensor
 *           cores (mma.sp) take for the A operand; two consecutive words form the 32-bit
 *           metadata of a 32-wide k chunk.
 *   row_offsets: NULL.
 * SI_SPARSE_BITMASK (unstructured, any sparsity):
 *   index:  uint64 [n, kw], kw = (k + 63) / 64: bit j of word w says whether w[r, 64w + j]
 *           is kept (bits at or past k are 0).
 *   values: the kept weights of every row, row r's at [row_offsets[r], row_offsets[r + 1]),
 *           in k order, in values_dtype.
 *   row_offsets: int64 [n + 1], row_offsets[0] = 0, row_offsets[r + 1] - row_offsets[r] =
 *           popcount of row r's mask words.
 * Metadata is trusted by the kernels (it is validated where a checkpoint is loaded).
 * ------------------------------------------------------------------------------------- */

typedef int32_t si_sparse_format;
enum {
    SI_SPARSE_2_4 = 0,
    SI_SPARSE_BITMASK = 1
};

typedef struct si_sparse_matmul_params {
    const float* x;              /* [m, k], row stride x_stride */
    const void* values;          /* kept weights in values_dtype (layout: see format) */
    const void* index;           /* 2:4: uint16 [n, kp / 16]; bitmask: uint64 [n, kw] */
    const int64_t* row_offsets;  /* bitmask: int64 [n + 1]; 2:4: NULL */
    const float* bias;           /* [n] or NULL */
    float* y;                    /* [m, n], row stride y_stride; must not alias x */
    int64_t x_stride;
    int64_t y_stride;
    int32_t m;
    int32_t n;
    int32_t k;
    si_dtype values_dtype;       /* F32, F16, BF16 */
    si_sparse_format format;
    int32_t reserved;            /* must be 0 */
} si_sparse_matmul_params;
SI_API si_result si_sparse_matmul(si_context* ctx, const si_sparse_matmul_params* p);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SHARPINFER_H */
