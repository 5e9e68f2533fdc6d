// Account operations of the admin service layer: add, delete, show, list, change settings and
// password. The rules (address syntax, local domain, one account per address, quota syntax,
// password length) are here; prompting and printing are the shell's (app/cli_accounts.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/admin/admin.hpp"
#include "auth/admin/result.hpp"

namespace pillarbox::auth::admin {

inline constexpr std::size_t kMaxPassword = 1024;  // bytes

struct NewAccount {
    std::string address;  // localpart@domain, any case
    bool admin = false;    // may use the web UI's admin pages
    bool disabled = false;  // created unable to log in
    // Overrides of mailbox_size_limit and mailbox_message_limit; nullopt: those apply.
    std::optional<std::uint64_t> quota_bytes, quota_messages;
};

// An account as the admin sees it: no secrets, only which ones are stored.
struct AccountInfo {
    std::string address;
    bool enabled = true;
    bool admin = false;
    std::string password_scheme;              // "ARGON2ID", ...; "none" without a password
    std::vector<std::string> stored_secrets;  // "SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5"
    std::optional<std::uint64_t> quota_bytes, quota_messages;  // nullopt: the global limits
    std::int64_t created = 0;                 // unix seconds
    std::int64_t last_login = 0;              // unix seconds; 0: never
    std::string maildir;                      // DATA/mail/DOMAIN/LOCALPART
    std::vector<std::string> aliases;         // alias sources delivering to it (find_account only)
};

// What `update_account` changes; nullopt fields stay as they are.
struct AccountChanges {
    std::optional<bool> enabled;  // false: refuse logins (mail is still accepted)
    // As an admin writes them: a size ("2G") or a message count, or "default" (also "none" or
    // "") to go back to mailbox_size_limit / mailbox_message_limit.
    std::optional<std::string> quota_bytes, quota_messages;
};

struct DeletedAccount {
    std::string address;
    std::string maildir;  // left on disk for the admin to remove
};

// Empty when `password` may be set; else why not (empty, longer than kMaxPassword).
std::optional<Error> password_problem(std::string_view password);

// What add_account checks before it needs the password (a shell asks for it only then): a valid
// address, in a domain whose mail is delivered here, without an account. The normalised address.
Result<std::string> check_new_account(Admin& admin, const NewAccount& account);
// Those checks and the password's, then adds it. The normalised address.
Result<std::string> add_account(Admin& admin, const NewAccount& account, std::string_view password);
// Its mail stays on disk. An address stored by an older release, which today's rule refuses,
// can still be deleted.
Result<DeletedAccount> delete_account(Admin& admin, std::string_view address);
Result<AccountInfo> find_account(Admin& admin, std::string_view address);
// All accounts, or one domain's; sorted by domain, then address.
std::vector<AccountInfo> list_accounts(Admin& admin, std::string_view domain = {});
// The normalised address. Nothing changes when any part is refused.
Result<std::string> update_account(Admin& admin, std::string_view address, const AccountChanges& changes);
// Replaces the password and the secrets derived from it (SCRAM keys, CRAM-MD5 when offered).
Result<std::string> set_password(Admin& admin, std::string_view address, std::string_view password);

// Fills the password hash (argon2id), the SCRAM keys and, when store_cram_md5, CRAM-MD5's secret.
void fill_secrets(AccountRecord& a, std::string_view password, const HashSettings& h, bool store_cram_md5);

}  // namespace pillarbox::auth::admin
