// aliases(5) and virtual(5) parsing for the alias import.
#include "auth/aliases_file.hpp"
#include "server/ascii.hpp"

#include <fmt/format.h>

namespace pillarbox::auth {

namespace {

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return s;
}

bool plausible(std::string_view a) {
    if (a.empty() || a.size() > 254) return false;
    for (unsigned char c : a)
        if (c <= ' ' || c == 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == ';' || c == ':') return false;
    auto at = a.find('@');
    if (at != std::string_view::npos && (a.find('@', at + 1) != std::string_view::npos || at + 1 == a.size())) return false;
    return true;
}

void parse_entry(int line, std::string_view text, ParsedAliases& out) {
    // The key ends at the first blank or colon; a colon marks aliases(5).
    std::size_t i = 0;
    std::string key;
    if (!text.empty() && text.front() == '"') {
        auto close = text.find('"', 1);
        if (close == std::string_view::npos) {
            out.problems.push_back(fmt::format("line {}: unterminated quoted name", line));
            return;
        }
        key = std::string(text.substr(1, close - 1));
        i = close + 1;
    } else {
        while (i < text.size() && !blank(text[i]) && text[i] != ':') ++i;
        key = std::string(text.substr(0, i));
    }
    std::string_view rest = text.substr(i);
    rest = trim(rest);
    bool aliases_form = !rest.empty() && rest.front() == ':';
    if (aliases_form) rest.remove_prefix(1);
    key = ascii_lower(trim(key));
    if (key.empty() || !plausible(key) || (key.front() == '@' && key.size() == 1)) {
        out.problems.push_back(fmt::format("line {}: bad name '{}'", line, key));
        return;
    }
    AliasEntry e;
    e.line = line;
    e.source = key;
    std::string cur;
    auto flush = [&] {
        auto t = std::string(trim(cur));
        cur.clear();
        if (t.empty()) return;
        if (t.front() == '|' || t.front() == '/' || t.rfind(":include:", 0) == 0) {
            out.problems.push_back(fmt::format("line {}: {}: pipes, files and :include: are not supported; target skipped", line, key));
            return;
        }
        if (t.size() > 2 && t.front() == '<' && t.back() == '>') t = t.substr(1, t.size() - 2);
        if (!plausible(t)) {
            out.problems.push_back(fmt::format("line {}: {}: bad target '{}'", line, key, t));
            return;
        }
        e.targets.push_back(ascii_lower(t));
    };
    bool quoted = false;
    for (char c : rest) {
        if (c == '"') quoted = !quoted;
        if (!quoted && (c == ',' || (!aliases_form && blank(c)))) {
            flush();
            continue;
        }
        cur += c;
    }
    flush();
    if (e.targets.empty()) {
        out.problems.push_back(fmt::format("line {}: {}: no usable target", line, key));
        return;
    }
    out.entries.push_back(std::move(e));
}

}  // namespace

ParsedAliases parse_alias_file(std::string_view text) {
    ParsedAliases out;
    std::string entry;
    int entry_line = 0, line_no = 0;
    auto finish = [&] {
        if (!entry.empty()) parse_entry(entry_line, trim(entry), out);
        entry.clear();
    };
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        auto t = trim(line);
        if (t.empty() || t.front() == '#') continue;  // Postfix: comments and blank lines end nothing
        if (blank(line.front())) {
            if (entry.empty()) {
                out.problems.push_back(fmt::format("line {}: continuation line without an entry", line_no));
                continue;
            }
            entry += ' ';
            entry += t;
            continue;
        }
        finish();
        entry = std::string(t);
        entry_line = line_no;
    }
    finish();
    return out;
}

}  // namespace pillarbox::auth
