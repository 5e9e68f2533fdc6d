// Private files: the data folder holds password hashes, SCRAM keys, mail and the TLS key, so
// everything in it is for the server's user only (folders 0700, files 0600). The process umask
// (077, set at the start of main) covers what is created later; these helpers create folders
// with that mode whatever the umask, and find (and repair) looser modes left by older versions
// or by hand.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace pillarbox::files {

// mkdir -p, each folder it creates with mode 0700. False with ec set on failure.
bool make_private_directories(const std::filesystem::path& dir, std::error_code& ec);

struct LooseMode {
    std::string path;
    mode_t mode = 0;    // permission bits found
    mode_t wanted = 0;  // the same without group and other bits
    bool fixed = false;
    std::string error;  // chmod's failure, when fixing
};

// Walks dir and everything below it without following symbolic links and reports the folders
// and regular files whose mode gives group or others any access (sockets, links and other
// special files are left alone: an auth socket's mode is auth_socket_mode). With fix, each is
// chmod'ed to its mode without the group and other bits. Message files are included: one lstat
// each, a second or so per million files.
std::vector<LooseMode> find_loose_modes(const std::filesystem::path& dir, bool fix);

}  // namespace pillarbox::files
