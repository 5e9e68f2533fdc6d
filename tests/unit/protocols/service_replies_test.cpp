// Goodbye lines are valid replies of their protocol.
#include <catch2/catch.hpp>

#include "protocols/imap/registration.hpp"
#include "protocols/pop3/registration.hpp"
#include "protocols/smtp/registration.hpp"
#include "webui/registration.hpp"

using namespace pillarbox;
using pillarbox::Goodbye;

TEST_CASE("goodbye replies per protocol") {
    for (auto why : {Goodbye::TooManyConnections, Goodbye::ShuttingDown, Goodbye::IdleTimeout, Goodbye::NotAvailable}) {
        auto smtp = smtp::goodbye(why, "mx.example");
        CHECK(smtp.rfind("421 4.", 0) == 0);  // RFC 5321 3.8 / RFC 3463 enhanced code
        CHECK(smtp.find("mx.example") != std::string::npos);
        CHECK(smtp.substr(smtp.size() - 2) == "\r\n");
        CHECK(pop3::goodbye(why, "h").rfind("-ERR ", 0) == 0);
        CHECK(imap::goodbye(why, "h").rfind("* BYE ", 0) == 0);
    }
    CHECK(webui::goodbye(Goodbye::TooManyConnections, "h").rfind("HTTP/1.1 503 ", 0) == 0);
    CHECK(pop3::goodbye(Goodbye::TooManyConnections, "h").find("[SYS/TEMP]") != std::string::npos);
}
