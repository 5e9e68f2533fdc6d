// FETCH's views of a stored message (see message_format.hpp): ENVELOPE, BODY and BODYSTRUCTURE
// written from the parse cache the way Dovecot writes them, BODY[section] byte ranges, and the
// transfer decodings BINARY needs.
#include "protocols/imap/message_format.hpp"

#include <algorithm>
#include <array>
#include <fmt/format.h>

#include "protocols/imap/parser.hpp"
#include "server/ascii.hpp"
#include "server/utf8.hpp"

namespace pillarbox::imap {
namespace {

// Name and route: empty means there is none (NIL). The local part and the domain of a mailbox
// are always strings, "" included, since a NIL host marks a group.
std::string quoted_or_nil(const std::string& value, bool utf8) {
    return value.empty() ? std::string("NIL") : quote_string(value, utf8);
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

// ---------------------------------------------------------------------------------------------
// ENVELOPE

// RFC 3501 9 addr-mailbox: the local part "after removing [RFC-2822] quoting". The parser
// keeps the quotes ("john doe"@example.com) so that local@domain stays a valid address.
std::string unquote_local(std::string_view local) {
    std::string out;
    out.reserve(local.size());
    bool in_quotes = false;
    for (std::size_t i = 0; i < local.size(); ++i) {
        char c = local[i];
        if (c == '"') {
            in_quotes = !in_quotes;
        } else if (c == '\\' && in_quotes && i + 1 < local.size()) {
            out.push_back(local[++i]);
        } else {
            out.push_back(c);
        }
    }
    return out;
}

// RFC 9051 7.5.2: "(" 1*address ")" / NIL, address = "(" name SP adl SP mailbox SP host ")".
// Groups follow RFC 5322's group syntax as RFC 3501 7.4.2 describes: (NIL NIL "group" NIL)
// starts one, (NIL NIL NIL NIL) ends it.
void append_addresses(std::string& out, const std::vector<mime::Address>& list, bool utf8) {
    if (list.empty()) {
        out += "NIL";
        return;
    }
    out.push_back('(');
    for (const auto& a : list) {
        switch (a.kind) {
        case mime::Address::Kind::mailbox:
            // The host of an address without a domain ("root") is "", not NIL, which would
            // make it a group marker.
            out += fmt::format("({} {} {} {})", quoted_or_nil(a.name, utf8), quoted_or_nil(a.route, utf8),
                               quote_string(unquote_local(a.local), utf8), quote_string(a.domain, utf8));
            break;
        case mime::Address::Kind::group_start:
            out += fmt::format("(NIL NIL {} NIL)", quote_string(a.name, utf8));
            break;
        case mime::Address::Kind::group_end:
            out += "(NIL NIL NIL NIL)";
            break;
        }
    }
    out.push_back(')');
}

// ---------------------------------------------------------------------------------------------
// BODY / BODYSTRUCTURE

// RFC 2231 attribute-char: what may stand in an extended value without %-encoding.
bool is_attribute_char(unsigned char c) {
    if (c <= 0x20 || c >= 0x7f) return false;
    return std::string_view("*'%()<>@,;:\\\"/[]?=").find(static_cast<char>(c)) == std::string_view::npos;
}

// An RFC 2231 extended value goes out the way Dovecot sends it: the name with its '*' and the
// value still encoded (charset'language'%XX...), since only the client knows the charset. The
// parser keeps the decoded bytes, so the encoding is made again, canonically (upper-case hex,
// only what RFC 2231 requires encoded): a sender's lower-case hex or needless escapes come out
// normalised, and continuations come out joined.
std::pair<std::string, std::string> wire_param(const mime::Param& p) {
    if (p.charset.empty() && p.language.empty()) return {p.name, p.value};
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string v = p.charset + "'" + p.language + "'";
    for (char c : p.value) {
        auto u = static_cast<unsigned char>(c);
        if (is_attribute_char(u)) {
            v.push_back(c);
        } else {
            v.push_back('%');
            v.push_back(hex[u >> 4]);
            v.push_back(hex[u & 15]);
        }
    }
    return {p.name + "*", std::move(v)};
}

// body-fld-param: "(" name SP value *(...) ")" / NIL. text: a text/* part, to which Dovecot adds
// "charset" "us-ascii" (RFC 2045 5.2's default) when the part names no charset.
void append_params(std::string& out, const std::vector<mime::Param>& params, bool text, bool utf8) {
    bool has_charset = std::any_of(params.begin(), params.end(), [](const mime::Param& p) {
        return p.charset.empty() && p.language.empty() && iequals(p.name, "charset");
    });
    bool add_charset = text && !has_charset;
    if (params.empty() && !add_charset) {
        out += "NIL";
        return;
    }
    out.push_back('(');
    bool first = true;
    for (const auto& p : params) {
        auto [name, value] = wire_param(p);
        if (!first) out.push_back(' ');
        first = false;
        out += quote_string(name, utf8);
        out.push_back(' ');
        out += quote_string(value, utf8);
    }
    if (add_charset) out += first ? "\"charset\" \"us-ascii\"" : " \"charset\" \"us-ascii\"";
    out.push_back(')');
}

// The extension data every part ends with: SP body-fld-dsp SP body-fld-lang SP body-fld-loc.
// Dovecot always writes all of them, and a language as a list even when there is one.
void append_common_extension(std::string& out, const mime::Part& p, bool utf8) {
    out.push_back(' ');
    if (!p.disposition) {
        out += "NIL";
    } else {
        out.push_back('(');
        out += quote_string(p.disposition->type, utf8);
        out.push_back(' ');
        append_params(out, p.disposition->params, false, utf8);
        out.push_back(')');
    }
    out.push_back(' ');
    if (p.language.empty()) {
        out += "NIL";
    } else {
        out.push_back('(');
        for (std::size_t i = 0; i < p.language.size(); ++i) {
            if (i > 0) out.push_back(' ');
            out += quote_string(p.language[i], utf8);
        }
        out.push_back(')');
    }
    out.push_back(' ');
    out += nstring(p.location, utf8);
}

// A message/rfc822 part shows its envelope, structure and lines. message/global (RFC 6532) does
// too in IMAP4rev2's grammar (RFC 9051 9, body-type-msg), which is what utf8 sessions speak;
// RFC 3501's grammar has only RFC822 there, so IMAP4rev1 gets message/global as a basic body,
// as Dovecot 2.3 sends it to everyone.
bool shows_message(const mime::Part& p, bool utf8) {
    if (p.type != "message" || !p.message) return false;
    return p.subtype == "rfc822" || (p.subtype == "global" && utf8);
}

void append_body(std::string& out, const mime::Part& p, bool extended, bool utf8) {
    out.push_back('(');
    if (p.is_multipart()) {
        // body-type-mpart: the children back to back, then the subtype.
        if (p.children.empty()) {
            // The parser never leaves a multipart without children (it turns it opaque), but
            // the grammar needs one body: like Dovecot, an empty text/plain stands in.
            out += extended ? R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL))"
                            : R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0))";
        }
        for (const auto& c : p.children) append_body(out, c, extended, utf8);
        out.push_back(' ');
        out += quote_string(p.subtype, utf8);
        if (extended) {
            out.push_back(' ');
            append_params(out, p.params, false, utf8);
            append_common_extension(out, p, utf8);
        }
        out.push_back(')');
        return;
    }
    // body-type-basic / body-type-msg / body-type-text: the type and subtype as the parser
    // keeps them (lower case; Dovecot sends the sender's spelling).
    const bool text = p.type == "text";
    const bool message = shows_message(p, utf8);
    out += quote_string(p.type, utf8);
    out.push_back(' ');
    out += quote_string(p.subtype, utf8);
    out.push_back(' ');
    append_params(out, p.params, text, utf8);
    out.push_back(' ');
    out += nstring(p.id, utf8);
    out.push_back(' ');
    out += nstring(p.description, utf8);
    out.push_back(' ');
    out += quote_string(p.encoding, utf8);
    // body-fld-octets: the bytes of the body in the file. The messages Pillarbox writes have
    // CRLF line ends, so this is the size IMAP means; for a file with bare LFs (one moved in
    // from another Maildir) it would be short by one octet per bare LF, which the caller turns
    // into CRLF when it streams the body.
    out += fmt::format(" {}", p.body_size);
    if (message) {
        out.push_back(' ');
        out += format_envelope(p.message->envelope, utf8);
        out.push_back(' ');
        append_body(out, p.message->body, extended, utf8);
        out += fmt::format(" {}", p.body_lines);
    } else if (text) {
        out += fmt::format(" {}", p.body_lines);
    }
    if (extended) {
        out.push_back(' ');
        out += nstring(p.md5, utf8);
        append_common_extension(out, p, utf8);
    }
    out.push_back(')');
}

// ---------------------------------------------------------------------------------------------
// BODY[section]

void add_range(SectionContent& c, std::uint64_t offset, std::uint64_t size) {
    if (size > 0) c.pieces.push_back(SectionContent::Piece{offset, size, {}});
}

// HEADER.FIELDS (names) / HEADER.FIELDS.NOT (names): the fields picked, in message order and
// with their folded lines, then the blank line that ends a header (RFC 9051 6.4.5), which is
// always there even when no field is picked.
SectionContent header_fields(const mime::Message& m, const std::vector<std::string>& names, bool negate) {
    SectionContent c;
    for (const auto& f : m.headers) {
        bool named = std::any_of(names.begin(), names.end(), [&](const std::string& n) { return iequals(n, f.name); });
        if (named != negate) add_range(c, f.offset, f.size);
    }
    c.pieces.push_back(SectionContent::Piece{0, 0, "\r\n"});
    return c;
}

// HEADER / HEADER.FIELDS[.NOT] / TEXT of a message: the whole message or one embedded in a
// message/rfc822 part.
SectionContent message_section(const mime::Message& m, const Section& s) {
    SectionContent c;
    switch (s.text) {
    case Section::Text::None:
        add_range(c, m.header_offset, m.size());
        break;
    case Section::Text::Header:
        add_range(c, m.header_offset, m.header_size);
        break;
    case Section::Text::HeaderFields:
        return header_fields(m, s.fields, false);
    case Section::Text::HeaderFieldsNot:
        return header_fields(m, s.fields, true);
    case Section::Text::Text:
        add_range(c, m.body_offset, m.body_size);
        break;
    case Section::Text::Mime:
        break;  // not reached: the caller handles MIME
    }
    return c;
}

// ---------------------------------------------------------------------------------------------
// Transfer decodings


// RFC 2045 6.8: characters outside the alphabet (line breaks, blanks, junk) are ignored. A '='
// ends a group of four; decoding goes on after it, so parts made of several separately padded
// runs decode whole. A last group cut short still gives the bytes it holds.
std::string decode_base64(std::string_view in) {
    static constexpr auto table = [] {
        std::array<signed char, 256> t{};
        t.fill(-1);
        constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (std::size_t i = 0; i < alphabet.size(); ++i)
            t[static_cast<unsigned char>(alphabet[i])] = static_cast<signed char>(i);
        return t;
    }();
    std::string out;
    out.reserve(in.size() / 4 * 3);
    std::uint32_t acc = 0;
    int n = 0;
    auto flush = [&] {
        // n sextets hold n * 6 bits: 2 -> 1 byte, 3 -> 2 bytes; a lone sextet is not a byte.
        if (n >= 2) out.push_back(static_cast<char>((acc >> (6 * n - 8)) & 0xff));
        if (n >= 3) out.push_back(static_cast<char>((acc >> (6 * n - 16)) & 0xff));
        acc = 0;
        n = 0;
    };
    for (char c : in) {
        if (c == '=') {
            flush();
            continue;
        }
        int v = table[static_cast<unsigned char>(c)];
        if (v < 0) continue;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        if (++n == 4) {
            out.push_back(static_cast<char>((acc >> 16) & 0xff));
            out.push_back(static_cast<char>((acc >> 8) & 0xff));
            out.push_back(static_cast<char>(acc & 0xff));
            acc = 0;
            n = 0;
        }
    }
    flush();
    return out;
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// RFC 2045 6.7: "=XX" is an octet (lower-case hex accepted, rule 1), "=" at the end of a line
// (blanks may follow it) is a soft line break, blanks at the end of a line were added in
// transport and go. A "=" that is neither stays as it is (the robust reading 6.7 suggests).
// Line ends are kept as they are.
std::string decode_quoted_printable(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    std::size_t i = 0;
    while (i < in.size()) {
        std::size_t eol = in.find('\n', i);
        std::size_t next = eol == std::string_view::npos ? in.size() : eol + 1;
        std::size_t end = eol == std::string_view::npos ? in.size() : eol;
        if (end > i && in[end - 1] == '\r') --end;
        std::string_view line_end = in.substr(end, next - end);  // "\r\n", "\n" or ""
        std::string_view line = in.substr(i, end - i);
        while (!line.empty() && is_blank(line.back())) line.remove_suffix(1);
        bool soft = !line.empty() && line.back() == '=';
        if (soft) line.remove_suffix(1);
        for (std::size_t k = 0; k < line.size(); ++k) {
            int hi = 0, lo = 0;
            if (line[k] == '=' && k + 2 < line.size() && (hi = ascii_hex_value(line[k + 1])) >= 0 &&
                (lo = ascii_hex_value(line[k + 2])) >= 0) {
                out.push_back(static_cast<char>(hi * 16 + lo));
                k += 2;
            } else {
                out.push_back(line[k]);
            }
        }
        if (!soft) out.append(line_end);
        i = next;
    }
    return out;
}

}  // namespace

std::uint64_t SectionContent::total() const {
    std::uint64_t n = 0;
    for (const auto& p : pieces) n += p.size > 0 ? p.size : p.bytes.size();
    return n;
}

std::string format_envelope(const mime::Envelope& e, bool utf8) {
    std::string out = "(";
    out += nstring(e.date, utf8);
    out.push_back(' ');
    out += nstring(e.subject, utf8);
    for (const auto* list : {&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc}) {
        out.push_back(' ');
        append_addresses(out, *list, utf8);
    }
    out.push_back(' ');
    out += nstring(e.in_reply_to, utf8);
    out.push_back(' ');
    out += nstring(e.message_id, utf8);
    out.push_back(')');
    return out;
}

std::string format_body_structure(const mime::Message& m, bool extended, bool utf8) {
    std::string out;
    append_body(out, m.body, extended, utf8);
    return out;
}

std::optional<SectionContent> locate_section(const mime::Message& m, const Section& s) {
    if (s.part.empty()) {
        if (s.text == Section::Text::Mime) return std::nullopt;  // MIME needs a part number
        return message_section(m, s);
    }
    const mime::Part* p = mime::find_part(m, s.part);
    if (p == nullptr) return std::nullopt;
    SectionContent c;
    switch (s.text) {
    case Section::Text::None:
        add_range(c, p->body_offset, p->body_size);
        return c;
    case Section::Text::Mime:
        add_range(c, p->header_offset, p->header_size);
        return c;
    default:
        // RFC 9051 6.4.5: HEADER, HEADER.FIELDS[.NOT] and TEXT after a part number need a
        // message/rfc822 (or message/global) part; of any other part they name nothing.
        if (!p->message) return std::nullopt;
        return message_section(*p->message, s);
    }
}

std::optional<std::string> decode_part(std::string_view raw, std::string_view encoding) {
    if (encoding.empty() || iequals(encoding, "7bit") || iequals(encoding, "8bit") || iequals(encoding, "binary"))
        return std::string(raw);
    if (iequals(encoding, "base64")) return decode_base64(raw);
    if (iequals(encoding, "quoted-printable")) return decode_quoted_printable(raw);
    return std::nullopt;
}

}  // namespace pillarbox::imap
