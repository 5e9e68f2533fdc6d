// Index schema: an index written by an older pillarbox is migrated in place on open, with every
// row kept; the parse cache lives beside the message rows (no overflow page per message, and
// scans of the message rows don't read it).
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "storage/account.hpp"
#include "storage/index/schema.hpp"
#include "storage/index/sqlite.hpp"
#include "tests/unit/server/test_support.hpp"

using namespace pillarbox::storage;
namespace fs = std::filesystem;

namespace {

struct Fixture {
    pillarbox::test::TempDir tmp;
    fs::path root = tmp.path / "mail" / "example.org" / "alice";
    fs::path index = root / "pillarbox.index";
    int counter = 0;

    void add(Account& a, std::size_t n) {
        std::vector<NewMessage> v;
        for (std::size_t i = 0; i < n; ++i) {
            NewMessage m;
            m.base = fmt::format("1700000000.M{}P1Q1.test", ++counter);
            m.tmp_path = (root / "tmp" / m.base).string();
            std::string text = fmt::format("Subject: {}\r\n\r\nbody\r\n", counter);
            std::ofstream(m.tmp_path, std::ios::binary) << text;
            m.size = m.rfc822_size = text.size();
            m.internal_date = 1700000000;
            v.push_back(std::move(m));
        }
        a.add_messages("INBOX", v);
    }

    // Everything a message row holds, in UID order.
    std::vector<std::string> rows() {
        sqlite::Db db(index.string());
        auto st = db.prepare(
            "SELECT m.mailbox_id, m.uid, base, file, size, rfc822_size, internal_date, flags, keywords, modseq, "
            "coalesce(p.parsed, '<null>') FROM message m LEFT JOIN message_parsed p ON p.mailbox_id = m.mailbox_id "
            "AND p.uid = m.uid ORDER BY m.mailbox_id, m.uid");
        std::vector<std::string> out;
        while (st.step()) {
            std::string r;
            for (int c = 0; c < 11; ++c) r += st.text(c) + "|";
            out.push_back(r);
        }
        return out;
    }

    std::string message_table_sql() {
        sqlite::Db db(index.string());
        auto st = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'message'");
        REQUIRE(st.step());
        return st.text(0);
    }

    std::string version() {
        sqlite::Db db(index.string());
        return index::meta(db, "schema_version", "");
    }
};

// Puts the message table back the way schema version 1 made it (WITHOUT ROWID, primary key
// (mailbox_id, uid)), as an index written by the first releases looks.
void downgrade_to_v1(const fs::path& index_path) {
    sqlite::Db db(index_path.string());
    db.exec(R"sql(
BEGIN;
CREATE TABLE message_v1(
  mailbox_id INTEGER NOT NULL REFERENCES mailbox(id) ON DELETE CASCADE,
  uid INTEGER NOT NULL,
  base TEXT NOT NULL,
  file TEXT NOT NULL,
  size INTEGER NOT NULL,
  rfc822_size INTEGER NOT NULL,
  internal_date INTEGER NOT NULL,
  flags INTEGER NOT NULL DEFAULT 0,
  keywords TEXT NOT NULL DEFAULT '',
  modseq INTEGER NOT NULL,
  parsed TEXT,
  PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;
INSERT INTO message_v1 SELECT m.mailbox_id, m.uid, base, file, size, rfc822_size, internal_date, flags, keywords, modseq, p.parsed
  FROM message m LEFT JOIN message_parsed p ON p.mailbox_id = m.mailbox_id AND p.uid = m.uid;
DROP TABLE message_parsed;
DROP TABLE message;
ALTER TABLE message_v1 RENAME TO message;
CREATE UNIQUE INDEX message_base ON message(mailbox_id, base);
UPDATE meta SET value = '1' WHERE key = 'schema_version';
COMMIT;
)sql");
}

}  // namespace

TEST_CASE("index schema: a version 1 index is migrated on open, every row kept") {
    Fixture f;
    {
        auto a = Account::open(f.root);
        f.add(*a, 5);
        a->set_parsed("INBOX", 2, std::string(3000, 'p'));
        a->set_flags("INBOX", {3}, FlagOp::Add, kSeen, {"$Label1"});
    }
    auto before = f.rows();
    REQUIRE(before.size() == 5);
    downgrade_to_v1(f.index);
    REQUIRE(f.version() == "1");
    REQUIRE(f.message_table_sql().find("WITHOUT ROWID") != std::string::npos);

    {
        auto a = Account::open(f.root);
        CHECK(a->parsed("INBOX", 2) == std::string(3000, 'p'));
        f.add(*a, 1);  // and it takes new mail after the migration
    }
    CHECK(f.version() == std::to_string(index::kSchemaVersion));
    CHECK(f.message_table_sql().find("WITHOUT ROWID") == std::string::npos);
    CHECK(f.message_table_sql().find("parsed") == std::string::npos);  // moved to message_parsed (version 3)
    auto after = f.rows();
    REQUIRE(after.size() == 6);
    after.pop_back();
    CHECK(after == before);
}

TEST_CASE("index schema: the parse cache goes with its message") {
    Fixture f;
    auto a = Account::open(f.root);
    f.add(*a, 3);
    a->set_parsed("INBOX", 1, "one");
    a->set_parsed("INBOX", 2, "two");
    a->set_parsed("INBOX", 2, "two again");  // replaced
    a->set_parsed("INBOX", 99, "nobody");    // no such message: nothing kept
    CHECK(a->parsed("INBOX", 2) == "two again");
    a->expunge("INBOX", {1});
    CHECK(a->parsed("INBOX", 1).empty());
    a.reset();
    sqlite::Db db(f.index.string());
    auto st = db.prepare("SELECT group_concat(uid) FROM message_parsed");
    REQUIRE(st.step());
    CHECK(st.text(0) == "2");
}

TEST_CASE("index schema: message rows with a parse cache stay inline") {
    // A 1.1 KB parse cache per message (the size a plain 2 KiB message gets). In an index b-tree
    // (WITHOUT ROWID) each such row took an overflow page: 400 messages, 400+ pages.
    Fixture f;
    auto a = Account::open(f.root);
    f.add(*a, 400);
    for (std::uint32_t uid = 1; uid <= 400; ++uid) a->set_parsed("INBOX", uid, std::string(1100, 'j'));
    a.reset();
    sqlite::Db db(f.index.string());
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    auto st = db.prepare("PRAGMA page_count");
    REQUIRE(st.step());
    auto pages = st.int64(0);
    INFO("pages: " << pages);
    CHECK(pages < 250);  // ~3 rows per 4 KiB page, plus the indexes
}
