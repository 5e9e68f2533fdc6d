// SMTP's registry entry and goodbye lines (see registration.hpp).
#include "protocols/smtp/registration.hpp"

#include <fmt/format.h>

#include "protocols/smtp/policy/policy.hpp"

namespace pillarbox::smtp {

std::string goodbye(Goodbye why, std::string_view host) {
    switch (why) {
        case Goodbye::TooManyConnections: return fmt::format("421 4.7.0 {} Error: too many connections\r\n", host);
        case Goodbye::ShuttingDown: return fmt::format("421 4.3.2 {} Service shutting down, closing transmission channel\r\n", host);
        case Goodbye::IdleTimeout: return fmt::format("421 4.4.2 {} Error: timeout exceeded\r\n", host);
        case Goodbye::NotAvailable: return fmt::format("421 4.3.2 {} SMTP service not available yet, closing transmission channel\r\n", host);
    }
    return "";
}

ProtocolEntry registration(std::shared_ptr<Services> services) {
    ProtocolEntry e;
    e.protocol = config::Protocol::Smtp;
    e.name = "smtp";
    e.log_service = "smtpd";  // Postfix's name, so log tools find the lines they know
    e.idle_timeout_parameter = "smtpd_timeout";
    e.goodbye = &goodbye;
    e.make_session = [services = std::move(services)](SessionIo& io) { return make_session(io, services); };
    // A typo in a listener's restriction lists, or lists without a relay guard, stop serve,
    // reload and check instead of making an open relay.
    e.check_listener = [](const config::Config& c) { return policy::PolicySettings::from(c).errors; };
    return e;
}

}  // namespace pillarbox::smtp
