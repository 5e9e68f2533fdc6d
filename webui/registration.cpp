// The HTTP listener's registry entry and goodbye responses (see registration.hpp).
#include "webui/registration.hpp"

#include <fmt/format.h>

#include "protocols/common/unavailable_session.hpp"

namespace pillarbox::webui {
namespace {

std::string http_503(std::string_view text) {
    return fmt::format("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                       "Content-Length: {}\r\nConnection: close\r\nRetry-After: 60\r\n\r\n{}\n",
                       text.size() + 1, text);
}

}  // namespace

std::string goodbye(Goodbye why, std::string_view) {
    switch (why) {
        case Goodbye::TooManyConnections: return http_503("Too many connections, try again later.");
        case Goodbye::ShuttingDown: return http_503("Server shutting down.");
        case Goodbye::IdleTimeout: return "";
        case Goodbye::NotAvailable: return http_503("The web UI is not available yet.");
    }
    return "";
}

ProtocolEntry registration() {
    ProtocolEntry e;
    e.protocol = config::Protocol::Http;
    e.name = "http";
    e.log_service = "http";
    e.idle_timeout_parameter = "http_idle_timeout";
    e.goodbye = &goodbye;
    e.make_session = [](SessionIo& io) { return protocols::make_unavailable_session(io, &goodbye); };
    return e;
}

}  // namespace pillarbox::webui
