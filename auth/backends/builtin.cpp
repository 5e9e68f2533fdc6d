// The `builtin` backend over AccountsDb.
#include "auth/backends/builtin.hpp"

#include <ctime>

namespace pillarbox::auth {

std::optional<Credentials> BuiltinBackend::lookup(const std::string& login) {
    auto a = db_->account(login);
    if (!a) return std::nullopt;
    Credentials c;
    c.user = a->address;
    c.password = a->password;
    c.scram_sha1 = a->scram_sha1;
    c.scram_sha256 = a->scram_sha256;
    c.cram_md5 = a->cram_md5;
    c.enabled = a->enabled;
    c.version = std::to_string(a->credential_version);
    if (a->quota_bytes) c.extra["quota_bytes"] = std::to_string(*a->quota_bytes);
    if (a->quota_messages) c.extra["quota_messages"] = std::to_string(*a->quota_messages);
    if (a->admin) c.extra["admin"] = "yes";
    return c;
}

void BuiltinBackend::store_rehash(const std::string& user, const Credentials& updated) {
    AccountRecord r;
    r.address = user;
    r.password = updated.password;
    r.scram_sha1 = updated.scram_sha1;
    r.scram_sha256 = updated.scram_sha256;
    r.cram_md5 = updated.cram_md5;
    db_->set_secrets(r);
}

void BuiltinBackend::record_login(const std::string& user) {
    db_->record_login(user, static_cast<std::int64_t>(std::time(nullptr)));
}

}  // namespace pillarbox::auth
