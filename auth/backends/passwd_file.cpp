// The passwd-file backend: parsing Dovecot's format and re-reading the file when it changes,
// with lookups from several worker threads at once.
#include "auth/backends/passwd_file.hpp"
#include "server/ascii.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

namespace pillarbox::auth {

namespace {

// Dovecot's own limit is about this; a longer line is more likely a corrupt file than an account.
constexpr std::size_t kMaxLineLength = 64 * 1024;

bool blank(std::string_view s) { return s.find_first_not_of(" \t") == std::string_view::npos; }

bool bad_user_char(unsigned char c) { return c <= 0x20 || c == 0x7f; }

// Whether the stored value keeps a secret CRAM-MD5 can use: the scheme in "{...}", with Dovecot's
// ".b64"/".hex" encoding suffix ignored. A bare crypt string never does.
bool cram_capable(std::string_view password) {
    if (password.empty() || password.front() != '{')
        return false;
    auto close = password.find('}');
    if (close == std::string_view::npos)
        return false;
    std::string scheme;
    for (char c : password.substr(1, close - 1)) {
        if (c == '.')
            break;
        scheme += ascii_upper(c);
    }
    return scheme == "PLAIN" || scheme == "CLEARTEXT" || scheme == "CRAM-MD5";
}

std::string at_line(std::size_t n, std::string_view reason) {
    return "line " + std::to_string(n) + ": " + std::string(reason);
}

std::int64_t to_ns(const timespec& ts) {
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::runtime_error file_error(const std::string& path, std::string_view what, int err) {
    return std::runtime_error("passwd-file " + path + ": " + std::string(what) + ": " + std::strerror(err));
}

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd_ >= 0)
            ::close(fd_);
    }
    int get() const { return fd_; }

private:
    int fd_;
};

}  // namespace

ParsedPasswdFile parse_passwd_file(std::string_view text) {
    ParsedPasswdFile out;
    std::map<std::string, std::size_t, std::less<>> first_line;
    std::size_t line_no = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        ++line_no;
        auto nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);

        if (line.size() > kMaxLineLength) {
            out.diagnostics.push_back(at_line(line_no, "longer than 65536 bytes, skipped"));
            continue;
        }
        if (blank(line) || line[line.find_first_not_of(" \t")] == '#')
            continue;
        // Diagnostics never quote the line: a malformed one may well be a password pasted alone.
        auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            out.diagnostics.push_back(at_line(line_no, "no ':' after the user name, skipped"));
            continue;
        }
        std::string_view user = line.substr(0, colon);
        if (user.empty()) {
            out.diagnostics.push_back(at_line(line_no, "empty user name, skipped"));
            continue;
        }
        bool bad = false;
        for (char c : user)
            bad = bad || bad_user_char(static_cast<unsigned char>(c));
        if (bad) {
            out.diagnostics.push_back(at_line(line_no, "user name contains whitespace or control characters, skipped"));
            continue;
        }

        // password, uid, gid, gecos, home, shell; whatever follows the 7th ':' is the extra fields,
        // which may contain ':' themselves (userdb_quota_rule=*:storage=1G).
        std::string_view fields[6];
        std::string_view extras;
        std::string_view rest = line.substr(colon + 1);
        for (std::size_t i = 0; i < 6; ++i) {
            auto c = rest.find(':');
            fields[i] = rest.substr(0, c);
            if (c == std::string_view::npos) {
                rest = {};
                break;
            }
            rest.remove_prefix(c + 1);
            if (i == 5)
                extras = rest;
        }

        std::string key = ascii_lower(user);
        if (auto it = first_line.find(key); it != first_line.end()) {
            out.diagnostics.push_back(at_line(line_no, "duplicate user " + key + " (first on line " +
                                                           std::to_string(it->second) + "), skipped"));
            continue;
        }

        Credentials cred;
        cred.user = key;
        cred.password = std::string(fields[0]);
        if (!fields[1].empty())
            cred.extra["uid"] = std::string(fields[1]);
        if (!fields[2].empty())
            cred.extra["gid"] = std::string(fields[2]);
        if (!fields[4].empty())
            cred.extra["home"] = std::string(fields[4]);
        while (!extras.empty()) {
            auto start = extras.find_first_not_of(" \t");
            if (start == std::string_view::npos)
                break;
            extras.remove_prefix(start);
            auto end = extras.find_first_of(" \t");
            std::string_view token = extras.substr(0, end);
            extras.remove_prefix(end == std::string_view::npos ? extras.size() : end);
            auto eq = token.find('=');
            std::string_view name = token.substr(0, eq);
            if (name.empty()) {
                out.diagnostics.push_back(at_line(line_no, "extra field without a name ignored"));
                continue;
            }
            cred.extra.insert_or_assign(std::string(name),
                                        eq == std::string_view::npos ? std::string() : std::string(token.substr(eq + 1)));
        }
        if (cred.extra.count("nologin"))
            cred.enabled = false;

        first_line.emplace(key, line_no);
        out.entries.emplace(std::move(key), std::move(cred));
    }
    return out;
}

PasswdFileBackend::PasswdFileBackend(std::string path, std::chrono::steady_clock::duration recheck_interval)
    : path_(std::move(path)), recheck_interval_(recheck_interval) {
    std::lock_guard lk(reload_mutex_);
    load();
    last_check_ = std::chrono::steady_clock::now();
}

std::string PasswdFileBackend::name() const { return "passwd-file:" + path_; }

void PasswdFileBackend::load() {
    Fd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0)
        throw file_error(path_, "cannot open", errno);
    // The identity comes from the open file, so a file replaced while we read it is noticed at
    // the next check rather than mistaken for the version we loaded.
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0)
        throw file_error(path_, "cannot stat", errno);
    if (!S_ISREG(st.st_mode))
        throw std::runtime_error("passwd-file " + path_ + ": not a regular file");
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw file_error(path_, "cannot read", errno);
        }
        if (n == 0)
            break;
        text.append(buf, static_cast<std::size_t>(n));
    }

    ParsedPasswdFile parsed = parse_passwd_file(text);
    auto table = std::make_shared<Table>();
    for (const auto& [user, cred] : parsed.entries)
        table->may_have_cram_secrets = table->may_have_cram_secrets || cram_capable(cred.password);
    table->entries = std::move(parsed.entries);

    {
        std::unique_lock lk(mutex_);
        table_ = std::move(table);
        diagnostics_ = std::move(parsed.diagnostics);
        ++generation_;
    }
    file_id_ = FileId{st.st_dev, st.st_ino, st.st_size, to_ns(st.st_mtim), to_ns(st.st_ctim)};
    last_load_failed_ = false;
}

void PasswdFileBackend::maybe_reload() {
    std::unique_lock check(reload_mutex_, std::try_to_lock);
    if (!check.owns_lock())
        return;  // another thread is checking; this lookup uses the current table
    auto now = std::chrono::steady_clock::now();
    if (now - last_check_ < recheck_interval_)
        return;
    last_check_ = now;

    try {
        struct stat st{};
        if (::stat(path_.c_str(), &st) != 0)
            throw file_error(path_, "cannot stat", errno);
        FileId id{st.st_dev, st.st_ino, st.st_size, to_ns(st.st_mtim), to_ns(st.st_ctim)};
        // After a failed load, retry even when nothing seems changed: the error may have been
        // transient.
        if (id == file_id_ && !last_load_failed_)
            return;
        load();
    } catch (const std::runtime_error& e) {
        std::string msg = std::string(e.what()) + "; keeping the accounts loaded before";
        std::unique_lock lk(mutex_);
        // A file that stays broken is reported once, not at every check.
        if (!last_load_failed_ || diagnostics_ != std::vector<std::string>{msg}) {
            diagnostics_ = {std::move(msg)};
            ++generation_;
        }
        last_load_failed_ = true;
    }
}

std::optional<Credentials> PasswdFileBackend::lookup(const std::string& login) {
    maybe_reload();
    std::shared_ptr<const Table> table;
    {
        std::shared_lock lk(mutex_);
        table = table_;
    }
    auto it = table->entries.find(ascii_lower(login));
    if (it == table->entries.end())
        return std::nullopt;
    return it->second;
}

bool PasswdFileBackend::may_have_cram_secrets() const {
    std::shared_lock lk(mutex_);
    return table_->may_have_cram_secrets;
}

std::vector<std::string> PasswdFileBackend::diagnostics() const {
    std::shared_lock lk(mutex_);
    return diagnostics_;
}

std::uint64_t PasswdFileBackend::generation() const {
    std::shared_lock lk(mutex_);
    return generation_;
}

}  // namespace pillarbox::auth
