// Store: account layout, durable delivery with group commit, abort, per-recipient failures.
#include <catch2/catch.hpp>

#include <asio/io_context.hpp>
#include <fmt/format.h>
#include <set>
#include <filesystem>
#include <fstream>

#include "protocols/common/message_parser.hpp"
#include "storage/account.hpp"
#include "storage/index/schema.hpp"
#include "storage/index/sqlite.hpp"
#include "storage/store.hpp"
#include "tests/unit/server/test_support.hpp"
#include "tests/unit/storage/store_support.hpp"
#include "tests/unit/test_config.hpp"

using namespace pillarbox;
using namespace pillarbox::storage;
namespace fs = std::filesystem;

namespace {

using test::read_file;

std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

// Delivers one message and runs the loop until the commit callback. The body goes in chunks of
// `chunk` bytes (0: whole); without added headers there is no Return-Path or Delivered-To.
std::vector<RecipientResult> deliver(asio::io_context& io, Store& store, std::vector<std::pair<std::string, std::string>> rcpts,
                                     const std::string& body, std::size_t chunk = 0, bool added_headers = true) {
    std::vector<RecipientResult> out;
    auto d = store.delivery();
    d->start(added_headers ? "sender@example.net" : "", added_headers);
    for (auto& [lp, dom] : rcpts) d->add_recipient(lp, dom, added_headers ? lp + "@" + dom : "");
    if (chunk == 0) chunk = std::max<std::size_t>(body.size(), 1);
    for (std::size_t off = 0; off < body.size(); off += chunk) d->body(std::string_view(body).substr(off, chunk));
    d->commit([&](std::vector<RecipientResult> r) { out = std::move(r); });
    io.run();
    io.restart();
    return out;
}

}  // namespace

TEST_CASE("a new account gets a Maildir++ tree with the special-use folders") {
    test::TempDir dir;
    asio::io_context io;
    Store store(io, test::store_settings(dir.path));
    std::vector<MailboxInfo> boxes;
    std::string err = "not run";
    store.with_account("alice", "example.org", [&](Account& a) { boxes = a.mailboxes(); }, [&](std::string e) { err = e; });
    io.run();
    REQUIRE(err.empty());
    auto root = dir.path / "mail" / "example.org" / "alice";
    for (auto sub : {"cur", "new", "tmp", ".Sent/cur", ".Drafts/new", ".Trash/tmp", ".Junk/cur", ".Archive/cur"})
        CHECK(fs::is_directory(root / sub));
    CHECK(fs::exists(root / ".Sent" / "maildirfolder"));
    REQUIRE(boxes.size() == 6);
    std::map<std::string, std::string> uses;
    for (auto& b : boxes) uses[b.name] = b.special_use;
    CHECK(uses["INBOX"] == "");
    CHECK(uses["Sent"] == "\\Sent");
    CHECK(uses["Drafts"] == "\\Drafts");
    CHECK(uses["Trash"] == "\\Trash");
    CHECK(uses["Junk"] == "\\Junk");
    CHECK(uses["Archive"] == "\\Archive");
}

TEST_CASE("delivery writes one copy per account with its own Delivered-To, then indexes it") {
    test::TempDir dir;
    asio::io_context io;
    Store store(io, test::store_settings(dir.path));
    std::string body = "Subject: hi\r\n\r\nline one\r\nbare lf\nend\r\n";
    auto res = deliver(io, store, {{"alice", "example.org"}, {"bob", "example.org"}}, body);
    REQUIRE(res.size() == 2);
    CHECK(res[0].ok);
    CHECK(res[1].ok);
    CHECK(res[0].uid == 1);
    CHECK(res[1].uid == 1);
    for (const char* who : {"alice", "bob"}) {
        auto root = dir.path / "mail" / "example.org" / who;
        auto files = files_in(root / "new");
        REQUIRE(files.size() == 1);
        std::string expect = fmt::format("Return-Path: <sender@example.net>\r\nDelivered-To: {}@example.org\r\n{}", who, body);
        CHECK(read_file(files[0]) == expect);
        auto name = files[0].filename().string();
        CHECK_THAT(name, Catch::Contains(fmt::format(",S={},W={},U=1:2,", expect.size(), expect.size() + 1)));
        CHECK(files_in(root / "tmp").empty());
    }
    // a second delivery gets the next UID
    auto again = deliver(io, store, {{"alice", "example.org"}}, "Subject: 2\r\n\r\nx\r\n");
    REQUIRE(again.size() == 1);
    CHECK(again[0].uid == 2);
    MailboxInfo inbox;
    store.with_account("alice", "example.org", [&](Account& a) { inbox = a.mailbox("INBOX"); }, [](std::string) {});
    io.run();
    CHECK(inbox.uidnext == 3);
    CHECK(inbox.highestmodseq == 3);
}

TEST_CASE("W= counts every bare LF however the body is cut into chunks") {
    // A bare LF at a chunk's start, a CRLF cut between its CR and LF, LF LF, and one at the end.
    const std::string body = "Subject: w\r\n\r\na\nb\r\nc\n\nd\r\ne\n";
    const std::size_t bare = 4;
    for (std::size_t cut : {1, 2, 3, 7, 16, 19, 20, 21, 25}) {
        test::TempDir dir;
        asio::io_context io;
        Store store(io, test::store_settings(dir.path));
        auto out = deliver(io, store, {{"alice", "example.org"}}, body, cut, false);
        REQUIRE(out.size() == 1);
        REQUIRE(out[0].ok);
        auto files = files_in(dir.path / "mail" / "example.org" / "alice" / "new");
        REQUIRE(files.size() == 1);
        INFO("chunks of " << cut);
        CHECK_THAT(files[0].filename().string(), Catch::Contains(fmt::format(",S={},W={},", body.size(), body.size() + bare)));
    }
}

TEST_CASE("large bodies are streamed in chunks and arrive intact") {
    test::TempDir dir;
    asio::io_context io;
    Store store(io, test::store_settings(dir.path));
    std::string body = "Subject: big\r\n\r\n";
    for (int i = 0; i < 20000; ++i) body += fmt::format("line {:06d} of a big message body\r\n", i);
    std::vector<RecipientResult> res;
    auto d = store.delivery();
    d->start("", false);
    d->add_recipient("alice", "example.org", "");
    std::size_t most = 0;
    for (std::size_t off = 0; off < body.size(); off += 1000) {
        d->body(std::string_view(body).substr(off, 1000));
        most = std::max(most, d->buffered());
        // What a session does: stop feeding above a limit until the writes catch up.
        bool drained = d->buffered() < 256 * 1024;
        if (!drained) d->on_drained([&] { drained = true; });
        while (!drained) {
            if (io.stopped()) io.restart();  // the test loop runs out of work between writes; a server loop never does
            io.run_one();
        }
    }
    CHECK(most < 256 * 1024 + 64 * 1024 + 1000);  // memory stays bounded whatever the size
    d->commit([&](std::vector<RecipientResult> r) { res = std::move(r); });
    io.restart();
    io.run();
    REQUIRE(res.size() == 1);
    CHECK(res[0].ok);
    auto files = files_in(dir.path / "mail" / "example.org" / "alice" / "new");
    REQUIRE(files.size() == 1);
    CHECK(read_file(files[0]) == body);
}

TEST_CASE("abort and a dropped delivery leave no file behind") {
    test::TempDir dir;
    asio::io_context io;
    Store store(io, test::store_settings(dir.path));
    {
        auto d = store.delivery();
        d->start("", false);
        d->add_recipient("alice", "example.org", "");
        d->body(std::string(200 * 1024, 'x'));
        d->abort();
    }
    {
        auto d = store.delivery();
        d->add_recipient("alice", "example.org", "");
        d->body(std::string(100 * 1024, 'y'));
    }  // dropped without commit
    io.run();
    auto root = dir.path / "mail" / "example.org" / "alice";
    CHECK(files_in(root / "tmp").empty());
    CHECK(files_in(root / "new").empty());
}

TEST_CASE("a recipient with an invalid mailbox name fails alone, permanently, and creates nothing") {
    test::TempDir dir;
    asio::io_context io;
    Store store(io, test::store_settings(dir.path));
    // ".." made DATA/mail/tmp and ".hidden" DATA/mail/example.org/.hidden/tmp before the check,
    // and both failed temporarily: 451 at every retry.
    auto res = deliver(io, store, {{"alice", "example.org"}, {"..", "example.org"}, {".hidden", "example.org"}, {"bob", ".."}},
                       "Subject: x\r\n\r\nx\r\n");
    REQUIRE(res.size() == 4);
    CHECK(res[0].ok);
    for (std::size_t i = 1; i < res.size(); ++i) {
        CHECK_FALSE(res[i].ok);
        CHECK_FALSE(res[i].temporary);
        CHECK(res[i].reason.find("invalid mailbox name") != std::string::npos);
    }
    CHECK_FALSE(fs::exists(dir.path / "mail" / "tmp"));
    CHECK_FALSE(fs::exists(dir.path / "mail" / "example.org" / ".hidden"));
    CHECK_FALSE(fs::exists(dir.path / "tmp"));
    CHECK(files_in(dir.path / "mail" / "example.org") == std::vector<fs::path>{dir.path / "mail" / "example.org" / "alice"});
    auto appended = test::append_text(io, store, {"..", "example.org"}, "INBOX", "Subject: x\r\n\r\nx\r\n");
    CHECK_FALSE(appended.ok());
    CHECK(appended.error == StoreError::Kind::Invalid);
    CHECK_FALSE(fs::exists(dir.path / "mail" / "tmp"));
}

TEST_CASE("concurrent deliveries share commits and get distinct UIDs in order") {
    test::TempDir dir;
    asio::io_context io;
    Store store(io, test::store_settings(dir.path));
    const int n = 64;
    std::vector<std::unique_ptr<DeliveryTarget>> ds;
    std::vector<std::uint32_t> uids;
    for (int i = 0; i < n; ++i) {
        auto d = store.delivery();
        d->add_recipient("alice", "example.org", "");
        d->body(fmt::format("Message-ID: <{}@test>\r\n\r\nbody {}\r\n", i, i));
        d->commit([&](std::vector<RecipientResult> r) {
            REQUIRE(r.size() == 1);
            CHECK(r[0].ok);
            uids.push_back(r[0].uid);
        });
        ds.push_back(std::move(d));
    }
    io.run();
    REQUIRE(uids.size() == static_cast<std::size_t>(n));
    std::set<std::uint32_t> distinct(uids.begin(), uids.end());
    CHECK(distinct.size() == static_cast<std::size_t>(n));
    CHECK(*distinct.begin() == 1);
    CHECK(*distinct.rbegin() == static_cast<std::uint32_t>(n));
    CHECK(files_in(dir.path / "mail" / "example.org" / "alice" / "new").size() == static_cast<std::size_t>(n));
}

TEST_CASE("with a parser, deliveries and appends arrive with their parse cache filled") {
    test::TempDir dir;
    asio::io_context io;
    auto settings = test::store_settings(dir.path);
    settings.parse = [](std::string_view m) { return mime::to_json(mime::parse_message(m)); };
    settings.parse_at_delivery = true;
    Store store(io, settings);
    auto res = deliver(io, store, {{"alice", "example.org"}}, "Subject: cached\r\nFrom: a@b.example\r\n\r\nbody\r\n");
    REQUIRE(res.at(0).ok);
    std::string blob;
    store.with_account("alice", "example.org", [&](Account& a) { blob = a.parsed("INBOX", 1); }, [](std::string) {});
    io.restart();
    io.run();
    auto parsed = mime::from_json(blob);
    REQUIRE(parsed);
    REQUIRE(parsed->envelope.subject);
    CHECK(*parsed->envelope.subject == "cached");
    // the header block starts after the Return-Path and Delivered-To lines the store added
    CHECK(parsed->headers.front().name == "Return-Path");
}

TEST_CASE("store settings come from pillarbox.conf") {
    std::vector<config::Diagnostic> diags;
    auto c = config::Config::parse("data_directory = /srv/mail\nmyhostname = mx.example.org\nworker_threads = 3\n"
                                   "mailbox_size_limit = 2G\nmailbox_message_limit = 50000\nquota_full_tempfail = yes\n"
                                   "open_accounts_limit = 7\n",
                                   "t.conf", config::Environment{false, "h.example"}, diags);
    REQUIRE(diags.empty());
    auto s = StoreSettings::from(c);
    CHECK(s.data_directory == "/srv/mail");
    CHECK(s.hostname == "mx.example.org");
    CHECK(s.io_threads == 3);
    CHECK(s.quota.max_bytes == 2ull * 1024 * 1024 * 1024);
    CHECK(s.quota.max_messages == 50000);
    CHECK(s.quota_full_tempfail);
    CHECK(s.open_accounts_limit == 7);
    auto d = StoreSettings::from(config::Config::defaults(config::Environment{false, "h.example"}));
    CHECK(d.quota.max_bytes == 0);
    CHECK_FALSE(d.quota_full_tempfail);
    CHECK(d.open_accounts_limit == 256);
}

TEST_CASE("past open_accounts_limit the least recently used account is closed, and opens again on its next write") {
    test::TempDir dir;
    asio::io_context io;
    auto settings = test::store_settings(dir.path);
    settings.open_accounts_limit = 2;
    settings.writer_threads = 1;  // one writer keeps them all: its share is the whole limit
    Store store(io, settings);
    // An account's index says clean_shutdown=1 only while the store has it closed.
    auto closed = [&](const std::string& localpart) {
        sqlite::Db db((store.account_root(localpart, "example.org") / "pillarbox.index").string(), sqlite::Db::Mode::ReadOnly);
        return index::meta(db, "clean_shutdown") == "1";
    };
    for (auto who : {"alice", "bob"}) REQUIRE(deliver(io, store, {{who, "example.org"}}, "Subject: 1\r\n\r\nx\r\n")[0].ok);
    CHECK_FALSE(closed("alice"));
    CHECK_FALSE(closed("bob"));
    REQUIRE(deliver(io, store, {{"carol", "example.org"}}, "Subject: 1\r\n\r\nx\r\n")[0].ok);
    CHECK(closed("alice"));
    CHECK_FALSE(closed("bob"));
    CHECK_FALSE(closed("carol"));
    // A flag change to bob keeps him the more recent one; alice's next delivery closes carol.
    std::string err = "not run";
    store.with_account("bob", "example.org", [](Account& a) { a.set_flags("INBOX", {1}, FlagOp::Add, kSeen); },
                       [&](std::string e) { err = e; });
    io.run();
    io.restart();
    REQUIRE(err.empty());
    auto again = deliver(io, store, {{"alice", "example.org"}}, "Subject: 2\r\n\r\ny\r\n");
    REQUIRE(again[0].ok);
    CHECK(again[0].uid == 2);
    CHECK_FALSE(closed("alice"));
    CHECK_FALSE(closed("bob"));
    CHECK(closed("carol"));
}

TEST_CASE("quota_full_tempfail makes over quota temporary") {
    test::TempDir dir;
    asio::io_context io;
    auto settings = test::store_settings(dir.path);
    settings.quota.max_messages = 1;
    settings.quota_full_tempfail = true;
    Store store(io, settings);
    CHECK(deliver(io, store, {{"alice", "example.org"}}, "a\r\n").at(0).ok);
    auto r = deliver(io, store, {{"alice", "example.org"}}, "b\r\n").at(0);
    CHECK_FALSE(r.ok);
    CHECK(r.over_quota);
    CHECK(r.temporary);
}

TEST_CASE("a delivery keeps the message readable for queue copies, without the headers it added") {
    test::TempDir dir;
    asio::io_context io;
    auto settings = test::store_settings(dir.path);
    settings.quota.max_messages = 1;
    Store store(io, settings);
    REQUIRE(deliver(io, store, {{"full", "example.org"}}, "first\r\n").at(0).ok);
    std::string body = "Subject: partial\r\n\r\n" + std::string(200000, 'x') + "\r\n";
    auto d = store.delivery();
    d->start("sender@example.net", true);
    d->add_recipient("full", "example.org", "full@example.org");  // over quota: its file is discarded
    d->add_recipient("room", "example.org", "room@example.org");
    for (std::size_t off = 0; off < body.size(); off += 7000) d->body(std::string_view(body).substr(off, 7000));
    std::vector<RecipientResult> res;
    d->commit([&](std::vector<RecipientResult> r) { res = std::move(r); });
    io.run();
    io.restart();
    REQUIRE(res.size() == 2);
    CHECK_FALSE(res[0].ok);
    CHECK(res[0].over_quota);
    CHECK(res[1].ok);
    auto src = d->copy_source();
    REQUIRE(src);
    REQUIRE(src->fd >= 0);
    std::string got(src->length, '\0');
    REQUIRE(::pread(src->fd, got.data(), got.size(), static_cast<off_t>(src->offset)) == static_cast<ssize_t>(got.size()));
    CHECK(got == body);
}

TEST_CASE("the store tells RCPT what its last delivery saw of an account's quota") {
    test::TempDir dir;
    asio::io_context io;
    auto settings = test::store_settings(dir.path);
    settings.quota.max_messages = 2;
    settings.quota.max_bytes = 100000;
    Store store(io, settings);
    CHECK_FALSE(store.known_usage("alice", "example.org"));  // nothing delivered yet: not known
    REQUIRE(deliver(io, store, {{"alice", "example.org"}}, "a\r\n").at(0).ok);
    auto k = store.known_usage("alice", "example.org");
    REQUIRE(k);
    CHECK(k->usage.messages == 1);
    CHECK(k->quota.max_messages == 2);
    CHECK_FALSE(quota_full(k->usage, k->quota, 0));
    REQUIRE(deliver(io, store, {{"alice", "example.org"}}, "b\r\n").at(0).ok);
    k = store.known_usage("alice", "example.org");
    REQUIRE(k);
    CHECK(k->usage.messages == 2);
    CHECK(quota_full(k->usage, k->quota, 0));
    CHECK_FALSE(deliver(io, store, {{"alice", "example.org"}}, "c\r\n").at(0).ok);
    REQUIRE(store.known_usage("alice", "example.org"));  // an over-quota failure knows it too
    CHECK(store.known_usage("alice", "example.org")->usage.messages == 2);

    SECTION("any other change to the account makes it unknown (an expunge frees room)") {
        Outcome<bool> o;
        store.run<bool>("alice", "example.org", [](Account& a) { return a.snapshot("INBOX").size() == 2; },
                        [&](Outcome<bool> r) { o = std::move(r); });
        io.run();
        io.restart();
        CHECK(o.ok());
        CHECK_FALSE(store.known_usage("alice", "example.org"));
    }
    SECTION("without a quota there is nothing to tell") {
        CHECK_FALSE(store.known_usage("bob", "example.org"));
    }
}

TEST_CASE("quota_full: the message count, the bytes, and SIZE=") {
    Quota q;
    CHECK_FALSE(quota_full({1000000, 1000000}, q, 5000000));  // no limits
    q.max_messages = 3;
    CHECK_FALSE(quota_full({0, 2}, q, 0));
    CHECK(quota_full({0, 3}, q, 0));
    q = {};
    q.max_bytes = 1000;
    CHECK_FALSE(quota_full({999, 0}, q, 0));  // size not known: a message may still fit
    CHECK(quota_full({1000, 0}, q, 0));
    CHECK_FALSE(quota_full({400, 0}, q, 600));
    CHECK(quota_full({400, 0}, q, 601));    // SIZE= says it won't fit
}
