// The fakes the in-process conversations run against: a Store kept in memory and an
// Authentication in front of the real Authenticator, both able to inject what a real disk or
// backend does now and then (a temporary failure during commit, a full mailbox, a full disk, a
// slow completion), so that the sessions' answers to them are tested without the binary.
#pragma once
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "auth/authenticator.hpp"
#include "storage/change_bus.hpp"
#include "storage/mailboxes.hpp"

namespace pillarbox::scripts {

// What the fake store does to the operations that follow.
struct StoreFaults {
    bool commit_tempfail = false;          // every delivery commit fails, temporarily (I/O error)
    bool disk_full = false;                // deliveries and writes fail: no space left on device
    std::set<std::string> over_quota;      // accounts (user@domain) whose deliveries are over quota
    std::chrono::milliseconds delay{0};    // every completion comes this much later
    bool hold_commits = false;             // delivery commits wait until release_commits()
};

class FakeStore final : public storage::Mailboxes {
public:
    // dir: where a delivery keeps its copy for the dispatcher's retry and hold copies.
    FakeStore(asio::io_context& loop, std::filesystem::path dir) : loop_(loop), dir_(std::move(dir)) {}

    StoreFaults faults;
    // Reads of message structures so far: one message's (parsed) and a range's caches.
    std::size_t parsed_reads = 0, cached_parse_reads = 0;
    // Delivery commits held by faults.hold_commits go on (with the faults then in force).
    void release_commits();
    std::size_t held_commits() const { return held_.size(); }
    // A message put into an account's INBOX directly (the scripts' deliver:).
    void add_message(const storage::AccountId& a, const std::string& text);
    // What an account's INBOX holds now.
    std::vector<std::string> inbox(const storage::AccountId& a) const;

    // Mailboxes
    storage::ChangeBus::Subscription subscribe(const storage::AccountId& account, const std::string& mailbox,
                                      storage::ChangeBus::Listener listener) override;
    void snapshot(const storage::AccountId& account, const std::string& mailbox, Done<storage::MailboxSnapshot> done) override;
    void view(const storage::AccountId& account, const std::string& mailbox, Done<storage::MailboxView> done) override;
    void cached_parses(const storage::AccountId& account, const std::string& mailbox, storage::UidRanges uids,
                       Done<CachedParses> done) override;
    void messages(const storage::AccountId& account, const std::string& mailbox, storage::UidRanges uids,
                  Done<std::vector<storage::MessageInfo>> done) override;
    void status(const storage::AccountId& account, const std::string& mailbox, Done<storage::MailboxStatus> done) override;
    void message(const storage::AccountId& account, const std::string& mailbox, std::uint32_t uid,
                 Done<std::optional<storage::MessageInfo>> done) override;
    void mailboxes(const storage::AccountId& account, Done<std::vector<storage::MailboxInfo>> done) override;
    void search(const storage::AccountId& account, const std::string& mailbox, const storage::SearchQuery& query,
                Done<std::vector<std::uint32_t>> done) override;
    void read(const storage::AccountId& account, const storage::MailboxInfo& mailbox, const std::string& file, std::uint64_t offset,
              std::size_t length, Done<std::string> done) override;
    void set_flags(const storage::AccountId& account, const std::string& mailbox, const std::vector<std::uint32_t>& uids,
                   storage::FlagOp op, std::uint32_t flags, const std::vector<std::string>& keywords,
                   Done<std::vector<storage::MessageInfo>> done) override;
    void expunge(const storage::AccountId& account, const std::string& mailbox, const std::vector<std::uint32_t>& uids,
                 Done<std::vector<std::uint32_t>> done) override;
    void commit_maildrop(const storage::AccountId& account, const std::string& mailbox, const storage::MaildropUpdate& update,
                         Done<std::string> done) override;
    std::unique_ptr<storage::AppendTarget> append(const storage::AccountId& account, const std::string& mailbox,
                                                  std::uint32_t flags, std::int64_t internal_date) override;
    void copy(const storage::AccountId& account, const std::string& from, const std::vector<std::uint32_t>& uids,
              const std::string& to, Done<Copied> done) override;
    void move(const storage::AccountId& account, const std::string& from, const std::vector<std::uint32_t>& uids,
              const std::string& to, Done<Copied> done) override;
    void create_mailbox(const storage::AccountId& account, const std::string& name, const std::string& special_use,
                        Done<bool> done) override;
    void delete_mailbox(const storage::AccountId& account, const std::string& name, Done<bool> done) override;
    void rename_mailbox(const storage::AccountId& account, const std::string& from, const std::string& to,
                        Done<bool> done) override;
    void set_subscribed(const storage::AccountId& account, const std::string& name, bool subscribed, Done<bool> done) override;
    void parsed(const storage::AccountId& account, const std::string& mailbox, std::uint32_t uid,
                Done<std::string> done) override;
    void quota(const storage::AccountId& account, Done<QuotaState> done) override;
    void expunged_since(const storage::AccountId& account, const std::string& mailbox, std::uint64_t modseq,
                        Done<std::vector<std::uint32_t>> done) override;
    void set_flags_unchanged_since(const storage::AccountId& account, const std::string& mailbox,
                                   const std::vector<std::uint32_t>& uids, storage::FlagOp op, std::uint32_t flags,
                                   const std::vector<std::string>& keywords, std::uint64_t unchanged_since,
                                   Done<ConditionalFlags> done) override;
    // What quota() reports as the limits (the real store's come from the account database).
    storage::Quota limits;
    // Whether one more message of this size would pass limits.
    bool over_limits(const storage::AccountId& account, std::uint64_t more_bytes);
    std::unique_ptr<storage::DeliveryTarget> delivery() override;
    std::optional<KnownUsage> known_usage(const storage::AccountId&) const override { return std::nullopt; }
    storage::Quota quota_of(const storage::AccountId&) const override { return {}; }
    bool quota_full_tempfail() const override { return false; }

private:
    friend class FakeDelivery;
    friend class FakeAppend;
    struct Box {
        storage::MailboxInfo info;
        std::map<std::uint32_t, std::pair<storage::MessageInfo, std::string>> messages;  // uid -> row, content
        std::map<std::uint32_t, std::uint64_t> expunged;  // uid -> MODSEQ of its expunge
    };
    static std::string key(const storage::AccountId& a) { return a.localpart + "@" + a.domain; }
    Box& box(const storage::AccountId& a, const std::string& mailbox);
    std::uint32_t add(const storage::AccountId& a, const std::string& mailbox, std::string text, std::uint32_t flags);
    // Runs fn on the loop later (after faults.delay): completions never run inside the call.
    void later(std::function<void()> fn);
    // A change published later, in order with the completions.
    void publish_later(const storage::AccountId& a, storage::Change c);
    template <typename R>
    void fail_later(Done<R> done, storage::StoreError::Kind kind, std::string reason) {
        later([done = std::move(done), kind, reason = std::move(reason)] { done({std::nullopt, kind, reason}); });
    }
    bool exists(const storage::AccountId& a, const std::string& mailbox);

    asio::io_context& loop_;
    std::filesystem::path dir_;
    std::map<std::string, std::map<std::string, Box>> accounts_;
    storage::ChangeBus bus_;
    std::vector<std::function<void()>> held_;
    int copies_ = 0;
};

// What the fake authentication does.
struct AuthFaults {
    bool tempfail = false;  // every login and exchange answers a temporary failure
};

// The real Authenticator (the real mechanisms, accounts and throttle), with failures injected in
// front of it.
class FakeAuthentication final : public auth::Authentication {
public:
    explicit FakeAuthentication(auth::Authenticator& real) : real_(real) {}
    AuthFaults faults;

    std::vector<std::string> mechanisms(const auth::ClientInfo& c) const override { return real_.mechanisms(c); }
    bool cleartext_allowed(const auth::ClientInfo& c) const override { return real_.cleartext_allowed(c); }
    Offer offer(std::string_view m, const auth::ClientInfo& c) const override { return real_.offer(m, c); }
    std::unique_ptr<auth::Exchange> begin(std::string_view mechanism, auth::ClientInfo client) override;
    std::shared_ptr<void> login(auth::ClientInfo client, std::string login, std::string password, LoginCallback cb) override;

private:
    auth::Authenticator& real_;
};

}  // namespace pillarbox::scripts
