// Marks the event loop thread and flags blocking calls made on it. Blocking helpers call
// blocking_call("what"); in debug builds (no NDEBUG) a call on the loop thread is logged as a bug
// and counted, so tests can assert that none happened.
#pragma once
#include <cstdint>

namespace pillarbox {

void mark_loop_thread(bool on);  // call from the thread that runs the io_context
bool on_loop_thread();
void blocking_call(const char* what);
std::uint64_t blocking_calls_on_loop();  // how many were flagged so far

}  // namespace pillarbox
