// The reasons a session says goodbye first. Each protocol's lines for them are its own (e.g.
// smtp::goodbye in protocols/smtp/registration.hpp); the registry (server/protocol_registry.hpp)
// holds them with the rest of what the server knows about a protocol.
#pragma once
#include "server/protocol_registry.hpp"

namespace pillarbox::protocols {

using Goodbye = pillarbox::Goodbye;

}  // namespace pillarbox::protocols
