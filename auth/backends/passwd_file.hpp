// The passwd-file backend: accounts in Dovecot's passwd-file format, so an existing
// /etc/dovecot/users works unchanged. The file is re-read when it changes on disk.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "auth/backend.hpp"

namespace pillarbox::auth {

struct ParsedPasswdFile {
    std::map<std::string, Credentials> entries;  // by lower-cased user name
    std::vector<std::string> diagnostics;        // "line N: reason", never a password
};

// Parses `user:password[:uid:gid:gecos:home:shell:extra fields]`. Extra fields are space-separated
// `key=value` (or a bare `key`, stored with an empty value) and may contain ':'. Blank lines and
// '#' comments are skipped; malformed lines are skipped with a diagnostic; for a duplicate user
// the first line wins. Accepts LF and CRLF line endings.
ParsedPasswdFile parse_passwd_file(std::string_view text);

class PasswdFileBackend : public Backend {
public:
    // Reads the file now; throws std::runtime_error naming the path when it can't be read.
    // `recheck_interval`: how often lookups stat() the file for changes (tests pass zero).
    explicit PasswdFileBackend(std::string path,
                               std::chrono::steady_clock::duration recheck_interval = std::chrono::seconds(1));

    std::string name() const override;
    std::optional<Credentials> lookup(const std::string& login) override;
    bool may_have_cram_secrets() const override;

    // The diagnostics of the last load attempt: malformed lines, or why a reload failed (the
    // previous content then stays in use). Log them when generation() changes.
    std::vector<std::string> diagnostics() const;
    // Counts load attempts, successful or not, starting at 1 after the constructor.
    std::uint64_t generation() const;

private:
    struct Table {
        std::map<std::string, Credentials> entries;
        bool may_have_cram_secrets = false;
    };
    // What identifies one version of the file on disk.
    struct FileId {
        dev_t dev = 0;
        ino_t ino = 0;
        off_t size = 0;
        std::int64_t mtime_ns = 0;
        std::int64_t ctime_ns = 0;
        bool operator==(const FileId&) const = default;
    };

    void maybe_reload();
    // Reads and installs the file; throws std::runtime_error when it can't be read.
    void load();

    const std::string path_;
    const std::chrono::steady_clock::duration recheck_interval_;

    // Held only by the thread checking for changes; others skip the check rather than wait.
    std::mutex reload_mutex_;
    std::chrono::steady_clock::time_point last_check_{};  // guarded by reload_mutex_
    FileId file_id_{};                                    // guarded by reload_mutex_
    bool last_load_failed_ = false;                       // guarded by reload_mutex_

    // Readers copy the pointer under a shared lock, so a reload never blocks a lookup for long.
    mutable std::shared_mutex mutex_;
    std::shared_ptr<const Table> table_;
    std::vector<std::string> diagnostics_;
    std::uint64_t generation_ = 0;
};

}  // namespace pillarbox::auth
