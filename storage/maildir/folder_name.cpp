// Mailbox name ↔ Maildir++ directory mapping and modified UTF-7 (see folder_name.hpp).
#include "folder_name.hpp"

#include "storage/maildir/ascii.hpp"

#include <cstdint>
#include <fmt/format.h>
#include <vector>

namespace pillarbox::storage::maildir {
namespace {

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == ',') return 63;
    return -1;
}

bool is_direct(char32_t cp) { return cp >= 0x20 && cp <= 0x7e; }

// Strict UTF-8 → code points (RFC 3629).
bool decode_utf8(std::string_view s, std::vector<char32_t>& out) {
    for (std::size_t i = 0; i < s.size();) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        char32_t cp;
        int extra;
        char32_t min;
        if (c < 0x80) { cp = c; extra = 0; min = 0; }
        else if ((c & 0xe0) == 0xc0) { cp = c & 0x1f; extra = 1; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { cp = c & 0x0f; extra = 2; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { cp = c & 0x07; extra = 3; min = 0x10000; }
        else return false;
        if (s.size() - i <= static_cast<std::size_t>(extra)) return false;
        for (int k = 1; k <= extra; ++k) {
            unsigned char cc = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
            if ((cc & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        out.push_back(cp);
        i += static_cast<std::size_t>(extra) + 1;
    }
    return true;
}

void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

void flush_base64(std::string& out, std::vector<std::uint16_t>& units) {
    if (units.empty()) return;
    out += '&';
    std::uint32_t bits = 0;
    int nbits = 0;
    for (std::uint16_t u : units) {
        bits = (bits << 16) | u;
        nbits += 16;
        while (nbits >= 6) {
            nbits -= 6;
            out += kBase64[(bits >> nbits) & 0x3f];
        }
        bits &= (1u << nbits) - 1;
    }
    if (nbits > 0) out += kBase64[(bits << (6 - nbits)) & 0x3f];
    out += '-';
    units.clear();
}


// The characters that cannot stand for themselves in one level of a directory name.
bool needs_escape(char c, bool first_of_name) {
    return c == '.' || c == '/' || c == '\\' || (first_of_name && c == '~');
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::optional<std::string> mutf7_encode(std::string_view utf8) {
    std::vector<char32_t> cps;
    if (!decode_utf8(utf8, cps)) return std::nullopt;
    std::string out;
    std::vector<std::uint16_t> units;
    for (char32_t cp : cps) {
        if (is_direct(cp)) {
            flush_base64(out, units);
            if (cp == '&') out += "&-";
            else out += static_cast<char>(cp);
        } else if (cp < 0x10000) {
            units.push_back(static_cast<std::uint16_t>(cp));
        } else {
            char32_t v = cp - 0x10000;
            units.push_back(static_cast<std::uint16_t>(0xd800 | (v >> 10)));
            units.push_back(static_cast<std::uint16_t>(0xdc00 | (v & 0x3ff)));
        }
    }
    flush_base64(out, units);
    return out;
}

std::optional<std::string> mutf7_decode(std::string_view s) {
    std::string out;
    bool after_run = false;  // the previous token was a base64 run
    std::size_t i = 0;
    while (i < s.size()) {
        char c = s[i];
        if (!is_direct(static_cast<unsigned char>(c))) return std::nullopt;
        if (c != '&') {
            out += c;
            ++i;
            after_run = false;
            continue;
        }
        ++i;
        if (i < s.size() && s[i] == '-') {
            out += '&';
            ++i;
            after_run = false;
            continue;
        }
        // Two runs in a row would be a second spelling of one run.
        if (after_run) return std::nullopt;
        std::uint32_t bits = 0;
        int nbits = 0;
        char16_t high = 0;  // pending high surrogate
        while (true) {
            if (i >= s.size()) return std::nullopt;  // no closing '-'
            char b = s[i++];
            if (b == '-') break;
            int v = base64_value(b);
            if (v < 0) return std::nullopt;
            bits = (bits << 6) | static_cast<std::uint32_t>(v);
            nbits += 6;
            if (nbits < 16) continue;
            nbits -= 16;
            auto unit = static_cast<char16_t>((bits >> nbits) & 0xffff);
            bits &= (1u << nbits) - 1;
            if (high != 0) {
                if (unit < 0xdc00 || unit > 0xdfff) return std::nullopt;
                append_utf8(out, 0x10000 + ((static_cast<char32_t>(high) - 0xd800) << 10) + (unit - 0xdc00));
                high = 0;
            } else if (unit >= 0xd800 && unit <= 0xdbff) {
                high = unit;
            } else if (unit >= 0xdc00 && unit <= 0xdfff) {
                return std::nullopt;
            } else {
                if (is_direct(unit)) return std::nullopt;
                append_utf8(out, unit);
            }
        }
        // A whole unused base64 character, or set padding bits, is another spelling of the same
        // text; a run that yields nothing ("&-" aside, handled above) cannot happen here.
        if (high != 0 || nbits >= 6 || bits != 0) return std::nullopt;
        after_run = true;
    }
    return out;
}

bool is_supported_separator(char separator) { return separator == '/' || separator == '.'; }

bool is_inbox(std::string_view name) { return iequals(name, "INBOX"); }

std::string normalize_mailbox_name(std::string_view name, char separator) {
    if (name.size() >= 5 && is_inbox(name.substr(0, 5)) && (name.size() == 5 || name[5] == separator))
        return "INBOX" + std::string(name.substr(5));
    return std::string(name);
}

std::optional<std::string> mailbox_name_error(std::string_view name, char separator) {
    if (!is_supported_separator(separator)) return fmt::format("unsupported hierarchy separator '{}'", separator);
    if (name.empty()) return "mailbox name is empty";
    std::vector<char32_t> cps;
    if (!decode_utf8(name, cps)) return "mailbox name is not valid UTF-8";
    for (char32_t cp : cps) {
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return "mailbox name contains a control character";
        if (cp == '*' || cp == '%') return "mailbox name contains a LIST wildcard (* or %)";
    }
    if (name.front() == separator || name.back() == separator)
        return fmt::format("mailbox name begins or ends with the hierarchy separator '{}'", separator);
    std::size_t start = 0;
    while (start <= name.size()) {
        std::size_t end = std::min(name.find(separator, start), name.size());
        std::string_view level = name.substr(start, end - start);
        if (level.empty()) return "mailbox name has an empty hierarchy level";
        if (level == "." || level == "..") return "'.' and '..' cannot be mailbox names";
        start = end + 1;
    }
    return std::nullopt;
}

Checked<std::string> mailbox_to_folder_dir(std::string_view name, char separator) {
    using R = Checked<std::string>;
    if (auto error = mailbox_name_error(name, separator)) return R::fail(std::move(*error));
    std::string norm = normalize_mailbox_name(name, separator);
    if (norm == "INBOX") return R::ok("");
    std::string dir;
    std::size_t start = 0;
    bool first = true;
    while (start <= norm.size()) {
        std::size_t end = std::min(norm.find(separator, start), norm.size());
        auto encoded = mutf7_encode(std::string_view(norm).substr(start, end - start));
        if (!encoded) return R::fail("mailbox name is not valid UTF-8");  // checked above; kept for safety
        dir += '.';
        for (char c : *encoded) {
            if (needs_escape(c, first)) dir += fmt::format("\\{:02x}", static_cast<unsigned char>(c));
            else dir += c;
            first = false;
        }
        start = end + 1;
    }
    if (dir.size() > kMaxFolderDirLength) return R::fail("mailbox name is too long");
    return R::ok(std::move(dir));
}

std::optional<std::string> folder_dir_to_mailbox(std::string_view dir, char separator) {
    if (!is_supported_separator(separator)) return std::nullopt;
    if (dir.size() < 2 || dir.size() > kMaxFolderDirLength || dir.front() != '.') return std::nullopt;
    std::string name;
    std::size_t start = 1;
    while (start <= dir.size()) {
        std::size_t end = std::min(dir.find('.', start), dir.size());
        std::string_view level = dir.substr(start, end - start);
        if (level.empty()) return std::nullopt;
        std::string unescaped;
        for (std::size_t i = 0; i < level.size(); ++i) {
            if (level[i] != '\\') {
                unescaped += level[i];
                continue;
            }
            if (i + 2 >= level.size()) return std::nullopt;
            int hi = hex_value(level[i + 1]), lo = hex_value(level[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            unescaped += static_cast<char>(hi * 16 + lo);
            i += 2;
        }
        auto decoded = mutf7_decode(unescaped);
        if (!decoded) return std::nullopt;
        if (start > 1) name += separator;
        name += *decoded;
        start = end + 1;
    }
    // Only names we would write ourselves, so that the mapping is one-to-one both ways.
    auto back = mailbox_to_folder_dir(name, separator);
    if (!back || *back.value != dir) return std::nullopt;
    return name;
}

}  // namespace pillarbox::storage::maildir
