// Account operations of the admin service layer (see accounts_service.hpp).
#include "auth/admin/accounts_service.hpp"

#include <fmt/format.h>

#include "auth/password.hpp"
#include "server/ascii.hpp"
#include "server/config_values.hpp"
#include "server/mail_names.hpp"

namespace pillarbox::auth::admin {

namespace {

// Why normalise_address refused an address.
Error not_an_address(std::string_view address) {
    if (address.find('@') == std::string_view::npos)
        return {Errc::InvalidAddress, fmt::format("{}: not an address (localpart@domain)", address)};
    if (address.size() > 254) return {Errc::InvalidAddress, fmt::format("{}: not a valid address (longer than 254 bytes)", address)};
    auto why = names::address_problem(address);
    return {Errc::InvalidAddress, fmt::format("{}: not a valid address ({})", address, why.empty() ? "localpart@domain" : why)};
}

Error no_such_account(const std::string& address) { return {Errc::NoSuchAccount, fmt::format("{}: no such account", address)}; }

std::string maildir_of(const Admin& admin, const std::string& address) {
    auto at = address.rfind('@');
    return fmt::format("{}/mail/{}/{}", admin.settings().data_directory, address.substr(at + 1), address.substr(0, at));
}

AccountInfo info_of(const Admin& admin, const AccountRecord& a) {
    AccountInfo i;
    i.address = a.address;
    i.enabled = a.enabled;
    i.admin = a.admin;
    i.password_scheme = a.password.empty() ? "none" : scheme_of(a.password);
    if (!a.scram_sha256.empty()) i.stored_secrets.push_back("SCRAM-SHA-256");
    if (!a.scram_sha1.empty()) i.stored_secrets.push_back("SCRAM-SHA-1");
    if (!a.cram_md5.empty()) i.stored_secrets.push_back("CRAM-MD5");
    i.quota_bytes = a.quota_bytes;
    i.quota_messages = a.quota_messages;
    i.created = a.created;
    i.last_login = a.last_login;
    i.maildir = maildir_of(admin, a.address);
    return i;
}

// A quota as written: "", "none" and "default" give the global limit back (nullopt).
std::optional<std::uint64_t> parse_quota(const std::string& v, bool size, std::string& err) {
    if (v.empty() || v == "none" || v == "default") return std::nullopt;
    if (size) {
        auto r = config::parse_size(v);
        if (!r.error.empty()) err = r.error;
        return r.value;
    }
    auto r = config::parse_uint(v, 0, UINT64_MAX);
    if (!r.error.empty()) err = r.error;
    return r.value;
}

}  // namespace

void fill_secrets(AccountRecord& a, std::string_view password, const HashSettings& h, bool store_cram_md5) {
    a.password = hash_password(password, h);
    a.scram_sha256 = format_scram(scram_keys(ScramHash::Sha256, password, h.scram_iterations));
    a.scram_sha1 = format_scram(scram_keys(ScramHash::Sha1, password, h.scram_iterations));
    a.cram_md5 = store_cram_md5 ? format_cram_md5(cram_md5_context(password)) : std::string();
}

std::optional<Error> password_problem(std::string_view password) {
    if (password.empty()) return Error{Errc::BadPassword, "empty password"};
    if (password.size() > kMaxPassword)
        return Error{Errc::BadPassword, fmt::format("password longer than {} bytes", kMaxPassword)};
    return std::nullopt;
}

Result<std::string> check_new_account(Admin& admin, const NewAccount& account) {
    auto addr = normalise_address(account.address);
    if (addr.empty()) return not_an_address(account.address);
    auto domain = addr.substr(addr.rfind('@') + 1);
    if (!admin.domain_is_local(domain))
        return Error{Errc::DomainNotLocal, fmt::format("{}: mail for {} is not delivered here; add the domain first", addr, domain),
                     domain};
    if (admin.db().account(addr)) return Error{Errc::AccountExists, fmt::format("{}: account exists", addr)};
    return addr;
}

Result<std::string> add_account(Admin& admin, const NewAccount& account, std::string_view password) {
    auto addr = check_new_account(admin, account);
    if (!addr) return addr;
    if (auto bad = password_problem(password)) return *bad;
    AccountRecord a;
    a.address = addr.value();
    a.admin = account.admin;
    a.enabled = !account.disabled;
    a.quota_bytes = account.quota_bytes;
    a.quota_messages = account.quota_messages;
    fill_secrets(a, password, admin.settings().hash, admin.settings().store_cram_md5);
    // Someone else may have added it since the check.
    if (!admin.db().add_account(a)) return Error{Errc::AccountExists, fmt::format("{}: account exists", a.address)};
    return addr;
}

Result<DeletedAccount> delete_account(Admin& admin, std::string_view address) {
    auto addr = normalise_address(address);
    if (addr.empty() && address.find('@') != std::string_view::npos) addr = ascii_lower(address);
    if (addr.empty()) return not_an_address(address);
    if (!admin.db().delete_account(addr)) return no_such_account(addr);
    return DeletedAccount{addr, maildir_of(admin, addr)};
}

Result<AccountInfo> find_account(Admin& admin, std::string_view address) {
    auto addr = normalise_address(address);
    if (addr.empty()) return not_an_address(address);
    auto a = admin.db().account(addr);
    if (!a) return no_such_account(addr);
    auto info = info_of(admin, *a);
    info.maildir = maildir_of(admin, addr);
    for (auto& al : admin.db().aliases())
        if (al.target == addr) info.aliases.push_back(al.source);
    return info;
}

std::vector<AccountInfo> list_accounts(Admin& admin, std::string_view domain) {
    std::vector<AccountInfo> out;
    for (auto& a : admin.db().accounts(domain)) out.push_back(info_of(admin, a));
    return out;
}

Result<std::string> update_account(Admin& admin, std::string_view address, const AccountChanges& changes) {
    auto addr = normalise_address(address);
    if (addr.empty()) return not_an_address(address);
    auto a = admin.db().account(addr);
    if (!a) return no_such_account(addr);
    std::string err;  // the last quota refused, when both are
    auto bytes = changes.quota_bytes ? parse_quota(*changes.quota_bytes, true, err) : a->quota_bytes;
    auto messages = changes.quota_messages ? parse_quota(*changes.quota_messages, false, err) : a->quota_messages;
    if (!err.empty()) return Error{Errc::BadQuota, fmt::format("{}: {}", addr, err)};
    if (changes.enabled) admin.db().set_enabled(addr, *changes.enabled);
    if (changes.quota_bytes || changes.quota_messages) admin.db().set_quota(addr, bytes, messages);
    return addr;
}

Result<std::string> set_password(Admin& admin, std::string_view address, std::string_view password) {
    auto addr = normalise_address(address);
    if (addr.empty()) return not_an_address(address);
    auto a = admin.db().account(addr);
    if (!a) return no_such_account(addr);
    if (auto bad = password_problem(password)) return *bad;
    fill_secrets(*a, password, admin.settings().hash, admin.settings().store_cram_md5);
    if (!admin.db().set_secrets(*a)) return no_such_account(addr);
    return addr;
}

}  // namespace pillarbox::auth::admin
