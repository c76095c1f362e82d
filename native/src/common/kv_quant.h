// kv_quant.h: the int8 KV-cache format and the split-K softmax merge, shared by every backend
// (host and device) so that ref, cpu and cuda quantize and combine by one definition.
//
// int8 KV: each (token, kv head) row of head_dim values is stored as int8 q[d] with one f32
// scale, symmetric: scale = max|x| / 127, q = round_to_nearest_even(x / scale) clamped to
// [-127, 127], value = q * scale. A row of zeros has scale 0 and q = 0. The rounding error
// of one element is at most scale / 2 = max|x| / 254; measured against an f16 cache, the
// attention output moves by less than 1e-2 absolute for O(1) inputs (the bound the tests
// in tests/native/test_paged_attention.cpp assert; typical errors are ~1e-3).
#pragma once

#include "common/dtype.h"

#include <math.h>

#include <cstdint>

namespace si {

// The scale of a row whose largest magnitude is max_abs. Written as a division (not a
// multiplication by 1/127) so every backend, scalar or vector, gets the same f32.
SI_HOST_DEVICE float int8_kv_scale(float max_abs) { return max_abs / 127.0f; }

// x quantized with `scale` (from int8_kv_scale of its row). Division and rintf are
// correctly rounded everywhere, so vector code doing the same two steps matches bit for
// bit. fminf/fmaxf return the number when the other operand is NaN, so NaN input stays
// defined (it becomes -127) instead of being an out-of-range cast.
SI_HOST_DEVICE int8_t quantize_int8_kv(float x, float scale) {
    if (scale == 0.0f) return 0;
    const float q = rintf(x / scale);  // round to nearest even in the default rounding mode
    return int8_t(fminf(fmaxf(q, -127.0f), 127.0f));
}

SI_HOST_DEVICE float dequantize_int8_kv(int8_t q, float scale) { return float(q) * scale; }

// Split-K ("flash-decoding") partials. A partial result over a subset of the keys is an
// unnormalized output O = sum_j exp(s_j - max) v_j with its running max and
// sum = sum_j exp(s_j - max). A subset with no visible key has max = -inf and sum = 0.
struct SoftmaxPartial {
    float max;
    float sum;
};

// Folds partial b into a. The caller scales a's output by *scale_a and b's by *scale_b and
// adds them; the final output is O / a.sum. Guarding -inf keeps an empty partial from
// producing exp(-inf - -inf) = NaN: it simply gets weight 0.
SI_HOST_DEVICE void merge_softmax_partials(SoftmaxPartial* a, SoftmaxPartial b, float* scale_a, float* scale_b) {
    const float max = fmaxf(a->max, b.max);
    if (max == -INFINITY) {  // both empty
        *scale_a = 0.0f;
        *scale_b = 0.0f;
        return;
    }
    *scale_a = a->max == -INFINITY ? 0.0f : expf(a->max - max);
    *scale_b = b.max == -INFINITY ? 0.0f : expf(b.max - max);
    a->sum = a->sum * *scale_a + b.sum * *scale_b;
    a->max = max;
}

}  // namespace si
