// Pure SMTP command-line parsing: verbs, MAIL FROM / RCPT TO paths (RFC 5321 4.1.2, RFC 6531),
// ESMTP parameters and their validation (RFC 1870, 6152, 3030, 6531, 3461, 8689, 4954).
#include "protocols/smtp/parser.hpp"

#include <algorithm>
#include <array>

#include "server/ascii.hpp"

namespace pillarbox::smtp {

namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
bool is_upper_hex(char c) { return is_digit(c) || (c >= 'A' && c <= 'F'); }
bool is_hex(char c) { return is_upper_hex(c) || (c >= 'a' && c <= 'f'); }
unsigned char u8(char c) { return static_cast<unsigned char>(c); }

// RFC 5322 3.2.3 atext.
bool is_atext(char c) {
    if (is_alnum(c)) return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}':
    case '~':
        return true;
    default:
        return false;
    }
}

// Length of the well-formed non-ASCII UTF-8 character at s[i], or 0. Overlong forms,
// surrogates, code points above U+10FFFF and the C1 controls (U+0080-U+009F) are refused.
std::size_t utf8_char(std::string_view s, std::size_t i) {
    if (i >= s.size()) return 0;
    unsigned char b = u8(s[i]);
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        n = 2;
        if (b == 0xC2) lo = 0xA0;  // U+0080-U+009F are C1 controls
    } else if (b >= 0xE0 && b <= 0xEF) {
        n = 3;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (s.size() - i < n) return 0;
    unsigned char b1 = u8(s[i + 1]);
    if (b1 < lo || b1 > hi) return 0;
    for (std::size_t k = 2; k < n; ++k)
        if (u8(s[i + k]) < 0x80 || u8(s[i + k]) > 0xBF) return 0;
    return n;
}

bool is_ascii(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return u8(c) < 0x80; });
}

// Dot-string (RFC 5321 4.1.2), with RFC 6531's UTF8-non-ascii in atext.
bool is_dot_string(std::string_view s) {
    if (s.empty()) return false;
    bool atom_empty = true;
    for (std::size_t i = 0; i < s.size();) {
        if (s[i] == '.') {
            if (atom_empty) return false;
            atom_empty = true;
            ++i;
        } else if (is_atext(s[i])) {
            atom_empty = false;
            ++i;
        } else if (std::size_t n = utf8_char(s, i)) {
            atom_empty = false;
            i += n;
        } else {
            return false;
        }
    }
    return !atom_empty;
}

enum class Fail { None, Syntax, NonAscii, LocalTooLong, DomainTooLong, PathTooLong };

struct Cursor {
    std::string_view s;
    std::size_t i = 0;
    bool eof() const { return i >= s.size(); }
    char peek() const { return eof() ? '\0' : s[i]; }
    bool eat(char c) {
        if (eof() || s[i] != c) return false;
        ++i;
        return true;
    }
};

// Snum 3("." Snum), Snum = 1*3DIGIT with a value of 0-255.
bool is_ipv4(std::string_view s) {
    int parts = 0;
    std::size_t i = 0;
    while (true) {
        std::size_t start = i;
        unsigned v = 0;
        while (i < s.size() && is_digit(s[i]) && i - start < 3) v = v * 10 + unsigned(s[i++] - '0');
        if (i == start || v > 255) return false;
        ++parts;
        if (i == s.size()) return parts == 4;
        if (s[i] != '.' || parts == 4) return false;
        ++i;
    }
}

// IPv6-addr per RFC 5321 4.1.3: full (8 groups), comp ("::" and at most 6 other groups),
// v4-full (6 groups + IPv4), v4-comp ("::" and at most 4 other groups + IPv4).
bool is_ipv6(std::string_view s) {
    std::size_t dc = s.find("::");
    if (dc != std::string_view::npos && s.find("::", dc + 1) != std::string_view::npos) return false;
    bool v4 = false;
    // Counts the hex groups of one side; the last element may be an IPv4 address.
    auto groups = [&](std::string_view part, bool last, int& count) {
        count = 0;
        if (part.empty()) return true;
        std::size_t i = 0;
        while (true) {
            std::size_t end = part.find(':', i);
            std::string_view g = part.substr(i, end == std::string_view::npos ? end : end - i);
            if (last && end == std::string_view::npos && g.find('.') != std::string_view::npos) {
                if (!is_ipv4(g)) return false;
                v4 = true;
                return true;
            }
            if (g.empty() || g.size() > 4 || !std::all_of(g.begin(), g.end(), is_hex)) return false;
            ++count;
            if (end == std::string_view::npos) return true;
            i = end + 1;
        }
    };
    int a = 0, b = 0;
    if (dc == std::string_view::npos) {
        if (!groups(s, true, a)) return false;
        return v4 ? a == 6 : a == 8;
    }
    if (!groups(s.substr(0, dc), false, a) || !groups(s.substr(dc + 2), true, b)) return false;
    return a + b <= (v4 ? 4 : 6);
}

// Domain (RFC 5321 4.1.2) or, with allow_literal, an address literal kept with its brackets.
// Non-ASCII UTF-8 counts as a letter (RFC 6531 U-label); IDNA validity is not checked here.
bool parse_domain(Cursor& c, std::string& out, bool allow_literal) {
    std::size_t start = c.i;
    if (c.peek() == '[') {
        if (!allow_literal) return false;
        std::size_t close = c.s.find(']', c.i);
        if (close == std::string_view::npos) return false;
        std::string_view lit = c.s.substr(c.i + 1, close - c.i - 1);
        bool ok = is_ipv4(lit);
        // The General-address-literal form needs an IANA-registered tag; only IPv6 exists.
        if (!ok && lit.size() > 5 && ascii_iequals(lit.substr(0, 5), "IPv6:")) ok = is_ipv6(lit.substr(5));
        if (!ok) return false;
        c.i = close + 1;
        out.assign(c.s.substr(start, c.i - start));
        return true;
    }
    while (true) {
        std::size_t label = c.i;
        bool ascii = true;
        char last = '\0';
        while (!c.eof()) {
            char ch = c.peek();
            if (is_alnum(ch) || (ch == '-' && c.i != label)) {
                last = ch;
                ++c.i;
            } else if (std::size_t n = utf8_char(c.s, c.i)) {
                ascii = false;
                last = 'a';
                c.i += n;
            } else {
                break;
            }
        }
        if (c.i == label || last == '-') return false;
        if (ascii && c.i - label > 63) return false;  // RFC 1035 2.3.4
        if (c.peek() != '.') break;
        ++c.i;
    }
    out.assign(c.s.substr(start, c.i - start));
    return true;
}

// Local-part = Dot-string / Quoted-string, unquoted into out.
bool parse_local(Cursor& c, std::string& out, bool& quoted) {
    out.clear();
    if (c.eat('"')) {
        quoted = true;
        while (true) {
            if (c.eof()) return false;
            char ch = c.peek();
            if (ch == '"') {
                ++c.i;
                return true;
            }
            if (ch == '\\') {
                // quoted-pairSMTP = %d92 %d32-126
                ++c.i;
                if (c.eof() || u8(c.peek()) < 32 || u8(c.peek()) > 126) return false;
                out += c.s[c.i++];
            } else if (u8(ch) >= 32 && u8(ch) <= 126) {
                out += ch;
                ++c.i;
            } else if (std::size_t n = utf8_char(c.s, c.i)) {
                out.append(c.s.substr(c.i, n));
                c.i += n;
            } else {
                return false;
            }
        }
    }
    quoted = false;
    std::size_t start = c.i;
    while (!c.eof()) {
        char ch = c.peek();
        if (is_atext(ch) || ch == '.') {
            ++c.i;
        } else if (std::size_t n = utf8_char(c.s, c.i)) {
            c.i += n;
        } else {
            break;
        }
    }
    out.assign(c.s.substr(start, c.i - start));
    return is_dot_string(out);
}

struct ParsedPath {
    Path path;
    Fail fail = Fail::None;
    std::size_t end = 0;  // index after ">"
};

// Path = "<" [ A-d-l ":" ] Mailbox ">", from c.i (which is at "<").
ParsedPath parse_path(Cursor& c, bool allow_null, bool allow_postmaster, bool utf8) {
    ParsedPath r;
    std::size_t open = c.i;
    if (!c.eat('<')) {
        r.fail = Fail::Syntax;
        return r;
    }
    if (allow_null && c.peek() == '>') {
        ++c.i;
        r.path.null = true;
        r.end = c.i;
        return r;
    }
    // RFC 5321 4.1.1.3: "postmaster" without a domain MUST be accepted, in any case.
    if (allow_postmaster && c.s.size() - c.i >= 11 && ascii_iequals(c.s.substr(c.i, 11), "postmaster>")) {
        c.i += 11;
        r.path.local = "postmaster";
        r.end = c.i;
        return r;
    }
    r.fail = Fail::Syntax;
    // RFC 5321 4.1.1.3 and appendix C: source routes MUST be accepted and SHOULD be ignored.
    if (c.peek() == '@') {
        std::string hop;
        do {
            if (!c.eat('@') || !parse_domain(c, hop, false)) return r;
        } while (c.eat(','));
        if (!c.eat(':')) return r;
        r.path.had_source_route = true;
    }
    std::size_t local_start = c.i;
    if (!parse_local(c, r.path.local, r.path.quoted_local)) return r;
    std::size_t local_len = c.i - local_start;
    if (!c.eat('@')) return r;
    std::size_t domain_start = c.i;
    if (!parse_domain(c, r.path.domain, true)) return r;
    std::size_t domain_len = c.i - domain_start;
    if (!c.eat('>')) return r;
    r.end = c.i;
    if (local_len > kMaxLocalPart) r.fail = Fail::LocalTooLong;
    else if (domain_len > kMaxDomain) r.fail = Fail::DomainTooLong;
    else if (r.end - open > kMaxPath) r.fail = Fail::PathTooLong;
    else if (!utf8 && !(is_ascii(r.path.local) && is_ascii(r.path.domain))) r.fail = Fail::NonAscii;
    else r.fail = Fail::None;
    return r;
}

PathResult parse_envelope(std::string_view args, std::string_view keyword, bool is_mail, bool utf8) {
    PathResult res;
    const Reply syntax = is_mail ? Reply{501, "5.5.4", "Syntax: MAIL FROM:<address>"}
                                 : Reply{501, "5.5.4", "Syntax: RCPT TO:<address>"};
    auto bad = [&](std::string text) {
        return Reply{501, is_mail ? "5.1.7" : "5.1.3", std::move(text)};
    };
    if (args.size() < keyword.size() || !ascii_iequals(args.substr(0, keyword.size()), keyword)) {
        res.error = syntax;
        return res;
    }
    Cursor c{args, keyword.size()};
    c.eat(' ');  // "FROM: <a@b>" is common and Postfix takes it; one space only
    if (c.peek() != '<') {
        res.error = syntax;
        return res;
    }
    ParsedPath p = parse_path(c, is_mail, !is_mail, utf8);
    switch (p.fail) {
    case Fail::None:
        break;
    case Fail::Syntax:
        res.error = bad(is_mail ? "Bad sender address syntax" : "Bad recipient address syntax");
        return res;
    case Fail::LocalTooLong:
        res.error = bad("Local part too long");
        return res;
    case Fail::DomainTooLong:
        res.error = bad("Domain too long");
        return res;
    case Fail::PathTooLong:
        res.error = bad("Path too long");  // RFC 5321 4.5.3.1.10
        return res;
    case Fail::NonAscii:
        // RFC 6531 3.5: non-ASCII envelope addresses without SMTPUTF8.
        res.error = Reply{553, "5.6.7", "Non-ASCII address requires SMTPUTF8"};
        return res;
    }
    if (c.eof()) {
        res.path = std::move(p.path);
        return res;
    }
    if (c.peek() != ' ') {  // "<a@b>x"
        res.error = syntax;
        return res;
    }
    while (c.eat(' ')) {
    }
    res.rest.assign(args.substr(c.i));
    res.path = std::move(p.path);
    return res;
}

// RFC 6533 3 utf-8-addr-unitext (and -xtext, its ASCII subset): QCHAR, UTF-8, or \x{HEXPOINT}.
std::optional<std::string> unitext_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size();) {
        char c = s[i];
        if (c == '\\') {
            if (s.size() - i < 5 || s[i + 1] != 'x' || s[i + 2] != '{') return std::nullopt;
            std::size_t close = s.find('}', i + 3);
            if (close == std::string_view::npos || close - (i + 3) < 2 || close - (i + 3) > 6)
                return std::nullopt;
            std::uint32_t cp = 0;
            for (std::size_t k = i + 3; k < close; ++k) {
                if (!is_upper_hex(s[k])) return std::nullopt;
                cp = cp * 16 + std::uint32_t(is_digit(s[k]) ? s[k] - '0' : s[k] - 'A' + 10);
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
                return std::nullopt;  // surrogates and controls
            if (cp < 0x80) {
                out += char(cp);
            } else if (cp < 0x800) {
                out += char(0xC0 | (cp >> 6));
                out += char(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                out += char(0xE0 | (cp >> 12));
                out += char(0x80 | ((cp >> 6) & 0x3F));
                out += char(0x80 | (cp & 0x3F));
            } else {
                out += char(0xF0 | (cp >> 18));
                out += char(0x80 | ((cp >> 12) & 0x3F));
                out += char(0x80 | ((cp >> 6) & 0x3F));
                out += char(0x80 | (cp & 0x3F));
            }
            i = close + 1;
        } else if (u8(c) >= 33 && u8(c) <= 126 && c != '+' && c != '=') {
            out += c;
            ++i;
        } else if (std::size_t n = utf8_char(s, i)) {
            out.append(s.substr(i, n));
            i += n;
        } else {
            return std::nullopt;
        }
    }
    return out;
}

// RFC 3461's "printable US-ASCII": no TAB or other control character (the queue's envelope
// refuses them, so accepting one would fail the message later).
bool printable_ascii(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return u8(c) >= 32 && u8(c) <= 126; });
}

ParamError unsupported(const Param& p) { return {555, "5.5.4", "Unsupported option: " + p.keyword}; }
ParamError bad_value(const Param& p, std::string_view what = "") {
    std::string text = "Bad " + p.keyword + " parameter";
    if (!what.empty()) text.append(": ").append(what);
    return {501, "5.5.4", std::move(text)};
}

}  // namespace

std::optional<Command> parse_command(std::string_view line) {
    std::size_t n = 0;
    while (n < line.size() && is_alpha(line[n])) ++n;
    if (n == 0) return std::nullopt;
    if (n < line.size() && line[n] != ' ') return std::nullopt;
    Command cmd{ascii_upper(line.substr(0, n)), {}};
    if (n < line.size()) cmd.args.assign(line.substr(n + 1));
    return cmd;
}

bool is_forbidden_command(std::string_view line) {
    static constexpr std::array<std::string_view, 7> prefixes{
        "GET ", "POST ", "CONNECT ", "HEAD ", "PUT ", "User-Agent:", "Host:"};
    for (auto p : prefixes)
        if (line.size() >= p.size() && ascii_iequals(line.substr(0, p.size()), p)) return true;
    return false;
}

bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        if (u8(s[i]) < 0x80) {
            ++i;
        } else if (std::size_t n = utf8_char(s, i)) {
            i += n;
        } else {
            return false;
        }
    }
    return true;
}

std::optional<Reply> check_helo_name(std::string_view name, bool esmtp) {
    // A bare CR or LF could start a header line of its own in Received:.
    bool controls = std::any_of(name.begin(), name.end(), [](char c) { return u8(c) < 0x20 || u8(c) == 0x7f; });
    if (name.empty() || controls || name.size() > kMaxDomain)
        return Reply{501, "5.5.4", esmtp ? "Syntax: EHLO hostname" : "Syntax: HELO hostname"};
    // Postfix (smtputf8_enable): "500 5.5.2 Error: bad UTF-8 syntax" for any command; here the
    // parameter is at fault, hence 501.
    if (!valid_utf8(name)) return Reply{501, "5.5.2", "Error: bad UTF-8 syntax"};
    return std::nullopt;
}

std::string Path::address() const {
    if (null) return {};
    std::string r;
    if (is_dot_string(local)) {
        r = local;
    } else {
        r = "\"";
        for (char c : local) {
            if (c == '"' || c == '\\') r += '\\';
            r += c;
        }
        r += '"';
    }
    if (!domain.empty()) r.append("@").append(domain);
    return r;
}

// Bang paths ("host!u@d") and the percent hack ("u%ext@d") are plain Dot-strings here: whether
// they relay anywhere is the relay policy's decision, not the parser's.
PathResult parse_mail_from(std::string_view args, bool smtputf8_allowed) {
    return parse_envelope(args, "FROM:", true, smtputf8_allowed);
}

PathResult parse_rcpt_to(std::string_view args, bool smtputf8_allowed) {
    return parse_envelope(args, "TO:", false, smtputf8_allowed);
}

std::optional<std::vector<Param>> parse_params(std::string_view rest, std::string& error, bool utf8_allowed) {
    std::vector<Param> params;
    std::size_t i = 0;
    // RFC 5321 asks for single spaces; runs of spaces and trailing spaces are harmless and
    // some clients send them, so they are tolerated.
    while (true) {
        while (i < rest.size() && rest[i] == ' ') ++i;
        if (i == rest.size()) break;
        std::size_t end = rest.find(' ', i);
        if (end == std::string_view::npos) end = rest.size();
        std::string_view tok = rest.substr(i, end - i);
        i = end;
        std::size_t eq = tok.find('=');
        std::string_view key = tok.substr(0, eq);
        // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
        if (key.empty() || !is_alnum(key[0]) ||
            !std::all_of(key.begin(), key.end(), [](char c) { return is_alnum(c) || c == '-'; })) {
            error = "Syntax error in parameters";
            return std::nullopt;
        }
        Param p{ascii_upper(key), {}, eq != std::string_view::npos};
        if (p.has_value) {
            std::string_view v = tok.substr(eq + 1);
            if (v.empty()) {
                error = "Syntax error in parameter " + p.keyword;
                return std::nullopt;
            }
            // esmtp-value = 1*(%d33-60 / %d62-126), RFC 6531 adds UTF8-non-ascii.
            for (std::size_t k = 0; k < v.size();) {
                unsigned char c = u8(v[k]);
                if (c >= 33 && c <= 126 && c != '=') {
                    ++k;
                } else if (std::size_t n = utf8_allowed ? utf8_char(v, k) : 0) {
                    k += n;
                } else {
                    error = "Syntax error in parameter " + p.keyword;
                    return std::nullopt;
                }
            }
            p.value.assign(v);
        }
        for (const auto& q : params) {
            if (q.keyword == p.keyword) {
                error = "Duplicate parameter " + p.keyword;
                return std::nullopt;
            }
        }
        if (params.size() == kMaxParams) {
            error = "Too many parameters";
            return std::nullopt;
        }
        params.push_back(std::move(p));
    }
    return params;
}

std::optional<std::string> xtext_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '+') {
            if (s.size() - i < 3 || !is_upper_hex(s[i + 1]) || !is_upper_hex(s[i + 2])) return std::nullopt;
            auto hex = [](char h) { return is_digit(h) ? h - '0' : h - 'A' + 10; };
            out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
        } else if (u8(c) >= 33 && u8(c) <= 126 && c != '=') {
            out += c;
        } else {
            return std::nullopt;
        }
    }
    return out;
}

std::string xtext_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (u8(c) >= 33 && u8(c) <= 126 && c != '+' && c != '=') {
            out += c;
        } else {
            out += '+';
            out += hex[u8(c) >> 4];
            out += hex[u8(c) & 15];
        }
    }
    return out;
}

std::variant<MailParams, ParamError> validate_mail_params(const std::vector<Param>& params,
                                                          const MailExtensions& ext) {
    MailParams m;
    for (const auto& p : params) {
        const std::string& k = p.keyword;
        if (k == "SIZE" && ext.size) {
            // RFC 1870: size-value = 1*20DIGIT. Beyond 2^64-1 it saturates: still "too big".
            if (!p.has_value || p.value.size() > 20 ||
                !std::all_of(p.value.begin(), p.value.end(), is_digit))
                return bad_value(p);
            std::uint64_t v = 0;
            for (char c : p.value) {
                auto d = std::uint64_t(c - '0');
                if (v > (UINT64_MAX - d) / 10) {
                    v = UINT64_MAX;
                    break;
                }
                v = v * 10 + d;
            }
            m.size = v;
        } else if (k == "BODY" && (ext.eightbitmime || ext.binarymime)) {
            if (!p.has_value) return bad_value(p);
            if (ascii_iequals(p.value, "7BIT")) m.body = MailParams::Body::SevenBit;
            else if (ext.eightbitmime && ascii_iequals(p.value, "8BITMIME")) m.body = MailParams::Body::EightBit;
            else if (ext.binarymime && ascii_iequals(p.value, "BINARYMIME")) m.body = MailParams::Body::Binary;
            else return bad_value(p);
            m.body_given = true;
        } else if (k == "SMTPUTF8" && ext.smtputf8) {
            if (p.has_value) return bad_value(p, "takes no value");  // RFC 6531 3.4
            m.smtputf8 = true;
        } else if (k == "RET" && ext.dsn) {
            if (!p.has_value) return bad_value(p);
            if (ascii_iequals(p.value, "FULL")) m.ret = "FULL";
            else if (ascii_iequals(p.value, "HDRS")) m.ret = "HDRS";
            else return bad_value(p);
        } else if (k == "ENVID" && ext.dsn) {
            auto v = p.has_value ? xtext_decode(p.value) : std::nullopt;
            // RFC 3461 4.4: printable US-ASCII, at most 100 characters.
            if (!v || v->empty() || v->size() > 100 || !printable_ascii(*v)) return bad_value(p);
            m.envid = std::move(*v);
        } else if (k == "REQUIRETLS" && ext.requiretls) {
            if (p.has_value) return bad_value(p, "takes no value");  // RFC 8689 4.1
            m.requiretls = true;
        } else if (k == "AUTH" && ext.auth) {
            // RFC 4954 5: AUTH=<> (kept as "<>": '<' and '>' are plain xchars) or an xtext mailbox.
            auto v = p.has_value ? xtext_decode(p.value) : std::nullopt;
            if (!v || v->empty()) return bad_value(p);
            m.auth = std::move(*v);
        } else {
            return unsupported(p);
        }
    }
    return m;
}

std::variant<RcptParams, ParamError> validate_rcpt_params(const std::vector<Param>& params,
                                                          const MailExtensions& ext) {
    RcptParams r;
    for (const auto& p : params) {
        const std::string& k = p.keyword;
        if (k == "NOTIFY" && ext.dsn) {
            if (!p.has_value) return bad_value(p);
            unsigned bits = 0;
            std::string_view v = p.value;
            std::size_t i = 0;
            while (true) {
                std::size_t comma = v.find(',', i);
                std::string_view item = v.substr(i, comma == std::string_view::npos ? comma : comma - i);
                if (ascii_iequals(item, "NEVER")) bits |= RcptParams::Never;
                else if (ascii_iequals(item, "SUCCESS")) bits |= RcptParams::Success;
                else if (ascii_iequals(item, "FAILURE")) bits |= RcptParams::Failure;
                else if (ascii_iequals(item, "DELAY")) bits |= RcptParams::Delay;
                else return bad_value(p);
                if (comma == std::string_view::npos) break;
                i = comma + 1;
            }
            // RFC 3461 4.1: NEVER must appear alone.
            if ((bits & RcptParams::Never) && bits != RcptParams::Never) return bad_value(p, "NEVER must appear alone");
            r.notify = bits;
        } else if (k == "ORCPT" && ext.dsn) {
            // RFC 3461 4.2: addr-type ";" xtext, the whole value at most 500 characters.
            if (!p.has_value || p.value.size() > 500) return bad_value(p);
            std::size_t semi = p.value.find(';');
            if (semi == std::string::npos || semi == 0) return bad_value(p);
            std::string_view type = std::string_view(p.value).substr(0, semi);
            if (!std::all_of(type.begin(), type.end(), is_atext)) return bad_value(p);
            std::string_view addr = std::string_view(p.value).substr(semi + 1);
            std::optional<std::string> v;
            if (ascii_iequals(type, "utf-8")) {
                v = unitext_decode(addr);  // RFC 6533 3
            } else {
                v = xtext_decode(addr);
                // RFC 3461 4.2: the decoded address is printable US-ASCII.
                if (v && !printable_ascii(*v)) v.reset();
            }
            if (!v || v->empty()) return bad_value(p);
            r.orcpt_type.assign(type);
            r.orcpt = std::move(*v);
        } else {
            return unsupported(p);
        }
    }
    return r;
}

}  // namespace pillarbox::smtp
