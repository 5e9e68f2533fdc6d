// smtpd_*_restrictions: the verb table, list parsing, and the evaluator that walks one or more
// lists Postfix-style, pausing for DNS answers without blocking the loop.
#include "protocols/smtp/policy/restrictions.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <array>
#include <stdexcept>

#include "protocols/smtp/policy/table_text.hpp"
#include "server/ascii.hpp"
#include "server/config_values.hpp"
#include "server/dns.hpp"

namespace pillarbox::smtp::policy {

namespace {

enum class Verb {
    Permit, Reject, Defer, DeferIfPermit, DeferIfReject,
    PermitMynetworks, PermitSaslAuthenticated,
    RejectUnauthDestination, DeferUnauthDestination, PermitAuthDestination,
    RejectNonFqdnHelo, RejectInvalidHelo, RejectUnknownHelo,
    RejectNonFqdnSender, RejectNonFqdnRecipient,
    RejectUnknownSenderDomain, RejectUnknownRecipientDomain, RejectUnknownClientHostname,
    CheckClientAccess, CheckHeloAccess, CheckSenderAccess, CheckRecipientAccess, CheckSaslAccess,
    RejectRblClient, PermitDnswlClient, RejectRhsblClient, RejectRhsblHelo, RejectRhsblSender, RejectRhsblRecipient,
    RejectUnlistedRecipient,
    RejectSenderLoginMismatch, RejectAuthenticatedSenderLoginMismatch,
    RejectUnauthenticatedSenderLoginMismatch, RejectKnownSenderLoginMismatch,
};

enum class Arg { None, Table, Zone };

struct VerbDef {
    const char* name;
    Verb verb;
    Arg arg;
};

// Postfix names, with the pre-2.3 aliases that old main.cf files still use.
const VerbDef kVerbs[] = {
    {"permit", Verb::Permit, Arg::None},
    {"reject", Verb::Reject, Arg::None},
    {"defer", Verb::Defer, Arg::None},
    {"defer_if_permit", Verb::DeferIfPermit, Arg::None},
    {"defer_if_reject", Verb::DeferIfReject, Arg::None},
    {"permit_mynetworks", Verb::PermitMynetworks, Arg::None},
    {"permit_sasl_authenticated", Verb::PermitSaslAuthenticated, Arg::None},
    {"reject_unauth_destination", Verb::RejectUnauthDestination, Arg::None},
    {"defer_unauth_destination", Verb::DeferUnauthDestination, Arg::None},
    {"permit_auth_destination", Verb::PermitAuthDestination, Arg::None},
    {"reject_non_fqdn_helo_hostname", Verb::RejectNonFqdnHelo, Arg::None},
    {"reject_non_fqdn_hostname", Verb::RejectNonFqdnHelo, Arg::None},
    {"reject_invalid_helo_hostname", Verb::RejectInvalidHelo, Arg::None},
    {"reject_invalid_hostname", Verb::RejectInvalidHelo, Arg::None},
    {"reject_unknown_helo_hostname", Verb::RejectUnknownHelo, Arg::None},
    {"reject_unknown_hostname", Verb::RejectUnknownHelo, Arg::None},
    {"reject_non_fqdn_sender", Verb::RejectNonFqdnSender, Arg::None},
    {"reject_non_fqdn_recipient", Verb::RejectNonFqdnRecipient, Arg::None},
    {"reject_unknown_sender_domain", Verb::RejectUnknownSenderDomain, Arg::None},
    {"reject_unknown_recipient_domain", Verb::RejectUnknownRecipientDomain, Arg::None},
    {"reject_unknown_client_hostname", Verb::RejectUnknownClientHostname, Arg::None},
    {"reject_unknown_client", Verb::RejectUnknownClientHostname, Arg::None},
    {"check_client_access", Verb::CheckClientAccess, Arg::Table},
    {"check_helo_access", Verb::CheckHeloAccess, Arg::Table},
    {"check_sender_access", Verb::CheckSenderAccess, Arg::Table},
    {"check_recipient_access", Verb::CheckRecipientAccess, Arg::Table},
    {"check_sasl_access", Verb::CheckSaslAccess, Arg::Table},
    {"reject_rbl_client", Verb::RejectRblClient, Arg::Zone},
    {"reject_rbl", Verb::RejectRblClient, Arg::Zone},
    {"permit_dnswl_client", Verb::PermitDnswlClient, Arg::Zone},
    {"reject_rhsbl_client", Verb::RejectRhsblClient, Arg::Zone},
    {"reject_rhsbl_helo", Verb::RejectRhsblHelo, Arg::Zone},
    {"reject_rhsbl_sender", Verb::RejectRhsblSender, Arg::Zone},
    {"reject_rhsbl_recipient", Verb::RejectRhsblRecipient, Arg::Zone},
    {"reject_unlisted_recipient", Verb::RejectUnlistedRecipient, Arg::None},
    {"check_recipient_maps", Verb::RejectUnlistedRecipient, Arg::None},
    {"reject_sender_login_mismatch", Verb::RejectSenderLoginMismatch, Arg::None},
    {"reject_authenticated_sender_login_mismatch", Verb::RejectAuthenticatedSenderLoginMismatch, Arg::None},
    {"reject_unauthenticated_sender_login_mismatch", Verb::RejectUnauthenticatedSenderLoginMismatch, Arg::None},
    {"reject_known_sender_login_mismatch", Verb::RejectKnownSenderLoginMismatch, Arg::None},
};

// One octet of a DNSBL answer filter: "2", or "[2;4..7]".
using OctetRanges = std::vector<std::pair<int, int>>;

std::optional<std::array<OctetRanges, 4>> parse_filter(std::string_view f, std::string& error) {
    std::array<OctetRanges, 4> out;
    std::size_t octet = 0;
    std::size_t i = 0;
    auto number = [&](int& v) {
        std::size_t start = i;
        v = 0;
        while (i < f.size() && f[i] >= '0' && f[i] <= '9' && i - start < 3) v = v * 10 + (f[i++] - '0');
        return i > start && v <= 255;
    };
    while (true) {
        if (octet >= 4) { error = "more than four octets"; return std::nullopt; }
        if (i < f.size() && f[i] == '[') {
            ++i;
            while (true) {
                int lo = 0, hi = 0;
                if (!number(lo)) { error = "bad number in [...]"; return std::nullopt; }
                hi = lo;
                if (f.substr(i, 2) == "..") {
                    i += 2;
                    if (!number(hi) || hi < lo) { error = "bad range in [...]"; return std::nullopt; }
                }
                out[octet].emplace_back(lo, hi);
                if (i < f.size() && f[i] == ';') { ++i; continue; }
                if (i < f.size() && f[i] == ']') { ++i; break; }
                error = "missing ']'";
                return std::nullopt;
            }
        } else {
            int v = 0;
            if (!number(v)) { error = "bad octet"; return std::nullopt; }
            out[octet].emplace_back(v, v);
        }
        ++octet;
        if (i == f.size()) break;
        if (f[i] != '.') { error = "expected '.'"; return std::nullopt; }
        ++i;
    }
    if (octet != 4) { error = "need four octets (d.d.d.d)"; return std::nullopt; }
    return out;
}

bool filter_matches(const std::array<OctetRanges, 4>& f, const std::string& a) {
    std::uint8_t b[4];
    if (inet_pton(AF_INET, a.c_str(), b) != 1) return false;
    for (int i = 0; i < 4; ++i) {
        bool ok = false;
        for (auto [lo, hi] : f[i]) ok = ok || (b[i] >= lo && b[i] <= hi);
        if (!ok) return false;
    }
    return true;
}

// The DNSBL query prefix: 192.0.2.1 -> 1.2.0.192; IPv6 as reversed nibbles.
std::string reversed_ip(const std::string& ip_text) {
    std::string t = ip_text;
    if (t.size() >= 2 && t.front() == '[' && t.back() == ']') t = t.substr(1, t.size() - 2);
    std::uint8_t b[16];
    if (inet_pton(AF_INET, t.c_str(), b) == 1) return fmt::format("{}.{}.{}.{}", b[3], b[2], b[1], b[0]);
    if (inet_pton(AF_INET6, t.c_str(), b) != 1) return "";
    static const std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(mapped, mapped + 12, b)) return fmt::format("{}.{}.{}.{}", b[15], b[14], b[13], b[12]);
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (int i = 15; i >= 0; --i) {
        out += hex[b[i] & 0xf];
        out += '.';
        out += hex[b[i] >> 4];
        if (i) out += '.';
    }
    return out;
}

bool valid_ip_literal(std::string_view name) {
    if (name.size() < 3 || name.front() != '[' || name.back() != ']') return false;
    std::string inner(name.substr(1, name.size() - 2));
    std::uint8_t b[16];
    if (inner.size() > 5 && ascii_iequals(inner.substr(0, 5), "ipv6:"))
        return inet_pton(AF_INET6, inner.c_str() + 5, b) == 1;
    return inet_pton(AF_INET, inner.c_str(), b) == 1;
}

// Postfix's valid_hostname: letters, digits, '-' and '_' in labels of 1..63, not starting or
// ending with '-', 255 in all, and not all-numeric (that would be an address, not a name).
bool valid_hostname(std::string_view n) {
    if (n.empty() || n.size() > 255) return false;
    bool non_numeric = false;
    std::size_t label = 0;
    char prev = '.';
    for (char c : n) {
        bool alpha = (ascii_lower(c) >= 'a' && ascii_lower(c) <= 'z') || c == '_';
        bool digit = c >= '0' && c <= '9';
        if (alpha || digit) {
            non_numeric = non_numeric || alpha;
            ++label;
        } else if (c == '-') {
            if (label == 0) return false;
            non_numeric = true;
            ++label;
        } else if (c == '.') {
            if (label == 0 || prev == '-') return false;
            label = 0;
        } else {
            return false;
        }
        if (label > 63) return false;
        prev = c;
    }
    return label > 0 && prev != '-' && non_numeric;
}

std::string strip_dot(std::string_view n) {
    if (!n.empty() && n.back() == '.') n.remove_suffix(1);
    return std::string(n);
}

std::string_view domain_of(std::string_view address) {
    auto at = address.rfind('@');
    return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

// user@elsewhere@domain, user%elsewhere@domain, host!user@domain: sender-specified routing,
// which never counts as an authorized destination.
bool has_routing(std::string_view address) {
    auto at = address.rfind('@');
    std::string_view local = at == std::string_view::npos ? address : address.substr(0, at);
    return local.find_first_of("@%!") != std::string_view::npos;
}

bool authorized_destination(const Context& c) {
    return c.recipient && (c.recipient_local || c.recipient_relay) && !has_routing(*c.recipient);
}

// Replies go on the wire: no control characters (a DNSBL TXT record or a header substitution
// could carry CR LF), and short enough for one reply line.
std::string sanitize(std::string_view s) {
    std::string out;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? ' ' : c;
        if (out.size() >= 400) break;
    }
    return out;
}

}  // namespace

std::string_view stage_parameter(Stage s) {
    switch (s) {
        case Stage::Client: return "smtpd_client_restrictions";
        case Stage::Helo: return "smtpd_helo_restrictions";
        case Stage::Sender: return "smtpd_sender_restrictions";
        case Stage::Recipient: return "smtpd_recipient_restrictions";
        case Stage::Relay: return "smtpd_relay_restrictions";
        case Stage::Data: return "smtpd_data_restrictions";
        case Stage::EndOfData: return "smtpd_end_of_data_restrictions";
    }
    return "";
}

std::string Decision::reply() const {
    if (code == 0) return "";
    if (enhanced.empty()) return fmt::format("{} {}", code, text);
    return fmt::format("{} {} {}", code, enhanced, text);
}

struct RestrictionList::Item {
    Verb verb = Verb::Permit;
    std::string name;
    bool warn_if_reject = false;  // Postfix's "warn_if_reject" prefix: log instead of refusing
    std::shared_ptr<const AccessMap> table;
    std::string zone;
    std::optional<std::array<OctetRanges, 4>> filter;
};

TableLoader file_table_loader() {
    return [](std::string_view spec, std::string& error,
              std::vector<std::string>& problems) -> std::shared_ptr<const AccessMap> {
        try {
            return std::make_shared<const AccessMap>(AccessMap::load(spec, problems));
        } catch (const std::exception& e) {
            error = e.what();
            return nullptr;
        }
    };
}

std::optional<RestrictionList> RestrictionList::parse(std::string_view value, Stage stage, std::string& error,
                                                      std::vector<std::string>& problems, const TableLoader& loader) {
    auto words = config::split_list(value);
    auto items = std::make_shared<std::vector<Item>>();
    bool warn_next = false;
    const std::string_view param = stage_parameter(stage);
    for (std::size_t i = 0; i < words.size(); ++i) {
        const std::string name = ascii_lower(words[i]);
        if (name == "warn_if_reject") {
            warn_next = true;
            continue;
        }
        const VerbDef* def = nullptr;
        for (auto& d : kVerbs)
            if (name == d.name) def = &d;
        if (!def) {
            if (words[i].find(':') != std::string::npos)
                error = fmt::format("{}: bare table '{}' is not supported; write check_client_access, "
                                    "check_sender_access, ... before it", param, words[i]);
            else
                error = fmt::format("{}: unknown or unsupported restriction '{}'", param, words[i]);
            return std::nullopt;
        }
        Item item;
        item.verb = def->verb;
        item.name = def->name;
        item.warn_if_reject = warn_next;
        warn_next = false;
        if (def->arg != Arg::None) {
            if (i + 1 >= words.size()) {
                error = fmt::format("{}: {} needs {}", param, def->name,
                                    def->arg == Arg::Table ? "a table (TYPE:PATH)" : "a DNS zone");
                return std::nullopt;
            }
            const std::string& argument = words[++i];
            if (def->arg == Arg::Table) {
                if (argument.find(':') == std::string::npos) {
                    error = fmt::format("{}: {} needs a table as TYPE:PATH, not '{}'", param, def->name, argument);
                    return std::nullopt;
                }
                std::string load_error;
                item.table = loader(argument, load_error, problems);
                if (!item.table) {
                    error = fmt::format("{}: {} {}: {}", param, def->name, argument,
                                        load_error.empty() ? "cannot load table" : load_error);
                    return std::nullopt;
                }
            } else {
                auto eq = argument.find('=');
                item.zone = ascii_lower(strip_dot(argument.substr(0, eq)));
                if (item.zone.empty() || !valid_hostname(item.zone)) {
                    error = fmt::format("{}: {}: bad DNS zone '{}'", param, def->name, argument);
                    return std::nullopt;
                }
                if (eq != std::string::npos) {
                    std::string ferr;
                    item.filter = parse_filter(std::string_view(argument).substr(eq + 1), ferr);
                    if (!item.filter) {
                        error = fmt::format("{}: {}: bad reply filter in '{}': {}", param, def->name, argument, ferr);
                        return std::nullopt;
                    }
                }
            }
        }
        items->push_back(std::move(item));
    }
    if (warn_next) problems.push_back(fmt::format("{}: warn_if_reject at the end of the list has no effect", param));
    RestrictionList l;
    l.items_ = std::move(items);
    l.stage_ = stage;
    l.text_ = std::string(value);
    return l;
}

bool RestrictionList::empty() const { return !items_ || items_->empty(); }

bool RestrictionList::has_relay_guard() const {
    if (!items_) return false;
    for (auto& it : *items_) {
        if (it.warn_if_reject) continue;
        switch (it.verb) {
            case Verb::Reject: case Verb::Defer: case Verb::DeferIfPermit:
            case Verb::RejectUnauthDestination: case Verb::DeferUnauthDestination:
                return true;
            default: break;
        }
    }
    return false;
}

bool RestrictionList::uses_sender_login_maps() const {
    if (!items_) return false;
    for (auto& it : *items_)
        if (it.name.find("sender_login_mismatch") != std::string::npos) return true;
    return false;
}

namespace {

struct Reply {
    int code = 0;
    std::string enhanced;
    std::string text;
};

// What one restriction concluded.
struct Outcome {
    enum class Kind { Dunno, Permit, Refuse } kind = Kind::Dunno;
    Reply reply;  // Refuse
};

class Evaluation : public std::enable_shared_from_this<Evaluation> {
public:
    struct ListRef {
        std::shared_ptr<const std::vector<RestrictionList::Item>> items;
        Stage stage;
    };

    Evaluation(std::vector<ListRef> lists, const Context& ctx, const Codes& codes, dns::Resolver* resolver,
               bool single, std::function<void(Decision)> done)
        : lists_(std::move(lists)), ctx_(ctx), codes_(codes), resolver_(resolver), single_(single),
          done_(std::move(done)) {}

    void start() { pump(); }

private:
    using Item = RestrictionList::Item;

    std::vector<ListRef> lists_;
    Context ctx_;
    Codes codes_;
    dns::Resolver* resolver_;
    bool single_;
    std::function<void(Decision)> done_;

    std::size_t list_ = 0, item_ = 0;
    bool pumping_ = false, waiting_ = false, finished_ = false, last_permit_ = false;
    std::optional<Outcome> pending_;
    std::optional<Reply> defer_if_permit_, defer_if_reject_;
    Decision d_;

    // --- the walk -------------------------------------------------------------------------

    // A trampoline: a resolver that answers synchronously re-enters through deliver(), which
    // only records the outcome; this loop applies it, so the stack never grows per item.
    void pump() {
        if (pumping_) return;
        pumping_ = true;
        auto keep = shared_from_this();
        while (!finished_ && !waiting_) {
            if (pending_) {
                Outcome o = std::move(*pending_);
                pending_.reset();
                apply(std::move(o));
                continue;
            }
            if (list_ >= lists_.size()) {
                finish();
                break;
            }
            const auto& items = *lists_[list_].items;
            if (item_ >= items.size()) {
                next_list(false);
                continue;
            }
            run(items[item_]);
        }
        pumping_ = false;
    }

    void deliver(Outcome o) {
        waiting_ = false;
        pending_ = std::move(o);
        pump();
    }

    void next_list(bool permitted) {
        last_permit_ = permitted;
        ++list_;
        item_ = 0;
        // defer_if_reject belongs to the list that set it (Postfix resets it per check).
        defer_if_reject_.reset();
    }

    const Item& current() const { return (*lists_[list_].items)[item_]; }
    Stage stage() const { return lists_[list_].stage; }

    void apply(Outcome o) {
        const Item& it = current();
        switch (o.kind) {
            case Outcome::Kind::Dunno:
                ++item_;
                return;
            case Outcome::Kind::Permit:
                next_list(true);
                return;
            case Outcome::Kind::Refuse:
                break;
        }
        if (it.warn_if_reject) {
            d_.log.push_back(whatsup("reject_warning", format(o.reply)));
            ++item_;
            return;
        }
        if (o.reply.code / 100 == 5 && defer_if_reject_) o.reply = *defer_if_reject_;
        refuse(o.reply);
    }

    void refuse(const Reply& r) {
        d_.kind = r.code / 100 == 4 ? Decision::Kind::Defer : Decision::Kind::Reject;
        d_.code = r.code;
        d_.enhanced = r.enhanced;
        d_.text = sanitize(r.text);
        d_.log.push_back(whatsup("reject", d_.reply()));
        finished_ = true;
        deliver_decision();
    }

    void finish() {
        if (defer_if_permit_) {
            refuse(*defer_if_permit_);
            return;
        }
        d_.kind = single_ && last_permit_ ? Decision::Kind::Permit : Decision::Kind::Continue;
        finished_ = true;
        deliver_decision();
    }

    void deliver_decision() {
        auto done = std::move(done_);
        done_ = nullptr;
        if (done) done(std::move(d_));
    }

    // --- replies and log lines ----------------------------------------------------------

    static std::string format(const Reply& r) {
        return r.enhanced.empty() ? fmt::format("{} {}", r.code, r.text)
                                  : fmt::format("{} {} {}", r.code, r.enhanced, r.text);
    }

    // The enhanced code's class follows the reply code, whatever the configured code is.
    static Reply make(int code, std::string_view dsn, std::string text) {
        Reply r{code, std::string(dsn), std::move(text)};
        if (!r.enhanced.empty()) r.enhanced[0] = static_cast<char>('0' + code / 100);
        return r;
    }

    std::string client_namaddr() const { return fmt::format("{}[{}]", ctx_.client_name, ctx_.client_address); }

    // Postfix's "<name>: Class rejected" subject for a restriction in a given context.
    struct Subject {
        std::string name, cls;
    };
    Subject stage_subject() const {
        switch (stage()) {
            case Stage::Client: return {client_namaddr(), "Client host"};
            case Stage::Helo: return {ctx_.helo.value_or(""), "Helo command"};
            case Stage::Sender: return {ctx_.sender.value_or(""), "Sender address"};
            case Stage::Recipient:
            case Stage::Relay: return {ctx_.recipient.value_or(""), "Recipient address"};
            case Stage::Data: return {"DATA", "Data command"};
            case Stage::EndOfData: return {"END-OF-MESSAGE", "End-of-data"};
        }
        return {};
    }
    Subject client_subject() const { return {client_namaddr(), "Client host"}; }
    Subject helo_subject() const { return {ctx_.helo.value_or(""), "Helo command"}; }
    Subject sender_subject() const { return {ctx_.sender.value_or(""), "Sender address"}; }
    Subject recipient_subject() const { return {ctx_.recipient.value_or(""), "Recipient address"}; }

    static std::string rejected(const Subject& s, std::string_view why) {
        return fmt::format("<{}>: {} rejected: {}", s.name, s.cls, why);
    }

    // "reject: RCPT from host[addr]: <text>; from=<s> to=<r> proto=ESMTP helo=<h>"
    std::string whatsup(std::string_view what, std::string_view text) const {
        std::vector<std::string> tail;
        if (ctx_.sender) tail.push_back(fmt::format("from=<{}>", *ctx_.sender));
        if (ctx_.recipient) tail.push_back(fmt::format("to=<{}>", *ctx_.recipient));
        tail.push_back(fmt::format("proto={}", ctx_.protocol));
        if (ctx_.helo) tail.push_back(fmt::format("helo=<{}>", *ctx_.helo));
        return fmt::format("{}: {} from {}: {}; {}", what, ctx_.command, client_namaddr(), sanitize(text),
                           fmt::join(tail, " "));
    }

    void warn(std::string text) { d_.warnings.push_back(std::move(text)); }

    // --- the verbs ------------------------------------------------------------------------

    void sync(Outcome o) { pending_ = std::move(o); }
    void dunno() { sync({}); }
    void permit() { sync({Outcome::Kind::Permit, {}}); }
    void refuse_with(Reply r) { sync({Outcome::Kind::Refuse, std::move(r)}); }

    void run(const Item& it) {
        const Codes& c = codes_;
        switch (it.verb) {
            case Verb::Permit: return permit();
            case Verb::Reject:
                return refuse_with(make(c.reject_code, "5.7.1", rejected(stage_subject(), "Access denied")));
            case Verb::Defer:
                return refuse_with(make(c.defer_code, "4.7.1", rejected(stage_subject(), "Access denied")));
            case Verb::DeferIfPermit:
                if (!it.warn_if_reject)
                    defer_if_permit_ = make(450, "4.7.1", rejected(stage_subject(), "defer_if_permit requested"));
                return dunno();
            case Verb::DeferIfReject:
                defer_if_reject_ = make(450, "4.7.1", rejected(stage_subject(), "defer_if_reject requested"));
                return dunno();
            case Verb::PermitMynetworks: return ctx_.client_in_mynetworks ? permit() : dunno();
            case Verb::PermitSaslAuthenticated: return ctx_.sasl_authenticated ? permit() : dunno();
            case Verb::RejectUnauthDestination:
            case Verb::DeferUnauthDestination:
                if (!ctx_.recipient || authorized_destination(ctx_)) return dunno();
                // Postfix answers defer_unauth_destination with 454 (its 2.10+ default policy).
                return refuse_with(make(it.verb == Verb::RejectUnauthDestination ? c.relay_domains_reject_code : 454,
                                        "5.7.1", fmt::format("<{}>: Relay access denied", *ctx_.recipient)));
            case Verb::PermitAuthDestination:
                return ctx_.recipient && authorized_destination(ctx_) ? permit() : dunno();
            case Verb::RejectNonFqdnHelo: {
                if (!ctx_.helo) return dunno();
                const std::string& h = *ctx_.helo;
                if (!h.empty() && h.front() == '[') {
                    if (valid_ip_literal(h)) return dunno();
                } else {
                    std::string n = strip_dot(h);
                    if (valid_hostname(n) && n.find('.') != std::string::npos) return dunno();
                }
                return refuse_with(make(c.non_fqdn_reject_code, "5.5.2",
                                        rejected(helo_subject(), "need fully-qualified hostname")));
            }
            case Verb::RejectInvalidHelo: {
                if (!ctx_.helo) return dunno();
                const std::string& h = *ctx_.helo;
                bool ok = !h.empty() && h.front() == '[' ? valid_ip_literal(h) : valid_hostname(strip_dot(h));
                if (ok) return dunno();
                return refuse_with(make(c.invalid_hostname_reject_code, "5.5.2", rejected(helo_subject(), "Invalid name")));
            }
            case Verb::RejectUnknownHelo: {
                if (!ctx_.helo || ctx_.helo->empty() || ctx_.helo->front() == '[') return dunno();
                std::string n = strip_dot(*ctx_.helo);
                if (!valid_hostname(n)) return dunno();  // reject_invalid_helo_hostname's business
                return probe_domain(n, {dns::Type::A, dns::Type::AAAA, dns::Type::MX}, ProbeFor::Helo);
            }
            case Verb::RejectNonFqdnSender:
            case Verb::RejectNonFqdnRecipient: {
                bool sender = it.verb == Verb::RejectNonFqdnSender;
                const auto& addr = sender ? ctx_.sender : ctx_.recipient;
                if (!addr || addr->empty()) return dunno();
                std::string_view dom = domain_of(*addr);
                if (!sender && dom.empty() && ascii_iequals(*addr, "postmaster")) return dunno();  // RFC 5321 4.5.1
                bool ok = !dom.empty() && (dom.front() == '[' ? valid_ip_literal(dom)
                                                               : (valid_hostname(strip_dot(dom)) &&
                                                                  strip_dot(dom).find('.') != std::string::npos));
                if (ok) return dunno();
                return refuse_with(make(c.non_fqdn_reject_code, "5.5.2",
                                        rejected(sender ? sender_subject() : recipient_subject(),
                                                 "need fully-qualified address")));
            }
            case Verb::RejectUnknownSenderDomain:
            case Verb::RejectUnknownRecipientDomain: {
                bool sender = it.verb == Verb::RejectUnknownSenderDomain;
                const auto& addr = sender ? ctx_.sender : ctx_.recipient;
                if (!addr || addr->empty()) return dunno();
                if (sender ? ctx_.sender_local : ctx_.recipient_local) return dunno();  // we are its destination
                std::string dom = strip_dot(domain_of(*addr));
                if (dom.empty() || dom.front() == '[' || !valid_hostname(dom)) return dunno();
                return probe_domain(dom, {dns::Type::MX, dns::Type::A, dns::Type::AAAA},
                                    sender ? ProbeFor::Sender : ProbeFor::Recipient);
            }
            case Verb::RejectUnknownClientHostname:
                if (!ascii_iequals(ctx_.client_name, "unknown")) return dunno();
                return refuse_with(make(ctx_.client_name_tempfail ? 450 : c.unknown_client_reject_code, "4.7.25",
                                        fmt::format("Client host rejected: cannot find your hostname, [{}]",
                                                    ctx_.client_address)));
            case Verb::CheckClientAccess: {
                std::string problem;
                auto m = it.table->lookup_client(ctx_.client_address, ctx_.client_name, c.lookup, &problem);
                if (!problem.empty()) warn(problem);
                return table_result(it, m, client_subject());
            }
            case Verb::CheckHeloAccess: {
                if (!ctx_.helo || ctx_.helo->empty()) return dunno();
                std::string problem;
                auto m = it.table->lookup_domain(*ctx_.helo, c.lookup, &problem);
                if (!problem.empty()) warn(problem);
                return table_result(it, m, helo_subject());
            }
            case Verb::CheckSenderAccess:
            case Verb::CheckRecipientAccess: {
                bool sender = it.verb == Verb::CheckSenderAccess;
                const auto& addr = sender ? ctx_.sender : ctx_.recipient;
                if (!addr) return dunno();
                std::string problem;
                auto m = it.table->lookup_address(*addr, c.lookup, &problem);
                if (!problem.empty()) warn(problem);
                return table_result(it, m, sender ? sender_subject() : recipient_subject());
            }
            case Verb::CheckSaslAccess: {
                if (!ctx_.sasl_authenticated || ctx_.sasl_username.empty()) return dunno();
                std::string problem;
                auto m = it.table->lookup_key(ctx_.sasl_username, &problem);
                if (!problem.empty()) warn(problem);
                return table_result(it, m, Subject{ctx_.sasl_username, "SASL login name"});
            }
            case Verb::RejectRblClient:
            case Verb::PermitDnswlClient: {
                std::string rev = reversed_ip(ctx_.client_address);
                if (rev.empty()) return dunno();
                if (it.verb == Verb::PermitDnswlClient && stage_guards_relay() && !authorized_destination(ctx_))
                    return dunno();  // an allowlist must never open the relay (Postfix ignores it here too)
                return dnsbl(it, rev, "Client host", ctx_.client_address);
            }
            case Verb::RejectRhsblClient:
                if (ascii_iequals(ctx_.client_name, "unknown")) return dunno();
                return dnsbl(it, ascii_lower(ctx_.client_name), "Client host", ctx_.client_name);
            case Verb::RejectRhsblHelo: {
                if (!ctx_.helo || ctx_.helo->empty() || ctx_.helo->front() == '[') return dunno();
                std::string n = strip_dot(*ctx_.helo);
                if (!valid_hostname(n)) return dunno();
                return dnsbl(it, ascii_lower(n), "Helo command", *ctx_.helo);
            }
            case Verb::RejectRhsblSender:
            case Verb::RejectRhsblRecipient: {
                bool sender = it.verb == Verb::RejectRhsblSender;
                const auto& addr = sender ? ctx_.sender : ctx_.recipient;
                if (!addr || addr->empty()) return dunno();
                std::string dom = strip_dot(domain_of(*addr));
                if (dom.empty() || dom.front() == '[' || !valid_hostname(dom)) return dunno();
                return dnsbl(it, ascii_lower(dom), sender ? "Sender address" : "Recipient address", *addr);
            }
            case Verb::RejectUnlistedRecipient:
                if (!ctx_.recipient || !ctx_.recipient_local || ctx_.recipient_known.value_or(true)) return dunno();
                return refuse_with(make(c.unlisted_recipient_reject_code, "5.1.1",
                                        rejected(recipient_subject(), "User unknown in virtual mailbox table")));
            case Verb::RejectSenderLoginMismatch:
            case Verb::RejectAuthenticatedSenderLoginMismatch:
            case Verb::RejectUnauthenticatedSenderLoginMismatch:
            case Verb::RejectKnownSenderLoginMismatch:
                return login_mismatch(it.verb);
        }
        dunno();
    }

    bool stage_guards_relay() const { return stage() == Stage::Relay || stage() == Stage::Recipient; }

    std::string strip_extension(std::string_view address) const {
        auto at = address.rfind('@');
        const auto& delim = codes_.lookup.recipient_delimiter;
        if (at == std::string_view::npos || delim.empty()) return std::string(address);
        auto cut = address.substr(0, at).find_first_of(delim);
        if (cut == std::string_view::npos || cut == 0) return std::string(address);
        return std::string(address.substr(0, cut)) + std::string(address.substr(at));
    }

    void login_mismatch(Verb v) {
        if (!ctx_.sender || ctx_.sender->empty()) return dunno();
        const auto& owners = ctx_.sender_owners;
        const bool owned = owners && !owners->empty();
        if (ctx_.sasl_authenticated) {
            if (v == Verb::RejectUnauthenticatedSenderLoginMismatch) return dunno();
            if (v == Verb::RejectKnownSenderLoginMismatch && !owned) return dunno();
            if (owned)
                for (auto& o : *owners)
                    if (ascii_iequals(o, ctx_.sasl_username)) return dunno();
            // A login always owns the address that is its name (user+ext@ too): a passwd-file
            // user without an account here may still send as themselves.
            if (ascii_iequals(strip_extension(*ctx_.sender), strip_extension(ctx_.sasl_username))) return dunno();
            return refuse_with(make(553, "5.7.1",
                                    rejected(sender_subject(), fmt::format("not owned by user {}", ctx_.sasl_username))));
        }
        if (v == Verb::RejectAuthenticatedSenderLoginMismatch || !owned) return dunno();
        return refuse_with(make(553, "5.7.1", rejected(sender_subject(), "not logged in")));
    }

    // check_*_access: the action of the matching entry, as Postfix's table result handling.
    void table_result(const Item& it, const std::optional<AccessMap::Match>& m, const Subject& s) {
        if (!m) return dunno();
        const Action& a = m->action;
        const Codes& c = codes_;
        auto text_or = [&](std::string_view dflt) { return a.text.empty() ? std::string(dflt) : a.text; };
        auto noted = [&](std::string_view dflt) {
            return fmt::format("<{}>: {} {}", s.name, s.cls, a.text.empty() ? std::string(dflt) : a.text);
        };
        switch (a.kind) {
            case Action::Kind::Ok: return permit();
            case Action::Kind::Dunno: return dunno();
            case Action::Kind::Reject:
                return refuse_with(make(a.code ? a.code : c.access_map_reject_code,
                                        a.enhanced.empty() ? "5.7.1" : a.enhanced,
                                        rejected(s, text_or("Access denied"))));
            case Action::Kind::Defer:
                return refuse_with(make(a.code ? a.code : c.access_map_defer_code,
                                        a.enhanced.empty() ? "4.7.1" : a.enhanced,
                                        rejected(s, text_or("Access denied"))));
            case Action::Kind::DeferIfReject:
                defer_if_reject_ = make(450, a.enhanced.empty() ? "4.7.1" : a.enhanced, rejected(s, text_or("Access denied")));
                return dunno();
            case Action::Kind::DeferIfPermit:
                if (!it.warn_if_reject)
                    defer_if_permit_ = make(450, a.enhanced.empty() ? "4.7.1" : a.enhanced,
                                            rejected(s, text_or("Access denied")));
                return dunno();
            case Action::Kind::Discard:
                // Postfix: DISCARD accepts (like OK) and drops the whole message later.
                d_.discard = true;
                d_.log.push_back(whatsup("discard", noted("triggers DISCARD action")));
                return permit();
            case Action::Kind::Hold:
                d_.hold = true;
                d_.log.push_back(whatsup("hold", noted("triggers HOLD action")));
                return dunno();
            case Action::Kind::Warn:
                d_.log.push_back(whatsup("warn", noted("triggers WARN action")));
                return dunno();
            case Action::Kind::Info:
                d_.log.push_back(whatsup("info", noted("triggers INFO action")));
                return dunno();
        }
        dunno();
    }

    // --- DNS ------------------------------------------------------------------------------

    void lookup(const std::string& name, dns::Type type, std::function<void(dns::Answer)> cb) {
        waiting_ = true;
        if (!resolver_) {
            dns::Answer a;
            a.status = dns::Answer::Status::TempFail;
            a.error = "no DNS resolver";
            cb(std::move(a));
            return;
        }
        auto self = shared_from_this();
        resolver_->lookup(name, type, [self, cb = std::move(cb)](dns::Answer a) { cb(std::move(a)); });
    }

    enum class ProbeFor { Helo, Sender, Recipient };
    enum class Found { Yes, No, NullMx, TempFail };

    struct Probe {
        std::string name;
        std::vector<dns::Type> types;
        std::size_t next = 0;
        bool tempfail = false;
        std::string error;
        ProbeFor what;
    };

    // reject_unknown_{sender,recipient}_domain and reject_unknown_helo_hostname: does the
    // name have MX, A or AAAA records? Any one found is enough; a null MX (RFC 7505) is final.
    void probe_domain(std::string name, std::vector<dns::Type> types, ProbeFor what) {
        auto p = std::make_shared<Probe>();
        p->name = std::move(name);
        p->types = std::move(types);
        p->what = what;
        probe_next(p);
    }

    void probe_next(const std::shared_ptr<Probe>& p) {
        if (p->next >= p->types.size()) return probe_done(*p, p->tempfail ? Found::TempFail : Found::No);
        dns::Type t = p->types[p->next++];
        lookup(p->name, t, [this, p, t](dns::Answer a) {
            using S = dns::Answer::Status;
            if (a.status == S::Ok) {
                if (t == dns::Type::MX) {
                    bool null_host = false;
                    for (auto& r : a.records) {
                        auto sp = r.find(' ');
                        std::string host = sp == std::string::npos ? "" : strip_dot(detail::trim(r.substr(sp + 1)));
                        null_host = null_host || host.empty();
                    }
                    if (null_host) return probe_done(*p, Found::NullMx);
                }
                return probe_done(*p, Found::Yes);
            }
            if (a.status == S::TempFail) {
                p->tempfail = true;
                if (p->error.empty()) p->error = a.error;
            }
            probe_next(p);
        });
    }

    void probe_done(const Probe& p, Found f) {
        const Codes& c = codes_;
        const bool sender = p.what == ProbeFor::Sender;
        const Subject s = p.what == ProbeFor::Helo ? helo_subject() : sender ? sender_subject() : recipient_subject();
        Outcome o;
        switch (f) {
            case Found::Yes: break;
            case Found::NullMx:
                o = {Outcome::Kind::Refuse,
                     sender ? make(550, "5.7.27", rejected(s, fmt::format("Domain {} does not accept mail (nullMX)", p.name)))
                            : make(556, "5.1.10", rejected(s, fmt::format("Domain {} does not accept mail (nullMX)", p.name)))};
                if (p.what == ProbeFor::Helo) o = {};  // a null MX says nothing about a HELO name
                break;
            case Found::No:
                if (p.what == ProbeFor::Helo)
                    o = {Outcome::Kind::Refuse, make(c.unknown_hostname_reject_code, "4.7.1", rejected(s, "Host not found"))};
                else
                    o = {Outcome::Kind::Refuse, make(c.unknown_address_reject_code, sender ? "4.1.8" : "4.1.2",
                                                     rejected(s, "Domain not found"))};
                break;
            case Found::TempFail: {
                warn(fmt::format("{}: DNS lookup of {} failed temporarily: {}", current().name, p.name,
                                 p.error.empty() ? "temporary failure" : p.error));
                Reply r = p.what == ProbeFor::Helo
                              ? make(450, "4.7.1", rejected(s, "Host not found"))
                              : make(450, sender ? "4.1.8" : "4.1.2", rejected(s, "Domain not found"));
                // unknown_*_tempfail_action: defer_if_permit keeps looking for a reason to reject.
                const bool immediate = p.what != ProbeFor::Helo && !c.unknown_address_tempfail_defer_if_permit;
                if (immediate) {
                    o = {Outcome::Kind::Refuse, r};
                } else if (!current().warn_if_reject) {
                    defer_if_permit_ = r;
                } else {
                    d_.log.push_back(whatsup("reject_warning", format(r)));
                }
                break;
            }
        }
        deliver(std::move(o));
    }

    // DNSBL (reversed client address) and RHSBL (domain name) lookups.
    void dnsbl(const Item& it, const std::string& prefix, std::string cls, std::string what) {
        const std::string query = prefix + "." + it.zone;
        const bool allow = it.verb == Verb::PermitDnswlClient;
        const Item* item = &it;
        lookup(query, dns::Type::A, [this, item, query, allow, cls, what](dns::Answer a) {
            using S = dns::Answer::Status;
            if (a.status == S::TempFail) {
                warn(fmt::format("{} {}: lookup of {} failed temporarily: {}", item->name, item->zone, query,
                                 a.error.empty() ? "temporary failure" : a.error));
                if (allow)  // Postfix: an allowlist we could not ask turns a later reject into a defer
                    defer_if_reject_ = make(450, "4.7.1",
                                            fmt::format("<{}>: Client host rejected: Service unavailable; "
                                                        "DNS allowlist lookup error for {}", client_namaddr(), item->zone));
                return deliver({});
            }
            bool listed = false;
            if (a.status == S::Ok)
                for (auto& r : a.records) listed = listed || !item->filter || filter_matches(*item->filter, r);
            if (!listed) return deliver({});
            if (allow) return deliver({Outcome::Kind::Permit, {}});
            // Listed: fetch the TXT reason for the reply, as Postfix's $rbl_reason.
            lookup(query, dns::Type::TXT, [this, item, cls, what](dns::Answer t) {
                std::string reason;
                if (t.status == dns::Answer::Status::Ok && !t.records.empty()) reason = t.records.front();
                std::string text = fmt::format("Service unavailable; {} [{}] blocked using {}", cls, what, item->zone);
                if (!reason.empty()) text += "; " + reason;
                deliver({Outcome::Kind::Refuse, make(codes_.maps_rbl_reject_code, "5.7.1", std::move(text))});
            });
        });
    }
};

}  // namespace

void RestrictionList::evaluate(const Context& ctx, const Codes& codes, dns::Resolver* resolver,
                               std::function<void(Decision)> done) const {
    std::vector<Evaluation::ListRef> lists;
    if (items_ && !items_->empty()) lists.push_back({items_, stage_});
    auto e = std::make_shared<Evaluation>(std::move(lists), ctx, codes, resolver, true, std::move(done));
    e->start();
}

void evaluate_lists(std::vector<RestrictionList> lists, const Context& ctx, const Codes& codes,
                    dns::Resolver* resolver, std::function<void(Decision)> done) {
    std::vector<Evaluation::ListRef> refs;
    for (auto& l : lists)
        if (l.items_ && !l.items_->empty()) refs.push_back({l.items_, l.stage_});
    auto e = std::make_shared<Evaluation>(std::move(refs), ctx, codes, resolver, false, std::move(done));
    e->start();
}

}  // namespace pillarbox::smtp::policy
