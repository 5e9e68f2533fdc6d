// The `builtin` backend: accounts in the global SQLite database (pillarbox user add ...).
#pragma once
#include <memory>

#include "auth/accounts.hpp"
#include "auth/backend.hpp"

namespace pillarbox::auth {

class BuiltinBackend : public Backend {
public:
    explicit BuiltinBackend(std::shared_ptr<AccountsDb> db, bool cram_md5_enabled)
        : db_(std::move(db)), cram_(cram_md5_enabled) {}
    std::string name() const override { return "builtin"; }
    std::optional<Credentials> lookup(const std::string& login) override;
    bool may_have_cram_secrets() const override { return cram_; }
    bool can_store_secrets() const override { return true; }
    void store_rehash(const std::string& user, const Credentials& updated) override;
    void record_login(const std::string& user) override;

private:
    std::shared_ptr<AccountsDb> db_;
    bool cram_;
};

}  // namespace pillarbox::auth
