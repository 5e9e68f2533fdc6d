// The durable outbound queue: the SMTP server enqueues mail for non-local recipients here and
// the delivery agent reads it back. Loop-thread writer API; all file I/O runs on the queue's threads.
#pragma once
#include <asio/io_context.hpp>
#include <asio/thread_pool.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// On disk, under DATA/queue/ (each message lives in one of three places, see Place):
//   tmp/<ID>.eml, tmp/<ID>.env   a message being written (never read by anyone else)
//   messages/<ID>.eml            the message as received: bytes exactly as the session passed
//                                them (CRLF line ends, its Received: header on top)
//   messages/<ID>.env            the envelope as JSON (see to_json)
//   hold/<ID>.eml, hold/<ID>.env         held (a HOLD action): nobody delivers it until released
//   incoming/<ID>.eml, incoming/<ID>.env released from hold: the server routes it again
// Commit order: both tmp files written and made durable, then rename .eml, rename .env (both
// without replacing anything), then one fsync of messages/ shared by every commit of the batch.
// A message is queued exactly when messages/<ID>.env exists: the .env rename comes last, so a
// crash at any instant leaves either a queued message with its complete .eml, or garbage that
// nobody reads (tmp files, a lone messages/<ID>.eml) and that recover() deletes.

#include "storage/delivery_target.hpp"

namespace pillarbox::storage::queue {

// Where a queued message is. messages/: the outbound queue, for the delivery agent. hold/:
// Postfix's hold queue, messages a HOLD action stopped, with the recipients as given at RCPT;
// nobody touches them until an admin releases (incoming/) or deletes them. incoming/: released
// messages, which the running server routes again like new mail (local recipients to their
// mailboxes, the rest to messages/).
enum class Place { Messages, Hold, Incoming };
const char* place_name(Place p);  // "messages", "hold", "incoming": also the directory name

// DSN NOTIFY (RFC 3461) bits of a recipient; 0 means NOTIFY was not given.
namespace notify {
constexpr unsigned never = 1, success = 2, failure = 4, delay = 8;
}

struct Recipient {
    std::string address;  // without <>
    unsigned notify = 0;  // notify:: bits; never excludes the others
    std::string orcpt;    // ORCPT as given ("rfc822;user@example.org"), or ""
};

struct Envelope {
    std::string sender;  // without <>; "" for the null sender
    std::vector<Recipient> recipients;
    std::string ret;    // DSN RET: "FULL", "HDRS" or ""
    std::string envid;  // DSN ENVID, or ""
    bool smtputf8 = false, eightbit = false, requiretls = false;
    std::string client_ip, helo, sasl_user;  // for log lines only
    // Why the message is where it is, for the admin (`queue list`, `queue show`): e.g. why a
    // recipient's copy was put on hold ("5.2.2 mailbox full: ..."). "" when there is nothing to say.
    std::string reason;

    // Filled in by the queue: start() sets id, attempts = 0, and received (next_attempt =
    // received) unless given; commit sets size. The delivery agent updates attempts and next_attempt.
    std::string id;
    std::int64_t received = 0;      // unix seconds
    unsigned attempts = 0;
    std::int64_t next_attempt = 0;  // unix seconds
    std::uint64_t size = 0;         // bytes of the .eml; a reader checks it against the file
};

// "" when the envelope can be written and read back: a valid id, at least one recipient, known
// ret and notify values, no control characters in any string, each at most 2048 bytes.
std::string validate(const Envelope& e);
// The .env text. Throws std::invalid_argument when validate() fails or a string is not UTF-8.
std::string to_json(const Envelope& e);
// Parses and validates an .env text; nullopt with *error set when anything is wrong.
std::optional<Envelope> from_json(std::string_view text, std::string* error = nullptr);

// 16 uppercase hex digits: 13 of microseconds since the epoch (good until 2112, and ids sort by
// arrival) and 3 of a per-process random start plus a counter.
bool valid_id(std::string_view id);

// One message on its way into the queue: a DeliveryTarget (start, recipients, body, commit or
// abort), so the delivery dispatcher treats it like a mailbox delivery. Loop thread only.
// Destroying it before commit aborts; destroying it after commit does not stop the commit, and
// the callback still runs.
class Writer : public DeliveryTarget {
public:
    ~Writer() override;
    // The queue's own start: the whole envelope at once (tools, tests, copies).
    virtual void start(Envelope env) = 0;
    // DeliveryTarget's: the envelope given to Queue::writer() with this sender, then the
    // recipients one by one (localpart@domain, or a whole address as localpart with domain "";
    // delivered_to is not used: the queue keeps the message as given). The message starts
    // when its body does.
    void start(const std::string& return_path, bool add_return_path) override = 0;
    void add_recipient(const std::string& localpart, const std::string& domain, const std::string& delivered_to,
                       const RecipientDsn& dsn = {}) override = 0;
    // buffered(): on_drained runs once it is below 64 KiB (at once if it already is).
    // The queue's own commit: done(true, queue id) only once the message is durable and queued;
    // done(false, reason for the log) leaves nothing behind. done always runs later on the loop,
    // never inside commit(). DeliveryTarget's commit answers the same for every recipient
    // (queue_id set when ok).
    virtual void commit(std::function<void(bool ok, std::string queue_id_or_error)> done) = 0;
    using DeliveryTarget::commit;
    // The queue id from start() on, for log lines; commit reports the same one.
    virtual const std::string& id() const = 0;
};

struct Skipped {
    std::string id;      // the file's stem
    std::string reason;  // why it is not a queued message
};

struct RecoverReport {
    std::size_t tmp_removed = 0;   // files under tmp/
    std::size_t lone_removed = 0;  // messages/<ID>.eml without its .env
};

namespace detail {
struct Core;
}

class Queue {
public:
    // Nothing is created on disk until the first message (or recover()).
    Queue(asio::io_context& loop, std::filesystem::path data_directory, std::size_t io_threads = 2);
    // Waits for the I/O in flight; commits already handed to the I/O threads still complete.
    // Destroy on the loop thread (or with the loop stopped). Writers that outlive the queue fail
    // their commit and leave their tmp files to recover().
    ~Queue();
    Queue(const Queue&) = delete;
    Queue& operator=(const Queue&) = delete;

    // base: the envelope a DeliveryTarget-style start() uses (sender and recipients are set
    // through start(return_path) and add_recipient()).
    std::unique_ptr<Writer> writer(Place where = Place::Messages, Envelope base = {});
    // Queues a message whose bytes are already in a file (src; see storage::MessageCopy), read
    // and written on the queue's threads in chunks, so no message is held in memory; then
    // committed as a Writer's. done as Writer::commit's, always later on the loop. Loop thread.
    void copy_in(Envelope env, Place where, std::shared_ptr<const MessageCopy> src,
                 std::function<void(bool ok, std::string queue_id_or_error)> done);

    // Blocking, for startup and tools (never on the loop thread):
    // The queued messages' ids in id (arrival) order. An .env that does not parse, whose id
    // does not match its name, or whose .eml is missing or of another size is left out, and
    // reported in *skipped (and the log).
    std::vector<std::string> list(std::vector<Skipped>* skipped = nullptr) { return list(Place::Messages, skipped); }
    std::vector<std::string> list(Place where, std::vector<Skipped>* skipped = nullptr);
    // The envelope of a queued message, with the same checks as list().
    std::optional<Envelope> read_envelope(const std::string& id, std::string* why = nullptr) {
        return read_envelope(id, Place::Messages, why);
    }
    std::optional<Envelope> read_envelope(const std::string& id, Place where, std::string* why = nullptr);
    // Moves a message from one place to another (postsuper -H is hold -> incoming), crash-safe:
    // the .eml is hard-linked first, then the .env renamed, the target directory fsync'd, then
    // the old .eml unlinked; a crash leaves the message in one place or the other plus at most a
    // lone .eml that recover() removes. "" or why not (no such message, I/O error).
    std::string move(const std::string& id, Place from, Place to);
    // Replaces a queued message's envelope (fewer recipients once some were delivered): the new
    // .env is written and synced under tmp/, then renamed over the old one, and the directory
    // fsync'd; a crash leaves the old envelope or the new one. env.id names the message.
    std::string rewrite_envelope(const Envelope& env, Place where);
    // Deletes a message (postsuper -d): the .env first, so it is no longer queued at once.
    std::string remove(const std::string& id, Place where);
    // Deletes the garbage a crash leaves: every file in tmp/ and every lone *.eml (in any place) whose
    // ctime is at least min_age old (a rename sets the ctime, so a commit in flight is never
    // hit). At startup, before any writer exists, the default 0 removes all of it; a tool
    // running next to a live server must pass an age longer than any SMTP transaction.
    RecoverReport recover(std::chrono::seconds min_age = std::chrono::seconds(0));

    std::filesystem::path message_path(const std::string& id, Place where = Place::Messages) const;   // <place>/<ID>.eml
    std::filesystem::path envelope_path(const std::string& id, Place where = Place::Messages) const;  // <place>/<ID>.env

    // Counters for tests and benchmarks: commits that succeeded, batches that ran, and the
    // messages/ fsyncs they took (one per batch with at least one rename).
    struct Stats {
        std::uint64_t commits = 0, batches = 0, dir_fsyncs = 0;
    };
    Stats stats() const;

private:
    std::shared_ptr<detail::Core> core_;
    asio::thread_pool io_;         // body and .env writes, several messages at once
    asio::thread_pool committer_;  // one thread: syncs, renames and the shared directory fsync
};

}  // namespace pillarbox::storage::queue
