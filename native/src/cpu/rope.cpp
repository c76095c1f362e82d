// rope.cpp (cpu): rotary position embedding in place, threaded over tokens. Angles are
// computed in double, once per (token, pair) and shared by all heads: a position near 4096
// times a frequency near 1 loses ~1e-4 rad in f32, more than the rotation itself should.
// The rotation is a few flops per element, so one portable loop serves every ISA.
#include "cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace si::cpu {

si_result rope(const Env& env, const si_rope_params& p) {
    const int32_t half = p.rotary_dim / 2;
    std::vector<double> inv_freq(size_t(half), 0.0);
    for (int32_t i = 0; i < half; ++i) inv_freq[i] = std::pow(double(p.freq_base), -2.0 * i / p.rotary_dim);
    const bool adjacent = p.layout == SI_ROPE_ADJACENT_PAIRS;
    const int64_t grain = std::max<int64_t>(1, 8192 / (int64_t(p.n_heads) * p.rotary_dim));
    env.pool.parallel_for(p.n_tokens, grain, [&](int64_t begin, int64_t end) {
        std::vector<float> cos_table(static_cast<size_t>(half)), sin_table(static_cast<size_t>(half));
        for (int64_t t = begin; t < end; ++t) {
            const double position = double(p.positions[t]) * double(p.freq_scale);
            for (int32_t i = 0; i < half; ++i) {
                const double angle = position * inv_freq[i];
                cos_table[i] = float(std::cos(angle));
                sin_table[i] = float(std::sin(angle));
            }
            for (int32_t h = 0; h < p.n_heads; ++h) {
                float* x = p.x + t * p.token_stride + int64_t(h) * p.head_dim;
                if (adjacent) {
                    for (int32_t i = 0; i < half; ++i) {
                        const float x0 = x[2 * i], x1 = x[2 * i + 1];
                        x[2 * i] = x0 * cos_table[i] - x1 * sin_table[i];
                        x[2 * i + 1] = x0 * sin_table[i] + x1 * cos_table[i];
                    }
                } else {
                    float* y = x + half;
                    for (int32_t i = 0; i < half; ++i) {
                        const float x0 = x[i], x1 = y[i];
                        x[i] = x0 * cos_table[i] - x1 * sin_table[i];
                        y[i] = x0 * sin_table[i] + x1 * cos_table[i];
                    }
                }
            }
        }
    });
    return SI_OK;
}

}  // namespace si::cpu
