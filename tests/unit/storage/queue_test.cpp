// Outbound queue: streaming writes, durable commit, envelope JSON, abort, recovery, disk full,
// and a kill -9 right after the commit callback.
#include <catch2/catch.hpp>

#include <asio/io_context.hpp>
#include <fmt/format.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "server/loop_guard.hpp"
#include "storage/queue/queue.hpp"
#include "storage/message_file.hpp"
#include "tests/unit/server/test_support.hpp"

using namespace pillarbox;
using namespace pillarbox::storage::queue;
namespace fs = std::filesystem;

namespace {

using test::read_file;

void write_file(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
}

std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

// Runs the loop as the loop thread, so a blocking call made on it is counted.
void run(asio::io_context& io) {
    mark_loop_thread(true);
    io.run();
    mark_loop_thread(false);
    io.restart();
}

Envelope sample_envelope() {
    Envelope e;
    e.sender = "alice@example.org";
    e.recipients = {{"bob@example.net", notify::success | notify::failure, "rfc822;bob@example.net"},
                    {"carol@example.com", 0, ""},
                    {"dave@example.com", notify::never, ""}};
    e.ret = "HDRS";
    e.envid = "QQ314159";
    e.smtputf8 = true;
    e.eightbit = true;
    e.requiretls = true;
    e.client_ip = "192.0.2.7";
    e.helo = "client.example.org";
    e.sasl_user = "alice";
    return e;
}

// A message of about size bytes whose content depends on n.
std::string make_body(int n, std::size_t size) {
    std::string b = fmt::format("Received: from client.example.org\r\nSubject: message {}\r\n\r\n", n);
    while (b.size() < size) b += fmt::format("line {:06d} of message {} \xe2\x9c\x93\r\n", b.size(), n);
    return b;
}

struct Result {
    bool called = false, ok = false;
    std::string text;  // queue id or reason
};

// Writes one message in chunks and runs the loop until the commit callback.
Result enqueue(asio::io_context& io, Queue& q, Envelope env, const std::string& body, std::size_t chunk = 1000,
               Place where = Place::Messages) {
    Result r;
    auto w = q.writer(where);
    w->start(std::move(env));
    for (std::size_t off = 0; off < body.size(); off += chunk) w->body(std::string_view(body).substr(off, chunk));
    w->commit([&](bool ok, std::string text) { r = {true, ok, std::move(text)}; });
    run(io);
    return r;
}

bool same_envelope(const Envelope& a, const Envelope& b) {
    auto rcpts_equal = std::equal(a.recipients.begin(), a.recipients.end(), b.recipients.begin(), b.recipients.end(),
                                  [](const Recipient& x, const Recipient& y) {
                                      return x.address == y.address && x.notify == y.notify && x.orcpt == y.orcpt;
                                  });
    return rcpts_equal && a.sender == b.sender && a.ret == b.ret && a.envid == b.envid && a.smtputf8 == b.smtputf8 &&
           a.eightbit == b.eightbit && a.requiretls == b.requiretls && a.client_ip == b.client_ip && a.helo == b.helo &&
           a.sasl_user == b.sasl_user && a.id == b.id && a.received == b.received && a.attempts == b.attempts &&
           a.next_attempt == b.next_attempt && a.size == b.size;
}

// A tmpfs of the given size on dir/data, unmounted on destruction; mounted is false when the
// test can't mount (not root, no CAP_SYS_ADMIN).
struct SmallDisk {
    fs::path path;
    bool mounted = false;
    SmallDisk(const fs::path& dir, const char* size) : path(dir / "data") {
        fs::create_directories(path);
        if (::geteuid() != 0) return;
        mounted = ::mount("tmpfs", path.c_str(), "tmpfs", 0, fmt::format("size={},mode=0700", size).c_str()) == 0;
    }
    ~SmallDisk() {
        if (mounted && ::umount(path.c_str()) != 0) ::umount2(path.c_str(), MNT_DETACH);
    }
};

}  // namespace

TEST_CASE("queue ids are 16 uppercase hex digits") {
    CHECK(valid_id("0123456789ABCDEF"));
    CHECK_FALSE(valid_id("0123456789abcdef"));
    CHECK_FALSE(valid_id("0123456789ABCDE"));
    CHECK_FALSE(valid_id("../../etc/passwd"));
    CHECK_FALSE(valid_id(""));
}

TEST_CASE("envelope JSON round trip") {
    Envelope e = sample_envelope();
    e.id = "0000000000000ABC";
    e.received = 1700000000;
    e.next_attempt = 1700000300;
    e.attempts = 3;
    e.size = 12345;
    std::string text = to_json(e);
    CHECK_THAT(text, Catch::Contains("\"body\": \"8bitmime\""));
    CHECK_THAT(text, Catch::Contains("\"notify\": [\n        \"success\",\n        \"failure\"\n      ]"));
    std::string err;
    auto back = from_json(text, &err);
    INFO(err);
    REQUIRE(back);
    CHECK(same_envelope(*back, e));

    SECTION("the null sender and NOTIFY not given survive") {
        Envelope n;
        n.id = "0000000000000ABD";
        n.recipients = {{"x@example.net", 0, ""}};
        auto nb = from_json(to_json(n));
        REQUIRE(nb);
        CHECK(nb->sender.empty());
        CHECK(nb->recipients[0].notify == 0);
        CHECK_FALSE(nb->eightbit);
        CHECK(same_envelope(*nb, n));
    }
}

TEST_CASE("envelopes that could not be read back are refused on write") {
    auto refused = [](std::function<void(Envelope&)> change) {
        Envelope e = sample_envelope();
        e.id = "0000000000000ABC";
        change(e);
        std::string why = validate(e);
        bool threw = false;
        try {
            (void)to_json(e);
        } catch (const std::invalid_argument&) {
            threw = true;
        }
        return !why.empty() && threw;
    };
    CHECK(refused([](Envelope& e) { e.recipients.clear(); }));
    CHECK(refused([](Envelope& e) { e.recipients[0].address = ""; }));
    CHECK(refused([](Envelope& e) { e.recipients[0].address = "bob@example.net\r\nRCPT TO:<evil@example.com>"; }));
    CHECK(refused([](Envelope& e) { e.sender = "\xff\xfe@example.org"; }));
    CHECK(refused([](Envelope& e) { e.recipients[0].notify = notify::never | notify::delay; }));
    CHECK(refused([](Envelope& e) { e.ret = "ALL"; }));
    CHECK(refused([](Envelope& e) { e.id = "../x"; }));
    CHECK(refused([](Envelope& e) { e.helo = std::string(5000, 'a'); }));
}

TEST_CASE("malformed envelope texts give a reason, never an envelope") {
    Envelope good = sample_envelope();
    good.id = "0000000000000ABC";
    std::string text = to_json(good);
    auto replace = [&](const std::string& from, const std::string& to) {
        auto t = text;
        auto at = t.find(from);
        REQUIRE(at != std::string::npos);
        return t.replace(at, from.size(), to);
    };
    std::vector<std::string> bad = {
        "", "not json", "[1,2,3]", "{\"version\": 1}", text.substr(0, text.size() / 2),
        replace("\"version\": 1", "\"version\": 2"),
        replace("\"smtputf8\": true", "\"smtputf8\": \"yes\""),
        replace("\"success\"", "\"sometimes\""),
        replace("\"body\": \"8bitmime\"", "\"body\": \"binarymime\""),
        replace("\"size\": 0", "\"size\": -1"),
        replace("\"attempts\": 0", "\"attempts\": 1.5"),
        replace("\"received\": 0", "\"received\": 99999999999999999999"),
        replace("\"sender\": \"alice@example.org\"", "\"sender\": \"alice\\r\\n@example.org\""),
        replace("\"sender\": \"alice@example.org\"", "\"sender\": 7"),
        std::string(100000, '['),
    };
    for (auto& t : bad) {
        std::string err;
        INFO(t.substr(0, 200));
        CHECK_FALSE(from_json(t, &err));
        CHECK_FALSE(err.empty());
    }
}

TEST_CASE("a committed message reads back byte-identical with its envelope") {
    test::TempDir dir;
    asio::io_context io;
    Queue q(io, dir.path);
    auto before = blocking_calls_on_loop();
    std::string body = make_body(1, 200 * 1024);
    body += std::string("\0\x80\xff binary tail\r\n", 18);
    Envelope env = sample_envelope();
    auto r = enqueue(io, q, env, body, 777);
    REQUIRE(r.called);
    INFO(r.text);
    REQUIRE(r.ok);
    CHECK(valid_id(r.text));
    CHECK(blocking_calls_on_loop() == before);

    CHECK(q.list() == std::vector<std::string>{r.text});
    CHECK(read_file(q.message_path(r.text)) == body);
    std::string why;
    auto back = q.read_envelope(r.text, &why);
    INFO(why);
    REQUIRE(back);
    env.id = r.text;
    env.size = body.size();
    CHECK(back->received > 1600000000);
    CHECK(back->next_attempt == back->received);
    env.received = back->received;
    env.next_attempt = back->received;
    CHECK(same_envelope(*back, env));
    CHECK(names_in(dir.path / "queue" / "tmp").empty());
    CHECK(names_in(dir.path / "queue" / "messages") == std::vector<std::string>{r.text + ".eml", r.text + ".env"});
    CHECK(q.stats().commits == 1);

    SECTION("an empty body is a message too") {
        auto e = enqueue(io, q, sample_envelope(), "");
        REQUIRE(e.ok);
        CHECK(read_file(q.message_path(e.text)).empty());
        CHECK(q.list().size() == 2);
    }
    SECTION("a writer's id is known from start() on and is the one commit reports") {
        auto w = q.writer();
        w->start(sample_envelope());
        std::string early = w->id();
        CHECK(valid_id(early));
        Result c;
        w->body("Subject: x\r\n\r\nx\r\n");
        w->commit([&](bool ok, std::string text) { c = {true, ok, text}; });
        CHECK_FALSE(c.called);  // never from inside commit()
        run(io);
        CHECK(c.ok);
        CHECK(c.text == early);
        CHECK(early > r.text);  // ids follow arrival
    }
    SECTION("an invalid envelope fails the commit without writing anything") {
        Envelope e = sample_envelope();
        e.recipients.clear();
        auto f = enqueue(io, q, e, body);
        REQUIRE(f.called);
        CHECK_FALSE(f.ok);
        CHECK_THAT(f.text, Catch::Contains("no recipients"));
        CHECK(names_in(dir.path / "queue" / "tmp").empty());
        CHECK(q.list().size() == 1);
    }
}

TEST_CASE("a big body streams with bounded buffering and arrives intact") {
    test::TempDir dir;
    asio::io_context io;
    Queue q(io, dir.path);
    std::string body = make_body(2, 12 * 1024 * 1024);
    const std::size_t chunk = 4096, limit = 256 * 1024;
    auto w = q.writer();
    w->start(sample_envelope());
    std::size_t off = 0, most = 0, waits = 0;
    Result r;
    // What a session does: read and pass on while below the limit, else wait for on_drained.
    std::function<void()> pump = [&] {
        while (off < body.size() && w->buffered() < limit) {
            w->body(std::string_view(body).substr(off, chunk));
            off += chunk;
            most = std::max(most, w->buffered());
        }
        if (off < body.size()) {
            ++waits;
            w->on_drained(pump);
        } else {
            w->commit([&](bool ok, std::string text) { r = {true, ok, std::move(text)}; });
        }
    };
    asio::post(io, pump);
    run(io);
    REQUIRE(r.called);
    INFO(r.text);
    REQUIRE(r.ok);
    CHECK(most <= limit + chunk);
    CHECK(waits > 0);
    CHECK(w->buffered() == 0);
    CHECK(read_file(q.message_path(r.text)) == body);
    REQUIRE(q.read_envelope(r.text));
    CHECK(q.read_envelope(r.text)->size == body.size());
}

TEST_CASE("abort and a dropped writer leave nothing behind") {
    test::TempDir dir;
    asio::io_context io;
    Queue q(io, dir.path);
    std::string body = make_body(3, 300 * 1024);
    auto tmp = dir.path / "queue" / "tmp";
    auto messages = dir.path / "queue" / "messages";

    SECTION("abort after some of the body was written") {
        auto w = q.writer();
        w->start(sample_envelope());
        w->body(body);
        asio::post(io, [&] { w->abort(); });
        run(io);
        CHECK(names_in(tmp).empty());
        Result r;
        w->commit([&](bool ok, std::string text) { r = {true, ok, std::move(text)}; });
        run(io);
        CHECK(r.called);
        CHECK_FALSE(r.ok);
        CHECK(r.text == "aborted");
    }
    SECTION("abort while a write is in flight") {
        auto w = q.writer();
        w->start(sample_envelope());
        w->body(body);
        w->abort();
        run(io);
        CHECK(names_in(tmp).empty());
    }
    SECTION("dropped without commit") {
        auto w = q.writer();
        w->start(sample_envelope());
        w->body(body);
        asio::post(io, [&] { w->body(body); });
        asio::post(io, [&] { w.reset(); });
        run(io);
        CHECK(names_in(tmp).empty());
    }
    SECTION("dropped right after commit: the commit still completes") {
        Result r;
        auto w = q.writer();
        w->start(sample_envelope());
        w->body(body);
        w->commit([&](bool ok, std::string text) { r = {true, ok, std::move(text)}; });
        w.reset();
        run(io);
        REQUIRE(r.ok);
        CHECK(q.list() == std::vector<std::string>{r.text});
        CHECK(read_file(q.message_path(r.text)) == body);
        return;
    }
    CHECK(names_in(messages).empty());
    CHECK(q.list().empty());
}

TEST_CASE("recover() removes unfinished files and lone .eml, nothing that is queued") {
    test::TempDir dir;
    asio::io_context io;
    std::string id;
    {
        Queue q(io, dir.path);
        auto r = enqueue(io, q, sample_envelope(), make_body(4, 5000));
        REQUIRE(r.ok);
        id = r.text;
    }
    auto tmp = dir.path / "queue" / "tmp";
    auto messages = dir.path / "queue" / "messages";
    // What a crash can leave: files being written, and a message renamed without its .env.
    write_file(tmp / "0000000000000001.eml", "partial");
    write_file(tmp / "0000000000000001.env", "{");
    write_file(tmp / "0000000000000002.eml", "done, not renamed");
    write_file(messages / "0000000000000003.eml", "renamed, .env not");

    Queue q(io, dir.path);
    CHECK(q.list() == std::vector<std::string>{id});  // readers ignore the garbage already
    auto kept = q.recover(std::chrono::hours(36));    // a tool next to a live server: too young
    CHECK(kept.tmp_removed == 0);
    CHECK(kept.lone_removed == 0);
    CHECK(names_in(tmp).size() == 3);

    auto rep = q.recover();
    CHECK(rep.tmp_removed == 3);
    CHECK(rep.lone_removed == 1);
    CHECK(names_in(tmp).empty());
    CHECK(names_in(messages) == std::vector<std::string>{id + ".eml", id + ".env"});
    CHECK(q.list() == std::vector<std::string>{id});
    CHECK(read_file(q.message_path(id)) == make_body(4, 5000));

    SECTION("on an empty data folder it does nothing") {
        test::TempDir empty;
        Queue e(io, empty.path);
        auto none = e.recover();
        CHECK(none.tmp_removed + none.lone_removed == 0);
        CHECK(e.list().empty());
    }
}

TEST_CASE("hold: a held message is in hold/ only; release moves it whole to incoming/; delete drops it") {
    test::TempDir dir;
    asio::io_context io;
    Queue q(io, dir.path);
    std::string body = make_body(7, 3000);
    auto held = enqueue(io, q, sample_envelope(), body, 1000, Place::Hold);
    REQUIRE(held.ok);
    auto queued = enqueue(io, q, sample_envelope(), make_body(8, 100));
    REQUIRE(queued.ok);
    // The outbound queue (what a delivery agent reads) never sees a held message.
    CHECK(q.list() == std::vector<std::string>{queued.text});
    CHECK(q.list(Place::Hold) == std::vector<std::string>{held.text});
    CHECK(q.list(Place::Incoming).empty());
    CHECK_FALSE(q.read_envelope(held.text));
    REQUIRE(q.read_envelope(held.text, Place::Hold));
    CHECK(q.stats().batches >= 2);

    CHECK(q.move(held.text, Place::Hold, Place::Incoming) == "");
    CHECK(q.list(Place::Hold).empty());
    CHECK(names_in(dir.path / "queue" / "hold").empty());  // no lone .eml left behind
    CHECK(q.list(Place::Incoming) == std::vector<std::string>{held.text});
    CHECK(read_file(q.message_path(held.text, Place::Incoming)) == body);
    auto env = q.read_envelope(held.text, Place::Incoming);
    REQUIRE(env);
    CHECK(env->recipients.size() == 3);

    CHECK_THAT(q.move(held.text, Place::Hold, Place::Incoming), Catch::Contains("no message"));
    CHECK_THAT(q.move("not-an-id", Place::Hold, Place::Incoming), Catch::Contains("not a queue id"));
    CHECK(q.remove(held.text, Place::Incoming) == "");
    CHECK(q.list(Place::Incoming).empty());
    CHECK(names_in(dir.path / "queue" / "incoming").empty());
    CHECK_THAT(q.remove(held.text, Place::Incoming), Catch::Contains("no message"));
    CHECK(q.list() == std::vector<std::string>{queued.text});

    SECTION("rewrite_envelope replaces the recipients and keeps the message") {
        auto h = enqueue(io, q, sample_envelope(), body, 1000, Place::Hold);
        REQUIRE(h.ok);
        auto e = q.read_envelope(h.text, Place::Hold);
        REQUIRE(e);
        e->recipients.resize(1);
        CHECK(q.rewrite_envelope(*e, Place::Hold) == "");
        auto back = q.read_envelope(h.text, Place::Hold);
        REQUIRE(back);
        CHECK(back->recipients.size() == 1);
        CHECK(back->recipients[0].address == "bob@example.net");
        CHECK(read_file(q.message_path(h.text, Place::Hold)) == body);
        CHECK(names_in(dir.path / "queue" / "tmp").empty());
        CHECK_THAT(q.rewrite_envelope(*e, Place::Incoming), Catch::Contains("no message"));
        e->recipients.clear();  // an envelope that could not be read back is refused
        CHECK_FALSE(q.rewrite_envelope(*e, Place::Hold).empty());
        CHECK(q.read_envelope(h.text, Place::Hold)->recipients.size() == 1);
    }
    SECTION("a move cut short by a crash leaves the message in one place; recover() removes the lone copy") {
        auto h = enqueue(io, q, sample_envelope(), body, 1000, Place::Hold);
        REQUIRE(h.ok);
        // The .eml linked into incoming/, the .env not moved yet.
        fs::create_hard_link(q.message_path(h.text, Place::Hold), q.message_path(h.text, Place::Incoming));
        CHECK(q.list(Place::Hold) == std::vector<std::string>{h.text});
        CHECK(q.list(Place::Incoming).empty());
        auto rep = q.recover();
        CHECK(rep.lone_removed == 1);
        CHECK(names_in(dir.path / "queue" / "incoming").empty());
        CHECK(read_file(q.message_path(h.text, Place::Hold)) == body);
    }
}

TEST_CASE("50 concurrent writers are all committed with unique ids") {
    test::TempDir dir;
    asio::io_context io;
    Queue q(io, dir.path);
    auto before = blocking_calls_on_loop();
    constexpr int kWriters = 50;
    std::vector<std::unique_ptr<Writer>> writers;
    std::vector<std::string> bodies;
    std::vector<Result> results(kWriters);
    for (int i = 0; i < kWriters; ++i) {
        writers.push_back(q.writer());
        Envelope e = sample_envelope();
        e.recipients = {{fmt::format("rcpt{}@example.net", i), 0, ""}};
        writers.back()->start(e);
        bodies.push_back(make_body(i, 1000 + 3000 * static_cast<std::size_t>(i)));
    }
    // Interleaved, as sessions on one loop would send them.
    for (std::size_t off = 0; off < bodies.back().size(); off += 1500)
        for (int i = 0; i < kWriters; ++i)
            if (off < bodies[i].size()) writers[i]->body(std::string_view(bodies[i]).substr(off, 1500));
    for (int i = 0; i < kWriters; ++i)
        writers[i]->commit([&results, i](bool ok, std::string text) { results[i] = {true, ok, std::move(text)}; });
    run(io);
    CHECK(blocking_calls_on_loop() == before);
    std::set<std::string> ids;
    for (int i = 0; i < kWriters; ++i) {
        INFO(i << ": " << results[i].text);
        REQUIRE(results[i].ok);
        ids.insert(results[i].text);
        CHECK(read_file(q.message_path(results[i].text)) == bodies[i]);
        auto env = q.read_envelope(results[i].text);
        REQUIRE(env);
        CHECK(env->recipients.at(0).address == fmt::format("rcpt{}@example.net", i));
    }
    CHECK(ids.size() == kWriters);
    auto listed = q.list();
    CHECK(std::set<std::string>(listed.begin(), listed.end()) == ids);
    auto st = q.stats();
    CHECK(st.commits == kWriters);
    CHECK(st.dir_fsyncs == st.batches);
    CHECK(st.batches <= kWriters);
    WARN(fmt::format("50 concurrent commits took {} batches (one messages/ fsync each)", st.batches));
}

TEST_CASE("list() and read_envelope() skip malformed envelopes with a reason") {
    test::TempDir dir;
    asio::io_context io;
    Queue q(io, dir.path);
    auto good = enqueue(io, q, sample_envelope(), make_body(5, 3000));
    REQUIRE(good.ok);
    auto messages = dir.path / "queue" / "messages";
    auto valid = [&](const std::string& id, std::uint64_t size) {
        Envelope e = sample_envelope();
        e.id = id;
        e.size = size;
        return to_json(e);
    };
    write_file(messages / "0000000000000001.env", "not json");
    write_file(messages / "0000000000000001.eml", "x");
    write_file(messages / "0000000000000002.env", "{\"version\": 1, \"id\": 2}");
    write_file(messages / "0000000000000002.eml", "x");
    write_file(messages / "0000000000000003.env", valid("0000000000000003", 1));  // its .eml is missing
    write_file(messages / "0000000000000004.env", valid("0000000000000005", 1));  // names another id
    write_file(messages / "0000000000000004.eml", "x");
    write_file(messages / "0000000000000006.env", valid("0000000000000006", 100));  // .eml is short
    write_file(messages / "0000000000000006.eml", "truncated");
    write_file(messages / "junk.env", valid("0000000000000007", 1));
    write_file(messages / "0000000000000008.env", std::string(5 * 1024 * 1024, ' '));

    std::vector<Skipped> skipped;
    CHECK(q.list(&skipped) == std::vector<std::string>{good.text});
    std::map<std::string, std::string> why;
    for (auto& s : skipped) why[s.id] = s.reason;
    REQUIRE(why.size() == 7);
    CHECK_THAT(why["0000000000000001"], Catch::Contains("not JSON"));
    CHECK_THAT(why["0000000000000002"], Catch::Contains("id is not a string"));
    CHECK_THAT(why["0000000000000003"], Catch::Contains("No such file"));
    CHECK_THAT(why["0000000000000004"], Catch::Contains("another id"));
    CHECK_THAT(why["0000000000000006"], Catch::Contains("9 bytes"));
    CHECK_THAT(why["junk"], Catch::Contains("not a queue id"));
    CHECK_THAT(why["0000000000000008"], Catch::Contains("larger than"));

    std::string reason;
    CHECK_FALSE(q.read_envelope("0000000000000001", &reason));
    CHECK_THAT(reason, Catch::Contains("malformed"));
    CHECK_FALSE(q.read_envelope("../../etc/passwd", &reason));
    CHECK(reason == "not a queue id");
    CHECK_FALSE(q.read_envelope("000000000000000F", &reason));
    CHECK_THAT(reason, Catch::Contains("No such file"));
    CHECK(q.read_envelope(good.text));
}

TEST_CASE("a full disk fails the commit and leaves nothing behind") {
    test::TempDir dir;
    SmallDisk disk(dir.path, "1m");
    if (!disk.mounted) {
        WARN("skipped: cannot mount a tmpfs (needs root or CAP_SYS_ADMIN)");
        return;
    }
    asio::io_context io;
    Queue q(io, disk.path);
    auto tmp = disk.path / "queue" / "tmp";
    auto messages = disk.path / "queue" / "messages";
    auto first = enqueue(io, q, sample_envelope(), make_body(6, 1000));
    REQUIRE(first.ok);

    SECTION("the body does not fit") {
        auto r = enqueue(io, q, sample_envelope(), make_body(7, 2 * 1024 * 1024), 8192);
        REQUIRE(r.called);
        CHECK_FALSE(r.ok);
        CHECK_THAT(r.text, Catch::Contains("No space left on device"));
        CHECK_THAT(r.text, Catch::Contains(".eml"));
    }
    SECTION("the body fits, its envelope does not") {
        // Fill the disk, then give back exactly two pages: the .eml takes them, the .env finds none.
        auto filler = disk.path / "filler";
        {
            int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT, 0600);
            REQUIRE(fd >= 0);
            std::string page(4096, 'f');
            while (::write(fd, page.data(), page.size()) > 0) {
            }
            CHECK(errno == ENOSPC);
            auto size = ::lseek(fd, 0, SEEK_END);
            REQUIRE(::ftruncate(fd, (size / 4096) * 4096 - 2 * 4096) == 0);
            ::close(fd);
        }
        struct statvfs sv {};
        REQUIRE(::statvfs(disk.path.c_str(), &sv) == 0);
        REQUIRE(sv.f_bavail * sv.f_frsize == 2 * 4096);
        std::string body = make_body(8, 2 * 4096);
        body.resize(2 * 4096);
        auto r = enqueue(io, q, sample_envelope(), body);
        REQUIRE(r.called);
        CHECK_FALSE(r.ok);
        CHECK_THAT(r.text, Catch::Contains("No space left on device"));
        CHECK_THAT(r.text, Catch::Contains(".env"));
        REQUIRE(::statvfs(disk.path.c_str(), &sv) == 0);
        CHECK(sv.f_bavail * sv.f_frsize == 2 * 4096);  // the .eml's space is back
        fs::remove(filler);
        auto again = enqueue(io, q, sample_envelope(), body);
        CHECK(again.ok);
        CHECK(q.list().size() == 2);
        fs::remove(q.message_path(again.text));
        fs::remove(q.envelope_path(again.text));
    }
    CHECK(names_in(tmp).empty());
    CHECK(names_in(messages) == std::vector<std::string>{first.text + ".eml", first.text + ".env"});
    CHECK(q.list() == std::vector<std::string>{first.text});
}

TEST_CASE("a message is queued the moment its commit callback runs, even under kill -9") {
    // The child commits 20 messages and kills itself with SIGKILL inside the first callback;
    // whatever else was in flight is either fully queued or not listed at all.
    constexpr int kMessages = 20;
    constexpr std::size_t kSize = 96 * 1024;
    for (int round = 0; round < 3; ++round) {
        test::TempDir dir;
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(fds[0]);
            asio::io_context io;
            Queue q(io, dir.path);
            std::vector<std::unique_ptr<Writer>> writers;
            for (int i = 0; i < kMessages; ++i) {
                writers.push_back(q.writer());
                writers.back()->start(sample_envelope());
                writers.back()->body(make_body(i, kSize));
                writers.back()->commit([&, i](bool ok, std::string text) {
                    std::string line = fmt::format("{} {} {}\n", ok ? "ok" : "fail", i, text);
                    (void)!::write(fds[1], line.data(), line.size());
                    ::kill(::getpid(), SIGKILL);
                });
            }
            io.run();
            ::_exit(3);
        }
        ::close(fds[1]);
        std::string line;
        char buf[256];
        for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) line.append(buf, static_cast<std::size_t>(n));
        ::close(fds[0]);
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        CHECK(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == SIGKILL);
        INFO("child said: " << line);
        REQUIRE(line.rfind("ok ", 0) == 0);
        std::istringstream in(line.substr(3));
        int index = -1;
        std::string id;
        in >> index >> id;

        asio::io_context io;
        Queue q(io, dir.path);
        auto listed = q.list();
        REQUIRE(std::find(listed.begin(), listed.end(), id) != listed.end());
        CHECK(read_file(q.message_path(id)) == make_body(index, kSize));
        // Every listed message is complete: its first line names which one it is.
        for (auto& other : listed) {
            auto text = read_file(q.message_path(other));
            auto at = text.find("Subject: message ");
            REQUIRE(at != std::string::npos);
            int n = std::stoi(text.substr(at + 17));
            CHECK(text == make_body(n, kSize));
        }
        q.recover();
        CHECK(names_in(dir.path / "queue" / "tmp").empty());
        CHECK(names_in(dir.path / "queue" / "messages").size() == 2 * listed.size());
        CHECK(q.list() == listed);
    }
}

// Figures for the report: commits per second of 2 KiB messages with 1 and 20 writers in flight.
// Run with: queue_test "[.bench]"
TEST_CASE("queue commit rate", "[.bench]") {
    for (int in_flight : {1, 20}) {
        test::TempDir dir;
        asio::io_context io;
        Queue q(io, dir.path);
        const int total = in_flight == 1 ? 300 : 2000;
        std::string body = make_body(0, 2048);
        body.resize(2048);
        int started = 0, done = 0, failed = 0;
        std::function<void()> next = [&] {
            if (started == total) return;
            ++started;
            auto w = std::shared_ptr<Writer>(q.writer());
            w->start(sample_envelope());
            w->body(body);
            w->commit([&, w](bool ok, std::string) {
                ++done;
                if (!ok) ++failed;
                next();
            });
        };
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < in_flight; ++i) next();
        run(io);
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        auto st = q.stats();
        CHECK(failed == 0);
        CHECK(done == total);
        WARN(fmt::format("{} in flight: {} commits in {:.2f} s = {:.0f}/s, {} batches ({:.1f} per messages/ fsync)", in_flight,
                         total, secs, total / secs, st.batches, double(total) / double(st.dir_fsyncs)));
    }
}

TEST_CASE("the hold reason is kept in the envelope and read back") {
    Envelope e = sample_envelope();
    e.id = "0000000000000ABE";
    e.reason = "5.2.2 mailbox full: u3@example.com: over quota: 1 + 1 messages > 1";
    auto back = from_json(to_json(e));
    REQUIRE(back);
    CHECK(back->reason == e.reason);
    e.reason.clear();
    CHECK_THAT(to_json(e), !Catch::Contains("reason"));  // older readers see the same file
    e.reason = "line\r\nbreak";
    CHECK_THROWS_AS(to_json(e), std::invalid_argument);
}

TEST_CASE("copy_in queues a part of an open file durably, without the message in memory") {
    test::TempDir dir;
    asio::io_context io;
    Queue q(io, dir.path);
    std::string added = "Return-Path: <alice@example.org>\r\nDelivered-To: u3@example.com\r\n";
    std::string body = make_body(7, 300 * 1024);  // several chunks
    auto file = dir.path / "delivered";
    write_file(file, added + body);
    auto before = blocking_calls_on_loop();

    SECTION("from a descriptor, even once the file has no name") {
        auto src = std::make_shared<storage::MessageCopy>();
        src->fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        REQUIRE(src->fd >= 0);
        src->offset = added.size();
        src->length = body.size();
        fs::remove(file);
        Envelope env = sample_envelope();
        env.reason = "5.2.2 mailbox full";
        Result r;
        q.copy_in(env, Place::Hold, src, [&](bool ok, std::string text) { r = {true, ok, std::move(text)}; });
        CHECK_FALSE(r.called);
        run(io);
        REQUIRE(r.called);
        INFO(r.text);
        REQUIRE(r.ok);
        CHECK(q.list(Place::Hold) == std::vector<std::string>{r.text});
        CHECK(read_file(q.message_path(r.text, Place::Hold)) == body);
        auto back = q.read_envelope(r.text, Place::Hold);
        REQUIRE(back);
        CHECK(back->reason == "5.2.2 mailbox full");
        CHECK(back->size == body.size());
        CHECK(blocking_calls_on_loop() == before);
    }
    SECTION("from a path, to the end of the file") {
        auto src = std::make_shared<storage::MessageCopy>();
        src->path = file.string();
        src->offset = added.size();
        Result r;
        q.copy_in(sample_envelope(), Place::Incoming, src, [&](bool ok, std::string text) { r = {true, ok, std::move(text)}; });
        run(io);
        REQUIRE(r.ok);
        CHECK(read_file(q.message_path(r.text, Place::Incoming)) == body);
    }
    SECTION("a source shorter than it claims fails and leaves nothing") {
        auto src = std::make_shared<storage::MessageCopy>();
        src->path = file.string();
        src->length = added.size() + body.size() + 10;
        Result r;
        q.copy_in(sample_envelope(), Place::Hold, src, [&](bool ok, std::string text) { r = {true, ok, std::move(text)}; });
        run(io);
        REQUIRE(r.called);
        CHECK_FALSE(r.ok);
        CHECK(q.list(Place::Hold).empty());
        CHECK(names_in(dir.path / "queue" / "tmp").empty());
    }
    SECTION("a missing file fails") {
        auto src = std::make_shared<storage::MessageCopy>();
        src->path = (dir.path / "nothing").string();
        Result r;
        q.copy_in(sample_envelope(), Place::Hold, src, [&](bool ok, std::string text) { r = {true, ok, std::move(text)}; });
        run(io);
        REQUIRE(r.called);
        CHECK_FALSE(r.ok);
    }
}
