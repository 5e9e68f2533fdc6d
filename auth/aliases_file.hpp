// Parsers for Postfix alias files, for `pillarbox aliases import`: aliases(5) (/etc/aliases,
// "name: target, target") and virtual(5) (virtual_alias_maps, "pattern target, target"). Either
// form may appear line by line; continuation lines start with whitespace, as in Postfix.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace pillarbox::auth {

struct AliasEntry {
    int line = 0;
    std::string source;                // "name" (aliases(5)), "user@domain" or "@domain" (virtual(5))
    std::vector<std::string> targets;  // addresses or bare local names, lower case
};

struct ParsedAliases {
    std::vector<AliasEntry> entries;
    std::vector<std::string> problems;  // "line N: ..." for skipped entries and targets
};

ParsedAliases parse_alias_file(std::string_view text);

}  // namespace pillarbox::auth
