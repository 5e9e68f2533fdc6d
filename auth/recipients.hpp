// The recipient lookup the SMTP server calls: is this address ours, and which accounts (and
// remote addresses, through aliases) does it reach? Postfix's order: virtual aliases first, then
// mailboxes, with recipient_delimiter extensions (bob+tag@ -> bob@), aliases(5) names for the
// mydestination domains, and a per-domain catch-all that applies only when nothing else matches.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace pillarbox::config { class Config; }

namespace pillarbox::auth {

class AccountsDb;

// The defaults are the parameters' (server/parameters.cpp), written once there: from() sets
// every field.
struct RecipientSettings {
    std::vector<std::string> mydestination;   // local domains (lower case)
    std::string recipient_delimiter;          // characters that start an extension; empty: none
    std::size_t recursion_limit{};            // virtual_alias_recursion_limit
    std::size_t expansion_limit{};            // virtual_alias_expansion_limit
    static RecipientSettings from(const config::Config& c);
};

struct Resolution {
    enum class Status {
        Local,       // the domain is ours and the address reaches `accounts` (and maybe `remote`)
        NotLocal,    // the domain is not ours: relaying is the caller's decision
        Unknown,     // the domain is ours but no such user (550 5.1.1)
        Loop,        // an alias chain loops or exceeds the limits (554 5.4.6)
        TempFail,    // the lookup itself failed (the database): try again later (451 4.3.0)
    };
    Status status = Status::NotLocal;
    std::vector<std::string> accounts;  // account addresses, deduplicated, in order
    std::vector<std::string> remote;    // non-local addresses reached through aliases
    std::string detail;                 // for the log: which alias looped, ...
};

class RecipientResolver {
public:
    RecipientResolver(AccountsDb& db, RecipientSettings s) : db_(db), s_(std::move(s)) {}
    // Blocking (SQLite): call on a worker thread.
    Resolution resolve(std::string_view address);
    // The accounts that own `address` as a sender (reject_sender_login_mismatch): the account
    // itself (also as user+ext@), and the accounts an alias reaches, through chains of aliases.
    // Catch-alls (@domain) give no one the right to send as anything, and an alias target that
    // doesn't exist is skipped. Empty: no owner (a remote or unknown address, or a loop).
    // Blocking (SQLite): call on a worker thread.
    std::vector<std::string> sender_owners(std::string_view address);
    // Whether mail for this domain is delivered here (mydestination or a database domain).
    bool is_local_domain(std::string_view domain);
    const RecipientSettings& settings() const { return s_; }

private:
    struct Walk;
    // Inside resolve()'s read transaction; `owners`: for sender_owners().
    Resolution resolve_now(std::string_view address, bool owners = false);
    void expand(const std::string& address, std::size_t depth, Walk& w);
    bool in_mydestination(std::string_view domain) const;
    std::string account_for(const std::string& local, const std::string& domain);

    AccountsDb& db_;
    RecipientSettings s_;
};

}  // namespace pillarbox::auth
