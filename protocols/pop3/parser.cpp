// POP3 command parsing and UIDL formatting (see parser.hpp).
#include "protocols/pop3/parser.hpp"

#include <fmt/format.h>

namespace pillarbox::pop3 {

namespace {

bool is_alnum(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

}  // namespace

std::optional<Command> parse_command(std::string_view line) {
    auto sp = line.find(' ');
    std::string_view verb = line.substr(0, sp);
    // RFC 1939 keywords are three or four characters; extensions (RFC 2449 section 4) up to
    // four as well, but be lenient up to eight so an unknown one gets "-ERR Unknown command".
    if (verb.empty() || verb.size() > 8) return std::nullopt;
    Command c;
    for (char ch : verb) {
        if (!is_alnum(ch)) return std::nullopt;
        c.verb += upper(ch);
    }
    if (sp != std::string_view::npos) c.args = std::string(line.substr(sp + 1));
    return c;
}

std::vector<std::string_view> split_args(std::string_view args) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < args.size()) {
        if (args[i] == ' ') {
            ++i;
            continue;
        }
        auto sp = args.find(' ', i);
        if (sp == std::string_view::npos) sp = args.size();
        out.push_back(args.substr(i, sp - i));
        i = sp;
    }
    return out;
}

std::optional<std::uint32_t> parse_number(std::string_view s) {
    if (s.empty() || s.size() > 10) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > 0xFFFFFFFFu) return std::nullopt;
    return static_cast<std::uint32_t>(v);
}

namespace {

// Walks a format; calls field(width, zero_pad, hex, upper, letter) for each %-field and
// literal(c) for other characters. False on a malformed or unknown field.
template <typename Field, typename Literal>
bool walk_format(std::string_view f, Field field, Literal literal) {
    for (std::size_t i = 0; i < f.size(); ++i) {
        if (f[i] != '%') {
            literal(f[i]);
            continue;
        }
        if (++i >= f.size()) return false;
        if (f[i] == '%') {
            literal('%');
            continue;
        }
        bool zero = false;
        if (f[i] == '0') {
            zero = true;
            ++i;
        }
        unsigned width = 0;
        while (i < f.size() && f[i] >= '0' && f[i] <= '9' && width < 100) width = width * 10 + static_cast<unsigned>(f[i++] - '0');
        bool hex = false, up = false;
        if (i < f.size() && (f[i] == 'X' || f[i] == 'x')) {
            hex = true;
            up = f[i] == 'X';
            ++i;
        }
        if (i >= f.size()) return false;
        char letter = f[i];
        if (letter != 'u' && letter != 'v' && letter != 'f') return false;
        if (letter == 'f' && hex) return false;
        field(width, zero, hex, up, letter);
    }
    return true;
}

}  // namespace

std::string format_uidl(std::string_view format, std::uint32_t uid, std::uint32_t uidvalidity, std::string_view file_base) {
    std::string out;
    bool ok = walk_format(
        format,
        [&](unsigned width, bool zero, bool hex, bool up, char letter) {
            std::string v;
            if (letter == 'f') v = std::string(file_base);
            else {
                std::uint32_t n = letter == 'u' ? uid : uidvalidity;
                // Dovecot's X modifier prints lower-case hex (var-expand.c: "%llx"); UIDLs are
                // compared exactly, so any other case would make clients download everything.
                (void)up;
                v = hex ? fmt::format("{:x}", n) : fmt::format("{}", n);
            }
            // Dovecot's var_expand: "%08Xu" pads with zeros to 8, "%2u" keeps the first 2.
            if (zero && v.size() < width) v.insert(0, width - v.size(), '0');
            else if (!zero && width && v.size() > width) v.resize(width);
            out += v;
        },
        [&](char c) { out += c; });
    if (!ok) out = fmt::format("{:08x}{:08x}", uid, uidvalidity);
    std::string clean;
    for (char c : out)
        if (c >= 0x21 && c <= 0x7E && clean.size() < 70) clean += c;
    return clean;
}

bool valid_uidl_format(std::string_view format) {
    bool identifies = false;
    bool ok = walk_format(
        format, [&](unsigned, bool, bool, bool, char letter) { identifies |= letter == 'u' || letter == 'f'; }, [](char) {});
    return ok && identifies;
}

}  // namespace pillarbox::pop3
