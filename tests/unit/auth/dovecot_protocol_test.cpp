// DovecotProtocol against a real Authenticator with an in-memory backend: the handshake, AUTH with
// resp=, CONT round trips, the limits and the protocol errors that end a connection; and
// DovecotAuthSocket on a real unix socket (file replacement, ownership, mode, removal).
#include <catch2/catch.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <thread>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/authenticator.hpp"
#include "auth/dovecot_protocol.hpp"
#include "auth/dovecot_socket.hpp"
#include "auth/password.hpp"
#include "server/worker_pool.hpp"
#include "tests/unit/test_config.hpp"

using namespace pillarbox;
using namespace pillarbox::auth;
using namespace std::chrono_literals;

namespace {

class FakeBackend : public Backend {
public:
    std::string name() const override { return "fake"; }
    std::optional<Credentials> lookup(const std::string& login) override {
        if (login != "bob@example.com") return std::nullopt;
        Credentials c;
        c.user = login;
        c.password = "{PLAIN}secret";
        return c;
    }
    bool may_have_cram_secrets() const override { return true; }
};

const std::string kCookie = "0123456789abcdef0123456789abcdef";

std::string b64(std::string_view raw) { return base64_encode(raw); }
std::string plain(std::string_view user, std::string_view pass) {
    std::string s;
    s += '\0';
    s += user;
    s += '\0';
    s += pass;
    return b64(s);
}

// One protocol instance wired to a real Authenticator; output collected as text.
struct Fixture {
    asio::io_context loop;
    WorkerPool workers{loop, 2};
    std::unique_ptr<Authenticator> auth;
    std::string out;
    std::unique_ptr<DovecotProtocol> proto;

    explicit Fixture(DovecotProtocolLimits limits = {}, std::vector<std::string> mechanisms = {}) {
        AuthSettings s = pillarbox::test::auth_settings();
        if (!mechanisms.empty()) s.mechanisms = mechanisms;
        s.throttle.initial = 1ms;
        s.throttle.max = 2ms;
        s.rehash = false;  // no argon2id in unit tests
        s.server_name = "mail.example.com";
        std::vector<std::unique_ptr<Backend>> backends;
        backends.push_back(std::make_unique<FakeBackend>());
        auth = std::make_unique<Authenticator>(loop, workers, s, std::move(backends));
        DovecotIdentity id;
        id.spid = 42;
        id.cuid = 7;
        id.cookie = kCookie;
        proto = std::make_unique<DovecotProtocol>(*auth, id, [this](std::string_view b) { out.append(b); }, limits,
                                                  "test");
        proto->start();
    }
    ~Fixture() {
        proto.reset();
        workers.join();
    }

    // Runs the loop until `n` more lines of output arrived (or 5 s passed).
    std::vector<std::string> wait_lines(std::size_t n) {
        auto deadline = std::chrono::steady_clock::now() + 5s;
        while (count_lines() < n && std::chrono::steady_clock::now() < deadline) {
            loop.restart();
            loop.run_one_for(10ms);
        }
        return take();
    }
    std::size_t count_lines() const { return static_cast<std::size_t>(std::count(out.begin(), out.end(), '\n')); }
    std::vector<std::string> take() {
        std::vector<std::string> lines;
        std::size_t pos = 0;
        for (auto nl = out.find('\n'); nl != std::string::npos; nl = out.find('\n', pos)) {
            lines.push_back(out.substr(pos, nl - pos));
            pos = nl + 1;
        }
        out.erase(0, pos);
        return lines;
    }
    void settle() {
        for (int i = 0; i < 20; ++i) {
            loop.restart();
            loop.run_for(5ms);
        }
    }
    bool handshake() {
        take();
        return proto->feed("VERSION\t1\t0\nCPID\t4242\n");
    }
};

const std::string kAuthPrefix = "service=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.1";

}  // namespace

TEST_CASE("dovecot: server handshake lists the mechanisms with Dovecot's flags", "[auth][dovecot]") {
    Fixture f;
    auto lines = f.take();
    std::vector<std::string> want{"VERSION\t1\t2",
                                  "MECH\tSCRAM-SHA-256\tmutual-auth",
                                  "MECH\tSCRAM-SHA-1\tmutual-auth",
                                  "MECH\tPLAIN\tplaintext",
                                  "MECH\tLOGIN\tplaintext",
                                  "SPID\t42",
                                  "CUID\t7",
                                  "COOKIE\t" + kCookie,
                                  "DONE"};
    CHECK(lines == want);
}

TEST_CASE("dovecot: CRAM-MD5 is announced as dictionary/active", "[auth][dovecot]") {
    Fixture f({}, {"CRAM-MD5", "PLAIN"});
    auto lines = f.take();
    CHECK(lines.at(1) == "MECH\tCRAM-MD5\tdictionary\tactive");
    CHECK(lines.at(2) == "MECH\tPLAIN\tplaintext");
}

TEST_CASE("dovecot: identity has a fresh 128-bit hex cookie", "[auth][dovecot]") {
    auto a = DovecotIdentity::make(1), b = DovecotIdentity::make(2);
    CHECK(a.cookie.size() == 32);
    CHECK(a.cookie.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(a.cookie != b.cookie);
    CHECK(a.spid > 0);
    CHECK(b.cuid == 2);
}

TEST_CASE("dovecot: AUTH PLAIN with resp= answers OK with the user", "[auth][dovecot]") {
    Fixture f;
    REQUIRE(f.handshake());
    REQUIRE(f.proto->feed("AUTH\t1\tPLAIN\t" + kAuthPrefix + "\tsecured\tresp=" + plain("bob@example.com", "secret") + "\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"OK\t1\tuser=bob@example.com"});
    CHECK(f.proto->requests_in_flight() == 0);
}

TEST_CASE("dovecot: AUTH PLAIN with a wrong password answers FAIL with the user", "[auth][dovecot]") {
    Fixture f;
    REQUIRE(f.handshake());
    REQUIRE(f.proto->feed("AUTH\t1\tPLAIN\t" + kAuthPrefix + "\tsecured\tresp=" + plain("bob@example.com", "wrong") + "\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"FAIL\t1\tuser=bob@example.com"});
    // an unknown user fails the same way
    REQUIRE(f.proto->feed("AUTH\t2\tPLAIN\t" + kAuthPrefix + "\tsecured\tresp=" + plain("eve@example.com", "secret") + "\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"FAIL\t2\tuser=eve@example.com"});
}

TEST_CASE("dovecot: PLAIN without the secured flag is refused before TLS", "[auth][dovecot]") {
    Fixture f;
    REQUIRE(f.handshake());
    REQUIRE(f.proto->feed("AUTH\t1\tPLAIN\t" + kAuthPrefix + "\tresp=" + plain("bob@example.com", "secret") + "\n"));
    auto lines = f.wait_lines(1);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].starts_with("FAIL\t1\t"));
    CHECK(lines[0].find("reason=Plaintext authentication disallowed") != std::string::npos);
    // transport=TLS counts as secured too
    REQUIRE(f.proto->feed("AUTH\t2\tPLAIN\t" + kAuthPrefix + "\ttransport=TLS\tresp=" + plain("bob@example.com", "secret") + "\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"OK\t2\tuser=bob@example.com"});
}

TEST_CASE("dovecot: AUTH LOGIN goes through CONT round trips", "[auth][dovecot]") {
    Fixture f;
    REQUIRE(f.handshake());
    REQUIRE(f.proto->feed("AUTH\t5\tLOGIN\t" + kAuthPrefix + "\tsecured\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"CONT\t5\t" + b64("Username:")});
    REQUIRE(f.proto->feed("CONT\t5\t" + b64("bob@example.com") + "\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"CONT\t5\t" + b64("Password:")});
    REQUIRE(f.proto->feed("CONT\t5\t" + b64("secret") + "\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"OK\t5\tuser=bob@example.com"});
    // the id is free again once the request finished
    REQUIRE(f.proto->feed("AUTH\t5\tLOGIN\t" + kAuthPrefix + "\tsecured\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"CONT\t5\t" + b64("Username:")});
}

TEST_CASE("dovecot: fed one byte at a time", "[auth][dovecot]") {
    Fixture f;
    f.take();
    std::string all = "VERSION\t1\t0\r\nCPID\t99\r\nAUTH\t3\tplain\t" + kAuthPrefix + "\tsecured\tresp=" +
                      plain("bob@example.com", "secret") + "\r\n";
    for (char c : all) REQUIRE(f.proto->feed(std::string_view(&c, 1)));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"OK\t3\tuser=bob@example.com"});
    CHECK(f.proto->buffered() == 0);
}

TEST_CASE("dovecot: several requests in flight at once", "[auth][dovecot]") {
    Fixture f;
    REQUIRE(f.handshake());
    REQUIRE(f.proto->feed("AUTH\t1\tPLAIN\t" + kAuthPrefix + "\tsecured\tresp=" + plain("bob@example.com", "secret") +
                          "\nAUTH\t2\tLOGIN\t" + kAuthPrefix + "\tsecured\n" + "AUTH\t3\tPLAIN\t" + kAuthPrefix +
                          "\tsecured\tresp=" + plain("bob@example.com", "bad") + "\n"));
    auto lines = f.wait_lines(3);
    std::sort(lines.begin(), lines.end());
    CHECK(lines == std::vector<std::string>{"CONT\t2\t" + b64("Username:"), "FAIL\t3\tuser=bob@example.com",
                                            "OK\t1\tuser=bob@example.com"});
    CHECK(f.proto->requests_in_flight() == 1);
}

TEST_CASE("dovecot: unknown mechanism answers FAIL and keeps the connection", "[auth][dovecot]") {
    Fixture f;
    REQUIRE(f.handshake());
    REQUIRE(f.proto->feed("AUTH\t1\tGSSAPI\t" + kAuthPrefix + "\tsecured\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"FAIL\t1\treason=Unsupported authentication mechanism"});
    // a -PLUS mechanism is never offered here: no channel-binding data reaches this socket
    REQUIRE(f.proto->feed("AUTH\t2\tSCRAM-SHA-256-PLUS\t" + kAuthPrefix + "\tsecured\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"FAIL\t2\treason=Unsupported authentication mechanism"});
    CHECK_FALSE(f.proto->failed());
}

TEST_CASE("dovecot: a duplicate id in flight ends the connection", "[auth][dovecot]") {
    Fixture f;
    REQUIRE(f.handshake());
    REQUIRE(f.proto->feed("AUTH\t1\tLOGIN\t" + kAuthPrefix + "\tsecured\n"));
    f.wait_lines(1);
    CHECK_FALSE(f.proto->feed("AUTH\t1\tLOGIN\t" + kAuthPrefix + "\tsecured\n"));
    CHECK(f.proto->failed());
    CHECK(f.proto->error().find("duplicate") != std::string::npos);
    CHECK_FALSE(f.proto->feed("CONT\t1\t" + b64("bob@example.com") + "\n"));
}

TEST_CASE("dovecot: CONT for an unknown id answers FAIL", "[auth][dovecot]") {
    Fixture f;
    REQUIRE(f.handshake());
    REQUIRE(f.proto->feed("CONT\t9\t" + b64("x") + "\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"FAIL\t9\treason=Authentication request timed out"});
    CHECK_FALSE(f.proto->failed());
}

TEST_CASE("dovecot: CONT while the server is still working fails that request", "[auth][dovecot]") {
    Fixture f;
    REQUIRE(f.handshake());
    // PLAIN with resp= goes straight to the backend; a CONT now is out of turn
    REQUIRE(f.proto->feed("AUTH\t1\tPLAIN\t" + kAuthPrefix + "\tsecured\tresp=" + plain("bob@example.com", "secret") +
                          "\nCONT\t1\t" + b64("x") + "\n"));
    auto lines = f.wait_lines(1);
    CHECK(lines == std::vector<std::string>{"FAIL\t1\treason=Unexpected continuation"});
    f.settle();  // the cancelled exchange's answer must not show up
    CHECK(f.take().empty());
}

TEST_CASE("dovecot: CANCEL drops a request silently", "[auth][dovecot]") {
    Fixture f;
    REQUIRE(f.handshake());
    REQUIRE(f.proto->feed("AUTH\t1\tLOGIN\t" + kAuthPrefix + "\tsecured\n"));
    f.wait_lines(1);
    REQUIRE(f.proto->feed("CANCEL\t1\n"));
    CHECK(f.proto->requests_in_flight() == 0);
    REQUIRE(f.proto->feed("CONT\t1\t" + b64("bob@example.com") + "\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"FAIL\t1\treason=Authentication request timed out"});
}

TEST_CASE("dovecot: bad versions and handshakes end the connection", "[auth][dovecot]") {
    SECTION("major version 2") {
        Fixture f;
        CHECK_FALSE(f.proto->feed("VERSION\t2\t0\n"));
        CHECK(f.proto->failed());
    }
    SECTION("no VERSION first") {
        Fixture f;
        CHECK_FALSE(f.proto->feed("CPID\t1\n"));
    }
    SECTION("AUTH before CPID") {
        Fixture f;
        CHECK_FALSE(f.proto->feed("VERSION\t1\t1\nAUTH\t1\tPLAIN\tservice=smtp\n"));
    }
    SECTION("CPID 0") {
        Fixture f;
        CHECK_FALSE(f.proto->feed("VERSION\t1\t1\nCPID\t0\n"));
    }
    SECTION("a minor version we don't know is fine") {
        Fixture f;
        CHECK(f.proto->feed("VERSION\t1\t99\nCPID\t5\n"));
    }
}

TEST_CASE("dovecot: malformed requests end the connection", "[auth][dovecot]") {
    Fixture f;
    REQUIRE(f.handshake());
    std::string bad;
    SECTION("unknown command") { bad = "HELLO\t1\n"; }
    SECTION("AUTH without mechanism") { bad = "AUTH\t1\n"; }
    SECTION("AUTH with a non-numeric id") { bad = "AUTH\tx\tPLAIN\tservice=smtp\n"; }
    SECTION("AUTH with an id over 32 bits") { bad = "AUTH\t4294967296\tPLAIN\tservice=smtp\n"; }
    SECTION("AUTH without service") { bad = "AUTH\t1\tPLAIN\tsecured\n"; }
    SECTION("parameters after resp") { bad = "AUTH\t1\tPLAIN\tservice=smtp\tresp=AAAA\tsecured\n"; }
    SECTION("CONT without data") { bad = "CONT\t1\n"; }
    SECTION("empty line") { bad = "\n"; }
    SECTION("NUL byte") { bad = std::string("AUTH\t1\tPLAIN\tservice=smtp\0\n", 27); }
    CHECK_FALSE(f.proto->feed(bad));
    CHECK(f.proto->failed());
    CHECK(f.take().empty());
}

TEST_CASE("dovecot: an overlong line ends the connection", "[auth][dovecot]") {
    DovecotProtocolLimits limits;
    limits.max_line = 1024;
    SECTION("without a newline yet") {
        Fixture f(limits);
        REQUIRE(f.handshake());
        CHECK(f.proto->feed(std::string(1000, 'A')));
        CHECK_FALSE(f.proto->feed(std::string(100, 'A')));
        CHECK(f.proto->buffered() == 0);
    }
    SECTION("a complete line") {
        Fixture f(limits);
        REQUIRE(f.handshake());
        CHECK_FALSE(f.proto->feed("CONT\t1\t" + std::string(1100, 'A') + "\n"));
    }
    SECTION("up to the limit is fine") {
        Fixture f(limits);
        REQUIRE(f.handshake());
        std::string line = "CONT\t1\t";
        line += std::string(limits.max_line - line.size(), 'A');
        CHECK(f.proto->feed(line + "\n"));
    }
}

TEST_CASE("dovecot: requests over the limit evict the oldest one waiting for the client", "[auth][dovecot]") {
    DovecotProtocolLimits limits;
    limits.max_requests = 2;
    Fixture f(limits);
    REQUIRE(f.handshake());
    REQUIRE(f.proto->feed("AUTH\t1\tLOGIN\t" + kAuthPrefix + "\tsecured\nAUTH\t2\tLOGIN\t" + kAuthPrefix + "\tsecured\n"));
    f.wait_lines(2);
    REQUIRE(f.proto->feed("AUTH\t3\tLOGIN\t" + kAuthPrefix + "\tsecured\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"CONT\t3\t" + b64("Username:")});
    CHECK(f.proto->requests_in_flight() == 2);
    REQUIRE(f.proto->feed("CONT\t1\t" + b64("bob@example.com") + "\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"FAIL\t1\treason=Authentication request timed out"});
    REQUIRE(f.proto->feed("CONT\t2\t" + b64("bob@example.com") + "\n"));
    CHECK(f.wait_lines(1) == std::vector<std::string>{"CONT\t2\t" + b64("Password:")});
}

TEST_CASE("dovecot: requests over the limit fail when none can be evicted", "[auth][dovecot]") {
    DovecotProtocolLimits limits;
    limits.max_requests = 1;
    Fixture f(limits);
    REQUIRE(f.handshake());
    // the first one is with the backend (not waiting for the client), so it stays
    REQUIRE(f.proto->feed("AUTH\t1\tPLAIN\t" + kAuthPrefix + "\tsecured\tresp=" + plain("bob@example.com", "secret") +
                          "\nAUTH\t2\tPLAIN\t" + kAuthPrefix + "\tsecured\tresp=" + plain("bob@example.com", "secret") + "\n"));
    auto lines = f.wait_lines(2);
    std::sort(lines.begin(), lines.end());
    CHECK(lines == std::vector<std::string>{"FAIL\t2\ttemp\tcode=temp_fail\treason=Too many authentication requests in progress",
                                            "OK\t1\tuser=bob@example.com"});
}

TEST_CASE("dovecot: destroying the protocol with requests in flight sends nothing more", "[auth][dovecot]") {
    Fixture f;
    REQUIRE(f.handshake());
    REQUIRE(f.proto->feed("AUTH\t1\tPLAIN\t" + kAuthPrefix + "\tsecured\tresp=" + plain("bob@example.com", "wrong") + "\n"));
    f.proto.reset();
    f.settle();
    CHECK(f.out.empty());
}

TEST_CASE("dovecot: tab-escaping", "[auth][dovecot]") {
    std::string raw("a\tb\nc\rd\001e", 10);
    raw += '\0';
    std::string esc = dovecot_escape(raw);
    CHECK(esc.find_first_of(std::string("\t\n\r\0", 4)) == std::string::npos);
    CHECK(dovecot_unescape(esc) == raw);
    CHECK(dovecot_unescape("x\001") == "x\001");  // a trailing escape char stays as it is
}

namespace {

// A DovecotAuthSocket on a loop thread of its own; the test thread is the blocking client.
struct SocketFixture {
    std::filesystem::path dir;
    asio::io_context loop;
    WorkerPool workers{loop, 2};
    std::unique_ptr<Authenticator> auth;
    std::unique_ptr<DovecotAuthSocket> sock;
    asio::executor_work_guard<asio::io_context::executor_type> guard{loop.get_executor()};
    std::thread thread;

    SocketFixture() {
        char tmpl[] = "/tmp/pillarbox-dovecot-XXXXXX";
        dir = mkdtemp(tmpl);
        AuthSettings s = pillarbox::test::auth_settings();
        s.throttle.initial = 1ms;
        s.throttle.max = 2ms;
        s.rehash = false;
        std::vector<std::unique_ptr<Backend>> backends;
        backends.push_back(std::make_unique<FakeBackend>());
        auth = std::make_unique<Authenticator>(loop, workers, s, std::move(backends));
        thread = std::thread([this] { loop.run(); });
    }
    ~SocketFixture() {
        on_loop([this] { sock.reset(); });
        guard.reset();
        loop.stop();
        thread.join();
        workers.join();
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    std::string path(const char* name = "auth") const { return (dir / name).string(); }

    template <typename F>
    void on_loop(F f) {
        std::promise<void> done;
        asio::post(loop, [&] {
            try {
                f();
                done.set_value();
            } catch (...) {
                done.set_exception(std::current_exception());
            }
        });
        done.get_future().get();
    }
    DovecotAuthSocket::Settings settings() const {
        DovecotAuthSocket::Settings s;
        s.path = path();
        s.mode = 0600;
        return s;
    }
    void start(DovecotAuthSocket::Settings s) {
        on_loop([&] {
            sock = std::make_unique<DovecotAuthSocket>(loop, *auth, s);
            sock->start();
        });
    }
    void stop() {
        on_loop([this] { sock->stop(); });
    }
};

int unix_socket() { return ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); }

sockaddr_un address(const std::string& path) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    return sa;
}

// A blocking client with a read timeout, so a bug fails the test instead of hanging it.
struct Client {
    int fd = -1;
    std::string buf;
    bool eof = false;
    explicit Client(const std::string& path) {
        fd = unix_socket();
        timeval tv{5, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        auto sa = address(path);
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    }
    ~Client() { ::close(fd); }
    void send(const std::string& s) { REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size())); }
    // The next line, or nullopt at EOF / timeout.
    std::optional<std::string> line() {
        for (;;) {
            auto nl = buf.find('\n');
            if (nl != std::string::npos) {
                std::string l = buf.substr(0, nl);
                buf.erase(0, nl + 1);
                return l;
            }
            char tmp[4096];
            ssize_t n = ::read(fd, tmp, sizeof tmp);
            if (n <= 0) {
                eof = n == 0;
                return std::nullopt;
            }
            buf.append(tmp, static_cast<std::size_t>(n));
        }
    }
    std::vector<std::string> handshake() {
        std::vector<std::string> lines;
        while (auto l = line()) {
            lines.push_back(*l);
            if (*l == "DONE") break;
        }
        return lines;
    }
};

}  // namespace

TEST_CASE("dovecot socket: authenticates over a real unix socket and removes the file on stop", "[auth][dovecot]") {
    SocketFixture f;
    f.start(f.settings());
    struct stat st{};
    REQUIRE(::lstat(f.path().c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(st.st_uid == ::geteuid());
    {
        Client c(f.path());
        auto hs = c.handshake();
        REQUIRE(hs.size() >= 5);
        CHECK(hs.front() == "VERSION\t1\t2");
        CHECK(hs.back() == "DONE");
        c.send("VERSION\t1\t0\nCPID\t123\nAUTH\t1\tPLAIN\t" + kAuthPrefix + "\tsecured\tresp=" +
               plain("bob@example.com", "secret") + "\n");
        CHECK(c.line() == "OK\t1\tuser=bob@example.com");
        c.send("AUTH\t2\tLOGIN\t" + kAuthPrefix + "\tsecured\n");
        CHECK(c.line() == "CONT\t2\t" + b64("Username:"));
        c.send("CONT\t2\t" + b64("bob@example.com") + "\nCONT\t2\t");  // the rest comes later
        CHECK(c.line() == "CONT\t2\t" + b64("Password:"));
        c.send(b64("nope") + "\n");
        CHECK(c.line() == "FAIL\t2\tuser=bob@example.com");
    }
    f.stop();
    CHECK(::lstat(f.path().c_str(), &st) != 0);
}

TEST_CASE("dovecot socket: a protocol error closes the connection", "[auth][dovecot]") {
    SocketFixture f;
    f.start(f.settings());
    Client c(f.path());
    c.handshake();
    c.send("VERSION\t2\t0\n");
    CHECK_FALSE(c.line().has_value());
    CHECK(c.eof);
}

TEST_CASE("dovecot socket: connections over max_connections are closed at once", "[auth][dovecot]") {
    SocketFixture f;
    auto s = f.settings();
    s.max_connections = 1;
    f.start(s);
    Client a(f.path());
    CHECK(a.handshake().back() == "DONE");
    Client b(f.path());
    CHECK_FALSE(b.line().has_value());
    CHECK(b.eof);
}

TEST_CASE("dovecot socket: a stale socket file is replaced", "[auth][dovecot]") {
    SocketFixture f;
    {
        int fd = unix_socket();
        auto sa = address(f.path());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        ::close(fd);  // the file stays, with nobody behind it (like after kill -9)
    }
    f.start(f.settings());
    Client c(f.path());
    CHECK(c.handshake().back() == "DONE");
}

TEST_CASE("dovecot socket: start refuses what it must not touch", "[auth][dovecot]") {
    SocketFixture f;
    auto s = f.settings();
    std::string msg;
    auto start_error = [&](DovecotAuthSocket::Settings st) {
        try {
            f.start(st);
        } catch (const std::runtime_error& e) {
            return std::string(e.what());
        }
        return std::string("(started)");
    };
    SECTION("a regular file at the path") {
        std::ofstream(f.path()) << "data\n";
        CHECK_THAT(start_error(s), Catch::Contains("not a socket"));
        std::ifstream in(f.path());
        std::string text;
        std::getline(in, text);
        CHECK(text == "data");
    }
    SECTION("a socket someone is listening on") {
        int fd = unix_socket();
        auto sa = address(f.path());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        REQUIRE(::listen(fd, 1) == 0);
        CHECK_THAT(start_error(s), Catch::Contains("another process is listening"));
        ::close(fd);
    }
    SECTION("a missing directory") {
        s.path = (f.dir / "nope" / "auth").string();
        CHECK_THAT(start_error(s), Catch::Contains("nope"));
    }
    SECTION("a relative path") {
        s.path = "auth";
        CHECK_THAT(start_error(s), Catch::Contains("absolute"));
    }
    SECTION("an unknown user") {
        s.user = "no-such-user-pillarbox";
        CHECK_THAT(start_error(s), Catch::Contains("no such user"));
        CHECK_FALSE(std::filesystem::exists(f.path()));
    }
    SECTION("an unknown group") {
        s.group = "no-such-group-pillarbox";
        CHECK_THAT(start_error(s), Catch::Contains("no such group"));
    }
}

TEST_CASE("dovecot socket: owner and group are set by name", "[auth][dovecot]") {
    if (::geteuid() != 0) {
        WARN("not root: chown can't be tested");
        return;
    }
    SocketFixture f;
    auto s = f.settings();
    s.user = "nobody";
    s.group = "nogroup";
    s.mode = 0660;
    f.start(s);
    struct stat st{};
    REQUIRE(::lstat(f.path().c_str(), &st) == 0);
    CHECK(st.st_uid == 65534u);
    CHECK(st.st_gid == 65534u);
    CHECK((st.st_mode & 07777) == 0660);
}
