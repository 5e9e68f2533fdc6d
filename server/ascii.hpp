// Locale-free ASCII case mapping and comparison: mail protocols' rule for verbs, domains,
// mechanism names and IMAP flags (std::tolower would follow the process locale).
#pragma once
#include <string>
#include <string_view>

namespace pillarbox {

inline char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
inline char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

inline std::string ascii_lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r) c = ascii_lower(c);
    return r;
}

inline std::string ascii_upper(std::string_view s) {
    std::string r(s);
    for (auto& c : r) c = ascii_upper(c);
    return r;
}

inline bool ascii_iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

// 0..15 for a hex digit (either case), -1 otherwise.
inline int ascii_hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

}  // namespace pillarbox
