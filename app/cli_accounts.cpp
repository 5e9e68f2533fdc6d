// pillarbox user|domain|alias|aliases: account administration. They open the account database
// directly, so they work the same with the server running or stopped.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <functional>

#include "app/cli.hpp"
#include "auth/admin/accounts_service.hpp"
#include "server/config_values.hpp"

namespace pillarbox::app {

namespace {

struct AccountOptions {
    std::string address, domain, alias_source, alias_del_target, file;
    std::vector<std::string> alias_targets;
    auth::admin::UserOptions user;
    std::string quota, message_quota;
    bool set_enable = false, set_disable = false;
    CLI::Option* set_quota = nullptr;
    CLI::Option* set_message_quota = nullptr;
};

// Sets `sub` to run fn(config) once the configuration is loaded; an exception is the command's
// failure message.
void runs(CLI::App* sub, Invocation& run, std::function<int(const config::Config&)> fn) {
    sub->callback([&run, fn = std::move(fn)] {
        auto env = run.env();
        auto c = load_config(run.config_path(env), env);
        if (!c) {
            run.exit_code = 1;
            return;
        }
        try {
            run.exit_code = fn(*c);
        } catch (const std::exception& e) {
            fmt::print(stderr, "pillarbox: {}\n", e.what());
            run.exit_code = 1;
        }
    });
}

int user_add(const config::Config& c, AccountOptions& o) {
    if (!o.quota.empty()) {
        auto q = config::parse_size(o.quota);
        if (!q.error.empty()) { fmt::print(stderr, "pillarbox: --quota: {}\n", q.error); return 2; }
        o.user.quota_bytes = q.value;
    }
    if (!o.message_quota.empty()) {
        auto q = config::parse_uint(o.message_quota, 0, UINT64_MAX);
        if (!q.error.empty()) { fmt::print(stderr, "pillarbox: --message-quota: {}\n", q.error); return 2; }
        o.user.quota_messages = q.value;
    }
    return auth::admin::user_add(c, o.address, o.user);
}

int user_set(const config::Config& c, const AccountOptions& o) {
    std::optional<bool> enabled;
    if (o.set_enable) enabled = true;
    if (o.set_disable) enabled = false;
    return auth::admin::user_set(c, o.address, enabled, *o.set_quota ? std::optional(o.quota) : std::nullopt,
                                 *o.set_message_quota ? std::optional(o.message_quota) : std::nullopt);
}

void add_user_commands(CLI::App& cli, Invocation& run, const std::shared_ptr<AccountOptions>& o) {
    namespace admin = auth::admin;
    auto* user = cli.add_subcommand("user", "manage accounts (passwords are read from a prompt or standard input)");
    user->require_subcommand(1);
    auto* add = user->add_subcommand("add", "add an account");
    add->add_option("ADDRESS", o->address, "localpart@domain")->required();
    add->add_flag("--admin", o->user.admin, "may use the web UI's admin pages");
    add->add_flag("--disabled", o->user.disabled, "create it unable to log in");
    add->add_option("--quota", o->quota, "storage limit (e.g. 2G), overriding mailbox_size_limit");
    add->add_option("--message-quota", o->message_quota, "message count limit, overriding mailbox_message_limit");
    runs(add, run, [o](const config::Config& c) { return user_add(c, *o); });
    auto* del = user->add_subcommand("del", "delete an account (its mail stays on disk)");
    del->add_option("ADDRESS", o->address)->required();
    runs(del, run, [o](const config::Config& c) { return admin::user_del(c, o->address); });
    auto* passwd = user->add_subcommand("passwd", "set an account's password");
    passwd->add_option("ADDRESS", o->address)->required();
    runs(passwd, run, [o](const config::Config& c) { return admin::user_passwd(c, o->address); });
    auto* list = user->add_subcommand("list", "list accounts");
    list->add_option("DOMAIN", o->domain, "only this domain");
    runs(list, run, [o](const config::Config& c) { return admin::user_list(c, o->domain); });
    auto* show = user->add_subcommand("show", "show one account");
    show->add_option("ADDRESS", o->address)->required();
    runs(show, run, [o](const config::Config& c) { return admin::user_show(c, o->address); });
    auto* set = user->add_subcommand("set", "change an account's settings");
    set->add_option("ADDRESS", o->address)->required();
    auto* enable_flag = set->add_flag("--enable", o->set_enable, "allow logins");
    set->add_flag("--disable", o->set_disable, "refuse logins (mail is still accepted)")->excludes(enable_flag);
    o->set_quota = set->add_option("--quota", o->quota, "storage limit, or 'default'");
    o->set_message_quota = set->add_option("--message-quota", o->message_quota, "message count limit, or 'default'");
    runs(set, run, [o](const config::Config& c) { return user_set(c, *o); });
}

void add_domain_commands(CLI::App& cli, Invocation& run, const std::shared_ptr<AccountOptions>& o) {
    namespace admin = auth::admin;
    auto* domain = cli.add_subcommand("domain", "manage hosted domains besides mydestination");
    domain->require_subcommand(1);
    auto* add = domain->add_subcommand("add", "accept mail for a domain");
    add->add_option("DOMAIN", o->domain)->required();
    runs(add, run, [o](const config::Config& c) { return admin::domain_add(c, o->domain); });
    auto* del = domain->add_subcommand("del", "stop accepting mail for a domain (no accounts may be left)");
    del->add_option("DOMAIN", o->domain)->required();
    runs(del, run, [o](const config::Config& c) { return admin::domain_del(c, o->domain); });
    runs(domain->add_subcommand("list", "list local domains"), run, [](const config::Config& c) { return admin::domain_list(c); });
}

void add_alias_commands(CLI::App& cli, Invocation& run, const std::shared_ptr<AccountOptions>& o) {
    namespace admin = auth::admin;
    auto* alias = cli.add_subcommand("alias", "manage aliases");
    alias->require_subcommand(1);
    auto* add = alias->add_subcommand("add", "SOURCE (user@domain, @domain catch-all, or a local name) delivers to TARGET...");
    add->add_option("SOURCE", o->alias_source)->required();
    add->add_option("TARGET", o->alias_targets)->required();
    runs(add, run, [o](const config::Config& c) { return admin::alias_add(c, o->alias_source, o->alias_targets); });
    auto* del = alias->add_subcommand("del", "delete an alias (one target, or all)");
    del->add_option("SOURCE", o->alias_source)->required();
    del->add_option("TARGET", o->alias_del_target);
    runs(del, run, [o](const config::Config& c) { return admin::alias_del(c, o->alias_source, o->alias_del_target); });
    runs(alias->add_subcommand("list", "list aliases"), run, [](const config::Config& c) { return admin::alias_list(c); });
    auto* aliases = cli.add_subcommand("aliases", "bulk alias operations");
    aliases->require_subcommand(1);
    auto* import = aliases->add_subcommand("import", "import an aliases(5) or virtual(5) file, like newaliases/postmap");
    import->add_option("FILE", o->file)->required();
    runs(import, run, [o](const config::Config& c) { return admin::aliases_import(c, o->file); });
}

}  // namespace

void add_account_commands(CLI::App& cli, Invocation& run) {
    auto o = std::make_shared<AccountOptions>();
    add_user_commands(cli, run, o);
    add_domain_commands(cli, run, o);
    add_alias_commands(cli, run, o);
}

}  // namespace pillarbox::app
