// The SMTP policy the session asks at each command: typed settings read from pillarbox.conf with
// Postfix's parameter names, and the smtpd_delay_reject ordering of the restriction lists.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/smtp/policy/access_map.hpp"
#include "protocols/smtp/policy/header_checks.hpp"
#include "protocols/smtp/policy/restrictions.hpp"

namespace pillarbox::config { class Config; struct ParamDef; }
namespace pillarbox::dns { class Resolver; }

namespace pillarbox::smtp::policy {

// The policy parameters, with Postfix's names and defaults. The defaults are written once, in
// server/parameters.cpp (they are documented there, the docs are generated from it):
// from_values() takes what is not given from that table and sets every field.
struct PolicySettings {
    RestrictionList client_restrictions;       // smtpd_client_restrictions
    RestrictionList helo_restrictions;         // smtpd_helo_restrictions
    RestrictionList sender_restrictions;       // smtpd_sender_restrictions
    RestrictionList relay_restrictions;        // smtpd_relay_restrictions
    RestrictionList recipient_restrictions;    // smtpd_recipient_restrictions
    RestrictionList data_restrictions;         // smtpd_data_restrictions
    RestrictionList end_of_data_restrictions;  // smtpd_end_of_data_restrictions
    bool helo_required{};                      // smtpd_helo_required
    bool delay_reject{};                       // smtpd_delay_reject
    // relay_domains: domains we relay to. "example.com" also matches its subdomains while
    // parent_domain_matches_subdomains lists relay_domains (relay_domains_match_subdomains);
    // ".example.com" always does. /file entries are read as lists; TYPE:PATH entries are tables
    // (key present).
    std::vector<std::string> relay_domains;
    std::vector<AccessMap> relay_domain_tables;
    bool relay_domains_match_subdomains{};
    HeaderChecks header_checks;                // header_checks, e.g. pcre:/etc/pillarbox/header_checks
    // smtpd_sender_login_maps: TYPE:PATH tables of "sender  login1, login2" lines that
    // widen which logins own a sender address (beyond the account, its extensions and aliases).
    std::vector<AccessMap> sender_login_maps;
    Codes codes;                               // *_reject_code, *_defer_code, lookup options

    // Parameter values by name; nullopt = not a known parameter (its default applies).
    using Lookup = std::function<std::optional<std::string>(std::string_view name)>;
    // Blocking: reads the tables. Unknown verbs, unreadable tables, bad codes, settings not
    // enforced yet and lists that would make an open relay go to `errors` (a session must not
    // serve with any); skipped table lines go to `warnings`.
    static PolicySettings from(const config::Config& c);
    static PolicySettings from_values(const Lookup& get);
    // Empty when usable; otherwise every error, one per line. Among them Postfix's rule that
    // smtpd_relay_restrictions or smtpd_recipient_restrictions refuses unauthorized destinations.
    std::string validate() const;

    std::vector<std::string> errors;
    std::vector<std::string> warnings;

    bool is_relay_domain(std::string_view domain) const;
    // Whether any list uses reject_*sender_login_mismatch: the session must then fill
    // Context::sender_owners (the logins that own the MAIL FROM address).
    bool uses_sender_login_maps() const;
    // The logins smtpd_sender_login_maps gives for `sender` (empty: none, or the null sender).
    // Keys as in Postfix: user+ext@domain, user@domain, then @domain (hash-style tables); the
    // whole address (regexp tables). The first table with an entry answers.
    std::vector<std::string> sender_login_owners(std::string_view sender) const;
};

// The parameters above with defaults, types and docs, for server/parameters.cpp.
std::vector<config::ParamDef> parameter_defs();

// The session calls one check per command with what it knows so far. With smtpd_delay_reject
// (the default), check_connect/check_helo/check_mail only answer smtpd_helo_required and
// otherwise Continue; check_rcpt then runs client, helo, sender, relay and recipient lists in
// that order. Each list is separate: a Permit in smtpd_client_restrictions ends only that list
// and never skips smtpd_relay_restrictions, so a permitted client still can't relay. The
// Decision is Continue (go ahead) unless Reject/Defer; check `discard`/`hold` either way.
// Callbacks follow RestrictionList::evaluate: maybe synchronous, maybe later on the loop.
// The settings must outlive the engine; evaluations in flight keep their lists alive.
class PolicyEngine {
public:
    explicit PolicyEngine(const PolicySettings& s) : s_(s) {}
    void check_connect(const Context& ctx, dns::Resolver* r, std::function<void(Decision)> done) const;
    void check_helo(const Context& ctx, dns::Resolver* r, std::function<void(Decision)> done) const;
    // Also enforces smtpd_helo_required (503 5.5.1 Error: send HELO/EHLO first).
    void check_mail(const Context& ctx, dns::Resolver* r, std::function<void(Decision)> done) const;
    // Fills ctx.recipient_relay from relay_domains before evaluating.
    void check_rcpt(const Context& ctx, dns::Resolver* r, std::function<void(Decision)> done) const;
    void check_data(const Context& ctx, dns::Resolver* r, std::function<void(Decision)> done) const;
    void check_end_of_data(const Context& ctx, dns::Resolver* r, std::function<void(Decision)> done) const;
    const PolicySettings& settings() const { return s_; }

private:
    const PolicySettings& s_;
};

}  // namespace pillarbox::smtp::policy
