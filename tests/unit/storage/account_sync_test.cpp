// Recovery and external changes: files added, removed or renamed behind the store's back, an
// index deleted or corrupted, a crash between rename and index commit. The index converges on
// the Maildir and UIDs and UIDVALIDITY survive.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "storage/account.hpp"
#include "storage/index/sqlite.hpp"
#include "tests/unit/server/test_support.hpp"

using namespace pillarbox::storage;
namespace fs = std::filesystem;

namespace {

struct Fixture {
    pillarbox::test::TempDir tmp;
    fs::path root = tmp.path / "mail" / "example.org" / "alice";
    int counter = 0;

    std::unique_ptr<Account> open() { return Account::open(root); }

    // Delivers through add_messages, the way the store does.
    std::uint32_t add(Account& a, const std::string& text, std::uint32_t flags = 0) {
        NewMessage m;
        m.base = fmt::format("1700000000.M{}P1Q1.test", ++counter);
        m.tmp_path = (root / "tmp" / m.base).string();
        std::ofstream(m.tmp_path, std::ios::binary) << text;
        m.size = text.size();
        m.rfc822_size = text.size();
        m.internal_date = 1700000000;
        m.flags = flags;
        std::vector<NewMessage> v{m};
        return a.add_messages("INBOX", v)[0];
    }

    // uid -> base, read straight from the index file.
    std::map<std::uint32_t, std::string> rows() {
        pillarbox::storage::sqlite::Db db((root / "pillarbox.index").string());
        auto st = db.prepare("SELECT uid, base FROM message m JOIN mailbox b ON b.id = m.mailbox_id WHERE b.name = 'INBOX'");
        std::map<std::uint32_t, std::string> out;
        while (st.step()) out[static_cast<std::uint32_t>(st.int64(0))] = st.text(1);
        return out;
    }

    fs::path file_of(std::uint32_t uid) {
        for (const char* sub : {"new", "cur"})
            for (auto& e : fs::directory_iterator(root / sub))
                for (auto end : {":", ""}) {
                    auto name = e.path().filename().string();
                    auto tag = fmt::format(",U={}{}", uid, end);
                    if (*end ? name.find(tag) != std::string::npos : name.size() >= tag.size() && name.ends_with(tag)) return e.path();
                }
        return {};
    }
};

}  // namespace

TEST_CASE("a file another program delivers into new/ is indexed with the next UID and a U= name") {
    Fixture f;
    {
        auto a = f.open();
        f.add(*a, "Subject: 1\r\n\r\n1\r\n");
        f.add(*a, "Subject: 2\r\n\r\n2\r\n");
    }
    std::ofstream(f.root / "new" / "1700000999.external.host", std::ios::binary) << "Subject: ext\n\nbare lf\n";
    auto a = f.open();
    auto inbox = a->mailbox("INBOX");
    CHECK(inbox.uidnext == 4);
    CHECK(f.rows()[3] == "1700000999.external.host");
    auto p = f.file_of(3);
    REQUIRE_FALSE(p.empty());
    CHECK(p.filename().string() == "1700000999.external.host,S=22,W=25,U=3");
}

TEST_CASE("files removed outside are expunged with a MODSEQ; flag changes in names are taken over") {
    Fixture f;
    std::uint64_t modseq_before;
    {
        auto a = f.open();
        f.add(*a, "a\r\n");
        f.add(*a, "b\r\n");
        modseq_before = a->mailbox("INBOX").highestmodseq;
    }
    fs::remove(f.file_of(1));
    auto p2 = f.file_of(2);
    fs::rename(p2, f.root / "cur" / (p2.filename().string().substr(0, p2.filename().string().find(":2,")) + ":2,FS"));
    auto a = f.open();
    CHECK(f.rows().count(1) == 0);
    CHECK(a->mailbox("INBOX").highestmodseq == modseq_before + 2);
    pillarbox::storage::sqlite::Db db((f.root / "pillarbox.index").string());
    auto st = db.prepare("SELECT uid, modseq FROM expunged");
    REQUIRE(st.step());
    CHECK(st.int64(0) == 1);
    auto fl = db.prepare("SELECT flags, file FROM message WHERE uid = 2");
    REQUIRE(fl.step());
    CHECK(fl.int64(0) == (kSeen | kFlagged));
    CHECK(fl.text(1).rfind("cur/", 0) == 0);
}

TEST_CASE("a deleted index is rebuilt with the same UIDs and UIDVALIDITY") {
    Fixture f;
    std::uint32_t uidvalidity;
    std::map<std::uint32_t, std::string> before;
    {
        auto a = f.open();
        for (int i = 0; i < 5; ++i) f.add(*a, fmt::format("m{}\r\n", i));
        a->expunge("INBOX", {5});  // the highest UID is gone: the rebuild must not hand it out again
        uidvalidity = a->mailbox("INBOX").uidvalidity;
        before = f.rows();
    }
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f.root / (std::string("pillarbox.index") + suffix));
    auto a = f.open();
    CHECK(f.rows() == before);
    auto inbox = a->mailbox("INBOX");
    CHECK(inbox.uidvalidity == uidvalidity);
    CHECK(inbox.uidnext == 6);
    CHECK(f.add(*a, "next\r\n") == 6);
    CHECK(a->mailbox("Sent").special_use == "\\Sent");
}

TEST_CASE("the UIDNEXT floor is raised only when an expunge takes the highest UIDs") {
    Fixture f;
    {
        auto a = f.open();
        for (int i = 0; i < 5; ++i) f.add(*a, fmt::format("m{}\r\n", i));
        const auto floor_before = read_uid_file(f.root)->uidnext_floor;
        a->expunge("INBOX", {2});  // U=5 still tells a rebuild UIDNEXT 6: no write
        CHECK(read_uid_file(f.root)->uidnext_floor == floor_before);
        a->expunge("INBOX", {5, 4});
        CHECK(read_uid_file(f.root)->uidnext_floor == 6);
        CHECK(f.add(*a, "m5\r\n") == 6);
        a->expunge("INBOX", {3});
        CHECK(read_uid_file(f.root)->uidnext_floor == 6);
        a->expunge("INBOX", {6, 1});  // the mailbox is empty now
        CHECK(read_uid_file(f.root)->uidnext_floor == 7);
    }
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f.root / (std::string("pillarbox.index") + suffix));
    auto a = f.open();
    CHECK(a->mailbox("INBOX").uidnext == 7);
}

TEST_CASE("a corrupt index is set aside and rebuilt") {
    Fixture f;
    {
        auto a = f.open();
        f.add(*a, "x\r\n");
    }
    for (const char* suffix : {"-wal", "-shm"}) fs::remove(f.root / (std::string("pillarbox.index") + suffix));
    std::ofstream(f.root / "pillarbox.index", std::ios::binary | std::ios::trunc) << std::string(8192, 'Z');
    auto a = f.open();
    CHECK(f.rows().size() == 1);
    bool aside = false;
    for (auto& e : fs::directory_iterator(f.root)) aside |= e.path().filename().string().rfind("pillarbox.index.corrupt-", 0) == 0;
    CHECK(aside);
}

TEST_CASE("an index that can't be opened for want of file descriptors stays where it is") {
    Fixture f;
    {
        auto a = f.open();
        f.add(*a, "x\r\n");
    }
    // No descriptor left below the limit: what 6,000 open accounts did to the 6,001st before.
    rlimit saved{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
    int lowest_free = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(lowest_free >= 0);
    ::close(lowest_free);
    rlimit tight = saved;
    tight.rlim_cur = static_cast<rlim_t>(lowest_free);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &tight) == 0);
    bool threw = false;
    try {
        f.open();
    } catch (const std::exception&) {
        threw = true;
    }
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
    CHECK(threw);
    bool aside = false;
    for (auto& e : fs::directory_iterator(f.root)) aside |= e.path().filename().string().rfind("pillarbox.index.corrupt-", 0) == 0;
    CHECK_FALSE(aside);
    auto a = f.open();
    CHECK(f.rows().size() == 1);
}

TEST_CASE("a message renamed into place before a crash keeps its UID; later UIDs don't collide") {
    Fixture f;
    {
        auto a = f.open();
        f.add(*a, "one\r\n");
    }
    // What a crash between the rename and the index commit leaves: a U= at UIDNEXT, unindexed.
    std::ofstream(f.root / "new" / "1700000500.M1P9Q9.test,S=5,W=5,U=2:2,", std::ios::binary) << "two\r\n";
    auto a = f.open();
    CHECK(f.rows()[2] == "1700000500.M1P9Q9.test");
    CHECK(f.add(*a, "three\r\n") == 3);
}

TEST_CASE("a copied-in file with a stale U= gets a fresh UID") {
    Fixture f;
    {
        auto a = f.open();
        f.add(*a, "one\r\n");
        f.add(*a, "two\r\n");
    }
    std::ofstream(f.root / "cur" / "1600000000.M1P1Q1.other,S=4,W=4,U=1:2,S", std::ios::binary) << "old\r\n";
    auto a = f.open();
    auto r = f.rows();
    CHECK(r.size() == 3);
    CHECK(r[3] == "1600000000.M1P1Q1.other");
    CHECK(r[1] != "1600000000.M1P1Q1.other");
}
