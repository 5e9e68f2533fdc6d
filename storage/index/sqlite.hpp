// A thin RAII wrapper over the SQLite C API: a connection and prepared statements, errors as
// exceptions (caught at the storage boundary and turned into temporary failures).
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pillarbox::storage::sqlite {

struct Error : std::runtime_error {
    int code;
    Error(int c, const std::string& what) : std::runtime_error(what), code(c) {}
};

class Stmt {
public:
    Stmt(sqlite3* db, std::string_view sql);
    ~Stmt();
    Stmt(Stmt&& o) noexcept : db_(o.db_), st_(o.st_) { o.st_ = nullptr; }
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
    bool is_null(int col) const;

private:
    sqlite3* db_;
    sqlite3_stmt* st_ = nullptr;
};

class Db {
public:
    // Opens (creating) the file in WAL mode with synchronous=FULL: a commit is on disk when it
    // returns, which is what "acknowledged means durable" needs. A "file:PATH?mode=ro" URI
    // opens read-only.
    explicit Db(const std::string& path);
    ~Db();
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    void exec(std::string_view sql);
    Stmt prepare(std::string_view sql) { return Stmt(db_, sql); }
    std::int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
    sqlite3* handle() { return db_; }

    // BEGIN IMMEDIATE ... COMMIT, rolled back when destroyed without commit().
    class Transaction {
    public:
        explicit Transaction(Db& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
        ~Transaction() {
            if (!done_) try { db_.exec("ROLLBACK"); } catch (...) {}
        }
        void commit() {
            db_.exec("COMMIT");
            done_ = true;
        }

    private:
        Db& db_;
        bool done_ = false;
    };

private:
    sqlite3* db_ = nullptr;
};

}  // namespace pillarbox::storage::sqlite
