// The lines each protocol uses to turn a client away or say goodbye: too many connections,
// shutting down, idle timeout, service not available. Shared by the placeholder session and the
// real sessions as they land.
#pragma once
#include <string>
#include <string_view>

#include "server/listener_def.hpp"

namespace pillarbox::protocols {

enum class Goodbye { TooManyConnections, ShuttingDown, IdleTimeout, NotAvailable };

// The complete reply, CRLF-terminated, for `protocol`; hostname is myhostname.
std::string goodbye(config::Protocol protocol, Goodbye why, std::string_view hostname);

}  // namespace pillarbox::protocols
