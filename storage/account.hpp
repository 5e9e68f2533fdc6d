// One mail account on disk: its Maildir++ tree (INBOX at the root, folders as .Name) and its
// SQLite index beside it. Blocking; used only on the store's writer thread, which makes it the
// single writer of the index and the only place UIDs are handed out.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <string>
#include <vector>

#include <asio/thread_pool.hpp>

#include "storage/index/sqlite.hpp"
#include "storage/message_file.hpp"
#include "storage/maildir/filename.hpp"
#include "storage/maildir/keywords.hpp"

namespace pillarbox::storage {

// IMAP system flags as stored in the index: maildir::system_flag's bits (the Maildir letters).
enum Flag : std::uint32_t { kSeen = 1, kAnswered = 2, kFlagged = 4, kDeleted = 8, kDraft = 16 };

struct MailboxInfo {
    std::int64_t id = 0;
    std::string name;         // IMAP name, UTF-8
    std::string dir;          // below the account root: "" for INBOX, ".Sent"
    std::string special_use;  // RFC 6154 attribute or ""
    std::uint32_t uidvalidity = 0;
    std::uint32_t uidnext = 1;
    std::uint64_t highestmodseq = 1;
    bool subscribed = false;
};

// A message already written (and made durable), not yet in a mailbox: an unnamed file (file)
// or a named one in the account's tmp/ directory (tmp_path). See message_file.hpp.
struct NewMessage {
    std::string tmp_path;
    std::shared_ptr<OpenFile> file;
    std::string base;  // Maildir base name chosen when the tmp file was created
    std::uint64_t size = 0;
    std::uint64_t rfc822_size = 0;
    std::int64_t internal_date = 0;
    std::uint32_t flags = 0;
    std::string parsed;  // the parse cache, when the store was given a parser
};

struct MessageInfo {
    std::uint32_t uid = 0;
    std::string file;  // new/NAME or cur/NAME below the mailbox directory
    std::uint64_t size = 0;
    std::uint64_t rfc822_size = 0;
    std::int64_t internal_date = 0;
    std::uint32_t flags = 0;
    std::uint64_t modseq = 0;
    std::vector<std::string> keywords;  // IMAP keywords, e.g. $Forwarded, $Junk, project-x
};

struct MailboxStatus {
    MailboxInfo info;
    std::uint32_t messages = 0;
    std::uint32_t unseen = 0;
    std::uint64_t size = 0;  // RFC 8438 STATUS SIZE: sum of RFC822 sizes
};

enum class FlagOp { Add, Remove, Replace };

// What the index can answer for IMAP SEARCH without opening a message; every set field must
// match (AND). Header and body criteria are the IMAP layer's, over the parse cache and the files.
struct SearchQuery {
    std::vector<std::pair<std::uint32_t, std::uint32_t>> uids;  // ranges, inclusive; empty = all
    std::uint32_t flags_set = 0;                                // all of these
    std::uint32_t flags_clear = 0;                              // none of these
    std::vector<std::string> keywords_set, keywords_clear;      // KEYWORD / UNKEYWORD
    std::optional<std::uint64_t> larger, smaller;               // RFC822 size, strict
    std::optional<std::int64_t> since, before;                  // internal date, unix seconds: >= since, < before
    std::optional<std::uint64_t> modseq;                        // MODSEQ >= (RFC 7162)
};

// What an operation changed, in order, for the sessions that have the mailbox open.
struct Change {
    enum class Kind { Added, FlagsChanged, Expunged, MailboxCreated, MailboxDeleted, MailboxRenamed };
    Kind kind = Kind::Added;
    std::string mailbox;
    std::string new_name;                // MailboxRenamed
    std::vector<MessageInfo> messages;   // Added, FlagsChanged
    std::vector<std::uint32_t> uids;     // Expunged
    std::uint64_t modseq = 0;            // HIGHESTMODSEQ after the change
};

// Errors a client can be told about; anything else is a temporary server-side failure.
struct StoreError : std::runtime_error {
    enum class Kind { NotFound, Exists, Invalid, OverQuota } kind;
    StoreError(Kind k, const std::string& what) : std::runtime_error(what), kind(k) {}
};

struct Quota {
    std::uint64_t max_bytes = 0;     // 0 = no limit
    std::uint64_t max_messages = 0;  // 0 = no limit
};

struct Usage {
    std::uint64_t bytes = 0;
    std::uint64_t messages = 0;
};

// Whether a message of size bytes (0: size not known) can no longer fit: the message count is
// at its limit, or the bytes would pass theirs (with size 0: are at it already). What SMTP asks
// at RCPT, with the SIZE= the client declared, as Dovecot's LMTP does.
bool quota_full(const Usage& u, const Quota& q, std::uint64_t size);

class Account {
public:
    // Opens the account at root, creating the Maildir++ tree, the special-use folders and the
    // index on first use.
    static std::unique_ptr<Account> open(const std::filesystem::path& root, std::string hostname = "localhost");
    ~Account();

    const std::filesystem::path& root() const { return root_; }
    std::vector<MailboxInfo> mailboxes();
    MailboxInfo mailbox(std::string_view name);  // throws when missing

    // Moves the messages into the mailbox with new UIDs: link or rename into place, fsync the
    // directory, then one index transaction. All or nothing: on failure nothing stays in the
    // mailbox and the files are discarded, except when they don't fit the quota: StoreError
    // OverQuota leaves them to the caller (to try fewer, or discard them). Returns the UIDs in
    // order.
    std::vector<std::uint32_t> add_messages(const std::string& mailbox, std::vector<NewMessage>& msgs);

    // Reconciles one mailbox's index with its new/ and cur/ directories: files added by other
    // programs are indexed (keeping a U= UID when it is free), files gone are expunged, flag
    // changes in names are taken over. Cheap when the directories did not change since the last
    // sync, unless force. rebuilding: the index was empty, so every U= in a name is trusted.
    void sync_mailbox(MailboxInfo mb, bool force, bool rebuilding = false);

    // Removes messages: files first (then the directory fsync), then one index transaction that
    // records the expunges with their MODSEQ.
    void expunge(const std::string& mailbox, const std::vector<std::uint32_t>& uids);

    // The mailbox API the protocols use (through Store). All blocking, all on the writer thread.
    std::vector<MessageInfo> snapshot(const std::string& mailbox);  // by UID
    // Sets or clears system flags and keywords; renames the files (cur/NAME:2,FLAGS, keyword
    // letters from the mailbox's dovecot-keywords) before the index commit. Returns the
    // messages that changed, with their new MODSEQ. Throws StoreError Invalid for a bad keyword.
    std::vector<MessageInfo> set_flags(const std::string& mailbox, const std::vector<std::uint32_t>& uids, FlagOp op,
                                       std::uint32_t flags, const std::vector<std::string>& keywords = {});
    // Copies with hard links (the same file in both folders), flags and internal date kept;
    // returns the new UIDs in the order of uids (0 for a UID that does not exist).
    std::vector<std::uint32_t> copy(const std::string& from, const std::vector<std::uint32_t>& uids, const std::string& to);
    // RFC 6851 MOVE: copy, then expunge from the source; the target has the messages before the
    // source loses them, so a crash in between duplicates, never loses.
    std::vector<std::uint32_t> move(const std::string& from, const std::vector<std::uint32_t>& uids, const std::string& to);
    MailboxStatus status(const std::string& mailbox);
    std::vector<std::uint32_t> search(const std::string& mailbox, const SearchQuery& q);  // UIDs, ascending
    void create_mailbox(const std::string& name, const std::string& special_use = "");
    void delete_mailbox(const std::string& name);
    void rename_mailbox(const std::string& from, const std::string& to);
    void subscribe(const std::string& name, bool on);
    Usage usage();
    // The parse cache (what IMAP needs: envelope, body structure with part offsets), filled by
    // the protocol layer on first need; "" when not cached yet.
    std::string parsed(const std::string& mailbox, std::uint32_t uid);
    void set_parsed(const std::string& mailbox, std::uint32_t uid, const std::string& blob);
    void set_quota(const Quota& q) { quota_ = q; }
    const Quota& quota() const { return quota_; }
    // The usage the last add_messages computed for its quota check, with what it added: known
    // only when a quota applies, and only until the next call (then nullopt again).
    std::optional<Usage> take_known_usage() { return std::exchange(known_usage_, std::nullopt); }
    // Where add_messages runs its directory fsync beside the index commit when flushes are slow:
    // a long-lived thread (the Store's) instead of a new thread per call. Without one, std::async.
    void set_side_thread(asio::thread_pool* pool) { side_ = pool; }

    std::vector<Change> take_changes() { return std::exchange(changes_, {}); }

private:
    explicit Account(std::filesystem::path root, std::string hostname);
    void create_layout();
    void check_quota(std::uint64_t more_bytes, std::uint64_t more_messages);
    // Inside an index transaction, after a change to the mailbox's files: the new UIDNEXT (0 =
    // unchanged) and HIGHESTMODSEQ, and the directory mtimes our own renames caused, so the next
    // open of a cleanly closed account need not rescan.
    void record_mailbox(const MailboxInfo& mb, std::uint32_t uidnext, std::uint64_t highestmodseq);
    std::string new_base();
    void discover_mailboxes();
    void clean_tmp(const std::filesystem::path& tmp);
    MailboxInfo read_mailbox(sqlite::Stmt& st);

    std::filesystem::path root_;
    std::string hostname_;
    std::unique_ptr<sqlite::Db> db_;
    Quota quota_;
    std::optional<Usage> known_usage_;  // see take_known_usage
    std::vector<Change> changes_;
    asio::thread_pool* side_ = nullptr;
    // How long the last directory fsync of add_messages took (written by whichever thread ran
    // it, read after joining it): at 1 ms or more, the next one runs beside the index commit.
    std::chrono::microseconds last_dir_sync_{0};
};

// Maildir file name with the fields this store keeps in it: S= (size on disk), W= (size with
// CRLF), U= (the IMAP UID, so a rebuilt index keeps UIDs) and the flag letters.
std::string message_file_name(const NewMessage& m, std::uint32_t uid);

// pillarbox-uidvalidity in each mailbox directory: what a rebuilt index needs and the file names
// can't tell, the UIDVALIDITY and a floor for UIDNEXT (raised when the highest UIDs are expunged,
// so a rebuild never hands them out again).
struct UidFile {
    std::uint32_t uidvalidity = 0;
    std::uint32_t uidnext_floor = 1;
};
std::optional<UidFile> read_uid_file(const std::filesystem::path& mailbox_dir);
void write_uid_file(const std::filesystem::path& mailbox_dir, const UidFile& f);  // durable

// Keywords: the index keeps them space-separated; file names carry letters a..z assigned in the
// mailbox's dovecot-keywords (Dovecot's format) and P for $Forwarded.
std::vector<std::string> split_keywords(std::string_view text);
std::string join_keywords(const std::vector<std::string>& keywords);
maildir::KeywordTable load_keywords(const std::filesystem::path& mailbox_dir);
void save_keywords(const std::filesystem::path& mailbox_dir, const maildir::KeywordTable& table);
void set_keyword_letters(maildir::FileName& name, const std::vector<std::string>& keywords,
                         const maildir::KeywordTable& table);
std::vector<std::string> keywords_from_letters(const maildir::FileName& name, const maildir::KeywordTable& table);

// A path's mtime in nanoseconds (0 when missing): how a sync notices directory changes.
std::int64_t mtime_ns(const std::filesystem::path& p);

// Writes a small file atomically (tmp + rename) and durably (file and directory fsync'd).
void write_file_durably(const std::filesystem::path& path, const std::string& text);

// Creates DIR with tmp/ new/ cur/ (and the Maildir++ maildirfolder marker for a folder).
void make_maildir(const std::filesystem::path& dir, bool folder);

// Fsyncs a directory (after renames into it). Throws std::system_error.
void fsync_dir(const std::filesystem::path& dir);

}  // namespace pillarbox::storage
