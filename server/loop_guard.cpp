// Loop-thread marker and the debug-build blocking-call check (see loop_guard.hpp).
#include "loop_guard.hpp"

#include <atomic>

#include "log.hpp"

namespace pillarbox {
namespace {
thread_local bool t_on_loop = false;
std::atomic<std::uint64_t> g_flagged{0};
}  // namespace

void mark_loop_thread(bool on) { t_on_loop = on; }
bool on_loop_thread() { return t_on_loop; }

void blocking_call(const char* what) {
#ifndef NDEBUG
    if (t_on_loop) {
        g_flagged.fetch_add(1, std::memory_order_relaxed);
        log::error("master", "BUG: blocking call {} on the event loop thread", what);
    }
#else
    (void)what;
#endif
}

std::uint64_t blocking_calls_on_loop() { return g_flagged.load(std::memory_order_relaxed); }

}  // namespace pillarbox
