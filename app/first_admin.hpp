// serve's first start: the first admin account, and handing its password over without it
// reaching the log.
#pragma once

namespace pillarbox::config { class Config; }

namespace pillarbox::app {

// create_first_admin, then: standard output a terminal: the password is printed there once.
// Otherwise (Docker, systemd, a pipe): written to DATA/first-admin-password (0600), and the log
// says where. Throws std::runtime_error when that file can't be written (the account is removed
// again, so that the next start creates it anew).
void announce_first_admin(const config::Config& c);

}  // namespace pillarbox::app
