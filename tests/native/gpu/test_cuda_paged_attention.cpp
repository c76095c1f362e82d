// test_cuda_paged_attention.cpp: GPU tier for the paged KV cache: si_paged_attention and
// si_kv_write on the cuda backend against the ref backend run on host copies of the same
// bytes, over a grid of batches, query/context lengths, GQA ratios, head dims, block sizes,
// cache dtypes and attention variants (CudaPagedAttention/Grid.MatchesRef/<case>), plus:
// paged == contiguous on the same K/V (bit for bit), int8 KV within 1e-2 of f16 KV, kv_write
// bit-exact against ref, unsupported head dims, and empty batches.
//
// Tolerance (flash-attention's rule): the cuda kernel rounds Q and P to bf16 (f16 for an f16
// cache; K/V of an f32 cache to bf16) and accumulates in f32. A host "emulated" reference
// makes exactly those roundings and accumulates in double; with `want` the ref backend's
// output (double accumulate, exact inputs), a case passes when
//     max |cuda - want| <= 2 * max |emulated - want| + 1e-5
// over all outputs, every output is finite, and nothing outside the outputs is written.
// Every buffer the kernels must not read (unused cache slots and blocks, q/out row gaps,
// the workspace) starts as NaN, so a stray read shows up as a non-finite output.
#include "cuda_test_support.h"  // first: see the si_result note there
#include "cuda_driver.h"

#include "common/dtype.h"
#include "common/kv_quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace si_test {
namespace {

using cuda_driver::CUdeviceptr;

// ---- device memory ---------------------------------------------------------------------------

class DeviceBuffer {
public:
    explicit DeviceBuffer(size_t bytes) : bytes_(std::max<size_t>(bytes, 16)) {
        std::string error;
        api_ = cuda_driver::api(&error);
        if (!api_) throw std::runtime_error(error);
        if (const int r = api_->cuMemAlloc(&pointer_, bytes_)) throw std::runtime_error(cuda_driver::describe(*api_, "cuMemAlloc", r));
    }
    ~DeviceBuffer() {
        if (pointer_) api_->cuMemFree(pointer_);
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    template <typename T = void>
    T* get() const { return reinterpret_cast<T*>(pointer_); }
    void upload(const void* host, size_t bytes) {
        if (bytes > bytes_) throw std::runtime_error("upload larger than the buffer");
        if (const int r = api_->cuMemcpyHtoD(pointer_, host, bytes)) throw std::runtime_error(cuda_driver::describe(*api_, "cuMemcpyHtoD", r));
    }
    template <typename T>
    void upload(const std::vector<T>& host) { upload(host.data(), host.size() * sizeof(T)); }
    template <typename T>
    void download(std::vector<T>* host) const {
        if (const int r = api_->cuMemcpyDtoH(host->data(), pointer_, host->size() * sizeof(T)))
            throw std::runtime_error(cuda_driver::describe(*api_, "cuMemcpyDtoH", r));
    }

private:
    const cuda_driver::Api* api_ = nullptr;
    CUdeviceptr pointer_ = 0;
    size_t bytes_;
};

template <typename T>
std::unique_ptr<DeviceBuffer> to_device(const std::vector<T>& host) {
    auto buffer = std::make_unique<DeviceBuffer>(host.size() * sizeof(T));
    buffer->upload(host);
    return buffer;
}

// ---- host helpers ----------------------------------------------------------------------------

constexpr uint32_t kSentinelBits = 0x7fc0bad0u;  // a NaN no kernel computes: "never written"
constexpr int kGuard = 64;                       // elements after every output

float sentinel() { return si::bits_to_f32(kSentinelBits); }
bool is_sentinel(float x) { return si::f32_to_bits(x) == kSentinelBits; }

uint64_t seed_of(const std::string& name) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (char c : name) h = (h ^ uint8_t(c)) * 1099511628211ull;
    return h;
}

// Uniform floats in [-1, 1) from splitmix64: the K/V of the biggest cases are ~10^8 values.
struct FastUniform {
    uint64_t state;
    float operator()() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        return float(z >> 40) * (1.0f / 8388608.0f) - 1.0f;  // 24 random bits
    }
};

// Runs fn(i) for i in [0, n) on all hardware threads.
void parallel_for(int n, const std::function<void(int)>& fn) {
    const int threads = std::max(1, std::min<int>(n, int(std::thread::hardware_concurrency())));
    std::atomic<int> next{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&] {
            for (int i = next++; i < n; i = next++) fn(i);
        });
    }
    for (std::thread& t : pool) t.join();
}

int elem_size(si_dtype dtype) { return si::dtype_size(dtype); }

// Stores f32 value x as element i of a pool in `dtype` (int8 elements take q directly).
void store_element(std::vector<uint8_t>& pool, si_dtype dtype, int64_t i, float x) {
    switch (dtype) {
        case SI_DTYPE_F32: std::memcpy(&pool[size_t(i) * 4], &x, 4); break;
        case SI_DTYPE_F16: {
            const uint16_t h = si::f32_to_f16(x);
            std::memcpy(&pool[size_t(i) * 2], &h, 2);
            break;
        }
        case SI_DTYPE_BF16: {
            const uint16_t h = si::f32_to_bf16(x);
            std::memcpy(&pool[size_t(i) * 2], &h, 2);
            break;
        }
        default: break;
    }
}

// Element i of a pool as the value the cuda kernel multiplies: f16/bf16 as stored, f32
// rounded to bf16, int8 as the integer (its scale is applied separately).
double operand_element(const std::vector<uint8_t>& pool, si_dtype dtype, int64_t i) {
    switch (dtype) {
        case SI_DTYPE_F32: {
            float x;
            std::memcpy(&x, &pool[size_t(i) * 4], 4);
            return si::bf16_to_f32(si::f32_to_bf16(x));
        }
        case SI_DTYPE_F16: {
            uint16_t h;
            std::memcpy(&h, &pool[size_t(i) * 2], 2);
            return si::f16_to_f32(h);
        }
        case SI_DTYPE_BF16: {
            uint16_t h;
            std::memcpy(&h, &pool[size_t(i) * 2], 2);
            return si::bf16_to_f32(h);
        }
        default: return double(int8_t(pool[size_t(i)]));
    }
}

float round_bf16(double x) { return si::bf16_to_f32(si::f32_to_bf16(float(x))); }
float round_f16(double x) { return si::f16_to_f32(si::f32_to_f16(float(x))); }

// ---- cases -----------------------------------------------------------------------------------

struct SeqShape {
    int q_len;
    int context;
};

struct PagedCase {
    std::string name;
    std::vector<SeqShape> seqs;
    int n_heads = 8;
    int n_kv_heads = 8;
    int head_dim = 64;
    int block_size = 16;
    si_dtype dtype = SI_DTYPE_BF16;
    int window = 0;
    float softcap = 0.0f;
    bool fill_last_table = false;  // the last sequence's context fills its block table exactly
};

std::ostream& operator<<(std::ostream& os, const PagedCase& c) { return os << c.name; }

const char* short_dtype(si_dtype d) { return si::dtype_name(d); }

std::string describe_case(const std::string& prefix, const PagedCase& c) {
    std::ostringstream name;
    name << prefix << "_b" << c.seqs.size() << "_h" << c.n_heads << "kv" << c.n_kv_heads << "_d" << c.head_dim << "_bs"
         << c.block_size << "_" << short_dtype(c.dtype);
    if (c.window) name << "_win" << c.window;
    if (c.softcap > 0) name << "_cap" << int(c.softcap);
    if (c.fill_last_table) name << "_full";
    return name.str();
}

PagedCase make_case(const std::string& prefix, std::vector<SeqShape> seqs, int n_heads, int n_kv_heads, int head_dim, int block_size,
                    si_dtype dtype, bool fill_last = false, int window = 0, float softcap = 0.0f) {
    PagedCase c;
    c.seqs = std::move(seqs);
    c.n_heads = n_heads;
    c.n_kv_heads = n_kv_heads;
    c.head_dim = head_dim;
    c.block_size = block_size;
    c.dtype = dtype;
    c.fill_last_table = fill_last;
    c.window = window;
    c.softcap = softcap;
    c.name = describe_case(prefix, c);
    return c;
}

// The grid. Every head dim x cache dtype (each a separate kernel) runs a mixed batch (a
// decode row over a long context next to chunked and fresh prefill) and a 17-sequence decode
// batch over contexts 1..4100 (split-K); GQA ratios and block sizes rotate through them.
// Then long prefill/chunked prefill, variants, a 128-head group, block size 1.
std::vector<PagedCase> grid_cases() {
    const int heads[3][2] = {{8, 8}, {32, 8}, {32, 1}};
    const int dims[5] = {64, 80, 96, 128, 256};
    const si_dtype dtypes[4] = {SI_DTYPE_BF16, SI_DTYPE_F16, SI_DTYPE_F32, SI_DTYPE_I8};
    const int block_sizes[3] = {16, 8, 32};
    const int contexts[5] = {1, 33, 97, 1025, 4100};
    std::vector<PagedCase> cases;
    int k = 0;
    for (int d : dims) {
        for (si_dtype dtype : dtypes) {
            const int* h = heads[k % 3];
            const int bs = block_sizes[(k / 3) % 3];
            cases.push_back(make_case("mixed", {{1, 1025}, {7, 97}, {64, 64}}, h[0], h[1], d, bs, dtype, k % 2 == 0));
            std::vector<SeqShape> decode;
            for (int i = 0; i < 17; ++i) decode.push_back({1, contexts[(i + k) % 5]});
            cases.push_back(make_case("decode", decode, h[0], h[1], d, block_sizes[(k + 1) % 3], dtype, k % 2 == 1));
            ++k;
        }
    }
    cases.push_back(make_case("prefill_q300", {{300, 300}}, 32, 8, 128, 16, SI_DTYPE_BF16));
    cases.push_back(make_case("chunk_q300_ctx4100", {{300, 4100}}, 8, 8, 64, 32, SI_DTYPE_F16, true));
    cases.push_back(make_case("chunk_q300_q64_q7", {{300, 1025}, {64, 4100}, {7, 33}}, 32, 1, 64, 8, SI_DTYPE_I8));
    {
        std::vector<SeqShape> seqs;
        const int ctx[3] = {64, 97, 1025};
        for (int i = 0; i < 17; ++i) seqs.push_back({64, ctx[i % 3]});
        cases.push_back(make_case("prefill_q64", seqs, 8, 8, 80, 16, SI_DTYPE_BF16, true));
    }
    cases.push_back(make_case("chunk_q300_ctx1025", {{300, 1025}, {1, 97}}, 8, 8, 256, 32, SI_DTYPE_BF16));
    cases.push_back(make_case("prefill_q300", {{300, 300}, {7, 7}}, 32, 8, 96, 8, SI_DTYPE_F32));
    // Variants: sliding window and logit soft-cap, alone and together, on prefill and split decode.
    const std::vector<SeqShape> variant_seqs = {{1, 4100}, {300, 1025}, {7, 97}, {64, 64}};
    cases.push_back(make_case("variant", variant_seqs, 32, 8, 128, 16, SI_DTYPE_BF16, false, 100));
    cases.push_back(make_case("variant", variant_seqs, 8, 8, 128, 16, SI_DTYPE_F16, false, 0, 2.0f));
    cases.push_back(make_case("variant", variant_seqs, 32, 1, 64, 32, SI_DTYPE_I8, true, 1000, 5.0f));
    {
        std::vector<SeqShape> decode;
        for (int i = 0; i < 17; ++i) decode.push_back({1, contexts[i % 5]});
        cases.push_back(make_case("variant_decode", decode, 32, 8, 128, 8, SI_DTYPE_I8, false, 1000));
        cases.push_back(make_case("variant_decode", decode, 32, 8, 256, 16, SI_DTYPE_BF16, false, 0, 3.0f));
    }
    // A 128-head group: decode rows span two row tiles of every split; prefill 7 queries = 896 rows.
    cases.push_back(make_case("group128", {{1, 4100}, {1, 1025}, {7, 97}, {1, 33}}, 128, 1, 64, 16, SI_DTYPE_BF16));
    cases.push_back(make_case("single_token", {{1, 1}}, 8, 8, 64, 8, SI_DTYPE_BF16));
    cases.push_back(make_case("block_size1", {{1, 300}, {33, 97}, {5, 5}}, 32, 8, 128, 1, SI_DTYPE_F16));
    return cases;
}

// ---- one problem: host data in the cache layout ----------------------------------------------

struct Problem {
    PagedCase c;
    std::vector<int32_t> q_lens, contexts;
    int n_seqs = 0, total_q = 0, max_q = 0, max_ctx = 0, max_blocks = 0, num_blocks = 0;
    int64_t q_stride = 0, out_stride = 0;
    std::vector<float> q;                  // [total_q, q_stride] + guard; gaps NaN
    std::vector<int32_t> cu_seqlens;       // [n_seqs + 1]
    std::vector<int32_t> block_tables;     // [n_seqs, max_blocks]; unused entries garbage
    std::vector<uint8_t> k_pool, v_pool;   // [num_blocks, block_size, n_kv_heads, head_dim] bytes
    std::vector<float> k_scale, v_scale;   // [num_blocks, block_size, n_kv_heads] (i8), else empty

    int64_t slot_of(int s, int pos) const {
        const int32_t block = block_tables[size_t(s) * max_blocks + pos / c.block_size];
        return int64_t(block) * c.block_size + pos % c.block_size;
    }
    int64_t out_elements() const { return int64_t(total_q) * out_stride + kGuard; }
};

// Builds the problem. K/V values depend only on (sequence, position, kv head, dim), drawn in
// that order per sequence, so two problems differing only in block placement hold the same
// attention.
Problem make_problem(const PagedCase& c, bool shuffle_blocks = true) {
    Problem p;
    p.c = c;
    p.n_seqs = int(c.seqs.size());
    for (const SeqShape& s : c.seqs) {
        p.q_lens.push_back(s.q_len);
        p.contexts.push_back(s.context);
    }
    for (int s = 0; s < p.n_seqs; ++s) p.max_blocks = std::max(p.max_blocks, (p.contexts[s] + c.block_size - 1) / c.block_size);
    if (c.fill_last_table) {
        p.contexts.back() = p.max_blocks * c.block_size;
    } else {
        p.max_blocks += 1;  // a table wider than any context: the tail entries must not be read
    }
    p.cu_seqlens.push_back(0);
    for (int s = 0; s < p.n_seqs; ++s) {
        p.total_q += p.q_lens[s];
        p.cu_seqlens.push_back(p.total_q);
        p.max_q = std::max(p.max_q, p.q_lens[s]);
        p.max_ctx = std::max(p.max_ctx, p.contexts[s]);
    }
    const int D = c.head_dim, hk = c.n_kv_heads;
    p.q_stride = int64_t(c.n_heads) * D + 3;  // odd: unaligned rows, NaN gaps
    p.out_stride = int64_t(c.n_heads) * D + 5;

    std::mt19937_64 rng(seed_of(c.name));
    std::mt19937_64 placement_rng(seed_of(c.name + "/placement"));
    std::normal_distribution<float> normal(0.0f, 1.5f);

    p.q.assign(size_t(p.total_q) * p.q_stride + kGuard, std::numeric_limits<float>::quiet_NaN());
    for (int t = 0; t < p.total_q; ++t)
        for (int i = 0; i < c.n_heads * D; ++i) p.q[size_t(t) * p.q_stride + i] = normal(rng);

    // Blocks: every sequence's used blocks, plus spares that stay poisoned.
    int used = 0;
    for (int s = 0; s < p.n_seqs; ++s) used += (p.contexts[s] + c.block_size - 1) / c.block_size;
    p.num_blocks = used + 5;
    std::vector<int32_t> order(size_t(p.num_blocks));
    for (int b = 0; b < p.num_blocks; ++b) order[size_t(b)] = b;
    if (shuffle_blocks) std::shuffle(order.begin(), order.end(), placement_rng);
    p.block_tables.assign(size_t(p.n_seqs) * p.max_blocks, 0);
    int next = 0;
    for (int s = 0; s < p.n_seqs; ++s) {
        const int blocks = (p.contexts[s] + c.block_size - 1) / c.block_size;
        for (int b = 0; b < p.max_blocks; ++b) {
            // Entries past the context point far outside the pool: reading one would fault.
            p.block_tables[size_t(s) * p.max_blocks + b] = b < blocks ? order[size_t(next++)] : 0x3fffffff - b;
        }
    }

    const int64_t rows = int64_t(p.num_blocks) * c.block_size * hk;
    const int es = elem_size(c.dtype);
    p.k_pool.assign(size_t(rows * D * es), 0);
    p.v_pool.assign(size_t(rows * D * es), 0);
    // Poison: NaN in every float format; int8 pools hold -127 everywhere and NaN scales.
    switch (c.dtype) {
        case SI_DTYPE_F32:
            std::fill_n(reinterpret_cast<float*>(p.k_pool.data()), rows * D, std::numeric_limits<float>::quiet_NaN());
            std::fill_n(reinterpret_cast<float*>(p.v_pool.data()), rows * D, std::numeric_limits<float>::quiet_NaN());
            break;
        case SI_DTYPE_F16:
        case SI_DTYPE_BF16: {
            const uint16_t nan = c.dtype == SI_DTYPE_F16 ? 0x7e00 : 0x7fc0;
            std::fill_n(reinterpret_cast<uint16_t*>(p.k_pool.data()), rows * D, nan);
            std::fill_n(reinterpret_cast<uint16_t*>(p.v_pool.data()), rows * D, nan);
            break;
        }
        default:
            std::fill(p.k_pool.begin(), p.k_pool.end(), uint8_t(0x81));
            std::fill(p.v_pool.begin(), p.v_pool.end(), uint8_t(0x81));
            p.k_scale.assign(size_t(rows), std::numeric_limits<float>::quiet_NaN());
            p.v_scale.assign(size_t(rows), std::numeric_limits<float>::quiet_NaN());
            break;
    }
    // Values: one generator per sequence (sequences own disjoint slots), on all threads.
    parallel_for(p.n_seqs, [&](int s) {
        FastUniform uniform{seed_of(c.name + "/kv" + std::to_string(s))};
        std::vector<float> row(static_cast<size_t>(D));
        for (int pos = 0; pos < p.contexts[s]; ++pos) {
            for (int h = 0; h < hk; ++h) {
                const int64_t r = p.slot_of(s, pos) * hk + h;
                for (int which = 0; which < 2; ++which) {
                    std::vector<uint8_t>& pool = which ? p.v_pool : p.k_pool;
                    for (int d = 0; d < D; ++d) row[size_t(d)] = uniform();
                    if (c.dtype == SI_DTYPE_I8) {
                        float max_abs = 0.0f;
                        for (float x : row) max_abs = std::fmax(max_abs, std::fabs(x));
                        const float scale = si::int8_kv_scale(max_abs);
                        for (int d = 0; d < D; ++d) pool[size_t(r * D + d)] = uint8_t(si::quantize_int8_kv(row[size_t(d)], scale));
                        (which ? p.v_scale : p.k_scale)[size_t(r)] = scale;
                    } else {
                        for (int d = 0; d < D; ++d) store_element(pool, c.dtype, r * D + d, row[size_t(d)]);
                    }
                }
            }
        }
    });
    return p;
}

si_paged_attention_params params_for(const Problem& p, const float* q, float* out, const int32_t* cu, const int32_t* ctx,
                                     const int32_t* tables, void* k_pool, void* v_pool, float* k_scale, float* v_scale) {
    si_paged_attention_params a{};
    a.q = q;
    a.out = out;
    a.cu_seqlens_q = cu;
    a.context_lens = ctx;
    a.block_tables = tables;
    a.cache.k_pool = k_pool;
    a.cache.v_pool = v_pool;
    a.cache.k_scale = k_scale;
    a.cache.v_scale = v_scale;
    a.cache.num_blocks = p.num_blocks;
    a.cache.block_size = p.c.block_size;
    a.cache.n_kv_heads = p.c.n_kv_heads;
    a.cache.head_dim = p.c.head_dim;
    a.cache.dtype = p.c.dtype;
    a.q_stride = p.q_stride;
    a.out_stride = p.out_stride;
    a.n_seqs = p.n_seqs;
    a.max_blocks_per_seq = p.max_blocks;
    a.n_heads = p.c.n_heads;
    a.max_q_len = p.max_q;
    a.max_context_len = p.max_ctx;
    a.scale = 1.0f / std::sqrt(float(p.c.head_dim));
    a.variant.sliding_window = p.c.window;
    a.variant.logit_softcap = p.c.softcap;
    return a;
}

// ---- the three answers -------------------------------------------------------------------------

// cuda: everything uploaded, workspace as the backend asks (NaN, with a guard after it).
struct CudaResult {
    si_result status = SI_OK;
    std::string message;
    std::vector<float> out;
    bool workspace_guard_intact = true;
    int64_t workspace_bytes = 0;
};

CudaResult run_cuda(si_context* ctx, const Problem& p) {
    CudaResult result;
    std::vector<int32_t> contexts = p.contexts;
    auto q = to_device(p.q);
    auto cu = to_device(p.cu_seqlens);
    auto lens = to_device(contexts);
    auto tables = to_device(p.block_tables);
    auto k_pool = to_device(p.k_pool);
    auto v_pool = to_device(p.v_pool);
    std::unique_ptr<DeviceBuffer> k_scale, v_scale;
    if (p.c.dtype == SI_DTYPE_I8) {
        k_scale = to_device(p.k_scale);
        v_scale = to_device(p.v_scale);
    }
    result.out.assign(size_t(p.out_elements()), sentinel());
    auto out = to_device(result.out);
    si_paged_attention_params a = params_for(p, q->get<float>(), out->get<float>(), cu->get<int32_t>(), lens->get<int32_t>(),
                                             tables->get<int32_t>(), k_pool->get(), v_pool->get(),
                                             k_scale ? k_scale->get<float>() : nullptr, v_scale ? v_scale->get<float>() : nullptr);
    result.status = si_paged_attention_workspace_size(ctx, &a, &result.workspace_bytes);
    if (result.status != SI_OK) {
        result.message = last_error_text();
        return result;
    }
    const size_t workspace_floats = size_t(result.workspace_bytes + 3) / 4;
    std::vector<float> workspace(workspace_floats + kGuard, sentinel());
    auto ws = to_device(workspace);
    a.workspace = result.workspace_bytes ? ws->get() : nullptr;
    a.workspace_bytes = result.workspace_bytes;
    result.status = si_paged_attention(ctx, &a);
    if (result.status != SI_OK) {
        result.message = last_error_text();
        return result;
    }
    result.status = si_context_synchronize(ctx);
    if (result.status != SI_OK) {
        result.message = last_error_text();
        return result;
    }
    out->download(&result.out);
    ws->download(&workspace);
    for (size_t i = workspace_floats; i < workspace.size(); ++i) result.workspace_guard_intact &= is_sentinel(workspace[i]);
    return result;
}

// ref: the ref backend on the host copies. Sequences are cut into query chunks run on all
// threads, each chunk a one-sequence call whose context ends at its last query (so every
// query keeps its position), each thread with its own ref context.
std::vector<float> run_ref(const Problem& p) {
    std::vector<float> out(size_t(p.out_elements()), sentinel());
    struct Chunk {
        int seq, q0, q1;
    };
    std::vector<Chunk> chunks;
    for (int s = 0; s < p.n_seqs; ++s)
        for (int q0 = 0; q0 < p.q_lens[s]; q0 += 16) chunks.push_back({s, q0, std::min(p.q_lens[s], q0 + 16)});
    std::vector<std::string> errors(chunks.size());
    parallel_for(int(chunks.size()), [&](int i) {
        const Chunk& ch = chunks[size_t(i)];
        si_context* ref = nullptr;
        const si_context_options options{SI_BACKEND_REF, 1, 0, 0};
        if (si_context_create(&options, &ref) != SI_OK) {
            errors[size_t(i)] = "ref context: " + last_error_text();
            return;
        }
        const int q_len = ch.q1 - ch.q0;
        const int context = p.contexts[ch.seq] - (p.q_lens[ch.seq] - ch.q1);
        const int32_t cu[2] = {0, q_len};
        const int32_t token0 = p.cu_seqlens[ch.seq] + ch.q0;
        si_paged_attention_params a =
            params_for(p, p.q.data() + int64_t(token0) * p.q_stride, out.data() + int64_t(token0) * p.out_stride, cu, &context,
                       p.block_tables.data() + size_t(ch.seq) * p.max_blocks, const_cast<uint8_t*>(p.k_pool.data()),
                       const_cast<uint8_t*>(p.v_pool.data()), p.k_scale.empty() ? nullptr : const_cast<float*>(p.k_scale.data()),
                       p.v_scale.empty() ? nullptr : const_cast<float*>(p.v_scale.data()));
        a.n_seqs = 1;
        a.max_q_len = q_len;
        a.max_context_len = context;
        if (si_paged_attention(ref, &a) != SI_OK) errors[size_t(i)] = "ref: " + last_error_text();
        si_context_destroy(ref);
    });
    for (const std::string& e : errors)
        if (!e.empty()) throw std::runtime_error(e);
    return out;
}

// emulated: the cuda kernel's roundings (see the file comment), double accumulation.
std::vector<float> run_emulated(const Problem& p) {
    std::vector<float> out(size_t(p.out_elements()), sentinel());
    const PagedCase& c = p.c;
    const int D = c.head_dim, group = c.n_heads / c.n_kv_heads;
    const bool f16 = c.dtype == SI_DTYPE_F16, i8 = c.dtype == SI_DTYPE_I8;
    const double scale = double(1.0f / std::sqrt(float(D)));  // the f32 scale the call passes
    std::vector<std::pair<int, int>> rows;  // (seq, query)
    for (int s = 0; s < p.n_seqs; ++s)
        for (int i = 0; i < p.q_lens[s]; ++i) rows.push_back({s, i});
    parallel_for(int(rows.size()), [&](int r) {
        const int s = rows[size_t(r)].first, i = rows[size_t(r)].second;
        const int pos = p.contexts[s] - p.q_lens[s] + i;
        const int first = c.window > 0 ? std::max(0, pos - c.window + 1) : 0;
        const int token = p.cu_seqlens[s] + i;
        std::vector<double> q(static_cast<size_t>(D)), logits(static_cast<size_t>(pos - first + 1)), acc(static_cast<size_t>(D));
        for (int h = 0; h < c.n_heads; ++h) {
            const int kvh = h / group;
            for (int d = 0; d < D; ++d) {
                const float x = p.q[size_t(token) * p.q_stride + size_t(h) * D + d];
                q[size_t(d)] = f16 ? round_f16(x) : round_bf16(x);
            }
            double max_logit = -INFINITY;
            for (int j = first; j <= pos; ++j) {
                const int64_t row = p.slot_of(s, j) * c.n_kv_heads + kvh;
                double dot = 0.0;
                for (int d = 0; d < D; ++d) dot += q[size_t(d)] * operand_element(p.k_pool, c.dtype, row * D + d);
                if (i8) dot *= double(p.k_scale[size_t(row)]);
                double logit = dot * scale;
                if (c.softcap > 0) logit = double(c.softcap) * std::tanh(logit / double(c.softcap));
                logits[size_t(j - first)] = logit;
                max_logit = std::max(max_logit, logit);
            }
            std::fill(acc.begin(), acc.end(), 0.0);
            double sum = 0.0;
            for (int j = first; j <= pos; ++j) {
                const int64_t row = p.slot_of(s, j) * c.n_kv_heads + kvh;
                const double w = std::exp(logits[size_t(j - first)] - max_logit);
                sum += w;
                const double pw = i8 ? round_bf16(w * double(p.v_scale[size_t(row)])) : f16 ? round_f16(w) : round_bf16(w);
                for (int d = 0; d < D; ++d) acc[size_t(d)] += pw * operand_element(p.v_pool, c.dtype, row * D + d);
            }
            for (int d = 0; d < D; ++d) out[size_t(token) * p.out_stride + size_t(h) * D + d] = float(acc[size_t(d)] / sum);
        }
    });
    return out;
}

// ---- comparison ------------------------------------------------------------------------------

struct Comparison {
    bool ok = true;
    std::string message;
    double err_cuda = 0.0, err_emulated = 0.0;
};

Comparison compare(const Problem& p, const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& emulated) {
    Comparison c;
    const int row = p.c.n_heads * p.c.head_dim;
    int64_t worst = -1;
    std::ostringstream bad;
    int bad_count = 0;
    for (int t = 0; t < p.total_q; ++t) {
        for (int64_t i = 0; i < p.out_stride; ++i) {
            const int64_t at = int64_t(t) * p.out_stride + i;
            const float g = got[size_t(at)];
            if (i >= row) {
                if (!is_sentinel(g) && bad_count++ < 3) bad << " wrote the row gap at token " << t << " element " << i << ";";
                continue;
            }
            if (!std::isfinite(g)) {
                if (bad_count++ < 3) bad << " non-finite output " << g << " at token " << t << " head " << i / p.c.head_dim << " dim " << i % p.c.head_dim << ";";
                continue;
            }
            const double e = std::fabs(double(g) - double(want[size_t(at)]));
            if (e > c.err_cuda) {
                c.err_cuda = e;
                worst = at;
            }
            c.err_emulated = std::max(c.err_emulated, std::fabs(double(emulated[size_t(at)]) - double(want[size_t(at)])));
        }
    }
    for (int64_t i = int64_t(p.total_q) * p.out_stride; i < p.out_elements(); ++i)
        if (!is_sentinel(got[size_t(i)]) && bad_count++ < 3) bad << " wrote the guard after the output;";
    const double allowed = 2.0 * c.err_emulated + 1e-5;
    std::ostringstream msg;
    msg << p.c.name << ": max|cuda - ref| = " << c.err_cuda << ", max|emulated - ref| = " << c.err_emulated << ", allowed " << allowed;
    if (worst >= 0) {
        const int64_t t = worst / p.out_stride, i = worst % p.out_stride;
        msg << " (worst at token " << t << " head " << i / p.c.head_dim << " dim " << i % p.c.head_dim << ": cuda " << got[size_t(worst)]
            << ", ref " << want[size_t(worst)] << ", emulated " << emulated[size_t(worst)] << ")";
    }
    if (bad_count) {
        c.ok = false;
        msg << "; " << bad_count << " bad element(s):" << bad.str();
    }
    if (c.err_cuda > allowed) c.ok = false;
    c.message = msg.str();
    return c;
}

// ---- tests -----------------------------------------------------------------------------------

class Grid : public CudaTest, public ::testing::WithParamInterface<PagedCase> {};

TEST_P(Grid, MatchesRef) {
    const Problem p = make_problem(GetParam());
    const CudaResult cuda = run_cuda(context_, p);
    if (cuda.status == SI_ERR_UNSUPPORTED) GTEST_SKIP() << "unsupported on cuda: " << cuda.message;
    ASSERT_EQ(cuda.status, SI_OK) << cuda.message;
    EXPECT_TRUE(cuda.workspace_guard_intact) << "wrote past the workspace of " << cuda.workspace_bytes << " bytes";
    const std::vector<float> want = run_ref(p);
    const std::vector<float> emulated = run_emulated(p);
    const Comparison c = compare(p, cuda.out, want, emulated);
    std::printf("[ paged    ] %s (workspace %lld B)\n", c.message.c_str(), (long long)cuda.workspace_bytes);
    EXPECT_TRUE(c.ok) << c.message;
}

INSTANTIATE_TEST_SUITE_P(CudaPagedAttention, Grid, ::testing::ValuesIn(grid_cases()),
                         [](const ::testing::TestParamInfo<PagedCase>& info) { return info.param.name; });

using CudaPagedAttention = CudaTest;

// The same K/V, once scattered over random blocks and once in consecutive blocks: the kernel
// reads identical values in identical order, so the outputs agree bit for bit.
TEST_F(CudaPagedAttention, PagedEqualsContiguous) {
    const PagedCase cases[] = {
        make_case("layout", {{1, 4100}, {300, 1025}, {7, 97}}, 32, 8, 128, 16, SI_DTYPE_BF16),
        make_case("layout", {{1, 1025}, {64, 200}, {1, 33}}, 32, 1, 64, 8, SI_DTYPE_I8),
    };
    for (const PagedCase& c : cases) {
        const CudaResult scattered = run_cuda(context_, make_problem(c, true));
        const CudaResult contiguous = run_cuda(context_, make_problem(c, false));
        ASSERT_EQ(scattered.status, SI_OK) << scattered.message;
        ASSERT_EQ(contiguous.status, SI_OK) << contiguous.message;
        ASSERT_EQ(scattered.out.size(), contiguous.out.size());
        int64_t differ = 0;
        for (size_t i = 0; i < scattered.out.size(); ++i)
            differ += si::f32_to_bits(scattered.out[i]) != si::f32_to_bits(contiguous.out[i]);
        EXPECT_EQ(differ, 0) << c.name << ": " << differ << " outputs differ between block layouts";
    }
}

// si_kv_write: cuda vs ref on the same inputs, whole pools compared bit for bit (slots that
// are not written keep their poison), every dtype, odd head dims, negative (padding) slots.
TEST_F(CudaPagedAttention, KvWriteMatchesRefBitForBit) {
    const si_dtype dtypes[] = {SI_DTYPE_F32, SI_DTYPE_F16, SI_DTYPE_BF16, SI_DTYPE_I8};
    const int dims[] = {64, 80, 128, 8, 33};
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<float> uniform(-3.0f, 3.0f);
    for (si_dtype dtype : dtypes) {
        for (int D : dims) {
            const int n_tokens = 37, hk = 3, block_size = 8, num_blocks = 9;
            const int64_t stride = int64_t(hk) * D + 7;
            std::vector<float> k(size_t(n_tokens * stride)), v(k.size());
            for (float& x : k) x = uniform(rng);
            for (float& x : v) x = uniform(rng);
            k[size_t(5 * stride + 2)] = 0.0f;  // rows with zeros and tiny values quantize too
            for (int d = 0; d < D; ++d) v[size_t(3 * stride + D + d)] = 0.0f;
            std::vector<int32_t> slots(static_cast<size_t>(n_tokens));
            std::vector<int32_t> all(size_t(num_blocks * block_size));
            for (size_t i = 0; i < all.size(); ++i) all[i] = int32_t(i);
            std::shuffle(all.begin(), all.end(), rng);
            for (int t = 0; t < n_tokens; ++t) slots[size_t(t)] = t % 5 == 3 ? -1 : all[size_t(t)];
            const int64_t rows = int64_t(num_blocks) * block_size * hk;
            const size_t pool_bytes = size_t(rows * D * elem_size(dtype));
            std::vector<uint8_t> k_pool(pool_bytes, 0xa5), v_pool(pool_bytes, 0x5a);
            std::vector<float> k_scale(size_t(rows), std::numeric_limits<float>::quiet_NaN()), v_scale = k_scale;
            const bool i8 = dtype == SI_DTYPE_I8;

            // ref on host copies
            std::vector<uint8_t> ref_k = k_pool, ref_v = v_pool;
            std::vector<float> ref_ks = k_scale, ref_vs = v_scale;
            si_context* ref = nullptr;
            const si_context_options options{SI_BACKEND_REF, 1, 0, 0};
            ASSERT_EQ(si_context_create(&options, &ref), SI_OK);
            si_kv_write_params w{};
            w.k = k.data();
            w.v = v.data();
            w.slot_mapping = slots.data();
            w.cache = {ref_k.data(), ref_v.data(), i8 ? ref_ks.data() : nullptr, i8 ? ref_vs.data() : nullptr, num_blocks, block_size, hk, D, dtype, 0};
            w.k_stride = stride;
            w.v_stride = stride;
            w.n_tokens = n_tokens;
            const si_result ref_status = si_kv_write(ref, &w);
            si_context_destroy(ref);
            ASSERT_EQ(ref_status, SI_OK) << last_error_text();

            auto dk = to_device(k), dv = to_device(v), ds = to_device(slots);
            auto dkp = to_device(k_pool), dvp = to_device(v_pool), dks = to_device(k_scale), dvs = to_device(v_scale);
            w.k = dk->get<float>();
            w.v = dv->get<float>();
            w.slot_mapping = ds->get<int32_t>();
            w.cache.k_pool = dkp->get();
            w.cache.v_pool = dvp->get();
            w.cache.k_scale = i8 ? dks->get<float>() : nullptr;
            w.cache.v_scale = i8 ? dvs->get<float>() : nullptr;
            ASSERT_EQ(si_kv_write(context_, &w), SI_OK) << last_error_text();
            ASSERT_EQ(si_context_synchronize(context_), SI_OK) << last_error_text();
            dkp->download(&k_pool);
            dvp->download(&v_pool);
            dks->download(&k_scale);
            dvs->download(&v_scale);
            const std::string what = std::string(si::dtype_name(dtype)) + " head_dim " + std::to_string(D);
            EXPECT_TRUE(k_pool == ref_k) << what << ": k pools differ";
            EXPECT_TRUE(v_pool == ref_v) << what << ": v pools differ";
            if (i8) {
                EXPECT_EQ(0, std::memcmp(k_scale.data(), ref_ks.data(), k_scale.size() * 4)) << what << ": k scales differ";
                EXPECT_EQ(0, std::memcmp(v_scale.data(), ref_vs.data(), v_scale.size() * 4)) << what << ": v scales differ";
            }
        }
    }
}

// int8 KV against f16 KV: the same f32 K/V written by si_kv_write into an f16 and an int8
// cache (cuda both ways) and attended by the same queries. Bound: 1e-2 absolute for O(1)
// inputs (common/kv_quant.h); the measured error is printed.
TEST_F(CudaPagedAttention, Int8WithinToleranceOfF16) {
    const PagedCase shape = make_case("int8_vs_f16", {{1, 4100}, {300, 1025}, {7, 97}, {1, 33}}, 32, 8, 128, 16, SI_DTYPE_F16);
    Problem p = make_problem(shape);
    const int D = shape.head_dim, hk = shape.n_kv_heads;
    // Dense f32 K/V for every (sequence, position) token, and where each goes.
    std::vector<float> k, v;
    std::vector<int32_t> slots;
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (int s = 0; s < p.n_seqs; ++s) {
        for (int pos = 0; pos < p.contexts[s]; ++pos) {
            slots.push_back(int32_t(p.slot_of(s, pos)));
            for (int i = 0; i < hk * D; ++i) k.push_back(uniform(rng));
            for (int i = 0; i < hk * D; ++i) v.push_back(uniform(rng));
        }
    }
    auto dk = to_device(k), dv = to_device(v), dslots = to_device(slots);
    std::vector<std::vector<float>> outputs;
    for (si_dtype dtype : {SI_DTYPE_F16, SI_DTYPE_I8}) {
        const int64_t rows = int64_t(p.num_blocks) * shape.block_size * hk;
        std::vector<uint8_t> poison(size_t(rows * D * elem_size(dtype)), 0xff);  // f16 NaN / int8 -1
        std::vector<float> scale_poison(size_t(rows), std::numeric_limits<float>::quiet_NaN());
        auto k_pool = to_device(poison), v_pool = to_device(poison), k_scale = to_device(scale_poison), v_scale = to_device(scale_poison);
        si_kv_write_params w{};
        w.k = dk->get<float>();
        w.v = dv->get<float>();
        w.slot_mapping = dslots->get<int32_t>();
        w.cache = {k_pool->get(), v_pool->get(), k_scale->get<float>(), v_scale->get<float>(), p.num_blocks, shape.block_size, hk, D, dtype, 0};
        w.k_stride = int64_t(hk) * D;
        w.v_stride = int64_t(hk) * D;
        w.n_tokens = int32_t(slots.size());
        ASSERT_EQ(si_kv_write(context_, &w), SI_OK) << last_error_text();
        // Read the written caches back into the problem and run attention on them.
        p.c.dtype = dtype;
        p.k_pool.assign(poison.size(), 0);
        p.v_pool.assign(poison.size(), 0);
        ASSERT_EQ(si_context_synchronize(context_), SI_OK) << last_error_text();
        k_pool->download(&p.k_pool);
        v_pool->download(&p.v_pool);
        if (dtype == SI_DTYPE_I8) {
            p.k_scale = scale_poison;
            p.v_scale = scale_poison;
            k_scale->download(&p.k_scale);
            v_scale->download(&p.v_scale);
        } else {
            p.k_scale.clear();
            p.v_scale.clear();
        }
        const CudaResult cuda = run_cuda(context_, p);
        ASSERT_EQ(cuda.status, SI_OK) << cuda.message;
        outputs.push_back(cuda.out);
    }
    double err = 0.0;
    const int row = shape.n_heads * D;
    for (int t = 0; t < p.total_q; ++t)
        for (int i = 0; i < row; ++i) {
            const size_t at = size_t(t) * p.out_stride + i;
            ASSERT_TRUE(std::isfinite(outputs[1][at]) && std::isfinite(outputs[0][at])) << "non-finite output at token " << t;
            err = std::max(err, std::fabs(double(outputs[1][at]) - double(outputs[0][at])));
        }
    std::printf("[ paged    ] int8 KV vs f16 KV (cuda, %s): max abs difference %.3g (bound 1e-2)\n", shape.name.c_str(), err);
    EXPECT_LE(err, 1e-2);
}

TEST_F(CudaPagedAttention, UnsupportedHeadDimIsReportedByName) {
    PagedCase c = make_case("unsupported", {{1, 33}, {7, 7}}, 8, 8, 64, 16, SI_DTYPE_BF16);
    for (int D : {72, 48, 160, 512}) {
        c.head_dim = D;
        const Problem p = make_problem(c);
        const CudaResult r = run_cuda(context_, p);
        EXPECT_EQ(r.status, SI_ERR_UNSUPPORTED) << "head_dim " << D;
        EXPECT_NE(r.message.find("head_dim " + std::to_string(D) + " not supported by the cuda paged attention"), std::string::npos)
            << r.message;
        EXPECT_NE(r.message.find("supported: 64, 80, 96, 128, 256"), std::string::npos) << r.message;
    }
}

// No sequences, or sequences without new queries: nothing to do, nothing written.
TEST_F(CudaPagedAttention, EmptyBatchesWriteNothing) {
    const PagedCase c = make_case("empty", {{1, 33}}, 8, 8, 64, 16, SI_DTYPE_BF16);
    Problem p = make_problem(c);
    auto q = to_device(p.q), cu = to_device(p.cu_seqlens), lens = to_device(p.contexts), tables = to_device(p.block_tables);
    auto k_pool = to_device(p.k_pool), v_pool = to_device(p.v_pool);
    std::vector<float> out(size_t(p.out_elements()), sentinel());
    auto d_out = to_device(out);
    si_paged_attention_params a = params_for(p, q->get<float>(), d_out->get<float>(), cu->get<int32_t>(), lens->get<int32_t>(),
                                             tables->get<int32_t>(), k_pool->get(), v_pool->get(), nullptr, nullptr);
    a.n_seqs = 0;
    int64_t bytes = -1;
    ASSERT_EQ(si_paged_attention_workspace_size(context_, &a, &bytes), SI_OK) << last_error_text();
    EXPECT_EQ(bytes, 0);
    EXPECT_EQ(si_paged_attention(context_, &a), SI_OK) << last_error_text();
    // One sequence with no new query (q_len 0, max_q_len 0).
    const std::vector<int32_t> no_queries = {0, 0};
    auto cu_empty = to_device(no_queries);
    a.n_seqs = 1;
    a.cu_seqlens_q = cu_empty->get<int32_t>();
    a.max_q_len = 0;
    ASSERT_EQ(si_paged_attention_workspace_size(context_, &a, &bytes), SI_OK) << last_error_text();
    std::vector<float> workspace(size_t(bytes / 4 + 1), sentinel());
    auto d_workspace = to_device(workspace);
    a.workspace = d_workspace->get();
    a.workspace_bytes = bytes;
    EXPECT_EQ(si_paged_attention(context_, &a), SI_OK) << last_error_text();
    ASSERT_EQ(si_context_synchronize(context_), SI_OK);
    d_out->download(&out);
    for (float x : out) ASSERT_TRUE(is_sentinel(x));
}

}  // namespace
}  // namespace si_test
