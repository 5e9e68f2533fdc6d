// The delivery dispatcher against a real Store and queue in a temporary folder: fan-out to
// mailboxes and the outbound queue with DSN kept, HOLD, a HOLD that comes mid-message, partial
// failures (retry and hold copies, or just reported), and a message nobody could take.
#include <catch2/catch.hpp>

#include <asio/io_context.hpp>

#include <filesystem>

#include "delivery/dispatcher.hpp"
#include "storage/store.hpp"
#include "tests/unit/server/test_support.hpp"
#include "tests/unit/test_config.hpp"

using namespace pillarbox;
using delivery::RecipientState;
using storage::queue::Place;
namespace fs = std::filesystem;

namespace {

struct Fixture {
    test::TempDir dir;
    asio::io_context io;
    storage::Store store;
    storage::queue::Queue queue;
    // full: an account (localpart) that is over its quota: one byte allowed.
    explicit Fixture(std::string full = "") : store(io, settings(dir.path, full)), queue(io, dir.path) {}
    static storage::StoreSettings settings(const fs::path& path, std::string full) {
        auto s = test::store_settings(path);
        s.quota_for = [full](const std::string& lp, const std::string&) -> std::optional<storage::Quota> {
            if (lp == full) return storage::Quota{1, 0};
            return std::nullopt;
        };
        return s;
    }
    delivery::Targets targets() { return {&io, &store, &queue}; }
    std::size_t inbox_count(const std::string& lp) {
        std::size_t n = 0;
        std::error_code ec;
        for (auto& sub : {"new", "cur"})
            for (auto& e : fs::directory_iterator(dir.path / "mail" / "example.org" / lp / sub, ec)) (void)e, ++n;
        return n;
    }
    delivery::Result run(std::shared_ptr<delivery::Dispatcher> d, delivery::PartialFailures p, const std::string& body) {
        delivery::Result out;
        bool called = false;
        d->body(body);
        d->commit(p, [&](delivery::Result r) {
            out = std::move(r);
            called = true;
        });
        // Until the answer (not until the loop runs out of work: a target's clean-up after the
        // HOLD restart may leave the loop idle for a moment while the queue commit is queued).
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!called && std::chrono::steady_clock::now() < deadline) {
            if (io.stopped()) io.restart();
            io.run_one_for(std::chrono::milliseconds(100));
        }
        io.restart();
        REQUIRE(called);
        return out;
    }
};

delivery::Message message(std::vector<delivery::Recipient> rcpts, bool hold = false) {
    delivery::Message m;
    m.queue_id = "ABCDEF0123";
    m.service = "test";
    m.envelope.sender = "sender@example.net";
    m.envelope.ret = "HDRS";
    m.recipients = std::move(rcpts);
    m.hold = hold;
    return m;
}

delivery::Recipient local(std::string address, std::vector<std::string> accounts) {
    delivery::Recipient r;
    r.address = std::move(address);
    r.accounts = std::move(accounts);
    return r;
}

delivery::Recipient remote(std::string address, unsigned notify = 0, std::string orcpt = "") {
    delivery::Recipient r;
    r.address = address;
    r.remote = {address};
    r.dsn.notify = notify;
    r.dsn.orcpt = std::move(orcpt);
    return r;
}

const std::string kBody = "Subject: test\r\n\r\nhello\r\n";

}  // namespace

TEST_CASE("dispatcher fans out to mailboxes and the outbound queue, DSN kept", "[dispatcher]") {
    Fixture f;
    auto d = delivery::Dispatcher::create(
        f.targets(), message({local("team@example.org", {"alice@example.org", "bob@example.org"}),
                              remote("carol@remote.example", storage::queue::notify::failure, "rfc822;carol@remote.example"),
                              local("bob@example.org", {"bob@example.org"})}));
    REQUIRE(d->open());
    auto r = f.run(d, delivery::PartialFailures::QueueCopies, kBody);
    CHECK(r.accepted);
    CHECK(r.accounts == std::vector<std::string>{"alice@example.org", "bob@example.org"});  // bob once
    CHECK(r.recipients == std::vector<RecipientState>{RecipientState::Delivered, RecipientState::Delivered, RecipientState::Delivered});
    CHECK(f.inbox_count("alice") == 1);
    CHECK(f.inbox_count("bob") == 1);
    auto ids = f.queue.list();
    REQUIRE(ids.size() == 1);
    auto env = f.queue.read_envelope(ids[0]);
    REQUIRE(env);
    CHECK(env->sender == "sender@example.net");
    CHECK(env->ret == "HDRS");
    REQUIRE(env->recipients.size() == 1);
    CHECK(env->recipients[0].address == "carol@remote.example");
    CHECK(env->recipients[0].notify == storage::queue::notify::failure);
    CHECK(env->recipients[0].orcpt == "rfc822;carol@remote.example");
    CHECK(test::read_file(f.queue.message_path(ids[0])) == kBody);
}

TEST_CASE("dispatcher puts a held message in the hold queue with the recipients as given", "[dispatcher]") {
    Fixture f;
    auto d = delivery::Dispatcher::create(f.targets(), message({local("team@example.org", {"alice@example.org"}),
                                                                remote("carol@remote.example")},
                                                               true));
    REQUIRE(d->open());
    CHECK(d->held());
    auto r = f.run(d, delivery::PartialFailures::QueueCopies, kBody);
    CHECK(r.accepted);
    CHECK(f.inbox_count("alice") == 0);
    CHECK(f.queue.list().empty());
    auto held = f.queue.list(Place::Hold);
    REQUIRE(held.size() == 1);
    auto env = f.queue.read_envelope(held[0], Place::Hold);
    REQUIRE(env);
    REQUIRE(env->recipients.size() == 2);
    CHECK(env->recipients[0].address == "team@example.org");
    CHECK(env->recipients[1].address == "carol@remote.example");
}

TEST_CASE("dispatcher starts over into the hold queue when HOLD comes mid-message", "[dispatcher]") {
    Fixture f;
    auto d = delivery::Dispatcher::create(f.targets(), message({local("alice@example.org", {"alice@example.org"})}));
    REQUIRE(d->open());
    d->body("Received: by us\r\n");
    REQUIRE(d->hold_now());
    CHECK(d->held());
    d->body("Received: by us\r\n");  // what the caller had sent, again
    auto r = f.run(d, delivery::PartialFailures::QueueCopies, kBody);
    CHECK(r.accepted);
    CHECK(f.inbox_count("alice") == 0);
    auto held = f.queue.list(Place::Hold);
    REQUIRE(held.size() == 1);
    CHECK(test::read_file(f.queue.message_path(held[0], Place::Hold)) == "Received: by us\r\n" + kBody);
}

TEST_CASE("dispatcher gives a recipient over quota a hold copy before accepting the message", "[dispatcher]") {
    Fixture f("bob");
    auto t = f.targets();
    auto d = delivery::Dispatcher::create(t, message({local("alice@example.org", {"alice@example.org"}),
                                                      local("bob@example.org", {"bob@example.org"})}));
    REQUIRE(d->open());
    auto r = f.run(d, delivery::PartialFailures::QueueCopies, kBody);
    CHECK(r.accepted);
    CHECK(r.recipients == std::vector<RecipientState>{RecipientState::Delivered, RecipientState::Permanent});
    auto held = f.queue.list(Place::Hold);
    REQUIRE(held.size() == 1);
    auto env = f.queue.read_envelope(held[0], Place::Hold);
    REQUIRE(env);
    REQUIRE(env->recipients.size() == 1);
    CHECK(env->recipients[0].address == "bob@example.org");
    CHECK(env->reason.rfind("5.2.2 mailbox full", 0) == 0);
    CHECK(test::read_file(f.queue.message_path(held[0], Place::Hold)) == kBody);  // without our Return-Path
}

TEST_CASE("dispatcher reports partial failures without copies when asked to", "[dispatcher]") {
    Fixture f("bob");
    auto t = f.targets();
    auto d = delivery::Dispatcher::create(t, message({local("alice@example.org", {"alice@example.org"}),
                                                      local("bob@example.org", {"bob@example.org"})}));
    REQUIRE(d->open());
    auto r = f.run(d, delivery::PartialFailures::Report, kBody);
    CHECK(r.recipients == std::vector<RecipientState>{RecipientState::Delivered, RecipientState::Permanent});
    REQUIRE(r.local.size() == 2);
    CHECK(r.local[1].over_quota);
    CHECK(f.queue.list(Place::Hold).empty());
    CHECK(f.queue.list(Place::Incoming).empty());
}

TEST_CASE("dispatcher refuses a message nobody could take", "[dispatcher]") {
    Fixture f("bob");
    auto t = f.targets();
    auto d = delivery::Dispatcher::create(t, message({local("bob@example.org", {"bob@example.org"})}));
    REQUIRE(d->open());
    auto r = f.run(d, delivery::PartialFailures::QueueCopies, kBody);
    CHECK(!r.accepted);
    CHECK(r.refusal == "552 5.2.2 Error: mailbox full");
    CHECK(f.queue.list(Place::Hold).empty());
}

TEST_CASE("dispatcher can't open without the targets its recipients need", "[dispatcher]") {
    asio::io_context io;
    auto d = delivery::Dispatcher::create({&io, nullptr, nullptr}, message({remote("carol@remote.example")}));
    CHECK(!d->open());
    auto e = delivery::Dispatcher::create({&io, nullptr, nullptr}, message({local("a@example.org", {"a@example.org"})}));
    CHECK(!e->open());
}
