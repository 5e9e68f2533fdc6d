// sqlite::Db's statement cache: a statement handed back is reused with fresh bindings, and an
// idle cached statement holds no read transaction (it would pin an old WAL snapshot).
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include <sqlite3.h>

#include "storage/index/sqlite.hpp"
#include "tests/unit/server/test_support.hpp"

using pillarbox::storage::sqlite::Db;

TEST_CASE("sqlite: a cached statement is reused with fresh bindings") {
    pillarbox::test::TempDir tmp;
    Db db(tmp.file("t.db"));
    db.exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)");
    for (int i = 1; i <= 3; ++i) db.prepare("INSERT INTO t(k, v) VALUES(?, ?)").bind(1, i).bind(2, "v" + std::to_string(i)).run();
    for (int i = 1; i <= 3; ++i) {
        auto st = db.prepare("SELECT v FROM t WHERE k = ?");
        st.bind(1, i);
        REQUIRE(st.step());
        CHECK(st.text(0) == "v" + std::to_string(i));
    }
    // Unbound parameters are NULL again, not the last call's values.
    auto st = db.prepare("SELECT v FROM t WHERE k = ?");
    CHECK_FALSE(st.step());
    // Two of the same statement at once: the second is compiled anew.
    auto a = db.prepare("SELECT count(*) FROM t");
    auto b = db.prepare("SELECT count(*) FROM t");
    REQUIRE(a.step());
    REQUIRE(b.step());
    CHECK(a.int64(0) == 3);
    CHECK(b.int64(0) == 3);
}

TEST_CASE("sqlite: an idle cached statement does not hold a read transaction") {
    pillarbox::test::TempDir tmp;
    Db writer(tmp.file("t.db"));
    writer.exec("CREATE TABLE t(k INTEGER PRIMARY KEY)");
    Db reader(tmp.file("t.db"));
    {
        auto st = reader.prepare("SELECT k FROM t");  // left mid-read: the row is never stepped past
        writer.prepare("INSERT INTO t(k) VALUES(1)").run();
        REQUIRE(st.step());
    }
    // The reader's statement is back in its cache. Had it kept its snapshot, a TRUNCATE
    // checkpoint could not reset the WAL, and the reader would not see the second row.
    writer.prepare("INSERT INTO t(k) VALUES(2)").run();
    auto ck = writer.prepare("PRAGMA wal_checkpoint(TRUNCATE)");
    REQUIRE(ck.step());
    CHECK(ck.int64(0) == 0);  // not busy
    auto st = reader.prepare("SELECT count(*) FROM t");
    REQUIRE(st.step());
    CHECK(st.int64(0) == 2);
}

TEST_CASE("sqlite: a connection's page cache grows with what it reads, with no bulk allocation up front") {
    pillarbox::test::TempDir tmp;
    {
        Db db(tmp.file("small.db"));
        db.exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)");
        db.prepare("INSERT INTO t(k, v) VALUES(1, 'x')").run();
    }
    // Twenty connections to a one-page table: SQLite's default bulk allocation (20 pages per
    // connection, about 85 KiB each) would make this 1.7 MB.
    const auto before = sqlite3_memory_used();
    std::vector<std::unique_ptr<Db>> dbs;
    for (int i = 0; i < 20; ++i) {
        dbs.push_back(std::make_unique<Db>(tmp.file("small.db"), Db::Mode::ReadOnly));
        auto st = dbs.back()->prepare("SELECT v FROM t WHERE k = 1");
        REQUIRE(st.step());
    }
    const auto per_connection = (sqlite3_memory_used() - before) / 20;
    INFO(per_connection << " bytes per connection");
    CHECK(per_connection < 48 * 1024);
}
