// The delivery contract every target of a message implements: a mailbox delivery (Store), the
// outbound or hold queue (queue::Writer). The delivery dispatcher fans one message out to them.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/mailbox_types.hpp"

namespace pillarbox::storage {

struct MessageCopy;

// What happened to one recipient of a delivery.
struct RecipientResult {
    bool ok = false;
    bool temporary = true;  // on failure: try again later (disk full, I/O error)
    bool over_quota = false;
    std::optional<StoreError::Kind> kind;  // on failure, what the store said, if it said (APPEND's NotFound)
    std::string reason;     // for the log, never for the client
    std::uint32_t uid = 0;
    std::string queue_id;   // a queue target's: the message's queue id once queued
};

// A recipient's DSN request (RFC 3461): mailboxes ignore it, a queue target keeps it for the
// delivery agent's reports.
struct RecipientDsn {
    unsigned notify = 0;  // storage::queue::notify bits; 0: NOTIFY not given
    std::string orcpt;    // "rfc822;user@example.org", or ""
};

// The delivery contract (maddy's shape): start, add recipients, stream the body, then commit or
// abort. commit's callback runs only after the message is durable in every mailbox that
// reports ok. Use from the loop thread only.
class DeliveryTarget {
public:
    virtual ~DeliveryTarget() = default;
    // return_path: the envelope sender without <> ("" for the null sender). With add_return_path
    // a Return-Path: header is written at the top of each copy.
    virtual void start(const std::string& return_path, bool add_return_path) = 0;
    // One copy per account; delivered_to non-empty adds a Delivered-To: header to that copy.
    virtual void add_recipient(const std::string& localpart, const std::string& domain, const std::string& delivered_to,
                               const RecipientDsn& dsn = {}) = 0;
    virtual void body(std::string_view chunk) = 0;
    // Bytes accepted by body() and not yet written; a session may stop reading above a limit and
    // wait for on_drained.
    virtual std::size_t buffered() const = 0;
    virtual void on_drained(std::function<void()> cb) = 0;
    virtual void commit(std::function<void(std::vector<RecipientResult>)> done) = 0;
    virtual void abort() = 0;  // nothing of this message stays anywhere
    // Once commit's callback ran: the message as the body() calls gave it (without the header
    // lines this delivery added to each copy), read from one copy that was written completely
    // and synced, whether or not its mailbox then took it; null when no copy was. How a partly
    // delivered message gets its retry and hold copies without keeping it in memory.
    virtual std::shared_ptr<const MessageCopy> copy_source() const { return nullptr; }
};

}  // namespace pillarbox::storage
