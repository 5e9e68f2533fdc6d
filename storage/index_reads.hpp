// The queries that read an account's index: one copy, run by the writer (Account) on its own
// connection and by the read path (Store's readers) on read-only ones. Plain SQL over whatever
// connection and transaction the caller holds; no file system access, no writes.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "storage/index/sqlite.hpp"
#include "storage/mailbox_types.hpp"

namespace pillarbox::storage::index {

std::vector<MailboxInfo> mailboxes(sqlite::Db& db);  // by name
std::optional<MailboxInfo> find_mailbox(sqlite::Db& db, std::string_view name);

// The directory mtimes (ns) of new/ and cur/ that the last sync or change of the mailbox saw
// (Account::record_mailbox writes them in the same transaction as the change).
struct SyncMarks {
    std::int64_t new_mtime = 0, cur_mtime = 0;
};
SyncMarks sync_marks(sqlite::Db& db, std::int64_t mailbox_id);

// A message row: "SELECT <kMessageColumns> ... " read with message_row().
extern const char* const kMessageColumns;
MessageInfo message_row(sqlite::Stmt& st);

std::vector<MessageInfo> messages(sqlite::Db& db, std::int64_t mailbox_id);  // by UID
std::vector<MessageInfo> messages(sqlite::Db& db, std::int64_t mailbox_id, const UidRanges& uids);  // by UID
std::vector<ViewRow> view_rows(sqlite::Db& db, std::int64_t mailbox_id);  // by UID
std::optional<MessageInfo> message(sqlite::Db& db, std::int64_t mailbox_id, std::uint32_t uid);
// Counts for STATUS; info is copied into the result as given.
MailboxStatus status(sqlite::Db& db, const MailboxInfo& info);
std::vector<std::uint32_t> search(sqlite::Db& db, std::int64_t mailbox_id, const SearchQuery& q);  // UIDs, ascending

}  // namespace pillarbox::storage::index
