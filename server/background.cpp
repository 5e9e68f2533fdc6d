// SCHED_BATCH for helper pools (see background.hpp).
#include "background.hpp"

#include <pthread.h>
#include <sched.h>

#include <asio/post.hpp>
#include <latch>
#include <memory>

namespace pillarbox {

void make_background(asio::thread_pool& pool, std::size_t threads) {
    if (threads == 0) return;
    // One job per thread: each job waits until all have started, so no thread can take two. The
    // jobs share the latch: a waiter may still be inside wait() after this function returns.
    auto all = std::make_shared<std::latch>(static_cast<std::ptrdiff_t>(threads) + 1);
    for (std::size_t i = 0; i < threads; ++i)
        asio::post(pool, [all] {
            sched_param p{};
            ::pthread_setschedparam(::pthread_self(), SCHED_BATCH, &p);
            all->arrive_and_wait();
        });
    all->arrive_and_wait();
}

}  // namespace pillarbox
