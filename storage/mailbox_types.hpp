// The values the mailbox interface speaks in (mailboxes, messages, changes, errors, quota), apart
// from how the store keeps them, so that protocols see these and not the Maildir or the index.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// A message as an IMAP session's view of a mailbox starts (Mailboxes::view): no file name.
struct ViewRow {
    std::uint32_t uid = 0;
    std::uint32_t flags = 0;
    std::uint64_t modseq = 0;
    bool in_new = false;  // still in new/: IMAP4rev1's \Recent
    std::vector<std::string> keywords;
};
struct MailboxView {
    MailboxInfo mailbox;
    std::vector<ViewRow> messages;  // by UID
};

// UID ranges, inclusive, ascending and not overlapping.
using UidRanges = std::vector<std::pair<std::uint32_t, std::uint32_t>>;

struct MailboxStatus {
    MailboxInfo info;
    std::uint32_t messages = 0;
    std::uint32_t unseen = 0;
    std::uint64_t size = 0;  // RFC 8438 STATUS SIZE: sum of RFC822 sizes
    std::uint32_t deleted = 0;  // RFC 9051 STATUS DELETED: messages with \Deleted
    std::uint32_t recent = 0;   // messages still in new/ (IMAP4rev1's \Recent, Maildir's meaning)
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

// POP3's UPDATE state (RFC 1939 section 6) for one mailbox: what a session marked with DELE and
// what it retrieved (for \Seen), applied together when the client QUITs.
struct MaildropUpdate {
    std::vector<std::uint32_t> expunge;  // UIDs marked deleted
    std::vector<std::uint32_t> seen;     // UIDs retrieved, kept, and not yet \Seen
    bool empty() const { return expunge.empty() && seen.empty(); }
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

// The result of a mailbox operation: a value, or what went wrong (error unset: a temporary
// server-side failure, details only in reason for the log).
template <typename R>
struct Outcome {
    std::optional<R> value;
    std::optional<StoreError::Kind> error;
    std::string reason;
    bool ok() const { return value.has_value(); }
};

// The Maildir base name of a MessageInfo::file ("cur/BASE,S=..:2,S" -> "BASE"): what stays the
// same while flag changes rename the file (POP3 UIDL's %f). The name itself when it can't be parsed.
std::string message_base(std::string_view file);

}  // namespace pillarbox::storage
