// access(5) tables: loading the text, cidr and regexp forms, parsing actions, and the per-key
// search order Postfix uses for client, HELO and address lookups.
#include "protocols/smtp/policy/access_map.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

#include "protocols/smtp/policy/table_text.hpp"
#include "server/ascii.hpp"
#include "server/config_values.hpp"

namespace pillarbox::smtp::policy {

using detail::split_enhanced;
using detail::trim;

namespace {

bool all_digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

// An IP address in binary; v4-mapped IPv6 counts as IPv4 (Postfix normalizes those too).
struct Ip {
    bool v6 = false;
    std::uint8_t b[16] = {};
};
std::optional<Ip> parse_ip(std::string_view text) {
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
    if (text.size() > 5 && ascii_iequals(text.substr(0, 5), "ipv6:")) text.remove_prefix(5);
    std::string s(text);
    Ip ip;
    if (inet_pton(AF_INET, s.c_str(), ip.b) == 1) return ip;
    if (inet_pton(AF_INET6, s.c_str(), ip.b) == 1) {
        static const std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::equal(mapped, mapped + 12, ip.b)) {
            std::memmove(ip.b, ip.b + 12, 4);
            std::fill(ip.b + 4, ip.b + 16, 0);
            return ip;
        }
        ip.v6 = true;
        return ip;
    }
    return std::nullopt;
}

std::string ip_text(const Ip& ip) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.b, buf, sizeof buf);
    return buf;
}

// The domain search: name, then parents as "example.com" or ".example.com" keys.
std::vector<std::string> domain_keys(std::string_view name, bool parent_style) {
    std::vector<std::string> keys;
    std::string n = ascii_lower(name);
    if (n.empty()) return keys;
    keys.push_back(n);
    if (n.front() == '[') return keys;  // an address literal has no parents
    for (auto dot = n.find('.'); dot != std::string::npos && dot + 1 < n.size(); dot = n.find('.', dot + 1))
        keys.push_back(parent_style ? n.substr(dot + 1) : n.substr(dot));
    return keys;
}

// 1.2.3.4, 1.2.3, 1.2, 1 -- or the IPv6 text form cut at each ':' from the right.
std::vector<std::string> address_keys(const Ip& ip) {
    std::vector<std::string> keys;
    std::string s = ip_text(ip);
    const char sep = ip.v6 ? ':' : '.';
    while (!s.empty()) {
        if (keys.empty() || keys.back() != s) keys.push_back(s);
        auto cut = s.rfind(sep);
        if (cut == std::string::npos) break;
        s.resize(cut);
        while (!s.empty() && s.back() == sep) s.pop_back();
    }
    return keys;
}

}  // namespace

std::optional<Action> Action::parse(std::string_view value, std::string& error) {
    value = trim(value);
    if (value.empty()) {
        error = "empty action";
        return std::nullopt;
    }
    Action a;
    // An all-numeric result means OK: relay-authorization schemes store time stamps there.
    if (all_digits(value)) {
        a.kind = Kind::Ok;
        return a;
    }
    auto sp = value.find_first_of(" \t");
    std::string_view cmd = value.substr(0, sp);
    std::string_view rest = sp == std::string_view::npos ? std::string_view() : trim(value.substr(sp));
    if (cmd.size() == 3 && (cmd[0] == '4' || cmd[0] == '5') && all_digits(cmd)) {
        a.kind = cmd[0] == '4' ? Kind::Defer : Kind::Reject;
        a.code = std::stoi(std::string(cmd));
        split_enhanced(rest, a.enhanced, a.text);
        // The enhanced code's class must agree with the reply code (Postfix fixes it the same way).
        if (!a.enhanced.empty()) a.enhanced[0] = cmd[0];
        return a;
    }
    const std::string upper = ascii_upper(cmd);
    struct K { const char* name; Kind kind; bool text; };
    static const K kinds[] = {
        {"OK", Kind::Ok, false},           {"PERMIT", Kind::Ok, false},
        {"REJECT", Kind::Reject, true},    {"DEFER", Kind::Defer, true},
        {"DISCARD", Kind::Discard, true},  {"HOLD", Kind::Hold, true},
        {"DUNNO", Kind::Dunno, false},     {"WARN", Kind::Warn, true},
        {"INFO", Kind::Info, true},        {"DEFER_IF_REJECT", Kind::DeferIfReject, true},
        {"DEFER_IF_PERMIT", Kind::DeferIfPermit, true},
    };
    for (auto& k : kinds) {
        if (upper != k.name) continue;
        a.kind = k.kind;
        if (k.text) {
            split_enhanced(rest, a.enhanced, a.text);
            if (!a.enhanced.empty()) {
                if (a.kind == Kind::Reject) a.enhanced[0] = '5';
                if (a.kind == Kind::Defer || a.kind == Kind::DeferIfReject || a.kind == Kind::DeferIfPermit)
                    a.enhanced[0] = '4';
            }
        }
        return a;
    }
    static const char* unsupported[] = {"FILTER", "REDIRECT", "PREPEND", "BCC", "REPLACE", "STRIP", "PASS"};
    for (auto* u : unsupported)
        if (upper == u) {
            error = fmt::format("action {} is not supported by Pillarbox", upper);
            return std::nullopt;
        }
    error = fmt::format("unknown action '{}' (restriction names other than permit are not supported in tables)",
                        std::string(cmd));
    return std::nullopt;
}

// A table line's right-hand side: an access(5) action, or (Values::Text) any non-empty text.
static std::optional<Action> parse_value(AccessMap::Values values, std::string_view value, std::string& error) {
    if (values == AccessMap::Values::Actions) return Action::parse(value, error);
    if (value.empty()) {
        error = "missing value";
        return std::nullopt;
    }
    Action a;
    a.kind = Action::Kind::Dunno;
    a.text.assign(value);
    return a;
}

struct AccessMap::Impl {
    Type type = Type::Text;
    Values values = Values::Actions;
    std::string name;
    std::unordered_map<std::string, Action> exact;  // Text: lower-case key

    struct CidrRule {
        enum class Kind { Match, If, Endif } kind = Kind::Match;
        config::Cidr net;
        bool negate = false;
        std::size_t skip_to = 0;
        Action action;
        std::string pattern;
    };
    std::vector<CidrRule> cidr;

    detail::RegexTable regex;
    std::vector<std::optional<Action>> regex_actions;  // parsed once when the result has no $n

    std::optional<Match> text_lookup(const std::string& key) const {
        auto it = exact.find(key);
        if (it == exact.end()) return std::nullopt;
        return Match{it->second, key};
    }

    std::optional<Match> cidr_lookup(std::string_view key) const {
        auto ip = parse_ip(key);
        if (!ip) return std::nullopt;
        for (std::size_t i = 0; i < cidr.size();) {
            const CidrRule& r = cidr[i];
            if (r.kind == CidrRule::Kind::Endif) { ++i; continue; }
            bool hit = r.net.v6 == ip->v6 && r.net.contains(ip->b, ip->v6);
            hit = hit != r.negate;
            if (r.kind == CidrRule::Kind::If) { i = hit ? i + 1 : r.skip_to; continue; }
            if (hit) return Match{r.action, r.pattern};
            ++i;
        }
        return std::nullopt;
    }

    std::optional<Match> regex_lookup(std::string_view key, std::string* problem) const {
        auto hit = regex.lookup(key, problem);
        if (!hit) return std::nullopt;
        const std::string pattern = fmt::format("{}:{}", name, regex.rules[hit->rule].line);
        if (auto& pre = regex_actions[hit->rule]) return Match{*pre, pattern};
        std::string err;
        auto a = parse_value(values, hit->value, err);
        if (!a) {
            // The substituted text no longer parses: behave as if the rule did not match.
            if (problem && problem->empty()) *problem = fmt::format("{}: {}", pattern, err);
            return std::nullopt;
        }
        return Match{*a, pattern};
    }
};

AccessMap::~AccessMap() = default;

AccessMap AccessMap::parse(Type type, std::string_view text, const std::string& name,
                           std::vector<std::string>& problems, Values values) {
    auto impl = std::make_shared<Impl>();
    impl->type = type;
    impl->name = name;
    impl->values = values;
    if (type == Type::Regex) {
        impl->regex = detail::RegexTable::parse(text, name, problems, [values](std::string_view v, std::string& e) {
            return parse_value(values, v, e).has_value();
        });
        for (auto& r : impl->regex.rules) {
            std::optional<Action> pre;
            if (r.kind == detail::RegexRule::Kind::Match && r.value.find('$') == std::string::npos) {
                std::string e;
                pre = parse_value(values, r.value, e);
            }
            impl->regex_actions.push_back(std::move(pre));
        }
        return AccessMap(std::move(impl));
    }
    std::vector<std::size_t> open_ifs;
    for (auto& line : detail::logical_lines(text)) {
        auto problem = [&](const std::string& what) {
            problems.push_back(fmt::format("{}:{}: {}; line skipped", name, line.number, what));
        };
        std::string_view s = line.text;
        auto sp = s.find_first_of(" \t");
        std::string_view key = s.substr(0, sp);
        std::string_view value = sp == std::string_view::npos ? std::string_view() : trim(s.substr(sp));
        if (type == Type::Cidr) {
            Impl::CidrRule rule;
            if (key == "endif") {
                if (open_ifs.empty()) { problem("endif without if"); continue; }
                rule.kind = Impl::CidrRule::Kind::Endif;
                impl->cidr.push_back(rule);
                impl->cidr[open_ifs.back()].skip_to = impl->cidr.size();
                open_ifs.pop_back();
                continue;
            }
            bool is_if = key == "if";
            if (is_if) {
                auto sp2 = value.find_first_of(" \t");
                key = value.substr(0, sp2);
                value = sp2 == std::string_view::npos ? std::string_view() : trim(value.substr(sp2));
            }
            rule.pattern = std::string(key);
            if (!key.empty() && key.front() == '!') { rule.negate = true; key.remove_prefix(1); }
            auto net = config::parse_cidr(key);
            if (!net) { problem(net.error); continue; }
            rule.net = *net.value;
            if (is_if) {
                if (!value.empty()) { problem("text after 'if' pattern"); continue; }
                rule.kind = Impl::CidrRule::Kind::If;
                open_ifs.push_back(impl->cidr.size());
                impl->cidr.push_back(rule);
                continue;
            }
            std::string err;
            auto a = parse_value(values, value, err);
            if (!a) { problem(value.empty() ? "missing action" : err); continue; }
            rule.action = *a;
            impl->cidr.push_back(rule);
            continue;
        }
        std::string err;
        auto a = parse_value(values, value, err);
        if (!a) { problem(value.empty() ? fmt::format("missing action for '{}'", key) : err); continue; }
        // postmap folds keys to lower case, and keeps the first of duplicate keys.
        if (!impl->exact.emplace(ascii_lower(key), *a).second) problem(fmt::format("duplicate key '{}'", key));
    }
    for (auto i : open_ifs) {
        problems.push_back(fmt::format("{}: missing endif for 'if {}'", name, impl->cidr[i].pattern));
        impl->cidr[i].skip_to = impl->cidr.size();
    }
    return AccessMap(std::move(impl));
}

AccessMap AccessMap::load(std::string_view spec, std::vector<std::string>& problems, Values values) {
    auto colon = spec.find(':');
    if (colon == std::string_view::npos || colon + 1 >= spec.size())
        throw std::runtime_error(fmt::format("table '{}' is not TYPE:PATH", spec));
    std::string type = ascii_lower(spec.substr(0, colon));
    std::string path(spec.substr(colon + 1));
    Type t;
    if (type == "hash" || type == "btree" || type == "lmdb" || type == "texthash" || type == "cdb" || type == "dbm")
        t = Type::Text;
    else if (type == "cidr")
        t = Type::Cidr;
    else if (type == "pcre" || type == "regexp")
        t = Type::Regex;
    else
        throw std::runtime_error(fmt::format("table '{}': unsupported type {}: (use hash:, texthash:, cidr: or pcre:)",
                                             spec, type));
    // hash:/etc/postfix/access names the postmap source file; its .db is never read.
    std::string text = detail::read_file(path);
    return parse(t, text, std::string(spec), problems, values);
}

std::optional<AccessMap::Match> AccessMap::lookup_client(std::string_view ip_str, std::string_view hostname,
                                                         const LookupOptions& o, std::string* problem) const {
    const Impl& m = *impl_;
    auto ip = parse_ip(ip_str);
    const bool named = !hostname.empty() && !ascii_iequals(hostname, "unknown");
    switch (m.type) {
        case Type::Text:
            if (named)
                for (auto& k : domain_keys(hostname, o.parent_matches_subdomains))
                    if (auto r = m.text_lookup(k)) return r;
            if (ip)
                for (auto& k : address_keys(*ip))
                    if (auto r = m.text_lookup(k)) return r;
            return std::nullopt;
        case Type::Cidr:
            return m.cidr_lookup(ip_str);
        case Type::Regex:
            if (named)
                if (auto r = m.regex_lookup(hostname, problem)) return r;
            return m.regex_lookup(ip ? ip_text(*ip) : std::string(ip_str), problem);
    }
    return std::nullopt;
}

std::optional<AccessMap::Match> AccessMap::lookup_domain(std::string_view name, const LookupOptions& o,
                                                         std::string* problem) const {
    const Impl& m = *impl_;
    switch (m.type) {
        case Type::Text:
            for (auto& k : domain_keys(name, o.parent_matches_subdomains))
                if (auto r = m.text_lookup(k)) return r;
            return std::nullopt;
        case Type::Cidr:
            return m.cidr_lookup(name);
        case Type::Regex:
            return m.regex_lookup(name, problem);
    }
    return std::nullopt;
}

std::optional<AccessMap::Match> AccessMap::lookup_address(std::string_view address, const LookupOptions& o,
                                                          std::string* problem) const {
    const Impl& m = *impl_;
    if (address.empty()) {
        if (o.null_sender_key.empty()) return std::nullopt;
        switch (m.type) {
            case Type::Text: return m.text_lookup(ascii_lower(o.null_sender_key));
            case Type::Cidr: return std::nullopt;
            case Type::Regex: return m.regex_lookup(o.null_sender_key, problem);
        }
    }
    auto at = address.rfind('@');
    std::string_view local = at == std::string_view::npos ? address : address.substr(0, at);
    std::string_view domain = at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
    switch (m.type) {
        case Type::Text: {
            const std::string full = ascii_lower(address);
            std::string base_local;  // user of user+ext, when there is an extension
            if (!o.recipient_delimiter.empty()) {
                auto d = local.find_first_of(o.recipient_delimiter);
                if (d != std::string_view::npos && d > 0) base_local = ascii_lower(local.substr(0, d));
            }
            if (auto r = m.text_lookup(full)) return r;
            if (!base_local.empty() && !domain.empty())
                if (auto r = m.text_lookup(base_local + "@" + ascii_lower(domain))) return r;
            if (!domain.empty())
                for (auto& k : domain_keys(domain, o.parent_matches_subdomains))
                    if (auto r = m.text_lookup(k)) return r;
            if (auto r = m.text_lookup(ascii_lower(local) + "@")) return r;
            if (!base_local.empty())
                if (auto r = m.text_lookup(base_local + "@")) return r;
            return std::nullopt;
        }
        case Type::Cidr:
            // Only an address-literal domain (user@[192.0.2.1]) can be an address.
            return domain.empty() ? std::nullopt : m.cidr_lookup(domain);
        case Type::Regex:
            return m.regex_lookup(address, problem);
    }
    return std::nullopt;
}

std::optional<AccessMap::Match> AccessMap::lookup_key(std::string_view key, std::string* problem) const {
    const Impl& m = *impl_;
    switch (m.type) {
        case Type::Text: return m.text_lookup(ascii_lower(key));
        case Type::Cidr: return m.cidr_lookup(key);
        case Type::Regex: return m.regex_lookup(key, problem);
    }
    return std::nullopt;
}

AccessMap::Type AccessMap::type() const { return impl_->type; }
const std::string& AccessMap::name() const { return impl_->name; }
std::size_t AccessMap::size() const {
    switch (impl_->type) {
        case Type::Text: return impl_->exact.size();
        case Type::Cidr: return impl_->cidr.size();
        case Type::Regex: return impl_->regex.rules.size();
    }
    return 0;
}

}  // namespace pillarbox::smtp::policy
