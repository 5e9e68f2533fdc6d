// Goodbye lines per protocol (see service_replies.hpp).
#include "service_replies.hpp"

#include <fmt/format.h>

namespace pillarbox::protocols {
namespace {

std::string http_503(std::string_view text) {
    return fmt::format("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                       "Content-Length: {}\r\nConnection: close\r\nRetry-After: 60\r\n\r\n{}\n",
                       text.size() + 1, text);
}

}  // namespace

std::string goodbye(config::Protocol protocol, Goodbye why, std::string_view host) {
    using config::Protocol;
    switch (protocol) {
        case Protocol::Smtp:
            // RFC 5321 section 3.8: 421 may be sent at any time when the server must close.
            switch (why) {
                case Goodbye::TooManyConnections: return fmt::format("421 4.7.0 {} Error: too many connections\r\n", host);
                case Goodbye::ShuttingDown: return fmt::format("421 4.3.2 {} Service shutting down, closing transmission channel\r\n", host);
                case Goodbye::IdleTimeout: return fmt::format("421 4.4.2 {} Error: timeout exceeded\r\n", host);
                case Goodbye::NotAvailable: return fmt::format("421 4.3.2 {} SMTP service not available yet, closing transmission channel\r\n", host);
            }
            break;
        case Protocol::Pop3:
            // RFC 2449 section 8.1.2: [SYS/TEMP] marks a temporary server-side problem.
            switch (why) {
                case Goodbye::TooManyConnections: return "-ERR [SYS/TEMP] Too many connections, try again later\r\n";
                case Goodbye::ShuttingDown: return "-ERR [SYS/TEMP] Server shutting down\r\n";
                case Goodbye::IdleTimeout: return "-ERR Disconnected for inactivity\r\n";
                case Goodbye::NotAvailable: return "-ERR [SYS/PERM] POP3 service not available yet\r\n";
            }
            break;
        case Protocol::Imap:
            // RFC 9051 section 7.1.5: BYE may be the greeting; UNAVAILABLE is RFC 5530's code.
            switch (why) {
                case Goodbye::TooManyConnections: return "* BYE [UNAVAILABLE] Too many connections, try again later\r\n";
                case Goodbye::ShuttingDown: return "* BYE [UNAVAILABLE] Server shutting down\r\n";
                case Goodbye::IdleTimeout: return "* BYE Disconnected for inactivity\r\n";
                case Goodbye::NotAvailable: return "* BYE [UNAVAILABLE] IMAP service not available yet\r\n";
            }
            break;
        case Protocol::Http:
            switch (why) {
                case Goodbye::TooManyConnections: return http_503("Too many connections, try again later.");
                case Goodbye::ShuttingDown: return http_503("Server shutting down.");
                case Goodbye::IdleTimeout: return "";  // HTTP just closes an idle connection
                case Goodbye::NotAvailable: return http_503("The web UI is not available yet.");
            }
            break;
    }
    return "";
}

}  // namespace pillarbox::protocols
