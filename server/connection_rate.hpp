// Connections per client per time unit (Postfix's smtpd_client_connection_rate_limit, which
// anvil counts): a fixed window per (listener, client IP), with the time passed in so tests
// don't sleep. Bounded: windows that have ended are swept once the table grows.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace pillarbox {

class ConnectionRate {
public:
    using Clock = std::chrono::steady_clock;
    explicit ConnectionRate(std::size_t sweep_above = 10000) : sweep_above_(sweep_above) {}

    // Counts one connection; false when it is over `limit` in the current window of `unit`
    // (limit 0: no limit, nothing counted).
    bool allow(const std::string& listener, const std::string& ip, std::uint64_t limit,
               std::chrono::milliseconds unit, Clock::time_point now) {
        if (limit == 0) return true;
        if (windows_.size() > sweep_above_) sweep(unit, now);
        auto& w = windows_[{listener, ip}];
        if (w.count == 0 || now - w.start >= unit) {
            w.start = now;
            w.count = 0;
        }
        return ++w.count <= limit;
    }

    std::size_t size() const { return windows_.size(); }

private:
    struct Window {
        Clock::time_point start{};
        std::uint64_t count = 0;
    };
    void sweep(std::chrono::milliseconds unit, Clock::time_point now) {
        for (auto it = windows_.begin(); it != windows_.end();)
            it = now - it->second.start >= unit ? windows_.erase(it) : std::next(it);
    }
    std::size_t sweep_above_;
    std::map<std::pair<std::string, std::string>, Window> windows_;
};

}  // namespace pillarbox
