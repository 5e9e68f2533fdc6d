// The first start of a server with no accounts: its first admin account, and the file that hands
// the password over when nobody is at a terminal. Printing it is the shell's (app/first_admin.cpp).
#pragma once
#include <filesystem>
#include <optional>
#include <string>

#include "auth/admin/admin.hpp"

namespace pillarbox::auth::admin {

struct FirstAdmin {
    std::string address;   // postmaster@$myhostname
    std::string password;  // random, 20 characters without look-alikes
};

// Creates postmaster@$myhostname as an admin with a random password; nullopt when accounts
// exist or the builtin backend is not used.
std::optional<FirstAdmin> create_first_admin(Admin& admin);

// The file in the data folder that holds the first admin's password when nobody is at a terminal.
inline constexpr const char* kFirstAdminFile = "first-admin-password";

// Writes the address and password to file (mode 0600, replacing an older one). Error text, or "".
std::string write_first_admin_file(const std::filesystem::path& file, const std::string& address, const std::string& password);

}  // namespace pillarbox::auth::admin
