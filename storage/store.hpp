// The store every protocol reads and writes: accounts under DATA/mail/<domain>/<localpart>/,
// durable delivery with group commit. Loop-thread API; the blocking work runs on the store's
// own threads (parallel file writes, one writer thread for batches and the indexes) and the
// completions are posted back to the loop.
#pragma once
#include <asio/io_context.hpp>
#include <asio/thread_pool.hpp>

#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "storage/account.hpp"

namespace pillarbox::storage {

struct StoreSettings {
    std::filesystem::path data_directory;
    std::string hostname = "localhost";  // goes into Maildir file names
    std::size_t io_threads = 4;
};

// What happened to one recipient of a delivery.
struct RecipientResult {
    bool ok = false;
    bool temporary = true;  // on failure: try again later (disk full, I/O error)
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
};

class Store {
public:
    Store(asio::io_context& loop, StoreSettings settings);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    std::unique_ptr<DeliveryTarget> delivery();
    std::filesystem::path account_root(const std::string& localpart, const std::string& domain) const;

    // Runs fn on the writer thread with the account opened, then done(error or "") on the loop.
    void with_account(const std::string& localpart, const std::string& domain, std::function<void(Account&)> fn,
                      std::function<void(std::string)> done);

    const StoreSettings& settings() const { return settings_; }

private:
    friend class Delivery;
    struct Item {
        std::string localpart, domain;
        NewMessage message;
        std::function<void(RecipientResult)> done;
    };
    void submit(std::vector<Item> items);
    void start_batch();
    Account& account(const std::string& localpart, const std::string& domain);  // writer thread

    asio::io_context& loop_;
    StoreSettings settings_;
    asio::thread_pool io_;
    asio::thread_pool writer_;
    std::deque<Item> queue_;  // loop thread
    bool batch_running_ = false;
    std::map<std::string, std::unique_ptr<Account>> accounts_;  // writer thread only
};

// Checks a localpart or domain before it becomes a directory name.
bool safe_path_component(std::string_view s);

}  // namespace pillarbox::storage
