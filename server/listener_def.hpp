// The value of a listen_NAME parameter: "PROTOCOL TLS-MODE ADDRESS... [NAME=VALUE...]", e.g.
// listen_submission = smtp starttls 587 smtpd_timeout=600s
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config_values.hpp"

namespace pillarbox::config {

enum class Protocol { Smtp, Pop3, Imap, Http };
enum class TlsMode { None, StartTls, Implicit };

std::string_view to_string(Protocol p);
std::string_view to_string(TlsMode m);

struct ListenerLine {
    Protocol protocol = Protocol::Smtp;
    TlsMode tls = TlsMode::None;
    std::vector<Endpoint> endpoints;
    std::vector<std::pair<std::string, std::string>> overrides;
};

Parsed<ListenerLine> parse_listener_line(std::string_view value);

}  // namespace pillarbox::config
