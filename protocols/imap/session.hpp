// The IMAP server session (RFC 9051 IMAP4rev2 and RFC 3501 IMAP4rev1, with the extensions
// docs/imap.md lists) on imap (143, STARTTLS) and imaps (993, implicit TLS). Authentication goes
// through the shared Authenticator, mailboxes through storage::Mailboxes.
#pragma once
#include <asio/io_context.hpp>

#include <map>
#include <memory>
#include <string>

#include "server/session.hpp"

namespace pillarbox::auth { class Authentication; }
namespace pillarbox::storage { class Mailboxes; }

namespace pillarbox::imap {

// What IMAP sessions share; filled by `pillarbox serve` once the services exist. Loop thread.
struct Services {
    asio::io_context* loop = nullptr;
    storage::Mailboxes* store = nullptr;
    auth::Authentication* auth = nullptr;
    // Logged-in sessions per "account ip" (mail_max_userip_connections).
    std::map<std::string, unsigned> userip;
};

std::unique_ptr<Session> make_session(SessionIo& io, std::shared_ptr<Services> services);

}  // namespace pillarbox::imap
