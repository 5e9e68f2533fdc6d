// IMAP as the server sees it: its registry entry and goodbye lines.
#pragma once
#include <string>
#include <string_view>

#include <memory>

#include "server/protocol_registry.hpp"

namespace pillarbox::imap {

// RFC 9051 section 7.1.5: BYE may be the greeting; UNAVAILABLE is RFC 5530's code.
std::string goodbye(Goodbye why, std::string_view hostname);

struct Services;

ProtocolEntry registration(std::shared_ptr<Services> services);

}  // namespace pillarbox::imap
