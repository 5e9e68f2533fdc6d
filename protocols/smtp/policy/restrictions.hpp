// Postfix smtpd_*_restrictions: parsing a restriction list and evaluating it against one SMTP
// command's context. Pure except for DNS, which goes through dns::Resolver (asynchronous).
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/smtp/policy/access_map.hpp"

namespace pillarbox::dns { class Resolver; }

namespace pillarbox::smtp::policy {

// Which parameter a list came from; only used in messages and for the anti-relay check.
enum class Stage { Client, Helo, Sender, Recipient, Relay, Data, EndOfData };
std::string_view stage_parameter(Stage s);  // Stage::Relay -> "smtpd_relay_restrictions"

// Reply codes and lookup details the verbs need, with Postfix's parameter names. Their defaults
// are Postfix's, written once in server/parameters.cpp: PolicySettings::from() sets every field.
struct Codes {
    int reject_code{};                    // reject_code ("reject")
    int defer_code{};                     // defer_code ("defer")
    int access_map_reject_code{};         // access_map_reject_code (REJECT in a table)
    int access_map_defer_code{};          // access_map_defer_code (DEFER in a table)
    int relay_domains_reject_code{};      // relay_domains_reject_code (reject_unauth_destination)
    int unknown_address_reject_code{};    // unknown_address_reject_code (reject_unknown_*_domain)
    bool unknown_address_tempfail_defer_if_permit{};  // unknown_address_tempfail_action = defer_if_permit
    int unknown_hostname_reject_code{};   // unknown_hostname_reject_code (HELO name in DNS)
    int unknown_client_reject_code{};     // unknown_client_reject_code (no verified PTR)
    int non_fqdn_reject_code{};           // non_fqdn_reject_code
    int invalid_hostname_reject_code{};   // invalid_hostname_reject_code
    int maps_rbl_reject_code{};           // maps_rbl_reject_code (reject_rbl_client, rhsbl)
    int unlisted_recipient_reject_code{}; // unknown_virtual_mailbox_reject_code
    LookupOptions lookup;                 // parent_domain_matches_subdomains, delimiter, <>
};

// What the session knows when it asks. Fields the session does not know yet stay nullopt; a
// verb whose input is missing is skipped (Postfix: with smtpd_delay_reject=no a sender check in
// smtpd_client_restrictions has nothing to look at at CONNECT time).
struct Context {
    std::string command = "RCPT";          // for the log: CONNECT, EHLO, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE
    std::string protocol = "ESMTP";        // for the log: SMTP or ESMTP
    std::string client_address;            // "192.0.2.1", "2001:db8::1" (no brackets)
    std::string client_name = "unknown";   // forward-confirmed PTR name, or "unknown"
    bool client_name_tempfail = false;     // the PTR/forward lookup failed temporarily
    std::optional<std::string> helo;       // after HELO/EHLO, as given
    std::optional<std::string> sender;     // after MAIL FROM; "" is the null sender <>
    std::optional<std::string> recipient;  // at RCPT TO; at DATA and after, set it only when the
                                           // message has exactly one recipient (Postfix's rule)
    bool client_in_mynetworks = false;     // permit_mynetworks
    bool sasl_authenticated = false;       // permit_sasl_authenticated
    std::string sasl_username;
    // Precomputed by the session (an SQLite lookup must not run on the loop inside a verb):
    bool recipient_local = false;          // the recipient domain is delivered here
    bool recipient_relay = false;          // the recipient domain matches relay_domains
                                           // (PolicyEngine fills this from its settings)
    std::optional<bool> recipient_known;   // local and the user exists (reject_unlisted_recipient)
    bool sender_local = false;             // the sender domain is delivered here (skip DNS checks)
    // Logins that own the sender address (smtpd_sender_login_maps); nullopt: no owner known.
    std::optional<std::vector<std::string>> sender_owners;
};

// The outcome of a list (or of a whole SMTP command's lists).
struct Decision {
    enum class Kind {
        Continue,  // no verdict: accept (evaluate_lists/PolicyEngine never say Permit)
        Permit,    // RestrictionList::evaluate only: an explicit permit ended the list
        Reject,    // refused with a 5xx reply (code/enhanced/text)
        Defer,     // refused with a 4xx reply; the kind always follows the code's class
    };
    Kind kind = Kind::Continue;
    int code = 0;
    std::string enhanced;  // "5.7.1"
    std::string text;      // "<x@y>: Relay access denied"
    // Message-level side effects that don't end evaluation by themselves (access DISCARD/HOLD).
    bool discard = false;
    bool hold = false;
    // Maillog lines without the queue id prefix, Postfix style, e.g.
    // "reject: RCPT from unknown[192.0.2.1]: 554 5.7.1 <x@y>: Relay access denied; from=<a@b>
    //  to=<x@y> proto=ESMTP helo=<h>", and "hold: ...", "discard: ...", "warn: ...".
    std::vector<std::string> log;
    // Operator problems for a "warning:" line (DNS errors, regex match limits ...).
    std::vector<std::string> warnings;
    std::string reply() const;  // "554 5.7.1 <x@y>: Relay access denied"
    bool rejected() const { return kind == Kind::Reject || kind == Kind::Defer; }
};

// Loads TYPE:PATH tables for check_*_access; lets PolicySettings share one table between lists.
// Returns null and sets `error` when the table cannot be loaded; may add load `problems`.
using TableLoader = std::function<std::shared_ptr<const AccessMap>(
    std::string_view spec, std::string& error, std::vector<std::string>& problems)>;
TableLoader file_table_loader();  // AccessMap::load, no caching

class RestrictionList {
public:
    // Parses "permit_mynetworks, check_client_access cidr:/etc/x, reject" (commas and/or
    // whitespace). Blocking when it loads tables. nullopt with `error` for an unknown verb, a
    // verb missing its argument, or a table that can't be loaded. Table line problems go to
    // `problems` and don't fail the parse (Postfix skips bad lines with a warning).
    static std::optional<RestrictionList> parse(std::string_view value, Stage stage, std::string& error,
                                                std::vector<std::string>& problems,
                                                const TableLoader& loader = file_table_loader());
    RestrictionList() = default;

    // Evaluates left to right; the first Permit/Reject/Defer ends the list. `done` runs exactly
    // once: before evaluate returns when no DNS is needed, otherwise on the loop from a resolver
    // callback (never if the resolver is destroyed first) — capture a weak pointer to the session.
    // `resolver` may be null: DNS verbs then behave as on a temporary DNS failure.
    // The list and its tables stay alive until `done` even if this object is destroyed.
    void evaluate(const Context& ctx, const Codes& codes, dns::Resolver* resolver,
                  std::function<void(Decision)> done) const;

    bool empty() const;
    Stage stage() const { return stage_; }
    const std::string& text() const { return text_; }  // as configured
    // Whether some verb in the list can refuse mail for unauthorized destinations (Postfix's
    // "specify at least one working instance of reject_unauth_destination, ..." rule).
    bool has_relay_guard() const;
    // Whether a reject_*sender_login_mismatch verb needs Context::sender_owners.
    bool uses_sender_login_maps() const;

    struct Item;  // one parsed restriction (implementation detail)

private:
    friend void evaluate_lists(std::vector<RestrictionList>, const Context&, const Codes&,
                               dns::Resolver*, std::function<void(Decision)>);
    std::shared_ptr<const std::vector<Item>> items_;
    Stage stage_ = Stage::Client;
    std::string text_;
};

// Evaluates several lists for one SMTP command, Postfix-style: each list is separate, so a
// Permit ends only its own list and evaluation continues with the next; the first Reject or
// Defer ends everything. defer_if_permit / defer_if_reject flags carry across the lists and are
// applied at the end. The combined Decision's kind is Continue (accept) unless refused.
void evaluate_lists(std::vector<RestrictionList> lists, const Context& ctx, const Codes& codes,
                    dns::Resolver* resolver, std::function<void(Decision)> done);

}  // namespace pillarbox::smtp::policy
