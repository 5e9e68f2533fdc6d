// The admin service layer's context: the account database and the settings the rules depend on.
// The operations (accounts_service, domains_service, aliases_service, first_admin) take it and
// typed arguments, and return typed results or errors; they never print, prompt or exit, so the
// CLI (app/) and the HTTP API are thin shells over them. Each is a short blocking SQLite call.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "auth/accounts.hpp"
#include "auth/password.hpp"
#include "auth/recipients.hpp"

namespace pillarbox::config { class Config; }

namespace pillarbox::auth::admin {

// From the configuration: from() sets every field (the defaults are the parameters', written
// once in server/parameters.cpp).
struct AdminSettings {
    std::string data_directory;    // as configured: messages and maildir paths are written under it
    std::string myhostname;        // the first admin is postmaster@myhostname
    RecipientSettings recipients;  // mydestination: the domains local without the database
    HashSettings hash;             // for new passwords
    bool store_cram_md5{};         // auth_mechanisms has CRAM-MD5: keep its secret with each password
    bool builtin_backend{};        // auth_backends has builtin (the database holds logins)
    static AdminSettings from(const config::Config& c);
};

class Admin {
public:
    // The database at `db_file`, opened (and created) when an operation first needs it: a
    // request refused on its arguments alone leaves no file behind.
    Admin(std::filesystem::path db_file, AdminSettings settings);
    // A database that is already open (the server's).
    Admin(std::shared_ptr<AccountsDb> db, AdminSettings settings);
    // DATA/pillarbox.db and the settings of `c`.
    static Admin from(const config::Config& c);

    // Throws std::runtime_error when the database can't be opened.
    AccountsDb& db();
    const AdminSettings& settings() const { return s_; }
    // Mail for `domain` is delivered here: mydestination or a database domain.
    bool domain_is_local(std::string_view domain);

private:
    std::filesystem::path db_file_;
    std::shared_ptr<AccountsDb> db_;
    AdminSettings s_;
};

}  // namespace pillarbox::auth::admin
