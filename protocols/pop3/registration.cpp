// POP3's registry entry and goodbye lines (see registration.hpp).
#include "protocols/pop3/registration.hpp"

namespace pillarbox::pop3 {

std::string goodbye(Goodbye why, std::string_view) {
    switch (why) {
        case Goodbye::TooManyConnections: return "-ERR [SYS/TEMP] Too many connections, try again later\r\n";
        case Goodbye::ShuttingDown: return "-ERR [SYS/TEMP] Server shutting down\r\n";
        case Goodbye::IdleTimeout: return "-ERR Disconnected for inactivity\r\n";
        case Goodbye::NotAvailable: return "-ERR [SYS/PERM] POP3 service not available yet\r\n";
    }
    return "";
}

ProtocolEntry registration(std::shared_ptr<Services> services) {
    ProtocolEntry e;
    e.protocol = config::Protocol::Pop3;
    e.name = "pop3";
    e.log_service = "pop3";
    e.idle_timeout_parameter = "pop3_idle_timeout";
    e.goodbye = &goodbye;
    e.make_session = [services = std::move(services)](SessionIo& io) { return make_session(io, services); };
    return e;
}

}  // namespace pillarbox::pop3
