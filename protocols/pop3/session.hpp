// The POP3 server session (RFC 1939, RFC 2449 CAPA and response codes, RFC 2595 STLS, RFC 5034
// SASL, RFC 6856 UTF8) on pop3 (110, STLS) and pop3s (995, implicit TLS). The maildrop is the
// account's INBOX; authentication goes through the shared Authenticator.
#pragma once
#include <asio/io_context.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "server/session.hpp"

namespace pillarbox::auth { class Authentication; }
namespace pillarbox::storage { class Mailboxes; }

namespace pillarbox::pop3 {

// What POP3 sessions share; filled by `pillarbox serve` once the services exist. Loop thread.
struct Services {
    asio::io_context* loop = nullptr;
    storage::Mailboxes* store = nullptr;
    auth::Authentication* auth = nullptr;
    // Accounts with a POP3 session in TRANSACTION state (pop3_lock_session).
    std::set<std::string> locked;
    // When each account last logged in (pop3_login_delay); entries older than the delay are
    // pruned as it grows.
    std::map<std::string, std::chrono::steady_clock::time_point> last_login;
};

std::unique_ptr<Session> make_session(SessionIo& io, std::shared_ptr<Services> services);

}  // namespace pillarbox::pop3
