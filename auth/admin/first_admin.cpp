// The first admin account (see first_admin.hpp).
#include "auth/admin/first_admin.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "auth/admin/accounts_service.hpp"

namespace pillarbox::auth::admin {

std::optional<FirstAdmin> create_first_admin(Admin& admin) {
    if (!admin.settings().builtin_backend) return std::nullopt;
    auto& db = admin.db();
    if (db.account_count() > 0) return std::nullopt;
    static constexpr char kAlphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    std::string pw;
    while (pw.size() < 20) {
        std::uint8_t b;
        RAND_bytes(&b, 1);
        if (b < 256 - 256 % (sizeof kAlphabet - 1)) pw += kAlphabet[b % (sizeof kAlphabet - 1)];
    }
    AccountRecord a;
    a.address = normalise_address("postmaster@" + admin.settings().myhostname);
    if (a.address.empty()) return std::nullopt;
    a.admin = true;
    fill_secrets(a, pw, admin.settings().hash, admin.settings().store_cram_md5);
    if (!db.add_account(a)) return std::nullopt;
    return FirstAdmin{a.address, pw};
}

std::string write_first_admin_file(const std::filesystem::path& file, const std::string& address, const std::string& password) {
    // tmp + rename: never a half-written file, and never through a link someone left there.
    std::string tmp = file.string() + ".tmp";
    ::unlink(tmp.c_str());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return fmt::format("cannot create {}: {}", tmp, std::strerror(errno));
    std::string text = fmt::format(
        "# The first admin account, created at the first start. Change its password with\n"
        "# pillarbox user passwd {}\n# and then delete this file.\naddress: {}\npassword: {}\n",
        address, address, password);
    bool ok = ::fchmod(fd, 0600) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
              ::fsync(fd) == 0;
    int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), file.c_str()) != 0) {
        if (ok) err = errno;
        ::unlink(tmp.c_str());
        return fmt::format("cannot write {}: {}", file.string(), std::strerror(err));
    }
    return "";
}

}  // namespace pillarbox::auth::admin
