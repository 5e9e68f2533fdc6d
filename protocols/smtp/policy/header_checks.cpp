// header_checks: regexp tables applied to unfolded message headers, with Postfix's actions.
#include "protocols/smtp/policy/header_checks.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>

#include "protocols/smtp/policy/restrictions.hpp"
#include "protocols/smtp/policy/table_text.hpp"
#include "server/ascii.hpp"

namespace pillarbox::smtp::policy {

struct HeaderChecks::Impl {
    std::vector<detail::RegexTable> tables;
};

namespace {

struct ParsedAction {
    HeaderVerdict::Kind kind = HeaderVerdict::Kind::Dunno;
    std::string action;  // log word
    std::string rest;
};

bool parse_action(std::string_view value, ParsedAction& out, std::string& error) {
    value = detail::trim(value);
    auto sp = value.find_first_of(" \t");
    const std::string cmd = ascii_upper(value.substr(0, sp));
    out.rest = sp == std::string_view::npos ? std::string() : std::string(detail::trim(value.substr(sp)));
    using K = HeaderVerdict::Kind;
    struct A { const char* name; K kind; const char* log; };
    static const A actions[] = {
        {"REJECT", K::Reject, "reject"}, {"DISCARD", K::Discard, "discard"}, {"HOLD", K::Hold, "hold"},
        {"WARN", K::Warn, "warning"},    {"INFO", K::Info, "info"},          {"IGNORE", K::Ignore, ""},
        {"STRIP", K::Ignore, "strip"},   {"DUNNO", K::Dunno, ""},            {"OK", K::Dunno, ""},
    };
    for (auto& a : actions)
        if (cmd == a.name) {
            out.kind = a.kind;
            out.action = a.log;
            return true;
        }
    static const char* unsupported[] = {"BCC", "FILTER", "PREPEND", "REDIRECT", "REPLACE", "PASS"};
    for (auto* u : unsupported)
        if (cmd == u) {
            error = fmt::format("header_checks action {} is not supported by Pillarbox", cmd);
            return false;
        }
    error = fmt::format("unknown header_checks action '{}'", cmd);
    return false;
}

// RFC 5322 unfolding: a line break followed by whitespace is removed, the whitespace kept.
std::string unfold(std::string_view h) {
    while (!h.empty() && (h.back() == '\n' || h.back() == '\r')) h.remove_suffix(1);
    std::string out;
    out.reserve(h.size());
    for (std::size_t i = 0; i < h.size(); ++i) {
        char c = h[i];
        if (c == '\r' && i + 1 < h.size() && h[i + 1] == '\n') continue;
        if (c == '\n' && i + 1 < h.size() && (h[i + 1] == ' ' || h[i + 1] == '\t')) continue;
        out += c;
    }
    return out;
}

std::string printable(std::string_view s, std::size_t max) {
    std::string out;
    for (char c : s) {
        if (out.size() >= max) {
            out += "...";
            break;
        }
        auto u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? ' ' : c;
    }
    return out;
}

}  // namespace

HeaderChecks HeaderChecks::parse(std::string_view text, const std::string& name, std::vector<std::string>& problems) {
    auto impl = std::make_shared<Impl>();
    impl->tables.push_back(detail::RegexTable::parse(text, name, problems, [](std::string_view v, std::string& e) {
        ParsedAction a;
        return parse_action(v, a, e);
    }));
    HeaderChecks h;
    h.impl_ = std::move(impl);
    return h;
}

HeaderChecks HeaderChecks::load(std::string_view spec, std::vector<std::string>& problems) {
    std::string path(spec);
    if (auto colon = spec.find(':'); colon != std::string_view::npos && spec.substr(0, 1) != "/") {
        std::string type = ascii_lower(spec.substr(0, colon));
        if (type != "pcre" && type != "regexp")
            throw std::runtime_error(fmt::format("header_checks table '{}': use pcre:/path", spec));
        path = std::string(spec.substr(colon + 1));
    }
    return parse(detail::read_file(path), std::string(spec), problems);
}

HeaderChecks HeaderChecks::load(const std::vector<std::string>& specs, std::vector<std::string>& problems) {
    auto impl = std::make_shared<Impl>();
    for (auto& s : specs) {
        HeaderChecks one = load(s, problems);
        for (auto& t : one.impl_->tables) impl->tables.push_back(t);
    }
    HeaderChecks h;
    h.impl_ = std::move(impl);
    return h;
}

bool HeaderChecks::empty() const { return size() == 0; }

std::size_t HeaderChecks::size() const {
    std::size_t n = 0;
    if (impl_)
        for (auto& t : impl_->tables) n += t.rules.size();
    return n;
}

HeaderVerdict HeaderChecks::check(std::string_view header) const {
    HeaderVerdict v;
    if (!impl_) return v;
    const std::string h = unfold(header);
    for (auto& t : impl_->tables) {
        auto hit = t.lookup(h, &v.problem);
        if (!hit) continue;
        ParsedAction a;
        std::string error;
        if (!parse_action(hit->value, a, error)) {
            // Only a $n substitution can get here (the template parsed at load time).
            if (v.problem.empty()) v.problem = fmt::format("{}:{}: {}", t.name, t.rules[hit->rule].line, error);
            continue;
        }
        v.kind = a.kind;
        v.action = a.action;
        v.header = printable(h, 200);
        if (a.kind == HeaderVerdict::Kind::Reject) {
            detail::split_enhanced(a.rest, v.enhanced, v.text);
            if (v.enhanced.empty()) v.enhanced = "5.7.1";
            if (v.enhanced[0] == '2') v.enhanced[0] = '5';
            v.code = v.enhanced[0] == '4' ? 451 : 550;
            if (v.text.empty()) v.text = "message content rejected";
            v.text = printable(v.text, 300);
        } else {
            v.text = printable(a.rest, 300);
        }
        return v;
    }
    return v;
}

std::string HeaderVerdict::reply() const {
    if (kind != Kind::Reject) return "";
    return fmt::format("{} {} {}", code, enhanced, text);
}

std::string HeaderVerdict::log_line(const Context& ctx) const {
    if (action.empty()) return "";
    std::vector<std::string> tail;
    if (ctx.sender) tail.push_back(fmt::format("from=<{}>", *ctx.sender));
    if (ctx.recipient) tail.push_back(fmt::format("to=<{}>", *ctx.recipient));
    tail.push_back(fmt::format("proto={}", ctx.protocol));
    if (ctx.helo) tail.push_back(fmt::format("helo=<{}>", *ctx.helo));
    std::string line = fmt::format("{}: header {} from {}[{}]; {}", action, header, ctx.client_name,
                                   ctx.client_address, fmt::join(tail, " "));
    if (kind == Kind::Reject) line += fmt::format(": {} {}", enhanced, text);
    else if (!text.empty()) line += ": " + text;
    return line;
}

}  // namespace pillarbox::smtp::policy
