// Failed-login penalties: doubling up to the cap, repeated passwords, per-IP and per-account
// entries, expiry, the memory bound and IPv6 /64 grouping. Time is passed in; nothing sleeps.
#include <catch2/catch.hpp>

#include "auth/throttle.hpp"

#include <string>

using namespace pillarbox::auth;
using namespace std::chrono_literals;
using Clock = Throttle::Clock;

namespace {

const Clock::time_point t0 = Clock::time_point{} + 1000h;

}  // namespace

TEST_CASE("a first failure costs 2 s and nothing before it") {
    Throttle t;
    CHECK(t.delay("192.0.2.1", "alice@example.org", t0) == 0ms);
    CHECK(t.failure("192.0.2.1", "alice@example.org", "fp1", t0) == 2000ms);
    CHECK(t.delay("192.0.2.1", "alice@example.org", t0) == 2000ms);
    CHECK(t.delay("192.0.2.1", "", t0) == 2000ms);
    CHECK(t.size() == 2);
}

TEST_CASE("different passwords double the penalty up to the cap") {
    Throttle t;
    CHECK(t.failure("192.0.2.1", "alice", "fp1", t0) == 2000ms);
    CHECK(t.failure("192.0.2.1", "alice", "fp2", t0 + 2s) == 4000ms);
    CHECK(t.failure("192.0.2.1", "alice", "fp3", t0 + 6s) == 8000ms);
    CHECK(t.failure("192.0.2.1", "alice", "fp4", t0 + 14s) == 15000ms);
    CHECK(t.failure("192.0.2.1", "alice", "fp5", t0 + 29s) == 15000ms);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 29s) == 15000ms);
}

TEST_CASE("the penalty stays capped after very many failures") {
    Throttle t;
    for (int i = 0; i < 500; ++i)
        CHECK(t.failure("192.0.2.1", "alice", std::to_string(i), t0 + std::chrono::seconds(i)) <= 15000ms);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 499s) == 15000ms);
}

TEST_CASE("retrying the same wrong password refreshes the penalty without growing it") {
    Throttle t;
    CHECK(t.failure("192.0.2.1", "alice", "stale", t0) == 2000ms);
    CHECK(t.failure("192.0.2.1", "alice", "stale", t0 + 5s) == 2000ms);
    // Refreshed: counted from the latest failure.
    CHECK(t.delay("192.0.2.1", "alice", t0 + 6s) == 1000ms);
    CHECK(t.failure("192.0.2.1", "alice", "stale", t0 + 10s) == 2000ms);
    CHECK(t.failure("192.0.2.1", "alice", "other", t0 + 20s) == 4000ms);
    // Going back to an earlier password is a change from the previous failure.
    CHECK(t.failure("192.0.2.1", "alice", "stale", t0 + 30s) == 8000ms);
}

TEST_CASE("an empty fingerprint always counts as a new password") {
    Throttle t;
    CHECK(t.failure("192.0.2.1", "alice", "", t0) == 2000ms);
    CHECK(t.failure("192.0.2.1", "alice", "", t0 + 2s) == 4000ms);
}

TEST_CASE("one password sprayed over many accounts from one IP grows the IP's penalty") {
    Throttle t;
    CHECK(t.failure("192.0.2.1", "a", "123456", t0) == 2000ms);
    CHECK(t.failure("192.0.2.1", "b", "123456", t0 + 2s) == 4000ms);
    CHECK(t.failure("192.0.2.1", "c", "123456", t0 + 6s) == 8000ms);
    CHECK(t.delay("192.0.2.1", "d", t0 + 6s) == 8000ms);
}

TEST_CASE("another IP attacking the same account is delayed") {
    Throttle t;
    t.failure("192.0.2.1", "alice", "fp1", t0);
    t.failure("192.0.2.1", "alice", "fp2", t0 + 2s);
    CHECK(t.delay("198.51.100.7", "alice", t0 + 3s) == 3000ms);
    CHECK(t.delay("198.51.100.7", "bob", t0 + 3s) == 0ms);
    CHECK(t.delay("198.51.100.7", "", t0 + 3s) == 0ms);
    // The account keeps growing across IPs.
    CHECK(t.failure("198.51.100.7", "alice", "fp3", t0 + 6s) == 8000ms);
    CHECK(t.delay("198.51.100.7", "", t0 + 6s) == 2000ms);
}

TEST_CASE("another account from the same IP is delayed") {
    Throttle t;
    t.failure("192.0.2.1", "alice", "fp1", t0);
    CHECK(t.delay("192.0.2.1", "bob", t0 + 500ms) == 1500ms);
    CHECK(t.delay("192.0.2.1", "", t0 + 500ms) == 1500ms);
    CHECK(t.delay("192.0.2.2", "bob", t0 + 500ms) == 0ms);
}

TEST_CASE("the delay is the larger of the IP's and the account's") {
    Throttle t;
    t.failure("192.0.2.1", "alice", "a1", t0);
    t.failure("192.0.2.1", "alice", "a2", t0 + 2s);
    t.failure("192.0.2.1", "alice", "a3", t0 + 6s);  // alice and 192.0.2.1: 8 s from t0+6s
    t.failure("198.51.100.7", "bob", "b1", t0 + 6s);  // bob and 198.51.100.7: 2 s
    CHECK(t.delay("198.51.100.7", "alice", t0 + 7s) == 7000ms);
    CHECK(t.delay("192.0.2.1", "bob", t0 + 7s) == 7000ms);
    CHECK(t.delay("198.51.100.7", "bob", t0 + 7s) == 1000ms);
}

TEST_CASE("failures before the login is known penalise the IP only") {
    Throttle t;
    CHECK(t.failure("192.0.2.1", "", "fp", t0) == 2000ms);
    CHECK(t.size() == 1);
    CHECK(t.delay("198.51.100.7", "", t0) == 0ms);
}

TEST_CASE("the delay decreases with time and ends at zero") {
    Throttle t;
    t.failure("192.0.2.1", "alice", "fp1", t0);
    t.failure("192.0.2.1", "alice", "fp2", t0 + 1s);  // 4 s from t0+1s
    CHECK(t.delay("192.0.2.1", "alice", t0 + 1s) == 4000ms);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 2s) == 3000ms);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 4500ms) == 500ms);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 5s) == 0ms);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 1h) == 0ms);
    // An elapsed penalty is still remembered: the next failure keeps doubling.
    CHECK(t.failure("192.0.2.1", "alice", "fp3", t0 + 10s) == 8000ms);
}

TEST_CASE("a remaining fraction of a millisecond rounds up") {
    Throttle t;
    t.failure("192.0.2.1", "alice", "fp", t0);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 1999500us) == 1ms);
}

TEST_CASE("a success clears the account and the IP") {
    Throttle t;
    t.failure("192.0.2.1", "alice", "fp1", t0);
    t.failure("192.0.2.1", "alice", "fp2", t0 + 2s);
    t.failure("198.51.100.7", "bob", "fp", t0 + 2s);
    REQUIRE(t.size() == 4);
    t.success("192.0.2.1", "alice", t0 + 3s);
    CHECK(t.size() == 2);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 3s) == 0ms);
    CHECK(t.delay("198.51.100.7", "bob", t0 + 3s) == 1000ms);
    // Starts over at the first step.
    CHECK(t.failure("192.0.2.1", "alice", "fp3", t0 + 4s) == 2000ms);
}

TEST_CASE("entries idle longer than forget_after are forgotten") {
    Throttle t({.forget_after = 60s});
    t.failure("192.0.2.1", "alice", "fp1", t0);
    t.failure("192.0.2.1", "alice", "fp2", t0 + 2s);
    t.failure("192.0.2.1", "alice", "fp3", t0 + 6s);
    REQUIRE(t.size() == 2);
    // Lazily: an expired entry starts over.
    CHECK(t.failure("192.0.2.1", "alice", "fp4", t0 + 66s) == 2000ms);
    // Swept by a failure from somebody else.
    t.failure("198.51.100.7", "bob", "fp", t0 + 100s);
    CHECK(t.size() == 4);
    t.failure("203.0.113.5", "carol", "fp", t0 + 127s);  // alice's two idle for 61 s: gone
    CHECK(t.size() == 4);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 127s) == 0ms);
    t.success("203.0.113.5", "carol", t0 + 127s);
    CHECK(t.size() == 2);
    t.success("203.0.113.5", "carol", t0 + 160s);  // bob's idle for 60 s: gone
    CHECK(t.size() == 0);
}

TEST_CASE("an expired entry gives no delay even with a long max") {
    Throttle t({.initial = 10s, .max = 1h, .forget_after = 60s});
    t.failure("192.0.2.1", "alice", "fp1", t0);
    t.failure("192.0.2.1", "alice", "fp2", t0 + 10s);
    t.failure("192.0.2.1", "alice", "fp3", t0 + 30s);  // 40 s penalty, but idle after 60 s
    CHECK(t.delay("192.0.2.1", "alice", t0 + 50s) == 20000ms);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 90s) == 0ms);
}

TEST_CASE("the entry count never exceeds max_entries; the oldest goes first") {
    Throttle t({.max_entries = 10});
    for (int i = 0; i < 100; ++i) {
        t.failure("10.0.0." + std::to_string(i), "user" + std::to_string(i), "fp", t0 + std::chrono::seconds(i));
        CHECK(t.size() <= 10);
    }
    CHECK(t.size() == 10);
    // The 5 most recent attackers are remembered, the first ones were evicted.
    CHECK(t.delay("10.0.0.99", "", t0 + 100s) == 1000ms);
    CHECK(t.delay("10.0.0.95", "", t0 + 96s) == 1000ms);
    CHECK(t.delay("", "user95", t0 + 96s) == 1000ms);
    CHECK(t.delay("10.0.0.94", "user94", t0 + 94s) == 0ms);
    CHECK(t.delay("10.0.0.0", "user0", t0) == 0ms);
}

TEST_CASE("eviction follows the last failure, not the first") {
    Throttle t({.max_entries = 2});
    t.failure("192.0.2.1", "", "fp1", t0);
    t.failure("192.0.2.2", "", "fp1", t0 + 1s);
    t.failure("192.0.2.1", "", "fp2", t0 + 2s);  // .1 is now the most recent
    t.failure("192.0.2.3", "", "fp1", t0 + 3s);  // evicts .2
    CHECK(t.size() == 2);
    CHECK(t.delay("192.0.2.1", "", t0 + 3s) == 3000ms);
    CHECK(t.delay("192.0.2.2", "", t0 + 3s) == 0ms);
    CHECK(t.delay("192.0.2.3", "", t0 + 3s) == 2000ms);
}

TEST_CASE("lowering max_entries evicts at once") {
    Throttle t;
    for (int i = 0; i < 20; ++i)
        t.failure("10.0.0." + std::to_string(i), "", "fp", t0 + std::chrono::seconds(i));
    REQUIRE(t.size() == 20);
    t.set_settings({.max_entries = 5});
    CHECK(t.size() == 5);
    CHECK(t.delay("10.0.0.19", "", t0 + 19s) == 2000ms);
    CHECK(t.delay("10.0.0.14", "", t0 + 14s) == 0ms);
}

TEST_CASE("changed settings apply to the next computation") {
    Throttle t;
    t.failure("192.0.2.1", "", "fp1", t0);
    t.set_settings({.initial = 1s, .max = 3s});
    CHECK(t.delay("192.0.2.1", "", t0) == 1000ms);
    CHECK(t.failure("192.0.2.1", "", "fp2", t0) == 2000ms);
    CHECK(t.failure("192.0.2.1", "", "fp3", t0) == 3000ms);
}

TEST_CASE("IPv6 addresses are penalised by /64") {
    Throttle t;
    t.failure("2001:db8:1:2::1", "", "fp1", t0);
    CHECK(t.delay("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "", t0) == 2000ms);
    CHECK(t.delay("2001:0db8:0001:0002:0000:0000:0000:0099", "", t0) == 2000ms);
    CHECK(t.delay("[2001:db8:1:2::5]", "", t0) == 2000ms);
    CHECK(t.delay("2001:db8:1:3::1", "", t0) == 0ms);
    // A new address from the same /64 grows the same penalty.
    CHECK(t.failure("2001:db8:1:2:ffff::1", "", "fp2", t0 + 2s) == 4000ms);
    CHECK(t.size() == 1);
    t.success("2001:db8:1:2::77", "", t0 + 3s);
    CHECK(t.size() == 0);
}

TEST_CASE("IPv4-mapped IPv6 addresses count as the IPv4 address, not as one /64") {
    Throttle t;
    t.failure("::ffff:192.0.2.1", "", "fp", t0);
    CHECK(t.delay("192.0.2.1", "", t0) == 2000ms);
    CHECK(t.delay("::ffff:192.0.2.2", "", t0) == 0ms);
    CHECK(t.delay("198.51.100.7", "", t0) == 0ms);
}

TEST_CASE("link-local zones are ignored and non-addresses are keys as given") {
    Throttle t;
    t.failure("fe80::1%eth0", "", "fp", t0);
    CHECK(t.delay("fe80::2%eth1", "", t0) == 2000ms);
    t.failure("local", "", "fp", t0);
    CHECK(t.delay("local", "", t0) == 2000ms);
    CHECK(t.delay("other", "", t0) == 0ms);
}
