// ASCII case-insensitive comparison: IMAP's rule for flags, keywords and INBOX (locale-free).
#pragma once
#include <string_view>

#include "server/ascii.hpp"

namespace pillarbox::storage::maildir {

inline bool iequals(std::string_view a, std::string_view b) { return ascii_iequals(a, b); }

}  // namespace pillarbox::storage::maildir
