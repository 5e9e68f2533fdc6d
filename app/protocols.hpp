// The protocol registry of this build: every protocol folder's registration(), with the shared
// state its sessions are handed (filled in by start_services once the services exist).
#pragma once
#include <memory>

#include "server/protocol_registry.hpp"

namespace pillarbox::smtp { struct Services; }
namespace pillarbox::pop3 { struct Services; }
namespace pillarbox::imap { struct Services; }

namespace pillarbox::app {

// What the sessions of each protocol share. Created empty; serve fills them before the first
// connection is served, check never does (it only reads the entries' listener checks).
struct SessionServices {
    std::shared_ptr<smtp::Services> smtp;
    std::shared_ptr<pop3::Services> pop3;
    std::shared_ptr<imap::Services> imap;
    static SessionServices make();
};

ProtocolRegistry protocol_registry(const SessionServices& sessions);

}  // namespace pillarbox::app
