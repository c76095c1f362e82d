// ref_ops.h: the naive oracle's op functions. Plain scalar loops that accumulate in double,
// single-threaded: slow on purpose, so that every other backend has something obviously
// correct to be compared with. Inputs were validated by api/ops.cpp.
#pragma once

#include <sharpinfer/sharpinfer.h>

namespace si::ref {

si_status embedding(const si_embedding_params& p);
si_status rms_norm(const si_rms_norm_params& p);
si_status matmul(const si_matmul_params& p);
si_status rope(const si_rope_params& p);
si_status attention(const si_attention_params& p);
si_status swiglu(const si_swiglu_params& p);
si_status add(const si_add_params& p);
si_status softmax(const si_softmax_params& p);
si_status argmax(const si_argmax_params& p);
si_status qmatmul(const si_qmatmul_params& p);
si_status kv_write(const si_kv_write_params& p);
si_status paged_attention_workspace_size(const si_paged_attention_params& p, int64_t* out_bytes);
si_status paged_attention(const si_paged_attention_params& p);

}  // namespace si::ref
