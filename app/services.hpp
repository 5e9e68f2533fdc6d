// The services the sessions share (mail store, outbound queue, DNS resolver, authenticator,
// pickup of released mail, the Dovecot-style auth socket), built once serve has loaded its
// configuration and bound its listeners, each by its own function.
#pragma once
#include <asio/io_context.hpp>

#include <memory>

#include "app/protocols.hpp"

namespace pillarbox { class Server; }
namespace pillarbox::config { class Config; }
namespace pillarbox::auth { class Authenticator; class DovecotAuthSocket; }
namespace pillarbox::dns { class Resolver; }
namespace pillarbox::smtp { class Pickup; }
namespace pillarbox::storage { class Store; }
namespace pillarbox::storage::queue { class Queue; }

namespace pillarbox::app {

// Lives until the loop ends; destroyed before the Server and the loop.
struct MailServices {
    std::unique_ptr<storage::Store> store;
    std::unique_ptr<storage::queue::Queue> queue;
    std::unique_ptr<dns::Resolver> dns;
    std::unique_ptr<auth::Authenticator> auth;
    std::unique_ptr<auth::DovecotAuthSocket> auth_socket;
    std::shared_ptr<smtp::Pickup> pickup;
    MailServices();
    ~MailServices();
};

// Builds the services and fills `sessions` with them. Quota, parser and auth changes take effect
// on restart. Throws std::exception (serve stops with its message).
std::shared_ptr<MailServices> start_services(asio::io_context& loop, Server& server, const config::Config& c,
                                             const SessionServices& sessions);

}  // namespace pillarbox::app
