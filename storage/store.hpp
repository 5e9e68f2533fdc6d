// The store every protocol reads and writes: accounts under DATA/mail/<domain>/<localpart>/,
// durable delivery with group commit. Loop-thread API; the blocking work runs on the store's
// own threads (parallel file writes, one writer thread for batches and the indexes) and the
// completions are posted back to the loop.
#pragma once
#include <asio/io_context.hpp>
#include <asio/thread_pool.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <asio/post.hpp>
#include <optional>

#include "server/config.hpp"
#include "storage/account.hpp"
#include "storage/change_bus.hpp"

namespace pillarbox::storage {

struct StoreSettings {
    StoreSettings() = default;
    StoreSettings(std::filesystem::path dir, std::string host) : data_directory(std::move(dir)), hostname(std::move(host)) {}
    std::filesystem::path data_directory;
    std::string hostname = "localhost";  // goes into Maildir file names
    std::size_t io_threads = 4;
    Quota quota;                       // per account, unless quota_for says otherwise for one
    // An account's own limits (pillarbox user add --quota): asked on the writer thread before
    // each delivery or append to that account, so a change applies at once. nullopt: `quota`.
    std::function<std::optional<Quota>(const std::string& localpart, const std::string& domain)> quota_for;
    bool quota_full_tempfail = false;  // Dovecot's name: over quota is 452 instead of 552
    // Fills the parse cache as messages arrive (on the io threads, not the writer). Empty (what
    // serve does): the cache is filled on first need, by whoever needs it; parsing every
    // delivery cost SMTP a sixth of its throughput (bench/README.md). storage does not depend
    // on the protocols' parser, hence a function.
    std::function<std::string(std::string_view message)> parse;

    // data_directory, myhostname, worker_threads, mailbox_size_limit, mailbox_message_limit,
    // quota_full_tempfail.
    static StoreSettings from(const config::Config& c);
};

// What happened to one recipient of a delivery.
struct RecipientResult {
    bool ok = false;
    bool temporary = true;  // on failure: try again later (disk full, I/O error)
    bool over_quota = false;
    std::string reason;     // for the log, never for the client
    std::uint32_t uid = 0;
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
    virtual void add_recipient(const std::string& localpart, const std::string& domain,
                               const std::string& delivered_to) = 0;
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

class Store {
public:
    Store(asio::io_context& loop, StoreSettings settings);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    std::unique_ptr<DeliveryTarget> delivery();
    std::filesystem::path account_root(const std::string& localpart, const std::string& domain) const;

    // Runs fn on the writer thread with the account opened, then done(error or "") on the loop;
    // run() without a result.
    void with_account(const std::string& localpart, const std::string& domain, std::function<void(Account&)> fn,
                      std::function<void(std::string)> done);

    // Runs fn(Account&) on the writer thread; on the loop, publishes the changes it made on the
    // bus (in order), then calls done. This is how the protocols use the mailbox API:
    //   store.run<std::vector<MessageInfo>>(lp, dom, [](Account& a) { return a.snapshot("INBOX"); }, cb);
    template <typename R, typename Fn>
    void run(const std::string& localpart, const std::string& domain, Fn fn, std::function<void(Outcome<R>)> done);

    // IMAP APPEND: the message is written to the account's tmp/ and joins the group commit.
    void append(const std::string& localpart, const std::string& domain, const std::string& mailbox,
                std::string message, std::uint32_t flags, std::int64_t internal_date,
                std::function<void(RecipientResult)> done);

    // Reads up to length bytes of a message file from offset (IMAP BODY[]<partial>, a section's
    // byte range, POP3 RETR in chunks) on an io thread: done(bytes, error). Bytes shorter than
    // length mean the end of the file. file is MessageInfo::file of that mailbox.
    void read(const std::string& localpart, const std::string& domain, const MailboxInfo& mailbox, const std::string& file,
              std::uint64_t offset, std::size_t length, std::function<void(std::string, std::string)> done);

    // What SMTP checks at RCPT without touching the disk: the account's usage and limits as the
    // writer last saw them when it delivered to the account (it computes them for the quota
    // check anyway), if that was less than kUsageTtl ago and nothing else changed the account
    // since (expunges, copies: any run() drops the entry). nullopt: not known. Any thread.
    struct KnownUsage {
        Usage usage;
        Quota quota;
        std::chrono::steady_clock::time_point at;
    };
    static constexpr std::chrono::seconds kUsageTtl{30};  // then unknown: mail changed by other tools
    std::optional<KnownUsage> known_usage(const std::string& localpart, const std::string& domain) const;
    // The account's limits now (StoreSettings::quota_for, else quota). Blocking (it may read the
    // account database): a worker thread.
    Quota quota_of(const std::string& localpart, const std::string& domain) const;

    ChangeBus& bus() { return bus_; }
    static std::string account_key(const std::string& localpart, const std::string& domain) {
        return localpart + "@" + domain;
    }

    const StoreSettings& settings() const { return settings_; }

private:
    friend class Delivery;
    struct Item {
        std::string localpart, domain;
        std::string mailbox = "INBOX";
        NewMessage message;
        std::function<void(RecipientResult)> done;
    };
    // Any thread: queues durable messages for the writer, waking it if it is idle.
    void submit(std::vector<Item> items);
    void drain();                                                 // writer thread
    void finish_batch(std::shared_ptr<std::vector<Item>> batch);  // writer thread
    Account& account(const std::string& localpart, const std::string& domain);  // writer thread

    asio::io_context& loop_;
    StoreSettings settings_;
    asio::thread_pool io_;
    asio::thread_pool writer_;
    asio::thread_pool side_{1};  // each batch's directory fsync, beside its index commit
    // Messages whose data is durable, waiting for the writer. Filled straight from the io
    // threads, so a message makes one thread hop from its data sync to its commit.
    std::mutex queue_mutex_;
    std::deque<Item> queue_;       // under queue_mutex_
    bool writer_busy_ = false;     // under queue_mutex_: drain() is posted or running
    std::map<std::string, std::unique_ptr<Account>> accounts_;  // writer thread only
    ChangeBus bus_;                                              // loop thread
    mutable std::mutex usage_mutex_;
    std::map<std::string, KnownUsage> usage_;  // under usage_mutex_; see known_usage
    void forget_usage(const std::string& key);                // writer thread
    void remember_usage(const std::string& key, Account& a);  // writer thread, after add_messages
};

template <typename R, typename Fn>
void Store::run(const std::string& localpart, const std::string& domain, Fn fn, std::function<void(Outcome<R>)> done) {
    auto work = asio::make_work_guard(loop_);
    asio::post(writer_, [this, localpart, domain, fn = std::move(fn), done = std::move(done), work]() mutable {
        auto out = std::make_shared<Outcome<R>>();
        auto changes = std::make_shared<std::vector<Change>>();
        try {
            Account& a = account(localpart, domain);
            forget_usage(account_key(localpart, domain));  // fn may expunge: usage unknown now
            try {
                out->value = fn(a);
            } catch (...) {
                *changes = a.take_changes();
                throw;
            }
            *changes = a.take_changes();
        } catch (const StoreError& e) {
            out->error = e.kind;
            out->reason = e.what();
        } catch (const std::exception& e) {
            out->reason = e.what();
        }
        asio::post(loop_, [this, key = account_key(localpart, domain), out, changes, done = std::move(done), work]() mutable {
            for (auto& c : *changes) bus_.publish(key, c);
            done(std::move(*out));
        });
    });
}

// write(2) until all of data is written (EINTR and short writes handled); false with errno set.
bool write_fully(int fd, std::string_view data);
bool write_fully(int fd, std::string_view first, std::string_view second);  // one writev

// Checks a localpart or domain before it becomes a directory name.
bool safe_path_component(std::string_view s);

// "" when localpart@domain may name an account's folder (server/mail_names.hpp), else
// "invalid mailbox name ...: why". Deliveries to such a name fail permanently, creating nothing.
std::string invalid_account_name(std::string_view localpart, std::string_view domain);

}  // namespace pillarbox::storage
