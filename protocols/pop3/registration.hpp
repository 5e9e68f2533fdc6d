// POP3 as the server sees it: its registry entry (listener word, log name, idle timeout, session
// factory) and its goodbye lines.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "protocols/pop3/session.hpp"
#include "server/protocol_registry.hpp"

namespace pillarbox::pop3 {

// RFC 2449 section 8.1.2: [SYS/TEMP] marks a temporary server-side problem. POP3's lines don't
// name the host.
std::string goodbye(Goodbye why, std::string_view hostname);

// services: filled by the composition root before the first connection is served.
ProtocolEntry registration(std::shared_ptr<Services> services);

}  // namespace pillarbox::pop3
