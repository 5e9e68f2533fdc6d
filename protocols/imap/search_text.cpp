// SEARCH's text and date helpers (see search_text.hpp).
#include "protocols/imap/search_text.hpp"

#include <iconv.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <vector>

#include "protocols/imap/message_format.hpp"
#include "server/ascii.hpp"

namespace pillarbox::imap {

namespace {

bool same_charset(std::string_view a, std::string_view b) { return ascii_iequals(a, b); }

// bytes in charset -> UTF-8; nullopt when iconv doesn't know the charset or the bytes are bad.
std::optional<std::string> to_utf8(std::string_view bytes, std::string_view charset) {
    if (charset.empty() || same_charset(charset, "utf-8") || same_charset(charset, "us-ascii") ||
        same_charset(charset, "utf8"))
        return std::string(bytes);
    iconv_t cd = iconv_open("UTF-8", std::string(charset).c_str());
    if (cd == reinterpret_cast<iconv_t>(-1)) return std::nullopt;
    std::string out(bytes.size() * 4 + 16, '\0');
    char* in = const_cast<char*>(bytes.data());
    std::size_t in_left = bytes.size();
    char* o = out.data();
    std::size_t o_left = out.size();
    bool ok = true;
    while (in_left > 0) {
        if (iconv(cd, &in, &in_left, &o, &o_left) != static_cast<std::size_t>(-1)) break;
        if (errno == EILSEQ || errno == EINVAL) {
            // A byte the charset doesn't have: U+FFFD, and on.
            if (o_left < 3) break;
            *o++ = '\xEF', *o++ = '\xBF', *o++ = '\xBD';
            o_left -= 3;
            ++in;
            --in_left;
            continue;
        }
        ok = false;  // E2BIG can't happen with 4x room plus the replacement characters' room
        break;
    }
    iconv_close(cd);
    if (!ok) return std::nullopt;
    out.resize(out.size() - o_left);
    return out;
}

int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// One encoded word at text[pos] ("=?charset?Q?...?="): its decoded text and its length.
std::optional<std::pair<std::string, std::size_t>> encoded_word(std::string_view text, std::size_t pos) {
    if (text.compare(pos, 2, "=?") != 0) return std::nullopt;
    std::size_t q1 = text.find('?', pos + 2);
    if (q1 == std::string_view::npos || q1 + 2 >= text.size() || text[q1 + 2] != '?') return std::nullopt;
    std::size_t end = text.find("?=", q1 + 3);
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view charset = text.substr(pos + 2, q1 - pos - 2);
    if (auto star = charset.find('*'); star != std::string_view::npos) charset = charset.substr(0, star);  // RFC 2231 5
    const char enc = static_cast<char>(ascii_upper(text[q1 + 1]));
    std::string_view payload = text.substr(q1 + 3, end - q1 - 3);
    if (payload.find_first_of(" \t\r\n") != std::string_view::npos) return std::nullopt;
    std::string bytes;
    if (enc == 'Q') {
        for (std::size_t i = 0; i < payload.size(); ++i) {
            if (payload[i] == '_') bytes += ' ';
            else if (payload[i] == '=' && i + 2 < payload.size() && hex(payload[i + 1]) >= 0 && hex(payload[i + 2]) >= 0) {
                bytes += static_cast<char>(hex(payload[i + 1]) * 16 + hex(payload[i + 2]));
                i += 2;
            } else bytes += payload[i];
        }
    } else if (enc == 'B') {
        auto d = decode_part(payload, "base64");
        if (!d) return std::nullopt;
        bytes = std::move(*d);
    } else {
        return std::nullopt;
    }
    auto utf8 = to_utf8(bytes, charset);
    if (!utf8) return std::nullopt;
    return std::pair{std::move(*utf8), end + 2 - pos};
}

// Code points for matching: UTF-8 decoded, invalid bytes as 0xDC00 + byte (so they compare as
// themselves), each folded to lower case.
char32_t fold(char32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0x80) return c;
    if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;                     // Latin-1
    if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
        // Latin Extended-A: pairs, upper case at the even code point, except 0x139-0x148 and
        // 0x179-0x17E, where the upper case is the odd one.
        bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
        if (odd_upper ? (c % 2 == 1) : (c % 2 == 0)) return c + 1;
        return c;
    }
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;                      // Greek
    if (c == 0x3C2) return 0x3C3;                                                   // final sigma
    if (c >= 0x410 && c <= 0x42F) return c + 32;                                    // Cyrillic
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    return c;
}

std::u32string folded(std::string_view s) {
    std::u32string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        unsigned char b = static_cast<unsigned char>(s[i]);
        char32_t c = 0;
        std::size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
        bool ok = n > 0 && i + n <= s.size();
        if (ok) {
            c = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
            for (std::size_t k = 1; k < n; ++k) {
                unsigned char x = static_cast<unsigned char>(s[i + k]);
                if ((x & 0xC0) != 0x80) ok = false;
                c = (c << 6) | (x & 0x3F);
            }
        }
        if (!ok) {
            out.push_back(0xDC00 + b);
            ++i;
            continue;
        }
        out.push_back(fold(c));
        i += n;
    }
    return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

void collect_text(std::string_view message, const mime::Part& p, std::string& out) {
    if (p.is_multipart()) {
        for (auto& c : p.children) collect_text(message, c, out);
        return;
    }
    if (p.message) {
        collect_text(message, p.message->body, out);
        return;
    }
    if (p.type != "text") return;
    if (p.body_offset > message.size()) return;
    std::string_view raw = message.substr(p.body_offset, std::min<std::size_t>(p.body_size, message.size() - p.body_offset));
    auto decoded = decode_part(raw, p.encoding);
    std::string bytes = decoded ? std::move(*decoded) : std::string(raw);
    std::string charset;
    for (auto& param : p.params)
        if (param.name == "charset") charset = param.value;
    auto utf8 = to_utf8(bytes, charset);
    if (!out.empty()) out += '\n';
    out += utf8 ? *utf8 : bytes;
}

}  // namespace

std::string decode_header_value(std::string_view raw) {
    std::string out;
    std::size_t i = 0;
    bool last_was_word = false;
    std::size_t pending_space = 0;  // where whitespace after an encoded word began in out
    while (i < raw.size()) {
        if (raw[i] == '=' && i + 1 < raw.size() && raw[i + 1] == '?') {
            if (auto w = encoded_word(raw, i)) {
                // RFC 2047 6.2: whitespace between two encoded words is not shown.
                if (last_was_word) out.resize(pending_space);
                out += w->first;
                i += w->second;
                last_was_word = true;
                pending_space = out.size();
                continue;
            }
        }
        if (!is_space(raw[i])) last_was_word = false;
        out += raw[i++];
    }
    return out;
}

std::optional<Date> header_date(std::string_view v) {
    // Tokens of letters and digits; comments and punctuation separate them.
    std::vector<std::string> tok;
    int depth = 0;
    std::string cur;
    for (char c : v) {
        if (c == '(') ++depth;
        else if (c == ')' && depth > 0) --depth;
        bool word = depth == 0 && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
        if (word) cur += c;
        else if (!cur.empty()) {
            tok.push_back(std::move(cur));
            cur.clear();
            if (c == ':') tok.push_back(":");
        }
        if (tok.size() > 16) break;
    }
    if (!cur.empty()) tok.push_back(cur);
    static const char* kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
    auto number = [](const std::string& t) -> int {
        if (t.empty() || t.size() > 4 || !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; })) return -1;
        return std::stoi(t);
    };
    std::size_t k = 0;
    if (k < tok.size() && number(tok[k]) < 0) ++k;  // day of week
    if (k + 2 >= tok.size()) return std::nullopt;
    int day = number(tok[k]);
    int month = 0;
    std::string m = ascii_lower(tok[k + 1]);
    for (int i = 0; i < 12; ++i)
        if (m.size() >= 3 && m.compare(0, 3, kMonths[i]) == 0) month = i + 1;
    std::string ytok = tok[k + 2];
    int year = number(ytok);
    if (day < 1 || month == 0 || year < 0) return std::nullopt;
    if (ytok.size() <= 2) year += year < 50 ? 2000 : 1900;  // RFC 5322 4.3
    else if (ytok.size() == 3) year += 1900;
    static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int max = kDays[month - 1] + (month == 2 && leap ? 1 : 0);
    if (day > max) return std::nullopt;
    return Date{year, month, day};
}

std::string body_text(std::string_view message, const mime::Message& parsed) {
    std::string out;
    collect_text(message, parsed.body, out);
    return out;
}

bool contains_text(std::string_view haystack, std::string_view needle) {
    if (needle.empty()) return true;
    const std::u32string n = folded(needle), h = folded(haystack);
    if (n.size() > h.size()) return false;
    // Boyer-Moore-Horspool: linear on the text in practice, whatever the needle.
    return std::search(h.begin(), h.end(), std::boyer_moore_horspool_searcher(n.begin(), n.end())) != h.end();
}

}  // namespace pillarbox::imap
