// The commands with no state of their own: RSET, NOOP, QUIT, HELP, VRFY (RFC 5321 4.1.1.5-10).
#include "protocols/smtp/smtp_session.hpp"

#include <fmt/format.h>

namespace pillarbox::smtp {

void SmtpSession::cmd_rset(const std::string&) {
    reset_transaction();
    reply(250, "2.0.0", "Ok");
}

void SmtpSession::cmd_quit(const std::string&) {
    reply(221, "2.0.0", "Bye");
    io_.close();
    state_ = State::Closed;
}

void SmtpSession::cmd_vrfy(const std::string&) {
    if (s_.disable_vrfy) {
        error_reply(502, "5.5.1", "VRFY command is disabled");
        return;
    }
    // RFC 5321 3.5.3: 252 when we won't say whether the user exists.
    reply(252, "2.0.0", "Send mail, we will try our best");
}

void SmtpSession::cmd_noop(const std::string&) { reply(250, "2.0.0", "Ok"); }

void SmtpSession::cmd_help(const std::string&) { reply(214, "2.0.0", "See https://www.rfc-editor.org/rfc/rfc5321"); }

}  // namespace pillarbox::smtp
