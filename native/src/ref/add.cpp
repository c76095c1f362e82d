// add.cpp (ref): out = a + b elementwise (the residual add).
#include "ref/ref_ops.h"

namespace si::ref {

si_result add(const si_add_params& p) {
    for (int64_t i = 0; i < p.n; ++i) p.out[i] = p.a[i] + p.b[i];
    return SI_OK;
}

}  // namespace si::ref
