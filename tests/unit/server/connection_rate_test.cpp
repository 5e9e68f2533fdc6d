// ConnectionRate: the per-client connection rate window, with time passed in.
#include <catch2/catch.hpp>

#include "server/connection_rate.hpp"

using pillarbox::ConnectionRate;
using namespace std::chrono_literals;

TEST_CASE("connection rate: a fixed window per listener and client") {
    ConnectionRate r;
    auto t0 = ConnectionRate::Clock::time_point{} + 1h;
    for (int i = 0; i < 3; ++i) CHECK(r.allow("smtp", "192.0.2.1", 3, 60s, t0 + std::chrono::seconds(i)));
    CHECK_FALSE(r.allow("smtp", "192.0.2.1", 3, 60s, t0 + 10s));
    CHECK(r.allow("smtp", "192.0.2.2", 3, 60s, t0 + 10s));        // another client
    CHECK(r.allow("submission", "192.0.2.1", 3, 60s, t0 + 10s));  // another listener
    CHECK(r.allow("smtp", "192.0.2.1", 3, 60s, t0 + 61s));        // a new window
    CHECK(r.allow("smtp", "192.0.2.1", 0, 60s, t0 + 62s));        // no limit
}

TEST_CASE("connection rate: ended windows are swept so the table stays bounded") {
    ConnectionRate r(100);
    auto t0 = ConnectionRate::Clock::time_point{} + 1h;
    for (int i = 0; i < 500; ++i) r.allow("smtp", "10.0.0." + std::to_string(i), 5, 1s, t0 + std::chrono::milliseconds(i * 10));
    CHECK(r.size() <= 201);
}
