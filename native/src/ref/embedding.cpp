// embedding.cpp (ref): out[t, :] = f32(table[ids[t], :]), a row lookup with exact conversion.
#include "common/dtype.h"
#include "common/status.h"
#include "ref/ref_ops.h"

namespace si::ref {

si_result embedding(const si_embedding_params& p) {
    // Check every id before writing anything, so a bad id leaves out untouched.
    for (int32_t t = 0; t < p.n_tokens; ++t) {
        if (p.ids[t] < 0 || p.ids[t] >= p.vocab)
            return fail(SI_ERR_INVALID_ARGUMENT, "si_embedding: ids[%d] = %d is outside [0, vocab=%d)", t, p.ids[t], p.vocab);
    }
    for (int32_t t = 0; t < p.n_tokens; ++t) {
        const int64_t row = int64_t(p.ids[t]) * p.dim;
        for (int32_t d = 0; d < p.dim; ++d) p.out[int64_t(t) * p.dim + d] = load_as_f32(p.table, p.table_dtype, row + d);
    }
    return SI_OK;
}

}  // namespace si::ref
