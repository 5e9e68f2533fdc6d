// Postfix's table and list text grammar, shared by the SMTP access tables and the alias import:
// '#' comment lines and blank lines skipped, a line starting with whitespace continues the
// previous logical line, CR before LF dropped.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace pillarbox::table {

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

inline std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

struct Line {
    int number = 0;    // first physical line of the logical line
    std::string text;  // continuation lines appended with their leading whitespace
    // The line started with whitespace but nothing came before it to continue: it stands as a
    // line of its own here; a reader may report it.
    bool orphan_continuation = false;
};

inline std::vector<Line> logical_lines(std::string_view text) {
    std::vector<Line> out;
    int number = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++number;
        if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
        std::string_view t = trim(raw);
        if (t.empty() || t.front() == '#') continue;
        if (is_space(raw.front()) && !out.empty()) {
            // Keep the leading whitespace: it separates words, and /x patterns ignore it.
            while (!raw.empty() && is_space(raw.back())) raw.remove_suffix(1);
            out.back().text += raw;
            continue;
        }
        out.push_back(Line{number, std::string(t), is_space(raw.front())});
    }
    return out;
}

}  // namespace pillarbox::table
