// The Store's read path: index reads on read-only connections on the io threads, handed to the
// writer when a reader can't answer (see the top of mailboxes.hpp for the rules).
#include <asio/post.hpp>

#include <fmt/format.h>

#include "server/loop_guard.hpp"
#include "storage/account.hpp"
#include "storage/index_readers.hpp"
#include "storage/index_reads.hpp"
#include "storage/store.hpp"

#include <limits>

namespace pillarbox::storage {

namespace fs = std::filesystem;

// What a read's query sees: an index connection and the account's root, on a reader (writer
// null) or on the writer.
class Store::IndexView {
public:
    // Thrown on a reader when the index is behind the Maildir: the writer syncs and answers.
    struct Behind {};

    IndexView(sqlite::Db& db, const fs::path& root, Account* writer) : db_(db), root_(root), writer_(writer) {}
    sqlite::Db& db() { return db_; }

    // The mailbox's row, with the index caught up with its new/ and cur/: on the writer after a
    // sync (Account::synced_mailbox), on a reader only when they did not change since the last
    // sync or change recorded them. StoreError NotFound when there is no such mailbox.
    MailboxInfo current(const std::string& name) {
        if (writer_) return writer_->synced_mailbox(name);
        auto mb = index::find_mailbox(db_, name);
        if (!mb) throw StoreError(StoreError::Kind::NotFound, fmt::format("no mailbox {}", name));
        if (!index_synced(db_, *mb, root_ / mb->dir)) throw Behind{};
        return *mb;
    }

private:
    sqlite::Db& db_;
    const fs::path& root_;
    Account* writer_;
};

template <typename R>
struct Store::ReadJob {
    AccountId account;
    std::string key;
    std::function<R(IndexView&)> query;
    Done<R> done;
    int tries = 0;
};

namespace {
// Reads done again because a newer change was published before their result reached the loop;
// past this the writer answers (only a stream of changes to the same account gets there).
constexpr int kReadTries = 3;
}  // namespace

template <typename R>
void Store::read_index(const AccountId& account, std::function<R(IndexView&)> query, Done<R> done) {
    auto job = std::make_shared<ReadJob<R>>();
    job->account = account;
    job->key = account_key(account.localpart, account.domain);
    job->query = std::move(query);
    job->done = std::move(done);
    read_on_io(std::move(job));
}

template <typename R>
void Store::read_on_io(std::shared_ptr<ReadJob<R>> job) {
    auto work = asio::make_work_guard(loop_);
    asio::post(io_, [this, job, work]() mutable {
        auto out = std::make_shared<Outcome<R>>();
        std::uint64_t committed = 0;
        if (!answer_on_reader(*job, *out, committed)) return read_on_writer(std::move(job));
        reads_by_readers_.fetch_add(1, std::memory_order_relaxed);
        if (settings_.after_read_for_tests) settings_.after_read_for_tests();
        asio::post(loop_, [this, job, out, committed, work]() mutable {
            // A change committed after this read began was published already: whoever listens
            // and then takes this result would miss it. Read again.
            auto it = published_.find(job->key);
            if (it != published_.end() && it->second > committed) {
                if (++job->tries < kReadTries) return read_on_io(std::move(job));
                return read_on_writer(std::move(job));
            }
            job->done(std::move(*out));
        });
    });
}

// On an io thread. False: a reader can't answer this one (see mailboxes.hpp); out is then unset.
template <typename R>
bool Store::answer_on_reader(ReadJob<R>& job, Outcome<R>& out, std::uint64_t& committed) {
    blocking_call("Store::answer_on_reader");
    auto account = opened(job.key);
    if (!account) return false;  // the writer opens it first (creating, migrating, recovering)
    // Before the read transaction begins: every commit counted so far is in what it sees.
    committed = account->committed.load(std::memory_order_acquire);
    const fs::path root = account_root(job.account.localpart, job.account.domain);
    try {
        auto lease = readers_->borrow((root / "pillarbox.index").string());
        try {
            // One read transaction (a deferred BEGIN takes no lock the writer waits for): the
            // queries of one read see one state of the index, and none stays open afterwards to
            // pin an old snapshot of the WAL.
            sqlite::Db::Transaction tx(lease.db(), true);
            IndexView view(lease.db(), root, nullptr);
            out.value = job.query(view);
            tx.commit();
            return true;
        } catch (const sqlite::Error&) {
            lease.discard();
            throw;
        }
    } catch (const IndexView::Behind&) {
    } catch (const StoreError& e) {
        out.value.reset();
        out.error = e.kind;
        out.reason = e.what();
        return true;
    } catch (const sqlite::Error&) {
        // SQLITE_BUSY after the busy timeout, or anything else the read-only connection ran
        // into: the writer's own connection answers, or reports what is wrong.
    } catch (const std::exception& e) {
        out.value.reset();
        out.reason = e.what();
        return true;
    }
    out.value.reset();
    return false;
}

// Any thread: the query on the writer, after it opened the account and synced the mailbox. Its
// result reaches the loop after the publications of the commits before it and before those after.
template <typename R>
void Store::read_on_writer(std::shared_ptr<ReadJob<R>> job) {
    reads_by_writer_.fetch_add(1, std::memory_order_relaxed);
    run<R>(
        job->account.localpart, job->account.domain,
        [job](Account& a) {
            IndexView view(a.index(), a.root(), &a);
            return job->query(view);
        },
        std::move(job->done));
}

Store::ReadCounts Store::read_counts() const {
    return {reads_by_readers_.load(std::memory_order_relaxed), reads_by_writer_.load(std::memory_order_relaxed),
            readers_->opened()};
}

void Store::snapshot(const AccountId& account, const std::string& mailbox, Done<MailboxSnapshot> done) {
    read_index<MailboxSnapshot>(
        account,
        [mailbox](IndexView& v) {
            MailboxSnapshot s;
            s.mailbox = v.current(mailbox);
            s.messages = index::messages(v.db(), s.mailbox.id);
            return s;
        },
        std::move(done));
}

void Store::view(const AccountId& account, const std::string& mailbox, Done<MailboxView> done) {
    read_index<MailboxView>(
        account,
        [mailbox](IndexView& v) {
            MailboxView s;
            s.mailbox = v.current(mailbox);
            s.messages = index::view_rows(v.db(), s.mailbox.id);
            return s;
        },
        std::move(done));
}

void Store::messages(const AccountId& account, const std::string& mailbox, UidRanges uids,
                     Done<std::vector<MessageInfo>> done) {
    read_index<std::vector<MessageInfo>>(
        account, [mailbox, uids = std::move(uids)](IndexView& v) { return index::messages(v.db(), v.current(mailbox).id, uids); },
        std::move(done));
}

void Store::cached_parses(const AccountId& account, const std::string& mailbox, UidRanges uids, Done<CachedParses> done) {
    read_index<CachedParses>(
        account,
        [mailbox, uids = std::move(uids)](IndexView& v) {
            CachedParses out;
            auto st = v.db().prepare("SELECT uid, parsed FROM message_parsed WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid");
            const auto id = v.current(mailbox).id;
            for (auto [lo, hi] : uids) {
                st.reset();
                st.bind(1, id).bind(2, lo).bind(3, hi);
                while (st.step()) out.emplace_back(static_cast<std::uint32_t>(st.int64(0)), st.text(1));
            }
            return out;
        },
        std::move(done));
}

void Store::status(const AccountId& account, const std::string& mailbox, Done<MailboxStatus> done) {
    read_index<MailboxStatus>(
        account, [mailbox](IndexView& v) { return index::status(v.db(), v.current(mailbox)); }, std::move(done));
}

void Store::message(const AccountId& account, const std::string& mailbox, std::uint32_t uid,
                    Done<std::optional<MessageInfo>> done) {
    read_index<std::optional<MessageInfo>>(
        account, [mailbox, uid](IndexView& v) { return index::message(v.db(), v.current(mailbox).id, uid); },
        std::move(done));
}

void Store::mailboxes(const AccountId& account, Done<std::vector<MailboxInfo>> done) {
    // The folder list needs no sync: folders are discovered when the index is built, then
    // created, renamed and deleted through the writer.
    read_index<std::vector<MailboxInfo>>(account, [](IndexView& v) { return index::mailboxes(v.db()); }, std::move(done));
}

void Store::search(const AccountId& account, const std::string& mailbox, const SearchQuery& query,
                   Done<std::vector<std::uint32_t>> done) {
    read_index<std::vector<std::uint32_t>>(
        account, [mailbox, query](IndexView& v) { return index::search(v.db(), v.current(mailbox).id, query); },
        std::move(done));
}

void Store::expunged_since(const AccountId& account, const std::string& mailbox, std::uint64_t modseq,
                           Done<std::vector<std::uint32_t>> done) {
    read_index<std::vector<std::uint32_t>>(
        account,
        [mailbox, modseq](IndexView& v) {
            auto st = v.db().prepare("SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid");
            st.bind(1, v.current(mailbox).id).bind(2, static_cast<std::int64_t>(modseq));
            std::vector<std::uint32_t> uids;
            while (st.step()) uids.push_back(static_cast<std::uint32_t>(st.int64(0)));
            return uids;
        },
        std::move(done));
}

namespace {
// A flag change renames the file between the index read and the file read: look it up again
// this many times before giving up (temporarily).
constexpr int kParseTries = 3;

struct ParsedRow {
    std::string parsed;  // "" when not cached yet
    fs::path file;
};
}  // namespace

void Store::parsed(const AccountId& account, const std::string& mailbox, std::uint32_t uid, Done<std::string> done) {
    parsed_try(account, mailbox, uid, 0, std::move(done));
}

void Store::parsed_try(const AccountId& account, const std::string& mailbox, std::uint32_t uid, int tries,
                       Done<std::string> done) {
    const fs::path root = account_root(account.localpart, account.domain);
    read_index<ParsedRow>(
        account,
        [mailbox, uid, root](IndexView& v) {
            MailboxInfo mb = v.current(mailbox);
            auto st = v.db().prepare(
                "SELECT p.parsed, m.file FROM message m LEFT JOIN message_parsed p ON p.mailbox_id = m.mailbox_id AND p.uid = m.uid "
                "WHERE m.mailbox_id = ? AND m.uid = ?");
            st.bind(1, mb.id).bind(2, uid);
            if (!st.step()) throw StoreError(StoreError::Kind::NotFound, fmt::format("no UID {} in {}", uid, mailbox));
            return ParsedRow{st.is_null(0) ? std::string() : st.text(0), root / mb.dir / st.text(1)};
        },
        [this, account, mailbox, uid, tries, done = std::move(done)](Outcome<ParsedRow> row) mutable {
            if (!row.ok()) return done({std::nullopt, row.error, std::move(row.reason)});
            if (!row.value->parsed.empty()) return done({std::move(row.value->parsed), std::nullopt, {}});
            parse_and_keep(account, mailbox, uid, std::move(row.value->file), tries, std::move(done));
        });
}

void Store::parse_and_keep(const AccountId& account, const std::string& mailbox, std::uint32_t uid, fs::path file,
                           int tries, Done<std::string> done) {
    if (!settings_.parse) return done({std::nullopt, std::nullopt, "the store has no message parser"});
    auto work = asio::make_work_guard(loop_);
    asio::post(io_, [this, account, mailbox, uid, file, tries, done = std::move(done), work]() mutable {
        auto content = read_file(file, 0, std::numeric_limits<std::size_t>::max());
        if (!content.ok()) {
            // Renamed by a flag change since the lookup (or expunged): look it up again.
            if (content.error == StoreError::Kind::NotFound && tries + 1 < kParseTries)
                return asio::post(loop_, [this, account, mailbox, uid, tries, done = std::move(done), work]() mutable {
                    parsed_try(account, mailbox, uid, tries + 1, std::move(done));
                });
            return asio::post(loop_, [content = std::move(content), done = std::move(done), work]() mutable {
                done({std::nullopt, content.error == StoreError::Kind::NotFound ? std::nullopt : content.error,
                      std::move(content.reason)});
            });
        }
        std::string blob = settings_.parse(*content.value);
        // Kept for the next FETCH; nobody waits for it (a failure only means parsing again).
        asio::post(loop_, [this, account, mailbox, uid, blob, done = std::move(done), work]() mutable {
            run<bool>(
                account.localpart, account.domain,
                [mailbox, uid, blob](Account& a) {
                    a.set_parsed(mailbox, uid, blob);
                    return true;
                },
                [](Outcome<bool>) {});
            done({std::move(blob), std::nullopt, {}});
        });
    });
}

}  // namespace pillarbox::storage
