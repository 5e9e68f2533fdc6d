// Per-client connection accounting for the listeners: how many connections a client holds open
// (client_connection_limit) and how many it opened per time unit (client_connection_rate_limit).
// A client is a key from client_key(): an IPv4 address, or an IPv6 /64.
//
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

// Connections open at once per (listener, client key); an entry goes when its count reaches 0.
class ClientConnections {
public:
    std::uint64_t open(const std::string& listener, const std::string& key) const {
        auto it = open_.find({listener, key});
        return it == open_.end() ? 0 : it->second;
    }
    void add(const std::string& listener, const std::string& key) { ++open_[{listener, key}]; }
    void remove(const std::string& listener, const std::string& key) {
        auto it = open_.find({listener, key});
        if (it != open_.end() && --it->second == 0) open_.erase(it);
    }
    std::size_t size() const { return open_.size(); }

private:
    std::map<std::pair<std::string, std::string>, std::uint64_t> open_;
};

}  // namespace pillarbox
