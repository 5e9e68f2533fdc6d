// Postfix access(5) tables (hash:/texthash:/btree:/lmdb: source files, cidr:, pcre:/regexp:) and
// their actions, looked up with Postfix's key order for clients, HELO names and addresses.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pillarbox::smtp::policy {

// One access(5) action. Keywords are case-insensitive, as in Postfix.
struct Action {
    enum class Kind {
        Ok,       // OK, PERMIT, or an all-numeric value: ends the restriction list with permit
        Reject,   // REJECT [text], 5NN [text]
        Defer,    // DEFER [text], 4NN [text]
        Discard,  // DISCARD [text]: accept, then drop the message (ends the list like OK)
        Hold,     // HOLD [text]: keep the message in the hold queue; evaluation continues
        Dunno,    // DUNNO: stop this table's search, go on with the next restriction
        Warn,     // WARN text: log and go on (like DUNNO)
        Info,     // INFO text: log at info level and go on
        DeferIfReject,  // DEFER_IF_REJECT [text]: a later reject becomes 450 with this text
        DeferIfPermit,  // DEFER_IF_PERMIT [text]: a later (or implicit) permit becomes 450
    };
    Kind kind = Kind::Dunno;
    int code = 0;          // Reject/Defer: the explicit 4NN/5NN, 0 = access_map_{reject,defer}_code
    std::string enhanced;  // optional RFC 3463 code at the start of the text ("5.7.1")
    std::string text;      // optional text (without code and enhanced code)
    // Parses the right-hand side of a table line; nullopt and `error` set when unknown or
    // unsupported (FILTER, REDIRECT, PREPEND, BCC, restriction names ... are load problems).
    static std::optional<Action> parse(std::string_view value, std::string& error);
};

// How lookups treat parents, extensions and the null sender, from the parameters (their defaults
// are written once, in server/parameters.cpp; PolicySettings::from() sets every field).
struct LookupOptions {
    // parent_domain_matches_subdomains contains "smtpd_access_maps": "example.com" matches
    // sub.example.com too. Without it only ".example.com" matches subdomains.
    bool parent_matches_subdomains{};
    std::string recipient_delimiter;  // recipient_delimiter: user+ext@domain is also looked up as user@domain
    std::string null_sender_key;      // smtpd_null_access_lookup_key
};

class AccessMap {
public:
    enum class Type { Text, Cidr, Regex };

    // Blocking: reads the file. `spec` is TYPE:PATH. hash:, btree:, lmdb:, cdb:, dbm: and
    // texthash: all read the postmap *source* text file at PATH (not PATH.db): Pillarbox has no
    // Berkeley DB, and the source is what the admin edits. Tables are read once, at load or
    // reload (Postfix's smtpd notices a re-run postmap; here a config reload is needed).
    // cidr: reads cidr_table(5), first match wins. pcre: and regexp: read regexp tables with
    // PCRE2 (regexp: POSIX syntax is close enough for the usual tables). Throws std::runtime_error when the file can't be read or the type is unknown;
    // bad lines are skipped and described in `problems` ("path:line: ...").
    // Values::Text: the right-hand sides are not access(5) actions but plain text (tables such
    // as smtpd_sender_login_maps); a match's Action is then Dunno with the value in `text`.
    enum class Values { Actions, Text };
    static AccessMap load(std::string_view spec, std::vector<std::string>& problems,
                          Values values = Values::Actions);
    // The same from text in memory (tests, inline tables); `name` is used in messages.
    static AccessMap parse(Type type, std::string_view text, const std::string& name,
                           std::vector<std::string>& problems, Values values = Values::Actions);

    AccessMap(const AccessMap&) = default;
    AccessMap(AccessMap&&) noexcept = default;
    AccessMap& operator=(const AccessMap&) = default;
    AccessMap& operator=(AccessMap&&) noexcept = default;
    ~AccessMap();

    // A match: the action and the key that matched (for the log).
    struct Match {
        Action action;
        std::string key;
    };

    // Every lookup stops at the first key found, DUNNO included (that is what DUNNO is for).
    // `problem`, when given, receives a regexp match-limit problem (the rule counts as no match).
    //
    // check_client_access: hostname, its parent domains, then the address and its prefixes
    // (1.2.3.4, 1.2.3, 1.2, 1; IPv6 by truncating ":group"s of the text form). `hostname`
    // "unknown" is not looked up. cidr tables match only the address; regexp tables see the
    // whole hostname, then the whole address.
    std::optional<Match> lookup_client(std::string_view ip, std::string_view hostname, const LookupOptions& o,
                                       std::string* problem = nullptr) const;
    // check_helo_access (and any bare host name): name, then parent domains. cidr tables match
    // an address literal ("[192.0.2.1]").
    std::optional<Match> lookup_domain(std::string_view name, const LookupOptions& o,
                                       std::string* problem = nullptr) const;
    // check_sender_access / check_recipient_access: user+ext@domain, user@domain, domain and its
    // parents, user+ext@, user@. The null sender is looked up as o.null_sender_key. Keys are
    // case-insensitive. Regex tables see only the whole address.
    std::optional<Match> lookup_address(std::string_view address, const LookupOptions& o,
                                        std::string* problem = nullptr) const;
    // One exact key (relay_domains tables, check_sasl_access).
    std::optional<Match> lookup_key(std::string_view key, std::string* problem = nullptr) const;

    Type type() const;
    const std::string& name() const;  // the spec or name it was loaded from
    std::size_t size() const;         // entries

private:
    struct Impl;
    explicit AccessMap(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;  // immutable, shared by copies and running evaluations
};

}  // namespace pillarbox::smtp::policy
