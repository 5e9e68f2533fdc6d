// Postfix lookup-table text parsing and bounded PCRE2 matching for the policy module.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "protocols/smtp/policy/table_text.hpp"

#include <fmt/format.h>
#include <pcre2.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "server/ascii.hpp"

namespace pillarbox::smtp::policy::detail {

namespace {

// Bounds for one pcre2_match call, so a catastrophic pattern such as /^(\w+\s?)*$/ gives up
// instead of running for minutes on the single loop thread. Postfix keeps PCRE's default of
// 10,000,000 steps; measured here a step costs ~35 ns in the worst case, so that would stall
// the loop ~350 ms per header. 250,000 steps bounds it to ~10 ms while ordinary patterns
// (/^Subject:.*make money fast/ over a 4 KB header) need a few hundred. A rule that hits the
// limit counts as not matching and is reported as a problem for the log.
constexpr std::uint32_t kMatchLimit = 250'000;
constexpr std::uint32_t kDepthLimit = 10'000;      // nested backtracking frames
constexpr std::uint32_t kHeapLimitKiB = 8 * 1024;  // backtracking memory per match

pcre2_match_context* match_context() {
    // Read-only once built, so one shared context serves every thread.
    static pcre2_match_context* ctx = [] {
        pcre2_match_context* c = pcre2_match_context_create(nullptr);
        if (!c) throw std::bad_alloc();
        pcre2_set_match_limit(c, kMatchLimit);
        pcre2_set_depth_limit(c, kDepthLimit);
        pcre2_set_heap_limit(c, kHeapLimitKiB);
        return c;
    }();
    return ctx;
}

}  // namespace

void split_enhanced(std::string_view in, std::string& enhanced, std::string& text) {
    auto digits = [](std::string_view d) {
        if (d.empty() || d.size() > 3) return false;
        for (char c : d)
            if (c < '0' || c > '9') return false;
        return true;
    };
    auto sp = in.find_first_of(" \t");
    std::string_view first = in.substr(0, sp);
    bool ok = first.size() >= 5 && (first[0] == '2' || first[0] == '4' || first[0] == '5') && first[1] == '.';
    if (ok) {
        auto dot = first.find('.', 2);
        ok = dot != std::string_view::npos && digits(first.substr(2, dot - 2)) && digits(first.substr(dot + 1));
    }
    if (!ok) {
        enhanced.clear();
        text = std::string(in);
        return;
    }
    enhanced = std::string(first);
    text = sp == std::string_view::npos ? std::string() : std::string(trim(in.substr(sp)));
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(fmt::format("cannot open table {}: {}", path, std::strerror(errno)));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw std::runtime_error(fmt::format("cannot read table {}: {}", path, std::strerror(errno)));
    return ss.str();
}

std::optional<Regex> Regex::compile(std::string_view pattern, std::uint32_t options, std::string& error) {
    int code = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &code,
                                   &offset, nullptr);
    if (!re) {
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(code, buf, sizeof buf);
        error = fmt::format("{} at offset {}", reinterpret_cast<const char*>(buf), offset);
        return std::nullopt;
    }
    Regex r;
    r.code_ = std::shared_ptr<void>(re, [](void* p) { pcre2_code_free(static_cast<pcre2_code*>(p)); });
    return r;
}

Regex::Result Regex::match(std::string_view subject, std::vector<std::string>* groups) const {
    auto* re = static_cast<pcre2_code*>(code_.get());
    if (!re) return Result::NoMatch;
    std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> md(
        pcre2_match_data_create_from_pattern(re, nullptr), pcre2_match_data_free);
    if (!md) throw std::bad_alloc();
    int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0, 0, md.get(),
                         match_context());
    if (rc == PCRE2_ERROR_NOMATCH) return Result::NoMatch;
    if (rc < 0) return Result::Limit;  // match/depth/heap limit, or another resource error
    if (groups) {
        groups->clear();
        PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
        std::uint32_t n = pcre2_get_ovector_count(md.get());
        for (std::uint32_t i = 0; i < n; ++i) {
            if (ov[2 * i] == PCRE2_UNSET) groups->emplace_back();
            else groups->emplace_back(subject.substr(ov[2 * i], ov[2 * i + 1] - ov[2 * i]));
        }
    }
    return Result::Match;
}

std::string substitute(std::string_view t, const std::vector<std::string>& groups) {
    std::string out;
    for (std::size_t i = 0; i < t.size(); ++i) {
        if (t[i] != '$' || i + 1 >= t.size()) { out += t[i]; continue; }
        char n = t[i + 1];
        if (n == '$') { out += '$'; ++i; continue; }
        std::size_t start = i + 1, end = start;
        char close = 0;
        if (n == '{' || n == '(') { close = n == '{' ? '}' : ')'; ++start; end = start; }
        while (end < t.size() && end - start < 2 && t[end] >= '0' && t[end] <= '9') ++end;
        if (end == start || (close && (end >= t.size() || t[end] != close))) { out += t[i]; continue; }
        std::size_t idx = static_cast<std::size_t>(std::stoi(std::string(t.substr(start, end - start))));
        if (idx < groups.size()) out += groups[idx];
        i = close ? end : end - 1;
    }
    return out;
}

namespace {

// "[!]<d>pattern<d>flags" at the start of s; returns the rest after the flags.
std::optional<std::string_view> parse_pattern(std::string_view s, RegexRule& rule, std::string& error) {
    if (!s.empty() && s.front() == '!') { rule.negate = true; s.remove_prefix(1); }
    if (s.empty() || is_space(s.front()) || (s.front() >= '0' && s.front() <= '9') ||
        (ascii_lower(s.front()) >= 'a' && ascii_lower(s.front()) <= 'z') || s.front() == '\\') {
        error = "pattern must start with a delimiter such as '/'";
        return std::nullopt;
    }
    char d = s.front();
    std::size_t i = 1;
    for (; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) { ++i; continue; }
        if (s[i] == d) break;
    }
    if (i >= s.size()) {
        error = fmt::format("missing closing '{}'", d);
        return std::nullopt;
    }
    std::string_view pattern = s.substr(1, i - 1);
    s.remove_prefix(i + 1);
    // Postfix's defaults: case-insensitive, and '.' matches newlines; each flag toggles.
    std::uint32_t opts = PCRE2_CASELESS | PCRE2_DOTALL;
    while (!s.empty() && !is_space(s.front())) {
        switch (s.front()) {
            case 'i': opts ^= PCRE2_CASELESS; break;
            case 'm': opts ^= PCRE2_MULTILINE; break;
            case 's': opts ^= PCRE2_DOTALL; break;
            case 'x': opts ^= PCRE2_EXTENDED; break;
            case 'A': opts ^= PCRE2_ANCHORED; break;
            case 'E': opts ^= PCRE2_DOLLAR_ENDONLY; break;
            case 'U': opts ^= PCRE2_UNGREEDY; break;
            case 'X': break;  // PCRE1's "extra" strictness is always on in PCRE2
            default:
                error = fmt::format("unknown flag '{}'", s.front());
                return std::nullopt;
        }
        s.remove_prefix(1);
    }
    auto re = Regex::compile(pattern, opts, error);
    if (!re) return std::nullopt;
    rule.re = std::move(*re);
    return s;
}

}  // namespace

RegexTable RegexTable::parse(std::string_view text, const std::string& name, std::vector<std::string>& problems,
                             const Validator& validate) {
    RegexTable t;
    t.name = name;
    std::vector<std::size_t> open_ifs;
    for (auto& line : logical_lines(text)) {
        auto problem = [&](const std::string& what) {
            problems.push_back(fmt::format("{}:{}: {}; line skipped", name, line.number, what));
        };
        std::string_view s = line.text;
        RegexRule rule;
        rule.line = line.number;
        auto word_end = s.find_first_of(" \t");
        std::string_view word = s.substr(0, word_end);
        if (ascii_iequals(word, "endif")) {
            if (open_ifs.empty()) { problem("endif without if"); continue; }
            rule.kind = RegexRule::Kind::Endif;
            t.rules.push_back(std::move(rule));
            t.rules[open_ifs.back()].skip_to = t.rules.size();
            open_ifs.pop_back();
            continue;
        }
        bool is_if = ascii_iequals(word, "if") && word_end != std::string_view::npos;
        if (is_if) s = trim(s.substr(word_end));
        std::string error;
        auto rest = parse_pattern(s, rule, error);
        if (!rest) { problem(error); continue; }
        std::string_view value = trim(*rest);
        if (is_if) {
            if (!value.empty()) { problem("text after 'if' pattern"); continue; }
            rule.kind = RegexRule::Kind::If;
            open_ifs.push_back(t.rules.size());
        } else {
            if (value.empty()) { problem("missing result after pattern"); continue; }
            if (validate && !validate(value, error)) { problem(error); continue; }
            rule.value = std::string(value);
        }
        t.rules.push_back(std::move(rule));
    }
    for (auto i : open_ifs) {
        problems.push_back(fmt::format("{}:{}: missing endif", name, t.rules[i].line));
        t.rules[i].skip_to = t.rules.size();
    }
    return t;
}

std::optional<RegexTable::Hit> RegexTable::lookup(std::string_view subject, std::string* problem) const {
    // Postfix: empty input never matches (some table types mishandle empty keys).
    if (subject.empty()) return std::nullopt;
    std::vector<std::string> groups;
    for (std::size_t i = 0; i < rules.size();) {
        const RegexRule& r = rules[i];
        if (r.kind == RegexRule::Kind::Endif) { ++i; continue; }
        auto res = r.re.match(subject, r.negate ? nullptr : &groups);
        if (res == Regex::Result::Limit) {
            if (problem && problem->empty())
                *problem = fmt::format("{}:{}: regular expression exceeded the match limit; treated as no match",
                                       name, r.line);
            // A pattern we could not evaluate neither fires nor opens its if-block.
            i = r.kind == RegexRule::Kind::If ? r.skip_to : i + 1;
            continue;
        }
        bool hit = (res == Regex::Result::Match) != r.negate;
        if (r.kind == RegexRule::Kind::If) {
            i = hit ? i + 1 : r.skip_to;
            continue;
        }
        if (hit) {
            // Negated patterns have nothing to substitute (Postfix documents the same).
            return Hit{i, r.negate ? r.value : substitute(r.value, groups)};
        }
        ++i;
    }
    return std::nullopt;
}

}  // namespace pillarbox::smtp::policy::detail
