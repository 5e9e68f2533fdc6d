// The mailbox API through Store::run: snapshot, flags (file names follow), copy, move, status,
// folders, subscriptions, quota, APPEND, and the change bus delivering changes in order to the
// sessions that listen.
#include <catch2/catch.hpp>

// Designated initializers (SearchQuery, Quota) leave the other members at their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <asio/io_context.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "storage/account.hpp"
#include "storage/store.hpp"
#include "tests/unit/server/test_support.hpp"
#include "tests/unit/storage/store_support.hpp"
#include "tests/unit/test_config.hpp"

using namespace pillarbox::storage;
namespace fs = std::filesystem;

namespace {

struct Bed {
    pillarbox::test::TempDir tmp;
    asio::io_context io;
    std::unique_ptr<Store> store;
    explicit Bed(Quota q = {}) {
        auto s = pillarbox::test::store_settings(tmp.path);
        s.quota = q;
        store = std::make_unique<Store>(io, s);
    }
    fs::path root() const { return tmp.path / "mail" / "example.org" / "alice"; }

    template <typename R, typename Fn>
    Outcome<R> run(Fn fn) {
        Outcome<R> out;
        store->run<R>("alice", "example.org", std::move(fn), [&](Outcome<R> o) { out = std::move(o); });
        io.restart();
        io.run();
        return out;
    }
    Outcome<std::uint32_t> append(const std::string& mailbox, const std::string& text, std::uint32_t flags = 0) {
        return pillarbox::test::append_text(io, *store, {"alice", "example.org"}, mailbox, text, flags);
    }
};

}  // namespace

TEST_CASE("append stores flags and internal date; snapshot lists by UID") {
    Bed b;
    auto r1 = b.append("INBOX", "Subject: a\r\n\r\na\r\n");
    auto r2 = b.append("Drafts", "Subject: d\r\n\r\nd\n", kDraft | kSeen);
    REQUIRE(r1.ok());
    REQUIRE(r2.ok());
    auto snap = b.run<std::vector<MessageInfo>>([](Account& a) { return a.snapshot("Drafts"); });
    REQUIRE(snap.ok());
    REQUIRE(snap.value->size() == 1);
    auto& m = snap.value->front();
    CHECK(m.uid == 1);
    CHECK(m.flags == (kDraft | kSeen));
    CHECK(m.internal_date == 1700000000);
    CHECK(m.rfc822_size == m.size + 1);  // one bare LF
    CHECK(m.file.rfind("cur/", 0) == 0);
    CHECK(m.file.substr(m.file.size() - 5) == ":2,DS");
    CHECK(fs::exists(b.root() / ".Drafts" / m.file));
}

TEST_CASE("flag changes rename the file into cur/ and raise MODSEQ") {
    Bed b;
    b.append("INBOX", "x\r\n");
    auto changed = b.run<std::vector<MessageInfo>>([](Account& a) { return a.set_flags("INBOX", {1}, FlagOp::Add, kSeen | kFlagged); });
    REQUIRE(changed.ok());
    REQUIRE(changed.value->size() == 1);
    auto m = changed.value->front();
    CHECK(m.flags == (kSeen | kFlagged));
    CHECK(m.file.rfind("cur/", 0) == 0);
    CHECK(m.file.substr(m.file.size() - 5) == ":2,FS");
    CHECK(fs::exists(b.root() / m.file));
    auto again = b.run<std::vector<MessageInfo>>([](Account& a) { return a.set_flags("INBOX", {1}, FlagOp::Add, kSeen); });
    CHECK(again.value->empty());  // nothing changed, no MODSEQ spent
    auto removed = b.run<std::vector<MessageInfo>>([](Account& a) { return a.set_flags("INBOX", {1}, FlagOp::Remove, kFlagged); });
    CHECK(removed.value->front().modseq > m.modseq);
    CHECK(removed.value->front().file.substr(removed.value->front().file.size() - 4) == ":2,S");
}

TEST_CASE("copy hard-links into the target with new UIDs; move is copy plus expunge") {
    Bed b;
    b.append("INBOX", "one\r\n", kSeen);
    b.append("INBOX", "two\r\n");
    auto uids = b.run<std::vector<std::uint32_t>>([](Account& a) { return a.copy("INBOX", {2, 1, 99}, "Archive"); });
    REQUIRE(uids.ok());
    CHECK(*uids.value == std::vector<std::uint32_t>{1, 2, 0});
    auto arch = b.run<std::vector<MessageInfo>>([](Account& a) { return a.snapshot("Archive"); });
    REQUIRE(arch.value->size() == 2);
    CHECK(arch.value->at(1).flags == kSeen);  // copied from INBOX uid 1
    CHECK(fs::hard_link_count(b.root() / ".Archive" / arch.value->at(0).file) == 2);
    auto moved = b.run<std::vector<std::uint32_t>>([](Account& a) { return a.move("INBOX", {1, 42}, "Trash"); });
    REQUIRE(moved.ok());
    CHECK(*moved.value == std::vector<std::uint32_t>{1, 0});
    auto st = b.run<MailboxStatus>([](Account& a) { return a.status("INBOX"); });
    CHECK(st.value->messages == 1);
    CHECK(st.value->unseen == 1);
    CHECK(st.value->info.uidnext == 3);
}

TEST_CASE("create, rename (with children), subscribe and delete folders") {
    Bed b;
    auto made = b.run<bool>([](Account& a) {
        a.create_mailbox("Projects");
        a.create_mailbox("Projects/2026");
        a.subscribe("Projects", true);
        return true;
    });
    REQUIRE(made.ok());
    CHECK(fs::is_directory(b.root() / ".Projects" / "cur"));
    CHECK(fs::is_directory(b.root() / ".Projects.2026" / "new"));
    auto dup = b.run<bool>([](Account& a) {
        a.create_mailbox("Projects");
        return true;
    });
    REQUIRE(dup.error);
    CHECK(*dup.error == StoreError::Kind::Exists);
    auto bad = b.run<bool>([](Account& a) {
        a.create_mailbox("a/../b");
        return true;
    });
    CHECK(*bad.error == StoreError::Kind::Invalid);

    b.append("Projects/2026", "plan\r\n");
    REQUIRE(b.run<bool>([](Account& a) {
        a.rename_mailbox("Projects", "Work");
        return true;
    }).ok());
    auto boxes = b.run<std::vector<MailboxInfo>>([](Account& a) { return a.mailboxes(); });
    std::set<std::string> names;
    for (auto& m : *boxes.value) names.insert(m.name);
    CHECK(names.count("Work"));
    CHECK(names.count("Work/2026"));
    CHECK_FALSE(names.count("Projects"));
    CHECK(fs::is_directory(b.root() / ".Work.2026"));
    auto st = b.run<MailboxStatus>([](Account& a) { return a.status("Work/2026"); });
    CHECK(st.value->messages == 1);

    REQUIRE(b.run<bool>([](Account& a) {
        a.delete_mailbox("Work/2026");
        return true;
    }).ok());
    CHECK_FALSE(fs::exists(b.root() / ".Work.2026"));
    auto inbox = b.run<bool>([](Account& a) {
        a.delete_mailbox("INBOX");
        return true;
    });
    CHECK(*inbox.error == StoreError::Kind::Invalid);
    auto missing = b.run<bool>([](Account& a) {
        a.delete_mailbox("Nope");
        return true;
    });
    CHECK(*missing.error == StoreError::Kind::NotFound);
}

TEST_CASE("renaming INBOX moves its messages and leaves INBOX empty") {
    Bed b;
    b.append("INBOX", "a\r\n");
    b.append("INBOX", "b\r\n");
    REQUIRE(b.run<bool>([](Account& a) {
        a.rename_mailbox("INBOX", "Old");
        return true;
    }).ok());
    CHECK(b.run<MailboxStatus>([](Account& a) { return a.status("INBOX"); }).value->messages == 0);
    CHECK(b.run<MailboxStatus>([](Account& a) { return a.status("Old"); }).value->messages == 2);
}

TEST_CASE("quota: deliveries and appends over the limit fail as over quota, permanently by default") {
    Bed b(Quota{.max_bytes = 100, .max_messages = 0});
    CHECK(b.append("INBOX", std::string(60, 'a')).ok());
    auto over = b.append("INBOX", std::string(60, 'b'));
    CHECK_FALSE(over.ok());
    CHECK(over.error == StoreError::Kind::OverQuota);
    auto small = b.append("INBOX", std::string(30, 'c'));
    CHECK(small.ok());
    CHECK(fs::is_empty(b.root() / "tmp"));
    auto copy = b.run<std::vector<std::uint32_t>>([](Account& a) { return a.copy("INBOX", {1}, "Archive"); });
    CHECK(*copy.error == StoreError::Kind::OverQuota);
}

TEST_CASE("the change bus tells listeners of this account and mailbox, in order") {
    Bed b;
    std::vector<std::string> seen_inbox, seen_all, seen_other;
    auto s1 = b.store->bus().subscribe("alice@example.org", "INBOX", [&](const Change& c) {
        seen_inbox.push_back(fmt::format("{}:{}", static_cast<int>(c.kind), c.modseq));
    });
    auto s2 = b.store->bus().subscribe("alice@example.org", "", [&](const Change& c) { seen_all.push_back(c.mailbox); });
    auto s3 = b.store->bus().subscribe("bob@example.org", "", [&](const Change& c) { seen_other.push_back(c.mailbox); });
    b.append("INBOX", "1\r\n");
    b.append("Sent", "2\r\n");
    b.run<bool>([](Account& a) {
        a.set_flags("INBOX", {1}, FlagOp::Add, kSeen);
        a.expunge("INBOX", {1});
        return true;
    });
    CHECK(seen_inbox == std::vector<std::string>{"0:2", "1:3", "2:4"});  // Added, FlagsChanged, Expunged
    CHECK(seen_all == std::vector<std::string>{"INBOX", "Sent", "INBOX", "INBOX"});
    CHECK(seen_other.empty());
    s1.reset();
    b.append("INBOX", "3\r\n");
    CHECK(seen_inbox.size() == 3);
}

TEST_CASE("deliveries publish Added changes too") {
    Bed b;
    std::vector<std::uint32_t> uids;
    auto sub = b.store->bus().subscribe("alice@example.org", "INBOX", [&](const Change& c) {
        for (auto& m : c.messages) uids.push_back(m.uid);
    });
    for (int i = 0; i < 3; ++i) {
        auto d = b.store->delivery();
        d->add_recipient("alice", "example.org", "");
        d->body(fmt::format("m{}\r\n", i));
        d->commit([](std::vector<RecipientResult>) {});
    }
    b.io.run();
    CHECK(uids == std::vector<std::uint32_t>{1, 2, 3});
}

TEST_CASE("read returns byte ranges of a message file; the parse cache keeps what it is given") {
    Bed b;
    std::string text = "Subject: r\r\n\r\n0123456789\r\n";
    b.append("INBOX", text);
    auto snap = b.run<std::vector<MessageInfo>>([](Account& a) { return a.snapshot("INBOX"); });
    auto inbox = b.run<MailboxInfo>([](Account& a) { return a.mailbox("INBOX"); });
    const AccountId alice{"alice", "example.org"};
    auto got = pillarbox::test::wait_for<std::string>(
        b.io, [&](auto done) { b.store->read(alice, *inbox.value, snap.value->front().file, 14, 4, done); });
    CHECK(got.reason.empty());
    CHECK(got.value == "0123");
    auto tail = pillarbox::test::wait_for<std::string>(
        b.io, [&](auto done) { b.store->read(alice, *inbox.value, snap.value->front().file, text.size() - 2, 100, done); });
    CHECK(tail.value == "\r\n");
    auto gone = pillarbox::test::wait_for<std::string>(
        b.io, [&](auto done) { b.store->read(alice, *inbox.value, "cur/no-such-file", 0, 100, done); });
    CHECK_FALSE(gone.ok());
    CHECK(gone.error == StoreError::Kind::NotFound);
    auto cached = b.run<std::string>([](Account& a) {
        a.set_parsed("INBOX", 1, "{\"v\":1}");
        return a.parsed("INBOX", 1);
    });
    CHECK(*cached.value == "{\"v\":1}");
}

TEST_CASE("an appended message's internal date survives an index rebuild (it is the file's mtime)") {
    Bed b;
    REQUIRE(b.append("Sent", "x\r\n", kSeen).ok());
    b.store.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(b.root() / (std::string("pillarbox.index") + suffix));
    b.store = std::make_unique<Store>(b.io, pillarbox::test::store_settings(b.tmp.path));
    auto snap = b.run<std::vector<MessageInfo>>([](Account& a) { return a.snapshot("Sent"); });
    REQUIRE(snap.value->size() == 1);
    CHECK(snap.value->front().internal_date == 1700000000);
    CHECK(snap.value->front().flags == kSeen);
}

TEST_CASE("keywords: letters from dovecot-keywords in the file name, $Forwarded as P, kept by copy and rebuild") {
    Bed b;
    b.append("INBOX", "k\r\n");
    auto set = b.run<std::vector<MessageInfo>>([](Account& a) {
        return a.set_flags("INBOX", {1}, FlagOp::Add, kSeen, {"$Junk", "project-x", "$Forwarded"});
    });
    REQUIRE(set.ok());
    auto m = set.value->front();
    CHECK(m.keywords == std::vector<std::string>{"$Junk", "project-x", "$Forwarded"});
    CHECK(m.file.substr(m.file.find(":2,")) == ":2,PSab");
    std::ifstream kf(b.root() / "dovecot-keywords");
    std::string kw((std::istreambuf_iterator<char>(kf)), {});
    CHECK(kw == "0 $Junk\n1 project-x\n");
    auto removed = b.run<std::vector<MessageInfo>>([](Account& a) {
        return a.set_flags("INBOX", {1}, FlagOp::Remove, 0, {"PROJECT-X"});  // case-insensitive
    });
    CHECK(removed.value->front().keywords == std::vector<std::string>{"$Junk", "$Forwarded"});
    auto bad = b.run<std::vector<MessageInfo>>([](Account& a) { return a.set_flags("INBOX", {1}, FlagOp::Add, 0, {"bad word"}); });
    CHECK(*bad.error == StoreError::Kind::Invalid);
    auto copied = b.run<std::vector<MessageInfo>>([](Account& a) {
        a.copy("INBOX", {1}, "Archive");
        return a.snapshot("Archive");
    });
    CHECK(copied.value->front().keywords == std::vector<std::string>{"$Junk", "$Forwarded"});

    b.store.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(b.root() / (std::string("pillarbox.index") + suffix));
    b.store = std::make_unique<Store>(b.io, pillarbox::test::store_settings(b.tmp.path));
    auto rebuilt = b.run<std::vector<MessageInfo>>([](Account& a) { return a.snapshot("INBOX"); });
    CHECK(rebuilt.value->front().keywords == std::vector<std::string>{"$Forwarded", "$Junk"});
    CHECK(rebuilt.value->front().flags == kSeen);
}

TEST_CASE("search over the index: UID ranges, flags, keywords, size, internal date, MODSEQ") {
    Bed b;
    for (int i = 1; i <= 6; ++i) b.append("INBOX", std::string(static_cast<std::size_t>(i * 100), 'x'));
    b.run<bool>([](Account& a) {
        a.set_flags("INBOX", {2, 4}, FlagOp::Add, kSeen);
        a.set_flags("INBOX", {4, 5}, FlagOp::Add, kFlagged, {"$Important"});
        return true;
    });
    auto search = [&](SearchQuery q) {
        return *b.run<std::vector<std::uint32_t>>([q](Account& a) { return a.search("INBOX", q); }).value;
    };
    using V = std::vector<std::uint32_t>;
    CHECK(search({}) == V{1, 2, 3, 4, 5, 6});
    CHECK(search({.uids = {{2, 3}, {6, 9}}}) == V{2, 3, 6});
    CHECK(search({.flags_set = kSeen}) == V{2, 4});
    CHECK(search({.flags_clear = kSeen}) == V{1, 3, 5, 6});
    CHECK(search({.flags_set = kSeen | kFlagged}) == V{4});
    CHECK(search({.keywords_set = {"$important"}}) == V{4, 5});
    CHECK(search({.keywords_clear = {"$Important"}, .larger = 250}) == V{3, 6});
    CHECK(search({.smaller = 300}) == V{1, 2});
    CHECK(search({.since = 1700000000, .before = 1700000001}) == V{1, 2, 3, 4, 5, 6});
    CHECK(search({.before = 1700000000}).empty());
    auto top = b.run<MailboxInfo>([](Account& a) { return a.mailbox("INBOX"); }).value->highestmodseq;
    CHECK(search({.modseq = top - 1}) == V{4, 5});
}
