// Helper threads yield to the event loop. The loop thread serves every connection; the pools
// beside it (storage io, the writer, the worker pool) mostly wake, issue a blocking call and sleep
// again. As ordinary threads each wake-up may preempt the loop on its CPU: on bench/smtp's
// 2-core machine the loop was preempted 3.3 times per message. SCHED_BATCH (sched(7)) keeps
// their fair share of the CPU but "mildly disfavors" them at wake-up: they don't preempt a running
// thread, they run when a CPU is free or at the next tick.
#pragma once
#include <asio/thread_pool.hpp>

#include <cstddef>

namespace pillarbox {

// Turns each of the pool's `threads` threads into a SCHED_BATCH thread; returns once all have
// switched. `threads` must be the number the pool was created with. Where the system refuses
// (it never should: lowering a thread's policy needs no privilege) the threads stay as they were.
void make_background(asio::thread_pool& pool, std::size_t threads);

}  // namespace pillarbox
