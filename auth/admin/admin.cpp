// The admin context (see admin.hpp).
#include "auth/admin/admin.hpp"

#include <algorithm>

#include "auth/authenticator.hpp"
#include "server/config.hpp"

namespace pillarbox::auth::admin {

AdminSettings AdminSettings::from(const config::Config& c) {
    AdminSettings s;
    s.data_directory = c.get("data_directory");
    s.myhostname = c.get("myhostname");
    s.recipients = RecipientSettings::from(c);
    auto auth = AuthSettings::from(c);
    s.hash = auth.hash;
    s.store_cram_md5 = std::find(auth.mechanisms.begin(), auth.mechanisms.end(), "CRAM-MD5") != auth.mechanisms.end();
    auto backends = c.get_list("auth_backends");
    s.builtin_backend = std::find(backends.begin(), backends.end(), "builtin") != backends.end();
    return s;
}

Admin::Admin(std::filesystem::path db_file, AdminSettings settings) : db_file_(std::move(db_file)), s_(std::move(settings)) {}

Admin::Admin(std::shared_ptr<AccountsDb> db, AdminSettings settings) : db_(std::move(db)), s_(std::move(settings)) {}

Admin Admin::from(const config::Config& c) {
    auto s = AdminSettings::from(c);
    auto file = AccountsDb::path_in(s.data_directory);
    return Admin(std::move(file), std::move(s));
}

AccountsDb& Admin::db() {
    if (!db_) db_ = std::make_shared<AccountsDb>(db_file_);
    return *db_;
}

bool Admin::domain_is_local(std::string_view domain) {
    RecipientResolver r(db(), s_.recipients);
    return r.is_local_domain(domain);
}

}  // namespace pillarbox::auth::admin
