// AUTH (RFC 4954): the SASL exchange runs in the session core's driver, through the shared
// Authenticator and its throttle.
#include "protocols/smtp/smtp_session.hpp"

#include <fmt/format.h>

#include "server/ascii.hpp"

namespace pillarbox::smtp {

void SmtpSession::cmd_auth(const std::string& args) {
    // Where AUTH is allowed at all (SASL on, EHLO, not logged in, no transaction, TLS where
    // required) is the command table's business: see SmtpSession::commands().
    auto space = args.find(' ');
    std::string mech = ascii_upper(args.substr(0, space));
    std::optional<std::string> initial;
    if (space != std::string::npos) initial = args.substr(space + 1);
    if (mech.empty()) {
        error_reply(501, "5.5.4", "Syntax: AUTH mechanism");
        return;
    }
    if (auto o = services_->auth->offer(mech, auth_client()); o != auth::Authentication::Offer::Yes) {
        if (o == auth::Authentication::Offer::NeedsTls)
            error_reply(538, "5.7.11", "Encryption required for requested authentication mechanism");
        else
            error_reply(504, "5.5.4", "Unsupported authentication mechanism");
        return;
    }
    sasl_method_ = mech;
    sasl_.start(services_->auth->begin(mech, auth_client()), std::move(initial),
                [this](const auth::Result& r, const protocols::SaslReplies::Final* failure) { auth_done(r, failure); });
}

void SmtpSession::auth_done(const auth::Result& r, const protocols::SaslReplies::Final* failure) {
    if (failure) {
        error_reply(Reply::parse(failure->line));
    } else {
        sasl_user_ = r.user;
        io_.set_authenticated();
        reply(235, "2.7.0", "Authentication successful");
    }
    unpark();
}

}  // namespace pillarbox::smtp
