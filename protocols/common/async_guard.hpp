// The one guard for async work a session waits on: parking (input stays buffered until the
// answer is in) and callbacks that do nothing once the session is gone. Loop thread only.
#pragma once
#include <memory>
#include <utility>

#include "server/session.hpp"

namespace pillarbox::protocols {

class AsyncGuard {
public:
    explicit AsyncGuard(SessionIo& io) : io_(io), alive_(std::make_shared<bool>(true)) {}
    ~AsyncGuard() { end(); }
    AsyncGuard(const AsyncGuard&) = delete;
    AsyncGuard& operator=(const AsyncGuard&) = delete;

    // fn, called later (a worker's answer, a timer, a store completion), runs only while the
    // session lives. Any arguments are passed through.
    template <typename Fn>
    auto wrap(Fn fn) const {
        return [alive = alive_, fn = std::move(fn)](auto&&... args) mutable {
            if (*alive) fn(std::forward<decltype(args)>(args)...);
        };
    }
    // The session is going: callbacks already handed out won't run. A destructor calls this
    // first, before it aborts work whose completion could otherwise run during the teardown.
    void end() { *alive_ = false; }
    bool alive() const { return *alive_; }

    // While parked the session takes no input: the next command waits in the Connection's
    // buffer until the async answer came and unpark() offers it again.
    void park() { parked_ = true; }
    void unpark() {
        parked_ = false;
        io_.resume_input();
    }
    bool parked() const { return parked_; }

private:
    SessionIo& io_;
    std::shared_ptr<bool> alive_;
    bool parked_ = false;
};

}  // namespace pillarbox::protocols
