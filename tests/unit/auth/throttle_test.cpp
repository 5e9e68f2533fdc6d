// Failed-login penalties: doubling up to the cap, repeated passwords, per-IP and per-account
// entries, expiry, the memory bound and IPv6 /64 grouping. Time is passed in; nothing sleeps.
#include <catch2/catch.hpp>

#include "auth/throttle.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "tests/unit/test_config.hpp"

using namespace pillarbox::auth;
using namespace std::chrono_literals;
using Clock = Throttle::Clock;

namespace {

const Clock::time_point t0 = Clock::time_point{} + 1000h;

// The configured defaults (auth_failure_delay 2 s, auth_penalty_max 15 s,
// auth_penalty_queue_limit 3), with what `adjust` changes.
ThrottleSettings settings(const std::function<void(ThrottleSettings&)>& adjust = {}) {
    auto s = pillarbox::test::auth_settings().throttle;
    if (adjust) adjust(s);
    return s;
}

}  // namespace

TEST_CASE("a first failure costs 2 s and nothing before it") {
    Throttle t(settings());
    CHECK(t.delay("192.0.2.1", "alice@example.org", t0) == 0ms);
    CHECK(t.failure("192.0.2.1", "alice@example.org", "fp1", t0) == 2000ms);
    CHECK(t.delay("192.0.2.1", "alice@example.org", t0) == 2000ms);
    CHECK(t.delay("192.0.2.1", "", t0) == 2000ms);
    CHECK(t.size() == 2);
}

TEST_CASE("different passwords double the penalty up to the cap") {
    Throttle t(settings());
    CHECK(t.failure("192.0.2.1", "alice", "fp1", t0) == 2000ms);
    CHECK(t.failure("192.0.2.1", "alice", "fp2", t0 + 2s) == 4000ms);
    CHECK(t.failure("192.0.2.1", "alice", "fp3", t0 + 6s) == 8000ms);
    CHECK(t.failure("192.0.2.1", "alice", "fp4", t0 + 14s) == 15000ms);
    CHECK(t.failure("192.0.2.1", "alice", "fp5", t0 + 29s) == 15000ms);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 29s) == 15000ms);
}

TEST_CASE("the penalty stays capped after very many failures") {
    Throttle t(settings());
    for (int i = 0; i < 500; ++i)
        CHECK(t.failure("192.0.2.1", "alice", std::to_string(i), t0 + std::chrono::seconds(i)) <= 15000ms);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 499s) == 15000ms);
}

TEST_CASE("retrying the same wrong password refreshes the penalty without growing it") {
    Throttle t(settings());
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
    Throttle t(settings());
    CHECK(t.failure("192.0.2.1", "alice", "", t0) == 2000ms);
    CHECK(t.failure("192.0.2.1", "alice", "", t0 + 2s) == 4000ms);
}

TEST_CASE("one password sprayed over many accounts from one IP grows the IP's penalty") {
    Throttle t(settings());
    CHECK(t.failure("192.0.2.1", "a", "123456", t0) == 2000ms);
    CHECK(t.failure("192.0.2.1", "b", "123456", t0 + 2s) == 4000ms);
    CHECK(t.failure("192.0.2.1", "c", "123456", t0 + 6s) == 8000ms);
    CHECK(t.delay("192.0.2.1", "d", t0 + 6s) == 8000ms);
}

TEST_CASE("another IP attacking the same account is delayed") {
    Throttle t(settings());
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
    Throttle t(settings());
    t.failure("192.0.2.1", "alice", "fp1", t0);
    CHECK(t.delay("192.0.2.1", "bob", t0 + 500ms) == 1500ms);
    CHECK(t.delay("192.0.2.1", "", t0 + 500ms) == 1500ms);
    CHECK(t.delay("192.0.2.2", "bob", t0 + 500ms) == 0ms);
}

TEST_CASE("the delay is the larger of the IP's and the account's") {
    Throttle t(settings());
    t.failure("192.0.2.1", "alice", "a1", t0);
    t.failure("192.0.2.1", "alice", "a2", t0 + 2s);
    t.failure("192.0.2.1", "alice", "a3", t0 + 6s);  // alice and 192.0.2.1: 8 s from t0+6s
    t.failure("198.51.100.7", "bob", "b1", t0 + 6s);  // bob and 198.51.100.7: 2 s
    CHECK(t.delay("198.51.100.7", "alice", t0 + 7s) == 7000ms);
    CHECK(t.delay("192.0.2.1", "bob", t0 + 7s) == 7000ms);
    CHECK(t.delay("198.51.100.7", "bob", t0 + 7s) == 1000ms);
}

TEST_CASE("failures before the login is known penalise the IP only") {
    Throttle t(settings());
    CHECK(t.failure("192.0.2.1", "", "fp", t0) == 2000ms);
    CHECK(t.size() == 1);
    CHECK(t.delay("198.51.100.7", "", t0) == 0ms);
}

TEST_CASE("the delay decreases with time and ends at zero") {
    Throttle t(settings());
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
    Throttle t(settings());
    t.failure("192.0.2.1", "alice", "fp", t0);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 1999500us) == 1ms);
}

TEST_CASE("a success clears the account, not the IP") {
    Throttle t(settings());
    t.failure("192.0.2.1", "alice", "fp1", t0);
    t.failure("192.0.2.1", "alice", "fp2", t0 + 2s);
    t.failure("198.51.100.7", "bob", "fp", t0 + 2s);
    REQUIRE(t.size() == 4);
    t.success("192.0.2.1", "alice", t0 + 3s);
    CHECK(t.size() == 3);
    // The account is free; the IP still waits for its own penalty (4 s from t0 + 2 s).
    CHECK(t.delay("198.51.100.9", "alice", t0 + 3s) == 0ms);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 3s) == 3000ms);
    CHECK(t.delay("198.51.100.7", "bob", t0 + 3s) == 1000ms);
    // The account starts over at the first step; the IP keeps counting.
    CHECK(t.failure("192.0.2.9", "alice", "fp3", t0 + 7s) == 2000ms);
}

TEST_CASE("a login to the attacker's own account between guesses does not reset the IP's penalty") {
    // One password tried against four accounts, with a success in between each: the IP's penalty
    // must keep doubling (2, 4, 8, 15 s), not start over at 2 s every time.
    Throttle t(settings());
    auto now = t0;
    std::vector<std::chrono::milliseconds> got;
    for (const char* victim : {"u1@example.com", "u2@example.com", "u3@example.com", "u4@example.com"}) {
        now += t.delay("192.0.2.66", victim, now);
        got.push_back(t.failure("192.0.2.66", victim, "Summer2026!", now));
        now += got.back();
        now += t.delay("192.0.2.66", "mallory@example.com", now);
        t.success("192.0.2.66", "mallory@example.com", now);
    }
    CHECK(got == std::vector<std::chrono::milliseconds>{2000ms, 4000ms, 8000ms, 15000ms});
}

TEST_CASE("concurrent attempts for one key take turns") {
    using A = Throttle::Admission;
    Throttle t(settings([](ThrottleSettings& s) { s.queue_limit = 3; }));
    CHECK(t.enqueue(1, "192.0.2.1", "alice", t0) == A::Go);
    CHECK(t.enqueue(2, "192.0.2.1", "alice", t0) == A::Wait);
    CHECK(t.enqueue(3, "198.51.100.1", "alice", t0) == A::Wait);   // same account, other IP
    CHECK(t.enqueue(4, "192.0.2.1", "bob", t0) == A::Wait);        // same IP, other account
    CHECK(t.enqueue(5, "198.51.100.2", "carol", t0) == A::Go);     // unrelated
    CHECK(t.queued() == 5);
    // 1 fails: 2 is next for both its keys and waits the penalty 1 set.
    t.failure("192.0.2.1", "alice", "fp1", t0 + 100ms);
    auto r = t.finish(1, t0 + 100ms);
    CHECK(r.ready == std::vector<Throttle::AttemptId>{2});
    CHECK(r.refused.empty());
    CHECK(t.delay("192.0.2.1", "alice", t0 + 100ms) == 2000ms);
    // 2 fails at its turn: 3 (alice from elsewhere) and 4 (bob from this IP) are each first in
    // line now, and each waits the penalty of its own keys.
    t.failure("192.0.2.1", "alice", "fp2", t0 + 2200ms);
    r = t.finish(2, t0 + 2200ms);
    std::sort(r.ready.begin(), r.ready.end());
    CHECK(r.ready == std::vector<Throttle::AttemptId>{3, 4});
    CHECK(t.delay("198.51.100.1", "alice", t0 + 2200ms) == 4000ms);
    CHECK(t.delay("192.0.2.1", "bob", t0 + 2200ms) == 4000ms);
    // Finishing an unknown or already finished attempt changes nothing.
    CHECK(t.finish(2, t0 + 2200ms).ready.empty());
    CHECK(t.finish(99, t0 + 2200ms).ready.empty());
    t.finish(3, t0 + 7s);
    t.finish(4, t0 + 7s);
    t.finish(5, t0 + 7s);
    CHECK(t.queued() == 0);
}

TEST_CASE("twenty parallel guesses are checked one after another, each after the previous penalty") {
    // The attack of issue 14: 20 connections send a wrong password for one account at once.
    // With fake time, run the queue as the Authenticator does and count the guesses checked in
    // the first 48 s.
    Throttle t(settings([](ThrottleSettings& s) { s.queue_limit = 20; }));
    std::deque<Throttle::AttemptId> ready;
    for (Throttle::AttemptId id = 1; id <= 20; ++id)
        if (t.enqueue(id, "192.0.2.1", "alice", t0) == Throttle::Admission::Go) ready.push_back(id);
    REQUIRE(ready.size() == 1);
    auto now = t0;
    int checked = 0;
    while (!ready.empty()) {
        auto id = ready.front();
        ready.pop_front();
        now += t.delay("192.0.2.1", "alice", now);
        if (now - t0 > 48s) break;
        ++checked;
        t.failure("192.0.2.1", "alice", "fp" + std::to_string(id), now);
        for (auto next : t.finish(id, now).ready) ready.push_back(next);
    }
    // 0, 2, 6, 14, 29, 44 s: six guesses, where the unqueued throttle allowed 60.
    CHECK(checked == 6);
}

TEST_CASE("while a penalty runs, at most queue_limit attempts wait per key; the rest are refused") {
    using A = Throttle::Admission;
    Throttle t(settings([](ThrottleSettings& s) { s.queue_limit = 2; }));
    // Without a penalty, a burst queues whole (an office behind one NAT address logging in).
    for (Throttle::AttemptId id = 1; id <= 6; ++id)
        CHECK(t.enqueue(id, "192.0.2.1", "alice", t0) == (id == 1 ? A::Go : A::Wait));
    // The first fails: the queue shrinks to the one checked next plus two waiting; the newest go.
    t.failure("192.0.2.1", "alice", "fp1", t0);
    auto r = t.finish(1, t0);
    CHECK(r.ready == std::vector<Throttle::AttemptId>{2});
    std::sort(r.refused.begin(), r.refused.end());
    CHECK(r.refused == std::vector<Throttle::AttemptId>{5, 6});
    CHECK(t.queued() == 3);
    // While the penalty runs, a newcomer is refused at once, for the account from any IP...
    CHECK(t.enqueue(7, "198.51.100.1", "alice", t0 + 1s) == A::Refused);
    // ... and for any account from the IP.
    CHECK(t.enqueue(8, "192.0.2.1", "bob", t0 + 1s) == A::Refused);
    CHECK(t.queued() == 3);
    // Others are not affected.
    CHECK(t.enqueue(9, "198.51.100.1", "bob", t0 + 1s) == A::Go);
    // Once the queue is shorter, a newcomer waits again.
    t.failure("192.0.2.1", "alice", "fp2", t0 + 2s);
    CHECK(t.finish(2, t0 + 2s).ready == std::vector<Throttle::AttemptId>{3});
    CHECK(t.enqueue(10, "192.0.2.1", "alice", t0 + 2s) == A::Wait);
    CHECK(t.enqueue(11, "192.0.2.1", "alice", t0 + 2s) == A::Refused);
}

TEST_CASE("an abandoned attempt leaves the queue and lets the next one go") {
    using A = Throttle::Admission;
    Throttle t(settings());
    CHECK(t.enqueue(1, "2001:db8::1", "alice", t0) == A::Go);
    CHECK(t.enqueue(2, "2001:db8::2", "bob", t0) == A::Wait);    // same /64
    CHECK(t.enqueue(3, "2001:db8::3", "bob", t0) == A::Wait);
    // 2 is abandoned while it waits (its connection closed): nothing becomes ready.
    CHECK(t.finish(2, t0).ready.empty());
    // 1 ends: 3 goes.
    CHECK(t.finish(1, t0).ready == std::vector<Throttle::AttemptId>{3});
    t.finish(3, t0);
    CHECK(t.queued() == 0);
}

TEST_CASE("an attempt refused from one queue lets the next in its other queue go") {
    using A = Throttle::Admission;
    Throttle t(settings([](ThrottleSettings& s) { s.queue_limit = 0; }));
    CHECK(t.enqueue(1, "192.0.2.1", "alice", t0) == A::Go);
    CHECK(t.enqueue(2, "192.0.2.1", "alice", t0) == A::Wait);
    CHECK(t.enqueue(3, "192.0.2.1", "bob", t0) == A::Wait);       // first for bob, not for the IP
    CHECK(t.enqueue(4, "198.51.100.1", "bob", t0) == A::Wait);    // behind 3 for bob
    t.failure("192.0.2.1", "alice", "fp", t0);
    auto r = t.finish(1, t0);
    CHECK(r.refused == std::vector<Throttle::AttemptId>{3});
    std::sort(r.ready.begin(), r.ready.end());
    CHECK(r.ready == std::vector<Throttle::AttemptId>{2, 4});
}

TEST_CASE("entries idle longer than forget_after are forgotten") {
    Throttle t(settings([](ThrottleSettings& s) { s.forget_after = 60s; }));
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
    t.success("203.0.113.5", "carol", t0 + 127s);  // carol's account entry goes, the IP's stays
    CHECK(t.size() == 3);
    t.success("203.0.113.5", "carol", t0 + 160s);  // bob's idle for 60 s: gone
    CHECK(t.size() == 1);
    t.success("203.0.113.5", "carol", t0 + 187s);  // and the IP's, idle for 60 s
    CHECK(t.size() == 0);
}

TEST_CASE("an expired entry gives no delay even with a long max") {
    Throttle t(settings([](ThrottleSettings& s) { s.initial = 10s; s.max = 1h; s.forget_after = 60s; }));
    t.failure("192.0.2.1", "alice", "fp1", t0);
    t.failure("192.0.2.1", "alice", "fp2", t0 + 10s);
    t.failure("192.0.2.1", "alice", "fp3", t0 + 30s);  // 40 s penalty, but idle after 60 s
    CHECK(t.delay("192.0.2.1", "alice", t0 + 50s) == 20000ms);
    CHECK(t.delay("192.0.2.1", "alice", t0 + 90s) == 0ms);
}

TEST_CASE("the entry count never exceeds max_entries; the oldest goes first") {
    Throttle t(settings([](ThrottleSettings& s) { s.max_entries = 10; }));
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
    Throttle t(settings([](ThrottleSettings& s) { s.max_entries = 2; }));
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
    Throttle t(settings());
    for (int i = 0; i < 20; ++i)
        t.failure("10.0.0." + std::to_string(i), "", "fp", t0 + std::chrono::seconds(i));
    REQUIRE(t.size() == 20);
    t.set_settings(settings([](ThrottleSettings& s) { s.max_entries = 5; }));
    CHECK(t.size() == 5);
    CHECK(t.delay("10.0.0.19", "", t0 + 19s) == 2000ms);
    CHECK(t.delay("10.0.0.14", "", t0 + 14s) == 0ms);
}

TEST_CASE("changed settings apply to the next computation") {
    Throttle t(settings());
    t.failure("192.0.2.1", "", "fp1", t0);
    t.set_settings(settings([](ThrottleSettings& s) { s.initial = 1s; s.max = 3s; }));
    CHECK(t.delay("192.0.2.1", "", t0) == 1000ms);
    CHECK(t.failure("192.0.2.1", "", "fp2", t0) == 2000ms);
    CHECK(t.failure("192.0.2.1", "", "fp3", t0) == 3000ms);
}

TEST_CASE("IPv6 addresses are penalised by /64") {
    Throttle t(settings());
    t.failure("2001:db8:1:2::1", "", "fp1", t0);
    CHECK(t.delay("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "", t0) == 2000ms);
    CHECK(t.delay("2001:0db8:0001:0002:0000:0000:0000:0099", "", t0) == 2000ms);
    CHECK(t.delay("[2001:db8:1:2::5]", "", t0) == 2000ms);
    CHECK(t.delay("2001:db8:1:3::1", "", t0) == 0ms);
    // A new address from the same /64 grows the same penalty.
    CHECK(t.failure("2001:db8:1:2:ffff::1", "", "fp2", t0 + 2s) == 4000ms);
    CHECK(t.size() == 1);
    // A success from the /64 doesn't clear it (only an account's own entry is cleared).
    t.success("2001:db8:1:2::77", "", t0 + 3s);
    CHECK(t.delay("2001:db8:1:2::1", "", t0 + 3s) == 3000ms);
}

TEST_CASE("IPv4-mapped IPv6 addresses count as the IPv4 address, not as one /64") {
    Throttle t(settings());
    t.failure("::ffff:192.0.2.1", "", "fp", t0);
    CHECK(t.delay("192.0.2.1", "", t0) == 2000ms);
    CHECK(t.delay("::ffff:192.0.2.2", "", t0) == 0ms);
    CHECK(t.delay("198.51.100.7", "", t0) == 0ms);
}

TEST_CASE("link-local zones are ignored and non-addresses are keys as given") {
    Throttle t(settings());
    t.failure("fe80::1%eth0", "", "fp", t0);
    CHECK(t.delay("fe80::2%eth1", "", t0) == 2000ms);
    t.failure("local", "", "fp", t0);
    CHECK(t.delay("local", "", t0) == 2000ms);
    CHECK(t.delay("other", "", t0) == 0ms);
}
