// The mailbox interface the protocols use: named, typed, asynchronous operations on an account's
// mailboxes, called on the loop thread, each answering once on the loop. Store implements it; a
// fake in-process store can implement it for conversation tests.
//
// Read path. Reads (snapshot, status, message, mailboxes, search) don't go through the writer
// thread: they run on the store's io threads on read-only SQLite connections (WAL mode: readers
// see the last committed state and never wait for the writer's transactions), pooled and reused
// per account index with a bounded number kept idle. The writer stays the only one that writes
// and the only one that syncs the index with the Maildir, so a reader answers only when the index
// can be trusted as it is:
// - the account was opened by the writer in this process (which created it, migrated its schema
//   and ran recovery), and
// - for a mailbox's messages, the mtimes of its new/ and cur/ are those the index recorded at its
//   last sync or change (nothing dropped in by another tool since).
// Anything else (a first read of an account, an index behind its Maildir, a lock that didn't
// clear) goes to the writer, which opens or syncs and then answers the same query: the reader's
// rule is "answer only what the index already knows, otherwise ask the writer", never a write.
// (While the writer is placing mail in a mailbox, between its links and its index commit, the
// mtimes differ too: a read of that very mailbox at that moment waits for that batch.)
// Each read is one read transaction that begins after the call, so it sees every change whose
// completion was reported on the loop before the call (read-your-writes). And a read's result
// includes every change published on the change bus before its callback runs: when a change
// committed after the read began was published first, the read is done again (and after a few
// tries the writer answers, in order with its publications). A change published after the
// callback may already be in the result; its modseq (at most the result's HIGHESTMODSEQ) tells.
//
// Writes (flags, expunge, POP3's UPDATE, APPEND) go to the writer thread with group commit, and
// their changes are published on the bus before their callback runs.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/change_bus.hpp"
#include "storage/delivery_target.hpp"
#include "storage/mailbox_types.hpp"

namespace pillarbox::storage {

// An account: DATA/mail/<domain>/<localpart>.
struct AccountId {
    std::string localpart, domain;
};

// A mailbox as a session opens it: its row and its messages by UID, from one read transaction.
struct MailboxSnapshot {
    MailboxInfo mailbox;
    std::vector<MessageInfo> messages;
};

// IMAP APPEND's message, streamed like a delivery's body: chunks on the loop, written on the
// store's io threads, durable before commit's callback. Dropping it without commit aborts.
class AppendTarget {
public:
    virtual ~AppendTarget() = default;
    virtual void body(std::string_view chunk) = 0;
    // Bytes accepted by body() and not yet written; stop reading above a limit and wait for
    // on_drained.
    virtual std::size_t buffered() const = 0;
    virtual void on_drained(std::function<void()> cb) = 0;
    // The message's new UID once it is durable in the mailbox; OverQuota, NotFound (no such
    // mailbox), Invalid (an account name the store refuses) or a temporary failure otherwise.
    virtual void commit(std::function<void(Outcome<std::uint32_t>)> done) = 0;
    virtual void abort() = 0;  // nothing of the message stays
};

class Mailboxes {
public:
    template <typename R>
    using Done = std::function<void(Outcome<R>)>;

    virtual ~Mailboxes() = default;

    // The account's changes to one mailbox ("": all of them) from now on, in the order the store
    // made them, until the subscription is dropped.
    [[nodiscard]] virtual ChangeBus::Subscription subscribe(const AccountId& account, const std::string& mailbox,
                                                            ChangeBus::Listener listener) = 0;

    // --- reads (see the top of this file) ---
    virtual void snapshot(const AccountId& account, const std::string& mailbox, Done<MailboxSnapshot> done) = 0;
    // IMAP SELECT: every message's UID, flags, keywords and MODSEQ, and whether it is in new/,
    // without file names (a fraction of snapshot's cost on a large mailbox).
    virtual void view(const AccountId& account, const std::string& mailbox, Done<MailboxView> done) = 0;
    // The rows of the messages with UIDs in these ranges, by UID: the cost follows the ranges
    // (an index lookup each), not the mailbox's size.
    virtual void messages(const AccountId& account, const std::string& mailbox, UidRanges uids,
                          Done<std::vector<MessageInfo>> done) = 0;
    // messages, unseen, size, and the mailbox's UIDNEXT, UIDVALIDITY and HIGHESTMODSEQ in info.
    virtual void status(const AccountId& account, const std::string& mailbox, Done<MailboxStatus> done) = 0;
    // One message's row as it is now (its file follows flag renames); nullopt when the UID is gone.
    virtual void message(const AccountId& account, const std::string& mailbox, std::uint32_t uid,
                         Done<std::optional<MessageInfo>> done) = 0;
    virtual void mailboxes(const AccountId& account, Done<std::vector<MailboxInfo>> done) = 0;  // by name
    // UIDs expunged from the mailbox at a MODSEQ above modseq (QRESYNC's VANISHED (EARLIER),
    // RFC 7162 3.2.5), ascending.
    virtual void expunged_since(const AccountId& account, const std::string& mailbox, std::uint64_t modseq,
                                Done<std::vector<std::uint32_t>> done) = 0;
    // What the index can answer (SearchQuery); UIDs ascending.
    virtual void search(const AccountId& account, const std::string& mailbox, const SearchQuery& query,
                        Done<std::vector<std::uint32_t>> done) = 0;
    // Up to length bytes of a message file from offset (POP3 RETR in chunks, IMAP partial
    // fetches); fewer means the end of the file. file is MessageInfo::file in that mailbox;
    // NotFound when it is gone (renamed by a flag change, or expunged: look it up again).
    virtual void read(const AccountId& account, const MailboxInfo& mailbox, const std::string& file, std::uint64_t offset,
                      std::size_t length, Done<std::string> done) = 0;

    // --- writes (the writer thread) ---
    // Returns the messages that changed, with their new file names and MODSEQs. Invalid for a bad keyword.
    virtual void set_flags(const AccountId& account, const std::string& mailbox, const std::vector<std::uint32_t>& uids,
                           FlagOp op, std::uint32_t flags, const std::vector<std::string>& keywords,
                           Done<std::vector<MessageInfo>> done) = 0;
    // RFC 7162 STORE (UNCHANGEDSINCE n): as set_flags, but a message whose MODSEQ is above n is
    // left alone and reported in modified; the test and the change are one step on the writer.
    struct ConditionalFlags {
        std::vector<MessageInfo> changed;
        std::vector<std::uint32_t> modified;
    };
    virtual void set_flags_unchanged_since(const AccountId& account, const std::string& mailbox,
                                           const std::vector<std::uint32_t>& uids, FlagOp op, std::uint32_t flags,
                                           const std::vector<std::string>& keywords, std::uint64_t unchanged_since,
                                           Done<ConditionalFlags> done) = 0;
    // Durable before done; returns the UIDs that existed.
    virtual void expunge(const AccountId& account, const std::string& mailbox, const std::vector<std::uint32_t>& uids,
                         Done<std::vector<std::uint32_t>> done) = 0;
    // POP3's UPDATE state: the expunge, then \Seen on the retrieved messages. Fails when the
    // expunge fails (nothing removed); a \Seen failure only comes back as the value ("" when none).
    virtual void commit_maildrop(const AccountId& account, const std::string& mailbox, const MaildropUpdate& update,
                                 Done<std::string> done) = 0;
    // IMAP APPEND into mailbox with these flags and internal date (unix seconds, 0: now).
    virtual std::unique_ptr<AppendTarget> append(const AccountId& account, const std::string& mailbox, std::uint32_t flags,
                                                 std::int64_t internal_date) = 0;
    // IMAP COPY and MOVE (RFC 6851): the messages go into `to` with new UIDs, flags and
    // internal dates kept; durable before done. uids holds the new UID of each source UID in
    // order (0: that one was gone). A MOVE has the messages in the target before they leave the
    // source (a crash in between duplicates, never loses). OverQuota when they don't fit,
    // NotFound when `to` doesn't exist.
    struct Copied {
        std::uint32_t uidvalidity = 0;  // the target's
        std::vector<std::uint32_t> uids;
    };
    virtual void copy(const AccountId& account, const std::string& from, const std::vector<std::uint32_t>& uids,
                      const std::string& to, Done<Copied> done) = 0;
    virtual void move(const AccountId& account, const std::string& from, const std::vector<std::uint32_t>& uids,
                      const std::string& to, Done<Copied> done) = 0;
    // Folders (names are UTF-8, '/'-separated). Exists, NotFound or Invalid (a name the store
    // can't hold, with the reason) as errors. Deleting a mailbox removes its messages; renaming
    // INBOX moves its messages into the new mailbox and leaves INBOX empty (RFC 9051 6.3.6).
    virtual void create_mailbox(const AccountId& account, const std::string& name, const std::string& special_use,
                                Done<bool> done) = 0;
    virtual void delete_mailbox(const AccountId& account, const std::string& name, Done<bool> done) = 0;
    virtual void rename_mailbox(const AccountId& account, const std::string& from, const std::string& to,
                                Done<bool> done) = 0;
    virtual void set_subscribed(const AccountId& account, const std::string& name, bool subscribed, Done<bool> done) = 0;
    // The account's usage over all its mailboxes and its limits now (IMAP GETQUOTA, RFC 9208).
    struct QuotaState {
        Usage usage;
        Quota quota;
    };
    virtual void quota(const AccountId& account, Done<QuotaState> done) = 0;
    // The parse cache of one message (StoreSettings::parse's JSON: IMAP's ENVELOPE, BODYSTRUCTURE
    // and section offsets), from the index, or made from the file on an io thread and kept.
    // NotFound when the UID is gone.
    virtual void parsed(const AccountId& account, const std::string& mailbox, std::uint32_t uid, Done<std::string> done) = 0;
    // The parse caches already in the index for the messages in these UID ranges, by UID (none
    // is made here): one read for a FETCH slice instead of one per message.
    using CachedParses = std::vector<std::pair<std::uint32_t, std::string>>;
    virtual void cached_parses(const AccountId& account, const std::string& mailbox, UidRanges uids,
                               Done<CachedParses> done) = 0;

    // --- deliveries (the delivery dispatcher's mailbox target: SMTP, pickup, LMTP) ---
    virtual std::unique_ptr<DeliveryTarget> delivery() = 0;
    // What SMTP checks at RCPT without touching the disk: the account's usage and limits as the
    // store last saw them (the writer computes them for each delivery's quota check), while
    // recent and nothing else changed the account since. nullopt: not known. Any thread.
    struct KnownUsage {
        Usage usage;
        Quota quota;
        std::chrono::steady_clock::time_point at;
    };
    virtual std::optional<KnownUsage> known_usage(const AccountId& account) const = 0;
    // The account's limits now. Blocking (it may read the account database): a worker thread.
    virtual Quota quota_of(const AccountId& account) const = 0;
    // Over quota is a temporary failure (452 4.2.2) instead of 552 (Dovecot's quota_full_tempfail).
    virtual bool quota_full_tempfail() const = 0;
};

}  // namespace pillarbox::storage
