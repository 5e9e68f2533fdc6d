// pillarbox user|domain|alias|aliases: account administration against the account database.
#include "auth/admin/accounts_service.hpp"

#include <fmt/format.h>
#include <openssl/rand.h>
#include <termios.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "auth/aliases_file.hpp"
#include "auth/authenticator.hpp"
#include "auth/recipients.hpp"
#include "server/config.hpp"
#include "server/ascii.hpp"
#include "server/config_values.hpp"
#include "server/log.hpp"
#include "server/mail_names.hpp"

namespace pillarbox::auth::admin {

namespace {

std::unique_ptr<AccountsDb> open_db(const config::Config& c) {
    return std::make_unique<AccountsDb>(AccountsDb::path_in(c.get("data_directory")));
}

bool cram_enabled(const config::Config& c) {
    auto s = AuthSettings::from(c);
    return std::find(s.mechanisms.begin(), s.mechanisms.end(), "CRAM-MD5") != s.mechanisms.end();
}

std::string when(std::int64_t t) {
    if (t == 0) return "never";
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

int fail(const std::string& msg) {
    fmt::print(stderr, "pillarbox: {}\n", msg);
    return 1;
}

// Why normalise_address refused an address, for the message.
std::string not_an_address(const std::string& address) {
    if (address.find('@') == std::string::npos) return fmt::format("{}: not an address (localpart@domain)", address);
    if (address.size() > 254) return fmt::format("{}: not a valid address (longer than 254 bytes)", address);
    auto why = names::address_problem(address);
    return fmt::format("{}: not a valid address ({})", address, why.empty() ? "localpart@domain" : why);
}

// A domain is usable for accounts when mail for it is delivered here.
bool domain_is_local(const config::Config& c, AccountsDb& db, const std::string& domain) {
    auto s = RecipientSettings::from(c);
    RecipientResolver r(db, s);
    return r.is_local_domain(domain);
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

std::optional<std::uint64_t> parse_quota(const std::string& v, bool size, std::string& err) {
    if (v.empty() || v == "none" || v == "default") return std::nullopt;
    if (size) {
        auto r = config::parse_size(v);
        if (!r.error.empty()) err = r.error;
        return r.value;
    }
    auto r = config::parse_uint(v, 0, UINT64_MAX);
    if (!r.error.empty()) err = r.error;
    return r.value;
}

}  // namespace

void set_password(AccountRecord& a, std::string_view password, const HashSettings& h, bool store_cram_md5) {
    a.password = hash_password(password, h);
    a.scram_sha256 = format_scram(scram_keys(ScramHash::Sha256, password, h.scram_iterations));
    a.scram_sha1 = format_scram(scram_keys(ScramHash::Sha1, password, h.scram_iterations));
    a.cram_md5 = store_cram_md5 ? format_cram_md5(cram_md5_context(password)) : std::string();
}

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
    if (pw.empty()) {
        fmt::print(stderr, "pillarbox: empty password; nothing changed\n");
        return std::nullopt;
    }
    if (pw.size() > 1024) {
        fmt::print(stderr, "pillarbox: password longer than 1024 bytes; nothing changed\n");
        return std::nullopt;
    }
    return pw;
}

int user_add(const config::Config& c, const std::string& address, const UserOptions& o) {
    auto addr = normalise_address(address);
    if (addr.empty()) return fail(not_an_address(address));
    auto db = open_db(c);
    auto domain = addr.substr(addr.rfind('@') + 1);
    if (!domain_is_local(c, *db, domain))
        return fail(fmt::format("{}: mail for {} is not delivered here; add the domain first: pillarbox domain add {}", addr, domain, domain));
    if (db->account(addr)) return fail(fmt::format("{}: account exists", addr));
    auto pw = read_new_password();
    if (!pw) return 1;
    AccountRecord a;
    a.address = addr;
    a.admin = o.admin;
    a.enabled = !o.disabled;
    a.quota_bytes = o.quota_bytes;
    a.quota_messages = o.quota_messages;
    set_password(a, *pw, AuthSettings::from(c).hash, cram_enabled(c));
    if (!db->add_account(a)) return fail(fmt::format("{}: account exists", addr));
    fmt::print("{}: account added\n", addr);
    return 0;
}

int user_del(const config::Config& c, const std::string& address) {
    auto addr = normalise_address(address);
    // An older database may hold a name that today's rule refuses: it can still be deleted.
    if (addr.empty() && address.find('@') != std::string::npos) addr = ascii_lower(address);
    if (addr.empty()) return fail(not_an_address(address));
    auto db = open_db(c);
    if (!db->delete_account(addr)) return fail(fmt::format("{}: no such account", addr));
    auto at = addr.rfind('@');
    fmt::print("{}: account deleted; its mail stays in {}/mail/{}/{} until you remove it\n", addr,
               c.get("data_directory"), addr.substr(at + 1), addr.substr(0, at));
    return 0;
}

int user_passwd(const config::Config& c, const std::string& address) {
    auto addr = normalise_address(address);
    if (addr.empty()) return fail(not_an_address(address));
    auto db = open_db(c);
    auto a = db->account(addr);
    if (!a) return fail(fmt::format("{}: no such account", addr));
    auto pw = read_new_password();
    if (!pw) return 1;
    set_password(*a, *pw, AuthSettings::from(c).hash, cram_enabled(c));
    if (!db->set_secrets(*a)) return fail(fmt::format("{}: no such account", addr));
    fmt::print("{}: password changed\n", addr);
    return 0;
}

int user_list(const config::Config& c, const std::string& domain) {
    auto db = open_db(c);
    for (auto& a : db->accounts(domain))
        fmt::print("{}{}{}\n", a.address, a.admin ? " admin" : "", a.enabled ? "" : " disabled");
    return 0;
}

int user_show(const config::Config& c, const std::string& address) {
    auto addr = normalise_address(address);
    if (addr.empty()) return fail(not_an_address(address));
    auto db = open_db(c);
    auto a = db->account(addr);
    if (!a) return fail(fmt::format("{}: no such account", addr));
    auto at = addr.rfind('@');
    auto limit = [](const std::optional<std::uint64_t>& v) { return v ? std::to_string(*v) : std::string("default"); };
    fmt::print("address: {}\n", a->address);
    fmt::print("enabled: {}\n", a->enabled ? "yes" : "no");
    fmt::print("admin: {}\n", a->admin ? "yes" : "no");
    fmt::print("password_scheme: {}\n", a->password.empty() ? "none" : scheme_of(a->password));
    std::vector<std::string> mechs;
    if (!a->scram_sha256.empty()) mechs.push_back("SCRAM-SHA-256");
    if (!a->scram_sha1.empty()) mechs.push_back("SCRAM-SHA-1");
    if (!a->cram_md5.empty()) mechs.push_back("CRAM-MD5");
    fmt::print("stored_secrets: {}\n", mechs.empty() ? std::string("none") : fmt::format("{}", fmt::join(mechs, " ")));
    fmt::print("quota_bytes: {}\n", limit(a->quota_bytes));
    fmt::print("quota_messages: {}\n", limit(a->quota_messages));
    fmt::print("created: {}\n", when(a->created));
    fmt::print("last_login: {}\n", when(a->last_login));
    fmt::print("maildir: {}/mail/{}/{}\n", c.get("data_directory"), addr.substr(at + 1), addr.substr(0, at));
    auto aliases = db->aliases();
    for (auto& al : aliases)
        if (al.target == addr) fmt::print("alias: {}\n", al.source);
    return 0;
}

int user_set(const config::Config& c, const std::string& address, std::optional<bool> enabled,
             std::optional<std::string> quota, std::optional<std::string> message_quota) {
    auto addr = normalise_address(address);
    if (addr.empty()) return fail(not_an_address(address));
    auto db = open_db(c);
    auto a = db->account(addr);
    if (!a) return fail(fmt::format("{}: no such account", addr));
    if (enabled) db->set_enabled(addr, *enabled);
    if (quota || message_quota) {
        std::string err;
        auto bytes = quota ? parse_quota(*quota, true, err) : a->quota_bytes;
        auto msgs = message_quota ? parse_quota(*message_quota, false, err) : a->quota_messages;
        if (!err.empty()) return fail(fmt::format("{}: {}", addr, err));
        db->set_quota(addr, bytes, msgs);
    }
    fmt::print("{}: updated\n", addr);
    return 0;
}

int domain_add(const config::Config& c, const std::string& domain) {
    if (auto why = names::domain_problem(domain); !why.empty())
        return fail(fmt::format("{}: not a valid domain name ({})", domain, why));
    auto d = ascii_lower(domain);
    auto db = open_db(c);
    auto s = RecipientSettings::from(c);
    if (std::find(s.mydestination.begin(), s.mydestination.end(), d) != s.mydestination.end())
        return fail(fmt::format("{}: already local through mydestination", d));
    if (!db->add_domain(d)) return fail(fmt::format("{}: domain exists", d));
    fmt::print("{}: domain added\n", d);
    return 0;
}

int domain_del(const config::Config& c, const std::string& domain) {
    auto db = open_db(c);
    try {
        if (!db->delete_domain(domain)) return fail(fmt::format("{}: no such domain", domain));
    } catch (const std::runtime_error& e) {
        return fail(e.what());
    }
    fmt::print("{}: domain deleted\n", domain);
    return 0;
}

int domain_list(const config::Config& c) {
    auto db = open_db(c);
    for (auto& d : RecipientSettings::from(c).mydestination) fmt::print("{} mydestination\n", d);
    for (auto& d : db->domains()) fmt::print("{}\n", d);
    return 0;
}

namespace {

// An alias source: user@domain, @domain (catch-all) or a bare aliases(5) name.
std::string alias_source(const std::string& s) {
    if (s.size() > 1 && s.front() == '@') {
        auto a = normalise_address("x" + s);
        return a.empty() ? std::string() : a.substr(1);
    }
    if (s.find('@') == std::string::npos) {
        auto a = normalise_address(s + "@x");
        return a.empty() ? std::string() : a.substr(0, a.size() - 2);
    }
    return normalise_address(s);
}

// An alias target: an address, or a bare local name (same domain as the source).
std::string alias_target(const std::string& t) { return t.find('@') == std::string::npos ? alias_source(t) : normalise_address(t); }

// ": why" for an alias source or target refused above, or nothing when the shape was the problem.
std::string name_problem(const std::string& s) {
    std::string why;
    if (s.size() > 1 && s.front() == '@') why = names::domain_problem(s.substr(1));
    else if (s.find('@') == std::string::npos) why = names::local_part_problem(s);
    else why = names::address_problem(s);
    return why.empty() ? std::string() : ": " + why;
}

}  // namespace

int alias_add(const config::Config& c, const std::string& source, const std::vector<std::string>& targets) {
    auto src = alias_source(source);
    if (src.empty())
        return fail(fmt::format("{}: not an alias name (user@domain, @domain or a local name{})", source, name_problem(source)));
    // Every target is checked before anything is added.
    std::vector<std::string> tgts;
    for (auto& t : targets) {
        auto tgt = alias_target(t);
        if (tgt.empty()) return fail(fmt::format("{}: not a valid address{}; nothing added", t, name_problem(t)));
        tgts.push_back(tgt);
    }
    auto db = open_db(c);
    if (src.find('@') != std::string::npos && !domain_is_local(c, *db, src.substr(src.find('@') + 1)))
        return fail(fmt::format("{}: mail for {} is not delivered here; add the domain first", src, src.substr(src.find('@') + 1)));
    for (auto& tgt : tgts) {
        if (db->add_alias(src, tgt)) fmt::print("{} -> {}: alias added\n", src, tgt);
        else fmt::print("{} -> {}: alias exists\n", src, tgt);
    }
    return 0;
}

int alias_del(const config::Config& c, const std::string& source, const std::string& target) {
    auto src = alias_source(source);
    if (src.empty()) src = ascii_lower(source);  // an older database's name that today's rule refuses
    if (src.empty()) return fail(fmt::format("{}: not an alias name", source));
    auto db = open_db(c);
    auto n = db->delete_alias(src, target);
    if (n == 0) return fail(fmt::format("{}: no such alias", src));
    fmt::print("{}: {} alias target(s) deleted\n", src, n);
    return 0;
}

int alias_list(const config::Config& c) {
    auto db = open_db(c);
    std::string cur;
    std::vector<std::string> targets;
    auto flush = [&] {
        if (!cur.empty()) fmt::print("{} {}\n", cur, fmt::join(targets, ", "));
        targets.clear();
    };
    for (auto& a : db->aliases()) {
        if (a.source != cur) {
            flush();
            cur = a.source;
        }
        targets.push_back(a.target);
    }
    flush();
    return 0;
}

int aliases_import(const config::Config& c, const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return fail(fmt::format("{}: cannot read", file));
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().size() > 64u * 1024 * 1024) return fail(fmt::format("{}: larger than 64 MiB", file));
    auto parsed = parse_alias_file(ss.str());
    for (auto& p : parsed.problems) fmt::print(stderr, "pillarbox: {}: {}\n", file, p);
    auto db = open_db(c);
    std::size_t added = 0, skipped = 0;
    db->transaction([&] {
        for (auto& e : parsed.entries) {
            if (alias_source(e.source).empty()) {
                fmt::print(stderr, "pillarbox: {}: line {}: {}: not a valid alias name{}; skipped\n", file, e.line, e.source,
                           name_problem(e.source));
                ++skipped;
                continue;
            }
            auto at = e.source.find('@');
            if (at != std::string::npos && !domain_is_local(c, *db, e.source.substr(at + 1))) {
                fmt::print(stderr, "pillarbox: {}: line {}: {}: mail for {} is not delivered here; skipped\n", file, e.line,
                           e.source, e.source.substr(at + 1));
                ++skipped;
                continue;
            }
            for (auto& t : e.targets) {
                if (alias_target(t).empty()) {
                    fmt::print(stderr, "pillarbox: {}: line {}: {}: target {} is not a valid address{}; skipped\n", file, e.line,
                               e.source, t, name_problem(t));
                    continue;
                }
                if (db->add_alias(e.source, t)) ++added;
            }
        }
    });
    fmt::print("{}: {} alias target(s) imported from {} entries, {} entries skipped, {} problem(s)\n", file, added,
               parsed.entries.size(), skipped, parsed.problems.size());
    return 0;
}

std::string write_first_admin_file(const std::filesystem::path& file, const std::string& address, const std::string& password) {
    // tmp + rename: never a half-written file, and never through a link someone left there.
    std::string tmp = file.string() + ".tmp";
    ::unlink(tmp.c_str());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return fmt::format("cannot create {}: {}", tmp, std::strerror(errno));
    std::string text = fmt::format(
        "# The first admin account, created at the first start. Change its password with\n"
        "# pillarbox user passwd {}\n# and then delete this file.\naddress: {}\npassword: {}\n",
        address, address, password);
    bool ok = ::fchmod(fd, 0600) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
              ::fsync(fd) == 0;
    int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), file.c_str()) != 0) {
        if (ok) err = errno;
        ::unlink(tmp.c_str());
        return fmt::format("cannot write {}: {}", file.string(), std::strerror(err));
    }
    return "";
}

void announce_first_admin(const config::Config& c) {
    auto first = create_first_admin(c);
    if (!first) return;
    auto& [address, password] = *first;
    if (::isatty(STDOUT_FILENO)) {
        // A person is watching: print it once; the log only says that it was created.
        fmt::print("\nFirst start: created the admin account {} with password {}\nChange it with: pillarbox user passwd {}\n\n",
                   address, password, address);
        std::fflush(stdout);
        log::info("master", "created the first admin account {}", address);
        return;
    }
    // Standard output is a pipe or a file: under Docker or systemd that is the log, which must
    // never hold a password.
    auto file = std::filesystem::path(c.get("data_directory")) / kFirstAdminFile;
    if (auto err = write_first_admin_file(file, address, password); !err.empty()) {
        // Without the password nobody could use the account: take it back, so that the next
        // start creates it again.
        open_db(c)->delete_account(address);
        throw std::runtime_error(fmt::format("first admin account {}: {}", address, err));
    }
    log::info("master", "created the first admin account {}; its password is in {} (mode 0600)", address, file.string());
}

std::optional<std::pair<std::string, std::string>> create_first_admin(const config::Config& c) {
    auto backends = c.get_list("auth_backends");
    if (std::find(backends.begin(), backends.end(), "builtin") == backends.end()) return std::nullopt;
    auto db = open_db(c);
    if (db->account_count() > 0) return std::nullopt;
    static constexpr char kAlphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    std::string pw;
    while (pw.size() < 20) {
        std::uint8_t b;
        RAND_bytes(&b, 1);
        if (b < 256 - 256 % (sizeof kAlphabet - 1)) pw += kAlphabet[b % (sizeof kAlphabet - 1)];
    }
    AccountRecord a;
    a.address = normalise_address("postmaster@" + c.get("myhostname"));
    if (a.address.empty()) return std::nullopt;
    a.admin = true;
    set_password(a, pw, AuthSettings::from(c).hash, cram_enabled(c));
    if (!db->add_account(a)) return std::nullopt;
    return std::make_pair(a.address, pw);
}

}  // namespace pillarbox::auth::admin
