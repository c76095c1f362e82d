// dispatch.cuh: the compile-time switches an op's launcher uses to turn runtime values into
// template arguments. Call them with a generic lambda; nest at most three deep.
//
//   return dispatch_weight_dtype(p.w_dtype, "si_matmul", [&](auto weight) {
//       using W = decltype(weight);              // F32Weight, F16Weight or BF16Weight
//       return dispatch_bool(aligned, [&](auto vec) {
//           constexpr bool kVector = decltype(vec)::value;
//           my_kernel<W, kVector><<<grid, block, 0, stream>>>(...);
//           return check_launch("si_matmul");
//       });
//   });
#pragma once

#include "common/dtype.h"
#include "common/status.h"
#include "cuda/weights.cuh"

#include <type_traits>

namespace si::cuda {

// Float weight dtypes: f32, f16, bf16. Anything else is a case this backend lacks.
template <typename Fn>
si_result dispatch_weight_dtype(si_dtype dtype, const char* op, Fn&& fn) {
    switch (dtype) {
        case SI_DTYPE_F32: return fn(F32Weight{});
        case SI_DTYPE_F16: return fn(F16Weight{});
        case SI_DTYPE_BF16: return fn(BF16Weight{});
        default: return fail(SI_ERR_UNSUPPORTED, "%s: the cuda backend has no kernel for weight dtype %s", op, dtype_name(dtype));
    }
}

// A runtime flag as std::true_type / std::false_type.
template <typename Fn>
si_result dispatch_bool(bool value, Fn&& fn) {
    if (value) return fn(std::true_type{});
    return fn(std::false_type{});
}

}  // namespace si::cuda
