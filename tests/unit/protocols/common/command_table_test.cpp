// Command tables: lookup, and the state flags checked in one place (login, transaction, TLS).
#include <catch2/catch.hpp>

#include <string>

#include "protocols/common/command_table.hpp"

using namespace pillarbox::protocols;

TEST_CASE("command table finds verbs and checks state flags in order", "[command_table]") {
    using H = int;
    CommandTable<H> t = {
        {"USER", 1, kBeforeLogin},
        {"STAT", 2, kAfterLogin},
        {"QUIT", 3, kAnyLogin},
        {"MAIL", 4, kAnyLogin | kNoTransaction | kNeedsTls},
        {"RCPT", 5, kAnyLogin | kInTransaction},
    };
    REQUIRE(t.find("USER"));
    CHECK(t.find("USER")->handler == 1);
    CHECK(t.find("user") == nullptr);  // the parsers upper-case verbs
    CHECK(t.find("XYZ") == nullptr);

    CommandState anon{}, in{.logged_in = true};
    CHECK(check_command(t.find("USER")->flags, anon) == Refusal::None);
    CHECK(check_command(t.find("USER")->flags, in) == Refusal::AlreadyLoggedIn);
    CHECK(check_command(t.find("STAT")->flags, anon) == Refusal::NotLoggedIn);
    CHECK(check_command(t.find("QUIT")->flags, anon) == Refusal::None);
    CHECK(check_command(t.find("QUIT")->flags, in) == Refusal::None);

    CommandState tx{.in_transaction = true};
    CHECK(check_command(t.find("RCPT")->flags, anon) == Refusal::NoTransaction);
    CHECK(check_command(t.find("RCPT")->flags, tx) == Refusal::None);
    CHECK(check_command(t.find("MAIL")->flags, tx) == Refusal::InTransaction);
    CommandState plain{.tls_missing = true};
    CHECK(check_command(t.find("MAIL")->flags, plain) == Refusal::NeedsTls);
    // Transaction before TLS: a nested MAIL is reported as such even where TLS is missing.
    CommandState both{.tls_missing = true, .in_transaction = true};
    CHECK(check_command(t.find("MAIL")->flags, both) == Refusal::InTransaction);
}
