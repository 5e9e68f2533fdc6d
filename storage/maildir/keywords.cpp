// dovecot-keywords parsing, formatting and letter assignment (see keywords.hpp).
#include "keywords.hpp"

#include "storage/maildir/ascii.hpp"

#include <charconv>
#include <fmt/format.h>

namespace pillarbox::storage::maildir {
namespace {


bool writable_on_one_line(std::string_view name) {
    return !name.empty() && name.find_first_of("\r\n") == std::string_view::npos;
}

}  // namespace

bool is_valid_keyword(std::string_view keyword) {
    if (keyword.empty()) return false;
    for (char ch : keyword) {
        unsigned char c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7f) return false;  // CTL, SP and 8-bit are not ATOM-CHARs
        switch (c) {
            case '(': case ')': case '{': case '%': case '*': case '"': case '\\': case ']':
                return false;
            default: break;
        }
    }
    return true;
}

char keyword_letter(int index) { return static_cast<char>('a' + index); }

std::optional<int> keyword_index(char letter) {
    if (letter < 'a' || letter > 'z') return std::nullopt;
    return letter - 'a';
}

std::optional<int> KeywordTable::find(std::string_view keyword) const {
    for (int i = 0; i < kMaxKeywordLetters; ++i)
        if (!names[i].empty() && iequals(names[i], keyword)) return i;
    return std::nullopt;
}

std::optional<std::string_view> KeywordTable::name_for_letter(char letter) const {
    auto i = keyword_index(letter);
    if (!i || names[*i].empty()) return std::nullopt;
    return std::string_view(names[*i]);
}

int KeywordTable::count() const {
    int n = 0;
    for (const auto& name : names) n += name.empty() ? 0 : 1;
    return n;
}

ParsedKeywords parse_keywords(std::string_view text) {
    ParsedKeywords out;
    // A file of junk lines must not turn into a larger list of messages.
    constexpr std::size_t kMaxProblems = 20;
    std::size_t suppressed = 0;
    auto problem = [&](std::string message) {
        if (out.problems.size() < kMaxProblems) out.problems.push_back(std::move(message));
        else ++suppressed;
    };
    std::size_t line_no = 0;
    while (!text.empty()) {
        std::size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;

        std::size_t space = line.find(' ');
        if (space == std::string_view::npos) {
            problem(fmt::format("line {}: not \"N name\"", line_no));
            continue;
        }
        std::string_view num = line.substr(0, space), name = line.substr(space + 1);
        unsigned index = 0;
        auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), index);
        if (num.empty() || ec != std::errc{} || p != num.data() + num.size()) {
            problem(fmt::format("line {}: bad index", line_no));
            continue;
        }
        if (index >= static_cast<unsigned>(kMaxKeywordLetters)) {
            problem(fmt::format("line {}: index {} is past 'z'", line_no, index));
            continue;
        }
        if (name.empty()) {
            problem(fmt::format("line {}: empty keyword", line_no));
            continue;
        }
        if (!is_valid_keyword(name)) problem(fmt::format("line {}: not a valid IMAP keyword", line_no));
        auto& slot = out.table.names[index];
        if (!slot.empty()) problem(fmt::format("line {}: index {} given again", line_no, index));
        slot.clear();  // so find() below does not see the name being replaced
        if (auto other = out.table.find(name))
            problem(fmt::format("line {}: keyword also has letter '{}'", line_no, keyword_letter(*other)));
        slot = std::string(name);
    }
    if (suppressed > 0) out.problems.push_back(fmt::format("{} more problems", suppressed));
    return out;
}

std::string format_keywords(const KeywordTable& table) {
    std::string out;
    for (int i = 0; i < kMaxKeywordLetters; ++i)
        if (writable_on_one_line(table.names[i])) out += fmt::format("{} {}\n", i, table.names[i]);
    return out;
}

Assignment assign_keyword(KeywordTable& table, std::string_view keyword) {
    if (!is_valid_keyword(keyword)) return {AssignStatus::kInvalid};
    if (auto i = table.find(keyword)) return {AssignStatus::kExisting, *i};
    for (int i = 0; i < kMaxKeywordLetters; ++i) {
        if (table.names[i].empty()) {
            table.names[i] = std::string(keyword);
            return {AssignStatus::kAdded, i};
        }
    }
    return {AssignStatus::kFull};
}

}  // namespace pillarbox::storage::maildir
