// What a client is told after a message's commits, and which queue copies come first.
#include <catch2/catch.hpp>

#include "delivery/outcome.hpp"

using namespace pillarbox;
using namespace pillarbox::delivery;
using storage::RecipientResult;
using storage::queue::Place;

namespace {
RecipientResult ok() {
    RecipientResult r;
    r.ok = true;
    return r;
}
RecipientResult full(bool temporary = false) {
    RecipientResult r;
    r.over_quota = true;
    r.temporary = temporary;
    r.reason = "over quota: 1 + 1 messages > 1";
    return r;
}
RecipientResult io_error() {
    RecipientResult r;
    r.temporary = true;
    r.reason = "create a file in tmp: Not a directory";
    return r;
}
const std::vector<std::string> kAccounts = {"u3@example.com", "u4@example.com", "u5@example.com"};
}  // namespace

TEST_CASE("a message that reached one recipient is accepted; the over-quota one is held with the reason") {
    auto o = decide_outcome({full(), ok()}, kAccounts, false, false);
    CHECK(o.accepted);
    REQUIRE(o.copies.size() == 1);
    CHECK(o.copies[0].place == Place::Hold);
    CHECK(o.copies[0].accounts == std::vector<std::size_t>{0});
    CHECK_THAT(o.copies[0].reason, Catch::StartsWith("5.2.2 mailbox full: u3@example.com: over quota"));
}

TEST_CASE("a temporary failure beside a delivery is queued for a local retry, not answered 451") {
    auto o = decide_outcome({ok(), io_error(), full()}, kAccounts, false, false);
    CHECK(o.accepted);
    REQUIRE(o.copies.size() == 2);
    CHECK(o.copies[0].place == Place::Incoming);
    CHECK(o.copies[0].accounts == std::vector<std::size_t>{1});
    CHECK_THAT(o.copies[0].reason, Catch::Contains("u4@example.com: create a file"));
    CHECK(o.copies[1].place == Place::Hold);
    CHECK(o.copies[1].accounts == std::vector<std::size_t>{2});
}

TEST_CASE("the outbound queue counts as delivered; a failed queue write beside a local delivery is copied again") {
    auto o = decide_outcome({full()}, kAccounts, true, true);
    CHECK(o.accepted);
    REQUIRE(o.copies.size() == 1);
    CHECK(o.copies[0].place == Place::Hold);

    o = decide_outcome({ok()}, kAccounts, true, false);
    CHECK(o.accepted);
    REQUIRE(o.copies.size() == 1);
    CHECK(o.copies[0].place == Place::Messages);
    CHECK(o.copies[0].remote);
}

TEST_CASE("nobody got it: the client keeps the message, 4xx when anything was temporary") {
    auto o = decide_outcome({full(), full()}, kAccounts, false, false);
    CHECK_FALSE(o.accepted);
    CHECK_THAT(o.refusal, Catch::StartsWith("552 5.2.2"));
    CHECK(o.copies.empty());
    CHECK_THAT(decide_outcome({full(), io_error()}, kAccounts, false, false).refusal, Catch::StartsWith("451 4.3.0"));
    CHECK_THAT(decide_outcome({full(true)}, kAccounts, false, false).refusal, Catch::StartsWith("452 4.2.2"));
    CHECK_THAT(decide_outcome({full()}, kAccounts, true, false).refusal, Catch::StartsWith("451 4.3.0"));
    CHECK(decide_outcome({ok(), ok()}, kAccounts, false, false).copies.empty());
}

TEST_CASE("envelope reasons lose control characters and stay bounded") {
    CHECK(envelope_reason("a\r\nb\tc") == "a  b c");
    CHECK(envelope_reason(std::string(5000, 'x')).size() == 1000);
    auto cut = envelope_reason(std::string(999, 'x') + "\xe2\x9c\x93");
    CHECK(cut == std::string(999, 'x'));
}

TEST_CASE("envelope reasons keep a whole UTF-8 character at the end") {
    CHECK(envelope_reason("mailbox \xe2\x9c\x93") == "mailbox \xe2\x9c\x93");
}
