// Recipient resolution over the account database: aliases, extensions, catch-alls and loops.
#include "auth/recipients.hpp"
#include "server/ascii.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "auth/accounts.hpp"
#include "server/config.hpp"
#include "server/mail_names.hpp"

namespace pillarbox::auth {

namespace {

void add_unique(std::vector<std::string>& v, const std::string& s) {
    if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

}  // namespace

RecipientSettings RecipientSettings::from(const config::Config& c) {
    RecipientSettings s;
    for (auto& d : c.get_list("mydestination")) s.mydestination.push_back(ascii_lower(d));
    s.recipient_delimiter = c.get("recipient_delimiter");
    s.recursion_limit = c.get_count("virtual_alias_recursion_limit");
    s.expansion_limit = c.get_count("virtual_alias_expansion_limit");
    return s;
}

struct RecipientResolver::Walk {
    Resolution r;
    std::vector<std::string> path;  // addresses being expanded, outermost first
    bool failed = false;
    bool owners = false;  // sender_owners(): no catch-alls, unknown alias targets skipped
    void fail(Resolution::Status st, std::string detail) {
        if (failed) return;
        failed = true;
        r.status = st;
        r.detail = std::move(detail);
    }
};

bool RecipientResolver::in_mydestination(std::string_view domain) const {
    return std::find(s_.mydestination.begin(), s_.mydestination.end(), domain) != s_.mydestination.end();
}

bool RecipientResolver::is_local_domain(std::string_view domain) {
    auto d = ascii_lower(domain);
    return in_mydestination(d) || db_.has_domain(d);
}

std::string RecipientResolver::account_for(const std::string& local, const std::string& domain) {
    if (auto a = db_.account(local + "@" + domain)) return a->address;
    // Postfix's local domains are one namespace: bob@host.example.com and bob@localhost are the
    // same user when both domains are in mydestination.
    if (in_mydestination(domain))
        for (auto& d : s_.mydestination)
            if (d != domain)
                if (auto a = db_.account(local + "@" + d)) return a->address;
    return {};
}

Resolution RecipientResolver::resolve(std::string_view address) {
    Resolution r;
    db_.read([&] { r = resolve_now(address); });
    // An account named against the store's rule (a row from an older database, say "..") is no
    // mailbox: refused at RCPT, permanently, instead of failing at every delivery attempt.
    for (auto& acct : r.accounts)
        if (auto why = names::address_problem(acct); !why.empty()) {
            Resolution bad;
            bad.status = Resolution::Status::Unknown;
            bad.detail = fmt::format("invalid mailbox name {}: {}", acct, why);
            return bad;
        }
    return r;
}

std::vector<std::string> RecipientResolver::sender_owners(std::string_view address) {
    Resolution r;
    db_.read([&] { r = resolve_now(address, true); });
    return r.status == Resolution::Status::Local ? r.accounts : std::vector<std::string>{};
}

Resolution RecipientResolver::resolve_now(std::string_view address, bool owners) {
    Walk w;
    w.owners = owners;
    auto a = ascii_lower(address);
    auto at = a.rfind('@');
    if (at == std::string::npos || at == 0 || at + 1 == a.size()) {
        w.r.status = Resolution::Status::NotLocal;
        w.r.detail = "not an address";
        return w.r;
    }
    if (!is_local_domain(a.substr(at + 1))) {
        w.r.status = Resolution::Status::NotLocal;
        return w.r;
    }
    w.r.status = Resolution::Status::Local;
    expand(a, 0, w);
    if (!w.failed && w.r.accounts.empty() && w.r.remote.empty()) w.fail(Resolution::Status::Unknown, "no recipients");
    // RFC 5321 4.5.1: every domain must accept postmaster. Without an account or alias of that
    // name, it reaches the admin accounts.
    if (w.r.status == Resolution::Status::Unknown && a.substr(0, at) == "postmaster") {
        Resolution r;
        r.status = Resolution::Status::Local;
        for (auto& acct : db_.accounts())
            if (acct.admin) r.accounts.push_back(acct.address);
        if (!r.accounts.empty()) return r;
    }
    return w.r;
}

void RecipientResolver::expand(const std::string& address, std::size_t depth, Walk& w) {
    if (w.failed) return;
    if (depth > s_.recursion_limit) {
        w.fail(Resolution::Status::Loop, fmt::format("alias recursion limit {} reached at {}", s_.recursion_limit, address));
        return;
    }
    auto at = address.rfind('@');
    std::string local = address.substr(0, at), domain = address.substr(at + 1);
    if (!is_local_domain(domain)) {
        add_unique(w.r.remote, address);
    } else {
        std::string base = local;
        if (!s_.recipient_delimiter.empty()) {
            auto cut = local.find_first_of(s_.recipient_delimiter);
            if (cut != std::string::npos && cut > 0) base = local.substr(0, cut);
        }
        std::string base_address = base + "@" + domain;
        bool on_path = std::find(w.path.begin(), w.path.end(), address) != w.path.end() ||
                       std::find(w.path.begin(), w.path.end(), base_address) != w.path.end();
        if (on_path) {
            // An alias that reaches itself again (bob -> bob, archive) delivers to the mailbox
            // when there is one; otherwise it's a forwarding loop.
            auto acct = account_for(base, domain);
            if (acct.empty()) {
                w.fail(Resolution::Status::Loop, fmt::format("alias loop at {}", address));
                return;
            }
            add_unique(w.r.accounts, acct);
        } else {
            w.path.push_back(address);
            std::vector<std::string> targets = db_.alias_targets(address);
            if (targets.empty() && base != local) targets = db_.alias_targets(base_address);
            if (targets.empty() && in_mydestination(domain)) {
                targets = db_.alias_targets(local);
                if (targets.empty() && base != local) targets = db_.alias_targets(base);
            }
            if (!targets.empty()) {
                for (auto& t : targets) {
                    // aliases(5) targets may be bare local names: same local domain.
                    expand(t.find('@') == std::string::npos ? t + "@" + domain : t, depth + 1, w);
                    if (w.failed) return;
                }
            } else if (auto acct = account_for(local, domain); !acct.empty()) {
                add_unique(w.r.accounts, acct);
            } else if (auto acct2 = base != local ? account_for(base, domain) : std::string(); !acct2.empty()) {
                add_unique(w.r.accounts, acct2);
            } else if (auto all = w.owners ? std::vector<std::string>{} : db_.alias_targets("@" + domain); !all.empty()) {
                for (auto& t : all) {
                    // "@example.com -> @example.net" keeps the local part (Postfix virtual(5)).
                    std::string next = t.front() == '@' ? local + t : t.find('@') == std::string::npos ? t + "@" + domain : t;
                    expand(next, depth + 1, w);
                    if (w.failed) return;
                }
            } else if (w.owners && depth > 0) {
                // One unknown target of an alias takes nothing from the owners of the others.
            } else {
                w.fail(Resolution::Status::Unknown, depth == 0 ? "user unknown" : fmt::format("alias target {} unknown", address));
                return;
            }
            w.path.pop_back();
        }
    }
    if (w.r.accounts.size() + w.r.remote.size() > s_.expansion_limit)
        w.fail(Resolution::Status::Loop, fmt::format("alias expansion limit {} exceeded", s_.expansion_limit));
}

}  // namespace pillarbox::auth
