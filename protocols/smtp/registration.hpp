// SMTP as the server sees it: its registry entry (listener word, log name, idle timeout, session
// factory, listener check) and its goodbye lines.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "protocols/smtp/session.hpp"
#include "server/protocol_registry.hpp"

namespace pillarbox::smtp {

// RFC 5321 section 3.8: 421 may be sent at any time when the server must close.
std::string goodbye(Goodbye why, std::string_view hostname);

// services: filled by the composition root before the first connection is served.
ProtocolEntry registration(std::shared_ptr<Services> services);

}  // namespace pillarbox::smtp
