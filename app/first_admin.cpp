// The first admin's password, handed over once (see first_admin.hpp).
#include "app/first_admin.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "auth/admin/accounts_service.hpp"
#include "auth/admin/first_admin.hpp"
#include "server/config.hpp"
#include "server/log.hpp"

namespace pillarbox::app {

void announce_first_admin(const config::Config& c) {
    auto admin = auth::admin::Admin::from(c);
    auto first = auth::admin::create_first_admin(admin);
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
    auto file = std::filesystem::path(c.get("data_directory")) / auth::admin::kFirstAdminFile;
    if (auto err = auth::admin::write_first_admin_file(file, address, password); !err.empty()) {
        // Without the password nobody could use the account: take it back.
        (void)auth::admin::delete_account(admin, address);
        throw std::runtime_error(fmt::format("first admin account {}: {}", address, err));
    }
    log::info("master", "created the first admin account {}; its password is in {} (mode 0600)", address, file.string());
}

}  // namespace pillarbox::app
