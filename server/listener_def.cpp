// Parsing of listen_NAME values (see listener_def.hpp).
#include "listener_def.hpp"

#include <fmt/format.h>

namespace pillarbox::config {

std::string_view to_string(Protocol p) {
    switch (p) {
        case Protocol::Smtp: return "smtp";
        case Protocol::Pop3: return "pop3";
        case Protocol::Imap: return "imap";
        case Protocol::Http: return "http";
    }
    return "?";
}

std::string_view to_string(TlsMode m) {
    switch (m) {
        case TlsMode::None: return "none";
        case TlsMode::StartTls: return "starttls";
        case TlsMode::Implicit: return "implicit";
    }
    return "?";
}

Parsed<ListenerLine> parse_listener_line(std::string_view value) {
    using R = Parsed<ListenerLine>;
    // Overrides are NAME=VALUE words after the addresses; list values may continue over several words.
    std::vector<std::string> words;
    std::string cur;
    for (char c : value) {
        if (c == ' ' || c == '\t' || c == ',') {
            if (!cur.empty()) words.push_back(std::move(cur));
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) words.push_back(std::move(cur));
    if (words.empty()) return R::ok({});  // an empty value switches the listener off
    if (words.size() < 3)
        return R::fail(fmt::format("\"{}\": expected PROTOCOL TLS-MODE ADDRESS... (e.g. smtp starttls 25)", value));
    ListenerLine l;
    const std::string& p = words[0];
    if (p == "smtp") l.protocol = Protocol::Smtp;
    else if (p == "pop3") l.protocol = Protocol::Pop3;
    else if (p == "imap") l.protocol = Protocol::Imap;
    else if (p == "http") l.protocol = Protocol::Http;
    else return R::fail(fmt::format("unknown protocol \"{}\" (smtp, pop3, imap or http)", p));
    const std::string& t = words[1];
    if (t == "none") l.tls = TlsMode::None;
    else if (t == "starttls") l.tls = TlsMode::StartTls;
    else if (t == "implicit") l.tls = TlsMode::Implicit;
    else return R::fail(fmt::format("unknown TLS mode \"{}\" (none, starttls or implicit)", t));
    if (l.protocol == Protocol::Http && l.tls == TlsMode::StartTls)
        return R::fail("http has no STARTTLS; use none or implicit");
    for (std::size_t i = 2; i < words.size(); ++i) {
        auto eq = words[i].find('=');
        if (eq != std::string::npos) {
            if (eq == 0) return R::fail(fmt::format("bad override \"{}\" (NAME=VALUE)", words[i]));
            l.overrides.emplace_back(words[i].substr(0, eq), words[i].substr(eq + 1));
            continue;
        }
        // A word without '=' after an override continues its value: a list value like
        // "permit_sasl_authenticated, reject" (written out or from $name) has commas and spaces.
        if (!l.overrides.empty()) {
            l.overrides.back().second += ", " + words[i];
            continue;
        }
        auto ep = parse_endpoint(words[i]);
        if (!ep) return R::fail(ep.error);
        l.endpoints.push_back(*ep.value);
    }
    if (l.endpoints.empty()) return R::fail("no address to listen on");
    return R::ok(std::move(l));
}

}  // namespace pillarbox::config
