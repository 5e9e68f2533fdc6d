// Connection over a Unix-domain stream (the Dovecot auth socket's transport), stacked byte layers
// (the plumbing COMPRESS=DEFLATE will use, proved with a XOR layer) and a session's own idle
// timeout (IMAP IDLE). The TCP and TLS paths are covered by server_test.cpp.
#include <catch2/catch.hpp>

#include <asio/io_context.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "server/connection.hpp"
#include "server/stream_layer.hpp"
#include "tests/unit/test_config.hpp"

using namespace pillarbox;
using namespace std::chrono_literals;

namespace {

// Flips bits both ways: a layer whose output differs from its input, so a byte that skipped it
// (or went through it twice) shows.
class XorLayer final : public StreamLayer {
public:
    bool decode(std::string_view in, std::string& out) override {
        for (char c : in) out += static_cast<char>(c ^ 0x20);
        return true;
    }
    void encode(std::string_view in, std::string& out) override {
        for (char c : in) out += static_cast<char>(c ^ 0x20);
    }
};

std::string xored(std::string s) {
    for (auto& c : s) c = static_cast<char>(c ^ 0x20);
    return s;
}

struct Seen {
    std::atomic<bool> session_closed{false};
    std::atomic<bool> connection_closed{false};
};

// Lines ending in \n. "XOR" / "IDENTITY": reply "ok", then stack that layer. "IDLE n": this
// session's idle timeout becomes n ms ("IDLE" alone: the listener's again). Else "echo: LINE".
class LayerSession final : public Session {
public:
    LayerSession(SessionIo& io, Seen& seen) : io_(io), seen_(seen) {}
    void on_start() override { io_.send("hello\n"); }
    std::size_t on_input(std::string_view data) override {
        auto eol = data.find('\n');
        if (eol == std::string_view::npos) return 0;
        std::string line(data.substr(0, eol));
        if (line == "XOR" || line == "IDENTITY") {
            io_.send("ok\n");
            std::unique_ptr<StreamLayer> layer;
            if (line == "XOR") layer = std::make_unique<XorLayer>();
            else layer = std::make_unique<IdentityLayer>();
            io_.push_layer(std::move(layer));
        } else if (line.rfind("IDLE", 0) == 0) {
            if (line.size() > 5) io_.set_idle_timeout(std::chrono::milliseconds(std::stoi(line.substr(5))));
            else io_.set_idle_timeout(std::nullopt);
            io_.send("ok\n");
        } else {
            io_.send("echo: " + line + "\n");
        }
        return eol + 1;
    }
    void on_refused(std::string_view) override {}
    void on_timeout() override { io_.send("timeout\n"); }
    void on_shutdown() override {}
    void on_close() override { seen_.session_closed = true; }

private:
    SessionIo& io_;
    Seen& seen_;
};

// A Connection on one end of a socket pair, its loop on a thread; the test holds the other end.
struct Pair {
    asio::io_context loop;
    asio::io_context client_io;
    asio::local::stream_protocol::socket server_end{loop}, client{client_io};
    Seen seen;
    std::shared_ptr<Connection> conn;
    std::thread thread;
    std::string buf;

    explicit Pair(std::chrono::milliseconds idle_timeout) {
        asio::local::connect_pair(server_end, client);
        auto settings = std::make_shared<ConnectionSettings>();
        settings->name = "test";
        settings->log_service = "test";
        settings->idle_timeout = idle_timeout;
        const auto c = test::config();  // a listener's defaults for the rest
        settings->tls_handshake_timeout = c.get_time("tls_handshake_timeout");
        settings->input_limit = c.get_size("input_buffer_limit");
        settings->output_limit = c.get_size("output_buffer_limit");
        settings->log_connections = false;
        conn = std::make_shared<Connection>(std::move(server_end), settings, "T1",
                                            [this](SessionIo& io) { return std::make_unique<LayerSession>(io, seen); },
                                            [this] { seen.connection_closed = true; });
        asio::post(loop, [c = conn] { c->start(); });
        thread = std::thread([this] { loop.run(); });
    }
    ~Pair() {
        std::error_code ec;
        client.close(ec);
        asio::post(loop, [c = conn] { c->abort(); });
        thread.join();
    }
    void send(const std::string& s) { asio::write(client, asio::buffer(s)); }
    // Reads what arrives within 5 s into buf; false on timeout or EOF.
    bool fill() {
        pollfd pfd{client.native_handle(), POLLIN, 0};
        if (::poll(&pfd, 1, 5000) != 1) return false;
        char tmp[256];
        auto got = ::recv(client.native_handle(), tmp, sizeof tmp, 0);
        if (got <= 0) return false;
        buf.append(tmp, static_cast<std::size_t>(got));
        return true;
    }
    // Up to and including the next '\n'; "" on timeout or EOF.
    std::string line() {
        while (buf.find('\n') == std::string::npos)
            if (!fill()) return "";
        auto n = buf.find('\n') + 1;
        std::string l = buf.substr(0, n);
        buf.erase(0, n);
        return l;
    }
    // Exactly n bytes (a layered reply is not split at '\n' of the plain text); "" on timeout.
    std::string bytes(std::size_t n) {
        while (buf.size() < n)
            if (!fill()) return "";
        std::string b = buf.substr(0, n);
        buf.erase(0, n);
        return b;
    }
};

}  // namespace

TEST_CASE("a connection serves a Unix-domain stream and tells the session when it closes") {
    Pair p(kNoIdleTimeout);
    CHECK(p.line() == "hello\n");
    p.send("one\ntwo\n");
    CHECK(p.line() == "echo: one\n");
    CHECK(p.line() == "echo: two\n");
    p.client.shutdown(asio::socket_base::shutdown_send);
    CHECK(p.line() == "");  // the server closes its end once the client has
    for (int i = 0; i < 200 && !p.seen.connection_closed; ++i) std::this_thread::sleep_for(10ms);
    CHECK(p.seen.session_closed);
    CHECK(p.seen.connection_closed);
}

TEST_CASE("a stacked layer transforms both ways, from the bytes after the request on") {
    Pair p(kNoIdleTimeout);
    CHECK(p.line() == "hello\n");
    // Pipelined: the bytes behind XOR in the same write are already the layer's.
    p.send("XOR\n" + xored("ping\n"));
    CHECK(p.line() == "ok\n");  // sent before the layer was stacked: plain
    CHECK(p.bytes(11) == xored("echo: ping\n"));
    p.send(xored("pong\n"));
    CHECK(p.bytes(11) == xored("echo: pong\n"));
    // A second layer stacks above the first: XOR twice is plain again.
    p.send(xored("XOR\n"));
    CHECK(p.bytes(3) == xored("ok\n"));
    p.send("plain\n");
    CHECK(p.bytes(12) == "echo: plain\n");
}

TEST_CASE("the identity layer changes nothing") {
    Pair p(kNoIdleTimeout);
    CHECK(p.line() == "hello\n");
    p.send("IDENTITY\nsame\n");
    CHECK(p.line() == "ok\n");
    CHECK(p.line() == "echo: same\n");
}

TEST_CASE("a session's idle timeout replaces the listener's, longer or shorter") {
    SECTION("longer") {
        Pair p(300ms);
        CHECK(p.line() == "hello\n");
        p.send("IDLE 3000\n");
        CHECK(p.line() == "ok\n");
        std::this_thread::sleep_for(700ms);  // past the listener's 300 ms
        p.send("still here\n");
        CHECK(p.line() == "echo: still here\n");
        p.send("IDLE\n");  // the listener's again
        CHECK(p.line() == "ok\n");
        auto start = std::chrono::steady_clock::now();
        CHECK(p.line() == "timeout\n");
        CHECK(std::chrono::steady_clock::now() - start < 2s);
    }
    SECTION("shorter") {
        Pair p(60s);
        CHECK(p.line() == "hello\n");
        p.send("IDLE 200\n");
        CHECK(p.line() == "ok\n");
        auto start = std::chrono::steady_clock::now();
        CHECK(p.line() == "timeout\n");
        CHECK(std::chrono::steady_clock::now() - start < 2s);
        CHECK(p.line() == "");  // and closed
    }
}
