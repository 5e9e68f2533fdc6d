// HELO and EHLO (RFC 5321 4.1.1.1): the client's name, a fresh start, and the extensions
// offered on this connection now.
#include "protocols/smtp/smtp_session.hpp"

#include <fmt/format.h>

namespace pillarbox::smtp {

void SmtpSession::helo(const std::string& arg, bool esmtp) {
    std::string name(arg);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
    // Refused before anything changes: the previous HELO name and transaction stay as they were.
    if (auto bad = check_helo_name(name, esmtp)) {
        error_reply(*bad);
        return;
    }
    reset_transaction();
    helo_name_ = name;
    esmtp_ = esmtp;
    if (!esmtp) {
        reply(250, "", s_.hostname);
        return;
    }
    std::vector<std::string> lines{s_.hostname, "PIPELINING"};
    if (s_.message_size_limit) lines.push_back(fmt::format("SIZE {}", s_.message_size_limit));
    else lines.push_back("SIZE");
    if (!s_.disable_vrfy) lines.push_back("VRFY");
    if (!tls_active() && s_.tls != Settings::Tls::None && info_.tls_mode == config::TlsMode::StartTls) lines.push_back("STARTTLS");
    if (s_.sasl_enabled && services_->auth && (tls_active() || s_.tls != Settings::Tls::Encrypt)) {
        auto mechs = services_->auth->mechanisms(auth_client());
        if (!mechs.empty()) {
            std::string l = "AUTH";
            for (auto& m : mechs) l += " " + m;
            lines.push_back(l);
        }
    }
    lines.push_back("ENHANCEDSTATUSCODES");
    lines.push_back("8BITMIME");
    lines.push_back("DSN");
    lines.push_back("SMTPUTF8");
    lines.push_back("CHUNKING");
    if (tls_active()) lines.push_back("REQUIRETLS");
    std::string out;
    for (std::size_t i = 0; i < lines.size(); ++i) out += fmt::format("250{}{}\r\n", i + 1 == lines.size() ? ' ' : '-', lines[i]);
    reply_raw(std::move(out));
}

}  // namespace pillarbox::smtp
