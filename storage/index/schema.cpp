// Index schema migrations (see schema.hpp). Add a migration by appending to kMigrations; never
// edit one that has shipped.
#include "schema.hpp"

#include <fmt/format.h>

namespace pillarbox::storage::index {
namespace {

const char* const kMigrations[] = {
    // 1: mailboxes, messages, expunges.
    R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE mailbox(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,            -- IMAP name in UTF-8; INBOX is the Maildir root
  dir TEXT NOT NULL UNIQUE,             -- directory below the account root: '' or '.Sent'
  uidvalidity INTEGER NOT NULL,
  uidnext INTEGER NOT NULL,
  highestmodseq INTEGER NOT NULL,
  subscribed INTEGER NOT NULL DEFAULT 0,
  special_use TEXT NOT NULL DEFAULT '', -- \Drafts, \Sent, ... (RFC 6154)
  synced_new_mtime INTEGER NOT NULL DEFAULT 0,  -- directory mtimes (ns) at the last full sync
  synced_cur_mtime INTEGER NOT NULL DEFAULT 0);
CREATE TABLE message(
  mailbox_id INTEGER NOT NULL REFERENCES mailbox(id) ON DELETE CASCADE,
  uid INTEGER NOT NULL,
  base TEXT NOT NULL,                   -- Maildir base name, unique within the mailbox
  file TEXT NOT NULL,                   -- new/NAME or cur/NAME below the mailbox directory
  size INTEGER NOT NULL,                -- octets on disk
  rfc822_size INTEGER NOT NULL,         -- octets with CRLF line endings, as IMAP and POP3 count
  internal_date INTEGER NOT NULL,       -- unix seconds
  flags INTEGER NOT NULL DEFAULT 0,     -- system flags bitmask (storage::Flag)
  keywords TEXT NOT NULL DEFAULT '',    -- space-separated IMAP keywords
  modseq INTEGER NOT NULL,
  parsed TEXT,                          -- parse cache (JSON), filled when first needed
  PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;
CREATE UNIQUE INDEX message_base ON message(mailbox_id, base);
CREATE TABLE expunged(
  mailbox_id INTEGER NOT NULL REFERENCES mailbox(id) ON DELETE CASCADE,
  uid INTEGER NOT NULL,
  modseq INTEGER NOT NULL,              -- for QRESYNC VANISHED (RFC 7162)
  PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;
)sql",
    // 2: message rows in a rowid table. A WITHOUT ROWID table keeps rows in an index b-tree,
    // where a row over ~1000 bytes (at 4 KiB pages) spills into an overflow page of its own
    // (https://sqlite.org/withoutrowid.html, section 4). With the parse cache nearly every
    // row is that big, so each message cost 4-5 KiB of index and WAL writes; a rowid table
    // keeps rows up to ~4 KiB inline.
    R"sql(
CREATE TABLE message_v2(
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
  UNIQUE (mailbox_id, uid));
INSERT INTO message_v2(mailbox_id, uid, base, file, size, rfc822_size, internal_date, flags, keywords, modseq, parsed)
  SELECT mailbox_id, uid, base, file, size, rfc822_size, internal_date, flags, keywords, modseq, parsed FROM message ORDER BY mailbox_id, uid;
DROP TABLE message;
ALTER TABLE message_v2 RENAME TO message;
CREATE UNIQUE INDEX message_base ON message(mailbox_id, base);
)sql",
    // 3: the parse cache in a table of its own. Inline, a 1 KiB parse cache per message made
    // every scan of the message rows (IMAP SELECT builds its view from all of them) read four
    // times the pages: SELECT of 100,000 messages went from 45 to 80 ms once a client had
    // fetched their envelopes. A row goes with its message (ON DELETE CASCADE).
    R"sql(
CREATE TABLE message_parsed(
  mailbox_id INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  parsed TEXT NOT NULL,                 -- parse cache (JSON), filled when first needed
  PRIMARY KEY (mailbox_id, uid),
  FOREIGN KEY (mailbox_id, uid) REFERENCES message(mailbox_id, uid) ON DELETE CASCADE);
INSERT INTO message_parsed(mailbox_id, uid, parsed)
  SELECT mailbox_id, uid, parsed FROM message WHERE parsed IS NOT NULL ORDER BY mailbox_id, uid;
ALTER TABLE message DROP COLUMN parsed;
)sql",
};

int current_version(sqlite::Db& db) {
    auto st = db.prepare("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'");
    st.step();
    if (st.int64(0) == 0) return 0;
    return std::stoi(meta(db, "schema_version", "0"));
}

}  // namespace

std::string meta(sqlite::Db& db, std::string_view key, std::string_view fallback) {
    auto st = db.prepare("SELECT value FROM meta WHERE key = ?");
    st.bind(1, key);
    return st.step() ? st.text(0) : std::string(fallback);
}

void set_meta(sqlite::Db& db, std::string_view key, std::string_view value) {
    db.prepare("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        .bind(1, key)
        .bind(2, value)
        .run();
}

void migrate(sqlite::Db& db) {
    static_assert(std::size(kMigrations) == kSchemaVersion);
    int v = current_version(db);
    if (v > kSchemaVersion)
        throw sqlite::Error(0, fmt::format("index schema version {} is newer than this pillarbox ({})", v, kSchemaVersion));
    for (; v < kSchemaVersion; ++v) {
        sqlite::Db::Transaction tx(db);
        db.exec(kMigrations[v]);
        set_meta(db, "schema_version", std::to_string(v + 1));
        tx.commit();
    }
}

}  // namespace pillarbox::storage::index
