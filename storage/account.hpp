// One mail account on disk: its Maildir++ tree (INBOX at the root, folders as .Name) and its
// SQLite index beside it. Blocking; used only on the store's writer thread, which makes it the
// single writer of the index and the only place UIDs are handed out.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <string>
#include <vector>

#include <asio/thread_pool.hpp>

#include "storage/index/sqlite.hpp"
#include "storage/mailbox_types.hpp"
#include "storage/message_file.hpp"
#include "storage/maildir/filename.hpp"
#include "storage/maildir/keywords.hpp"

namespace pillarbox::storage {

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
    // records the expunges with their MODSEQ. Returns the UIDs that existed (and are gone now).
    std::vector<std::uint32_t> expunge(const std::string& mailbox, const std::vector<std::uint32_t>& uids);
    // POP3's UPDATE state: the expunge, which throws when it fails (nothing is removed), then
    // \Seen on what was retrieved, which only returns its failure ("" when it worked): the
    // messages are there either way, so the client's QUIT still succeeds.
    std::string commit_maildrop(const std::string& mailbox, const MaildropUpdate& u);

    // The mailbox API the protocols use (through Store). All blocking, all on the writer thread.
    std::vector<MessageInfo> snapshot(const std::string& mailbox);  // by UID
    // The mailbox's row after a sync of its directories (what every read of its messages starts from).
    MailboxInfo synced_mailbox(const std::string& mailbox);
    // Sets or clears system flags and keywords; renames the files (cur/NAME:2,FLAGS, keyword
    // letters from the mailbox's dovecot-keywords) before the index commit. Returns the
    // messages that changed, with their new MODSEQ. Throws StoreError Invalid for a bad keyword.
    // With unchanged_since (RFC 7162 UNCHANGEDSINCE), a message whose MODSEQ is above it is left
    // alone and its UID goes to *modified instead.
    std::vector<MessageInfo> set_flags(const std::string& mailbox, const std::vector<std::uint32_t>& uids, FlagOp op,
                                       std::uint32_t flags, const std::vector<std::string>& keywords = {},
                                       std::optional<std::uint64_t> unchanged_since = std::nullopt,
                                       std::vector<std::uint32_t>* modified = nullptr);
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
    // The writer's index connection, for the read path's queries when a read has to run on the
    // writer (storage/index_reads.hpp). Never for writes: those go through the methods above.
    sqlite::Db& index() { return *db_; }

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

// Whether the index is caught up with the mailbox's new/ and cur/ (at mailbox_dir): their mtimes
// are those its last sync or change recorded. What sync_mailbox checks before rescanning, and what
// a reader checks before it trusts the index. Reads only.
bool index_synced(sqlite::Db& db, const MailboxInfo& mb, const std::filesystem::path& mailbox_dir);

// Writes a small file atomically (tmp + rename) and durably (file and directory fsync'd).
void write_file_durably(const std::filesystem::path& path, const std::string& text);

// Creates DIR with tmp/ new/ cur/ (and the Maildir++ maildirfolder marker for a folder).
void make_maildir(const std::filesystem::path& dir, bool folder);

// Fsyncs a directory (after renames into it). Throws std::system_error.
void fsync_dir(const std::filesystem::path& dir);

// Runs fn on pool's thread (or a new one without a pool) and hands back its outcome; with
// beside false, runs it here and now. For a directory fsync beside an index commit.
std::future<void> run_beside(asio::thread_pool* pool, std::function<void()> fn, bool beside);
// Waits for run_beside's work when the scope ends, an exception on the way out included, so the
// work never outlives what it uses.
struct WaitOnExit {
    std::future<void>& f;
    ~WaitOnExit() {
        if (f.valid()) f.wait();
    }
};

}  // namespace pillarbox::storage
