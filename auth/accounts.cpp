// The global account database: schema, migrations and the statements behind AccountsDb.
#include "auth/accounts.hpp"
#include "server/ascii.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "server/file_modes.hpp"
#include "server/loop_guard.hpp"
#include "server/mail_names.hpp"
#include "storage/index/sqlite.hpp"

namespace pillarbox::auth {

namespace {

constexpr int kSchemaVersion = 2;

void migrate(storage::sqlite::Db& db) {
    // The server and a CLI command may open a new database at the same moment: the version is
    // read and the schema created inside one write transaction, so only one of them creates it.
    storage::sqlite::Db::Transaction tx(db);
    db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    int version = 0;
    {
        auto st = db.prepare("SELECT value FROM meta WHERE key = 'accounts_schema'");
        if (st.step()) version = std::stoi(st.text(0));
    }
    if (version > kSchemaVersion)
        throw std::runtime_error(fmt::format("account database schema {} is newer than this pillarbox knows ({})", version, kSchemaVersion));
    if (version < 1) {
        db.exec(R"(
            CREATE TABLE domains (
                name TEXT PRIMARY KEY,
                created INTEGER NOT NULL
            );
            CREATE TABLE accounts (
                address TEXT PRIMARY KEY,
                domain TEXT NOT NULL,
                password TEXT NOT NULL DEFAULT '',
                scram_sha1 TEXT NOT NULL DEFAULT '',
                scram_sha256 TEXT NOT NULL DEFAULT '',
                cram_md5 TEXT NOT NULL DEFAULT '',
                quota_bytes INTEGER,
                quota_messages INTEGER,
                enabled INTEGER NOT NULL DEFAULT 1,
                admin INTEGER NOT NULL DEFAULT 0,
                created INTEGER NOT NULL,
                last_login INTEGER NOT NULL DEFAULT 0
            );
            CREATE INDEX accounts_domain ON accounts(domain);
            CREATE TABLE aliases (
                source TEXT NOT NULL,
                target TEXT NOT NULL,
                PRIMARY KEY (source, target)
            );
            INSERT OR REPLACE INTO meta(key, value) VALUES ('accounts_schema', '1');
        )");
    }
    if (version < 2) {
        db.exec(R"(
            ALTER TABLE accounts ADD COLUMN credential_version INTEGER NOT NULL DEFAULT 0;
            INSERT OR REPLACE INTO meta(key, value) VALUES ('accounts_schema', '2');
        )");
    }
    tx.commit();
}

std::string domain_of(std::string_view address) {
    auto at = address.rfind('@');
    return at == std::string_view::npos ? std::string() : std::string(address.substr(at + 1));
}

AccountRecord row_to_account(storage::sqlite::Stmt& st) {
    AccountRecord a;
    a.address = st.text(0);
    a.password = st.text(1);
    a.scram_sha1 = st.text(2);
    a.scram_sha256 = st.text(3);
    a.cram_md5 = st.text(4);
    if (!st.is_null(5)) a.quota_bytes = static_cast<std::uint64_t>(st.int64(5));
    if (!st.is_null(6)) a.quota_messages = static_cast<std::uint64_t>(st.int64(6));
    a.enabled = st.int64(7) != 0;
    a.admin = st.int64(8) != 0;
    a.created = st.int64(9);
    a.last_login = st.int64(10);
    a.credential_version = st.int64(11);
    return a;
}

constexpr const char* kAccountColumns =
    "address, password, scram_sha1, scram_sha256, cram_md5, quota_bytes, quota_messages, enabled, admin, created, last_login, "
    "credential_version";

}  // namespace

std::string normalise_address(std::string_view address) {
    if (address.empty() || address.size() > 254) return {};
    // The one rule for names that become Maildir paths (server/mail_names.hpp); it also refuses
    // a second '@', which can't be in a local part.
    if (!names::valid_address(address)) return {};
    return ascii_lower(address);
}

AccountsDb::AccountsDb(const std::filesystem::path& file) {
    blocking_call("AccountsDb open");
    std::error_code ec;
    files::make_private_directories(file.parent_path(), ec);
    db_ = std::make_unique<storage::sqlite::Db>(file.string());
    migrate(*db_);
}

AccountsDb::~AccountsDb() = default;

bool AccountsDb::add_domain(std::string_view domain) {
    blocking_call("AccountsDb");
    if (auto why = names::domain_problem(domain); !why.empty())
        throw std::invalid_argument(fmt::format("{}: not a valid domain name ({})", domain, why));
    std::lock_guard lock(mu_);
    auto st = db_->prepare("INSERT OR IGNORE INTO domains(name, created) VALUES (?, strftime('%s','now'))");
    st.bind(1, ascii_lower(domain)).run();
    return sqlite3_changes(db_->handle()) > 0;
}

bool AccountsDb::delete_domain(std::string_view domain) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    auto d = ascii_lower(domain);
    {
        auto st = db_->prepare("SELECT COUNT(*) FROM accounts WHERE domain = ?");
        st.bind(1, d);
        if (st.step() && st.int64(0) > 0)
            throw DomainInUse(fmt::format("domain {} still has {} account(s); delete them first", d, st.int64(0)));
    }
    storage::sqlite::Db::Transaction tx(*db_);
    auto st = db_->prepare("DELETE FROM domains WHERE name = ?");
    st.bind(1, d).run();
    bool gone = sqlite3_changes(db_->handle()) > 0;
    // Aliases of the domain go with it: they could only deliver elsewhere from a domain we no
    // longer accept mail for.
    auto al = db_->prepare("DELETE FROM aliases WHERE source LIKE ? ESCAPE '\\'");
    std::string pattern = "%@";
    for (char c : d) {
        if (c == '%' || c == '_' || c == '\\') pattern += '\\';
        pattern += c;
    }
    al.bind(1, pattern).run();
    tx.commit();
    return gone;
}

bool AccountsDb::has_domain(std::string_view domain) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    auto st = db_->prepare("SELECT 1 FROM domains WHERE name = ?");
    st.bind(1, ascii_lower(domain));
    return st.step();
}

std::vector<std::string> AccountsDb::domains() {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    std::vector<std::string> r;
    auto st = db_->prepare("SELECT name FROM domains ORDER BY name");
    while (st.step()) r.push_back(st.text(0));
    return r;
}

bool AccountsDb::add_account(const AccountRecord& a) {
    blocking_call("AccountsDb");
    // The store would refuse the name at the first delivery: refuse it here, for every caller.
    if (auto why = names::address_problem(a.address); !why.empty())
        throw std::invalid_argument(fmt::format("{}: not a valid address ({})", a.address, why));
    std::lock_guard lock(mu_);
    auto addr = ascii_lower(a.address);
    auto st = db_->prepare(
        "INSERT OR IGNORE INTO accounts(address, domain, password, scram_sha1, scram_sha256, cram_md5, "
        "quota_bytes, quota_messages, enabled, admin, created) VALUES (?,?,?,?,?,?,?,?,?,?, strftime('%s','now'))");
    st.bind(1, addr).bind(2, domain_of(addr)).bind(3, a.password).bind(4, a.scram_sha1).bind(5, a.scram_sha256).bind(6, a.cram_md5);
    if (a.quota_bytes) st.bind(7, static_cast<std::int64_t>(*a.quota_bytes)); else st.bind_null(7);
    if (a.quota_messages) st.bind(8, static_cast<std::int64_t>(*a.quota_messages)); else st.bind_null(8);
    st.bind(9, std::int64_t{a.enabled}).bind(10, std::int64_t{a.admin});
    st.run();
    return sqlite3_changes(db_->handle()) > 0;
}

bool AccountsDb::delete_account(std::string_view address) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    auto st = db_->prepare("DELETE FROM accounts WHERE address = ?");
    st.bind(1, ascii_lower(address)).run();
    return sqlite3_changes(db_->handle()) > 0;
}

std::optional<AccountRecord> AccountsDb::account(std::string_view address) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    auto st = db_->prepare(fmt::format("SELECT {} FROM accounts WHERE address = ?", kAccountColumns));
    st.bind(1, ascii_lower(address));
    if (!st.step()) return std::nullopt;
    return row_to_account(st);
}

std::vector<AccountRecord> AccountsDb::accounts(std::string_view domain) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    std::vector<AccountRecord> r;
    auto st = domain.empty()
        ? db_->prepare(fmt::format("SELECT {} FROM accounts ORDER BY domain, address", kAccountColumns))
        : db_->prepare(fmt::format("SELECT {} FROM accounts WHERE domain = ? ORDER BY address", kAccountColumns));
    if (!domain.empty()) st.bind(1, ascii_lower(domain));
    while (st.step()) r.push_back(row_to_account(st));
    return r;
}

std::size_t AccountsDb::account_count() {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    auto st = db_->prepare("SELECT COUNT(*) FROM accounts");
    return st.step() ? static_cast<std::size_t>(st.int64(0)) : 0;
}

bool AccountsDb::set_secrets(const AccountRecord& a) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    auto st = db_->prepare("UPDATE accounts SET password = ?, scram_sha1 = ?, scram_sha256 = ?, cram_md5 = ?, "
                           "credential_version = credential_version + 1 WHERE address = ?");
    st.bind(1, a.password).bind(2, a.scram_sha1).bind(3, a.scram_sha256).bind(4, a.cram_md5).bind(5, ascii_lower(a.address)).run();
    return sqlite3_changes(db_->handle()) > 0;
}

bool AccountsDb::set_enabled(std::string_view address, bool enabled) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    auto st = db_->prepare("UPDATE accounts SET enabled = ?, credential_version = credential_version + 1 WHERE address = ?");
    st.bind(1, std::int64_t{enabled}).bind(2, ascii_lower(address)).run();
    return sqlite3_changes(db_->handle()) > 0;
}

bool AccountsDb::bump_credentials(std::string_view address) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    auto st = db_->prepare("UPDATE accounts SET credential_version = credential_version + 1 WHERE address = ?");
    st.bind(1, ascii_lower(address)).run();
    return sqlite3_changes(db_->handle()) > 0;
}

bool AccountsDb::set_quota(std::string_view address, std::optional<std::uint64_t> bytes, std::optional<std::uint64_t> messages) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    auto st = db_->prepare("UPDATE accounts SET quota_bytes = ?, quota_messages = ? WHERE address = ?");
    if (bytes) st.bind(1, static_cast<std::int64_t>(*bytes)); else st.bind_null(1);
    if (messages) st.bind(2, static_cast<std::int64_t>(*messages)); else st.bind_null(2);
    st.bind(3, ascii_lower(address)).run();
    return sqlite3_changes(db_->handle()) > 0;
}

void AccountsDb::record_login(std::string_view address, std::int64_t when) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    auto st = db_->prepare("UPDATE accounts SET last_login = ? WHERE address = ?");
    st.bind(1, when).bind(2, ascii_lower(address)).run();
}

bool AccountsDb::add_alias(std::string_view source, std::string_view target) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    auto st = db_->prepare("INSERT OR IGNORE INTO aliases(source, target) VALUES (?, ?)");
    st.bind(1, ascii_lower(source)).bind(2, ascii_lower(target)).run();
    return sqlite3_changes(db_->handle()) > 0;
}

std::size_t AccountsDb::delete_alias(std::string_view source, std::string_view target) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    auto st = target.empty() ? db_->prepare("DELETE FROM aliases WHERE source = ?")
                             : db_->prepare("DELETE FROM aliases WHERE source = ? AND target = ?");
    st.bind(1, ascii_lower(source));
    if (!target.empty()) st.bind(2, ascii_lower(target));
    st.run();
    return static_cast<std::size_t>(sqlite3_changes(db_->handle()));
}

std::vector<std::string> AccountsDb::alias_targets(std::string_view source) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    std::vector<std::string> r;
    auto st = db_->prepare("SELECT target FROM aliases WHERE source = ? ORDER BY rowid");
    st.bind(1, ascii_lower(source));
    while (st.step()) r.push_back(st.text(0));
    return r;
}

std::vector<AliasRecord> AccountsDb::aliases() {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    std::vector<AliasRecord> r;
    auto st = db_->prepare("SELECT source, target FROM aliases ORDER BY source, rowid");
    while (st.step()) r.push_back({st.text(0), st.text(1)});
    return r;
}

void AccountsDb::transaction(const std::function<void()>& fn) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);  // recursive: fn's statements take it again
    storage::sqlite::Db::Transaction tx(*db_);
    fn();
    tx.commit();
}

void AccountsDb::read(const std::function<void()>& fn) {
    blocking_call("AccountsDb");
    std::lock_guard lock(mu_);
    storage::sqlite::Db::Transaction tx(*db_, true);
    fn();
    tx.commit();
}

}  // namespace pillarbox::auth
