// pillarbox user|domain|alias|aliases: account administration, a thin shell over the admin
// service layer (auth/admin/): it reads the password, prints results and errors, and picks the
// exit code. The database is opened directly, so these work with the server running or stopped.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <termios.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>

#include "app/cli.hpp"
#include "auth/admin/accounts_service.hpp"
#include "auth/admin/aliases_service.hpp"
#include "auth/admin/domains_service.hpp"
#include "server/config_values.hpp"

namespace pillarbox::app {

namespace {

namespace admin = auth::admin;

struct AccountOptions {
    std::string address, domain, alias_source, alias_del_target, file;
    std::vector<std::string> alias_targets;
    bool admin = false, disabled = false;
    std::string quota, message_quota;
    bool set_enable = false, set_disable = false;
    CLI::Option* set_quota = nullptr;
    CLI::Option* set_message_quota = nullptr;
};

int fail(const std::string& msg) {
    fmt::print(stderr, "pillarbox: {}\n", msg);
    return 1;
}

int fail(const admin::Error& e) { return fail(e.message); }

std::string when(std::int64_t t) {
    if (t == 0) return "never";
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

std::string read_line_no_echo(const char* prompt) {
    fmt::print(stderr, "{}", prompt);
    termios old{};
    bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    std::string line;
    std::getline(std::cin, line);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fmt::print(stderr, "\n");
    }
    return line;
}

// On a terminal: prompts twice with echo off. Otherwise: one line from standard input.
// nullopt (with a message printed) on mismatch, end of file or a password the rules refuse.
std::optional<std::string> read_new_password() {
    std::string pw;
    if (isatty(STDIN_FILENO)) {
        pw = read_line_no_echo("New password: ");
        auto again = read_line_no_echo("Retype new password: ");
        if (pw != again) {
            fmt::print(stderr, "pillarbox: the passwords differ; nothing changed\n");
            return std::nullopt;
        }
    } else {
        if (!std::getline(std::cin, pw)) {
            fmt::print(stderr, "pillarbox: no password on standard input; nothing changed\n");
            return std::nullopt;
        }
        if (!pw.empty() && pw.back() == '\r') pw.pop_back();
    }
    if (auto bad = admin::password_problem(pw)) {
        fmt::print(stderr, "pillarbox: {}; nothing changed\n", bad->message);
        return std::nullopt;
    }
    return pw;
}

// Sets `sub` to run fn(admin) once the configuration is loaded; an exception is the command's
// failure message.
void runs(CLI::App* sub, Invocation& run, std::function<int(admin::Admin&)> fn) {
    sub->callback([&run, fn = std::move(fn)] {
        auto env = run.env();
        auto c = load_config(run.config_path(env), env);
        if (!c) {
            run.exit_code = 1;
            return;
        }
        try {
            auto a = admin::Admin::from(*c);
            run.exit_code = fn(a);
        } catch (const std::exception& e) {
            fmt::print(stderr, "pillarbox: {}\n", e.what());
            run.exit_code = 1;
        }
    });
}

int user_add(admin::Admin& a, const AccountOptions& o) {
    admin::NewAccount n;
    n.address = o.address;
    n.admin = o.admin;
    n.disabled = o.disabled;
    // Bad option values are usage errors (2), like CLI11's own.
    if (!o.quota.empty()) {
        auto q = config::parse_size(o.quota);
        if (!q.error.empty()) { fmt::print(stderr, "pillarbox: --quota: {}\n", q.error); return 2; }
        n.quota_bytes = q.value;
    }
    if (!o.message_quota.empty()) {
        auto q = config::parse_uint(o.message_quota, 0, UINT64_MAX);
        if (!q.error.empty()) { fmt::print(stderr, "pillarbox: --message-quota: {}\n", q.error); return 2; }
        n.quota_messages = q.value;
    }
    // Asked for the password only once the rest is known to be acceptable.
    auto checked = admin::check_new_account(a, n);
    if (!checked) {
        if (checked.error().code == admin::Errc::DomainNotLocal)
            return fail(fmt::format("{}: pillarbox domain add {}", checked.error().message, checked.error().subject));
        return fail(checked.error());
    }
    auto pw = read_new_password();
    if (!pw) return 1;
    auto added = admin::add_account(a, n, *pw);
    if (!added) return fail(added.error());
    fmt::print("{}: account added\n", added.value());
    return 0;
}

int user_del(admin::Admin& a, const std::string& address) {
    auto r = admin::delete_account(a, address);
    if (!r) return fail(r.error());
    fmt::print("{}: account deleted; its mail stays in {} until you remove it\n", r->address, r->maildir);
    return 0;
}

int user_passwd(admin::Admin& a, const std::string& address) {
    auto found = admin::find_account(a, address);
    if (!found) return fail(found.error());
    auto pw = read_new_password();
    if (!pw) return 1;
    auto r = admin::set_password(a, address, *pw);
    if (!r) return fail(r.error());
    fmt::print("{}: password changed\n", r.value());
    return 0;
}

int user_list(admin::Admin& a, const std::string& domain) {
    for (auto& i : admin::list_accounts(a, domain))
        fmt::print("{}{}{}\n", i.address, i.admin ? " admin" : "", i.enabled ? "" : " disabled");
    return 0;
}

int user_show(admin::Admin& a, const std::string& address) {
    auto r = admin::find_account(a, address);
    if (!r) return fail(r.error());
    const auto& i = r.value();
    auto limit = [](const std::optional<std::uint64_t>& v) { return v ? std::to_string(*v) : std::string("default"); };
    fmt::print("address: {}\n", i.address);
    fmt::print("enabled: {}\n", i.enabled ? "yes" : "no");
    fmt::print("admin: {}\n", i.admin ? "yes" : "no");
    fmt::print("password_scheme: {}\n", i.password_scheme);
    fmt::print("stored_secrets: {}\n", i.stored_secrets.empty() ? std::string("none") : fmt::format("{}", fmt::join(i.stored_secrets, " ")));
    fmt::print("quota_bytes: {}\n", limit(i.quota_bytes));
    fmt::print("quota_messages: {}\n", limit(i.quota_messages));
    fmt::print("created: {}\n", when(i.created));
    fmt::print("last_login: {}\n", when(i.last_login));
    fmt::print("maildir: {}\n", i.maildir);
    for (auto& source : i.aliases) fmt::print("alias: {}\n", source);
    return 0;
}

int user_set(admin::Admin& a, const AccountOptions& o) {
    admin::AccountChanges ch;
    if (o.set_enable) ch.enabled = true;
    if (o.set_disable) ch.enabled = false;
    if (*o.set_quota) ch.quota_bytes = o.quota;
    if (*o.set_message_quota) ch.quota_messages = o.message_quota;
    auto r = admin::update_account(a, o.address, ch);
    if (!r) return fail(r.error());
    fmt::print("{}: updated\n", r.value());
    return 0;
}

int domain_add(admin::Admin& a, const std::string& domain) {
    auto r = admin::add_domain(a, domain);
    if (!r) return fail(r.error());
    fmt::print("{}: domain added\n", r.value());
    return 0;
}

int domain_del(admin::Admin& a, const std::string& domain) {
    auto r = admin::delete_domain(a, domain);
    if (!r) return fail(r.error());
    fmt::print("{}: domain deleted\n", domain);
    return 0;
}

int domain_list(admin::Admin& a) {
    for (auto& d : admin::list_domains(a)) fmt::print("{}{}\n", d.name, d.mydestination ? " mydestination" : "");
    return 0;
}

int alias_add(admin::Admin& a, const std::string& source, const std::vector<std::string>& targets) {
    auto r = admin::add_alias(a, source, targets);
    if (!r) return fail(r.error());
    for (auto& x : r.value()) fmt::print("{} -> {}: alias {}\n", x.source, x.target, x.added ? "added" : "exists");
    return 0;
}

int alias_del(admin::Admin& a, const std::string& source, const std::string& target) {
    auto r = admin::delete_alias(a, source, target);
    if (!r) return fail(r.error());
    fmt::print("{}: {} alias target(s) deleted\n", r->source, r->targets);
    return 0;
}

int alias_list(admin::Admin& a) {
    for (auto& al : admin::list_aliases(a)) fmt::print("{} {}\n", al.source, fmt::join(al.targets, ", "));
    return 0;
}

int aliases_import(admin::Admin& a, const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return fail(fmt::format("{}: cannot read", file));
    std::stringstream ss;
    ss << in.rdbuf();
    auto r = admin::import_aliases(a, ss.str());
    if (!r) return fail(fmt::format("{}: {}", file, r.error().message));
    for (auto& note : r->notes) fmt::print(stderr, "pillarbox: {}: {}\n", file, note);
    fmt::print("{}: {} alias target(s) imported from {} entries, {} entries skipped, {} problem(s)\n", file, r->added, r->entries,
               r->skipped, r->problems);
    return 0;
}

void add_user_commands(CLI::App& cli, Invocation& run, const std::shared_ptr<AccountOptions>& o) {
    auto* user = cli.add_subcommand("user", "manage accounts (passwords are read from a prompt or standard input)");
    user->require_subcommand(1);
    auto* add = user->add_subcommand("add", "add an account");
    add->add_option("ADDRESS", o->address, "localpart@domain")->required();
    add->add_flag("--admin", o->admin, "may use the web UI's admin pages");
    add->add_flag("--disabled", o->disabled, "create it unable to log in");
    add->add_option("--quota", o->quota, "storage limit (e.g. 2G), overriding mailbox_size_limit");
    add->add_option("--message-quota", o->message_quota, "message count limit, overriding mailbox_message_limit");
    runs(add, run, [o](admin::Admin& a) { return user_add(a, *o); });
    auto* del = user->add_subcommand("del", "delete an account (its mail stays on disk)");
    del->add_option("ADDRESS", o->address)->required();
    runs(del, run, [o](admin::Admin& a) { return user_del(a, o->address); });
    auto* passwd = user->add_subcommand("passwd", "set an account's password");
    passwd->add_option("ADDRESS", o->address)->required();
    runs(passwd, run, [o](admin::Admin& a) { return user_passwd(a, o->address); });
    auto* list = user->add_subcommand("list", "list accounts");
    list->add_option("DOMAIN", o->domain, "only this domain");
    runs(list, run, [o](admin::Admin& a) { return user_list(a, o->domain); });
    auto* show = user->add_subcommand("show", "show one account");
    show->add_option("ADDRESS", o->address)->required();
    runs(show, run, [o](admin::Admin& a) { return user_show(a, o->address); });
    auto* set = user->add_subcommand("set", "change an account's settings");
    set->add_option("ADDRESS", o->address)->required();
    auto* enable_flag = set->add_flag("--enable", o->set_enable, "allow logins");
    set->add_flag("--disable", o->set_disable, "refuse logins (mail is still accepted)")->excludes(enable_flag);
    o->set_quota = set->add_option("--quota", o->quota, "storage limit, or 'default'");
    o->set_message_quota = set->add_option("--message-quota", o->message_quota, "message count limit, or 'default'");
    runs(set, run, [o](admin::Admin& a) { return user_set(a, *o); });
}

void add_domain_commands(CLI::App& cli, Invocation& run, const std::shared_ptr<AccountOptions>& o) {
    auto* domain = cli.add_subcommand("domain", "manage hosted domains besides mydestination");
    domain->require_subcommand(1);
    auto* add = domain->add_subcommand("add", "accept mail for a domain");
    add->add_option("DOMAIN", o->domain)->required();
    runs(add, run, [o](admin::Admin& a) { return domain_add(a, o->domain); });
    auto* del = domain->add_subcommand("del", "stop accepting mail for a domain (no accounts may be left)");
    del->add_option("DOMAIN", o->domain)->required();
    runs(del, run, [o](admin::Admin& a) { return domain_del(a, o->domain); });
    runs(domain->add_subcommand("list", "list local domains"), run, [](admin::Admin& a) { return domain_list(a); });
}

void add_alias_commands(CLI::App& cli, Invocation& run, const std::shared_ptr<AccountOptions>& o) {
    auto* alias = cli.add_subcommand("alias", "manage aliases");
    alias->require_subcommand(1);
    auto* add = alias->add_subcommand("add", "SOURCE (user@domain, @domain catch-all, or a local name) delivers to TARGET...");
    add->add_option("SOURCE", o->alias_source)->required();
    add->add_option("TARGET", o->alias_targets)->required();
    runs(add, run, [o](admin::Admin& a) { return alias_add(a, o->alias_source, o->alias_targets); });
    auto* del = alias->add_subcommand("del", "delete an alias (one target, or all)");
    del->add_option("SOURCE", o->alias_source)->required();
    del->add_option("TARGET", o->alias_del_target);
    runs(del, run, [o](admin::Admin& a) { return alias_del(a, o->alias_source, o->alias_del_target); });
    runs(alias->add_subcommand("list", "list aliases"), run, [](admin::Admin& a) { return alias_list(a); });
    auto* aliases = cli.add_subcommand("aliases", "bulk alias operations");
    aliases->require_subcommand(1);
    auto* import = aliases->add_subcommand("import", "import an aliases(5) or virtual(5) file, like newaliases/postmap");
    import->add_option("FILE", o->file)->required();
    runs(import, run, [o](admin::Admin& a) { return aliases_import(a, o->file); });
}

}  // namespace

void add_account_commands(CLI::App& cli, Invocation& run) {
    auto o = std::make_shared<AccountOptions>();
    add_user_commands(cli, run, o);
    add_domain_commands(cli, run, o);
    add_alias_commands(cli, run, o);
}

}  // namespace pillarbox::app
