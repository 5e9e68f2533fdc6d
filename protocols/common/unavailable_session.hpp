// Stand-in session for protocols that have not landed yet: it answers every connection with the
// protocol's own "service not available" reply and closes. No fake protocol behaviour.
#pragma once
#include <memory>

#include "server/protocol_registry.hpp"
#include "server/session.hpp"

namespace pillarbox::protocols {

// goodbye: the protocol's lines (its registry entry's).
std::unique_ptr<Session> make_unavailable_session(SessionIo& io, GoodbyeText goodbye);

}  // namespace pillarbox::protocols
