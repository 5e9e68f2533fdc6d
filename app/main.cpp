// pillarbox: the command line (CLI11). Registers the protocol sessions and dispatches.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <sys/stat.h>

#include <iostream>

#include "auth/admin_commands.hpp"
#include "auth/authenticator.hpp"
#include "auth/dovecot_socket.hpp"
#include "app/cli.hpp"
#include "protocols/imap/registration.hpp"
#include "protocols/smtp/registration.hpp"
#include "webui/registration.hpp"
#include "server/dns.hpp"
#include "storage/queue/queue.hpp"
#include "storage/queue/queue_commands.hpp"
#include "protocols/smtp/pickup.hpp"
#include "protocols/pop3/parser.hpp"
#include "protocols/pop3/registration.hpp"
#include "server/log.hpp"
#include "storage/index_commands.hpp"
#include "storage/store.hpp"

int main(int argc, char** argv) {
    using namespace pillarbox;
    // Everything the server and the CLI create (account database and its -wal/-shm, mail,
    // indexes, queue files, TLS key) is for the server's user alone: 0600 files, 0700 folders.
    ::umask(077);
    CLI::App app{"Pillarbox: SMTP, POP3 and IMAP mail server in one process"};
    app.require_subcommand(1);
    std::string config_file;
    app.add_option("-c,--config", config_file, "configuration file (default ./pillarbox.conf, or /etc/pillarbox/pillarbox.conf as root)");

    auto* serve = app.add_subcommand("serve", "run the server in the foreground");
    cli::ConfigOptions copt;
    auto* config = app.add_subcommand("config", "print effective parameter values, like postconf");
    config->add_flag("-n", copt.non_default, "only parameters set in the configuration file");
    config->add_flag("-d", copt.defaults, "default values");
    config->add_flag("-x", copt.expand, "expand $name references");
    config->add_flag("--doc", copt.doc, "print the parameter reference in Markdown");
    config->add_option("NAME", copt.names, "parameters to print");
    auto* check = app.add_subcommand("check", "validate configuration, files and permissions, like postfix check");
    bool check_fix = false;
    check->add_flag("--fix", check_fix, "make what is in the data folder private again (folders 0700, files 0600)");
    auto* version = app.add_subcommand("version", "print version and library versions");
    auto* index = app.add_subcommand("index", "check or rebuild an account's mail index (server stopped)");
    index->require_subcommand(1);
    std::string index_user;
    auto* index_check = index->add_subcommand("check", "compare the index with the Maildir; changes nothing");
    index_check->add_option("USER", index_user, "account address, localpart@domain")->required();
    auto* index_rebuild = index->add_subcommand("rebuild", "rebuild the index from the Maildir, keeping UIDs");
    index_rebuild->add_option("USER", index_user, "account address, localpart@domain")->required();

    // Account administration: the database directly, server running or not.
    std::string address, domain_name, alias_source, file;
    std::vector<std::string> alias_targets;
    auth::admin::UserOptions uopt;
    std::string quota, message_quota;
    auto* queue = app.add_subcommand("queue", "show, release and delete queued mail, like mailq and postsuper");
    queue->require_subcommand(1);
    std::string queue_id;
    std::vector<std::string> queue_ids;
    auto* queue_list = queue->add_subcommand("list", "list the queue, like mailq (! held, > released, not yet routed)");
    auto* queue_show = queue->add_subcommand("show", "print a queued message's envelope and contents, like postcat -q");
    queue_show->add_option("ID", queue_id, "queue id")->required();
    auto* queue_release = queue->add_subcommand("release", "release held messages (postsuper -H): the server delivers them again");
    queue_release->add_option("ID", queue_ids, "queue ids, or ALL")->required();
    auto* queue_delete = queue->add_subcommand("delete", "delete queued or held messages (postsuper -d)");
    queue_delete->add_option("ID", queue_ids, "queue ids, or ALL")->required();
    auto* user = app.add_subcommand("user", "manage accounts (passwords are read from a prompt or standard input)");
    user->require_subcommand(1);
    auto* user_add = user->add_subcommand("add", "add an account");
    user_add->add_option("ADDRESS", address, "localpart@domain")->required();
    user_add->add_flag("--admin", uopt.admin, "may use the web UI's admin pages");
    user_add->add_flag("--disabled", uopt.disabled, "create it unable to log in");
    user_add->add_option("--quota", quota, "storage limit (e.g. 2G), overriding mailbox_size_limit");
    user_add->add_option("--message-quota", message_quota, "message count limit, overriding mailbox_message_limit");
    auto* user_del = user->add_subcommand("del", "delete an account (its mail stays on disk)");
    user_del->add_option("ADDRESS", address)->required();
    auto* user_passwd = user->add_subcommand("passwd", "set an account's password");
    user_passwd->add_option("ADDRESS", address)->required();
    auto* user_list = user->add_subcommand("list", "list accounts");
    user_list->add_option("DOMAIN", domain_name, "only this domain");
    auto* user_show = user->add_subcommand("show", "show one account");
    user_show->add_option("ADDRESS", address)->required();
    auto* user_set = user->add_subcommand("set", "change an account's settings");
    user_set->add_option("ADDRESS", address)->required();
    bool set_enable = false, set_disable = false;
    auto* enable_flag = user_set->add_flag("--enable", set_enable, "allow logins");
    user_set->add_flag("--disable", set_disable, "refuse logins (mail is still accepted)")->excludes(enable_flag);
    auto* set_quota = user_set->add_option("--quota", quota, "storage limit, or 'default'");
    auto* set_mquota = user_set->add_option("--message-quota", message_quota, "message count limit, or 'default'");
    auto* domain = app.add_subcommand("domain", "manage hosted domains besides mydestination");
    domain->require_subcommand(1);
    auto* domain_add = domain->add_subcommand("add", "accept mail for a domain");
    domain_add->add_option("DOMAIN", domain_name)->required();
    auto* domain_del = domain->add_subcommand("del", "stop accepting mail for a domain (no accounts may be left)");
    domain_del->add_option("DOMAIN", domain_name)->required();
    auto* domain_list = domain->add_subcommand("list", "list local domains");
    auto* alias = app.add_subcommand("alias", "manage aliases");
    alias->require_subcommand(1);
    auto* alias_add = alias->add_subcommand("add", "SOURCE (user@domain, @domain catch-all, or a local name) delivers to TARGET...");
    alias_add->add_option("SOURCE", alias_source)->required();
    alias_add->add_option("TARGET", alias_targets)->required();
    auto* alias_del = alias->add_subcommand("del", "delete an alias (one target, or all)");
    alias_del->add_option("SOURCE", alias_source)->required();
    std::string alias_del_target;
    alias_del->add_option("TARGET", alias_del_target);
    auto* alias_list = alias->add_subcommand("list", "list aliases");
    auto* aliases = app.add_subcommand("aliases", "bulk alias operations");
    aliases->require_subcommand(1);
    auto* aliases_import = aliases->add_subcommand("import", "import an aliases(5) or virtual(5) file, like newaliases/postmap");
    aliases_import->add_option("FILE", file)->required();

    CLI11_PARSE(app, argc, argv);
    auto env = config::Environment::detect();
    auto path = cli::ConfigPath::resolve(config_file, env);
    // Filled by `services` below before the first connection is served.
    auto smtp_services = std::make_shared<smtp::Services>();
    auto pop3_services = std::make_shared<pop3::Services>();
    ProtocolRegistry protocols;
    protocols.add(smtp::registration(smtp_services));
    protocols.add(pop3::registration(pop3_services));
    protocols.add(imap::registration());
    protocols.add(webui::registration());
    if (*serve) {
        // What the sessions share: the mail store and the authenticator (plus the Dovecot-style
        // auth socket when configured). Quota, parser and auth changes take effect on restart.
        struct Shared {
            std::unique_ptr<storage::Store> store;
            std::unique_ptr<storage::queue::Queue> queue;
            std::unique_ptr<dns::Resolver> dns;
            std::unique_ptr<auth::Authenticator> auth;
            std::unique_ptr<auth::DovecotAuthSocket> auth_socket;
            std::shared_ptr<smtp::Pickup> pickup;
            ~Shared() {
                if (auth_socket) auth_socket->stop();
                if (pickup) pickup->stop();
            }
        };
        auto services = [smtp_services, pop3_services](asio::io_context& loop, Server& server, const config::Config& c) -> std::shared_ptr<void> {
            auto shared = std::make_shared<Shared>();
            auto settings = storage::StoreSettings::from(c);
            // No parse cache at delivery (StoreSettings::parse): it has no reader before IMAP
            // asks for a message, and filling it cost SMTP a sixth of its throughput.
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
            shared->store = std::make_unique<storage::Store>(loop, std::move(settings));
            auth::admin::announce_first_admin(c);
            shared->auth = std::make_unique<auth::Authenticator>(loop, server.workers(), auth::AuthSettings::from(c),
                                                                 auth::make_backends(c));
            shared->queue = std::make_unique<storage::queue::Queue>(loop, c.get("data_directory"));
            shared->queue->recover();
            dns::ResolverSettings ds;
            ds.servers = c.get_list("dns_servers");
            shared->dns = dns::make_resolver(loop, ds);
            smtp_services->loop = &loop;
            smtp_services->workers = &server.workers();
            smtp_services->store = shared->store.get();
            smtp_services->queue = shared->queue.get();
            smtp_services->auth = shared->auth.get();
            smtp_services->accounts = std::make_shared<auth::AccountsDb>(auth::AccountsDb::path_in(c.get("data_directory")));
            smtp_services->dns = shared->dns.get();
            server.on_reload([smtp_services] { smtp_services->policies.clear(); });
            // Messages released from hold (pillarbox queue release) are routed again by the server.
            shared->pickup = std::make_shared<smtp::Pickup>(smtp_services, auth::RecipientSettings::from(c), std::chrono::seconds(60));
            shared->pickup->start();
            server.on_shutdown([s = std::weak_ptr<Shared>(shared)] {
                if (auto p = s.lock(); p && p->pickup) p->pickup->stop();
            });
            pop3_services->loop = &loop;
            pop3_services->store = shared->store.get();
            pop3_services->auth = shared->auth.get();
            if (!pop3::valid_uidl_format(c.get("pop3_uidl_format")))
                log::warning("pop3", "pop3_uidl_format \"{}\" is not usable (it needs %u or %f); using %08Xu%08Xv",
                             c.get("pop3_uidl_format"));
            if (auto path = c.get("auth_socket_path"); !path.empty()) {
                auth::DovecotAuthSocket::Settings ss;
                ss.path = path;
                ss.user = c.get("auth_socket_user");
                ss.group = c.get("auth_socket_group");
                ss.mode = static_cast<mode_t>(std::stoul(c.get("auth_socket_mode"), nullptr, 8));
                shared->auth_socket = std::make_unique<auth::DovecotAuthSocket>(loop, *shared->auth, ss);
                shared->auth_socket->start();
                server.on_shutdown([s = std::weak_ptr<Shared>(shared)] {
                    if (auto p = s.lock(); p && p->auth_socket) p->auth_socket->stop();
                });
            }
            return shared;
        };
        return cli::serve(path, env, std::move(protocols), services);
    }
    if (*config) return cli::config(path, env, copt);
    if (*check) return cli::check(path, env, check_fix, &protocols);
    if (*version) return cli::version();
    if (*user || *domain || *alias || *aliases) {
        auto c = cli::load_config(path, env);
        if (!c) return 1;
        try {
            namespace admin = auth::admin;
            if (*user_add) {
                std::string err;
                if (!quota.empty()) {
                    auto q = config::parse_size(quota);
                    if (!q.error.empty()) { fmt::print(stderr, "pillarbox: --quota: {}\n", q.error); return 2; }
                    uopt.quota_bytes = q.value;
                }
                if (!message_quota.empty()) {
                    auto q = config::parse_uint(message_quota, 0, UINT64_MAX);
                    if (!q.error.empty()) { fmt::print(stderr, "pillarbox: --message-quota: {}\n", q.error); return 2; }
                    uopt.quota_messages = q.value;
                }
                return admin::user_add(*c, address, uopt);
            }
            if (*user_del) return admin::user_del(*c, address);
            if (*user_passwd) return admin::user_passwd(*c, address);
            if (*user_list) return admin::user_list(*c, domain_name);
            if (*user_show) return admin::user_show(*c, address);
            if (*user_set) {
                std::optional<bool> enabled;
                if (set_enable) enabled = true;
                if (set_disable) enabled = false;
                return admin::user_set(*c, address, enabled, *set_quota ? std::optional(quota) : std::nullopt,
                                       *set_mquota ? std::optional(message_quota) : std::nullopt);
            }
            if (*domain_add) return admin::domain_add(*c, domain_name);
            if (*domain_del) return admin::domain_del(*c, domain_name);
            if (*domain_list) return admin::domain_list(*c);
            if (*alias_add) return admin::alias_add(*c, alias_source, alias_targets);
            if (*alias_del) return admin::alias_del(*c, alias_source, alias_del_target);
            if (*alias_list) return admin::alias_list(*c);
            if (*aliases_import) return admin::aliases_import(*c, file);
        } catch (const std::exception& e) {
            fmt::print(stderr, "pillarbox: {}\n", e.what());
            return 1;
        }
        return 2;
    }
    if (*queue) {
        auto data = cli::data_directory(path, env);
        if (!data) return 1;
        namespace q = storage::queue;
        if (*queue_list) return q::list_command(*data);
        if (*queue_show) return q::show_command(*data, queue_id);
        if (*queue_release) return q::release_command(*data, queue_ids);
        if (*queue_delete) return q::delete_command(*data, queue_ids);
        return 2;
    }
    if (*index) {
        auto data = cli::data_directory(path, env);
        if (!data) return 1;
        auto root = storage::account_root_for(*data, index_user);
        if (root.empty()) {
            fmt::print(stderr, "pillarbox: {}: not an account address (localpart@domain)\n", index_user);
            return 2;
        }
        if (*index_check) {
            auto problems = storage::check_index(root);
            for (auto& p : problems) fmt::print("{}\n", p);
            fmt::print(stderr, "pillarbox: {}: {}\n", index_user, problems.empty() ? "index matches the Maildir" : "index differs from the Maildir");
            return problems.empty() ? 0 : 1;
        }
        auto err = storage::rebuild_index(root);
        if (!err.empty()) {
            fmt::print(stderr, "pillarbox: {}: {}\n", index_user, err);
            return 1;
        }
        fmt::print(stderr, "pillarbox: {}: index rebuilt\n", index_user);
        return 0;
    }
    return 2;
}
