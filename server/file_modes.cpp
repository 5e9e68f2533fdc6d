// Private folder creation and the mode check of the data folder (see file_modes.hpp).
#include "file_modes.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace pillarbox::files {

namespace fs = std::filesystem;

bool make_private_directories(const fs::path& dir, std::error_code& ec) {
    ec.clear();
    if (dir.empty()) return true;
    struct stat st{};
    if (::stat(dir.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) return true;
        ec = std::make_error_code(std::errc::not_a_directory);
        return false;
    }
    fs::path parent = dir.parent_path();
    if (!parent.empty() && parent != dir && !make_private_directories(parent, ec)) return false;
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        ec = std::error_code(errno, std::generic_category());
        return false;
    }
    return true;
}

namespace {

// top: the data folder itself may be a symbolic link to where the data is.
void visit(const fs::path& p, bool fix, std::vector<LooseMode>& out, bool top = false) {
    struct stat st{};
    if ((top ? ::stat(p.c_str(), &st) : ::lstat(p.c_str(), &st)) != 0) return;  // gone meanwhile
    bool dir = S_ISDIR(st.st_mode);
    if (!dir && !S_ISREG(st.st_mode)) return;
    mode_t mode = st.st_mode & 07777;
    if (mode & 077) {
        LooseMode l;
        l.path = p.string();
        l.mode = mode;
        l.wanted = mode & ~static_cast<mode_t>(077);
        if (fix) {
            if (::chmod(p.c_str(), l.wanted) == 0) l.fixed = true;
            else l.error = std::strerror(errno);
        }
        out.push_back(std::move(l));
    }
    if (!dir) return;
    std::error_code ec;
    fs::directory_iterator it(p, ec), end;
    if (ec) return;  // unreadable: its own entry above says what is wrong, if anything
    for (; it != end; it.increment(ec)) {
        if (ec) break;
        visit(it->path(), fix, out);
    }
}

}  // namespace

std::vector<LooseMode> find_loose_modes(const fs::path& dir, bool fix) {
    std::vector<LooseMode> out;
    visit(dir, fix, out, true);
    return out;
}

}  // namespace pillarbox::files
