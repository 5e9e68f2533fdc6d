// New message files: O_TMPFILE + linkat, or tmp/ + rename (see message_file.hpp).
#include "storage/message_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <fmt/format.h>
#include <system_error>

#include "storage/account.hpp"

namespace pillarbox::storage {

namespace fs = std::filesystem;

namespace {

// 1: unnamed files work; 0: not known yet; -1: they don't (decided by the first failure to
// create or link one, after which every delivery takes the named way).
std::atomic<int> g_unnamed{0};

std::string proc_path(int fd) { return fmt::format("/proc/self/fd/{}", fd); }

}  // namespace

OpenFile::~OpenFile() {
    if (fd_ >= 0) ::close(fd_);
}

MessageCopy::~MessageCopy() {
    if (fd >= 0) ::close(fd);
}

int create_message_file(const fs::path& tmp_dir, NewMessage& m) {
    if (g_unnamed.load() >= 0) {
        int fd = ::open(tmp_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0) {
            m.file = std::make_shared<OpenFile>(fd);
            m.tmp_path.clear();
            return fd;
        }
        // Not supported by this file system (or this kernel): the named way from now on.
        if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) g_unnamed.store(-1);
        else return -1;
    }
    m.tmp_path = (tmp_dir / m.base).string();
    return ::open(m.tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

void place_message_file(NewMessage& m, const fs::path& target) {
    if (m.file) {
        // linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH (not in Docker's default set); the
        // /proc link with AT_SYMLINK_FOLLOW needs only /proc.
        if (::linkat(AT_FDCWD, proc_path(m.file->fd()).c_str(), AT_FDCWD, target.c_str(), AT_SYMLINK_FOLLOW) != 0) {
            int err = errno;
            if (err == ENOENT && g_unnamed.load() == 0) g_unnamed.store(-1);  // no /proc: named files next time
            throw std::system_error(err, std::generic_category(), "link into " + target.string());
        }
        g_unnamed.store(1);
        m.file.reset();
        return;
    }
    if (::rename(m.tmp_path.c_str(), target.c_str()) != 0)
        throw std::system_error(errno, std::generic_category(), "rename into " + target.string());
    m.tmp_path.clear();
}

void set_message_mtime(const NewMessage& m, std::int64_t secs) {
    const timespec times[2] = {{secs, 0}, {secs, 0}};
    int rc = m.file ? ::futimens(m.file->fd(), times) : ::utimensat(AT_FDCWD, m.tmp_path.c_str(), times, 0);
    if (rc != 0) throw std::system_error(errno, std::generic_category(), "set the time of " + message_file_label(m));
}

void discard_message_file(NewMessage& m) {
    if (!m.tmp_path.empty()) ::unlink(m.tmp_path.c_str());
    m.tmp_path.clear();
    m.file.reset();
}

void use_unnamed_message_files(bool on) { g_unnamed.store(on ? 0 : -1); }

std::string message_file_label(const NewMessage& m) {
    return m.tmp_path.empty() ? "unnamed file for " + m.base : m.tmp_path;
}

}  // namespace pillarbox::storage
