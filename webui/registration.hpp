// The web UI's HTTP listener as the server sees it: its registry entry and goodbye responses.
// Until the HTTP session lands the entry's sessions answer 503 and close.
#pragma once
#include <string>
#include <string_view>

#include "server/protocol_registry.hpp"

namespace pillarbox::webui {

// 503 responses with Retry-After; empty for an idle timeout (HTTP just closes).
std::string goodbye(Goodbye why, std::string_view hostname);

ProtocolEntry registration();

}  // namespace pillarbox::webui
