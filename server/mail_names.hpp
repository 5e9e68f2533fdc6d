// Which local parts and domain names may name an account, an alias or a hosted domain. One rule
// for the CLI, the account database, the recipient lookup and the store: a Maildir path is built
// from these names (DATA/mail/DOMAIN/LOCALPART), so a name the store would refuse must never get
// as far as the database, and the store checks again before it creates anything.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace pillarbox::names {

constexpr std::size_t kMaxLocalPart = 64;   // RFC 5321 4.5.3.1.1
constexpr std::size_t kMaxDomain = 255;     // RFC 5321 4.5.3.1.2
constexpr std::size_t kMaxLabel = 63;       // RFC 1035 2.3.4

// Empty when the name is acceptable, otherwise why not (for messages and the log).
// A local part: 1-64 bytes of UTF-8, no control characters, no space, none of "(),:;<>@[]\/,
// no leading or trailing dot and no two dots in a row (so never "." or "..").
std::string local_part_problem(std::string_view local_part);
// A domain: at most 255 bytes of UTF-8, dot-separated labels of 1-63 letters, digits, hyphens
// (not first or last) or non-ASCII characters (internationalised names); no address literals.
std::string domain_problem(std::string_view domain);
// localpart@domain, split at the last '@'.
std::string address_problem(std::string_view address);

inline bool valid_local_part(std::string_view s) { return local_part_problem(s).empty(); }
inline bool valid_domain(std::string_view s) { return domain_problem(s).empty(); }
inline bool valid_address(std::string_view s) { return address_problem(s).empty(); }

// Whether s is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view s);

}  // namespace pillarbox::names
