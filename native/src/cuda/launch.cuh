// launch.cuh: the per-op launchers backend.cu calls, one per op file. Each validates nothing
// (api/ops.cpp did), skips empty work, picks a kernel variant and launches on `stream`.
#pragma once

#include <sharpinfer/sharpinfer.h>

#include <cuda_runtime_api.h>

namespace si::cuda {

si_result launch_embedding(const si_embedding_params& p, cudaStream_t stream);
si_result launch_rms_norm(const si_rms_norm_params& p, cudaStream_t stream);
si_result launch_matmul(const si_matmul_params& p, cudaStream_t stream);
si_result launch_rope(const si_rope_params& p, cudaStream_t stream);
si_result launch_attention(const si_attention_params& p, cudaStream_t stream);
si_result launch_swiglu(const si_swiglu_params& p, cudaStream_t stream);
si_result launch_add(const si_add_params& p, cudaStream_t stream);
si_result launch_softmax(const si_softmax_params& p, cudaStream_t stream);
si_result launch_argmax(const si_argmax_params& p, cudaStream_t stream);

// Largest head_dim the attention kernel supports; larger returns SI_ERR_UNSUPPORTED.
constexpr int kAttentionMaxHeadDim = 256;

}  // namespace si::cuda
