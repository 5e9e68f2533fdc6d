// RCPT TO (RFC 5321 4.1.1.3): the recipient resolved (accounts, aliases, relay), the
// restrictions, and the quota known at RCPT time.
#include "protocols/smtp/smtp_session.hpp"

#include <fmt/format.h>

#include "auth/accounts.hpp"
#include "server/ascii.hpp"
#include "server/log.hpp"
#include "server/worker_pool.hpp"

namespace pillarbox::smtp {

void SmtpSession::cmd_rcpt(const std::string& args) {
    if (tx_->recipients.size() >= s_.recipient_limit) {
        // RFC 5321 4.5.3.1.10: 452 so the client sends the rest in another transaction.
        reply(452, "4.5.3", "Error: too many recipients");
        return;
    }
    auto parsed = parse_rcpt_to(args, tx_->params.smtputf8);
    if (!parsed.path) {
        error_reply(parsed.error);
        return;
    }
    std::string perr;
    auto params = parse_params(parsed.rest, perr, tx_->params.smtputf8);
    if (!params) {
        error_reply(501, "5.5.4", fmt::format("Bad RCPT parameter syntax: {}", perr));
        return;
    }
    auto v = validate_rcpt_params(*params, extensions_for(esmtp_, tls_active(), s_.sasl_enabled));
    if (auto* e = std::get_if<ParamError>(&v)) {
        error_reply(*e);
        return;
    }
    Path path = *parsed.path;
    // RFC 5321 4.1.1.3: <postmaster> without a domain is this host's postmaster.
    if (path.domain.empty()) path.domain = s_.hostname;
    path.domain = ascii_lower(path.domain);
    park();
    auto db = services_->accounts;
    auto rs = recipient_settings();
    std::string address = path.address();
    services_->workers->run(
        [db, rs, address] {
            auth::Resolution res;
            if (!db) return res;
            try {
                auth::RecipientResolver r(*db, *rs);
                res = r.resolve(address);
            } catch (const std::exception& e) {
                res = auth::Resolution{};
                res.status = auth::Resolution::Status::TempFail;
                res.detail = std::string("temporary lookup failure: ") + e.what();
            }
            return res;
        },
        guard_.wrap([this, path, rp = std::get<RcptParams>(v)](auth::Resolution res) { rcpt_resolved(path, rp, std::move(res)); }));
}

void SmtpSession::rcpt_resolved(Path path, RcptParams params, auth::Resolution res) {
    using St = auth::Resolution::Status;
    if (res.status == St::TempFail) {
        log::line(log::Level::Warning, "smtpd", tx_->queue_id, "{}: {}", path.address(), res.detail);
        reply(451, "4.3.0", fmt::format("<{}>: Temporary lookup failure", path.address()));
        unpark();
        return;
    }
    auto ctx = policy_context("RCPT");
    ctx.recipient = path.address();
    ctx.recipient_local = res.status != St::NotLocal;
    ctx.recipient_known = ctx.recipient_local ? std::optional<bool>(res.status == St::Local) : std::nullopt;
    // Local-part routing tricks (RFC 5321 3.6.1, "percent hack", bang paths, quoted "u@x"):
    // the relay restrictions refuse them for untrusted clients as Postfix does
    // (allow_untrusted_routing = no), and for a local domain they name no account anyway.
    auto engine = std::make_shared<policy::PolicyEngine>(*policy_);
    auto policy_keep = policy_;
    engine->check_rcpt(ctx, services_->dns,
                       guard_.wrap([this, engine, policy_keep, path, params, res](policy::Decision d) {
                           if (!tx_) {
                               unpark();
                               return;
                           }
                           log_decision(d);
                           std::string addr = path.address();
                           if (d.rejected()) {
                               error_reply(d.code, d.enhanced, d.text);
                               unpark();
                               return;
                           }
                           if (res.status == St::Unknown) {
                               log::line(log::Level::Info, "smtpd", tx_->queue_id,
                                         "reject: RCPT from {}: 550 5.1.1 <{}>: Recipient address rejected: User unknown; from=<{}> to=<{}> proto={} helo=<{}>",
                                         client(), addr, tx_->sender.address(), addr, esmtp_ ? "ESMTP" : "SMTP", helo_name_.value_or(""));
                               error_reply(550, "5.1.1", fmt::format("<{}>: Recipient address rejected: User unknown", addr));
                               unpark();
                               return;
                           }
                           if (res.status == St::Loop) {
                               log::line(log::Level::Warning, "smtpd", tx_->queue_id, "<{}>: {}", addr, res.detail);
                               error_reply(554, "5.4.6", fmt::format("<{}>: Recipient address rejected: mail forwarding loop", addr));
                               unpark();
                               return;
                           }
                           if (res.status == St::Local)
                               if (auto full = rcpt_mailboxes_full(res); !full.empty())
                                   return rcpt_confirm_full(path, params, res, d, std::move(full));
                           rcpt_accept(path, params, res, d);
                       }));
}

void SmtpSession::rcpt_accept(const Path& path, const RcptParams& params, const auth::Resolution& res, const policy::Decision& d) {
    // Postfix: DISCARD accepts the whole message and then throws it away.
    if (d.discard) tx_->discard = true;
    if (d.hold) tx_->hold = true;
    Recipient r;
    r.address = path.address();
    r.params = params;
    if (res.status == auth::Resolution::Status::Local) {
        r.accounts = res.accounts;
        r.remote = res.remote;
    } else {
        r.remote = {r.address};
    }
    tx_->recipients.push_back(std::move(r));
    reply(250, "2.1.5", "Ok");
    unpark();
}

// The quota at RCPT, as Dovecot's LMTP checks it: a recipient whose every mailbox is full (for
// SIZE= when the client declared it) is refused now, before the client sends the message, so
// most over-quota mail never needs a hold copy. Only what the store knows in memory (the usage
// its last delivery to the account computed, see Store::known_usage): no disk and no worker job
// for the common case. An alias with an account that has room, or a remote target, is accepted:
// delivery sorts out who gets it.
std::vector<SmtpSession::KnownFull> SmtpSession::rcpt_mailboxes_full(const auth::Resolution& res) const {
    std::vector<KnownFull> full;
    if (!services_->store || res.accounts.empty() || !res.remote.empty()) return full;
    std::uint64_t size = tx_->params.size.value_or(0);
    for (auto& a : res.accounts) {
        auto at = a.rfind('@');
        KnownFull k{a.substr(0, at), a.substr(at + 1), {}};
        auto known = services_->store->known_usage({k.localpart, k.domain});
        if (!known || !storage::quota_full(known->usage, known->quota, size)) return {};
        k.usage = known->usage;
        full.push_back(std::move(k));
    }
    return full;
}

// The known usage says full; the limits may have been raised since (pillarbox user set): ask
// for them now (the account database: a worker job, only in this rare case) before refusing.
void SmtpSession::rcpt_confirm_full(const Path& path, const RcptParams& params, const auth::Resolution& res, const policy::Decision& d,
                                    std::vector<KnownFull> known) {
    auto* store = services_->store;
    std::uint64_t size = tx_->params.size.value_or(0);
    services_->workers->run(
        [store, known = std::move(known), size] {
            try {
                for (auto& k : known)
                    if (!storage::quota_full(k.usage, store->quota_of({k.localpart, k.domain}), size)) return false;
                return true;
            } catch (const std::exception&) {
                return false;  // not sure: accept, delivery decides
            }
        },
        guard_.wrap([this, path, params, res, d](bool full) {
            if (!tx_) return unpark();
            if (!full) return rcpt_accept(path, params, res, d);
            std::string addr = path.address();
            bool temp = services_->store->quota_full_tempfail();
            int code = temp ? 452 : 552;
            const char* enhanced = temp ? "4.2.2" : "5.2.2";
            log::line(log::Level::Info, "smtpd", tx_->queue_id, "reject: RCPT from {}: {} {} <{}>: Mailbox is full; from=<{}> to=<{}> proto={} helo=<{}>",
                      client(), code, enhanced, addr, tx_->sender.address(), addr, esmtp_ ? "ESMTP" : "SMTP", helo_name_.value_or(""));
            error_reply(code, enhanced, fmt::format("<{}> Mailbox is full", addr));
            unpark();
        }));
}

}  // namespace pillarbox::smtp
