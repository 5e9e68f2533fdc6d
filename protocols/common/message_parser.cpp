// RFC 5322 / MIME message parser for IMAP FETCH (see message_parser.hpp): header fields,
// envelope, body structure with byte ranges, and its JSON form for the index.
#include "message_parser.hpp"
#include "server/utf8.hpp"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <simdjson.h>
#include <unordered_map>

namespace pillarbox::mime {
namespace {

constexpr std::size_t npos = std::string_view::npos;

// ---------------------------------------------------------------------------------------------
// Small text helpers

bool is_wsp(char c) { return c == ' ' || c == '\t'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

std::string_view trim_wsp(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

std::size_t span_size(std::size_t end, std::size_t begin) { return end > begin ? end - begin : 0; }

// Skips a comment starting at s[i] == '('. Comments nest (RFC 5322 3.2.2), counted rather than
// recursed so "((((..." costs nothing. An unclosed comment runs to the end.
std::size_t skip_comment(std::string_view s, std::size_t i, std::string_view* inner = nullptr) {
    std::size_t depth = 0;
    for (std::size_t j = i; j < s.size(); ++j) {
        char c = s[j];
        if (c == '\\') {
            ++j;
        } else if (c == '(') {
            ++depth;
        } else if (c == ')' && --depth == 0) {
            if (inner) *inner = s.substr(i + 1, j - i - 1);
            return j + 1;
        }
    }
    if (inner) *inner = s.substr(std::min(i + 1, s.size()));
    return s.size();
}

// Reads a quoted-string starting at s[i] == '"', appending its unescaped text; returns the
// index after the closing quote (or the end when it is missing).
std::size_t read_quoted(std::string_view s, std::size_t i, std::string& text) {
    for (std::size_t j = i + 1; j < s.size(); ++j) {
        if (s[j] == '\\' && j + 1 < s.size()) {
            text.push_back(s[++j]);
        } else if (s[j] == '"') {
            return j + 1;
        } else {
            text.push_back(s[j]);
        }
    }
    return s.size();
}

// Skips white space and comments (CFWS); says whether anything was skipped.
bool skip_cfws(std::string_view s, std::size_t& i) {
    std::size_t start = i;
    while (i < s.size()) {
        if (is_space(s[i])) ++i;
        else if (s[i] == '(') i = skip_comment(s, i);
        else break;
    }
    return i != start;
}

// ---------------------------------------------------------------------------------------------
// Lines and header blocks

struct Line {
    std::size_t begin = 0, content_end = 0, next = 0;  // content excludes CRLF / LF
    bool has_eol = false;
};

Line line_at(std::string_view in, std::size_t p) {
    if (p >= in.size()) return {p, p, p, false};
    const void* nl = std::memchr(in.data() + p, '\n', in.size() - p);
    if (!nl) return {p, in.size(), in.size(), false};
    std::size_t e = static_cast<std::size_t>(static_cast<const char*>(nl) - in.data());
    std::size_t ce = (e > p && in[e - 1] == '\r') ? e - 1 : e;
    return {p, ce, e + 1, true};
}

// A delimiter line that ended an entity, or the end of the input (level == npos).
struct Hit {
    std::size_t level = npos;     // index into Context::boundaries
    bool close = false;           // "--boundary--"
    std::size_t content_end = 0;  // where the entity before the line ends
    std::size_t eol = 0;          // where the line's own CRLF / LF starts
    std::size_t next = 0;         // first byte after the line
};

struct Context {
    std::string_view in;
    Limits limits;
    std::size_t parts = 0;
    std::vector<std::string> boundaries;  // active multipart boundaries, outermost first
};

Hit end_of_input(const Context& ctx) { return Hit{npos, false, ctx.in.size(), ctx.in.size(), ctx.in.size()}; }

// RFC 2046 5.1.1: "it is sufficient that the boundary appear in its entirety following the
// CRLF", so a delimiter is matched by prefix. Like Dovecot, when several active boundaries
// match, the longest wins (then the innermost), which keeps prefix-related nested boundaries
// working.
// floor: how far back the delimiter may claim the CRLF before it (see scan_body).
std::optional<Hit> match_delimiter(const Context& ctx, const Line& line, std::size_t floor) {
    std::string_view text = ctx.in.substr(line.begin, line.content_end - line.begin);
    if (text.size() < 2 || text[0] != '-' || text[1] != '-') return std::nullopt;
    text.remove_prefix(2);
    std::size_t best = npos;
    for (std::size_t k = 0; k < ctx.boundaries.size(); ++k) {
        const std::string& b = ctx.boundaries[k];
        if (text.size() >= b.size() && text.compare(0, b.size(), b) == 0 &&
            (best == npos || b.size() >= ctx.boundaries[best].size()))
            best = k;
    }
    if (best == npos) return std::nullopt;
    Hit hit;
    hit.level = best;
    hit.close = text.substr(ctx.boundaries[best].size()).starts_with("--");
    hit.eol = line.content_end;
    hit.next = line.next;
    // RFC 2046 5.1.1: "the CRLF preceding the boundary delimiter line is conceptually attached
    // to the boundary", so a part need not end with a line end.
    std::size_t end = line.begin;
    if (end > floor && ctx.in[end - 1] == '\n') {
        --end;
        if (end > floor && ctx.in[end - 1] == '\r') --end;
    }
    hit.content_end = end;
    return hit;
}

// Runs from a line start to the next delimiter of any active boundary. The CRLF just before pos
// normally ended a header's blank line or a delimiter line that opened this entity, so it is
// not claimed (floor = pos); only after a close delimiter is its CRLF free for the next one.
Hit scan_body(const Context& ctx, std::size_t pos, std::size_t floor) {
    if (ctx.boundaries.empty()) return end_of_input(ctx);
    for (std::size_t p = pos; p < ctx.in.size();) {
        Line line = line_at(ctx.in, p);
        if (auto hit = match_delimiter(ctx, line, floor)) return *hit;
        p = line.next;
    }
    return end_of_input(ctx);
}

Hit scan_body(const Context& ctx, std::size_t pos) { return scan_body(ctx, pos, pos); }

struct HeaderScan {
    std::size_t fields_end = 0;  // end of the field lines
    std::size_t end = 0;         // end of the header block, blank line included
    std::optional<Hit> hit;      // a delimiter cut the header short: the entity has no body
};

// The header block ends at the first empty line. A delimiter line inside it ends the whole
// entity, as in Dovecot: a part may be nothing but a few header lines.
HeaderScan scan_header(const Context& ctx, std::size_t pos) {
    for (std::size_t p = pos; p < ctx.in.size();) {
        Line line = line_at(ctx.in, p);
        if (line.has_eol && line.content_end == p) return {p, line.next, std::nullopt};
        if (!ctx.boundaries.empty()) {
            if (auto hit = match_delimiter(ctx, line, pos)) return {hit->content_end, hit->content_end, hit};
        }
        p = line.next;
    }
    return {ctx.in.size(), ctx.in.size(), std::nullopt};
}

// A field name is printable, without blanks; RFC 5322 4.5.8 (obs-optional) allows blanks
// before the colon. 8-bit bytes are tolerated.
std::optional<std::string_view> field_name(std::string_view line) {
    std::size_t colon = line.find(':');
    if (colon == npos) return std::nullopt;
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
    if (name.empty()) return std::nullopt;
    for (char c : name) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f) return std::nullopt;
    }
    return name;
}

struct Fields {
    std::vector<HeaderField> list;
    bool truncated = false;
};

void finish_field(Fields& f, std::optional<HeaderField>& cur) {
    if (!cur) return;
    cur->value = std::string(trim_wsp(cur->value));
    f.list.push_back(std::move(*cur));
    cur.reset();
}

// Splits [begin, end) into fields, unfolding continuation lines: RFC 5322 2.2.3 removes the
// CRLF of a fold and keeps the blank that follows it. Only the first max_header_bytes count.
Fields parse_fields(const Context& ctx, std::size_t begin, std::size_t end) {
    Fields f;
    if (end - begin > ctx.limits.max_header_bytes) {
        end = begin + ctx.limits.max_header_bytes;
        f.truncated = true;
    }
    std::string_view block = ctx.in.substr(0, end);
    std::optional<HeaderField> cur;  // continuation lines of a non-field line are dropped
    for (std::size_t p = begin; p < end;) {
        Line line = line_at(block, p);
        std::string_view text = block.substr(p, line.content_end - p);
        if (is_wsp(block[p])) {
            if (cur) {
                cur->value.append(text);
                cur->size = line.next - cur->offset;
            }
        } else {
            finish_field(f, cur);
            if (auto name = field_name(text)) {
                if (f.list.size() >= ctx.limits.max_header_fields) {
                    f.truncated = true;
                    return f;
                }
                cur = HeaderField{std::string(*name), std::string(text.substr(text.find(':') + 1)), p,
                                  line.next - p};
            }
        }
        p = line.next;
    }
    finish_field(f, cur);
    return f;
}

// ---------------------------------------------------------------------------------------------
// RFC 5322 3.4 addresses

enum class TokKind : std::uint8_t { atom, quoted, literal, comment, special };

struct Token {
    TokKind kind;
    std::string_view raw;  // as written
    std::string text;      // quoted: unescaped; comment: inside the parentheses; else raw
};

bool is_addr_special(char c) { return c == '<' || c == '>' || c == '@' || c == ',' || c == ':' || c == ';'; }

// Lexes an address header. Everything that is not white space, a special, a comment, a quoted
// string or a domain literal is atom text: '.', 8-bit bytes and stray ')' included, which is
// what lets obs-phrase ("John Q. Public") and sloppy input through.
std::vector<Token> tokenize_addresses(std::string_view s) {
    std::vector<Token> out;
    for (std::size_t i = 0; i < s.size();) {
        char c = s[i];
        std::size_t start = i;
        if (is_space(c)) {
            ++i;
        } else if (c == '(') {
            std::string_view inner;
            i = skip_comment(s, i, &inner);
            out.push_back({TokKind::comment, s.substr(start, i - start), std::string(inner)});
        } else if (c == '"') {
            std::string text;
            i = read_quoted(s, i, text);
            out.push_back({TokKind::quoted, s.substr(start, i - start), std::move(text)});
        } else if (c == '[') {
            for (++i; i < s.size() && s[i] != ']'; ++i)
                if (s[i] == '\\') ++i;
            i = std::min(i + 1, s.size());
            out.push_back({TokKind::literal, s.substr(start, i - start), std::string(s.substr(start, i - start))});
        } else if (is_addr_special(c)) {
            ++i;
            out.push_back({TokKind::special, s.substr(start, 1), std::string(1, c)});
        } else {
            while (i < s.size() && !is_space(s[i]) && !is_addr_special(s[i]) && s[i] != '(' && s[i] != '"' &&
                   s[i] != '[')
                ++i;
            out.push_back({TokKind::atom, s.substr(start, i - start), std::string(s.substr(start, i - start))});
        }
    }
    return out;
}

struct Words {
    std::vector<const Token*> words;
    std::string trailing_comment;  // a comment after the last word
};

class AddressListParser {
public:
    AddressListParser(std::string_view value, std::size_t max) : t_(tokenize_addresses(value)), max_(max) {}

    // RFC 5322 3.4: address-list of mailboxes and groups, with the obsolete forms of 4.4
    // (empty list members, routes, CFWS around dots) accepted.
    std::vector<Address> run() {
        while (i_ < t_.size() && out_.size() < max_) {
            if (at(',')) {
                ++i_;
            } else if (at(';')) {
                if (in_group_) end_group();
                ++i_;
            } else {
                item();
            }
        }
        if (in_group_) end_group();  // an unclosed group still gets its end marker
        return std::move(out_);
    }

private:
    bool at(char c) const { return i_ < t_.size() && t_[i_].kind == TokKind::special && t_[i_].text[0] == c; }

    Words words() {
        Words w;
        for (; i_ < t_.size() && t_[i_].kind != TokKind::special; ++i_) {
            if (t_[i_].kind != TokKind::comment) {
                w.words.push_back(&t_[i_]);
                w.trailing_comment.clear();
            } else if (!w.words.empty()) {
                w.trailing_comment = t_[i_].text;
            }
        }
        return w;
    }

    // A display name: words joined by one space, quoted strings unquoted, encoded words kept.
    static std::string phrase(const Words& w) {
        std::string out;
        for (const Token* t : w.words) {
            if (!out.empty()) out.push_back(' ');
            out += t->text;
        }
        return out;
    }

    // A local part or domain as written, minus blanks and comments (obs-local-part allows
    // "john . doe"); quoted strings keep their quotes so local@domain is a valid address.
    static std::string addr_text(const Words& w) {
        std::string out;
        for (const Token* t : w.words) out += t->raw;
        return out;
    }

    void push(Address a) {
        if (out_.size() < max_) out_.push_back(std::move(a));
    }

    void end_group() {
        out_.push_back(Address{Address::Kind::group_end, {}, {}, {}, {}});
        in_group_ = false;
    }

    void item() {
        Words w = words();
        if (at(':')) {
            ++i_;
            // A group inside a group is not allowed; its name is dropped, its members kept.
            if (!in_group_) {
                out_.push_back(Address{Address::Kind::group_start, phrase(w), {}, {}, {}});
                in_group_ = true;
            }
        } else if (at('<')) {
            ++i_;
            angle_addr(phrase(w));
        } else if (at('@')) {
            ++i_;
            Words domain = words();
            if (w.words.empty()) return;  // "@domain" alone: nothing to keep
            // "addr (Name)": the old form of a display name is a comment after the address.
            push(Address{Address::Kind::mailbox, domain.trailing_comment, {}, addr_text(w), addr_text(domain)});
        } else {
            if (at('>')) ++i_;
            // A bare word ("root", "undisclosed-recipients") is a local part without domain.
            if (!w.words.empty()) push(Address{Address::Kind::mailbox, w.trailing_comment, {}, addr_text(w), {}});
        }
    }

    // After '<': [obs-route ":"] local-part "@" domain ">".
    void angle_addr(std::string name) {
        std::string route;
        if (at('@')) {
            // The look-ahead stops at the next '<', so hostile "<@<@<@..." stays linear.
            std::size_t j = i_;
            std::string r;
            for (; j < t_.size(); ++j) {
                const Token& t = t_[j];
                if (t.kind == TokKind::special && (t.text[0] == ':' || t.text[0] == '>' || t.text[0] == '<' ||
                                                   t.text[0] == ';'))
                    break;
                if (t.kind != TokKind::comment) r += t.raw;
            }
            if (j < t_.size() && t_[j].text[0] == ':' && t_[j].kind == TokKind::special) {
                route = std::move(r);
                i_ = j + 1;
            }
        }
        Words local = words();
        std::string domain;
        if (at('@')) {
            ++i_;
            domain = addr_text(words());
        }
        // A missing '>' costs only this address: stop at the next list separator.
        while (i_ < t_.size() && !at('>') && !at(',') && !at(';')) ++i_;
        if (at('>')) ++i_;
        while (i_ < t_.size() && t_[i_].kind != TokKind::special) ++i_;  // trailing comments
        std::string l = addr_text(local);
        if (name.empty() && l.empty() && domain.empty()) return;  // "<>"
        push(Address{Address::Kind::mailbox, std::move(name), std::move(route), std::move(l), std::move(domain)});
    }

    std::vector<Token> t_;
    std::size_t max_;
    std::size_t i_ = 0;
    bool in_group_ = false;
    std::vector<Address> out_;
};

std::vector<Address> parse_address_list(std::string_view value, std::size_t max) {
    return AddressListParser(value, max).run();
}

Envelope build_envelope(const std::vector<HeaderField>& fields, std::size_t max_addresses) {
    Envelope e;
    bool seen_from = false, seen_sender = false, seen_reply_to = false, seen_to = false, seen_cc = false,
         seen_bcc = false;
    auto text = [](std::optional<std::string>& slot, const HeaderField& f) {
        if (!slot) slot = f.value;
    };
    auto list = [&](bool& seen, std::vector<Address>& slot, const HeaderField& f) {
        if (seen) return;
        seen = true;
        slot = parse_address_list(f.value, max_addresses);
    };
    // The first occurrence of each field counts, as in Dovecot.
    for (const auto& f : fields) {
        if (iequals(f.name, "date")) text(e.date, f);
        else if (iequals(f.name, "subject")) text(e.subject, f);
        else if (iequals(f.name, "in-reply-to")) text(e.in_reply_to, f);
        else if (iequals(f.name, "message-id")) text(e.message_id, f);
        else if (iequals(f.name, "from")) list(seen_from, e.from, f);
        else if (iequals(f.name, "sender")) list(seen_sender, e.sender, f);
        else if (iequals(f.name, "reply-to")) list(seen_reply_to, e.reply_to, f);
        else if (iequals(f.name, "to")) list(seen_to, e.to, f);
        else if (iequals(f.name, "cc")) list(seen_cc, e.cc, f);
        else if (iequals(f.name, "bcc")) list(seen_bcc, e.bcc, f);
    }
    // RFC 9051 7.5.2: "If the Sender or Reply-To lines are absent in the [RFC-5322] header, or
    // are present but empty, the server sets the corresponding member of the envelope to be
    // the same value as the from member".
    if (e.sender.empty()) e.sender = e.from;
    if (e.reply_to.empty()) e.reply_to = e.from;
    return e;
}

// ---------------------------------------------------------------------------------------------
// RFC 2045 Content-* fields, RFC 2231 parameters

bool is_tspecial(char c) { return c != '\0' && std::strchr("()<>@,;:\\\"/[]?=", c) != nullptr; }

bool is_token_char(char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f && !is_tspecial(c);  // 8-bit tolerated
}

std::string_view read_token(std::string_view s, std::size_t& i) {
    std::size_t start = i;
    while (i < s.size() && is_token_char(s[i])) ++i;
    return s.substr(start, i - start);
}

struct RawParam {
    std::string name;  // lower-case
    std::string value;
};

// A parameter value: token or quoted-string per RFC 2045, but unquoted values with blanks
// (filename=my file.pdf) are common enough to keep whole. Comments are dropped, so RFC 2045's
// own "charset=us-ascii (Plain text)" gives "us-ascii".
std::string read_param_value(std::string_view s, std::size_t& i) {
    std::string v;
    bool first = true;
    for (;;) {
        bool blank = skip_cfws(s, i);
        if (i >= s.size() || s[i] == ';') break;
        if (!first && blank) v.push_back(' ');
        if (s[i] == '"') {
            i = read_quoted(s, i, v);
        } else {
            std::size_t start = i;
            while (i < s.size() && !is_space(s[i]) && s[i] != ';' && s[i] != '(' && s[i] != '"') ++i;
            v.append(s.substr(start, i - start));
        }
        first = false;
    }
    return v;
}

void skip_to_semicolon(std::string_view s, std::size_t& i) {
    while (i < s.size() && s[i] != ';') {
        if (s[i] == '"') {
            std::string ignored;
            i = read_quoted(s, i, ignored);
        } else if (s[i] == '(') {
            i = skip_comment(s, i);
        } else {
            ++i;
        }
    }
}

std::vector<RawParam> read_params(std::string_view s, std::size_t i) {
    std::vector<RawParam> out;
    for (;;) {
        skip_cfws(s, i);
        if (i >= s.size()) break;
        if (s[i] != ';') {
            skip_to_semicolon(s, i);  // junk between parameters
            continue;
        }
        ++i;
        skip_cfws(s, i);
        std::string name = lower(read_token(s, i));
        skip_cfws(s, i);
        if (name.empty() || i >= s.size() || s[i] != '=') continue;
        ++i;
        out.push_back({std::move(name), read_param_value(s, i)});
    }
    return out;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// RFC 2231 4: %XX octets; a '%' not followed by two hex digits is kept as it is.
std::string percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        int hi = 0, lo = 0;
        if (s[i] == '%' && i + 2 < s.size() && (hi = hex_digit(s[i + 1])) >= 0 && (lo = hex_digit(s[i + 2])) >= 0) {
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

struct Rfc2231Name {
    std::string base;
    std::optional<std::uint32_t> section;  // nullopt for "name*" (extended, not continued)
    bool extended = false;
    bool valid = false;  // false: a plain parameter name
};

// name, name*, name*0, name*0*, name*12 (RFC 2231 3 and 4). Anything else is a plain name.
Rfc2231Name split_2231_name(const std::string& name) {
    Rfc2231Name r;
    std::size_t star = name.find('*');
    if (star == npos || star == 0) return r;
    std::string_view rest = std::string_view(name).substr(star + 1);
    r.base = name.substr(0, star);
    if (rest.empty()) {
        r.extended = r.valid = true;
        return r;
    }
    std::size_t digits = 0;
    std::uint32_t n = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') {
        n = n * 10 + static_cast<std::uint32_t>(rest[digits] - '0');
        ++digits;
    }
    if (digits == 0 || digits > 6) return r;  // six digits is far beyond any real header
    rest.remove_prefix(digits);
    if (rest == "*") r.extended = true;
    else if (!rest.empty()) return r;
    r.section = n;
    r.valid = true;
    return r;
}

struct Piece {
    std::uint32_t section;
    bool extended;
    std::string value;
};

struct PendingParam {
    std::string name;
    std::optional<std::string> plain;     // name=
    std::optional<std::string> extended;  // name*=
    std::vector<Piece> pieces;            // name*N= / name*N*=
};

// The first extended piece carries charset'language' before the %-encoded text.
void decode_first_extended(std::string_view raw, Param& p) {
    std::size_t q1 = raw.find('\'');
    std::size_t q2 = q1 == npos ? npos : raw.find('\'', q1 + 1);
    if (q2 == npos) {
        p.value += percent_decode(raw);
        return;
    }
    p.charset = std::string(raw.substr(0, q1));
    p.language = std::string(raw.substr(q1 + 1, q2 - q1 - 1));
    p.value += percent_decode(raw.substr(q2 + 1));
}

// RFC 2231 3: continuations are joined in section order starting at 0 and stop at a gap. A
// continued or extended value wins over a plain one of the same name, since senders put the
// plain one there only for old readers.
std::optional<Param> finish_param(PendingParam& g) {
    Param p;
    p.name = g.name;
    std::stable_sort(g.pieces.begin(), g.pieces.end(), [](const Piece& a, const Piece& b) { return a.section < b.section; });
    if (!g.pieces.empty() && g.pieces[0].section == 0) {
        std::uint32_t expect = 0;
        for (const Piece& piece : g.pieces) {
            if (piece.section < expect) continue;  // a repeated section: the first one counts
            if (piece.section != expect) break;
            if (!piece.extended) p.value += piece.value;
            else if (expect == 0) decode_first_extended(piece.value, p);
            else p.value += percent_decode(piece.value);
            ++expect;
        }
        return p;
    }
    if (g.extended) {
        decode_first_extended(*g.extended, p);
        return p;
    }
    if (g.plain) {
        p.value = *g.plain;
        return p;
    }
    return std::nullopt;
}

std::vector<Param> merge_params(std::vector<RawParam> raw) {
    std::vector<PendingParam> groups;
    std::unordered_map<std::string, std::size_t> index;  // a hash, not a scan: 100k params stay linear
    for (RawParam& r : raw) {
        Rfc2231Name n = split_2231_name(r.name);
        std::string base = n.valid ? n.base : r.name;
        auto [it, fresh] = index.try_emplace(base, groups.size());
        if (fresh) groups.push_back(PendingParam{base, {}, {}, {}});
        PendingParam& g = groups[it->second];
        if (!n.valid) {
            if (!g.plain) g.plain = std::move(r.value);
        } else if (!n.section) {
            if (!g.extended) g.extended = std::move(r.value);
        } else {
            g.pieces.push_back(Piece{*n.section, n.extended, std::move(r.value)});
        }
    }
    std::vector<Param> out;
    out.reserve(groups.size());
    for (PendingParam& g : groups)
        if (auto p = finish_param(g)) out.push_back(std::move(*p));
    return out;
}

struct TypeValue {
    std::string type, subtype;
    std::vector<Param> params;
};

// RFC 2045 5.1: type "/" subtype *(";" parameter). nullopt when the type is unusable, which
// RFC 2045 5.2 says means the default type.
std::optional<TypeValue> parse_content_type(std::string_view s) {
    std::size_t i = 0;
    skip_cfws(s, i);
    TypeValue v;
    v.type = lower(read_token(s, i));
    skip_cfws(s, i);
    if (v.type.empty() || i >= s.size() || s[i] != '/') return std::nullopt;
    ++i;
    skip_cfws(s, i);
    v.subtype = lower(read_token(s, i));
    if (v.subtype.empty()) return std::nullopt;
    v.params = merge_params(read_params(s, i));
    return v;
}

// RFC 2183: disposition-type *(";" parameter).
std::optional<Disposition> parse_disposition(std::string_view s) {
    std::size_t i = 0;
    skip_cfws(s, i);
    Disposition d;
    d.type = lower(read_token(s, i));
    if (d.type.empty()) return std::nullopt;
    d.params = merge_params(read_params(s, i));
    return d;
}

// RFC 3282: Content-Language is a comma-separated list of language tags.
std::vector<std::string> parse_language(std::string_view s) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < s.size();) {
        skip_cfws(s, i);
        std::size_t start = i;
        while (i < s.size() && s[i] != ',' && s[i] != '(' && !is_space(s[i])) ++i;
        if (i > start) out.emplace_back(s.substr(start, i - start));
        while (i < s.size() && s[i] != ',') {  // junk after the tag
            if (s[i] == '(') i = skip_comment(s, i);
            else ++i;
        }
        if (i < s.size()) ++i;
    }
    return out;
}

std::string parse_encoding(std::string_view s) {
    std::size_t i = 0;
    skip_cfws(s, i);
    std::string enc = lower(read_token(s, i));
    return enc.empty() ? "7bit" : enc;
}

const Param* find_param(const std::vector<Param>& params, std::string_view name) {
    for (const auto& p : params)
        if (p.name == name) return &p;
    return nullptr;
}

// Fills the Content-* data of a part from its header (the first of each field counts).
// RFC 2045 5.2: no or unusable Content-Type means text/plain; charset=us-ascii, except in a
// multipart/digest, where RFC 2046 5.1.5 makes it message/rfc822.
void apply_content_fields(Part& p, const std::vector<HeaderField>& fields, bool in_digest) {
    bool seen_type = false, seen_enc = false, seen_lang = false, seen_disp = false;
    std::optional<TypeValue> type;
    for (const auto& f : fields) {
        if (iequals(f.name, "content-type")) {
            if (!seen_type) type = parse_content_type(f.value);
            seen_type = true;
        } else if (iequals(f.name, "content-transfer-encoding")) {
            if (!seen_enc) p.encoding = parse_encoding(f.value);
            seen_enc = true;
        } else if (iequals(f.name, "content-id")) {
            if (!p.id) p.id = f.value;
        } else if (iequals(f.name, "content-description")) {
            if (!p.description) p.description = f.value;
        } else if (iequals(f.name, "content-md5")) {
            if (!p.md5) p.md5 = f.value;
        } else if (iequals(f.name, "content-location")) {
            if (!p.location) p.location = f.value;
        } else if (iequals(f.name, "content-disposition")) {
            if (!seen_disp) p.disposition = parse_disposition(f.value);
            seen_disp = true;
        } else if (iequals(f.name, "content-language")) {
            if (!seen_lang) p.language = parse_language(f.value);
            seen_lang = true;
        }
    }
    if (type) {
        p.type = std::move(type->type);
        p.subtype = std::move(type->subtype);
        p.params = std::move(type->params);
    } else if (in_digest) {
        p.type = "message";
        p.subtype = "rfc822";
    } else {
        p.type = "text";
        p.subtype = "plain";
        p.params = {Param{"charset", "us-ascii", {}, {}}};
    }
    if (p.is_multipart()) {
        if (const Param* b = find_param(p.params, "boundary")) p.boundary = b->value;
    }
}

// ---------------------------------------------------------------------------------------------
// Structure

void make_opaque(Part& p, Opaque why) {
    p.type = "application";
    p.subtype = "octet-stream";
    p.boundary.clear();
    p.children.clear();
    p.message.reset();
    p.opaque = why;
}

bool is_message_type(const Part& p) { return p.type == "message" && (p.subtype == "rfc822" || p.subtype == "global"); }

// RFC 2046 5.2.1: message/rfc822 may only be 7bit, 8bit or binary; anything else would have
// to be decoded before it could be parsed, so it is not descended into.
bool identity_encoding(const std::string& enc) { return enc == "7bit" || enc == "8bit" || enc == "binary"; }

Hit parse_message_at(Context& ctx, Message& m, std::size_t pos, const std::vector<std::uint32_t>& section,
                     std::size_t depth);
Hit finish_part(Context& ctx, Part& p, const HeaderScan& hs, std::size_t depth);

Hit parse_child(Context& ctx, Part& c, std::size_t pos, bool in_digest, std::size_t depth) {
    HeaderScan hs = scan_header(ctx, pos);
    Fields fields = parse_fields(ctx, pos, hs.fields_end);
    c.header_offset = pos;
    c.header_size = hs.end - pos;
    apply_content_fields(c, fields.list, in_digest);
    return finish_part(ctx, c, hs, depth);
}

// RFC 2046 5.1.1: preamble, parts separated by delimiter lines, close delimiter, epilogue.
// A missing close delimiter ends the multipart at the next outer delimiter or the end.
Hit parse_multipart(Context& ctx, Part& p, std::size_t depth) {
    const std::size_t level = ctx.boundaries.size();
    ctx.boundaries.push_back(p.boundary);
    const bool digest = p.subtype == "digest";
    Hit hit = scan_body(ctx, p.body_offset);  // preamble
    while (hit.level == level && !hit.close) {
        if (ctx.parts >= ctx.limits.max_parts) {
            p.children_truncated = true;
            hit = scan_body(ctx, hit.next);
            continue;
        }
        ++ctx.parts;
        Part& child = p.children.emplace_back();
        child.section = p.section;
        child.section.push_back(static_cast<std::uint32_t>(p.children.size()));
        hit = parse_child(ctx, child, hit.next, digest, depth + 1);
    }
    ctx.boundaries.pop_back();
    // Epilogue. RFC 2046's grammar ("close-delimiter transport-padding [CRLF epilogue]" inside
    // an outer "CRLF --outer") gives the close line's CRLF to an outer delimiter that follows
    // at once, so an encapsulated multipart ends at its "--inner--".
    if (hit.level == level) hit = scan_body(ctx, hit.next, hit.eol);
    p.body_size = span_size(hit.content_end, p.body_offset);
    if (p.children.empty()) make_opaque(p, Opaque::no_parts);
    return hit;
}

Hit parse_embedded(Context& ctx, Part& p, std::size_t depth) {
    ++ctx.parts;
    Message& m = p.message.emplace();
    Hit hit = parse_message_at(ctx, m, p.body_offset, p.section, depth + 1);
    p.body_size = span_size(hit.content_end, p.body_offset);
    return hit;
}

// Why a container part cannot be descended into, or Opaque::none.
Opaque refuse_container(const Context& ctx, const Part& p, std::size_t depth) {
    if (p.is_multipart() && p.boundary.empty()) return Opaque::no_boundary;
    if (!p.is_multipart() && !identity_encoding(p.encoding)) return Opaque::encoded_message;
    if (depth >= ctx.limits.max_depth) return Opaque::too_deep;
    if (ctx.parts >= ctx.limits.max_parts) return Opaque::too_many_parts;
    return Opaque::none;
}

// Parses the body of a part whose header is known and returns what ended it.
Hit finish_part(Context& ctx, Part& p, const HeaderScan& hs, std::size_t depth) {
    p.body_offset = hs.end;
    const bool container = p.is_multipart() || is_message_type(p);
    Hit hit;
    if (hs.hit) {
        // A delimiter inside the header: no body at all, so nothing to descend into.
        if (container) make_opaque(p, Opaque::no_parts);
        hit = *hs.hit;
    } else {
        if (container) {
            if (Opaque why = refuse_container(ctx, p, depth); why != Opaque::none) make_opaque(p, why);
        }
        if (p.is_multipart()) {
            hit = parse_multipart(ctx, p, depth);
        } else if (is_message_type(p)) {
            hit = parse_embedded(ctx, p, depth);
        } else {
            hit = scan_body(ctx, p.body_offset);
            p.body_size = span_size(hit.content_end, p.body_offset);
        }
    }
    auto body = ctx.in.substr(p.body_offset, p.body_size);
    p.body_lines = static_cast<std::size_t>(std::count(body.begin(), body.end(), '\n'));
    return hit;
}

// A message (the input, or the body of a message/rfc822 part): header, envelope, body part.
Hit parse_message_at(Context& ctx, Message& m, std::size_t pos, const std::vector<std::uint32_t>& section,
                     std::size_t depth) {
    HeaderScan hs = scan_header(ctx, pos);
    Fields fields = parse_fields(ctx, pos, hs.fields_end);
    m.header_offset = pos;
    m.header_size = hs.end - pos;
    Part& body = m.body;
    body.header_offset = pos;
    body.header_size = m.header_size;
    apply_content_fields(body, fields.list, false);
    m.envelope = build_envelope(fields.list, ctx.limits.max_addresses);
    m.headers = std::move(fields.list);
    m.headers_truncated = fields.truncated;
    // RFC 9051 6.4.5: a multipart body has no number of its own (its parts are N.1, N.2 ...);
    // any other body is part N.1 (or 1 at the top). The number must be known before children
    // are numbered from it; a multipart that turns opaque has no children, so it can change.
    body.section = section;
    if (!body.is_multipart()) body.section.push_back(1);
    Hit hit = finish_part(ctx, body, hs, depth);
    if (!body.is_multipart() && body.section.size() == section.size()) body.section.push_back(1);
    m.body_offset = body.body_offset;
    m.body_size = body.body_size;
    return hit;
}

// ---------------------------------------------------------------------------------------------
// JSON

using json = nlohmann::json;
constexpr int json_version = 1;

struct BadJson {};


json put_str(const std::string& s) {
    if (valid_utf8(s)) return s;
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(s.size() * 2);
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        hex.push_back(digits[u >> 4]);
        hex.push_back(digits[u & 15]);
    }
    return json{{"hex", std::move(hex)}};
}

json put_opt(const std::optional<std::string>& s) { return s ? put_str(*s) : json(nullptr); }

json put_params(const std::vector<Param>& params) {
    json a = json::array();
    for (const auto& p : params) a.push_back(json::array({put_str(p.name), put_str(p.value), put_str(p.charset), put_str(p.language)}));
    return a;
}

json put_addresses(const std::vector<Address>& list) {
    json a = json::array();
    for (const auto& x : list)
        a.push_back(json::array({static_cast<int>(x.kind), put_str(x.name), put_str(x.route), put_str(x.local), put_str(x.domain)}));
    return a;
}

json put_envelope(const Envelope& e) {
    return json{{"date", put_opt(e.date)},       {"subject", put_opt(e.subject)},
                {"irt", put_opt(e.in_reply_to)}, {"mid", put_opt(e.message_id)},
                {"from", put_addresses(e.from)}, {"sender", put_addresses(e.sender)},
                {"reply_to", put_addresses(e.reply_to)}, {"to", put_addresses(e.to)},
                {"cc", put_addresses(e.cc)},     {"bcc", put_addresses(e.bcc)}};
}

json put_message(const Message& m);

json put_part(const Part& p) {
    json j;
    j["sec"] = p.section;
    j["hoff"] = p.header_offset;
    j["hsize"] = p.header_size;
    j["boff"] = p.body_offset;
    j["bsize"] = p.body_size;
    j["lines"] = p.body_lines;
    j["type"] = put_str(p.type);
    j["sub"] = put_str(p.subtype);
    j["params"] = put_params(p.params);
    j["id"] = put_opt(p.id);
    j["desc"] = put_opt(p.description);
    j["md5"] = put_opt(p.md5);
    j["loc"] = put_opt(p.location);
    j["enc"] = put_str(p.encoding);
    j["disp"] = p.disposition ? json{{"type", put_str(p.disposition->type)}, {"params", put_params(p.disposition->params)}}
                              : json(nullptr);
    json lang = json::array();
    for (const auto& l : p.language) lang.push_back(put_str(l));
    j["lang"] = std::move(lang);
    j["bnd"] = put_str(p.boundary);
    json children = json::array();
    for (const auto& c : p.children) children.push_back(put_part(c));
    j["parts"] = std::move(children);
    j["msg"] = p.message ? put_message(*p.message) : json(nullptr);
    j["opaque"] = static_cast<int>(p.opaque);
    j["ctrunc"] = p.children_truncated;
    return j;
}

json put_message(const Message& m) {
    json headers = json::array();
    for (const auto& f : m.headers) headers.push_back(json::array({put_str(f.name), put_str(f.value), f.offset, f.size}));
    return json{{"hoff", m.header_offset}, {"hsize", m.header_size}, {"boff", m.body_offset},
                {"bsize", m.body_size},    {"headers", std::move(headers)}, {"htrunc", m.headers_truncated},
                {"env", put_envelope(m.envelope)}, {"body", put_part(m.body)}};
}

// Reading the cache is on every FETCH ENVELOPE/BODYSTRUCTURE and header SEARCH, so it goes
// through simdjson's DOM (a parse tree over one buffer, strings unescaped in place) instead of
// nlohmann's tree of maps: that read was most of those commands' CPU (bench/README.md).
using Element = simdjson::dom::element;

Element need(Element j, std::string_view key) {
    simdjson::dom::object o;
    if (j.get(o) != simdjson::SUCCESS) throw BadJson{};
    Element v;
    if (o.at_key(key).get(v) != simdjson::SUCCESS) throw BadJson{};
    return v;
}

simdjson::dom::array need_array(Element j, std::size_t size = npos) {
    simdjson::dom::array a;
    if (j.get(a) != simdjson::SUCCESS || (size != npos && a.size() != size)) throw BadJson{};
    return a;
}

Element at(simdjson::dom::array a, std::size_t i) {
    Element v;
    if (a.at(i).get(v) != simdjson::SUCCESS) throw BadJson{};
    return v;
}

std::string get_str_hex(Element j);  // {"hex": "..."}

// Into out, reusing its storage: a SEARCH decodes thousands of header fields in a row.
void get_str_into(Element j, std::string& out) {
    std::string_view text;
    if (j.get(text) == simdjson::SUCCESS) {
        out.assign(text);
        return;
    }
    out = get_str_hex(j);
}

std::string get_str(Element j) {
    std::string_view text;
    if (j.get(text) == simdjson::SUCCESS) return std::string(text);
    return get_str_hex(j);
}

std::string get_str_hex(Element j) {
    simdjson::dom::object o;
    if (j.get(o) != simdjson::SUCCESS || o.size() != 1) throw BadJson{};
    std::string_view hex;
    if (need(j, "hex").get(hex) != simdjson::SUCCESS || hex.size() % 2 != 0) throw BadJson{};
    std::string out;
    out.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
        if (hi < 0 || lo < 0) throw BadJson{};
        out.push_back(static_cast<char>(hi * 16 + lo));
    }
    return out;
}

std::optional<std::string> get_opt(Element j) {
    if (j.is_null()) return std::nullopt;
    return get_str(j);
}

std::size_t get_size(Element j) {
    std::uint64_t v = 0;
    if (j.type() != simdjson::dom::element_type::UINT64 && j.type() != simdjson::dom::element_type::INT64) throw BadJson{};
    if (j.get(v) != simdjson::SUCCESS) throw BadJson{};  // a negative INT64
    return static_cast<std::size_t>(v);
}

bool get_bool(Element j) {
    bool v = false;
    if (j.get(v) != simdjson::SUCCESS) throw BadJson{};
    return v;
}

std::vector<Param> get_params(Element j) {
    std::vector<Param> out;
    for (Element e : need_array(j)) {
        auto a = need_array(e, 4);
        out.push_back(Param{get_str(at(a, 0)), get_str(at(a, 1)), get_str(at(a, 2)), get_str(at(a, 3))});
    }
    return out;
}

std::vector<Address> get_addresses(Element j) {
    std::vector<Address> out;
    for (Element e : need_array(j)) {
        auto a = need_array(e, 5);
        std::size_t kind = get_size(at(a, 0));
        if (kind > static_cast<std::size_t>(Address::Kind::group_end)) throw BadJson{};
        out.push_back(Address{static_cast<Address::Kind>(kind), get_str(at(a, 1)), get_str(at(a, 2)), get_str(at(a, 3)),
                              get_str(at(a, 4))});
    }
    return out;
}

Envelope get_envelope(Element j) {
    Envelope e;
    e.date = get_opt(need(j, "date"));
    e.subject = get_opt(need(j, "subject"));
    e.in_reply_to = get_opt(need(j, "irt"));
    e.message_id = get_opt(need(j, "mid"));
    e.from = get_addresses(need(j, "from"));
    e.sender = get_addresses(need(j, "sender"));
    e.reply_to = get_addresses(need(j, "reply_to"));
    e.to = get_addresses(need(j, "to"));
    e.cc = get_addresses(need(j, "cc"));
    e.bcc = get_addresses(need(j, "bcc"));
    return e;
}

Message get_message(Element j, std::size_t depth);

// depth bounds the recursion on hostile JSON the same way parse_message bounds it on input.
Part get_part(Element j, std::size_t depth) {
    if (depth > max_depth_ceiling) throw BadJson{};
    Part p;
    for (Element n : need_array(need(j, "sec"))) {
        std::size_t v = get_size(n);
        if (v > UINT32_MAX) throw BadJson{};
        p.section.push_back(static_cast<std::uint32_t>(v));
    }
    p.header_offset = get_size(need(j, "hoff"));
    p.header_size = get_size(need(j, "hsize"));
    p.body_offset = get_size(need(j, "boff"));
    p.body_size = get_size(need(j, "bsize"));
    p.body_lines = get_size(need(j, "lines"));
    p.type = get_str(need(j, "type"));
    p.subtype = get_str(need(j, "sub"));
    p.params = get_params(need(j, "params"));
    p.id = get_opt(need(j, "id"));
    p.description = get_opt(need(j, "desc"));
    p.md5 = get_opt(need(j, "md5"));
    p.location = get_opt(need(j, "loc"));
    p.encoding = get_str(need(j, "enc"));
    Element disp = need(j, "disp");
    if (!disp.is_null()) p.disposition = Disposition{get_str(need(disp, "type")), get_params(need(disp, "params"))};
    for (Element l : need_array(need(j, "lang"))) p.language.push_back(get_str(l));
    p.boundary = get_str(need(j, "bnd"));
    for (Element c : need_array(need(j, "parts"))) p.children.push_back(get_part(c, depth + 1));
    Element msg = need(j, "msg");
    if (!msg.is_null()) p.message.emplace() = get_message(msg, depth + 1);
    std::size_t opaque = get_size(need(j, "opaque"));
    if (opaque > static_cast<std::size_t>(Opaque::encoded_message)) throw BadJson{};
    p.opaque = static_cast<Opaque>(opaque);
    p.children_truncated = get_bool(need(j, "ctrunc"));
    return p;
}

// m's header fields and offsets; the fields m already has are reused, strings and all.
void get_headers(Element j, Message& m) {
    m.header_offset = get_size(need(j, "hoff"));
    m.header_size = get_size(need(j, "hsize"));
    m.body_offset = get_size(need(j, "boff"));
    m.body_size = get_size(need(j, "bsize"));
    std::size_t n = 0;
    for (Element f : need_array(need(j, "headers"))) {
        auto a = need_array(f, 4);
        if (n == m.headers.size()) m.headers.emplace_back();
        HeaderField& h = m.headers[n++];
        get_str_into(at(a, 0), h.name);
        get_str_into(at(a, 1), h.value);
        h.offset = get_size(at(a, 2));
        h.size = get_size(at(a, 3));
    }
    m.headers.resize(n);
    m.headers_truncated = get_bool(need(j, "htrunc"));
}

Message get_message(Element j, std::size_t depth) {
    Message m;
    get_headers(j, m);
    m.envelope = get_envelope(need(j, "env"));
    m.body = get_part(need(j, "body"), depth);
    return m;
}

}  // namespace

std::string Limits::validate() const {
    if (max_depth > max_depth_ceiling)
        return fmt::format("MIME nesting depth {} is above the ceiling of {}", max_depth, max_depth_ceiling);
    if (max_parts == 0) return "the MIME part limit must be at least 1";
    if (max_header_bytes == 0) return "the header size limit must be at least 1";
    if (max_header_fields == 0) return "the header field limit must be at least 1";
    if (max_addresses == 0) return "the address limit must be at least 1";
    return {};
}

Message parse_message(std::string_view input, const Limits& limits) {
    Context ctx;
    ctx.in = input;
    ctx.limits = limits;
    ctx.limits.max_depth = std::min(limits.max_depth, max_depth_ceiling);
    ctx.limits.max_parts = std::max<std::size_t>(limits.max_parts, 1);
    ctx.parts = 1;  // the top-level body
    Message m;
    parse_message_at(ctx, m, 0, {}, 0);
    return m;
}

const Part* find_part(const Message& message, std::span<const std::uint32_t> section) {
    const Part* cur = nullptr;
    for (std::uint32_t n : section) {
        if (n == 0) return nullptr;
        if (cur == nullptr || cur->message) {
            // Entering a message: its multipart body's parts, or its only part as number 1.
            const Part& body = cur ? cur->message->body : message.body;
            if (body.is_multipart()) {
                if (n > body.children.size()) return nullptr;
                cur = &body.children[n - 1];
            } else {
                if (n != 1) return nullptr;
                cur = &body;
            }
        } else if (cur->is_multipart()) {
            if (n > cur->children.size()) return nullptr;
            cur = &cur->children[n - 1];
        } else {
            return nullptr;
        }
    }
    return cur;
}

std::string section_string(std::span<const std::uint32_t> section) {
    std::string out;
    for (std::uint32_t n : section) {
        if (!out.empty()) out.push_back('.');
        out += std::to_string(n);
    }
    return out;
}

const HeaderField* find_header(const std::vector<HeaderField>& headers, std::string_view name) {
    for (const auto& f : headers)
        if (iequals(f.name, name)) return &f;
    return nullptr;
}

std::string to_json(const Message& message) {
    json j = put_message(message);
    j["v"] = json_version;
    return j.dump();
}

namespace {
// One parser per thread, reused: its buffers grow to the largest document read so far.
// Null: not a parse cache of this version.
const Element* read_json(std::string_view text) {
    thread_local simdjson::dom::parser parser;
    thread_local Element root;
    if (parser.parse(text.data(), text.size(), true).get(root) != simdjson::SUCCESS) return nullptr;
    try {
        if (get_size(need(root, "v")) != json_version) return nullptr;
    } catch (const BadJson&) {
        return nullptr;
    }
    return &root;
}
}  // namespace

std::optional<Message> from_json(std::string_view text) {
    const Element* j = read_json(text);
    if (!j) return std::nullopt;
    try {
        return get_message(*j, 0);
    } catch (const BadJson&) {
        return std::nullopt;
    }
}

std::optional<Message> headers_from_json(std::string_view text) {
    Message m;
    if (!headers_from_json(text, m)) return std::nullopt;
    return m;
}

bool headers_from_json(std::string_view text, Message& into) {
    const Element* j = read_json(text);
    if (!j) return false;
    try {
        get_headers(*j, into);
        return true;
    } catch (const BadJson&) {
        return false;
    }
}

}  // namespace pillarbox::mime
