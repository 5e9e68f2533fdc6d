// The server with a test session: listeners start and stop, connection limits, reload (good and
// bad config), SIGTERM-style drain, idle timeout, input limit, implicit TLS with SNI, and the
// STARTTLS buffered-plaintext discard.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "server/tls.hpp"
#include "test_support.hpp"

using namespace pillarbox;
using namespace pillarbox::test;
using namespace std::chrono_literals;

namespace {

// A config with every default listener switched off and data in the temp folder.
std::string base_config(const TempDir& dir) {
    return fmt::format(
        "myhostname = test.example\n"
        "log_level = warning\n"
        "data_directory = {}\n"
        "listen_smtp =\nlisten_submission =\nlisten_submissions =\nlisten_pop3 =\n"
        "listen_pop3s =\nlisten_imap =\nlisten_imaps =\nlisten_http =\n",
        dir.file("data"));
}

// A temp folder, a config with one listener "t" on a free loopback port, and a server on it.
struct Bed {
    TempDir dir;
    std::uint16_t port = free_port();
    SessionLog log;
    std::unique_ptr<RunningServer> server;
    explicit Bed(const std::string& extra, const std::string& listener = "smtp none", const std::string& overrides = "") {
        dir.write("pillarbox.conf", base_config(dir) + extra +
                                        fmt::format("listen_t = {} 127.0.0.1:{} {}\n", listener, port, overrides));
        server = std::make_unique<RunningServer>(dir.file("pillarbox.conf"), log);
    }
    void shutdown() { asio::post(server->io, [this] { server->server->shutdown(); }); }
};

// Retries until the server has released a closed connection's count.
std::string greeting_eventually(std::uint16_t port) {
    for (int i = 0; i < 200; ++i) {
        Client c(port);
        std::string g = c.line();
        if (g == "220 test") return g;
        std::this_thread::sleep_for(10ms);
    }
    return "";
}

}  // namespace

TEST_CASE("a listener greets, serves and closes on QUIT") {
    Bed bed("");
    REQUIRE(bed.server->started);
    auto port = bed.port;
    Client c(port);
    REQUIRE(c.connected);
    CHECK(c.line() == "220 test");
    c.send("HELLO\r\nQUIT\r\n");
    CHECK(c.line() == "250 HELLO");
    CHECK(c.line() == "221 bye");
    CHECK(c.closed());
}

TEST_CASE("start fails on a bad config or a port already in use") {
    TempDir dir;
    SessionLog log;
    dir.write("bad.conf", base_config(dir) + "listen_t = smtp none 127.0.0.1:notaport\n");
    RunningServer bad(dir.file("bad.conf"), log);
    CHECK_FALSE(bad.started);

    asio::io_context io;
    asio::ip::tcp::acceptor busy(io, {asio::ip::address_v4::loopback(), 0});
    dir.write("busy.conf", base_config(dir) + fmt::format("listen_t = smtp none 127.0.0.1:{}\n", busy.local_endpoint().port()));
    RunningServer taken(dir.file("busy.conf"), log);
    CHECK_FALSE(taken.started);

    dir.write("dup.conf", base_config(dir) + "listen_a = smtp none 127.0.0.1:2999\nlisten_b = pop3 none 127.0.0.1:2999\n");
    RunningServer dup(dir.file("dup.conf"), log);
    CHECK_FALSE(dup.started);
}

TEST_CASE("per-client connection limit answers with the session's refusal") {
    Bed bed("client_connection_limit = 2\nclient_connection_limit_exceptions =\n");
    REQUIRE(bed.server->started);
    auto port = bed.port;
    auto a = std::make_unique<Client>(port);
    Client b(port);
    CHECK(a->line() == "220 test");
    CHECK(b.line() == "220 test");
    Client c(port);
    CHECK(c.line() == "421 too many");
    CHECK(c.closed());
    a.reset();  // one slot free again
    CHECK(greeting_eventually(port) == "220 test");
}

TEST_CASE("client_connection_limit_exceptions are exempt from the per-client limit, not from the global one") {
    Bed bed("client_connection_limit = 1\nconnection_limit = 3\nclient_connection_limit_exceptions = 127.0.0.0/8\n");
    REQUIRE(bed.server->started);
    auto port = bed.port;
    Client a(port), b(port), c(port);
    CHECK(a.line() == "220 test");
    CHECK(b.line() == "220 test");
    CHECK(c.line() == "220 test");
    Client d(port);
    CHECK(d.line() == "421 too many");
}

TEST_CASE("loopback clients have no exemption from the per-client limit by default") {
    Bed bed("client_connection_limit = 1\n");
    REQUIRE(bed.server->started);
    Client a(bed.port);
    CHECK(a.line() == "220 test");
    Client b(bed.port);
    CHECK(b.line() == "421 too many");
}

TEST_CASE("the connection limit leaves a reserve of the open files limit") {
    CHECK(connection_capacity(0, 4, 256) == UINT64_MAX);  // unlimited
    // 64 + 16 per worker thread + 3 per open account and idle read connection (at most a
    // quarter of the limit), 2 per connection
    CHECK(connection_capacity(20000, 4, 256) == (20000 - 128 - 3 * (256 + 64)) / 2);
    CHECK(connection_capacity(1024, 4, 256) == (1024 - 128 - 256) / 2);
    CHECK(connection_capacity(1048576, 4, 256) > 500000);
    CHECK(connection_capacity(100, 4, 256) == 1);  // never 0: the server still serves someone
}

TEST_CASE("stress mode sheds idle sessions that have not logged in, and keeps those that have") {
    Bed bed("connection_limit = 10\nconnection_stress_threshold = 50\nconnection_stress_idle_timeout = 1s\n"
            "client_connection_limit = 0\n");
    REQUIRE(bed.server->started);
    Client user(bed.port);
    CHECK(user.line() == "220 test");
    user.send("LOGIN\r\n");
    CHECK(user.line() == "235 ok");
    std::vector<std::unique_ptr<Client>> idle;
    for (int i = 0; i < 4; ++i) {
        idle.push_back(std::make_unique<Client>(bed.port));
        CHECK(idle.back()->line() == "220 test");
    }
    // 5 of 10: under stress. The 4 silent ones time out after 1s instead of smtpd_timeout (300s).
    for (auto& c : idle) {
        CHECK(c->line() == "421 timeout");
        CHECK(c->closed());
    }
    user.send("STILL\r\n");
    CHECK(user.line() == "250 STILL");
}

TEST_CASE("reload adds and removes listeners and keeps established connections") {
    TempDir dir;
    auto pa = free_port(), pb = free_port();
    dir.write("pillarbox.conf", base_config(dir) + fmt::format("listen_a = smtp none 127.0.0.1:{}\n", pa));
    SessionLog log;
    RunningServer s(dir.file("pillarbox.conf"), log);
    REQUIRE(s.started);
    Client kept(pa);
    CHECK(kept.line() == "220 test");

    dir.write("pillarbox.conf", base_config(dir) + fmt::format("listen_b = smtp none 127.0.0.1:{}\n", pb));
    CHECK(s.reload());
    kept.send("STILL\r\n");
    CHECK(kept.line() == "250 STILL");
    CHECK_FALSE(Client(pa).connected);
    Client nb(pb);
    CHECK(nb.line() == "220 test");

    SECTION("a bad config is rejected and the old one stays in force") {
        dir.write("pillarbox.conf", base_config(dir) + "listen_b = smtp bogus 127.0.0.1:1\n");
        CHECK_FALSE(s.reload());
        Client again(pb);
        CHECK(again.line() == "220 test");
    }
    SECTION("a listener that cannot bind rolls the whole reload back") {
        asio::io_context io;
        asio::ip::tcp::acceptor busy(io, {asio::ip::address_v4::loopback(), 0});
        auto pc = free_port();
        dir.write("pillarbox.conf", base_config(dir) + fmt::format("listen_b = smtp none 127.0.0.1:{}\n"
                                                                    "listen_c = smtp none 127.0.0.1:{}\n"
                                                                    "listen_d = smtp none 127.0.0.1:{}\n",
                                                                    pb, pc, busy.local_endpoint().port()));
        CHECK_FALSE(s.reload());
        CHECK_FALSE(Client(pc).connected);  // the listener it opened first was closed again
        Client again(pb);
        CHECK(again.line() == "220 test");
    }
    kept.send("QUIT\r\n");
    CHECK(kept.line() == "221 bye");
}

TEST_CASE("reload moves a port from the wildcard address to a specific one, or puts it back") {
    TempDir dir;
    auto port = free_port();
    dir.write("pillarbox.conf", base_config(dir) + fmt::format("listen_a = smtp none 0.0.0.0:{}\n", port));
    SessionLog log;
    RunningServer s(dir.file("pillarbox.conf"), log);
    REQUIRE(s.started);
    SECTION("it moves") {
        dir.write("pillarbox.conf", base_config(dir) + fmt::format("listen_a = smtp none 127.0.0.1:{}\n", port));
        CHECK(s.reload());
    }
    SECTION("a failure elsewhere puts the wildcard listener back") {
        // The busy port must sort after ours, so the move happens before the failure.
        asio::io_context io;
        std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> held;
        std::uint16_t busy = 0;
        while (busy <= port && held.size() < 100) {
            held.push_back(std::make_unique<asio::ip::tcp::acceptor>(io, asio::ip::tcp::endpoint{asio::ip::address_v4::loopback(), 0}));
            busy = held.back()->local_endpoint().port();
        }
        REQUIRE(busy > port);
        dir.write("pillarbox.conf", base_config(dir) + fmt::format("listen_a = smtp none 127.0.0.1:{}\n"
                                                                    "listen_z = smtp none 127.0.0.1:{}\n",
                                                                    port, busy));
        CHECK_FALSE(s.reload());
    }
    Client c(port);
    CHECK(c.line() == "220 test");
}

TEST_CASE("reload applies new limits to new connections only") {
    TempDir dir;
    auto port = free_port();
    auto conf = [&](int limit) {
        dir.write("pillarbox.conf", base_config(dir) + fmt::format("client_connection_limit = {}\n"
                                                                    "client_connection_limit_exceptions =\n"
                                                                    "listen_t = smtp none 127.0.0.1:{}\n",
                                                                    limit, port));
    };
    conf(1);
    SessionLog log;
    RunningServer s(dir.file("pillarbox.conf"), log);
    REQUIRE(s.started);
    Client a(port);
    CHECK(a.line() == "220 test");
    Client refused(port);
    CHECK(refused.line() == "421 too many");
    conf(2);
    REQUIRE(s.reload());
    Client b(port);
    CHECK(b.line() == "220 test");
    a.send("X\r\n");
    CHECK(a.line() == "250 X");
}

TEST_CASE("shutdown lets a busy transaction finish, says goodbye to idle clients, then stops") {
    Bed bed("");
    REQUIRE(bed.server->started);
    auto port = bed.port;
    Client busy(port), idle(port);
    CHECK(busy.line() == "220 test");
    CHECK(idle.line() == "220 test");
    busy.send("BUSY\r\n");
    CHECK(busy.line() == "250 busy");

    bed.shutdown();
    CHECK(idle.line() == "421 shutting down");
    CHECK(idle.closed());
    CHECK_FALSE(Client(port).connected);  // no longer accepting

    busy.send("MORE\r\n");
    CHECK(busy.line() == "250 MORE");  // the transaction goes on
    busy.send("DONE\r\n");
    CHECK(busy.line() == "250 done");
    CHECK(busy.line() == "421 shutting down");
    CHECK(busy.closed());
    CHECK(bed.server->wait_finished(10s));
}

TEST_CASE("a client gone before the TLS handshake leaves nothing behind for shutdown to wait on") {
    // The connection can end before its watchdog is armed (co_spawn runs the reader at once,
    // and it finds end of file): a shutdown must still find no connection left.
    Bed bed("shutdown_timeout = 60s\n", "imap implicit");
    REQUIRE(bed.server->started);
    for (int i = 0; i < 20; ++i) {
        asio::io_context io;
        asio::ip::tcp::socket sock(io);
        sock.connect({asio::ip::address_v4::loopback(), bed.port});
        sock.close();
    }
    std::this_thread::sleep_for(200ms);
    bed.shutdown();
    CHECK(bed.server->wait_finished(20s));
}

TEST_CASE("shutdown_timeout closes transactions that do not finish") {
    Bed bed("shutdown_timeout = 1s\n");
    REQUIRE(bed.server->started);
    auto port = bed.port;
    Client busy(port);
    CHECK(busy.line() == "220 test");
    busy.send("BUSY\r\n");
    CHECK(busy.line() == "250 busy");
    bed.shutdown();
    CHECK(busy.closed());
    CHECK(bed.server->wait_finished(10s));
}

TEST_CASE("an idle client gets the session's timeout reply and is disconnected") {
    Bed bed("", "smtp none", "smtpd_timeout=1s");
    REQUIRE(bed.server->started);
    auto port = bed.port;
    Client c(port);
    CHECK(c.line() == "220 test");
    CHECK(c.line() == "421 timeout");
    CHECK(c.closed());
}

TEST_CASE("input beyond input_buffer_limit disconnects instead of growing") {
    Bed bed("input_buffer_limit = 1k\n");
    REQUIRE(bed.server->started);
    auto port = bed.port;
    Client c(port);
    CHECK(c.line() == "220 test");
    c.send(std::string(8192, 'x'));  // no CRLF: the session never consumes it
    CHECK(c.closed());
}

TEST_CASE("a client that does not read is not read from beyond output_buffer_limit") {
    Bed bed("output_buffer_limit = 4k\n");
    REQUIRE(bed.server->started);
    auto port = bed.port;
    Client c(port, "127.0.0.1", 4096);  // a small receive window: the replies back up quickly
    CHECK(c.line() == "220 test");
    // Each line makes a reply; without reading them the server's queue would grow without bound.
    const int n = 200000;
    std::string many;
    for (int i = 0; i < n; ++i) many += "PING-PING-PING-PING-PING-PING-PING-PING\r\n";
    std::thread writer([&] { c.send(many); });
    std::size_t seen = 0;
    for (int i = 0; i < 50; ++i) {  // until the server stops taking lines
        std::this_thread::sleep_for(100ms);
        auto now = bed.log.snapshot().size();
        if (now == seen) break;
        seen = now;
    }
    CHECK(seen < static_cast<std::size_t>(n));  // stopped reading: the rest waits in the kernel buffers
    for (int i = 0; i < n; ++i)
        if (c.line().empty()) break;
    writer.join();
    CHECK(bed.log.snapshot().size() == static_cast<std::size_t>(n));
}

TEST_CASE("a long reply to a slow reader arrives whole and in order, plain and over TLS") {
    // Over TLS the server's socket fills up and BoringSSL asks to wait for it (SSL_write's
    // WANT_WRITE) many times; every byte must still come out once, in order.
    for (std::string listener : {"smtp none", "imap implicit"}) {
        INFO(listener);
        Bed bed("", listener);
        REQUIRE(bed.server->started);
        Client c(bed.port, "127.0.0.1", 4096);
        if (listener != "smtp none") REQUIRE(c.start_tls());
        CHECK(c.line() == "220 test");
        const std::size_t n = 3000;  // 3 MB
        c.send("BIG " + std::to_string(n) + "\r\n");
        std::size_t good = 0;
        for (std::size_t i = 0; i < n; ++i) {
            if (i % 500 == 0) std::this_thread::sleep_for(20ms);  // let the server's side back up
            std::string l = c.line();
            if (l + "\r\n" != TestSession::big_line(i)) break;
            ++good;
        }
        CHECK(good == n);
        CHECK(c.line() == "250 end");
        c.send("QUIT\r\n");
        CHECK(c.line() == "221 bye");
        CHECK(c.closed());
    }
}

TEST_CASE("STARTTLS discards plaintext pipelined after the command (CVE-2011-0411)") {
    Bed bed("", "smtp starttls");
    REQUIRE(bed.server->started);
    auto port = bed.port;
    Client c(port);
    CHECK(c.line() == "220 test");
    c.send("STARTTLS\r\nINJECTED\r\n");  // one segment: both are in the server's buffer at once
    CHECK(c.line() == "220 go ahead");
    REQUIRE(c.start_tls());
    c.send("TLS?\r\n");
    CHECK_THAT(c.line(), Catch::StartsWith("250 tls TLSv1."));
    CHECK(bed.log.snapshot() == std::vector<std::string>{"STARTTLS", "TLS?"});
}

TEST_CASE("implicit TLS picks the certificate by SNI and refuses old protocol versions") {
    TempDir dir;
    REQUIRE(tls::generate_self_signed("b.example.net", dir.file("b.crt"), dir.file("b.key")).empty());
    REQUIRE(tls::generate_self_signed("wild.example.com", dir.file("w.pem"), dir.file("w.key")).empty());
    dir.write("sni", fmt::format("# name  files\nb.example.net {} {}\n.example.com {} {}\n", dir.file("b.key"),
                                 dir.file("b.crt"), dir.file("w.pem"), dir.file("w.key")));
    auto port = free_port();
    dir.write("pillarbox.conf", base_config(dir) + fmt::format("tls_server_sni_maps = {}\nlisten_t = imap implicit 127.0.0.1:{}\n",
                                                                dir.file("sni"), port));
    SessionLog log;
    RunningServer s(dir.file("pillarbox.conf"), log);
    REQUIRE(s.started);
    auto cn_for = [&](const std::string& sni) {
        Client c(port);
        if (!c.start_tls(sni)) return std::string("handshake failed");
        CHECK(c.line() == "220 test");
        return c.peer_cn();
    };
    CHECK(cn_for("") == "test.example");  // the generated certificate for myhostname
    CHECK(cn_for("b.example.net") == "b.example.net");
    CHECK(cn_for("B.Example.NET") == "b.example.net");
    CHECK(cn_for("x.y.example.com") == "wild.example.com");
    CHECK(cn_for("example.com") == "test.example");
    CHECK(cn_for("other.example.org") == "test.example");

    Client old(port);
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    SSL_CTX_set_max_proto_version(ctx.native_handle(), TLS1_1_VERSION);
    asio::io_context io;
    asio::ip::tcp::socket sock(io);
    sock.connect({asio::ip::address_v4::loopback(), port});
    asio::ssl::stream<asio::ip::tcp::socket&> st(sock, ctx);
    std::error_code ec;
    st.handshake(asio::ssl::stream_base::client, ec);
    CHECK(ec);
}

TEST_CASE("a bad certificate configuration is an error naming the listener") {
    TempDir dir;
    auto port = free_port();
    REQUIRE(tls::generate_self_signed("a.example", dir.file("a.crt"), dir.file("a.key")).empty());
    REQUIRE(tls::generate_self_signed("b.example", dir.file("b.crt"), dir.file("b.key")).empty());
    dir.write("pillarbox.conf", base_config(dir) + fmt::format("tls_cert_file = {}\ntls_key_file = {}\n"
                                                                "listen_t = smtp starttls 127.0.0.1:{}\n",
                                                                dir.file("a.crt"), dir.file("b.key"), port));
    std::vector<config::Diagnostic> diags;
    auto cfg = config::Config::load_file(dir.file("pillarbox.conf"), true, config::Environment{false, "test.example"}, diags);
    CHECK_FALSE(build_runtime(cfg, diags));
    bool found = false;
    for (auto& d : diags) found |= d.message.find("listen_t: TLS: private key does not match") != std::string::npos;
    CHECK(found);
}

TEST_CASE("the worker pool runs jobs off the loop and completes on it") {
    asio::io_context io;
    WorkerPool pool(io, 2);
    std::thread::id job_thread, done_thread;
    int result = 0;
    pool.run([&] { job_thread = std::this_thread::get_id(); return 42; },
             [&](int r) { done_thread = std::this_thread::get_id(); result = r; });
    io.run();  // returns once the completion ran: the pool keeps the loop alive until then
    CHECK(result == 42);
    CHECK(job_thread != std::this_thread::get_id());
    CHECK(done_thread == std::this_thread::get_id());
}

TEST_CASE("blocking calls on the loop thread are flagged in debug builds") {
    auto before = blocking_calls_on_loop();
    blocking_call("test-off-loop");
    CHECK(blocking_calls_on_loop() == before);
    mark_loop_thread(true);
    blocking_call("test-on-loop");
    mark_loop_thread(false);
#ifndef NDEBUG
    CHECK(blocking_calls_on_loop() == before + 1);
#endif
}
