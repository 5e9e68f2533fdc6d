// SEARCH's text and date helpers: RFC 2047 header decoding, RFC 5322 dates, the body's text
// parts in UTF-8 and a linear-time case-insensitive substring match.
#include "protocols/imap/search_text.hpp"

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <iconv.h>
#include <span>
#include <vector>

#include "protocols/imap/message_format.hpp"
#include "server/ascii.hpp"

namespace pillarbox::imap {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool is_wsp(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// ---- UTF-8 ----

// The code point of the well-formed UTF-8 sequence at s[i] and its length; length 0 when the
// byte at i does not start one (RFC 3629: no overlong forms, surrogates or values past U+10FFFF).
struct Decoded {
    char32_t cp = 0;
    std::size_t len = 0;
};

Decoded decode_utf8(std::string_view s, std::size_t i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return {c, 1};
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;
    char32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
    else if (c == 0xe0) { n = 2; lo = 0xa0; cp = c & 0x0f; }
    else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) { n = 2; cp = c & 0x0f; }
    else if (c == 0xed) { n = 2; hi = 0x9f; cp = c & 0x0f; }
    else if (c == 0xf0) { n = 3; lo = 0x90; cp = c & 0x07; }
    else if (c >= 0xf1 && c <= 0xf3) { n = 3; cp = c & 0x07; }
    else if (c == 0xf4) { n = 3; hi = 0x8f; cp = c & 0x07; }
    else return {0, 0};
    if (s.size() - i <= n) return {0, 0};
    for (std::size_t k = 1; k <= n; ++k) {
        auto d = static_cast<unsigned char>(s[i + k]);
        if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xbf)) return {0, 0};
        cp = (cp << 6) | (d & 0x3f);
    }
    return {cp, n + 1};
}

// Appends s with every byte that is not part of well-formed UTF-8 replaced by U+FFFD.
void append_sanitized_utf8(std::string& out, std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        std::size_t n = decode_utf8(s, i).len;
        if (n == 0) {
            out += kReplacement;
            ++i;
        } else {
            out.append(s.substr(i, n));
            i += n;
        }
    }
}

// ---- charsets ----

enum class CharsetKind { utf8, iconv, unusable };

// RFC 2047 / RFC 2045 charset token characters; '/' (iconv's "//TRANSLIT" suffixes), '*' and
// '?' are not among them.
bool charset_char(char c) {
    return is_alpha(c) || is_digit(c) || std::string_view("!#$%&'+-^_`{}~.:").find(c) != std::string_view::npos;
}

// What to hand iconv_open for a charset label (lower-case), or how else to treat it. us-ascii
// and unlabelled 8-bit text are taken as UTF-8 (real mail in them often is); the GB2312 and
// KS C 5601 labels are used for their Microsoft supersets in practice.
std::pair<CharsetKind, std::string> resolve_charset(std::string_view label) {
    if (label.empty() || label.size() > 64) return {CharsetKind::unusable, {}};
    for (char c : label)
        if (!charset_char(c)) return {CharsetKind::unusable, {}};
    std::string name = ascii_lower(label);
    if (name == "utf-8" || name == "utf8" || name == "us-ascii" || name == "ascii" || name == "ansi_x3.4-1968" ||
        name == "unknown-8bit" || name == "x-unknown" || name == "unknown")
        return {CharsetKind::utf8, {}};
    if (name == "gb2312" || name == "gbk" || name == "x-gbk" || name == "cp936" || name == "euc-cn")
        return {CharsetKind::iconv, "GB18030"};
    if (name == "ks_c_5601-1987" || name == "euc-kr") return {CharsetKind::iconv, "CP949"};
    return {CharsetKind::iconv, name};
}

// An iconv descriptor to UTF-8 for one charset at a time, reopened only when the charset changes.
class Converter {
public:
    Converter() = default;
    Converter(const Converter&) = delete;
    Converter& operator=(const Converter&) = delete;
    ~Converter() { close(); }

    // Appends `in` in `charset` converted to UTF-8 to out; bytes that are not valid in the
    // charset become U+FFFD. False (out unchanged) when the charset is unknown. Stops once out
    // has grown by more than max_growth bytes.
    bool convert(std::string_view charset, std::string_view in, std::string& out, std::size_t max_growth) {
        auto [kind, name] = resolve_charset(charset);
        if (kind == CharsetKind::unusable) return false;
        std::size_t start = out.size();
        if (kind == CharsetKind::utf8) {
            append_sanitized_utf8(out, in);
        } else {
            if (!open(name)) return false;
            run(in, out, start + max_growth);
        }
        if (out.size() - start > max_growth) {  // cut at a character boundary
            std::size_t cut = start + max_growth;
            while (cut > start && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
            out.resize(cut);
        }
        return true;
    }

private:
    bool open(const std::string& name) {
        if (cd_ != invalid() && name == name_) return true;
        close();
        if (failed_ && name == name_) return false;
        name_ = name;
        cd_ = iconv_open("UTF-8", name.c_str());
        failed_ = cd_ == invalid();
        return !failed_;
    }

    void close() {
        if (cd_ != invalid()) iconv_close(cd_);
        cd_ = invalid();
    }

    void run(std::string_view in, std::string& out, std::size_t limit) {
        iconv(cd_, nullptr, nullptr, nullptr, nullptr);  // initial shift state
        char* inp = const_cast<char*>(in.data());  // iconv's signature; it does not write
        std::size_t inleft = in.size();
        char buf[4096];
        while (inleft > 0 && out.size() <= limit) {
            char* outp = buf;
            std::size_t outleft = sizeof buf;
            std::size_t before = inleft;
            std::size_t r = iconv(cd_, &inp, &inleft, &outp, &outleft);
            out.append(buf, static_cast<std::size_t>(outp - buf));
            if (r != static_cast<std::size_t>(-1)) continue;
            if (errno == E2BIG && (inleft < before || outp != buf)) continue;
            if (errno == EINVAL) {  // an incomplete sequence at the end
                out += kReplacement;
                break;
            }
            // EILSEQ (or no progress at all): one byte that is no character here.
            out += kReplacement;
            ++inp;
            --inleft;
        }
        char* outp = buf;
        std::size_t outleft = sizeof buf;
        iconv(cd_, nullptr, nullptr, &outp, &outleft);  // back to the initial state, if stateful
        out.append(buf, static_cast<std::size_t>(outp - buf));
    }

    static iconv_t invalid() { return reinterpret_cast<iconv_t>(-1); }

    std::string name_;
    iconv_t cd_ = invalid();
    bool failed_ = false;
};

// ---- RFC 2047 ----


// "Q": '_' is a space, "=XX" an octet; a '=' without two hex digits stays as it is.
std::string decode_q(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t k = 0; k < text.size(); ++k) {
        char c = text[k];
        int hi = 0, lo = 0;
        if (c == '_') {
            out.push_back(' ');
        } else if (c == '=' && k + 2 < text.size() && (hi = ascii_hex_value(text[k + 1])) >= 0 &&
                   (lo = ascii_hex_value(text[k + 2])) >= 0) {
            out.push_back(static_cast<char>(hi * 16 + lo));
            k += 2;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

// "B": base64; padding may be left out, nothing may follow it, nothing outside the alphabet.
std::optional<std::string> decode_b(std::string_view text) {
    std::string out;
    out.reserve(text.size() / 4 * 3 + 2);
    std::uint32_t acc = 0;
    int n = 0;
    std::size_t k = 0;
    for (; k < text.size() && text[k] != '='; ++k) {
        char c = text[k];
        int v;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == '+') v = 62;
        else if (c == '/') v = 63;
        else return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        if (++n == 4) {
            out.push_back(static_cast<char>((acc >> 16) & 0xff));
            out.push_back(static_cast<char>((acc >> 8) & 0xff));
            out.push_back(static_cast<char>(acc & 0xff));
            acc = 0;
            n = 0;
        }
    }
    for (; k < text.size(); ++k)
        if (text[k] != '=') return std::nullopt;
    if (n == 1) return std::nullopt;
    if (n >= 2) out.push_back(static_cast<char>((acc >> (6 * n - 8)) & 0xff));
    if (n == 3) out.push_back(static_cast<char>((acc >> (6 * n - 16)) & 0xff));
    return out;
}

struct EncodedWord {
    std::string_view charset;  // without an RFC 2231 "*language" suffix
    std::string bytes;         // decoded, still in charset
    std::size_t end = 0;       // just past "?="
};

// The encoded word "=?charset?encoding?text?=" at raw[p] (raw[p..] starts with "=?"). Scans no
// further than the third '?' after p, so trying every "=?" of a value is linear.
std::optional<EncodedWord> parse_encoded_word(std::string_view raw, std::size_t p) {
    std::size_t i = p + 2;
    std::size_t cs = i;
    while (i < raw.size() && (charset_char(raw[i]) || raw[i] == '*')) ++i;
    if (i == cs || i >= raw.size() || raw[i] != '?') return std::nullopt;
    std::string_view charset = raw.substr(cs, i - cs);
    charset = charset.substr(0, charset.find('*'));  // RFC 2231 section 5: charset*language
    if (charset.empty()) return std::nullopt;
    ++i;
    if (i + 1 >= raw.size() || raw[i + 1] != '?') return std::nullopt;
    char enc = ascii_lower(raw[i]);
    if (enc != 'q' && enc != 'b') return std::nullopt;
    i += 2;
    std::size_t ts = i;
    while (i < raw.size() && raw[i] != '?' && static_cast<unsigned char>(raw[i]) > 0x20 &&
           static_cast<unsigned char>(raw[i]) < 0x7f)
        ++i;
    if (i + 1 >= raw.size() || raw[i] != '?' || raw[i + 1] != '=') return std::nullopt;
    std::string_view text = raw.substr(ts, i - ts);
    EncodedWord w;
    w.charset = charset;
    w.end = i + 2;
    if (enc == 'q') {
        w.bytes = decode_q(text);
    } else {
        auto b = decode_b(text);
        if (!b) return std::nullopt;
        w.bytes = std::move(*b);
    }
    return w;
}

// ---- dates ----

// Skips folding white space and comments (nested, with quoted-pairs; one left open runs to the
// end of the value).
std::size_t skip_cfws(std::string_view s, std::size_t i) {
    while (i < s.size()) {
        if (is_wsp(s[i])) {
            ++i;
        } else if (s[i] == '(') {
            std::size_t depth = 0;
            for (; i < s.size(); ++i) {
                if (s[i] == '\\') {
                    if (i + 1 < s.size()) ++i;  // quoted-pair
                } else if (s[i] == '(') {
                    ++depth;
                } else if (s[i] == ')' && --depth == 0) {
                    ++i;
                    break;
                }
            }
        } else {
            break;
        }
    }
    return i;
}

std::string_view take_alpha(std::string_view s, std::size_t& i) {
    std::size_t start = i;
    while (i < s.size() && is_alpha(s[i])) ++i;
    return s.substr(start, i - start);
}

// Up to max_digits digits as a number (-1 if none; more digits than that: -1 too).
int take_number(std::string_view s, std::size_t& i, std::size_t max_digits, std::size_t* count = nullptr) {
    std::size_t start = i;
    int v = 0;
    while (i < s.size() && is_digit(s[i])) {
        if (i - start == max_digits) return -1;
        v = v * 10 + (s[i] - '0');
        ++i;
    }
    if (count) *count = i - start;
    return i == start ? -1 : v;
}

// A 3-letter abbreviation, or (obsolete, but written by some) the full name.
int name_index(std::string_view word, std::span<const std::string_view> names) {
    if (word.size() < 3) return -1;
    for (std::size_t k = 0; k < names.size(); ++k)
        if (ascii_iequals(word, names[k].substr(0, 3)) || ascii_iequals(word, names[k])) return static_cast<int>(k);
    return -1;
}

constexpr std::string_view kMonths[] = {"January", "February", "March",     "April",   "May",      "June",
                                        "July",    "August",   "September", "October", "November", "December"};
constexpr std::string_view kWeekdays[] = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};

// ---- case folding ----

// Simple case folding (Unicode CaseFolding.txt, status C and S) for U+0000-U+052F (Basic Latin,
// Latin-1 Supplement, Latin Extended-A and -B, IPA, Greek and Coptic, Cyrillic and Cyrillic
// Supplement), U+1E00-U+1EFF (Latin Extended Additional) and the fullwidth Latin letters: the
// scripts mail is mostly searched in. Every other code point folds to itself. Written out as
// ranges rather than towlower(), which depends on the process locale; checked against Unicode 14's
// table for every code point of those ranges when written.

// Latin Extended-B's letters that do not come in upper/lower pairs next to each other.
constexpr std::pair<char16_t, char16_t> kLatinExtendedB[] = {
        {0x181, 0x253}, {0x182, 0x183}, {0x184, 0x185}, {0x186, 0x254}, {0x187, 0x188}, {0x189, 0x256},
        {0x18a, 0x257}, {0x18b, 0x18c}, {0x18e, 0x1dd}, {0x18f, 0x259}, {0x190, 0x25b}, {0x191, 0x192},
        {0x193, 0x260}, {0x194, 0x263}, {0x196, 0x269}, {0x197, 0x268}, {0x198, 0x199}, {0x19c, 0x26f},
        {0x19d, 0x272}, {0x19f, 0x275}, {0x1a0, 0x1a1}, {0x1a2, 0x1a3}, {0x1a4, 0x1a5}, {0x1a6, 0x280},
        {0x1a7, 0x1a8}, {0x1a9, 0x283}, {0x1ac, 0x1ad}, {0x1ae, 0x288}, {0x1af, 0x1b0}, {0x1b1, 0x28a},
        {0x1b2, 0x28b}, {0x1b3, 0x1b4}, {0x1b5, 0x1b6}, {0x1b7, 0x292}, {0x1b8, 0x1b9}, {0x1bc, 0x1bd},
        {0x1c4, 0x1c6}, {0x1c5, 0x1c6}, {0x1c7, 0x1c9}, {0x1c8, 0x1c9}, {0x1ca, 0x1cc}, {0x1cb, 0x1cc},
        {0x1f1, 0x1f3}, {0x1f2, 0x1f3}, {0x1f4, 0x1f5}, {0x1f6, 0x195}, {0x1f7, 0x1bf}, {0x220, 0x19e},
        {0x23a, 0x2c65}, {0x23b, 0x23c}, {0x23d, 0x19a}, {0x23e, 0x2c66}, {0x241, 0x242}, {0x243, 0x180},
        {0x244, 0x289}, {0x245, 0x28c},
};

char32_t fold(char32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 0x20 : c;
    if (c < 0x100) {
        if (c == 0xb5) return 0x3bc;  // MICRO SIGN -> GREEK SMALL LETTER MU
        if (c >= 0xc0 && c <= 0xde && c != 0xd7) return c + 0x20;
        return c;
    }
    if (c < 0x180) {  // Latin Extended-A
        if (c == 0x130 || c == 0x131 || c == 0x138 || c == 0x149) return c;  // no simple folding
        if (c == 0x178) return 0xff;
        if (c == 0x17f) return 's';
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return (c & 1) ? c + 1 : c;
        return (c & 1) ? c : c + 1;
    }
    if (c < 0x250) {  // Latin Extended-B
        if ((c >= 0x1cd && c <= 0x1dc)) return (c & 1) ? c + 1 : c;
        if ((c >= 0x1de && c <= 0x1ef) || (c >= 0x1f8 && c <= 0x21f) || (c >= 0x222 && c <= 0x233) || c >= 0x246)
            return (c & 1) ? c : c + 1;
        for (const auto& [from, to] : kLatinExtendedB)
            if (from == c) return to;
        return c;
    }
    if (c >= 0x345 && c < 0x400) {  // Greek and Coptic (and the iota subscript)
        switch (c) {
        case 0x345: return 0x3b9;
        case 0x370: case 0x372: case 0x376: return c + 1;
        case 0x37f: return 0x3f3;
        case 0x386: return 0x3ac;
        case 0x388: case 0x389: case 0x38a: return c + 0x25;
        case 0x38c: return 0x3cc;
        case 0x38e: case 0x38f: return c + 0x3f;
        case 0x3c2: return 0x3c3;
        case 0x3cf: return 0x3d7;
        case 0x3d0: return 0x3b2;
        case 0x3d1: return 0x3b8;
        case 0x3d5: return 0x3c6;
        case 0x3d6: return 0x3c0;
        case 0x3f0: return 0x3ba;
        case 0x3f1: return 0x3c1;
        case 0x3f4: return 0x3b8;
        case 0x3f5: return 0x3b5;
        case 0x3f7: case 0x3fa: return c + 1;
        case 0x3f9: return 0x3f2;
        case 0x3fd: case 0x3fe: case 0x3ff: return c - 0x82;
        default: break;
        }
        if ((c >= 0x391 && c <= 0x3a1) || (c >= 0x3a3 && c <= 0x3ab)) return c + 0x20;
        if (c >= 0x3d8 && c <= 0x3ef) return (c & 1) ? c : c + 1;
        return c;
    }
    if (c >= 0x400 && c < 0x530) {  // Cyrillic, Cyrillic Supplement
        if (c < 0x410) return c + 0x50;
        if (c < 0x430) return c + 0x20;
        if ((c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf) || (c >= 0x4d0 && c <= 0x52f))
            return (c & 1) ? c : c + 1;
        if (c == 0x4c0) return 0x4cf;
        if (c >= 0x4c1 && c <= 0x4ce) return (c & 1) ? c + 1 : c;
        return c;
    }
    if (c >= 0x1e00 && c <= 0x1eff) {  // Latin Extended Additional
        if (c == 0x1e9b) return 0x1e61;
        if (c == 0x1e9e) return 0xdf;
        if ((c >= 0x1e00 && c <= 0x1e95) || c >= 0x1ea0) return (c & 1) ? c : c + 1;
        return c;
    }
    if (c >= 0xff21 && c <= 0xff3a) return c + 0x20;  // FULLWIDTH LATIN CAPITAL LETTER A-Z
    return c;
}

// Bytes that are not well-formed UTF-8 compare as themselves: each becomes a value no code
// point has.
constexpr char32_t kRawByte = 0x110000;

// The folded character at s[i]; advances i past it.
char32_t next_folded(std::string_view s, std::size_t& i) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
        ++i;
        return b >= 'A' && b <= 'Z' ? b + 0x20 : b;
    }
    Decoded d = decode_utf8(s, i);
    if (d.len == 0) {
        ++i;
        return kRawByte + b;
    }
    i += d.len;
    return fold(d.cp);
}

// ---- body ----

std::string_view slice(std::string_view message, std::size_t offset, std::size_t size) {
    if (offset >= message.size()) return {};
    return message.substr(offset, size);
}

struct BodyWalker {
    std::string_view message;
    std::string out;
    Converter converter;

    void part(const mime::Part& p) {
        for (const auto& c : p.children) part(c);
        if (p.message) part(p.message->body);
        if (p.type != "text") return;
        std::string_view raw = slice(message, p.body_offset, p.body_size);
        auto decoded = decode_part(raw, p.encoding);
        std::string_view bytes = decoded ? std::string_view(*decoded) : raw;  // unknown encoding: as is
        std::string_view charset = "us-ascii";
        for (const auto& param : p.params)
            if (param.name == "charset") charset = param.value;
        if (!out.empty()) out.push_back('\n');
        // At most 4 bytes out per byte in (U+FFFD for every byte is 3; a few iconv charsets
        // make several characters of one byte, which the bound cuts).
        std::size_t max_growth = 4 * raw.size();
        if (resolve_charset(charset).first == CharsetKind::utf8 ||
            !converter.convert(charset, bytes, out, max_growth))
            out.append(bytes);  // us-ascii, UTF-8 and unknown charsets: the bytes as they are
    }
};

}  // namespace

std::string decode_header_value(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    Converter converter;

    // A run of adjacent encoded words (only white space between them) in one charset is
    // converted as one: a multi-byte character may be split across words.
    std::string run_charset, run_bytes;
    std::size_t run_begin = 0, run_end = 0;  // raw range of the run's words
    bool in_run = false;
    auto flush = [&] {
        if (!in_run) return;
        if (!converter.convert(run_charset, run_bytes, out, 4 * (run_end - run_begin)))
            out.append(raw.substr(run_begin, run_end - run_begin));  // unknown charset: as written
        in_run = false;
        run_bytes.clear();
    };

    std::size_t done = 0;  // raw[0..done) is in out (or in the run)
    std::size_t p = 0;
    while ((p = raw.find("=?", p)) != std::string_view::npos) {
        auto w = parse_encoded_word(raw, p);
        if (!w) {
            ++p;
            continue;
        }
        std::string_view between = raw.substr(done, p - done);
        bool adjacent = in_run && between.find_first_not_of(" \t\r\n") == std::string_view::npos;
        if (!adjacent) {
            flush();
            out.append(between);
        }
        if (in_run && !ascii_iequals(run_charset, w->charset)) flush();
        if (!in_run) {
            in_run = true;
            run_charset.assign(w->charset);
            run_begin = p;
        }
        run_bytes += w->bytes;
        run_end = w->end;
        done = p = w->end;
    }
    flush();
    out.append(raw.substr(done));
    return out;
}

std::optional<Date> header_date(std::string_view v) {
    std::size_t i = skip_cfws(v, 0);
    // [ day-of-week "," ]
    if (i < v.size() && is_alpha(v[i])) {
        std::size_t j = i;
        if (name_index(take_alpha(v, j), kWeekdays) < 0) return std::nullopt;
        j = skip_cfws(v, j);
        if (j >= v.size() || v[j] != ',') return std::nullopt;
        i = skip_cfws(v, j + 1);
    }
    // day month year
    int day = take_number(v, i, 2);
    if (day < 1) return std::nullopt;
    i = skip_cfws(v, i);
    int month = name_index(take_alpha(v, i), kMonths) + 1;
    if (month < 1) return std::nullopt;
    i = skip_cfws(v, i);
    std::size_t digits = 0;
    int year = take_number(v, i, 4, &digits);
    if (year < 0 || digits < 2) return std::nullopt;
    if (digits == 2) year += year < 50 ? 2000 : 1900;  // RFC 5322 4.3
    else if (digits == 3) year += 1900;
    else if (year < 1900) return std::nullopt;  // RFC 5322 3.3
    // time-of-day: hour ":" minute [ ":" second ], CFWS allowed around the colons (4.3). The
    // zone and anything after it do not change the day as written.
    if (i < v.size() && !is_wsp(v[i]) && v[i] != '(') return std::nullopt;
    i = skip_cfws(v, i);
    int hour = take_number(v, i, 2);
    i = skip_cfws(v, i);
    if (hour < 0 || hour > 23 || i >= v.size() || v[i] != ':') return std::nullopt;
    i = skip_cfws(v, i + 1);
    int minute = take_number(v, i, 2);
    if (minute < 0 || minute > 59) return std::nullopt;
    std::size_t k = skip_cfws(v, i);
    if (k < v.size() && v[k] == ':') {
        k = skip_cfws(v, k + 1);
        int second = take_number(v, k, 2);
        if (second < 0 || second > 60) return std::nullopt;
    }
    using namespace std::chrono;
    if (!year_month_day{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                        std::chrono::day{static_cast<unsigned>(day)}}
             .ok())
        return std::nullopt;
    return Date{year, month, day};
}

std::string body_text(std::string_view message, const mime::Message& parsed) {
    BodyWalker walker{message, {}, {}};
    walker.part(parsed.body);
    return std::move(walker.out);
}

bool contains_text(std::string_view haystack, std::string_view needle) {
    if (needle.empty()) return true;
    // A character takes at most 4 bytes: a haystack of fewer bytes than the needle has
    // characters can't hold it. Checked before any work on the needle, so that a caller trying
    // one long needle against many short values (SEARCH TEXT against each header field) does
    // work in proportion to the values, not to the needle times their number.
    if (haystack.size() < (needle.size() + 3) / 4) return false;
    // Knuth-Morris-Pratt over folded code points: O(haystack + needle) time, and only the
    // needle is held as code points.
    std::vector<char32_t> pat;
    pat.reserve(needle.size());
    for (std::size_t i = 0; i < needle.size();) pat.push_back(next_folded(needle, i));
    std::vector<std::size_t> fail(pat.size(), 0);  // longest proper border of pat[0..q]
    for (std::size_t q = 1, k = 0; q < pat.size(); ++q) {
        while (k > 0 && pat[q] != pat[k]) k = fail[k - 1];
        if (pat[q] == pat[k]) ++k;
        fail[q] = k;
    }
    std::size_t matched = 0;
    for (std::size_t i = 0; i < haystack.size();) {
        char32_t c = next_folded(haystack, i);
        while (matched > 0 && c != pat[matched]) matched = fail[matched - 1];
        if (c == pat[matched] && ++matched == pat.size()) return true;
    }
    return false;
}

}  // namespace pillarbox::imap
