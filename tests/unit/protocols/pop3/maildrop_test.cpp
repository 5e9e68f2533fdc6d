// The POP3 maildrop (RFC 1939 sections 5, 6 and 7): numbering, DELE marks, STAT, RSET, the UIDL
// strings, changes from other sessions, the UPDATE plan, and that plan applied to a real account
// through the store's commit_maildrop.
#include <catch2/catch.hpp>

// Designated initializers (MessageInfo, Change) leave the other members at their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <asio/io_context.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <utility>

#include "protocols/pop3/maildrop.hpp"
#include "protocols/pop3/parser.hpp"
#include "storage/store.hpp"
#include "tests/unit/server/test_support.hpp"
#include "tests/unit/storage/store_support.hpp"
#include "tests/unit/test_config.hpp"

using namespace pillarbox;
using pillarbox::pop3::DropMessage;
using pillarbox::pop3::Maildrop;
namespace fs = std::filesystem;

namespace {

constexpr std::uint32_t kValidity = 0x6B0C4CAE;
const std::string kDefault = "%08Xu%08Xv";

storage::MailboxInfo inbox() {
    storage::MailboxInfo mb;
    mb.id = 1;
    mb.name = "INBOX";
    mb.uidvalidity = kValidity;
    mb.uidnext = 100;
    return mb;
}

storage::MessageInfo msg(std::uint32_t uid, std::uint64_t size, std::uint32_t flags = 0) {
    storage::MessageInfo m;
    m.uid = uid;
    m.file = fmt::format("new/1700000000.M{}P1Q1.host,S={},W={},U={}:2,", uid, size - 2, size, uid);
    m.size = size - 2;
    m.rfc822_size = size;
    m.flags = flags;
    return m;
}

// UIDs 3, 7, 10 (not contiguous: numbers are positions, not UIDs), sizes 100, 200, 300.
Maildrop three(const std::string& format = kDefault) {
    return Maildrop(inbox(), {msg(3, 100), msg(7, 200), msg(10, 300)}, format);
}

std::vector<std::uint32_t> uids(std::initializer_list<std::uint32_t> l) { return l; }

}  // namespace

TEST_CASE("maildrop: messages are numbered 1..N in the order given") {
    auto d = three();
    CHECK(d.size() == 3);
    CHECK(d.inbox().uidvalidity == kValidity);
    REQUIRE(d.get(1));
    REQUIRE(d.get(2));
    REQUIRE(d.get(3));
    CHECK(d.get(1)->uid == 3);
    CHECK(d.get(2)->uid == 7);
    CHECK(d.get(3)->uid == 10);
    CHECK(d.get(2)->size == 200);  // the RFC 822 size, as RETR sends it
    CHECK(d.get(2)->file == "new/1700000000.M7P1Q1.host,S=198,W=200,U=7:2,");
    CHECK_FALSE(d.get(1)->deleted);
    CHECK_FALSE(d.get(1)->retrieved);
    CHECK_FALSE(d.get(1)->expunged);
}

TEST_CASE("maildrop: get() of 0, N+1 and deleted messages is null") {
    auto d = three();
    CHECK(d.get(0) == nullptr);
    CHECK(d.get(4) == nullptr);
    CHECK(d.get(4294967295u) == nullptr);
    d.mark_deleted(*d.get(2));
    CHECK(d.get(2) == nullptr);
    CHECK(d.get(1) != nullptr);
    CHECK(d.get(3) != nullptr);
    CHECK(d.size() == 3);  // numbers never shift
}

TEST_CASE("maildrop: an empty maildrop") {
    Maildrop d(inbox(), {}, kDefault);
    CHECK(d.size() == 0);
    CHECK(d.get(0) == nullptr);
    CHECK(d.get(1) == nullptr);
    CHECK(d.stat() == std::pair<std::uint64_t, std::uint64_t>{0, 0});
    CHECK(d.update().empty());
    Maildrop def;
    CHECK(def.size() == 0);
    CHECK(def.get(1) == nullptr);
}

TEST_CASE("maildrop: STAT leaves out deleted messages; RSET unmarks them") {
    auto d = three();
    CHECK(d.stat() == std::pair<std::uint64_t, std::uint64_t>{3, 600});
    d.mark_deleted(*d.get(1));
    CHECK(d.stat() == std::pair<std::uint64_t, std::uint64_t>{2, 500});
    d.mark_deleted(*d.get(3));
    CHECK(d.stat() == std::pair<std::uint64_t, std::uint64_t>{1, 200});
    d.reset();
    CHECK(d.stat() == std::pair<std::uint64_t, std::uint64_t>{3, 600});
    REQUIRE(d.get(1));
    REQUIRE(d.get(3));
    CHECK_FALSE(d.get(1)->deleted);
    CHECK_FALSE(d.get(3)->deleted);
}

TEST_CASE("maildrop: RSET keeps the RETR record") {
    auto d = three();
    d.get(2)->retrieved = true;
    d.mark_deleted(*d.get(2));
    d.reset();
    REQUIRE(d.get(2));
    CHECK(d.get(2)->retrieved);
    CHECK(d.update().seen == uids({7}));
}

TEST_CASE("maildrop: UIDL strings use the format and the mailbox UIDVALIDITY") {
    auto d = three();
    for (std::uint32_t n = 1; n <= 3; ++n) {
        auto* m = d.get(n);
        REQUIRE(m);
        CHECK(m->uidl == pop3::format_uidl(kDefault, m->uid, kValidity, ""));
        CHECK(m->uidl.size() == 16);
        CHECK(m->uidl.substr(0, 8) == pop3::format_uidl("%08Xu", m->uid, 0, ""));
    }
    CHECK(d.get(1)->uidl.substr(0, 8) == "00000003");
    CHECK(d.get(2)->uidl.substr(0, 8) == "00000007");
    CHECK(pop3::format_uidl("%08xv", 0, kValidity, "") == "6b0c4cae");
    CHECK(d.get(1)->uidl.substr(8) == pop3::format_uidl("%08Xv", 0, kValidity, ""));

    auto v = three("%v.%u");
    CHECK(v.get(1)->uidl == "1795968174.3");
    CHECK(v.get(3)->uidl == "1795968174.10");
    auto u = three("%u");
    CHECK(u.get(2)->uidl == "7");
}

TEST_CASE("maildrop: %f is the Maildir base name") {
    auto d = three("%f");
    CHECK(d.get(1)->uidl == "1700000000.M3P1Q1.host");
    CHECK(d.get(2)->uidl == "1700000000.M7P1Q1.host");

    auto one = msg(1, 12);
    one.file = "new/1700000000.M1P1Q1.host,S=10,W=12,U=1:2,";
    auto seen = msg(2, 12, storage::kSeen);
    seen.file = "cur/1700000001.M2P1Q1.host,S=10,W=12,U=2:2,S";
    auto plain = msg(3, 12);
    plain.file = "cur/1700000002.M3P1Q1.other";  // written by another program
    Maildrop f(inbox(), {one, seen, plain}, "%f");
    CHECK(f.get(1)->uidl == "1700000000.M1P1Q1.host");
    CHECK(f.get(2)->uidl == "1700000001.M2P1Q1.host");
    CHECK(f.get(3)->uidl == "1700000002.M3P1Q1.other");

    Maildrop both(inbox(), {one}, "%f-%u");
    CHECK(both.get(1)->uidl == "1700000000.M1P1Q1.host-1");
}

TEST_CASE("maildrop: another session's flag change renames the file, the UIDL stays") {
    auto d = three("%f");
    const std::string before = d.get(2)->uidl;
    storage::Change c{.kind = storage::Change::Kind::FlagsChanged, .mailbox = "INBOX"};
    auto renamed = msg(7, 200, storage::kSeen | storage::kFlagged);
    renamed.file = "cur/1700000000.M7P1Q1.host,S=198,W=200,U=7:2,FS";
    auto unknown = msg(8, 50, storage::kSeen);  // not in this maildrop (arrived after login)
    c.messages = {renamed, unknown};
    d.apply(c);
    REQUIRE(d.get(2));
    CHECK(d.get(2)->file == renamed.file);
    CHECK(d.get(2)->flags == (storage::kSeen | storage::kFlagged));
    CHECK(d.get(2)->uidl == before);
    CHECK(d.get(1)->flags == 0);
    CHECK(d.get(1)->file == msg(3, 100).file);
    CHECK(d.size() == 3);
}

TEST_CASE("maildrop: another session's expunge marks the message expunged, its number stays") {
    auto d = three();
    storage::Change c{.kind = storage::Change::Kind::Expunged, .mailbox = "INBOX"};
    c.uids = {3, 10, 99};
    d.apply(c);
    CHECK(d.size() == 3);
    REQUIRE(d.get(1));
    REQUIRE(d.get(3));
    CHECK(d.get(1)->expunged);
    CHECK_FALSE(d.get(2)->expunged);
    CHECK(d.get(3)->expunged);
    CHECK(d.get(2)->uid == 7);
}

TEST_CASE("maildrop: other kinds of change are ignored") {
    auto d = three();
    storage::Change added{.kind = storage::Change::Kind::Added, .mailbox = "INBOX"};
    added.messages = {msg(11, 10)};
    d.apply(added);
    storage::Change created{.kind = storage::Change::Kind::MailboxCreated, .mailbox = "Foo"};
    d.apply(created);
    CHECK(d.size() == 3);
    CHECK(d.get(4) == nullptr);
    CHECK(d.stat() == std::pair<std::uint64_t, std::uint64_t>{3, 600});
}

TEST_CASE("maildrop: update() expunges DELE'd messages and sets \\Seen on retrieved ones") {
    std::vector<storage::MessageInfo> list;
    for (std::uint32_t uid = 1; uid <= 8; ++uid) list.push_back(msg(uid, 10 * uid));
    list[2].flags = storage::kSeen;  // uid 3 already seen
    Maildrop d(inbox(), list, kDefault);
    CHECK(d.update().empty());

    d.mark_deleted(*d.get(1));      // uid 1: expunge
    d.get(2)->retrieved = true;     // uid 2: seen
    d.get(3)->retrieved = true;     // uid 3: already \Seen, nothing to do
    d.get(4)->retrieved = true;     // uid 4: retrieved and deleted: expunge only
    d.mark_deleted(*d.get(4));
    d.mark_deleted(*d.get(5));      // uid 5: deleted but expunged meanwhile: neither
    d.get(6)->retrieved = true;     // uid 6: retrieved but expunged meanwhile: neither
    d.get(8)->retrieved = true;     // uid 8: seen
    storage::Change gone{.kind = storage::Change::Kind::Expunged, .mailbox = "INBOX"};
    gone.uids = {5, 6};
    d.apply(gone);

    auto u = d.update();
    CHECK_FALSE(u.empty());
    CHECK(u.expunge == uids({1, 4}));
    CHECK(u.seen == uids({2, 8}));

    // Another session set \Seen on uid 8 meanwhile: nothing left to do for it.
    storage::Change flags{.kind = storage::Change::Kind::FlagsChanged, .mailbox = "INBOX"};
    auto m8 = msg(8, 80, storage::kSeen);
    m8.file = "cur/1700000000.M8P1Q1.host,S=78,W=80,U=8:2,S";
    flags.messages = {m8};
    d.apply(flags);
    CHECK(d.update().seen == uids({2}));

    d.reset();
    auto after = d.update();
    CHECK(after.expunge.empty());
    CHECK(after.seen == uids({2, 4}));  // uid 4 was retrieved and is no longer deleted
}

namespace {

struct Bed {
    pillarbox::test::TempDir tmp;
    asio::io_context io;
    std::unique_ptr<storage::Store> store;
    Bed() { store = std::make_unique<storage::Store>(io, test::store_settings(tmp.path)); }
    fs::path root() const { return tmp.path / "mail" / "example.org" / "alice"; }

    const storage::AccountId alice{"alice", "example.org"};
    storage::Outcome<std::uint32_t> append(const std::string& text, std::uint32_t flags = 0) {
        return test::append_text(io, *store, alice, "INBOX", text, flags);
    }
    std::pair<storage::MailboxInfo, std::vector<storage::MessageInfo>> snapshot() {
        auto s = test::wait_for<storage::MailboxSnapshot>(io, [&](auto done) { store->snapshot(alice, "INBOX", done); });
        REQUIRE(s.ok());
        return {s.value->mailbox, s.value->messages};
    }
    storage::Outcome<std::string> commit(const std::string& mailbox, const Maildrop::Update& u) {
        return test::wait_for<std::string>(io, [&](auto done) { store->commit_maildrop(alice, mailbox, u, done); });
    }
};

}  // namespace

TEST_CASE("maildrop commit: DELE'd messages are expunged, retrieved ones get \\Seen") {
    Bed b;
    REQUIRE(b.append("Subject: one\r\n\r\n1\r\n").ok());
    REQUIRE(b.append("Subject: two\r\n\r\n2\r\n").ok());
    REQUIRE(b.append("Subject: three\r\n\r\n3\r\n").ok());
    auto [box, msgs] = b.snapshot();
    REQUIRE(msgs.size() == 3);
    CHECK(box.uidvalidity != 0);

    Maildrop d(box, msgs, kDefault);
    REQUIRE(d.size() == 3);
    CHECK(d.get(1)->uidl == pop3::format_uidl(kDefault, msgs[0].uid, box.uidvalidity, ""));
    const fs::path deleted_file = b.root() / d.get(1)->file;
    const fs::path third_file = b.root() / d.get(3)->file;
    REQUIRE(fs::exists(deleted_file));
    d.mark_deleted(*d.get(1));
    d.get(2)->retrieved = true;
    auto u = d.update();
    CHECK(u.expunge == uids({msgs[0].uid}));
    CHECK(u.seen == uids({msgs[1].uid}));

    // What an IMAP session with INBOX open hears: the expunge, then the \Seen change.
    std::vector<storage::Change> heard;
    auto sub = b.store->bus().subscribe(storage::Store::account_key("alice", "example.org"), "INBOX",
                                        [&](const storage::Change& c) { heard.push_back(c); });
    auto r = b.commit("INBOX", u);
    REQUIRE(r.ok());
    CHECK(*r.value == "");
    REQUIRE(heard.size() == 2);
    CHECK(heard[0].kind == storage::Change::Kind::Expunged);
    CHECK(heard[0].uids == uids({msgs[0].uid}));
    CHECK(heard[1].kind == storage::Change::Kind::FlagsChanged);

    auto [box2, after] = b.snapshot();
    CHECK(box2.uidvalidity == box.uidvalidity);
    REQUIRE(after.size() == 2);
    CHECK(after[0].uid == msgs[1].uid);
    CHECK(after[1].uid == msgs[2].uid);
    CHECK((after[0].flags & storage::kSeen) != 0);
    CHECK(after[0].file.rfind("cur/", 0) == 0);
    CHECK(after[0].file.size() > 4);
    CHECK(after[0].file.substr(after[0].file.size() - 4) == ":2,S");
    CHECK(fs::exists(b.root() / after[0].file));
    CHECK((after[1].flags & storage::kSeen) == 0);  // neither deleted nor retrieved: untouched
    CHECK(after[1].file == msgs[2].file);
    CHECK(fs::exists(third_file));
    CHECK_FALSE(fs::exists(deleted_file));

    // The next session sees the same unique-id for the message kept, though its file moved.
    Maildrop next(box2, after, "%f");
    Maildrop first(box, msgs, "%f");
    CHECK(next.get(1)->uidl == first.get(2)->uidl);
    Maildrop next_default(box2, after, kDefault);
    CHECK(next_default.get(1)->uidl == d.get(2)->uidl);
}

TEST_CASE("maildrop commit: an empty update changes nothing") {
    Bed b;
    REQUIRE(b.append("a\r\n").ok());
    auto [box, msgs] = b.snapshot();
    Maildrop d(box, msgs, kDefault);
    auto u = d.update();
    REQUIRE(u.empty());
    auto r = b.commit("INBOX", u);
    REQUIRE(r.ok());
    CHECK(*r.value == "");
    auto [box2, after] = b.snapshot();
    REQUIRE(after.size() == 1);
    CHECK(after[0].file == msgs[0].file);
    CHECK(after[0].flags == 0);
}

TEST_CASE("maildrop commit: a failed expunge throws; a failed \\Seen only returns its reason") {
    Bed b;
    REQUIRE(b.append("a\r\n").ok());
    Maildrop::Update seen_only;
    seen_only.seen = {1};
    auto r = b.commit("No such box", seen_only);
    REQUIRE(r.ok());
    CHECK_FALSE(r.value->empty());

    Maildrop::Update expunge;
    expunge.expunge = {1};
    auto e = b.commit("No such box", expunge);
    CHECK_FALSE(e.ok());
    auto [box, msgs] = b.snapshot();
    CHECK(msgs.size() == 1);  // INBOX untouched
}
