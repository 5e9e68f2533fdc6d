// An admin context on a fresh account database in a temp folder, with cheap password hashing:
// mydestination is mail.example and localhost.
#pragma once
#include "auth/admin/admin.hpp"
#include "tests/unit/server/test_support.hpp"
#include "tests/unit/test_config.hpp"

namespace pillarbox::test {

inline auth::admin::AdminSettings admin_settings(const TempDir& dir) {
    auto s = auth::admin::AdminSettings::from(config());
    s.data_directory = dir.path.string();
    s.myhostname = "mail.example";
    s.recipients.mydestination = {"mail.example", "localhost"};
    s.hash.argon2_ops = 1;
    s.hash.argon2_memory = 8u * 1024 * 1024;
    return s;
}

struct AdminBed {
    TempDir dir;
    auth::admin::Admin admin{dir.path / "pillarbox.db", admin_settings(dir)};
    std::filesystem::path db_file() const { return dir.path / "pillarbox.db"; }
};

}  // namespace pillarbox::test
