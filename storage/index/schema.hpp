// The per-account index schema and its migrations. The Maildir is the durable truth; this index
// lets IMAP and POP3 answer without scanning directories or parsing messages.
#pragma once
#include "sqlite.hpp"

namespace pillarbox::storage::index {

inline constexpr int kSchemaVersion = 3;

// Brings the database to kSchemaVersion, one migration per version step, each in a transaction.
// Throws on a database newer than this code knows.
void migrate(sqlite::Db& db);

std::string meta(sqlite::Db& db, std::string_view key, std::string_view fallback = "");
void set_meta(sqlite::Db& db, std::string_view key, std::string_view value);

}  // namespace pillarbox::storage::index
