// rope.cpp (ref): rotary position embedding in place, angles and rotation in double.
#include "ref/ref_ops.h"

#include <cmath>

namespace si::ref {

si_result rope(const si_rope_params& p) {
    const int32_t half = p.rotary_dim / 2;
    for (int32_t t = 0; t < p.n_tokens; ++t) {
        for (int32_t i = 0; i < half; ++i) {
            const double inv_freq = std::pow(double(p.freq_base), -2.0 * i / p.rotary_dim);
            const double angle = double(p.positions[t]) * double(p.freq_scale) * inv_freq;
            const double c = std::cos(angle), s = std::sin(angle);
            for (int32_t h = 0; h < p.n_heads; ++h) {
                float* head = p.x + t * p.token_stride + int64_t(h) * p.head_dim;
                // Which two elements form pair i depends on the layout (see si_rope_layout).
                const int32_t a = p.layout == SI_ROPE_ADJACENT_PAIRS ? 2 * i : i;
                const int32_t b = p.layout == SI_ROPE_ADJACENT_PAIRS ? 2 * i + 1 : i + half;
                const double x0 = head[a], x1 = head[b];
                head[a] = float(x0 * c - x1 * s);
                head[b] = float(x0 * s + x1 * c);
            }
        }
    }
    return SI_OK;
}

}  // namespace si::ref
