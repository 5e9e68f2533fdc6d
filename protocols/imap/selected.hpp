// The selected mailbox as one session sees it (RFC 9051 sections 2.3.1.2, 5.2, 7.4.1): message
// sequence numbers, each message's UID, flags and MODSEQ, and the changes the store published
// that the client has not been told yet. New messages and flag changes may be told with any
// response; expunges wait for a command during which RFC 9051 section 7.5.1 allows them (never
// while answering FETCH, STORE or SEARCH, nor with no command in progress), so the client's
// sequence numbers stay valid until then. Pure: no I/O.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storage/mailboxes.hpp"

namespace pillarbox::imap {

// "1:3,7" of ascending numbers.
std::string uid_set(const std::vector<std::uint32_t>& uids);
// The same numbers, in any order, as the store's ranges.
storage::UidRanges uid_ranges(std::vector<std::uint32_t> uids);

class SelectedMailbox {
public:
    // Bits of Message::flags beyond storage::Flag's.
    static constexpr std::uint32_t kRecent = 1u << 8;    // \Recent (IMAP4rev1 only)
    static constexpr std::uint32_t kExpunged = 1u << 9;  // gone from the store, not told yet
    static constexpr std::uint32_t kDirty = 1u << 10;    // flags changed, not told yet

    struct Message {
        std::uint32_t uid = 0;
        std::uint32_t flags = 0;     // storage::Flag bits and the bits above
        std::uint64_t modseq = 0;
        std::uint32_t keywords = 0;  // index into keyword sets; 0: none
    };

    // read_only: EXAMINE. Messages whose file is still in new/ are \Recent (Maildir's meaning of
    // new/), and so is every message that arrives while the mailbox is selected.
    SelectedMailbox(const storage::MailboxView& view, bool read_only);

    const storage::MailboxInfo& info() const { return info_; }
    bool read_only() const { return read_only_; }
    bool deleted() const { return deleted_; }  // another session deleted (or renamed away) this mailbox

    // As the client knows it: the last EXISTS (expunged-but-not-told messages included).
    std::uint32_t count() const { return told_; }
    const Message& at(std::uint32_t seq) const { return messages_[seq - 1]; }  // 1 <= seq <= count()
    // The sequence number of a UID the client knows, 0 when there is none.
    std::uint32_t seq_of(std::uint32_t uid) const;
    // The first sequence number whose UID is at least uid (count() + 1 when there is none).
    std::uint32_t seq_at_or_after(std::uint32_t uid) const;
    // The largest UID the client knows (for '*' in UID sets), 0 when empty.
    std::uint32_t max_uid() const { return told_ ? messages_[told_ - 1].uid : 0; }
    std::uint32_t recent() const;
    std::uint64_t highest_modseq() const { return info_.highestmodseq; }
    const std::vector<std::string>& keywords_of(const Message& m) const { return keyword_sets_[m.keywords]; }
    // Every keyword in use, for FLAGS and PERMANENTFLAGS.
    std::vector<std::string> all_keywords() const;

    // A change from the store's bus, in order.
    void apply(const storage::Change& c);
    // The session told the client these flags itself (STORE's FETCH responses): not again.
    void told_flags(std::uint32_t uid);

    struct Options {
        bool expunges_allowed = true;
        bool qresync = false;    // VANISHED (RFC 7162 3.2.10) instead of EXPUNGE
        bool condstore = false;  // MODSEQ in FETCH responses (RFC 7162 3.1.4)
        bool rev2 = false;       // no RECENT responses
    };
    // The untagged responses that bring the client up to date, as far as allowed now.
    std::string updates(const Options& o);
    // The FETCH data items of a message's flags: "FLAGS (\Seen $Forwarded)".
    std::string flags_item(const Message& m, bool rev2) const;

private:
    std::uint32_t intern(const std::vector<std::string>& keywords);
    Message* find(std::uint32_t uid);

    storage::MailboxInfo info_;
    bool read_only_;
    bool deleted_ = false;
    std::vector<Message> messages_;  // by UID: the told ones first, then those not told yet
    std::uint32_t told_ = 0;
    bool new_keywords_ = false;      // a FLAGS response is due
    std::vector<std::vector<std::string>> keyword_sets_{{}};
};

}  // namespace pillarbox::imap
