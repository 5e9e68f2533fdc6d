// MAIL FROM (RFC 5321 4.1.1.2, with the ESMTP parameters): a new transaction, and who may use
// the sender address (reject_sender_login_mismatch) when the policy asks.
#include "protocols/smtp/smtp_session.hpp"

#include <fmt/format.h>

#include <openssl/rand.h>

#include <algorithm>

#include "server/ascii.hpp"
#include "server/log.hpp"
#include "server/worker_pool.hpp"

namespace pillarbox::smtp {

namespace {

// A Postfix-style queue id: 10 upper-case hex digits from time and randomness.
std::string new_queue_id() {
    std::uint8_t r[3];
    RAND_bytes(r, sizeof r);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return fmt::format("{:06X}{:02X}{:02X}", static_cast<unsigned>(us & 0xFFFFFF), r[0], r[1] ^ r[2]);
}

}  // namespace

MailExtensions extensions_for(bool esmtp, bool tls, bool auth) {
    MailExtensions e;
    if (!esmtp) {
        e.size = e.eightbitmime = e.smtputf8 = e.dsn = e.requiretls = e.auth = false;
        return e;
    }
    e.requiretls = tls;
    e.auth = auth;
    return e;
}

void SmtpSession::cmd_mail(const std::string& args) {
    if (!helo_name_ && policy() && policy()->helo_required) {
        error_reply(503, "5.5.1", "Error: send HELO/EHLO first");
        return;
    }
    auto parsed = parse_mail_from(args, esmtp_);
    if (!parsed.path) {
        error_reply(parsed.error);
        return;
    }
    std::string perr;
    auto params = parse_params(parsed.rest, perr, esmtp_);
    if (!params) {
        error_reply(501, "5.5.4", fmt::format("Bad MAIL parameter syntax: {}", perr));
        return;
    }
    auto v = validate_mail_params(*params, extensions_for(esmtp_, tls_active(), s_.sasl_enabled));
    if (auto* e = std::get_if<ParamError>(&v)) {
        error_reply(*e);
        return;
    }
    auto mp = std::get<MailParams>(v);
    if (mp.size && s_.message_size_limit && *mp.size > s_.message_size_limit) {
        error_reply(552, "5.3.4", "Message size exceeds fixed limit");
        return;
    }
    // RFC 6531 3.4: a UTF-8 envelope needs the SMTPUTF8 parameter.
    auto non_ascii = [](const std::string& s) { return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x80; }); };
    if (!mp.smtputf8 && (non_ascii(parsed.path->local) || non_ascii(parsed.path->domain))) {
        error_reply(553, "5.6.7", "Error: the SMTPUTF8 parameter is required for this address");
        return;
    }
    auto& t = tx_.emplace();
    t.queue_id = new_queue_id();
    t.sender = *parsed.path;
    t.sender.domain = ascii_lower(t.sender.domain);
    t.params = mp;
    log::line(log::Level::Info, "smtpd", tx_->queue_id, "client={}{}", client(),
              sasl_user_.empty() ? std::string() : fmt::format(", sasl_method={}, sasl_username={}", sasl_method_, sasl_user_));
    if (tx_->sender.null || !policy() || !policy()->uses_sender_login_maps()) {
        reply(250, "2.1.0", "Ok");
        return;
    }
    // Which logins own this sender address (reject_sender_login_mismatch): the account itself,
    // the accounts its aliases reach (not catch-alls), and smtpd_sender_login_maps.
    park();
    auto db = services_->accounts;
    auto rs = recipient_settings();
    auto pol = policy_;
    std::string sender = tx_->sender.address();
    services_->workers->run(
        [db, rs, pol, sender]() -> std::optional<std::vector<std::string>> {
            std::vector<std::string> owners = pol->sender_login_owners(sender);
            if (!db) return owners;
            try {
                auth::RecipientResolver r(*db, *rs);
                for (auto& a : r.sender_owners(sender))
                    if (std::find(owners.begin(), owners.end(), a) == owners.end()) owners.push_back(a);
            } catch (const std::exception&) {
                return std::nullopt;  // the database failed: neither accept nor refuse for good
            }
            return owners;
        },
        guard_.wrap([this](std::optional<std::vector<std::string>> owners) {
            if (!owners) {
                if (tx_) reply(451, "4.3.0", fmt::format("<{}>: Sender address rejected: Temporary lookup failure", tx_->sender.address()));
                reset_transaction();
            } else {
                if (tx_) tx_->sender_owners = std::move(*owners);
                reply(250, "2.1.0", "Ok");
            }
            unpark();
        }));
}

}  // namespace pillarbox::smtp
