// The account administration commands: pillarbox user|domain|alias|aliases ... They open the
// account database directly, so they work the same with the server running (SQLite WAL; the
// server reads the database on every lookup) and with it stopped.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "auth/accounts.hpp"
#include "auth/password.hpp"

namespace pillarbox::config { class Config; }

namespace pillarbox::auth::admin {

struct UserOptions {
    std::optional<std::uint64_t> quota_bytes, quota_messages;
    bool admin = false;
    bool disabled = false;
};

int user_add(const config::Config& c, const std::string& address, const UserOptions& o);
int user_del(const config::Config& c, const std::string& address);
int user_passwd(const config::Config& c, const std::string& address);
int user_list(const config::Config& c, const std::string& domain);
int user_show(const config::Config& c, const std::string& address);
int user_set(const config::Config& c, const std::string& address, std::optional<bool> enabled,
             std::optional<std::string> quota, std::optional<std::string> message_quota);
int domain_add(const config::Config& c, const std::string& domain);
int domain_del(const config::Config& c, const std::string& domain);
int domain_list(const config::Config& c);
int alias_add(const config::Config& c, const std::string& source, const std::vector<std::string>& targets);
int alias_del(const config::Config& c, const std::string& source, const std::string& target);
int alias_list(const config::Config& c);
int aliases_import(const config::Config& c, const std::string& file);

// Fills the password hash (argon2id), the SCRAM keys and, when CRAM-MD5 is enabled, its secret.
void set_password(AccountRecord& a, std::string_view password, const HashSettings& h, bool store_cram_md5);

// On a terminal: prompts twice with echo off. Otherwise: one line from standard input.
// nullopt (with a message printed) on mismatch, empty input or end of file.
std::optional<std::string> read_new_password();

// The first start of a server with no accounts: creates postmaster@$myhostname as an admin with
// a random password and returns "address password" for printing once; nullopt when accounts
// exist or the builtin backend is not used.
std::optional<std::pair<std::string, std::string>> create_first_admin(const config::Config& c);

// The file in the data folder that holds the first admin's password when nobody is at a terminal.
inline constexpr const char* kFirstAdminFile = "first-admin-password";

// Writes the address and password to file (mode 0600, replacing an older one). Error text, or "".
std::string write_first_admin_file(const std::filesystem::path& file, const std::string& address, const std::string& password);

// serve's first start: create_first_admin, then hand the password over without it reaching the
// log. Standard output a terminal: printed there once. Otherwise (Docker, systemd, a pipe):
// written to DATA/first-admin-password (0600), and the log says where. Throws std::runtime_error
// when that file can't be written (the account is removed again).
void announce_first_admin(const config::Config& c);

}  // namespace pillarbox::auth::admin
