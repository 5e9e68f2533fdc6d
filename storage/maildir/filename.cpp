// Maildir message file names (see filename.hpp).
#include "filename.hpp"

#include "storage/maildir/ascii.hpp"

#include <algorithm>
#include <charconv>
#include <fmt/format.h>

namespace pillarbox::storage::maildir {
namespace {

struct LetterFlag {
    char letter;
    std::string_view imap;
    SystemFlags bit;  // 0: not an IMAP system flag
};

// In ASCII order, so walking it yields sorted letters.
constexpr LetterFlag kLetters[] = {
    {'D', "\\Draft", system_flag::kDraft},
    {'F', "\\Flagged", system_flag::kFlagged},
    {'P', "$Forwarded", 0},
    {'R', "\\Answered", system_flag::kAnswered},
    {'S', "\\Seen", system_flag::kSeen},
    {'T', "\\Deleted", system_flag::kDeleted},
};


bool is_letter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

// Only the canonical spelling (no sign, no leading zeros) so that parse and format agree
// byte for byte; anything else stays an opaque field.
std::optional<std::uint64_t> canonical_number(std::string_view s) {
    if (s.empty() || (s.size() > 1 && s[0] == '0')) return std::nullopt;
    std::uint64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
    return n;
}

// Where the info part starts (the separator's position), or npos.
std::size_t info_position(std::string_view name, char info_sep) { return name.rfind(info_sep); }

}  // namespace

std::string escape_hostname(std::string_view hostname) {
    if (hostname.empty()) return "localhost";
    std::string out;
    out.reserve(hostname.size());
    for (char c : hostname) {
        switch (c) {
            case '/': out += "\\057"; break;
            case ':': out += "\\072"; break;
            case ',': out += "\\054"; break;
            case ';': out += "\\073"; break;
            default: out += c;
        }
    }
    return out;
}

std::string generate_base_name(const UniqueSource& source) {
    std::uint64_t secs = source.secs + source.usecs / 1'000'000;
    std::uint32_t usecs = source.usecs % 1'000'000;
    return fmt::format("{}.M{}P{}Q{}.{}", secs, usecs, source.pid, source.counter,
                       escape_hostname(source.hostname));
}

std::optional<char> letter_for_imap_flag(std::string_view imap_flag) {
    for (const auto& l : kLetters)
        if (iequals(imap_flag, l.imap)) return l.letter;
    return std::nullopt;
}

std::optional<std::string_view> imap_flag_for_letter(char letter) {
    for (const auto& l : kLetters)
        if (l.letter == letter) return l.imap;
    return std::nullopt;
}

SystemFlags system_flags_from_letters(std::string_view letters) {
    SystemFlags out = 0;
    for (char c : letters)
        for (const auto& l : kLetters)
            if (l.letter == c) out |= l.bit;
    return out;
}

std::string letters_for_system_flags(SystemFlags flags) {
    std::string out;
    for (const auto& l : kLetters)
        if (l.bit != 0 && (flags & l.bit)) out += l.letter;
    return out;
}

std::string normalize_flags(std::string_view letters) {
    std::string out(letters);
    std::sort(out.begin(), out.end(), [](char a, char b) { return static_cast<unsigned char>(a) < static_cast<unsigned char>(b); });
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

bool FileName::has_flag(char letter) const {
    return info == InfoKind::kFlags && flags.find(letter) != std::string::npos;
}

void FileName::set_flag(char letter, bool on) {
    if (!is_letter(letter) || has_flag(letter) == on) return;
    if (info != InfoKind::kFlags) {
        info = InfoKind::kFlags;
        flags.clear();
        info_rest.clear();
    }
    if (on) flags = normalize_flags(flags + letter);
    else flags.erase(flags.find(letter), 1);
}

SystemFlags FileName::system_flags() const {
    return info == InfoKind::kFlags ? system_flags_from_letters(flags) : 0;
}

void FileName::set_system_flags(SystemFlags f) {
    for (const auto& l : kLetters)
        if (l.bit != 0) set_flag(l.letter, (f & l.bit) != 0);
}

std::uint32_t FileName::keyword_mask() const {
    std::uint32_t mask = 0;
    if (info != InfoKind::kFlags) return 0;
    for (char c : flags)
        if (c >= 'a' && c <= 'z') mask |= 1u << (c - 'a');
    return mask;
}

void FileName::set_keyword_mask(std::uint32_t mask) {
    for (int i = 0; i < 26; ++i) set_flag(static_cast<char>('a' + i), (mask >> i) & 1u);
}

std::string_view base_of(std::string_view name, char info_sep) {
    std::string_view head = name.substr(0, std::min(info_position(name, info_sep), name.size()));
    return head.substr(0, std::min(head.find(','), head.size()));
}

std::optional<FileName> parse_file_name(std::string_view name, char info_sep) {
    if (name.empty() || name.size() > kMaxFileNameLength || name.front() == '.') return std::nullopt;
    if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) return std::nullopt;

    FileName out;
    std::size_t sep = info_position(name, info_sep);
    std::string_view head = name.substr(0, std::min(sep, name.size()));
    if (sep != std::string_view::npos) {
        std::string_view info = name.substr(sep + 1);
        if (info.size() >= 2 && info[0] == '2' && info[1] == ',') {
            out.info = InfoKind::kFlags;
            info.remove_prefix(2);
            std::size_t comma = std::min(info.find(','), info.size());
            out.flags = normalize_flags(info.substr(0, comma));
            out.info_rest = std::string(info.substr(comma));
        } else {
            out.info = (info.size() >= 2 && info[0] == '1' && info[1] == ',') ? InfoKind::kExperimental : InfoKind::kUnknown;
            out.info_rest = std::string(info);
        }
    }

    std::size_t comma = std::min(head.find(','), head.size());
    out.base = std::string(head.substr(0, comma));
    if (out.base.empty()) return std::nullopt;
    head.remove_prefix(comma);
    while (!head.empty()) {
        head.remove_prefix(1);  // the ','
        std::size_t next = std::min(head.find(','), head.size());
        std::string_view field = head.substr(0, next);
        head.remove_prefix(next);
        if (field.empty()) continue;  // ",," carries nothing worth keeping
        auto value = field.size() > 2 && field[1] == '=' ? canonical_number(field.substr(2)) : std::nullopt;
        if (value && field[0] == 'S' && !out.size) out.size = *value;
        else if (value && field[0] == 'W' && !out.vsize) out.vsize = *value;
        else if (value && field[0] == 'U' && !out.uid && *value >= 1 && *value <= UINT32_MAX)
            out.uid = static_cast<std::uint32_t>(*value);
        else out.other_fields.emplace_back(field);
    }
    return out;
}

std::string format_file_name(const FileName& name, char info_sep) {
    std::string out = name.base;
    if (name.size) out += fmt::format(",S={}", *name.size);
    if (name.vsize) out += fmt::format(",W={}", *name.vsize);
    if (name.uid) out += fmt::format(",U={}", *name.uid);
    for (const auto& f : name.other_fields) {
        out += ',';
        out += f;
    }
    switch (name.info) {
        case InfoKind::kNone: break;
        case InfoKind::kFlags:
            out += info_sep;
            out += "2,";
            out += name.flags;
            out += name.info_rest;
            break;
        case InfoKind::kExperimental:
        case InfoKind::kUnknown:
            out += info_sep;
            out += name.info_rest;
            break;
    }
    return out;
}

}  // namespace pillarbox::storage::maildir
