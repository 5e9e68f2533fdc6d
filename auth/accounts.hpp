// The global account database (DATA/pillarbox.db, SQLite in WAL mode): virtual domains, accounts
// with their password hashes and quota overrides, and aliases. The server and the CLI open it
// side by side; every call is a short blocking SQLite statement, so the server makes them on a
// worker thread. Addresses are stored lower-case.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pillarbox::storage::sqlite { class Db; }

namespace pillarbox::auth {

struct AccountRecord {
    std::string address;          // localpart@domain, lower case
    std::string password;         // "{ARGON2ID}..." or an imported scheme; empty: no login
    std::string scram_sha1, scram_sha256, cram_md5;
    std::optional<std::uint64_t> quota_bytes, quota_messages;  // overrides of mailbox_*_limit
    bool enabled = true;          // false: cannot log in (mail is still accepted)
    bool admin = false;           // may use the web UI's admin pages
    std::int64_t created = 0;     // unix seconds
    std::int64_t last_login = 0;  // unix seconds, 0 = never
    // Bumped by every change of the login rights (set_secrets, set_enabled, bump_credentials):
    // the authentication cache compares it at each login.
    std::int64_t credential_version = 0;
};

// delete_domain refused: accounts are left in the domain.
struct DomainInUse : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct AliasRecord {
    std::string source;  // "local@domain", "@domain" (catch-all) or "local" (aliases(5): any local domain)
    std::string target;  // an address (local or remote)
};

class AccountsDb {
public:
    // Opens (creating and migrating) the database. Throws std::runtime_error.
    explicit AccountsDb(const std::filesystem::path& file);
    ~AccountsDb();
    AccountsDb(const AccountsDb&) = delete;
    AccountsDb& operator=(const AccountsDb&) = delete;

    static std::filesystem::path path_in(const std::filesystem::path& data_directory) {
        return data_directory / "pillarbox.db";
    }

    // Domains hosted here besides mydestination (Postfix's virtual mailbox domains).
    bool add_domain(std::string_view domain);     // false: already there
    bool delete_domain(std::string_view domain);  // false: not there. Throws DomainInUse while accounts use it.
    bool has_domain(std::string_view domain);
    std::vector<std::string> domains();

    bool add_account(const AccountRecord& a);     // false: the address exists
    bool delete_account(std::string_view address);
    std::optional<AccountRecord> account(std::string_view address);
    std::vector<AccountRecord> accounts(std::string_view domain = {});  // all, or one domain's
    std::size_t account_count();
    // Replaces the stored secrets (password, SCRAM keys, CRAM-MD5) of an account.
    bool set_secrets(const AccountRecord& a);
    bool set_enabled(std::string_view address, bool enabled);
    // Invalidates cached logins of the account without changing anything else (e.g. a revoked
    // app password).
    bool bump_credentials(std::string_view address);
    bool set_quota(std::string_view address, std::optional<std::uint64_t> bytes, std::optional<std::uint64_t> messages);
    void record_login(std::string_view address, std::int64_t when);

    bool add_alias(std::string_view source, std::string_view target);      // false: exists
    std::size_t delete_alias(std::string_view source, std::string_view target = {});  // all targets when empty
    std::vector<std::string> alias_targets(std::string_view source);
    std::vector<AliasRecord> aliases();

    // Runs fn inside one transaction (alias import).
    void transaction(const std::function<void()>& fn);
    // Runs fn's lookups in one read transaction: one snapshot, and one round of SQLite's locks
    // instead of one per query (a recipient lookup makes three to five).
    void read(const std::function<void()>& fn);

private:
    std::recursive_mutex mu_;  // one connection, shared by worker threads (transaction() holds it)
    std::unique_ptr<storage::sqlite::Db> db_;
};

// "Bob@Example.COM" -> "bob@example.com"; empty when not localpart@domain with sane characters
// (no whitespace, control characters, '/', or quotes; one '@'; non-empty parts; length <= 254).
std::string normalise_address(std::string_view address);

}  // namespace pillarbox::auth
