// thread_pool.cpp: job publication (an atomic job pointer plus a user count, so the caller
// never waits for a sleeping worker that did not join), spin-then-sleep waiting, and
// exception capture on worker threads.
#include "cpu/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SI_CPU_RELAX() _mm_pause()
#else
#define SI_CPU_RELAX() std::this_thread::yield()
#endif

namespace si::cpu {
namespace {
// How long an idle worker polls for the next job before blocking. A decode step issues ops
// microseconds apart, so polling this long avoids most futex wake-ups while idle costs
// stay bounded.
constexpr auto kSpinTime = std::chrono::microseconds(50);
constexpr int kChunksPerThread = 4;  // some slack so a descheduled thread delays less
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
    if (num_threads <= 0) num_threads = int(std::max(1u, std::thread::hardware_concurrency()));
    num_threads_ = num_threads;
    workers_.reserve(size_t(num_threads - 1));
    try {
        for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
    } catch (...) {
        // Thread creation failed (resource limits): stop the ones already started, then let
        // the caller turn the exception into a status.
        shutdown();
        throw;
    }
}

ThreadPool::~ThreadPool() { shutdown(); }

void ThreadPool::shutdown() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_.store(true);
    }
    wake_.notify_all();
    for (std::thread& t : workers_) {
        if (t.joinable()) t.join();
    }
    workers_.clear();
}

int64_t ThreadPool::chunk_count(int64_t n, int64_t grain) const {
    const int64_t by_grain = (n + grain - 1) / grain;
    return std::max<int64_t>(1, std::min<int64_t>(by_grain, int64_t(num_threads_) * kChunksPerThread));
}

void ThreadPool::work_on(Job& job) {
    for (;;) {
        const int64_t c = job.next_chunk.fetch_add(1, std::memory_order_relaxed);
        if (c >= job.chunks) return;
        const int64_t begin = job.n * c / job.chunks, end = job.n * (c + 1) / job.chunks;
        try {
            job.fn(job.fn_state, begin, end);
        } catch (...) {
            std::lock_guard<std::mutex> lock(job.error_mutex);
            if (!job.error) job.error = std::current_exception();
        }
        job.done_chunks.fetch_add(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::run(int64_t n, int64_t chunks, ChunkFn fn, void* fn_state) {
    Job job;
    job.fn = fn;
    job.fn_state = fn_state;
    job.n = n;
    job.chunks = chunks;
    if (!workers_.empty()) {
        current_.store(&job, std::memory_order_seq_cst);
        generation_.fetch_add(1, std::memory_order_seq_cst);
        // Taking the mutex orders this notify after any sleeper's predicate check, so no
        // wake-up is lost; when nobody sleeps the mutex is skipped entirely.
        if (sleepers_.load(std::memory_order_seq_cst) > 0) {
            { std::lock_guard<std::mutex> lock(mutex_); }
            wake_.notify_all();
        }
    }
    work_on(job);
    // Every chunk has been claimed; wait until all of them have finished.
    for (int spins = 0; job.done_chunks.load(std::memory_order_acquire) < chunks; ++spins) {
        if (spins < 4096) SI_CPU_RELAX();
        else std::this_thread::yield();
    }
    if (!workers_.empty()) {
        // Unpublish, then wait for workers that joined to let go of `job` (they are only
        // between their last failed claim and leaving, so this is short).
        current_.store(nullptr, std::memory_order_seq_cst);
        while (users_.load(std::memory_order_seq_cst) != 0) SI_CPU_RELAX();
    }
    if (job.error) std::rethrow_exception(job.error);
}

void ThreadPool::worker_loop() {
    uint64_t seen = generation_.load(std::memory_order_acquire);
    for (;;) {
        // Poll for a new job for a short while, then block.
        const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
        for (int spins = 0; generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed); ++spins) {
            SI_CPU_RELAX();
            if ((spins & 63) == 63 && std::chrono::steady_clock::now() > spin_until) {
                std::unique_lock<std::mutex> lock(mutex_);
                sleepers_.fetch_add(1, std::memory_order_seq_cst);
                wake_.wait(lock, [&] { return generation_.load(std::memory_order_seq_cst) != seen || stop_.load(); });
                sleepers_.fetch_sub(1, std::memory_order_relaxed);
                break;
            }
        }
        if (stop_.load()) return;
        seen = generation_.load(std::memory_order_acquire);
        // Join the current job, if it is still published once our use is counted.
        users_.fetch_add(1, std::memory_order_seq_cst);
        if (Job* job = current_.load(std::memory_order_seq_cst)) work_on(*job);
        users_.fetch_sub(1, std::memory_order_seq_cst);
    }
}

}  // namespace si::cpu
