// The SMTP server session (RFC 5321 with ESMTP extensions): MX on 25, submission on 587/465.
// One state machine per connection over the bytes the Connection hands it; recipients,
// policy, authentication and delivery are asynchronous and park the session meanwhile.
#pragma once
#include <asio/io_context.hpp>

#include <map>
#include <memory>

#include "server/session.hpp"

namespace pillarbox { class WorkerPool; }
namespace pillarbox::auth { class Authentication; class AccountsDb; }
namespace pillarbox::dns { class Resolver; }
namespace pillarbox::storage { class Mailboxes; }
namespace pillarbox::storage::queue { class Queue; }
namespace pillarbox::smtp::policy { struct PolicySettings; }
namespace pillarbox::config { class Config; }

namespace pillarbox::smtp {

// What SMTP sessions share; filled by `pillarbox serve` once the services exist.
struct Services {
    asio::io_context* loop = nullptr;
    WorkerPool* workers = nullptr;
    storage::Mailboxes* store = nullptr;
    storage::queue::Queue* queue = nullptr;
    auth::Authentication* auth = nullptr;
    std::shared_ptr<auth::AccountsDb> accounts;
    dns::Resolver* dns = nullptr;  // null: DNS checks answer as temporary failures

    // Restriction lists and tables, loaded on a worker the first time a connection needs them
    // (they read files). Keyed by the values of the policy parameters (listeners with the same
    // policy share one); emptied on reload so edited tables are read again.
    std::map<std::string, std::shared_ptr<const policy::PolicySettings>> policies;
};

std::unique_ptr<Session> make_session(SessionIo& io, std::shared_ptr<Services> services);

// The cache key of a listener config's policy: its policy parameters' values.
std::string policy_key(const config::Config& c);

}  // namespace pillarbox::smtp
