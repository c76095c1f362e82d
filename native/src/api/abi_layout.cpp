// abi_layout.cpp: compile-time checks that boundary structs keep the sizes and offsets
// interop/NativeMethods.cs mirrors. A failure here means SI_ABI_VERSION must change.
#include <sharpinfer/sharpinfer.h>

#include <cstddef>

static_assert(sizeof(void*) == 8, "libsharpinfer supports 64-bit targets only");
static_assert(sizeof(si_context_options) == 16, "si_context_options layout");
static_assert(sizeof(si_embedding_params) == 40, "si_embedding_params layout");
static_assert(sizeof(si_rms_norm_params) == 56, "si_rms_norm_params layout");
static_assert(offsetof(si_rms_norm_params, eps) == 48, "si_rms_norm_params layout");
static_assert(sizeof(si_matmul_params) == 64, "si_matmul_params layout");
static_assert(offsetof(si_matmul_params, w_dtype) == 60, "si_matmul_params layout");
static_assert(sizeof(si_rope_params) == 56, "si_rope_params layout");
static_assert(offsetof(si_rope_params, layout) == 48, "si_rope_params layout");
static_assert(sizeof(si_attention_params) == 80, "si_attention_params layout");
static_assert(offsetof(si_attention_params, scale) == 76, "si_attention_params layout");
static_assert(sizeof(si_swiglu_params) == 56, "si_swiglu_params layout");
static_assert(sizeof(si_add_params) == 32, "si_add_params layout");
static_assert(sizeof(si_softmax_params) == 48, "si_softmax_params layout");
static_assert(sizeof(si_argmax_params) == 32, "si_argmax_params layout");
static_assert(sizeof(si_paged_kv) == 56, "si_paged_kv layout");
static_assert(sizeof(si_kv_write_params) == 104, "si_kv_write_params layout");
static_assert(offsetof(si_kv_write_params, cache) == 24, "si_kv_write_params layout");
static_assert(sizeof(si_attention_variant) == 8, "si_attention_variant layout");
static_assert(sizeof(si_paged_attention_params) == 160, "si_paged_attention_params layout");
static_assert(offsetof(si_paged_attention_params, cache) == 48, "si_paged_attention_params layout");
static_assert(offsetof(si_paged_attention_params, scale) == 148, "si_paged_attention_params layout");
static_assert(sizeof(si_qmatmul_params) == 88, "si_qmatmul_params layout");
static_assert(offsetof(si_qmatmul_params, activations) == 84, "si_qmatmul_params layout");
static_assert(sizeof(si_sparse_matmul_params) == 88, "si_sparse_matmul_params layout");
static_assert(offsetof(si_sparse_matmul_params, values_dtype) == 76, "si_sparse_matmul_params layout");
static_assert(offsetof(si_sparse_matmul_params, format) == 80, "si_sparse_matmul_params layout");
