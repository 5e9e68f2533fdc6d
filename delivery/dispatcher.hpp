// The delivery dispatcher: one message with its resolved recipients fans out to the local
// mailboxes (Store), the outbound queue and the hold queue, all DeliveryTargets, with one
// backpressure signal, per-recipient results, DSN/ORCPT kept in the queue, and Postfix's log
// lines. The SMTP session and pickup use it; LMTP, sendmail and the web UI will.
#pragma once
#include <asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/outcome.hpp"
#include "storage/delivery_target.hpp"
#include "storage/queue/queue.hpp"

namespace pillarbox::storage { class Mailboxes; }

namespace pillarbox::delivery {

// One recipient as the client (or the queue file) gave it, and where it goes.
struct Recipient {
    std::string address;                // as given: the alias, or a remote address
    storage::RecipientDsn dsn;          // NOTIFY and ORCPT (RFC 3461)
    std::vector<std::string> accounts;  // local accounts it reaches (user@domain)
    std::vector<std::string> remote;    // addresses for the outbound queue
};

struct Message {
    std::string queue_id;  // the id of the log lines
    std::string service;   // the log lines' service: smtpd, pickup
    // Sender, DSN RET/ENVID, SMTPUTF8 and the client, as the queue keeps them (recipients unused).
    storage::queue::Envelope envelope;
    std::vector<Recipient> recipients;
    bool hold = false;  // an access table said HOLD: all of it to the hold queue, recipients as given
    std::chrono::system_clock::time_point arrived = std::chrono::system_clock::now();  // delay=
};

// Where the message goes: the store for mailboxes, the queue for the rest.
struct Targets {
    asio::io_context* loop = nullptr;
    storage::Mailboxes* store = nullptr;
    storage::queue::Queue* queue = nullptr;
};

// What became of each recipient.
enum class RecipientState { Delivered, Temporary, Permanent };

struct Result {
    // The message is durable for every recipient that didn't fail for good: in a mailbox, in
    // the outbound or hold queue, or in a retry copy. A session answers 250.
    bool accepted = false;
    std::string refusal;  // not accepted: the reply line, without CRLF
    std::vector<std::string> accounts;             // the local accounts, deduplicated
    std::vector<storage::RecipientResult> local;   // one per account
    bool remote_failed = false;                    // the outbound queue write failed
    std::vector<RecipientState> recipients;        // one per Message::recipients
};

// After the commits, a message that reached someone and missed others:
//   QueueCopies: the missed recipients get a durable copy in the queue before the answer (a
//                temporary failure to incoming/ for a retry, over quota to the hold queue);
//                what a session needs, which must answer the client once for everyone.
//   Report:      nothing more; the caller keeps the message (pickup: its incoming/ file).
enum class PartialFailures { QueueCopies, Report };

class Dispatcher : public std::enable_shared_from_this<Dispatcher> {
public:
    static std::shared_ptr<Dispatcher> create(Targets targets, Message message);
    ~Dispatcher();

    // Opens the targets the recipients need; false when one doesn't exist (no store or queue).
    bool open();
    void body(std::string_view bytes);
    // Bytes accepted and not yet written, over every target; on_drained runs once each target
    // drained (a session stops reading above its limit meanwhile).
    std::size_t buffered() const;
    void on_drained(std::function<void()> cb);
    // header_checks said HOLD while the message arrives: what was written is dropped and the
    // message starts over into the hold queue (the caller sends the bytes again that it had
    // sent: its Received: line). False when the hold queue can't be written.
    bool hold_now();
    bool held() const { return held_; }
    // Commits every target; done runs on the loop, after the log lines. Acknowledge only then.
    void commit(PartialFailures partial, std::function<void(Result)> done);
    void abort();  // nothing stays anywhere

private:
    Dispatcher(Targets targets, Message message) : t_(targets), m_(std::move(message)) {}
    bool open_hold();
    void committed();
    void queue_copies(DeliveryOutcome outcome);
    void log_local(const std::vector<std::string>& copy_of);
    void finish();
    double delay() const;

    Targets t_;
    Message m_;
    std::unique_ptr<storage::DeliveryTarget> local_;
    std::unique_ptr<storage::queue::Writer> remote_;  // the outbound queue, or the hold queue when held_
    bool held_ = false;
    PartialFailures partial_ = PartialFailures::QueueCopies;
    int pending_ = 0;
    bool committing_ = false;
    std::vector<storage::RecipientResult> remote_results_;
    std::vector<std::string> log_;
    Result result_;
    std::function<void(Result)> done_;
};

}  // namespace pillarbox::delivery
