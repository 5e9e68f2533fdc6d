// The store's read path (storage/mailboxes.hpp): reads answered on read-only index connections
// while the writer thread is busy, read-your-writes, accounts never opened, an index behind its
// Maildir, the order of a read's result and the change bus, connection reuse, and reads beside a
// stream of deliveries, flag changes and expunges.
#include <catch2/catch.hpp>

#include <asio/io_context.hpp>
#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <random>
#include <set>

#include "storage/account.hpp"
#include "storage/store.hpp"
#include "tests/unit/server/test_support.hpp"
#include "tests/unit/storage/store_support.hpp"
#include "tests/unit/test_config.hpp"

using namespace pillarbox;
using namespace pillarbox::storage;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const AccountId kAlice{"alice", "example.org"};

struct Bed {
    test::TempDir tmp;
    asio::io_context io;
    std::unique_ptr<Store> store;
    explicit Bed(const std::function<void(StoreSettings&)>& adjust = {}) {
        auto s = test::store_settings(tmp.path);
        s.writer_threads = 1;  // WriterBlock holds the one writer every account's writes go to
        if (adjust) adjust(s);
        store = std::make_unique<Store>(io, s);
    }
    fs::path root(const std::string& who = "alice") const { return tmp.path / "mail" / "example.org" / who; }

    RecipientResult deliver(const std::string& who, const std::string& text) {
        std::optional<RecipientResult> r;
        auto d = store->delivery();
        d->add_recipient(who, "example.org", "");
        d->body(text);
        d->commit([&](std::vector<RecipientResult> rs) { r = rs.at(0); });
        run_until([&] { return r.has_value(); });
        return r.value_or(RecipientResult{});
    }

    // Runs the loop until pred() or the time limit; pred() then.
    bool run_until(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
        auto end = std::chrono::steady_clock::now() + limit;
        io.restart();
        while (!pred() && std::chrono::steady_clock::now() < end)
            if (io.run_one_for(20ms) == 0 && io.stopped()) io.restart();
        return pred();
    }

    template <typename R, typename Call>
    Outcome<R> wait(Call call) {
        return test::wait_for<R>(io, call);
    }
};

// Keeps the store's writer thread inside a run() until released (at the latest when destroyed,
// which must happen before the Store's: its destructor joins the writer).
class WriterBlock {
public:
    explicit WriterBlock(Store& store) {
        auto entered = std::make_shared<std::promise<void>>();
        auto released = released_.get_future().share();
        auto in = entered->get_future();
        store.run<bool>(
            "blocker", "example.org",
            [entered, released](Account&) {
                entered->set_value();
                released.wait();
                return true;
            },
            [](Outcome<bool>) {});
        in.wait();  // the writer is inside it now
    }
    ~WriterBlock() { release(); }
    void release() {
        if (!done_) released_.set_value();
        done_ = true;
    }

private:
    std::promise<void> released_;
    bool done_ = false;
};

// StoreSettings::after_read_for_tests: while armed, holds each io thread that gets there until
// release().
class Turnstile {
public:
    void arrive() {
        std::unique_lock lock(m_);
        if (!armed_) return;
        ++arrivals_;
        cv_.notify_all();
        auto round = releases_;
        cv_.wait(lock, [&] { return releases_ != round; });
    }
    void arm(bool on) {  // those already held stay until release()
        std::lock_guard lock(m_);
        armed_ = on;
    }
    void release() {
        std::lock_guard lock(m_);
        ++releases_;
        cv_.notify_all();
    }
    int arrivals() {
        std::lock_guard lock(m_);
        return arrivals_;
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool armed_ = false;
    int arrivals_ = 0;
    std::uint64_t releases_ = 0;
};

std::set<std::uint32_t> uids_of(const std::vector<MessageInfo>& ms) {
    std::set<std::uint32_t> out;
    for (auto& m : ms) out.insert(m.uid);
    return out;
}

}  // namespace

TEST_CASE("reads are answered while the writer thread is busy; a delivery meanwhile waits for it") {
    Bed b;
    for (int i = 1; i <= 3; ++i) REQUIRE(b.deliver("alice", fmt::format("Subject: {}\r\n\r\nbody {}\r\n", i, i)).ok);
    REQUIRE(b.wait<std::vector<MessageInfo>>(
                 [&](auto done) { b.store->set_flags(kAlice, "INBOX", {2}, FlagOp::Add, kFlagged, {}, done); })
                .ok());
    const auto before = b.store->read_counts();

    WriterBlock block(*b.store);
    bool delivered = false;
    auto d = b.store->delivery();
    d->add_recipient("alice", "example.org", "");
    d->body("Subject: 4\r\n\r\nwritten, not committed\r\n");
    d->commit([&](std::vector<RecipientResult> r) { delivered = r.at(0).ok; });

    std::optional<Outcome<MailboxSnapshot>> snap;
    std::optional<Outcome<MailboxStatus>> status;
    std::optional<Outcome<std::optional<MessageInfo>>> one;
    std::optional<Outcome<std::vector<MailboxInfo>>> boxes;
    std::optional<Outcome<std::vector<std::uint32_t>>> flagged;
    b.store->snapshot(kAlice, "INBOX", [&](auto o) { snap = std::move(o); });
    b.store->status(kAlice, "INBOX", [&](auto o) { status = std::move(o); });
    b.store->message(kAlice, "INBOX", 2, [&](auto o) { one = std::move(o); });
    b.store->mailboxes(kAlice, [&](auto o) { boxes = std::move(o); });
    SearchQuery q;
    q.flags_set = kFlagged;
    b.store->search(kAlice, "INBOX", q, [&](auto o) { flagged = std::move(o); });
    // Through the writer these could not answer before it is released: the check fails, not hangs.
    CHECK(b.run_until([&] { return snap && status && one && boxes && flagged; }, 5s));
    CHECK_FALSE(delivered);  // the writer was busy all along
    REQUIRE(snap);
    REQUIRE(snap->ok());
    CHECK(uids_of(snap->value->messages) == std::set<std::uint32_t>{1, 2, 3});
    CHECK(snap->value->mailbox.uidnext == 4);
    REQUIRE(status);
    REQUIRE(status->ok());
    CHECK(status->value->messages == 3);
    CHECK(status->value->unseen == 3);
    CHECK(status->value->info.highestmodseq == 5);  // 1 for the new mailbox, 3 deliveries, 1 flag change
    REQUIRE(one);
    REQUIRE(one->ok());
    REQUIRE(*one->value);
    CHECK(((*one->value)->flags & kFlagged) != 0);
    CHECK(fs::exists(b.root() / (*one->value)->file));
    REQUIRE(boxes);
    REQUIRE(boxes->ok());
    CHECK(boxes->value->size() == 6);
    REQUIRE(flagged);
    REQUIRE(flagged->ok());
    CHECK(*flagged->value == std::vector<std::uint32_t>{2});
    CHECK(b.store->read_counts().by_readers == before.by_readers + 5);
    CHECK(b.store->read_counts().by_writer == before.by_writer);

    block.release();
    REQUIRE(b.run_until([&] { return delivered; }));
    // Read-your-writes: the delivery's completion was reported, so the next read has it.
    auto after = b.wait<MailboxSnapshot>([&](auto done) { b.store->snapshot(kAlice, "INBOX", done); });
    REQUIRE(after.ok());
    CHECK(uids_of(after.value->messages) == std::set<std::uint32_t>{1, 2, 3, 4});
}

TEST_CASE("read-your-writes: a read after a completed flag change or expunge sees it") {
    Bed b;
    for (int i = 1; i <= 4; ++i) REQUIRE(b.deliver("alice", fmt::format("Subject: {}\r\n\r\n{}\r\n", i, i)).ok);
    auto seen = b.wait<std::vector<MessageInfo>>(
        [&](auto done) { b.store->set_flags(kAlice, "INBOX", {1, 3}, FlagOp::Add, kSeen, {"$Junk"}, done); });
    REQUIRE(seen.ok());
    auto st = b.wait<MailboxStatus>([&](auto done) { b.store->status(kAlice, "INBOX", done); });
    REQUIRE(st.ok());
    CHECK(st.value->messages == 4);
    CHECK(st.value->unseen == 2);
    auto m3 = b.wait<std::optional<MessageInfo>>([&](auto done) { b.store->message(kAlice, "INBOX", 3, done); });
    REQUIRE(m3.ok());
    REQUIRE(*m3.value);
    CHECK((*m3.value)->file == seen.value->at(1).file);  // the file as renamed for \Seen
    CHECK((*m3.value)->keywords == std::vector<std::string>{"$Junk"});

    auto gone = b.wait<std::vector<std::uint32_t>>([&](auto done) { b.store->expunge(kAlice, "INBOX", {3, 4, 99}, done); });
    REQUIRE(gone.ok());
    CHECK(*gone.value == std::vector<std::uint32_t>{3, 4});  // 99 never existed
    auto snap = b.wait<MailboxSnapshot>([&](auto done) { b.store->snapshot(kAlice, "INBOX", done); });
    REQUIRE(snap.ok());
    CHECK(uids_of(snap.value->messages) == std::set<std::uint32_t>{1, 2});
    CHECK(snap.value->mailbox.uidnext == 5);
    auto m4 = b.wait<std::optional<MessageInfo>>([&](auto done) { b.store->message(kAlice, "INBOX", 4, done); });
    REQUIRE(m4.ok());
    CHECK_FALSE(*m4.value);
    SearchQuery q;
    q.keywords_set = {"$junk"};
    auto junk = b.wait<std::vector<std::uint32_t>>([&](auto done) { b.store->search(kAlice, "INBOX", q, done); });
    REQUIRE(junk.ok());
    CHECK(*junk.value == std::vector<std::uint32_t>{1});
    // All of these were answered by readers: the writer had recorded its changes.
    CHECK(b.store->read_counts().by_writer == 0);
    CHECK(b.store->read_counts().by_readers == 5);

    auto missing = b.wait<MailboxStatus>([&](auto done) { b.store->status(kAlice, "No such box", done); });
    CHECK_FALSE(missing.ok());
    CHECK(missing.error == StoreError::Kind::NotFound);
}

TEST_CASE("view: every message without file names; messages: only the UID ranges asked for") {
    Bed b;
    for (int i = 1; i <= 6; ++i) REQUIRE(b.deliver("alice", fmt::format("Subject: {}\r\n\r\n{}\r\n", i, i)).ok);
    REQUIRE(b.wait<std::vector<MessageInfo>>(
                 [&](auto done) { b.store->set_flags(kAlice, "INBOX", {2, 5}, FlagOp::Add, kSeen | kFlagged, {"$Work"}, done); })
                .ok());
    auto view = b.wait<MailboxView>([&](auto done) { b.store->view(kAlice, "INBOX", done); });
    REQUIRE(view.ok());
    REQUIRE(view.value->messages.size() == 6);
    auto snap = b.wait<MailboxSnapshot>([&](auto done) { b.store->snapshot(kAlice, "INBOX", done); });
    REQUIRE(snap.ok());
    CHECK(view.value->mailbox.uidnext == snap.value->mailbox.uidnext);
    for (std::size_t i = 0; i < 6; ++i) {
        const auto& v = view.value->messages[i];
        const auto& m = snap.value->messages[i];
        INFO("uid " << m.uid);
        CHECK(v.uid == m.uid);
        CHECK(v.flags == m.flags);
        CHECK(v.modseq == m.modseq);
        CHECK(v.keywords == m.keywords);
        CHECK(v.in_new == (m.file.rfind("new/", 0) == 0));
    }
    CHECK(view.value->messages[1].keywords == std::vector<std::string>{"$Work"});
    CHECK_FALSE(view.value->messages[1].in_new);  // \Seen moved it to cur/
    CHECK(view.value->messages[0].in_new);

    auto some = b.wait<std::vector<MessageInfo>>(
        [&](auto done) { b.store->messages(kAlice, "INBOX", UidRanges{{2, 3}, {5, 5}, {9, 12}}, done); });
    REQUIRE(some.ok());
    std::vector<std::uint32_t> uids;
    for (auto& m : *some.value) uids.push_back(m.uid);
    CHECK(uids == std::vector<std::uint32_t>{2, 3, 5});  // 9-12 don't exist
    CHECK(some.value->at(0).file == snap.value->messages[1].file);
    auto none = b.wait<std::vector<MessageInfo>>([&](auto done) { b.store->messages(kAlice, "INBOX", UidRanges{}, done); });
    REQUIRE(none.ok());
    CHECK(none.value->empty());
    auto missing = b.wait<MailboxView>([&](auto done) { b.store->view(kAlice, "No such box", done); });
    CHECK(missing.error == StoreError::Kind::NotFound);
}

TEST_CASE("deliveries to the accounts of other writers are committed while one writer is held") {
    Bed b([](StoreSettings& s) { s.writer_threads = 4; });
    WriterBlock block(*b.store);  // holds the writer of blocker@example.org
    constexpr int kAccounts = 8;
    std::vector<std::unique_ptr<DeliveryTarget>> deliveries;
    std::vector<bool> ok(kAccounts, false);
    for (int i = 0; i < kAccounts; ++i) {
        deliveries.push_back(b.store->delivery());
        deliveries.back()->add_recipient(fmt::format("user{}", i), "example.org", "");
        deliveries.back()->body("Subject: x\r\n\r\nbody\r\n");
        deliveries.back()->commit([&ok, i](std::vector<RecipientResult> r) { ok[i] = r.at(0).ok; });
    }
    auto count = [&] { return std::count(ok.begin(), ok.end(), true); };
    // With one writer for all, none would be committed before the release.
    CHECK(b.run_until([&] { return count() > 0; }, 5s));
    block.release();
    REQUIRE(b.run_until([&] { return count() == kAccounts; }));
}

TEST_CASE("a read of an account the writer never opened goes to the writer, which creates it") {
    Bed b;
    SECTION("a new account") {
        WriterBlock block(*b.store);
        std::optional<Outcome<MailboxStatus>> st;
        b.store->status({"carol", "example.org"}, "INBOX", [&](auto o) { st = std::move(o); });
        // A reader does not open (or create) an index: this one waits for the writer.
        CHECK_FALSE(b.run_until([&] { return st.has_value(); }, 300ms));
        CHECK_FALSE(fs::exists(b.root("carol") / "pillarbox.index"));
        block.release();
        REQUIRE(b.run_until([&] { return st.has_value(); }));
        REQUIRE(st->ok());
        CHECK(st->value->messages == 0);
        CHECK(st->value->info.uidvalidity != 0);
        CHECK(fs::is_directory(b.root("carol") / ".Sent" / "cur"));
        CHECK(b.store->read_counts().by_writer == 1);
        // Opened now: the next read is a reader's.
        auto again = b.wait<std::vector<MailboxInfo>>([&](auto done) { b.store->mailboxes({"carol", "example.org"}, done); });
        REQUIRE(again.ok());
        CHECK(again.value->size() == 6);
        CHECK(b.store->read_counts().by_readers == 1);
    }
    SECTION("an index left by an earlier process, with mail another program added since") {
        {
            Bed first;
            REQUIRE(first.deliver("alice", "Subject: 1\r\n\r\n1\r\n").ok);
            first.store.reset();  // closes the account cleanly
            fs::create_directories(b.root().parent_path());
            fs::rename(first.root(), b.root());
        }
        std::ofstream(b.root() / "new" / "1700000999.M1P1.other.host", std::ios::binary) << "Subject: ext\r\n\r\nx\r\n";
        fs::last_write_time(b.root() / "new", fs::last_write_time(b.root() / "new") + 2s);  // whatever the clock's tick
        auto snap = b.wait<MailboxSnapshot>([&](auto done) { b.store->snapshot(kAlice, "INBOX", done); });
        REQUIRE(snap.ok());
        CHECK(uids_of(snap.value->messages) == std::set<std::uint32_t>{1, 2});
        CHECK(b.store->read_counts().by_writer == 1);
    }
    SECTION("an invalid account name fails, creating nothing") {
        auto st = b.wait<MailboxStatus>([&](auto done) { b.store->status({"..", "example.org"}, "INBOX", done); });
        CHECK_FALSE(st.ok());
        CHECK_FALSE(fs::exists(b.tmp.path / "mail" / "cur"));
        CHECK_FALSE(fs::exists(b.tmp.path / "mail" / "tmp"));
    }
}

TEST_CASE("a mailbox whose index is behind its Maildir is synced by the writer before the read answers") {
    Bed b;
    REQUIRE(b.deliver("alice", "Subject: 1\r\n\r\n1\r\n").ok);
    // Another program drops a message into new/. Its directory mtime moves on: set it ahead, so the
    // test does not depend on the clock ticking between the delivery and the drop.
    std::ofstream(b.root() / "new" / "1700000999.M1P1.other.host", std::ios::binary) << "Subject: ext\n\nbare lf\n";
    fs::last_write_time(b.root() / "new", fs::last_write_time(b.root() / "new") + 2s);
    auto snap = b.wait<MailboxSnapshot>([&](auto done) { b.store->snapshot(kAlice, "INBOX", done); });
    REQUIRE(snap.ok());
    REQUIRE(snap.value->messages.size() == 2);
    CHECK(snap.value->messages[1].uid == 2);
    CHECK(snap.value->messages[1].file == "new/1700000999.M1P1.other.host,S=22,W=25,U=2");
    CHECK(snap.value->mailbox.uidnext == 3);
    CHECK(b.store->read_counts().by_writer == 1);
    CHECK(b.store->read_counts().by_readers == 0);
    // Synced now: a reader answers again.
    auto st = b.wait<MailboxStatus>([&](auto done) { b.store->status(kAlice, "INBOX", done); });
    REQUIRE(st.ok());
    CHECK(st.value->messages == 2);
    CHECK(b.store->read_counts().by_readers == 1);

    SECTION("a file removed behind the store's back") {
        fs::remove(b.root() / snap.value->messages[0].file);
        fs::last_write_time(b.root() / "new", fs::last_write_time(b.root() / "new") + 2s);
        auto m = b.wait<std::optional<MessageInfo>>([&](auto done) { b.store->message(kAlice, "INBOX", 1, done); });
        REQUIRE(m.ok());
        CHECK_FALSE(*m.value);
        CHECK(b.store->read_counts().by_writer == 2);
    }
}

TEST_CASE("a read's result includes every change published before its callback runs") {
    Turnstile gate;
    Bed b([&](StoreSettings& s) { s.after_read_for_tests = [&gate] { gate.arrive(); }; });
    struct Disarm {
        Turnstile& t;
        ~Disarm() {
            t.arm(false);
            t.release();
        }
    } disarm{gate};
    REQUIRE(b.deliver("alice", "Subject: 1\r\n\r\n1\r\n").ok);
    std::vector<std::uint64_t> heard;  // what a session that subscribed before its read hears
    auto sub = b.store->subscribe(kAlice, "INBOX", [&](const Change& c) { heard.push_back(c.modseq); });
    const auto before = b.store->read_counts();

    // The read has its answer; before that answer reaches the loop, a flag change commits and
    // is published. The first answer is stale, so the read is done again.
    auto toggle = [&](bool on) {
        auto r = b.wait<std::vector<MessageInfo>>([&](auto done) {
            b.store->set_flags(kAlice, "INBOX", {1}, on ? FlagOp::Add : FlagOp::Remove, kFlagged, {}, done);
        });
        REQUIRE(r.ok());
    };
    std::optional<Outcome<MailboxSnapshot>> snap;
    SECTION("once: a reader answers again") {
        gate.arm(true);
        b.store->snapshot(kAlice, "INBOX", [&](auto o) { snap = std::move(o); });
        REQUIRE(b.run_until([&] { return gate.arrivals() == 1; }));
        gate.arm(false);
        toggle(true);
        gate.release();
        REQUIRE(b.run_until([&] { return snap.has_value(); }));
        REQUIRE(snap->ok());
        CHECK((snap->value->messages.at(0).flags & kFlagged) != 0);
        CHECK(snap->value->mailbox.highestmodseq == heard.back());
        CHECK(b.store->read_counts().by_readers == before.by_readers + 2);
        CHECK(b.store->read_counts().by_writer == before.by_writer);
    }
    SECTION("under a stream of changes: after a few tries the writer answers, in order") {
        gate.arm(true);
        b.store->snapshot(kAlice, "INBOX", [&](auto o) { snap = std::move(o); });
        bool on = false;
        int writes = 0;
        while (!snap && writes < 10) {
            REQUIRE(b.run_until([&] { return gate.arrivals() > writes || snap.has_value(); }));
            if (snap) break;
            on = !on;
            toggle(on);
            ++writes;
            gate.release();
        }
        REQUIRE(b.run_until([&] { return snap.has_value(); }));
        REQUIRE(snap->ok());
        CHECK(writes >= 2);
        CHECK(writes < 10);
        CHECK(((snap->value->messages.at(0).flags & kFlagged) != 0) == on);
        CHECK(snap->value->mailbox.highestmodseq == heard.back());
        CHECK(b.store->read_counts().by_writer == before.by_writer + 1);
    }
}

TEST_CASE("read connections are reused, and only so many are kept idle") {
    SECTION("one account, many reads: one connection") {
        Bed b;
        REQUIRE(b.deliver("alice", "Subject: 1\r\n\r\n1\r\n").ok);
        for (int i = 0; i < 50; ++i)
            REQUIRE(b.wait<MailboxStatus>([&](auto done) { b.store->status(kAlice, "INBOX", done); }).ok());
        CHECK(b.store->read_counts().by_readers == 50);
        CHECK(b.store->read_counts().connections_opened == 1);
    }
    SECTION("more accounts than idle connections: the least recently used is closed") {
        Bed b([](StoreSettings& s) { s.idle_read_connections = 2; });
        const std::vector<std::string> who{"a1", "a2", "a3"};
        for (auto& w : who) REQUIRE(b.deliver(w, "Subject: 1\r\n\r\n1\r\n").ok);
        for (int round = 0; round < 3; ++round)
            for (auto& w : who)
                REQUIRE(b.wait<MailboxStatus>([&](auto done) { b.store->status({w, "example.org"}, "INBOX", done); }).ok());
        CHECK(b.store->read_counts().connections_opened == 9);  // round robin over 3 with room for 2
        for (int i = 0; i < 5; ++i)
            REQUIRE(b.wait<MailboxStatus>([&](auto done) { b.store->status({"a3", "example.org"}, "INBOX", done); }).ok());
        CHECK(b.store->read_counts().connections_opened == 9);
    }
}

TEST_CASE("APPEND streams in pieces with backpressure and lands with its flags and date") {
    Bed b;
    std::string text = "Subject: big append\r\n\r\n";
    for (int i = 0; i < 20000; ++i) text += fmt::format("line {:06d} of a message appended in pieces\r\n", i);
    auto a = b.store->append(kAlice, "Drafts", kDraft | kSeen, 1600000000);
    std::size_t most = 0;
    for (std::size_t off = 0; off < text.size(); off += 4000) {
        a->body(std::string_view(text).substr(off, 4000));
        most = std::max(most, a->buffered());
        bool drained = a->buffered() < 256 * 1024;
        if (!drained) a->on_drained([&] { drained = true; });
        REQUIRE(b.run_until([&] { return drained; }));
    }
    CHECK(most < 256 * 1024 + 64 * 1024 + 4000);
    auto r = b.wait<std::uint32_t>([&](auto done) { a->commit(done); });
    REQUIRE(r.ok());
    CHECK(*r.value == 1);
    auto snap = b.wait<MailboxSnapshot>([&](auto done) { b.store->snapshot(kAlice, "Drafts", done); });
    REQUIRE(snap.ok());
    REQUIRE(snap.value->messages.size() == 1);
    auto& m = snap.value->messages[0];
    CHECK(m.flags == (kDraft | kSeen));
    CHECK(m.internal_date == 1600000000);
    CHECK(m.size == text.size());
    CHECK(test::read_file(b.root() / ".Drafts" / m.file) == text);

    SECTION("into a mailbox that does not exist: NotFound, nothing left behind") {
        auto none = test::append_text(b.io, *b.store, kAlice, "Nowhere", "Subject: x\r\n\r\nx\r\n");
        CHECK_FALSE(none.ok());
        CHECK(none.error == StoreError::Kind::NotFound);
        CHECK(fs::is_empty(b.root() / "tmp"));
    }
    SECTION("aborted, or dropped without commit: nothing stays") {
        {
            auto x = b.store->append(kAlice, "INBOX", 0, 0);
            x->body(std::string(100000, 'x'));
            x->abort();
            auto y = b.store->append(kAlice, "INBOX", 0, 0);
            y->body(std::string(100000, 'y'));
        }
        b.run_until([] { return false; }, 300ms);
        CHECK(fs::is_empty(b.root() / "tmp"));
        CHECK(fs::is_empty(b.root() / "new"));
    }
}

TEST_CASE("reads beside deliveries, flag changes and expunges: every read answers and misses no acknowledged write") {
    Bed b;
    REQUIRE(b.deliver("alice", "Subject: 0\r\n\r\nfirst\r\n").ok);
    std::set<std::uint32_t> acked{1}, expunging, expunged;
    std::mt19937 rng(15);
    int deliveries = 0, reads = 0, reads_done = 0, writes = 0, failures = 0, missed = 0, ghosts = 0;
    bool stop = false;
    const auto end = std::chrono::steady_clock::now() + 1500ms;
    std::vector<std::unique_ptr<DeliveryTarget>> targets;

    std::function<void()> deliver = [&] {
        ++deliveries;
        auto d = b.store->delivery();
        d->add_recipient("alice", "example.org", "");
        d->body(fmt::format("Subject: s{}\r\n\r\n{}\r\n", deliveries, std::string(rng() % 3000, 'x')));
        d->commit([&](std::vector<RecipientResult> r) {
            --deliveries;
            if (r.at(0).ok) acked.insert(r.at(0).uid);
            else ++failures;
            if (!stop) deliver();
        });
        targets.push_back(std::move(d));
    };
    auto pick = [&]() -> std::optional<std::uint32_t> {
        if (acked.empty()) return std::nullopt;
        auto it = acked.begin();
        std::advance(it, static_cast<long>(rng() % acked.size()));
        return *it;
    };
    std::function<void()> write = [&] {
        auto uid = pick();
        if (!uid) return;
        ++writes;
        if (rng() % 3 == 0) {
            acked.erase(*uid);
            expunging.insert(*uid);
            b.store->expunge(kAlice, "INBOX", {*uid}, [&, u = *uid](Outcome<std::vector<std::uint32_t>> o) {
                --writes;
                if (!o.ok()) ++failures;
                expunging.erase(u);
                expunged.insert(u);
                if (!stop) write();
            });
        } else {
            b.store->set_flags(kAlice, "INBOX", {*uid}, rng() % 2 ? FlagOp::Add : FlagOp::Remove, kSeen, {},
                               [&](Outcome<std::vector<MessageInfo>> o) {
                                   --writes;
                                   if (!o.ok()) ++failures;
                                   if (!stop) write();
                               });
        }
    };
    // What a read started now must show: every acknowledged message not being expunged (unless
    // an expunge of it began while the read was on its way), and none whose expunge was
    // acknowledged.
    std::function<void()> read = [&] {
        ++reads;
        auto must = acked;
        auto must_not = expunged;
        auto done = [&, must, must_not](bool ok, const std::set<std::uint32_t>& have) {
            --reads;
            ++reads_done;
            if (!ok) ++failures;
            for (auto u : must) missed += !have.count(u) && !expunging.count(u) && !expunged.count(u);
            for (auto u : must_not) ghosts += have.count(u) ? 1 : 0;
            if (!stop) read();
        };
        switch (rng() % 3) {
            case 0:
                b.store->snapshot(kAlice, "INBOX", [done](Outcome<MailboxSnapshot> o) {
                    done(o.ok(), o.ok() ? uids_of(o.value->messages) : std::set<std::uint32_t>{});
                });
                break;
            case 1:
                b.store->search(kAlice, "INBOX", {}, [done](Outcome<std::vector<std::uint32_t>> o) {
                    done(o.ok(), o.ok() ? std::set<std::uint32_t>(o.value->begin(), o.value->end()) : std::set<std::uint32_t>{});
                });
                break;
            default: {
                auto uid = must.empty() ? 1u : *must.rbegin();
                b.store->message(kAlice, "INBOX", uid, [done, must](Outcome<std::optional<MessageInfo>> o) {
                    // Asks about one message only: the others count as there.
                    std::set<std::uint32_t> have = must;
                    if (o.ok() && !*o.value && !must.empty()) have.erase(*must.rbegin());
                    done(o.ok(), have);
                });
            }
        }
    };
    for (int i = 0; i < 3; ++i) deliver();
    write();
    for (int i = 0; i < 6; ++i) read();
    b.run_until([&] { return std::chrono::steady_clock::now() >= end; }, 5s);
    stop = true;
    REQUIRE(b.run_until([&] { return deliveries == 0 && reads == 0 && writes == 0; }));
    INFO(fmt::format("{} reads ({} by readers, {} by the writer), {} messages kept, {} expunged", reads_done,
                     b.store->read_counts().by_readers, b.store->read_counts().by_writer, acked.size(), expunged.size()));
    CHECK(failures == 0);  // no read or write failed (no SQLITE_BUSY reached a caller)
    CHECK(missed == 0);
    CHECK(ghosts == 0);
    CHECK(reads_done > 50);
    CHECK(b.store->read_counts().by_readers > 0);
    CHECK(b.store->read_counts().connections_opened <= b.store->settings().io_threads);
    // The end state, read once more, is what was acknowledged.
    auto snap = b.wait<MailboxSnapshot>([&](auto done) { b.store->snapshot(kAlice, "INBOX", done); });
    REQUIRE(snap.ok());
    CHECK(uids_of(snap.value->messages) == acked);
}

TEST_CASE("parsed: made from the file on first need, then read from the index", "[store][parse_cache]") {
    int parses = 0;
    Bed b([&](StoreSettings& s) {
        s.parse = [&parses](std::string_view m) {
            ++parses;
            return fmt::format("{{\"size\":{}}}", m.size());
        };
    });
    const std::string text = "Subject: hi\r\n\r\nbody\r\n";
    auto r = b.deliver("alice", text);
    REQUIRE(r.ok);
    CHECK(parses == 0);  // not at delivery (StoreSettings::parse_at_delivery)
    auto first = b.wait<std::string>([&](auto cb) { b.store->parsed(kAlice, "INBOX", r.uid, cb); });
    REQUIRE(first.ok());
    CHECK(*first.value == fmt::format("{{\"size\":{}}}", text.size()));
    CHECK(parses == 1);
    // The writer keeps it (queued before the answer came: once a later writer job is done, so
    // is that), and the next ask finds it in the index.
    REQUIRE(b.wait<bool>([&](auto cb) { b.store->run<bool>("alice", "example.org", [](Account&) { return true; }, cb); }).ok());
    auto again = b.wait<std::string>([&](auto cb) { b.store->parsed(kAlice, "INBOX", r.uid, cb); });
    REQUIRE(again.ok());
    CHECK(*again.value == *first.value);
    CHECK(parses == 1);
    // A flag change renames the file: still found.
    auto f = b.wait<std::vector<MessageInfo>>(
        [&](auto cb) { b.store->set_flags(kAlice, "INBOX", {r.uid}, FlagOp::Add, kSeen, {}, cb); });
    REQUIRE(f.ok());
    auto gone = b.wait<std::string>([&](auto cb) { b.store->parsed(kAlice, "INBOX", r.uid + 1, cb); });
    CHECK(gone.error == StoreError::Kind::NotFound);
}

TEST_CASE("copy, move and folders through the Mailboxes interface", "[store][folders]") {
    Bed b;
    auto r1 = b.deliver("alice", "Subject: 1\r\n\r\none\r\n");
    auto r2 = b.deliver("alice", "Subject: 2\r\n\r\ntwo\r\n");
    REQUIRE((r1.ok && r2.ok));
    auto created = b.wait<bool>([&](auto cb) { b.store->create_mailbox(kAlice, "Work/2026", "", cb); });
    REQUIRE(created.ok());
    auto again = b.wait<bool>([&](auto cb) { b.store->create_mailbox(kAlice, "Work/2026", "", cb); });
    CHECK(again.error == StoreError::Kind::Exists);

    auto c = b.wait<Mailboxes::Copied>([&](auto cb) { b.store->copy(kAlice, "INBOX", {r2.uid, 999, r1.uid}, "Work/2026", cb); });
    REQUIRE(c.ok());
    CHECK(c.value->uids == std::vector<std::uint32_t>{1, 0, 2});
    auto st = b.wait<MailboxStatus>([&](auto cb) { b.store->status(kAlice, "Work/2026", cb); });
    REQUIRE(st.ok());
    CHECK(st.value->messages == 2);
    CHECK(c.value->uidvalidity == st.value->info.uidvalidity);

    auto m = b.wait<Mailboxes::Copied>([&](auto cb) { b.store->move(kAlice, "INBOX", {r1.uid}, "Work/2026", cb); });
    REQUIRE(m.ok());
    CHECK(m.value->uids == std::vector<std::uint32_t>{3});
    auto inbox = b.wait<MailboxStatus>([&](auto cb) { b.store->status(kAlice, "INBOX", cb); });
    CHECK(inbox.value->messages == 1);

    auto missing = b.wait<Mailboxes::Copied>([&](auto cb) { b.store->copy(kAlice, "INBOX", {r2.uid}, "Nope", cb); });
    CHECK(missing.error == StoreError::Kind::NotFound);

    REQUIRE(b.wait<bool>([&](auto cb) { b.store->set_subscribed(kAlice, "Work/2026", true, cb); }).ok());
    REQUIRE(b.wait<bool>([&](auto cb) { b.store->rename_mailbox(kAlice, "Work", "Jobs", cb); }).error ==
            StoreError::Kind::NotFound);  // only Work/2026 exists
    REQUIRE(b.wait<bool>([&](auto cb) { b.store->rename_mailbox(kAlice, "Work/2026", "Jobs", cb); }).ok());
    auto list = b.wait<std::vector<MailboxInfo>>([&](auto cb) { b.store->mailboxes(kAlice, cb); });
    REQUIRE(list.ok());
    bool jobs = false;
    for (auto& mb : *list.value)
        if (mb.name == "Jobs") jobs = mb.subscribed;
    CHECK(jobs);
    REQUIRE(b.wait<bool>([&](auto cb) { b.store->delete_mailbox(kAlice, "Jobs", cb); }).ok());
    CHECK(b.wait<MailboxStatus>([&](auto cb) { b.store->status(kAlice, "Jobs", cb); }).error == StoreError::Kind::NotFound);
    CHECK(b.wait<bool>([&](auto cb) { b.store->delete_mailbox(kAlice, "INBOX", cb); }).error == StoreError::Kind::Invalid);
}
