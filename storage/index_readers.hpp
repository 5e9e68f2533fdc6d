// Read-only connections to the accounts' indexes, kept and reused: opening one (and compiling its
// statements) costs more than the reads a POP3 login or an IMAP STATUS makes, so a read borrows an
// idle connection to its account's index and gives it back. A bounded number stay open while
// idle, the least recently used closed first. Any thread; a borrowed connection is its borrower's
// alone until given back.
#pragma once
#include <chrono>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "storage/index/sqlite.hpp"

namespace pillarbox::storage {

class IndexReaders {
public:
    // How long a reader waits for a lock (sqlite3_busy_timeout) before it gives up and lets the
    // writer answer. In WAL mode readers take no lock the writer's transactions hold; they wait
    // only while a connection recovers the WAL index after a crash, or while something outside
    // the server (the sqlite3 shell, a backup tool) holds an exclusive lock.
    static constexpr std::chrono::milliseconds kBusyTimeout{1000};
    // Page cache per connection, KiB (SQLite's default is 2 MB). An idle connection keeps its
    // cache, and the pool may keep many; a reader's cache is dropped anyway whenever the writer
    // changed the index since its last read, and the kernel's page cache holds the file.
    static constexpr int kCacheKiB = 512;

    explicit IndexReaders(std::size_t idle_limit) : idle_limit_(idle_limit) {}
    IndexReaders(const IndexReaders&) = delete;
    IndexReaders& operator=(const IndexReaders&) = delete;

    // A borrowed connection; goes back to the pool when destroyed.
    class Lease {
    public:
        Lease(IndexReaders& pool, std::string path, std::unique_ptr<sqlite::Db> db)
            : pool_(&pool), path_(std::move(path)), db_(std::move(db)) {}
        Lease(Lease&& o) noexcept = default;
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        Lease& operator=(Lease&&) = delete;
        ~Lease() {
            if (db_) pool_->give_back(std::move(path_), std::move(db_));
        }
        sqlite::Db& db() { return *db_; }
        void discard() { db_.reset(); }  // after an error that may have left it in a bad state

    private:
        IndexReaders* pool_;
        std::string path_;
        std::unique_ptr<sqlite::Db> db_;
    };

    // An idle connection to the index at path, or a new one (throws sqlite::Error when it can't
    // be opened). Blocking.
    Lease borrow(const std::string& path);
    void clear();  // closes the idle connections
    std::size_t idle() const;
    std::size_t opened() const;  // connections opened so far (tests: reuse means this stays low)

private:
    void give_back(std::string path, std::unique_ptr<sqlite::Db> db);

    struct Idle {
        std::string path;
        std::unique_ptr<sqlite::Db> db;
    };
    const std::size_t idle_limit_;
    mutable std::mutex mutex_;
    std::list<Idle> idle_;  // under mutex_: most recently given back first
    std::size_t opened_ = 0;  // under mutex_
};

}  // namespace pillarbox::storage
