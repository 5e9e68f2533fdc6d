// A thin RAII wrapper over the SQLite C API: a connection and prepared statements, errors as
// exceptions (caught at the storage boundary and turned into temporary failures).
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pillarbox::storage::sqlite {

struct Error : std::runtime_error {
    int code;
    Error(int c, const std::string& what) : std::runtime_error(what), code(c) {}
};

class Db;

class Stmt {
public:
    Stmt(sqlite3* db, std::string_view sql);
    ~Stmt();
    Stmt(Stmt&& o) noexcept : db_(o.db_), st_(o.st_), owner_(o.owner_), sql_(std::move(o.sql_)) { o.st_ = nullptr; }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    Stmt& bind(int i, std::int64_t v);
    Stmt& bind(int i, std::string_view v);
    Stmt& bind_null(int i);
    bool step();  // true: a row is ready; false: done
    void run();   // step to completion, then reset
    void reset();
    std::int64_t int64(int col) const;
    std::string text(int col) const;
    // The column's text, valid until the next step() or column call on this row.
    std::string_view text_view(int col) const;
    bool is_null(int col) const;

private:
    friend class Db;
    Stmt(Db& owner, std::string sql, sqlite3_stmt* st);

    sqlite3* db_;
    sqlite3_stmt* st_ = nullptr;
    Db* owner_ = nullptr;  // set: goes back to owner_'s statement cache instead of finalize
    std::string sql_;
};

class Db {
public:
    enum class Mode { ReadWrite, ReadOnly };
    // Opens (creating) the file in WAL mode with synchronous=FULL: a commit is on disk when it
    // returns, which is what "acknowledged means durable" needs. A "file:PATH?mode=ro" URI
    // opens read-only. Mode::ReadOnly opens an existing file read-only (SQLITE_OPEN_READONLY, no
    // URI parsing of the path, nothing created or changed): a reader beside the writer of a
    // database that is already in WAL mode.
    explicit Db(const std::string& path, Mode mode = Mode::ReadWrite);
    ~Db();
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    void exec(std::string_view sql);
    // A compiled statement for sql, from this connection's cache when it has one: the same
    // few queries run for every message, and compiling them cost more than running them.
    Stmt prepare(std::string_view sql);
    std::int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
    sqlite3* handle() { return db_; }

    // BEGIN IMMEDIATE ... COMMIT, rolled back when destroyed without commit(). With read_only,
    // a deferred BEGIN: several queries share one snapshot and one set of locks, and writers
    // are not held up.
    class Transaction {
    public:
        explicit Transaction(Db& db, bool read_only = false) : db_(db) {
            db_.prepare(read_only ? "BEGIN" : "BEGIN IMMEDIATE").run();
        }
        ~Transaction() {
            if (!done_) try { db_.exec("ROLLBACK"); } catch (...) {}
        }
        void commit() {
            db_.prepare("COMMIT").run();
            done_ = true;
        }

    private:
        Db& db_;
        bool done_ = false;
    };

private:
    friend class Stmt;
    void give_back(std::string sql, sqlite3_stmt* st);

    static constexpr std::size_t kCacheLimit = 64;  // SQL built per call (IN lists) stays uncached past this
    sqlite3* db_ = nullptr;
    std::unordered_map<std::string, sqlite3_stmt*> cache_;  // idle statements, reset, no bindings
};

}  // namespace pillarbox::storage::sqlite
