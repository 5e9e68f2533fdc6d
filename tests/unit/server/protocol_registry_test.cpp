// The protocol registry: entries are found by their listener word, and wiring mistakes (a
// protocol twice, a missing factory, a name that isn't the listener word) fail loudly.
#include <catch2/catch.hpp>

#include <stdexcept>

#include "server/protocol_registry.hpp"

using namespace pillarbox;

namespace {
ProtocolEntry entry(config::Protocol p, std::string name) {
    ProtocolEntry e;
    e.protocol = p;
    e.name = name;
    e.log_service = name + "d";
    e.idle_timeout_parameter = name + "_idle_timeout";
    e.goodbye = [](Goodbye, std::string_view) { return std::string("bye\r\n"); };
    e.make_session = [](SessionIo&) { return std::unique_ptr<Session>(); };
    return e;
}
}  // namespace

TEST_CASE("protocol registry finds entries by their listener word") {
    ProtocolRegistry r;
    r.add(entry(config::Protocol::Pop3, "pop3"));
    r.add(entry(config::Protocol::Smtp, "smtp"));
    REQUIRE(r.find(config::Protocol::Smtp));
    CHECK(r.find(config::Protocol::Smtp)->log_service == "smtpd");
    CHECK(r.find(config::Protocol::Pop3)->idle_timeout_parameter == "pop3_idle_timeout");
    CHECK_FALSE(r.find(config::Protocol::Imap));
    CHECK(r.entries().size() == 2);
}

TEST_CASE("protocol registry refuses wiring mistakes") {
    ProtocolRegistry r;
    r.add(entry(config::Protocol::Smtp, "smtp"));
    CHECK_THROWS_AS(r.add(entry(config::Protocol::Smtp, "smtp")), std::logic_error);
    CHECK_THROWS_AS(r.add(entry(config::Protocol::Imap, "pop3")), std::logic_error);
    auto no_factory = entry(config::Protocol::Imap, "imap");
    no_factory.make_session = nullptr;
    CHECK_THROWS_AS(r.add(no_factory), std::logic_error);
    auto no_goodbye = entry(config::Protocol::Imap, "imap");
    no_goodbye.goodbye = nullptr;
    CHECK_THROWS_AS(r.add(no_goodbye), std::logic_error);
    CHECK_FALSE(r.find(config::Protocol::Imap));
}
