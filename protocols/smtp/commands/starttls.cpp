// STARTTLS (RFC 3207): the TLS handshake on a plain connection; what the client said before is
// forgotten when it completes (SmtpSession::on_tls_started).
#include "protocols/smtp/smtp_session.hpp"

#include <fmt/format.h>

namespace pillarbox::smtp {

void SmtpSession::cmd_starttls(const std::string& args) {
    if (!args.empty()) {
        error_reply(501, "5.5.4", "Syntax: STARTTLS");
        return;
    }
    if (tls_active()) {
        error_reply(554, "5.5.1", "Error: TLS already active");
        return;
    }
    if (info_.tls_mode != config::TlsMode::StartTls || s_.tls == Settings::Tls::None) {
        error_reply(502, "5.5.1", "Error: command not implemented");
        return;
    }
    reply(220, "2.0.0", "Ready to start TLS");
    park();  // on_tls_started() resumes; pipelined plaintext is thrown away by the Connection
    io_.start_tls();
}

}  // namespace pillarbox::smtp
