// aliases(5) and virtual(5) parsing for the alias import.
#include "auth/aliases_file.hpp"
#include "server/ascii.hpp"
#include "server/table_text.hpp"

#include <fmt/format.h>

namespace pillarbox::auth {

namespace {

using table::trim;
bool blank(char c) { return table::is_space(c); }

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
    for (auto& line : table::logical_lines(text)) {
        if (line.orphan_continuation) {
            out.problems.push_back(fmt::format("line {}: continuation line without an entry", line.number));
            continue;
        }
        parse_entry(line.number, line.text, out);
    }
    return out;
}

}  // namespace pillarbox::auth
