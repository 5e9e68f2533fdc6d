// Store, delivery streaming and group commit (see store.hpp).
#include "store.hpp"

#include <asio/post.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <set>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "server/background.hpp"
#include "server/file_modes.hpp"
#include "server/log.hpp"
#include "server/loop_guard.hpp"
#include "server/mail_names.hpp"
#include "storage/account.hpp"
#include "storage/index_readers.hpp"
#include "storage/maildir/filename.hpp"

namespace pillarbox::storage {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kWriteChunk = 64 * 1024;  // body bytes gathered before a write job

std::atomic<std::uint64_t> g_counter{0};

// Dovecot-style unique base name: <secs>.M<usecs>P<pid>Q<n>.<host>
std::string unique_base(const std::string& hostname) {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
    return maildir::generate_base_name({.secs = static_cast<std::uint64_t>(us / 1'000'000),
                                        .usecs = static_cast<std::uint32_t>(us % 1'000'000),
                                        .pid = static_cast<std::uint64_t>(::getpid()),
                                        .counter = ++g_counter,
                                        .hostname = hostname});
}

// Reads a just-written message back (from the page cache) and runs the parser on it. A failure
// only means no cache entry: IMAP fills it later.
std::string parse_file(const std::function<std::string(std::string_view)>& parse, const NewMessage& m,
                       std::uint64_t size) {
    std::string data(size, '\0');
    int fd = m.file ? ::dup(m.file->fd()) : ::open(m.tmp_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    std::size_t got = 0;
    while (got < data.size()) {
        ssize_t n = ::pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    if (got != data.size()) return "";
    try {
        return parse(data);
    } catch (...) {
        return "";
    }
}

std::string errno_text(int err) { return std::strerror(err); }

// Settings not made by StoreSettings::from() would have no io thread, and every read and file
// write would wait for ever.
StoreSettings checked(StoreSettings s) {
    if (s.io_threads == 0) throw std::invalid_argument("StoreSettings: io_threads is 0 (make them with StoreSettings::from)");
    return s;
}

}  // namespace

StoreSettings StoreSettings::from(const config::Config& c) {
    StoreSettings s;
    s.data_directory = c.get("data_directory");
    s.hostname = c.get("myhostname");
    s.io_threads = c.get_count("worker_threads");
    s.quota.max_bytes = c.get_size("mailbox_size_limit");
    s.quota.max_messages = c.get_count("mailbox_message_limit");
    s.quota_full_tempfail = c.get_bool("quota_full_tempfail");
    s.open_accounts_limit = c.get_count("open_accounts_limit");
    return s;
}

bool write_fully(int fd, std::string_view data) { return write_fully(fd, data, {}); }

bool write_fully(int fd, std::string_view first, std::string_view second) {
    while (!first.empty() || !second.empty()) {
        iovec iov[2] = {{const_cast<char*>(first.data()), first.size()}, {const_cast<char*>(second.data()), second.size()}};
        ssize_t n = ::writev(fd, iov, 2);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        auto done = static_cast<std::size_t>(n);
        auto from_first = std::min(done, first.size());
        first.remove_prefix(from_first);
        second.remove_prefix(done - from_first);
    }
    return true;
}

std::string invalid_account_name(std::string_view localpart, std::string_view domain) {
    auto why = names::local_part_problem(localpart);
    if (why.empty()) why = names::domain_problem(domain);
    return why.empty() ? std::string() : fmt::format("invalid mailbox name {}@{}: {}", localpart, domain, why);
}

std::optional<AccountId> account_of(std::string_view address) {
    auto at = address.rfind('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) return std::nullopt;
    auto local = address.substr(0, at), domain = address.substr(at + 1);
    if (!safe_path_component(local) || !safe_path_component(domain)) return std::nullopt;
    return AccountId{std::string(local), std::string(domain)};
}

bool safe_path_component(std::string_view s) {
    if (s.empty() || s.size() > 255 || s == "." || s == ".." || s.front() == '.') return false;
    return std::none_of(s.begin(), s.end(), [](unsigned char c) { return c == '/' || c == '\\' || c < 0x20 || c == 0x7f; });
}

// One delivery: streams the body to a tmp file per recipient on the io threads (one write job
// at a time, so chunks stay in order), then hands the files to the store's group commit. An IMAP
// APPEND is a delivery to one recipient with a mailbox, flags and an internal date of its own.
class Delivery : public std::enable_shared_from_this<Delivery> {
public:
    explicit Delivery(Store& store) : store_(store) {}

    // An APPEND's placement, before add_recipient: its mailbox instead of INBOX, its flags
    // (none: new mail), its internal date (0: the time of the commit).
    void place(const std::string& mailbox, std::uint32_t flags, std::int64_t internal_date) {
        mailbox_ = mailbox;
        flags_ = flags;
        internal_date_ = internal_date;
    }

    struct Rcpt {
        std::string localpart, domain, delivered_to;
        fs::path root;
        NewMessage msg;
        int fd = -1;
        int error = 0;  // errno of the first failure
        std::string what;
        bool invalid = false;  // a name the store refuses: a permanent failure, nothing written
    };

    void start(const std::string& return_path, bool add) {
        return_path_ = return_path;
        add_return_path_ = add;
    }

    void add_recipient(const std::string& lp, const std::string& domain, const std::string& dt) {
        Rcpt r;
        r.localpart = lp;
        r.domain = domain;
        r.delivered_to = dt;
        // Before anything is created: the root is built from these names (".." would be
        // DATA/mail itself, ".hidden" a Maildir++ folder of another account's shape).
        if (auto why = invalid_account_name(lp, domain); !why.empty()) {
            r.invalid = true;
            r.error = EINVAL;
            r.what = why;
        } else {
            r.root = store_.account_root(lp, domain);
        }
        rcpts_.push_back(std::move(r));
    }

    void body(std::string_view chunk) {
        if (finished_) return;
        count_line_ends(chunk);
        pending_.append(chunk);
        if (pending_.size() >= kWriteChunk) flush(false);
    }

    std::size_t buffered() const { return pending_.size() + in_flight_; }

    void on_drained(std::function<void()> cb) {
        if (buffered() < kWriteChunk) {
            if (cb) cb();
            return;
        }
        drained_ = std::move(cb);
    }

    void commit(std::function<void(std::vector<RecipientResult>)> done) {
        if (finished_) return;
        finished_ = true;
        done_ = std::move(done);
        commit_requested_ = true;
        flush(true);
    }

    void abort() {
        if (finished_ && !commit_requested_) return;
        if (commit_requested_) return;  // too late: the commit decides
        finished_ = true;
        aborted_ = true;
        if (!writing_) cleanup();
    }

    ~Delivery() {
        for (auto& r : rcpts_)
            if (r.fd >= 0 && !r.msg.file) ::close(r.fd);  // an unnamed file's descriptor is r.msg.file's
    }

private:
    void count_line_ends(std::string_view s) {
        // RFC822.SIZE counts CRLF line ends; a bare LF on disk will be sent as CRLF. memchr from
        // one LF to the next: this runs on the loop for every byte of every message.
        if (s.empty()) return;
        for (std::size_t i = 0;;) {
            const void* lf = std::memchr(s.data() + i, '\n', s.size() - i);
            if (!lf) break;
            auto at = static_cast<std::size_t>(static_cast<const char*>(lf) - s.data());
            if ((at == 0 ? prev_ : s[at - 1]) != '\r') ++bare_lf_;
            i = at + 1;
            if (i == s.size()) break;
        }
        prev_ = s.back();
    }

    std::string prefix_for(const Rcpt& r) const {
        std::string p;
        if (add_return_path_) p += fmt::format("Return-Path: <{}>\r\n", return_path_);
        if (!r.delivered_to.empty()) p += fmt::format("Delivered-To: {}\r\n", r.delivered_to);
        return p;
    }

    void flush(bool final) {
        if (writing_) return;  // the running job's completion calls flush again
        if (pending_.empty() && !final) return;
        writing_ = true;
        auto data = std::make_shared<std::string>(std::move(pending_));
        pending_.clear();
        in_flight_ = data->size();
        std::vector<std::string> prefixes;
        for (auto& r : rcpts_) prefixes.push_back(prefix_for(r));
        auto self = shared_from_this();
        const std::string host = store_.settings().hostname;
        auto work = asio::make_work_guard(store_.loop_);
        asio::post(store_.io_, [self, data, final, prefixes, host, work] {
            for (std::size_t i = 0; i < self->rcpts_.size(); ++i) self->write_job(self->rcpts_[i], prefixes[i], *data, final, host);
            // The last job hands the synced files to the writer from here: no hop through the
            // loop between a message's data sync and its commit. abort() is ignored by now.
            if (final) return self->submit();
            asio::post(self->store_.loop_, [self, work] { self->write_done(); });
        });
    }

    // On an io thread.
    void write_job(Rcpt& r, const std::string& prefix, const std::string& data, bool final, const std::string& host) {
        blocking_call("Delivery::write_job");
        if (r.error) return;
        auto fail = [&](const std::string& what) {
            r.error = errno ? errno : EIO;
            r.what = what;
        };
        std::string_view head;  // the added header lines, before the first chunk
        if (r.fd < 0) {
            fs::path tmp = r.root / "tmp";
            r.msg.base = unique_base(host);
            r.fd = create_message_file(tmp, r.msg);
            if (r.fd < 0 && errno == ENOENT) {  // a new account: its folders come with the first message
                std::error_code ec;
                files::make_private_directories(tmp, ec);
                r.fd = create_message_file(tmp, r.msg);
            }
            if (r.fd < 0) return fail("create a file in " + tmp.string());
            head = prefix;
        }
        if (!write_fully(r.fd, head, data)) return fail("write " + message_file_label(r.msg));
        r.msg.size += head.size() + data.size();
        if (final) {
            // Sync now, on this io thread, while other deliveries sync theirs: the kernel merges
            // concurrent flushes into one journal commit, and the message doesn't wait for the
            // batch in front of it to finish before its data flush even starts.
            if (::fdatasync(r.fd) != 0) return fail("fdatasync " + message_file_label(r.msg));
            if (!source_) keep_source(r, prefix.size());
            if (r.msg.file) {
                r.fd = -1;  // the unnamed file stays open (r.msg.file) until it is linked
            } else {
                int rc = ::close(r.fd);
                r.fd = -1;
                if (rc != 0) return fail("close " + message_file_label(r.msg));
            }
            if (store_.settings().parse && store_.settings().parse_at_delivery) r.msg.parsed = parse_file(store_.settings().parse, r.msg, r.msg.size);
        }
    }

    // On the io thread of the final write job: a descriptor of the first complete copy, for
    // copy_source(). It keeps the data readable whatever then happens to the file (linked into
    // new/, discarded as over quota, expunged by a POP3 client). One dup() per delivery.
    void keep_source(const Rcpt& r, std::size_t added) {
        int fd = r.msg.file ? ::fcntl(r.fd, F_DUPFD_CLOEXEC, 0) : ::open(r.msg.tmp_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return;
        auto c = std::make_shared<MessageCopy>();
        c->fd = fd;
        c->offset = added;
        c->length = r.msg.size - added;
        source_ = std::move(c);
    }

public:
    // Loop thread, after the commit callback (posted after the final write job ran).
    std::shared_ptr<const MessageCopy> source() const { return source_; }

private:
    void write_done() {
        writing_ = false;
        in_flight_ = 0;
        if (aborted_) {
            cleanup();
            return;
        }
        if (drained_ && buffered() < kWriteChunk) std::exchange(drained_, nullptr)();
        if (pending_.size() >= kWriteChunk) flush(false);
        else if (commit_requested_) flush(true);
    }

    // On the io thread that ran the last write job. The callbacks run on the loop: the writer
    // posts the committed ones there, and failed writes are posted from here.
    void submit() {
        auto results = std::make_shared<std::vector<RecipientResult>>(rcpts_.size());
        auto remaining = std::make_shared<std::size_t>(rcpts_.size());
        auto done = std::make_shared<std::function<void(std::vector<RecipientResult>)>>(std::move(done_));
        auto finish_one = [results, remaining, done](std::size_t i, RecipientResult r) {
            (*results)[i] = std::move(r);
            if (--*remaining == 0 && *done) (*done)(std::move(*results));
        };
        auto work = asio::make_work_guard(store_.loop_);
        if (rcpts_.empty()) {
            asio::post(store_.loop_, [done, work] {
                if (*done) (*done)({});
            });
            return;
        }
        std::vector<Store::Item> items;
        std::vector<std::pair<std::size_t, RecipientResult>> failed;
        auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
        for (std::size_t i = 0; i < rcpts_.size(); ++i) {
            auto& r = rcpts_[i];
            if (r.error) {
                RecipientResult res;
                res.temporary = !r.invalid;
                res.reason = r.invalid ? r.what : fmt::format("{}: {}", r.what, errno_text(r.error));
                if (r.fd >= 0 && !r.msg.file) ::close(r.fd);
                r.fd = -1;
                discard_message_file(r.msg);
                failed.emplace_back(i, std::move(res));
                continue;
            }
            r.msg.rfc822_size = r.msg.size + bare_lf_;
            r.msg.internal_date = internal_date_ ? internal_date_ : now;
            r.msg.flags = flags_;
            items.push_back({r.localpart, r.domain, mailbox_, r.msg, [finish_one, i](RecipientResult res) { finish_one(i, std::move(res)); }});
        }
        if (!failed.empty())
            asio::post(store_.loop_, [finish_one, failed = std::move(failed), work]() mutable {
                for (auto& [i, res] : failed) finish_one(i, std::move(res));
            });
        if (!items.empty()) store_.submit(std::move(items));
    }

    void cleanup() {
        auto self = shared_from_this();
        auto work = asio::make_work_guard(store_.loop_);  // the loop outlives the clean-up
        asio::post(store_.io_, [self, work] {
            for (auto& r : self->rcpts_) {
                if (r.fd >= 0 && !r.msg.file) ::close(r.fd);
                r.fd = -1;
                discard_message_file(r.msg);
            }
        });
    }

    Store& store_;
    std::string mailbox_ = "INBOX";
    std::uint32_t flags_ = 0;
    std::int64_t internal_date_ = 0;  // 0: the time of the commit
    std::string return_path_;
    bool add_return_path_ = false;
    std::vector<Rcpt> rcpts_;
    std::string pending_;
    std::size_t in_flight_ = 0;
    bool writing_ = false, finished_ = false, commit_requested_ = false, aborted_ = false;
    std::uint64_t bare_lf_ = 0;
    char prev_ = 0;
    std::function<void()> drained_;
    std::function<void(std::vector<RecipientResult>)> done_;
    std::shared_ptr<MessageCopy> source_;  // set by the final write job
};

namespace {
// The handle a session holds; dropping it without commit aborts the delivery.
class DeliveryHandle final : public DeliveryTarget {
public:
    explicit DeliveryHandle(std::shared_ptr<Delivery> d) : d_(std::move(d)) {}
    ~DeliveryHandle() override { d_->abort(); }
    void start(const std::string& rp, bool add) override { d_->start(rp, add); }
    void add_recipient(const std::string& lp, const std::string& dom, const std::string& dt, const RecipientDsn&) override {
        d_->add_recipient(lp, dom, dt);
    }
    void body(std::string_view chunk) override { d_->body(chunk); }
    std::size_t buffered() const override { return d_->buffered(); }
    void on_drained(std::function<void()> cb) override { d_->on_drained(std::move(cb)); }
    void commit(std::function<void(std::vector<RecipientResult>)> done) override { d_->commit(std::move(done)); }
    void abort() override { d_->abort(); }
    std::shared_ptr<const MessageCopy> copy_source() const override { return d_->source(); }

private:
    std::shared_ptr<Delivery> d_;
};

// APPEND's handle: a delivery to one account's mailbox, without added header lines.
class AppendHandle final : public AppendTarget {
public:
    explicit AppendHandle(std::shared_ptr<Delivery> d) : d_(std::move(d)) {}
    ~AppendHandle() override { d_->abort(); }
    void body(std::string_view chunk) override { d_->body(chunk); }
    std::size_t buffered() const override { return d_->buffered(); }
    void on_drained(std::function<void()> cb) override { d_->on_drained(std::move(cb)); }
    void commit(std::function<void(Outcome<std::uint32_t>)> done) override {
        d_->commit([done = std::move(done)](std::vector<RecipientResult> rs) {
            Outcome<std::uint32_t> out;
            const RecipientResult& r = rs.at(0);
            if (r.ok) {
                out.value = r.uid;
            } else {
                out.error = r.over_quota ? std::optional(StoreError::Kind::OverQuota)
                            : r.kind     ? r.kind
                            : !r.temporary ? std::optional(StoreError::Kind::Invalid)
                                           : std::nullopt;
                out.reason = r.reason.empty() ? "append failed" : r.reason;
            }
            done(std::move(out));
        });
    }
    void abort() override { d_->abort(); }

private:
    std::shared_ptr<Delivery> d_;
};
}  // namespace

Store::Store(asio::io_context& loop, StoreSettings settings)
    : loop_(loop),
      settings_(checked(std::move(settings))),
      io_(settings_.io_threads),
      side_(settings_.io_threads),
      readers_(std::make_unique<IndexReaders>(settings_.idle_read_connections)) {
    make_background(io_, settings_.io_threads);
    const std::size_t writers = settings_.writer_threads ? settings_.writer_threads : settings_.io_threads;
    for (std::size_t i = 0; i < writers; ++i) {
        writers_.push_back(std::make_unique<Writer>());
        make_background(writers_.back()->thread, 1);
    }
    make_background(side_, settings_.io_threads);  // as many as there are writers by default
}

Store::~Store() {
    io_.join();
    // Readers first: the writer's connection, closing last, checkpoints and removes the WAL.
    readers_->clear();
    // Close the accounts on the writer threads that own them (marks clean shutdown).
    for (auto& w : writers_) asio::post(w->thread, [w = w.get()] { w->accounts.clear(); });
    for (auto& w : writers_) w->thread.join();
}

Store::Writer& Store::writer_of(const std::string& key) {
    return *writers_[std::hash<std::string>{}(key) % writers_.size()];
}

std::unique_ptr<DeliveryTarget> Store::delivery() { return std::make_unique<DeliveryHandle>(std::make_shared<Delivery>(*this)); }

fs::path Store::account_root(const std::string& localpart, const std::string& domain) const {
    return settings_.data_directory / "mail" / domain / localpart;
}

Account& Store::account(Writer& w, const std::string& localpart, const std::string& domain) {
    if (auto why = invalid_account_name(localpart, domain); !why.empty()) throw std::runtime_error(why);
    std::string key = localpart + "@" + domain;
    auto& open = w.accounts[key];
    open.used = ++w.uses;
    auto& a = open.account;
    if (!a) {
        try {
            a = Account::open(account_root(localpart, domain), settings_.hostname);
        } catch (...) {
            w.accounts.erase(key);  // not a null entry: the next call tries again
            throw;
        }
        a->set_quota(settings_.quota);
        a->set_side_thread(&side_);
        std::lock_guard lock(opened_mutex_);
        opened_.emplace(key, std::make_shared<Opened>());  // stays when the account is closed
    }
    return *a;
}

void Store::close_idle_accounts(Writer& w) {
    const std::size_t share = std::max<std::size_t>(1, settings_.open_accounts_limit / writers_.size());
    while (w.accounts.size() > share) {
        auto oldest = w.accounts.begin();
        for (auto it = w.accounts.begin(); it != w.accounts.end(); ++it)
            if (it->second.used < oldest->second.used) oldest = it;
        w.accounts.erase(oldest);  // ~Account marks the index cleanly closed
    }
}

std::shared_ptr<Store::Opened> Store::opened(const std::string& key) const {
    std::lock_guard lock(opened_mutex_);
    auto it = opened_.find(key);
    return it == opened_.end() ? nullptr : it->second;
}

std::uint64_t Store::count_commit(const std::string& key) {
    auto a = opened(key);
    return a ? a->committed.fetch_add(1, std::memory_order_acq_rel) + 1 : 0;
}

void Store::run_on_writer(const std::string& localpart, const std::string& domain, std::function<void(Account&)> work,
                          std::function<void(std::optional<StoreError::Kind>, std::string)> finish) {
    auto guard = asio::make_work_guard(loop_);
    Writer& w = writer_of(account_key(localpart, domain));
    asio::post(w.thread, [this, &w, localpart, domain, work = std::move(work), finish = std::move(finish), guard]() mutable {
        std::optional<StoreError::Kind> kind;
        std::string reason;
        std::vector<Change> changes;
        const std::string key = account_key(localpart, domain);
        try {
            Account& a = account(w, localpart, domain);
            forget_usage(key);  // work may expunge: usage unknown now
            try {
                work(a);
            } catch (...) {
                changes = a.take_changes();
                throw;
            }
            changes = a.take_changes();
        } catch (const StoreError& e) {
            kind = e.kind;
            reason = e.what();
        } catch (const std::exception& e) {
            reason = e.what();
            if (reason.empty()) reason = "failed";
        }
        const std::uint64_t commit = changes.empty() ? 0 : count_commit(key);
        close_idle_accounts(w);
        asio::post(loop_, [this, key, commit, changes = std::move(changes), kind, reason = std::move(reason),
                           finish = std::move(finish), guard]() mutable {
            for (auto& c : changes) bus_.publish(key, c);
            if (commit) published_[key] = commit;
            finish(kind, std::move(reason));
        });
    });
}

void Store::with_account(const std::string& localpart, const std::string& domain, std::function<void(Account&)> fn,
                         std::function<void(std::string)> done) {
    // run() so that whatever fn changes is published on the bus like any other change.
    run<bool>(
        localpart, domain,
        [fn = std::move(fn)](Account& a) {
            fn(a);
            return true;
        },
        [done = std::move(done)](Outcome<bool> o) { done(o.ok() ? "" : (o.reason.empty() ? "failed" : o.reason)); });
}

std::unique_ptr<AppendTarget> Store::append(const AccountId& account, const std::string& mailbox, std::uint32_t flags,
                                            std::int64_t internal_date) {
    auto d = std::make_shared<Delivery>(*this);
    d->place(mailbox, flags, internal_date);
    d->add_recipient(account.localpart, account.domain, "");
    return std::make_unique<AppendHandle>(std::move(d));
}

ChangeBus::Subscription Store::subscribe(const AccountId& account, const std::string& mailbox, ChangeBus::Listener listener) {
    return bus_.subscribe(account_key(account.localpart, account.domain), mailbox, std::move(listener));
}

void Store::set_flags(const AccountId& account, const std::string& mailbox, const std::vector<std::uint32_t>& uids, FlagOp op,
                      std::uint32_t flags, const std::vector<std::string>& keywords, Done<std::vector<MessageInfo>> done) {
    run<std::vector<MessageInfo>>(
        account.localpart, account.domain,
        [mailbox, uids, op, flags, keywords](Account& a) { return a.set_flags(mailbox, uids, op, flags, keywords); },
        std::move(done));
}

void Store::expunge(const AccountId& account, const std::string& mailbox, const std::vector<std::uint32_t>& uids,
                    Done<std::vector<std::uint32_t>> done) {
    run<std::vector<std::uint32_t>>(
        account.localpart, account.domain, [mailbox, uids](Account& a) { return a.expunge(mailbox, uids); }, std::move(done));
}

void Store::commit_maildrop(const AccountId& account, const std::string& mailbox, const MaildropUpdate& update,
                            Done<std::string> done) {
    run<std::string>(
        account.localpart, account.domain, [mailbox, update](Account& a) { return a.commit_maildrop(mailbox, update); },
        std::move(done));
}

Outcome<std::string> Store::read_file(const fs::path& path, std::uint64_t offset, std::size_t length) {
    blocking_call("Store::read_file");
    Outcome<std::string> out;
    std::string data;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) out.error = StoreError::Kind::NotFound;
        out.reason = fmt::format("open {}: {}", path.string(), std::strerror(errno));
        return out;
    }
    // Not more than the file holds: a 2 KiB message needs no zeroed 128 KiB buffer.
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        out.reason = fmt::format("stat {}: {}", path.string(), std::strerror(errno));
        ::close(fd);
        return out;
    }
    if (static_cast<std::uint64_t>(st.st_size) - std::min<std::uint64_t>(offset, st.st_size) < length)
        length = static_cast<std::size_t>(static_cast<std::uint64_t>(st.st_size) - std::min<std::uint64_t>(offset, st.st_size));
    data.resize(length);
    std::size_t got = 0;
    while (got < length) {
        ssize_t n = ::pread(fd, data.data() + got, length - got, static_cast<off_t>(offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            out.reason = fmt::format("read {}: {}", path.string(), std::strerror(errno));
            break;
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    data.resize(got);
    ::close(fd);
    if (out.reason.empty()) out.value = std::move(data);
    return out;
}

void Store::read(const AccountId& account, const MailboxInfo& mailbox, const std::string& file, std::uint64_t offset,
                 std::size_t length, Done<std::string> done) {
    auto work = asio::make_work_guard(loop_);
    fs::path path = account_root(account.localpart, account.domain) / mailbox.dir / file;
    asio::post(io_, [this, path, offset, length, done = std::move(done), work]() mutable {
        auto out = read_file(path, offset, length);
        asio::post(loop_, [done = std::move(done), out = std::move(out), work]() mutable { done(std::move(out)); });
    });
}

void Store::remember_usage(const std::string& key, Account& acc) {
    auto u = acc.take_known_usage();
    std::lock_guard lock(usage_mutex_);
    if (u) usage_[key] = {*u, acc.quota(), std::chrono::steady_clock::now()};
    else usage_.erase(key);  // no quota applies (or no check ran): nothing to tell RCPT
}

void Store::forget_usage(const std::string& key) {
    std::lock_guard lock(usage_mutex_);
    usage_.erase(key);
}

std::optional<Store::KnownUsage> Store::known_usage(const std::string& localpart, const std::string& domain) const {
    std::lock_guard lock(usage_mutex_);
    auto it = usage_.find(account_key(localpart, domain));
    if (it == usage_.end() || std::chrono::steady_clock::now() - it->second.at >= kUsageTtl) return std::nullopt;
    return it->second;
}

Quota Store::quota_of(const std::string& localpart, const std::string& domain) const {
    blocking_call("Store::quota_of");
    if (settings_.quota_for)
        if (auto q = settings_.quota_for(localpart, domain)) return *q;
    return settings_.quota;
}

void Store::submit(std::vector<Item> items) {
    std::map<Writer*, std::vector<Item>> by_writer;
    for (auto& i : items) by_writer[&writer_of(account_key(i.localpart, i.domain))].push_back(std::move(i));
    for (auto& [w, mine] : by_writer) {
        bool wake = false;
        {
            std::lock_guard lock(w->queue_mutex);
            for (auto& i : mine) w->queue.push_back(std::move(i));
            wake = !std::exchange(w->busy, true);
        }
        if (!wake) continue;  // the running drain() takes them with its next batch
        auto work = asio::make_work_guard(loop_);
        asio::post(w->thread, [this, w = w, work] { drain(*w); });
    }
}

// Group commit: every message that became durable while the writer committed the previous
// batch goes in the next one: per mailbox, the links into new/, one directory fsync and one
// index transaction, whatever the batch's size. The writer goes straight on to the next batch;
// the loop only gets the results.
void Store::drain(Writer& w) {
    for (;;) {
        auto batch = std::make_shared<std::vector<Item>>();
        {
            std::lock_guard lock(w.queue_mutex);
            if (w.queue.empty()) {
                w.busy = false;
                return;
            }
            batch->assign(std::make_move_iterator(w.queue.begin()), std::make_move_iterator(w.queue.end()));
            w.queue.clear();
        }
        finish_batch(w, batch);
    }
}

void Store::finish_batch(Writer& w, std::shared_ptr<std::vector<Item>> batch) {
    {
        auto results = std::make_shared<std::vector<RecipientResult>>(batch->size());
        auto work = asio::make_work_guard(loop_);
        // Group by account and mailbox, keeping arrival order within each.
        std::map<std::pair<std::string, std::string>, std::vector<std::size_t>> groups;
        for (std::size_t i = 0; i < batch->size(); ++i) {
            auto& it = (*batch)[i];
            groups[{account_key(it.localpart, it.domain), it.mailbox}].push_back(i);
        }
        auto changes = std::make_shared<std::vector<std::pair<std::string, Change>>>();
        auto commits = std::make_shared<std::vector<std::pair<std::string, std::uint64_t>>>();  // see Store::Opened
        for (auto& [key, idx] : groups) {
            auto fail_all = [&](const std::string& why, std::optional<StoreError::Kind> kind) {
                const bool over_quota = kind == StoreError::Kind::OverQuota;
                for (auto i : idx) {
                    auto& r = (*results)[i];
                    r.ok = false;
                    r.kind = kind;
                    r.over_quota = over_quota;
                    r.temporary = !over_quota || settings_.quota_full_tempfail;
                    r.reason = why;
                    discard_message_file((*batch)[i].message);
                }
            };
            try {
                Account& acc = account(w, (*batch)[idx[0]].localpart, (*batch)[idx[0]].domain);
                if (settings_.quota_for)
                    acc.set_quota(settings_.quota_for((*batch)[idx[0]].localpart, (*batch)[idx[0]].domain).value_or(settings_.quota));
                std::vector<NewMessage> msgs;
                for (auto i : idx) msgs.push_back((*batch)[i].message);
                std::vector<std::uint32_t> uids;
                try {
                    uids = acc.add_messages(key.second, msgs);
                } catch (const StoreError& e) {
                    // Over quota as a whole; one by one, the smaller ones may still fit.
                    if (e.kind != StoreError::Kind::OverQuota || idx.size() == 1) throw;
                    for (std::size_t k = 0; k < idx.size(); ++k) {
                        std::vector<NewMessage> one{(*batch)[idx[k]].message};
                        try {
                            auto u = acc.add_messages(key.second, one);
                            (*results)[idx[k]].ok = true;
                            (*results)[idx[k]].uid = u[0];
                        } catch (const StoreError& e1) {
                            discard_message_file((*batch)[idx[k]].message);
                            auto& r = (*results)[idx[k]];
                            r.kind = e1.kind;
                            r.over_quota = e1.kind == StoreError::Kind::OverQuota;
                            r.temporary = !r.over_quota || settings_.quota_full_tempfail;
                            r.reason = e1.what();
                        }
                    }
                }
                for (std::size_t k = 0; k < uids.size(); ++k) {
                    (*results)[idx[k]].ok = true;
                    (*results)[idx[k]].uid = uids[k];
                }
                auto taken = acc.take_changes();
                for (auto& c : taken) changes->emplace_back(key.first, std::move(c));
                if (!taken.empty()) commits->emplace_back(key.first, count_commit(key.first));
                remember_usage(key.first, acc);
            } catch (const StoreError& e) {
                if (e.kind == StoreError::Kind::OverQuota) {
                    try {
                        remember_usage(key.first, account(w, (*batch)[idx[0]].localpart, (*batch)[idx[0]].domain));
                    } catch (...) {
                    }
                }
                fail_all(e.what(), e.kind);
            } catch (const std::exception& e) {
                fail_all(e.what(), std::nullopt);
            }
        }
        asio::post(loop_, [this, batch, results, changes, commits, work] {
            for (auto& [key, c] : *changes) bus_.publish(key, c);
            for (auto& [key, n] : *commits) published_[key] = n;
            for (std::size_t i = 0; i < batch->size(); ++i) (*batch)[i].done((*results)[i]);
        });
    }
    close_idle_accounts(w);
}

}  // namespace pillarbox::storage
