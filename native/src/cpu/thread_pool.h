// thread_pool.h: the cpu backend's persistent worker pool. parallel_for splits [0, n) into
// chunks that depend only on n, the grain and the thread count, so every result is the same
// from run to run; the calling thread works too, and workers spin briefly before sleeping so
// back-to-back ops in a decode step do not pay a wake-up each.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace si::cpu {

class ThreadPool {
public:
    // num_threads counts the caller: 1 means no workers. 0 means hardware_concurrency().
    explicit ThreadPool(int num_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int num_threads() const { return num_threads_; }

    // Calls fn(begin, end) on disjoint ranges covering [0, n), each at least `grain` long
    // (except possibly the last), from the caller and the workers. Chunk c of C covers
    // [n*c/C, n*(c+1)/C) with C = min(ceil(n/grain), 4*num_threads). Any exception thrown by
    // fn is caught on the thread that ran it and rethrown here once all chunks are done.
    template <typename Fn>
    void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
        if (n <= 0) return;
        if (grain < 1) grain = 1;
        const int64_t chunks = chunk_count(n, grain);
        if (chunks == 1) {
            fn(int64_t(0), n);
            return;
        }
        using F = std::remove_reference_t<Fn>;
        run(n, chunks, [](void* f, int64_t begin, int64_t end) { (*static_cast<F*>(f))(begin, end); },
            const_cast<void*>(static_cast<const void*>(&fn)));
    }
    template <typename Fn>
    void parallel_for(int64_t n, Fn&& fn) { parallel_for(n, 1, std::forward<Fn>(fn)); }

    int64_t chunk_count(int64_t n, int64_t grain) const;

private:
    using ChunkFn = void (*)(void* fn, int64_t begin, int64_t end);

    // One parallel_for call; lives on the caller's stack until every worker has let go of it.
    struct Job {
        ChunkFn fn;
        void* fn_state;
        int64_t n;
        int64_t chunks;
        std::atomic<int64_t> next_chunk{0};
        std::atomic<int64_t> done_chunks{0};
        std::mutex error_mutex;
        std::exception_ptr error;
    };

    void run(int64_t n, int64_t chunks, ChunkFn fn, void* fn_state);
    static void work_on(Job& job);
    void worker_loop();
    void shutdown();

    int num_threads_;
    std::vector<std::thread> workers_;
    std::atomic<uint64_t> generation_{0};  // bumped once per published job
    std::atomic<Job*> current_{nullptr};   // the job workers may join, or null
    std::atomic<int> users_{0};            // workers that may be touching *current_
    std::atomic<int> sleepers_{0};         // workers blocked on wake_
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::condition_variable wake_;
};

}  // namespace si::cpu
