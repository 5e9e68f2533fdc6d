// SaslDriver: challenges with the protocol's prefix, the session parked while the Authenticator
// works, responses passed on, and the final replies the protocol gave for each failure.
#include <catch2/catch.hpp>

#include <deque>

#include "protocols/common/sasl_driver.hpp"
#include "tests/unit/protocols/common/fake_io.hpp"

using namespace pillarbox;

namespace {
// An exchange that answers from a script: each start/respond pops the next reply, at once
// (synchronously, as a cached answer does) or when the test calls answer().
class ScriptedExchange : public auth::Exchange {
public:
    explicit ScriptedExchange(std::deque<Reply> script, bool async) : script_(std::move(script)), async_(async) {}
    void start(std::optional<std::string> initial, Callback cb) override {
        seen.push_back(initial.value_or("<none>"));
        reply(std::move(cb));
    }
    void respond(std::string_view line, Callback cb) override {
        seen.push_back(std::string(line));
        reply(std::move(cb));
    }
    void answer() {
        auto cb = std::move(pending_);
        auto r = script_.front();
        script_.pop_front();
        cb(r);
    }
    std::vector<std::string> seen;

private:
    void reply(Callback cb) {
        if (async_) {
            pending_ = std::move(cb);
            return;
        }
        auto r = script_.front();
        script_.pop_front();
        cb(r);
    }
    std::deque<Reply> script_;
    bool async_;
    Callback pending_;
};

auth::Exchange::Reply challenge(std::string c) {
    auth::Exchange::Reply r;
    r.challenge = std::move(c);
    return r;
}
auth::Exchange::Reply done(auth::Result::Status s, std::string user = "") {
    auth::Exchange::Reply r;
    r.done = true;
    r.result.status = s;
    r.result.user = std::move(user);
    return r;
}

const protocols::SaslReplies& replies() {
    static const protocols::SaslReplies r{
        .challenge_prefix = "334 ",
        .failed = {"535 failed", true},
        .temp_fail = {"454 temp", true},
        .aborted = {"501 aborted", true},
        .malformed = {"501 malformed", true},
        .refused = {"538 refused", false},
    };
    return r;
}
}  // namespace

TEST_CASE("sasl driver runs a two-step exchange to a login", "[sasl_driver]") {
    for (bool async : {false, true}) {
        testing::FakeIo io;
        protocols::AsyncGuard guard(io);
        protocols::SaslDriver d(io, guard, replies());
        auto ex = std::make_unique<ScriptedExchange>(
            std::deque<auth::Exchange::Reply>{challenge("VXNlcm5hbWU6"), done(auth::Result::Status::Ok, "bob@example.com")}, async);
        auto* exp = ex.get();
        std::optional<std::string> user;
        bool failure_reply = false;
        d.start(std::move(ex), std::nullopt, [&](const auth::Result& r, const protocols::SaslReplies::Final* f) {
            user = r.user;
            failure_reply = f != nullptr;
        });
        CHECK(d.active());
        CHECK(guard.parked() == async);  // an answer at once (a cached one) unparks at once
        if (async) exp->answer();
        CHECK(io.take() == "334 VXNlcm5hbWU6\r\n");
        CHECK(!guard.parked());  // the client may answer now
        d.respond("Ym9i");
        CHECK(guard.parked());  // parked until the answer, and after a final one
        if (async) exp->answer();
        CHECK(!d.active());
        REQUIRE(user);
        CHECK(*user == "bob@example.com");
        CHECK(!failure_reply);
        CHECK(guard.parked());  // the session decides when to take the next command
    }
}

TEST_CASE("sasl driver passes the protocol's final reply for each failure", "[sasl_driver]") {
    using St = auth::Result::Status;
    for (auto [status, line] : std::vector<std::pair<St, std::string>>{
             {St::Failed, "535 failed"}, {St::TempFail, "454 temp"}, {St::Aborted, "501 aborted"},
             {St::Malformed, "501 malformed"}, {St::Refused, "538 refused"}}) {
        testing::FakeIo io;
        protocols::AsyncGuard guard(io);
        protocols::SaslDriver d(io, guard, replies());
        std::string got;
        d.start(std::make_unique<ScriptedExchange>(std::deque<auth::Exchange::Reply>{done(status)}, false), std::string("="),
                [&](const auth::Result&, const protocols::SaslReplies::Final* f) { got = f ? f->line : "none"; });
        CHECK(got == line);
        CHECK(io.take().empty());  // the session sends it (and counts it) itself
    }
}

TEST_CASE("sasl driver answers nothing once the session is gone", "[sasl_driver]") {
    testing::FakeIo io;
    auto guard = std::make_unique<protocols::AsyncGuard>(io);
    protocols::SaslDriver d(io, *guard, replies());
    auto ex = std::make_unique<ScriptedExchange>(std::deque<auth::Exchange::Reply>{challenge("x")}, true);
    auto* exp = ex.get();
    bool called = false;
    d.start(std::move(ex), std::nullopt, [&](const auth::Result&, const protocols::SaslReplies::Final*) { called = true; });
    guard->end();
    exp->answer();
    CHECK(io.take().empty());
    CHECK(!called);
}
