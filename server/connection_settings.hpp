// What a Connection needs from the place that accepted it: a TCP listener (ListenerState builds
// on this) or a Unix-domain service such as the Dovecot auth socket.
#pragma once
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "config.hpp"
#include "listener_def.hpp"
#include "tls.hpp"

namespace pillarbox {

// An idle timeout that never expires (a Unix-domain peer like Postfix keeps its connection open).
inline constexpr std::chrono::milliseconds kNoIdleTimeout = std::chrono::milliseconds::max();

struct ConnectionSettings {
    std::string name;         // listener name in log lines and ConnectionInfo: "smtp" for listen_smtp
    std::string log_service;  // the service in log lines: "smtpd", "pop3", "auth"
    config::TlsMode tls_mode = config::TlsMode::None;
    std::shared_ptr<tls::ServerContexts> tls;      // null: no TLS (always for Unix-domain streams)
    std::shared_ptr<const config::Config> config;  // the listener's effective config; may be null
    // A TCP listener's come from its parameters (build_runtime; their defaults are written once,
    // in server/parameters.cpp); a Unix-domain service sets its own.
    std::chrono::milliseconds idle_timeout{};           // smtpd_timeout, pop3_idle_timeout, ...; kNoIdleTimeout: none
    std::chrono::milliseconds tls_handshake_timeout{};  // tls_handshake_timeout: implicit TLS and STARTTLS
    std::size_t input_limit{};                          // input_buffer_limit
    std::size_t output_limit{};                         // output_buffer_limit
    // The "connect from" / "disconnect from" lines; a service that logs its own clients says no.
    bool log_connections = true;
    // Zero read buffers once the session has used them: the bytes may be passwords (auth socket).
    bool wipe_input = false;
};

}  // namespace pillarbox
