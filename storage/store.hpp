// The store every protocol reads and writes: accounts under DATA/mail/<domain>/<localpart>/,
// durable delivery with group commit, and the mailbox interface (mailboxes.hpp: reads on
// read-only index connections, writes on the account's writer). Loop-thread API; the blocking
// work runs on the store's own threads (parallel file writes and index reads, and
// worker_threads writer threads, each owning the batches and indexes of its share of the
// accounts) and the completions are posted back to the loop.
#pragma once
#include <asio/io_context.hpp>
#include <asio/thread_pool.hpp>

#include <atomic>
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
#include "storage/change_bus.hpp"
#include "storage/delivery_target.hpp"
#include "storage/mailbox_types.hpp"
#include "storage/mailboxes.hpp"
#include "storage/message_file.hpp"

namespace pillarbox::storage {

class Account;
class IndexReaders;

// The parameters' defaults are written once, in server/parameters.cpp: from() sets those fields.
struct StoreSettings {
    std::filesystem::path data_directory;  // data_directory
    std::string hostname;                  // myhostname: goes into Maildir file names
    std::size_t io_threads{};              // worker_threads
    std::size_t writer_threads = 0;        // writers the accounts are spread over; 0: io_threads
    // mailbox_size_limit, mailbox_message_limit: per account, unless quota_for says otherwise
    // for one.
    Quota quota;
    // An account's own limits (pillarbox user add --quota): asked on the writer thread before
    // each delivery or append to that account, so a change applies at once. nullopt: `quota`.
    std::function<std::optional<Quota>(const std::string& localpart, const std::string& domain)> quota_for;
    bool quota_full_tempfail{};            // Dovecot's name: over quota is 452 instead of 552
    // Fills the parse cache as messages arrive (on the io threads, not the writer). Empty (what
    // serve does): the cache is filled on first need, by whoever needs it; parsing every
    // delivery cost SMTP a sixth of its throughput (bench/README.md). storage does not depend
    // on the protocols' parser, hence a function.
    std::function<std::string(std::string_view message)> parse;
    // With parse set: run it at delivery too (otherwise only when Mailboxes::parsed asks).
    bool parse_at_delivery = false;
    // Read-only index connections kept open while idle, over all accounts (the least recently
    // used is closed past this). A read reuses an idle one of its account's; bench/pop3's 20
    // accounts fit many times over.
    std::size_t idle_read_connections = 64;
    // open_accounts_limit: accounts the writers keep open (each an equal share); past it the
    // least recently used is closed between two jobs.
    std::size_t open_accounts_limit = 256;
    // Tests only: runs on the io thread after a reader answered, before its result is posted to
    // the loop (to hold a read there while the writer publishes a change).
    std::function<void()> after_read_for_tests;

    // data_directory, myhostname, worker_threads, mailbox_size_limit, mailbox_message_limit,
    // quota_full_tempfail, open_accounts_limit.
    static StoreSettings from(const config::Config& c);
};

class Store final : public Mailboxes {
public:
    Store(asio::io_context& loop, StoreSettings settings);
    ~Store() override;
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    std::unique_ptr<DeliveryTarget> delivery() override;
    std::filesystem::path account_root(const std::string& localpart, const std::string& domain) const;

    // Mailboxes (mailboxes.hpp).
    [[nodiscard]] ChangeBus::Subscription subscribe(const AccountId& account, const std::string& mailbox,
                                                    ChangeBus::Listener listener) override;
    void snapshot(const AccountId& account, const std::string& mailbox, Done<MailboxSnapshot> done) override;
    void view(const AccountId& account, const std::string& mailbox, Done<MailboxView> done) override;
    void cached_parses(const AccountId& account, const std::string& mailbox, UidRanges uids,
                       Done<CachedParses> done) override;
    void messages(const AccountId& account, const std::string& mailbox, UidRanges uids,
                  Done<std::vector<MessageInfo>> done) override;
    void status(const AccountId& account, const std::string& mailbox, Done<MailboxStatus> done) override;
    void message(const AccountId& account, const std::string& mailbox, std::uint32_t uid,
                 Done<std::optional<MessageInfo>> done) override;
    void mailboxes(const AccountId& account, Done<std::vector<MailboxInfo>> done) override;
    void search(const AccountId& account, const std::string& mailbox, const SearchQuery& query,
                Done<std::vector<std::uint32_t>> done) override;
    void read(const AccountId& account, const MailboxInfo& mailbox, const std::string& file, std::uint64_t offset,
              std::size_t length, Done<std::string> done) override;
    void set_flags(const AccountId& account, const std::string& mailbox, const std::vector<std::uint32_t>& uids, FlagOp op,
                   std::uint32_t flags, const std::vector<std::string>& keywords, Done<std::vector<MessageInfo>> done) override;
    void expunge(const AccountId& account, const std::string& mailbox, const std::vector<std::uint32_t>& uids,
                 Done<std::vector<std::uint32_t>> done) override;
    void commit_maildrop(const AccountId& account, const std::string& mailbox, const MaildropUpdate& update,
                         Done<std::string> done) override;
    std::unique_ptr<AppendTarget> append(const AccountId& account, const std::string& mailbox, std::uint32_t flags,
                                         std::int64_t internal_date) override;
    void copy(const AccountId& account, const std::string& from, const std::vector<std::uint32_t>& uids,
              const std::string& to, Done<Copied> done) override;
    void move(const AccountId& account, const std::string& from, const std::vector<std::uint32_t>& uids,
              const std::string& to, Done<Copied> done) override;
    void create_mailbox(const AccountId& account, const std::string& name, const std::string& special_use,
                        Done<bool> done) override;
    void delete_mailbox(const AccountId& account, const std::string& name, Done<bool> done) override;
    void rename_mailbox(const AccountId& account, const std::string& from, const std::string& to, Done<bool> done) override;
    void set_subscribed(const AccountId& account, const std::string& name, bool subscribed, Done<bool> done) override;
    void parsed(const AccountId& account, const std::string& mailbox, std::uint32_t uid, Done<std::string> done) override;
    void quota(const AccountId& account, Done<QuotaState> done) override;
    void expunged_since(const AccountId& account, const std::string& mailbox, std::uint64_t modseq,
                        Done<std::vector<std::uint32_t>> done) override;
    void set_flags_unchanged_since(const AccountId& account, const std::string& mailbox, const std::vector<std::uint32_t>& uids,
                                   FlagOp op, std::uint32_t flags, const std::vector<std::string>& keywords,
                                   std::uint64_t unchanged_since, Done<ConditionalFlags> done) override;

    // Runs fn on the writer thread with the account opened, then done(error or "") on the loop;
    // run() without a result.
    void with_account(const std::string& localpart, const std::string& domain, std::function<void(Account&)> fn,
                      std::function<void(std::string)> done);

    // Runs fn(Account&) on the writer thread; on the loop, publishes the changes it made on the
    // bus (in order), then calls done. What the Mailboxes writes are made of, and what the
    // operations without a named one yet (copy, move, folders, the parse cache) use:
    //   store.run<std::vector<std::uint32_t>>(lp, dom, [](Account& a) { return a.copy("INBOX", uids, "Archive"); }, cb);
    template <typename R, typename Fn>
    void run(const std::string& localpart, const std::string& domain, Fn fn, std::function<void(Outcome<R>)> done);

    // What SMTP checks at RCPT without touching the disk: the account's usage and limits as the
    // writer last saw them when it delivered to the account (it computes them for the quota
    // check anyway), if that was less than kUsageTtl ago and nothing else changed the account
    // since (expunges, copies: any run() drops the entry). nullopt: not known. Any thread.
    static constexpr std::chrono::seconds kUsageTtl{30};  // then unknown: mail changed by other tools
    std::optional<KnownUsage> known_usage(const std::string& localpart, const std::string& domain) const;
    // The account's limits now (StoreSettings::quota_for, else quota). Blocking (it may read the
    // account database): a worker thread.
    Quota quota_of(const std::string& localpart, const std::string& domain) const;
    std::optional<KnownUsage> known_usage(const AccountId& a) const override { return known_usage(a.localpart, a.domain); }
    Quota quota_of(const AccountId& a) const override { return quota_of(a.localpart, a.domain); }
    bool quota_full_tempfail() const override { return settings_.quota_full_tempfail; }

    // How reads were answered so far, and read-only connections opened for them: a reader answers
    // most; the writer those a reader can't (see mailboxes.hpp). Any thread.
    struct ReadCounts {
        std::uint64_t by_readers = 0, by_writer = 0, connections_opened = 0;
    };
    ReadCounts read_counts() const;

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
    struct OpenAccount {
        std::unique_ptr<Account> account;
        std::uint64_t used = 0;  // Writer::uses when last handed out
    };
    // A writer thread and the accounts it owns: every write to an account (and every read the
    // readers can't answer) runs on its writer, one at a time and in order, so an account's
    // changes are published in commit order. Accounts are spread over worker_threads writers
    // by their name, so that the fsyncs of different accounts' commits run side by side (a
    // disk completes several flushes at once faster than one after another).
    struct Writer {
        asio::thread_pool thread{1};
        // Messages whose data is durable, waiting for this writer. Filled straight from the io
        // threads, so a message makes one thread hop from its data sync to its commit.
        std::mutex queue_mutex;
        std::deque<Item> queue;                      // under queue_mutex
        bool busy = false;                           // under queue_mutex: drain() is posted or running
        std::map<std::string, OpenAccount> accounts;  // its thread only
        std::uint64_t uses = 0;                      // its thread only
    };
    Writer& writer_of(const std::string& key);
    // Any thread: queues durable messages for their writers, waking those that are idle.
    void submit(std::vector<Item> items);
    void drain(Writer& w);                                                  // w's thread
    void finish_batch(Writer& w, std::shared_ptr<std::vector<Item>> batch);  // w's thread
    Account& account(Writer& w, const std::string& localpart, const std::string& domain);  // w's thread
    // w's thread, between jobs (never while an Account& is held): closes its least recently
    // used accounts past its share of open_accounts_limit.
    void close_idle_accounts(Writer& w);

    // run()'s untyped part (store.cpp): work on the writer thread, then on the loop the
    // publication of its changes and finish(error kind, reason) (both empty: it worked).
    void run_on_writer(const std::string& localpart, const std::string& domain, std::function<void(Account&)> work,
                       std::function<void(std::optional<StoreError::Kind>, std::string)> finish);

    // Blocking (an io thread): up to length bytes of a file from offset; NotFound when it is gone.
    static Outcome<std::string> read_file(const std::filesystem::path& path, std::uint64_t offset, std::size_t length);
    void parsed_try(const AccountId& account, const std::string& mailbox, std::uint32_t uid, int tries,
                    Done<std::string> done);
    // parsed()'s second half: the file parsed on an io thread, the result kept by the writer.
    void parse_and_keep(const AccountId& account, const std::string& mailbox, std::uint32_t uid,
                        std::filesystem::path file, int tries, Done<std::string> done);

    // The read path (store_reads.cpp).
    class IndexView;
    template <typename R>
    struct ReadJob;
    template <typename R>
    void read_index(const AccountId& account, std::function<R(IndexView&)> query, Done<R> done);
    template <typename R>
    void read_on_io(std::shared_ptr<ReadJob<R>> job);
    template <typename R>
    bool answer_on_reader(ReadJob<R>& job, Outcome<R>& out, std::uint64_t& committed);
    template <typename R>
    void read_on_writer(std::shared_ptr<ReadJob<R>> job);

    // An account the writer has opened in this process, which readers may read from then on.
    // committed counts the writer's commits that changed the account (each one published on
    // the bus with its number): what tells a reader whether its result is older than a
    // publication that already ran.
    struct Opened {
        std::atomic<std::uint64_t> committed{0};
    };
    std::shared_ptr<Opened> opened(const std::string& key) const;  // any thread; null: not yet
    std::uint64_t count_commit(const std::string& key);             // writer thread, after a commit with changes

    asio::io_context& loop_;
    StoreSettings settings_;
    asio::thread_pool io_;
    std::vector<std::unique_ptr<Writer>> writers_;
    asio::thread_pool side_;  // directory fsyncs beside index commits, one thread per writer
    mutable std::mutex opened_mutex_;
    std::map<std::string, std::shared_ptr<Opened>> opened_;  // under opened_mutex_; filled by the writer
    std::map<std::string, std::uint64_t> published_;         // loop thread: the last commit number published per account
    std::unique_ptr<IndexReaders> readers_;                   // io threads
    std::atomic<std::uint64_t> reads_by_readers_{0}, reads_by_writer_{0};
    ChangeBus bus_;                                              // loop thread
    mutable std::mutex usage_mutex_;
    std::map<std::string, KnownUsage> usage_;  // under usage_mutex_; see known_usage
    void forget_usage(const std::string& key);                // writer thread
    void remember_usage(const std::string& key, Account& a);  // writer thread, after add_messages
};

template <typename R, typename Fn>
void Store::run(const std::string& localpart, const std::string& domain, Fn fn, std::function<void(Outcome<R>)> done) {
    auto out = std::make_shared<Outcome<R>>();
    run_on_writer(
        localpart, domain, [out, fn = std::move(fn)](Account& a) mutable { out->value = fn(a); },
        [out, done = std::move(done)](std::optional<StoreError::Kind> kind, std::string reason) mutable {
            if (!reason.empty() || kind) {
                out->value.reset();
                out->error = kind;
                out->reason = std::move(reason);
            }
            done(std::move(*out));
        });
}

// write(2) until all of data is written (EINTR and short writes handled); false with errno set.
bool write_fully(int fd, std::string_view data);
bool write_fully(int fd, std::string_view first, std::string_view second);  // one writev

// Checks a localpart or domain before it becomes a directory name.
bool safe_path_component(std::string_view s);

// The account a login names ("bob@example.com"), when both halves are usable as folder names;
// nullopt otherwise (a bare name without auth_default_domain, "@x", "x@").
std::optional<AccountId> account_of(std::string_view address);

// "" when localpart@domain may name an account's folder (server/mail_names.hpp), else
// "invalid mailbox name ...: why". Deliveries to such a name fail permanently, creating nothing.
std::string invalid_account_name(std::string_view localpart, std::string_view domain);

}  // namespace pillarbox::storage
