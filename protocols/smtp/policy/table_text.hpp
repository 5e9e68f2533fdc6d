// Internal to the policy module: the Postfix lookup-table text grammar (logical lines, regexp
// rules with if/endif) and a PCRE2 wrapper with match limits, shared by access maps and
// header_checks.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/table_text.hpp"

namespace pillarbox::smtp::policy::detail {

// Blocking read of a whole table file; throws std::runtime_error naming the path.
std::string read_file(const std::string& path);

// The table text grammar itself lives in server/table_text.hpp (the alias import reads it too).
using table::is_space;
using table::Line;
using table::logical_lines;
using table::trim;

// "5.7.1 text" -> enhanced "5.7.1", text "text"; without a leading RFC 3463 code, enhanced is
// empty and text is the whole input.
void split_enhanced(std::string_view in, std::string& enhanced, std::string& text);

// One compiled PCRE2 pattern. Matching is bounded (see kMatchLimit in the .cpp) so a
// catastrophic pattern returns Limit instead of holding the event loop.
class Regex {
public:
    static std::optional<Regex> compile(std::string_view pattern, std::uint32_t options, std::string& error);
    enum class Result { Match, NoMatch, Limit };
    // groups: $0..$n of the match (unset groups empty); only filled on Match.
    Result match(std::string_view subject, std::vector<std::string>* groups) const;

private:
    std::shared_ptr<void> code_;  // pcre2_code_8, freed by pcre2_code_free
};

// A regexp table (pcre_table(5) / regexp_table(5)): rules tried in order; "if /re/" ..
// "endif" blocks apply the inner rules only when the outer pattern (mis)matches.
struct RegexRule {
    enum class Kind { Match, If, Endif } kind = Kind::Match;
    Regex re;
    bool negate = false;
    std::size_t skip_to = 0;  // If: index after the matching Endif
    std::string value;        // Match: the result text (may hold $1 substitutions)
    int line = 0;
};

struct RegexTable {
    std::string name;
    std::vector<RegexRule> rules;
    // `validate` checks each rule's result text; a rule it refuses is skipped as a problem.
    using Validator = std::function<bool(std::string_view value, std::string& error)>;
    static RegexTable parse(std::string_view text, const std::string& name, std::vector<std::string>& problems,
                            const Validator& validate = {});

    struct Hit {
        std::size_t rule = 0;
        std::string value;  // with $n substituted
    };
    // nullopt: no rule matched. A pattern that hits the match limit counts as not matching;
    // `problem` then says which rule (and matching goes on with the next rule).
    std::optional<Hit> lookup(std::string_view subject, std::string* problem) const;
};

// $1, ${1}, $(1) replaced by groups; "$$" is a literal '$'.
std::string substitute(std::string_view templ, const std::vector<std::string>& groups);

}  // namespace pillarbox::smtp::policy::detail
