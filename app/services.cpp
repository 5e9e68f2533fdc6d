// Building the shared services, one function each, and handing them to the sessions (see
// services.hpp).
#include "app/services.hpp"

#include <string>

#include "app/first_admin.hpp"
#include "auth/accounts.hpp"
#include "auth/authenticator.hpp"
#include "auth/backend.hpp"
#include "auth/dovecot_socket.hpp"
#include "auth/recipients.hpp"
#include "protocols/pop3/parser.hpp"
#include "protocols/common/message_parser.hpp"
#include "protocols/imap/session.hpp"
#include "protocols/pop3/session.hpp"
#include "protocols/smtp/pickup.hpp"
#include "protocols/smtp/session.hpp"
#include "server/dns.hpp"
#include "server/log.hpp"
#include "server/server.hpp"
#include "storage/queue/queue.hpp"
#include "storage/store.hpp"

namespace pillarbox::app {

namespace {

std::unique_ptr<storage::Store> open_store(asio::io_context& loop, const config::Config& c) {
    auto settings = storage::StoreSettings::from(c);
    // The parse cache is filled when IMAP first asks for a message's structure, not at delivery
    // (parse_at_delivery): parsing every delivery cost SMTP a sixth of its throughput.
    settings.parse = [](std::string_view message) { return mime::to_json(mime::parse_message(message)); };
    // Per-account limits from the account database override mailbox_size_limit and
    // mailbox_message_limit, one limit at a time.
    auto quota_db = std::make_shared<auth::AccountsDb>(auth::AccountsDb::path_in(c.get("data_directory")));
    settings.quota_for = [quota_db, global = settings.quota](const std::string& lp, const std::string& dom)
        -> std::optional<storage::Quota> {
        auto a = quota_db->account(lp + "@" + dom);
        if (!a || (!a->quota_bytes && !a->quota_messages)) return std::nullopt;
        storage::Quota q = global;
        if (a->quota_bytes) q.max_bytes = *a->quota_bytes;
        if (a->quota_messages) q.max_messages = *a->quota_messages;
        return q;
    };
    log::info("master", "mail store in {}/mail", settings.data_directory.string());
    return std::make_unique<storage::Store>(loop, std::move(settings));
}

std::unique_ptr<storage::queue::Queue> open_queue(asio::io_context& loop, const config::Config& c) {
    auto queue = std::make_unique<storage::queue::Queue>(loop, c.get("data_directory"));
    queue->recover();
    return queue;
}

std::unique_ptr<dns::Resolver> make_dns(asio::io_context& loop, const config::Config& c) {
    dns::ResolverSettings ds;
    ds.servers = c.get_list("dns_servers");
    return dns::make_resolver(loop, ds);
}

void fill_smtp(smtp::Services& smtp, asio::io_context& loop, Server& server, const MailServices& s, const config::Config& c) {
    smtp.loop = &loop;
    smtp.workers = &server.workers();
    smtp.store = s.store.get();
    smtp.queue = s.queue.get();
    smtp.auth = s.auth.get();
    smtp.accounts = std::make_shared<auth::AccountsDb>(auth::AccountsDb::path_in(c.get("data_directory")));
    smtp.dns = s.dns.get();
}

void fill_pop3(pop3::Services& pop3, asio::io_context& loop, const MailServices& s, const config::Config& c) {
    pop3.loop = &loop;
    pop3.store = s.store.get();
    pop3.auth = s.auth.get();
    if (!pop3::valid_uidl_format(c.get("pop3_uidl_format")))
        log::warning("pop3", "pop3_uidl_format \"{}\" is not usable (it needs %u or %f); using {}",
                     c.get("pop3_uidl_format"), c.default_value("pop3_uidl_format"));
}

// Null when auth_socket_path is empty.
std::unique_ptr<auth::DovecotAuthSocket> start_auth_socket(asio::io_context& loop, auth::Authenticator& auth,
                                                           const config::Config& c) {
    auto ss = auth::DovecotAuthSocket::Settings::from(c);
    if (ss.path.empty()) return nullptr;
    auto socket = std::make_unique<auth::DovecotAuthSocket>(loop, auth, ss);
    socket->start();
    return socket;
}

}  // namespace

MailServices::MailServices() = default;

MailServices::~MailServices() {
    if (auth_socket) auth_socket->stop();
    if (pickup) pickup->stop();
}

std::shared_ptr<MailServices> start_services(asio::io_context& loop, Server& server, const config::Config& c,
                                             const SessionServices& sessions) {
    auto s = std::make_shared<MailServices>();
    s->store = open_store(loop, c);
    announce_first_admin(c);
    s->auth = std::make_unique<auth::Authenticator>(loop, server.workers(), auth::AuthSettings::from(c), auth::make_backends(c));
    s->queue = open_queue(loop, c);
    s->dns = make_dns(loop, c);
    fill_smtp(*sessions.smtp, loop, server, *s, c);
    server.on_reload([smtp = sessions.smtp] { smtp->policies.clear(); });
    // Messages released from hold (pillarbox queue release) are routed again by the server.
    s->pickup = std::make_shared<smtp::Pickup>(sessions.smtp, auth::RecipientSettings::from(c), std::chrono::seconds(60));
    s->pickup->start();
    server.on_shutdown([w = std::weak_ptr<MailServices>(s)] {
        if (auto p = w.lock(); p && p->pickup) p->pickup->stop();
    });
    fill_pop3(*sessions.pop3, loop, *s, c);
    sessions.imap->loop = &loop;
    sessions.imap->store = s->store.get();
    sessions.imap->auth = s->auth.get();
    s->auth_socket = start_auth_socket(loop, *s->auth, c);
    if (s->auth_socket)
        server.on_shutdown([w = std::weak_ptr<MailServices>(s)] {
            if (auto p = w.lock(); p && p->auth_socket) p->auth_socket->stop();
        });
    return s;
}

}  // namespace pillarbox::app
