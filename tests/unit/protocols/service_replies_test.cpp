// Goodbye lines are valid replies of their protocol.
#include <catch2/catch.hpp>

#include "protocols/common/service_replies.hpp"

using namespace pillarbox;
using pillarbox::protocols::Goodbye;

TEST_CASE("goodbye replies per protocol") {
    using P = config::Protocol;
    for (auto why : {Goodbye::TooManyConnections, Goodbye::ShuttingDown, Goodbye::IdleTimeout, Goodbye::NotAvailable}) {
        auto smtp = protocols::goodbye(P::Smtp, why, "mx.example");
        CHECK(smtp.rfind("421 4.", 0) == 0);  // RFC 5321 3.8 / RFC 3463 enhanced code
        CHECK(smtp.find("mx.example") != std::string::npos);
        CHECK(smtp.substr(smtp.size() - 2) == "\r\n");
        CHECK(protocols::goodbye(P::Pop3, why, "h").rfind("-ERR ", 0) == 0);
        CHECK(protocols::goodbye(P::Imap, why, "h").rfind("* BYE ", 0) == 0);
    }
    CHECK(protocols::goodbye(P::Http, Goodbye::TooManyConnections, "h").rfind("HTTP/1.1 503 ", 0) == 0);
    CHECK(protocols::goodbye(P::Pop3, Goodbye::TooManyConnections, "h").find("[SYS/TEMP]") != std::string::npos);
}
