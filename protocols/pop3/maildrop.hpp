// The POP3 maildrop of one session (RFC 1939 section 5): INBOX as it was at login, numbered
// 1..N, with the DELE marks and the RETR record. Nothing touches the store until QUIT; update()
// is then what the store's commit_maildrop applies (the marked messages expunged, \Seen on the
// retrieved ones) in one write. A session that ends without QUIT drops the marks.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "storage/mailbox_types.hpp"

namespace pillarbox::pop3 {

struct DropMessage {
    std::uint32_t uid = 0;
    std::string file;    // new/NAME or cur/NAME below the mailbox directory (follows renames)
    std::uint64_t size = 0;  // RFC 822 size: octets with CRLF line ends, as RETR sends them
    std::uint32_t flags = 0;
    std::string uidl;
    bool deleted = false;    // DELE in this session
    bool retrieved = false;  // RETR in this session
    bool expunged = false;   // removed by another session (IMAP EXPUNGE) since login
};

class Maildrop {
public:
    Maildrop() = default;
    Maildrop(storage::MailboxInfo inbox, const std::vector<storage::MessageInfo>& messages, const std::string& uidl_format);

    const storage::MailboxInfo& inbox() const { return inbox_; }
    std::size_t size() const { return messages_.size(); }  // N, including marked messages
    // Message n (1-based) when it exists and is not marked deleted.
    DropMessage* get(std::uint32_t n);
    // STAT: messages and octets not marked deleted.
    std::pair<std::uint64_t, std::uint64_t> stat() const;
    void mark_deleted(DropMessage& m) { m.deleted = true; }
    void reset();  // RSET: unmark everything
    // Another session changed INBOX: a flag change may have renamed a file; an expunge makes the
    // message unreadable (its number stays, RFC 1939 numbers never shift within a session).
    void apply(const storage::Change& c);

    // The UPDATE state's plan (RFC 1939 section 6), for Mailboxes::commit_maildrop at QUIT.
    using Update = storage::MaildropUpdate;
    Update update() const;

private:
    storage::MailboxInfo inbox_;
    std::vector<DropMessage> messages_;
};

}  // namespace pillarbox::pop3
