// SQLite wrapper (see sqlite.hpp).
#include "sqlite.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <fmt/format.h>

namespace pillarbox::storage::sqlite {

namespace {
[[noreturn]] void fail(sqlite3* db, int rc, std::string_view what) {
    throw Error(rc, fmt::format("{}: {}", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
}
}  // namespace

Stmt::Stmt(sqlite3* db, std::string_view sql) : db_(db) {
    int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &st_, nullptr);
    if (rc != SQLITE_OK) fail(db, rc, fmt::format("prepare \"{}\"", sql));
}

Stmt::Stmt(Db& owner, std::string sql, sqlite3_stmt* st) : db_(owner.db_), st_(st), owner_(&owner), sql_(std::move(sql)) {}

Stmt::~Stmt() {
    if (!st_) return;
    if (owner_) owner_->give_back(std::move(sql_), st_);
    else sqlite3_finalize(st_);
}

Stmt Db::prepare(std::string_view sql) {
    std::string key(sql);
    if (auto it = cache_.find(key); it != cache_.end()) {
        sqlite3_stmt* st = it->second;
        cache_.erase(it);
        return Stmt(*this, std::move(key), st);
    }
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &st, nullptr);
    if (rc != SQLITE_OK) fail(db_, rc, fmt::format("prepare \"{}\"", sql));
    return Stmt(*this, std::move(key), st);
}

void Db::give_back(std::string sql, sqlite3_stmt* st) {
    // Reset ends the statement's read transaction: an idle cached statement must not pin an
    // old snapshot of the WAL.
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (cache_.size() < kCacheLimit && !cache_.count(sql)) cache_.emplace(std::move(sql), st);
    else sqlite3_finalize(st);
}

Stmt& Stmt::bind(int i, std::int64_t v) {
    if (int rc = sqlite3_bind_int64(st_, i, v); rc != SQLITE_OK) fail(db_, rc, "bind");
    return *this;
}

Stmt& Stmt::bind(int i, std::string_view v) {
    if (int rc = sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); rc != SQLITE_OK)
        fail(db_, rc, "bind");
    return *this;
}

Stmt& Stmt::bind_null(int i) {
    if (int rc = sqlite3_bind_null(st_, i); rc != SQLITE_OK) fail(db_, rc, "bind");
    return *this;
}

bool Stmt::step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, rc, "step");
}

void Stmt::run() {
    while (step()) {
    }
    reset();
}

void Stmt::reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
}

std::int64_t Stmt::int64(int col) const { return sqlite3_column_int64(st_, col); }

std::string Stmt::text(int col) const {
    auto* p = sqlite3_column_text(st_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(st_, col))) : "";
}

std::string_view Stmt::text_view(int col) const {
    auto* p = sqlite3_column_text(st_, col);
    return p ? std::string_view(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(st_, col)))
             : std::string_view();
}

bool Stmt::is_null(int col) const { return sqlite3_column_type(st_, col) == SQLITE_NULL; }

Db::Db(const std::string& path, Mode mode) {
    const bool read_only = mode == Mode::ReadOnly || path.rfind("file:", 0) == 0;
    if (!read_only && !path.empty() && path.front() != ':') {
        // A new database file is the server's alone (0600) whatever the umask; SQLite gives its
        // -wal and -shm files the database file's mode.
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) ::close(fd);
    }
    int flags = mode == Mode::ReadOnly             ? SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX
                : path.rfind("file:", 0) == 0 ? SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX
                                              : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    // Before the process's first connection (later it is refused, harmlessly): no up-front bulk
    // allocation of 20 pages' worth of page cache per connection. Pages are allocated as they are
    // read instead; an account's index that touches a few pages then costs that much. With 256
    // accounts open (open_accounts_limit) and 64 idle readers this was 30 of 69 MB of SQLite's
    // memory (bench/imap, 1,000 idle users).
    static const int configured = sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0);
    (void)configured;
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close(db_);
        db_ = nullptr;
        throw Error(rc, fmt::format("open {}: {}", path, msg));
    }
    sqlite3_busy_timeout(db_, 10'000);
    if (sqlite3_db_readonly(db_, "main") == 1) return;  // a read-only look (pillarbox index check)
    try {
        // These are the first reads of the file: a corrupt one fails here. Switching a new
        // database to WAL takes an exclusive lock that the busy handler doesn't wait for, so
        // another process opening the same new file at that moment (the server and a CLI
        // command) gets SQLITE_BUSY: retry for a while.
        for (int attempt = 0;; ++attempt) {
            try {
                exec("PRAGMA journal_mode=WAL");
                break;
            } catch (const Error& e) {
                if ((e.code != SQLITE_BUSY && e.code != SQLITE_LOCKED) || attempt >= 200) throw;
                std::this_thread::sleep_for(std::chrono::milliseconds(25));
            }
        }
        exec("PRAGMA synchronous=FULL");
        exec("PRAGMA foreign_keys=ON");
    } catch (...) {
        sqlite3_close(db_);  // no destructor runs for a constructor that throws
        db_ = nullptr;
        throw;
    }
}

Db::~Db() {
    for (auto& [sql, st] : cache_) sqlite3_finalize(st);
    sqlite3_close(db_);
}

void Db::exec(std::string_view sql) {
    std::string s(sql);
    char* err = nullptr;
    int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errstr(rc);
        sqlite3_free(err);
        throw Error(rc, fmt::format("\"{}\": {}", sql.substr(0, 60), msg));
    }
}

}  // namespace pillarbox::storage::sqlite
