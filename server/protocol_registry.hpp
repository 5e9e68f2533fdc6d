// The protocols a server can serve, each described once: its listener word, log name, idle
// timeout parameter, goodbye lines and session factory. The composition root (app/) registers
// the protocol folders' entries; the ground floor reads them instead of switching on a protocol.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "listener_def.hpp"
#include "session.hpp"

namespace pillarbox {

// Why a session turns a client away or says goodbye before the client does.
enum class Goodbye { TooManyConnections, ShuttingDown, IdleTimeout, NotAvailable };

// The protocol's complete reply for `why`, CRLF-terminated; hostname is myhostname. Empty when
// the protocol just closes (HTTP on an idle timeout).
using GoodbyeText = std::string (*)(Goodbye why, std::string_view hostname);

struct ProtocolEntry {
    config::Protocol protocol = config::Protocol::Smtp;  // the PROTOCOL word of listen_NAME lines
    std::string name;                    // that word: "smtp"
    std::string log_service;             // the service in log lines: "smtpd", like Postfix's
    std::string idle_timeout_parameter;  // per-listener parameter with the idle timeout: "smtpd_timeout"
    GoodbyeText goodbye = nullptr;
    SessionFactory make_session;
    // Optional: what only the protocol can judge in one listener's settings (an SMTP listener's
    // restriction lists); each string is an error that stops serve, reload and check.
    std::function<std::vector<std::string>(const config::Config&)> check_listener;
};

class ProtocolRegistry {
public:
    // Throws std::logic_error for a protocol registered twice or an entry without a session
    // factory or goodbye text: both are wiring mistakes in app/.
    void add(ProtocolEntry entry);
    // Null when nothing serves the protocol in this build.
    std::shared_ptr<const ProtocolEntry> find(config::Protocol protocol) const;
    std::vector<std::shared_ptr<const ProtocolEntry>> entries() const;

private:
    std::map<config::Protocol, std::shared_ptr<const ProtocolEntry>> entries_;
};

}  // namespace pillarbox
