// What LIST and LSUB show (RFC 9051 6.3.9, RFC 5258 LIST-EXTENDED, RFC 3348 CHILDREN, RFC 6154
// SPECIAL-USE): the mailboxes that match the patterns, their implied parents, and their
// attributes. Pure: no I/O.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "protocols/imap/grammar.hpp"
#include "storage/mailbox_types.hpp"

namespace pillarbox::imap {

inline constexpr char kSeparator = '/';

// Whether a mailbox name matches a LIST pattern (reference already joined): '*' matches any
// characters, '%' any but the hierarchy separator. INBOX's name is matched without regard to case.
bool list_match(std::string_view pattern, std::string_view name);

// reference + pattern as one pattern (RFC 9051 6.3.9: the reference is a prefix).
std::string join_reference(std::string_view reference, std::string_view pattern);

struct ListEntry {
    std::string name;
    std::vector<std::string> attributes;  // "\\HasNoChildren", "\\Sent", "\\Subscribed", ...
    std::vector<std::string> childinfo;   // RFC 5258 CHILDINFO extended data ("SUBSCRIBED")
    bool selectable = true;               // a real mailbox (STATUS may be asked of it)
};

// LIST (lsub false) or LSUB (lsub true) over an account's mailboxes. An empty pattern list
// entry ("") is not handled here (the caller answers the separator query).
std::vector<ListEntry> list_mailboxes(const std::vector<storage::MailboxInfo>& boxes, const ListRequest& r, bool lsub);

}  // namespace pillarbox::imap
