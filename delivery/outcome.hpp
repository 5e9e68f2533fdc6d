// What the client is told after a message's commits, and what must still be queued first: a
// message that reached any recipient is accepted (250) and the recipients it missed get a
// durable copy in the queue (a local retry, or the hold queue with the reason), because the
// client's own retry would duplicate it for the others. Pure: the session does the I/O.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "storage/queue/queue.hpp"
#include "storage/store.hpp"

namespace pillarbox::delivery {

struct DeliveryOutcome {
    // A copy to queue before the reply (with the recipients it names).
    struct Copy {
        storage::queue::Place place = storage::queue::Place::Incoming;
        std::vector<std::size_t> accounts;  // indexes into the local accounts (Incoming, Hold)
        bool remote = false;                // the remote recipients (Messages: their queue write failed)
        std::string reason;                 // for the envelope: `pillarbox queue list` shows it
    };
    bool accepted = false;  // 250: at least one recipient has the message durably
    std::string refusal;    // when not accepted: the whole reply line without CRLF
    std::vector<Copy> copies;
};

// local: one result per local account, in add_recipient order (empty: no local recipients);
// accounts: their addresses, for reasons. remote_used: the message went to the outbound queue
// as well; remote_ok: that write succeeded.
DeliveryOutcome decide_outcome(const std::vector<storage::RecipientResult>& local, const std::vector<std::string>& accounts,
                               bool remote_used, bool remote_ok);

// Postfix's log line for one local recipient's delivery: "to=<account>, relay=local, delay=D,
// dsn=X.Y.Z, status=sent|deferred|bounced (why)"; `why` is the result's reason unless given.
std::string local_delivery_log(const std::string& account, const storage::RecipientResult& r, double delay,
                               const std::string& why = {});

// The text made safe for a queue envelope's reason (no control characters, bounded).
std::string envelope_reason(std::string_view text);

}  // namespace pillarbox::delivery
