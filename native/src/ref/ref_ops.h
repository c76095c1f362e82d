// ref_ops.h: the naive oracle's op functions. Plain scalar loops that accumulate in double,
// single-threaded: slow on purpose, so that every other backend has something obviously
// correct to be compared with. Inputs were validated by api/ops.cpp.
#pragma once

#include <sharpinfer/sharpinfer.h>

namespace si::ref {

si_result embedding(const si_embedding_params& p);
si_result rms_norm(const si_rms_norm_params& p);
si_result matmul(const si_matmul_params& p);
si_result rope(const si_rope_params& p);
si_result attention(const si_attention_params& p);
si_result swiglu(const si_swiglu_params& p);
si_result add(const si_add_params& p);
si_result softmax(const si_softmax_params& p);
si_result argmax(const si_argmax_params& p);
si_result qmatmul(const si_qmatmul_params& p);
si_result sparse_matmul(const si_sparse_matmul_params& p);
si_result kv_write(const si_kv_write_params& p);
si_result paged_attention_workspace_size(const si_paged_attention_params& p, int64_t* out_bytes);
si_result paged_attention(const si_paged_attention_params& p);

}  // namespace si::ref
