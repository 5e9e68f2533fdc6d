// ConnectionRate: the per-client connection rate window, with time passed in.
#include <catch2/catch.hpp>

#include "server/connection_rate.hpp"
#include "server/networks.hpp"

using pillarbox::ClientConnections;
using pillarbox::ConnectionRate;
using pillarbox::client_key;
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

namespace {
std::string key(const char* ip) { return client_key(asio::ip::make_address(ip)); }
}  // namespace

TEST_CASE("client key: IPv4 as itself, IPv4-mapped IPv6 as IPv4, IPv6 by its /64") {
    CHECK(key("192.0.2.1") == "192.0.2.1");
    CHECK(key("::ffff:192.0.2.1") == "192.0.2.1");
    CHECK(key("2001:db8:1:2::1") == "2001:db8:1:2::/64");
    CHECK(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64");
    CHECK(key("2001:db8:1:3::1") == "2001:db8:1:3::/64");
    CHECK(key("::1") == "::/64");
    CHECK(key("fe80::1%1") == "fe80::/64");  // the zone names our interface, not the client
}

TEST_CASE("per-client connection count: every address in a /64 is one client") {
    ClientConnections open;
    for (auto ip : {"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"}) open.add("smtp", key(ip));
    CHECK(open.open("smtp", key("2001:db8:1:2::77")) == 3);
    CHECK(open.open("smtp", key("2001:db8:1:3::1")) == 0);    // the next /64 is another client
    CHECK(open.open("submission", key("2001:db8:1:2::1")) == 0);  // and each listener counts apart
    open.add("smtp", key("::ffff:192.0.2.1"));
    CHECK(open.open("smtp", key("192.0.2.1")) == 1);
    open.remove("smtp", key("192.0.2.1"));
    for (auto ip : {"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"}) open.remove("smtp", key(ip));
    CHECK(open.size() == 0);  // no entry left behind
}
