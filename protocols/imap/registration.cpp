// IMAP's registry entry and goodbye lines (see registration.hpp).
#include "protocols/imap/registration.hpp"

#include "protocols/imap/session.hpp"

namespace pillarbox::imap {

std::string goodbye(Goodbye why, std::string_view) {
    switch (why) {
        case Goodbye::TooManyConnections: return "* BYE [UNAVAILABLE] Too many connections, try again later\r\n";
        case Goodbye::ShuttingDown: return "* BYE [UNAVAILABLE] Server shutting down\r\n";
        case Goodbye::IdleTimeout: return "* BYE Disconnected for inactivity\r\n";
        case Goodbye::NotAvailable: return "* BYE [UNAVAILABLE] IMAP service not available yet\r\n";
    }
    return "";
}

ProtocolEntry registration(std::shared_ptr<Services> services) {
    ProtocolEntry e;
    e.protocol = config::Protocol::Imap;
    e.name = "imap";
    e.log_service = "imap";
    e.idle_timeout_parameter = "imap_idle_timeout";
    e.goodbye = &goodbye;
    e.make_session = [services = std::move(services)](SessionIo& io) { return make_session(io, services); };
    return e;
}

}  // namespace pillarbox::imap
