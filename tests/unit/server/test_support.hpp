// Helpers for in-process server tests: a temp folder with a pillarbox.conf, free loopback
// ports, a Server running on its own loop thread, a line-protocol test session, and blocking
// clients (plain and TLS) with read timeouts so a bug fails a test instead of hanging it.
#pragma once
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read_until.hpp>
#include <asio/ssl.hpp>
#include <asio/write.hpp>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/loop_guard.hpp"
#include "server/server.hpp"

namespace pillarbox::test {

inline std::uint16_t free_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    return a.local_endpoint().port();
}

// A whole file's bytes ("" when it can't be read).
inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/pillarbox-test-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
    void write(const std::string& name, const std::string& text) const { std::ofstream(path / name) << text; }
};

// Everything the test session saw, shared with the test thread.
struct SessionLog {
    std::mutex mu;
    std::vector<std::string> lines;
    std::atomic<int> sessions{0};
    std::vector<std::string> snapshot() {
        std::lock_guard l(mu);
        return lines;
    }
};

// A line protocol: greeting "220 test"; BUSY / DONE toggle busy(); STARTTLS replies then
// upgrades; BIG N answers N lines "250-<line number>" of 1000 bytes and "250 end" in one send;
// QUIT closes; anything else is echoed as "250 LINE".
class TestSession : public Session {
public:
    TestSession(SessionIo& io, SessionLog& log) : io_(io), log_(log) { ++log_.sessions; }
    void on_start() override { io_.send("220 test\r\n"); }
    std::size_t on_input(std::string_view data) override {
        auto eol = data.find("\r\n");
        if (eol == std::string_view::npos) return 0;
        std::string line(data.substr(0, eol));
        {
            std::lock_guard l(log_.mu);
            log_.lines.push_back(line);
        }
        if (line == "BUSY") busy_ = true, io_.send("250 busy\r\n");
        else if (line == "DONE") busy_ = false, io_.send("250 done\r\n");
        else if (line == "STARTTLS") io_.send("220 go ahead\r\n"), io_.start_tls();
        else if (line == "TLS?") io_.send(io_.info().tls_active ? "250 tls " + io_.info().tls_version + "\r\n" : "250 plain\r\n");
        else if (line == "QUIT") io_.send("221 bye\r\n"), io_.close();
        else if (line == "LOGIN") io_.set_authenticated(), io_.send("235 ok\r\n");
        else if (line.rfind("BIG ", 0) == 0) io_.send(big_reply(std::stoul(line.substr(4))));
        else io_.send("250 " + line + "\r\n");
        return eol + 2;
    }
    static std::string big_line(std::size_t i) {
        std::string l = "250-" + std::to_string(i) + " ";
        l.resize(998, static_cast<char>('a' + i % 26));
        return l + "\r\n";
    }
    static std::string big_reply(std::size_t n) {
        std::string out;
        for (std::size_t i = 0; i < n; ++i) out += big_line(i);
        return out + "250 end\r\n";
    }
    void on_refused(std::string_view) override { io_.send("421 too many\r\n"); }
    void on_timeout() override { io_.send("421 timeout\r\n"); }
    void on_shutdown() override { io_.send("421 shutting down\r\n"); }
    bool busy() const override { return busy_; }

private:
    SessionIo& io_;
    SessionLog& log_;
    bool busy_ = false;
};

// A Server on its own loop thread.
class RunningServer {
public:
    RunningServer(const std::string& config_path, SessionLog& log) {
        // Every protocol runs the test session, with the real protocols' idle timeout parameters.
        ProtocolRegistry protocols;
        const std::pair<config::Protocol, const char*> timeouts[] = {{config::Protocol::Smtp, "smtpd_timeout"},
                                                                     {config::Protocol::Pop3, "pop3_idle_timeout"},
                                                                     {config::Protocol::Imap, "imap_idle_timeout"},
                                                                     {config::Protocol::Http, "http_idle_timeout"}};
        for (auto& [p, timeout] : timeouts) {
            ProtocolEntry e;
            e.protocol = p;
            e.name = e.log_service = std::string(config::to_string(p));
            e.idle_timeout_parameter = timeout;
            e.goodbye = [](Goodbye, std::string_view) { return std::string(); };
            e.make_session = [&log](SessionIo& io) { return std::make_unique<TestSession>(io, log); };
            protocols.add(std::move(e));
        }
        server = std::make_unique<Server>(io, config::Environment{false, "test.example"}, config_path, true, std::move(protocols));
        started = server->start();
        if (!started) return;
        server->handle_signals();
        thread = std::thread([this] {
            mark_loop_thread(true);
            io.run();
            mark_loop_thread(false);
            finished = true;
        });
    }
    ~RunningServer() {
        if (thread.joinable()) {
            asio::post(io, [this] { server->shutdown(); });
            if (!wait_finished(std::chrono::seconds(5))) {
                io.stop();
                thread.join();
            }
        }
    }
    bool reload() {
        std::promise<bool> p;
        asio::post(io, [&] { server->reload([&p](bool ok) { p.set_value(ok); }); });
        return p.get_future().get();
    }
    bool wait_finished(std::chrono::seconds limit) {
        if (!thread.joinable()) return true;
        auto until = std::chrono::steady_clock::now() + limit;
        while (!finished && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (finished) thread.join();
        return finished;
    }

    asio::io_context io;
    std::unique_ptr<Server> server;
    std::thread thread;
    std::atomic<bool> finished{false};
    bool started = false;
};

// Blocking client with a receive timeout.
class Client {
public:
    explicit Client(std::uint16_t port, const std::string& host = "127.0.0.1", int rcvbuf = 0) : socket_(io_) {
        std::error_code ec;
        if (rcvbuf > 0) {
            socket_.open(asio::ip::tcp::v4());
            socket_.set_option(asio::socket_base::receive_buffer_size(rcvbuf));
        }
        socket_.connect({asio::ip::make_address(host), port}, ec);
        connected = !ec;
        if (connected) {
            timeval tv{5, 0};
            ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        }
    }
    void send(const std::string& s) {
        std::error_code ec;
        if (tls_) asio::write(*tls_, asio::buffer(s), ec);
        else asio::write(socket_, asio::buffer(s), ec);
    }
    // One CRLF-terminated line without the CRLF; "" on EOF, error or timeout.
    std::string line() {
        std::error_code ec;
        std::size_t n = tls_ ? asio::read_until(*tls_, asio::dynamic_buffer(buf_), "\r\n", ec)
                             : asio::read_until(socket_, asio::dynamic_buffer(buf_), "\r\n", ec);
        if (ec && n == 0) return "";
        std::string l = buf_.substr(0, n - 2);
        buf_.erase(0, n);
        return l;
    }
    // True when the server closed the connection (EOF) within the timeout.
    bool closed() {
        char c;
        std::error_code ec;
        if (tls_) tls_->read_some(asio::buffer(&c, 1), ec);
        else socket_.read_some(asio::buffer(&c, 1), ec);
        return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated;
    }
    // TLS client handshake over the existing connection; sni may be empty.
    bool start_tls(const std::string& sni = "") {
        ctx_.set_verify_mode(asio::ssl::verify_none);
        tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, ctx_);
        if (!sni.empty()) SSL_set_tlsext_host_name(tls_->native_handle(), sni.c_str());
        std::error_code ec;
        tls_->handshake(asio::ssl::stream_base::client, ec);
        return !ec;
    }
    std::string peer_cn() {
        X509* cert = SSL_get_peer_certificate(tls_->native_handle());
        if (!cert) return "";
        char buf[256] = {};
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
        X509_free(cert);
        return buf;
    }
    bool connected = false;

private:
    asio::io_context io_;
    asio::ip::tcp::socket socket_;
    asio::ssl::context ctx_{asio::ssl::context::tls_client};
    std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
    std::string buf_;
};

}  // namespace pillarbox::test
