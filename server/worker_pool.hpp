// A small pool of threads for blocking work (fsync, SQLite writes, password hashing, file reads).
// run() executes the job on a worker and posts the completion back to the event loop.
#pragma once
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/thread_pool.hpp>
#include <functional>
#include <memory>
#include <type_traits>

#include "server/background.hpp"

namespace pillarbox {

class WorkerPool {
public:
    WorkerPool(asio::io_context& loop, std::size_t threads) : loop_(loop), pool_(threads), size_(threads) {
        make_background(pool_, threads);
    }
    std::size_t size() const { return size_; }
    ~WorkerPool() { join(); }
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // job() runs on a worker thread; done(result) runs on the loop thread afterwards.
    template <typename Job, typename Done>
    void run(Job job, Done done) {
        auto work = asio::make_work_guard(loop_);
        asio::post(pool_, [job = std::move(job), done = std::move(done), work = std::move(work), this]() mutable {
            using R = std::invoke_result_t<Job&>;
            if constexpr (std::is_void_v<R>) {
                job();
                asio::post(loop_, [done = std::move(done), work = std::move(work)]() mutable { done(); });
            } else {
                auto result = std::make_shared<R>(job());
                asio::post(loop_, [done = std::move(done), result, work = std::move(work)]() mutable {
                    done(std::move(*result));
                });
            }
        });
    }

    void join() { pool_.join(); }

private:
    asio::io_context& loop_;
    asio::thread_pool pool_;
    std::size_t size_;
};

}  // namespace pillarbox
