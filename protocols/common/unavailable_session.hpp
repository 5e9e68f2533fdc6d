// Stand-in session for protocols that have not landed yet: it answers every connection with the
// protocol's own "service not available" reply and closes. No fake protocol behaviour.
#pragma once
#include <memory>

#include "server/session.hpp"

namespace pillarbox::protocols {

std::unique_ptr<Session> make_unavailable_session(SessionIo& io);

}  // namespace pillarbox::protocols
