// The c-ares resolver on the Asio loop against a tiny authoritative DNS server on 127.0.0.1:
// every record type and status, timeouts, cancellation by destruction, load, reverse_name.
#include <catch2/catch.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "server/dns.hpp"

using namespace pillarbox::dns;
using namespace std::chrono_literals;

namespace {

constexpr std::uint16_t kA = 1, kPTR = 12, kMX = 15, kTXT = 16, kAAAA = 28;

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string u16(unsigned v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }

std::string wire_name(const std::string& name) {
    std::string out;
    std::size_t start = 0;
    while (start < name.size()) {
        auto dot = name.find('.', start);
        if (dot == std::string::npos) dot = name.size();
        out += static_cast<char>(dot - start);
        out += name.substr(start, dot - start);
        start = dot + 1;
    }
    return out + '\0';
}

std::string rdata_a(const std::string& ip) {
    auto a = asio::ip::make_address_v4(ip).to_bytes();
    return {a.begin(), a.end()};
}
std::string rdata_aaaa(const std::string& ip) {
    auto a = asio::ip::make_address_v6(ip).to_bytes();
    return {a.begin(), a.end()};
}
std::string rdata_mx(unsigned pref, const std::string& host) { return u16(pref) + wire_name(host); }
std::string rdata_txt(const std::vector<std::string>& strings) {
    std::string out;
    for (auto& s : strings) out += static_cast<char>(s.size()) + s;
    return out;
}

// Answers from a fixed table on its own thread, so a burst of queries is drained while the
// resolver's loop is still sending. Special names: servfail., refused., silent. (never answers),
// truncated. (a reply cut off inside its answer section), big. (UDP says TC: ask again over TCP).
class TestDnsServer {
public:
    TestDnsServer() : udp_(io_), tcp_(io_) {
        // c-ares asks TCP on the UDP port, so both must get the same number.
        for (;;) {
            udp_.open(asio::ip::udp::v4());
            udp_.bind({asio::ip::address_v4::loopback(), 0});
            asio::error_code ec;
            tcp_.open(asio::ip::tcp::v4());
            tcp_.bind({asio::ip::address_v4::loopback(), udp_.local_endpoint().port()}, ec);
            if (!ec) tcp_.listen(asio::socket_base::max_listen_connections, ec);
            if (!ec) break;
            udp_.close();
            tcp_.close();
        }
        udp_.set_option(asio::socket_base::receive_buffer_size(1 << 20));
    }
    ~TestDnsServer() {
        io_.stop();
        if (thread_.joinable()) thread_.join();
    }

    void add(const std::string& name, std::uint16_t type, std::string rdata) {
        table_[{lower(name), type}].push_back(std::move(rdata));
        names_.insert(lower(name));
    }
    void start() {
        receive();
        accept();
        thread_ = std::thread([this] { io_.run(); });
    }
    std::string address() const { return "127.0.0.1:" + std::to_string(udp_.local_endpoint().port()); }
    int queries_for(const std::string& name) {
        std::lock_guard lock(mu_);
        return counts_[lower(name)];
    }
    int tcp_queries() const { return tcp_queries_; }

private:
    void receive() {
        udp_.async_receive_from(asio::buffer(buf_), peer_, [this](const asio::error_code& ec, std::size_t n) {
            if (ec) return;
            if (auto reply = answer(std::string(buf_, n), false)) {
                asio::error_code ignored;
                udp_.send_to(asio::buffer(*reply), peer_, 0, ignored);
            }
            receive();
        });
    }

    struct TcpConn {
        explicit TcpConn(asio::ip::tcp::socket s) : sock(std::move(s)) {}
        asio::ip::tcp::socket sock;
        unsigned char len[2];
        std::string msg, out;
    };

    void accept() {
        tcp_.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket s) {
            if (ec) return;
            read_tcp(std::make_shared<TcpConn>(std::move(s)));
            accept();
        });
    }

    void read_tcp(std::shared_ptr<TcpConn> c) {
        asio::async_read(c->sock, asio::buffer(c->len), [this, c](const asio::error_code& ec, std::size_t) {
            if (ec) return;
            c->msg.resize(static_cast<std::size_t>(c->len[0] << 8 | c->len[1]));
            asio::async_read(c->sock, asio::buffer(c->msg), [this, c](const asio::error_code& ec, std::size_t) {
                if (ec) return;
                ++tcp_queries_;
                if (auto reply = answer(c->msg, true)) {
                    c->out = u16(reply->size()) + *reply;
                    asio::error_code ignored;
                    asio::write(c->sock, asio::buffer(c->out), ignored);
                }
                read_tcp(c);
            });
        });
    }

    std::optional<std::string> answer(const std::string& q, bool tcp) {
        if (q.size() < 12) return std::nullopt;
        std::size_t pos = 12;
        std::string name;
        while (pos < q.size() && q[pos] != 0) {
            std::size_t len = static_cast<unsigned char>(q[pos]);
            if (pos + 1 + len > q.size()) return std::nullopt;
            name += (name.empty() ? "" : ".") + q.substr(pos + 1, len);
            pos += 1 + len;
        }
        if (pos + 5 > q.size()) return std::nullopt;
        std::string question = q.substr(12, pos + 5 - 12);
        std::uint16_t type = static_cast<std::uint16_t>(static_cast<unsigned char>(q[pos + 1]) << 8 |
                                                        static_cast<unsigned char>(q[pos + 2]));
        name = lower(name);
        {
            std::lock_guard lock(mu_);
            ++counts_[name];
        }
        if (name == "silent.example.test") return std::nullopt;

        unsigned rcode = 0;
        std::vector<std::string> answers;
        if (name == "servfail.example.test") rcode = 2;
        else if (name == "refused.example.test") rcode = 5;
        else if (auto it = table_.find({name, type}); it != table_.end()) answers = it->second;
        else if (!names_.count(name) && name != "truncated.example.test") rcode = 3;

        unsigned flags = 0x8000 | 0x0400 | (static_cast<unsigned char>(q[2]) & 0x01) << 8 | rcode;
        if (name == "big.example.test" && !tcp) {
            flags |= 0x0200;
            answers.clear();
        }
        std::string reply = q.substr(0, 2) + u16(flags) + u16(1) + u16(answers.size()) + u16(0) + u16(0) + question;
        for (auto& rd : answers) reply += u16(0xc00c) + u16(type) + u16(1) + u16(0) + u16(300) + u16(rd.size()) + rd;
        if (name == "truncated.example.test")
            reply = q.substr(0, 2) + u16(flags) + u16(1) + u16(1) + u16(0) + u16(0) + question + u16(0xc00c) + u16(type);
        return reply;
    }

    asio::io_context io_;
    asio::ip::udp::socket udp_;
    asio::ip::tcp::acceptor tcp_;
    asio::ip::udp::endpoint peer_;
    char buf_[1500];
    std::thread thread_;
    std::map<std::pair<std::string, std::uint16_t>, std::vector<std::string>> table_;
    std::set<std::string> names_;
    std::mutex mu_;
    std::map<std::string, int> counts_;
    std::atomic<int> tcp_queries_{0};
};

struct Fixture {
    TestDnsServer server;
    asio::io_context loop;

    Fixture() {
        server.add("www.example.test", kA, rdata_a("192.0.2.1"));
        server.add("www.example.test", kA, rdata_a("192.0.2.2"));
        server.add("www.example.test", kAAAA, rdata_aaaa("2001:db8::1"));
        server.add("example.test", kMX, rdata_mx(10, "mx1.example.test"));
        server.add("example.test", kMX, rdata_mx(20, "mx2.example.test"));
        server.add("example.test", kTXT, rdata_txt({"v=spf1 ", "-all"}));
        server.add("example.test", kTXT, rdata_txt({"hello"}));
        server.add("1.2.0.192.in-addr.arpa", kPTR, wire_name("www.example.test"));
        server.add("2.2.0.192.in-addr.arpa", kPTR, wire_name("a.example.test"));
        server.add("2.2.0.192.in-addr.arpa", kPTR, wire_name("b.example.test"));
        server.add(reverse_name("2001:db8::1") + ".ip6.arpa", kPTR, wire_name("v6.example.test"));
        for (int i = 0; i < 20; ++i) server.add("big.example.test", kTXT, rdata_txt({std::string(200, char('a' + i))}));
        server.add("2.2.0.192.dnsbl.test", kA, rdata_a("127.0.0.2"));
        for (int i = 0; i < 200; ++i)
            server.add("h" + std::to_string(i) + ".bulk.example.test", kA,
                       rdata_a("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256)));
        server.start();
    }

    std::unique_ptr<Resolver> resolver(std::chrono::milliseconds timeout = 2000ms, int tries = 1) {
        ResolverSettings s;
        s.servers = {server.address()};
        s.timeout = timeout;
        s.tries = tries;
        return make_resolver(loop, s);
    }

    template <class Pred>
    bool run_until(Pred done, std::chrono::milliseconds limit = 5000ms) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done() && std::chrono::steady_clock::now() < deadline) {
            if (loop.stopped()) loop.restart();
            if (loop.run_one_for(10ms) == 0) std::this_thread::sleep_for(1ms);
        }
        return done();
    }

    // One lookup to completion, checking the callback's thread and that it didn't run inside lookup().
    Answer resolve(Resolver& r, const std::string& name, Type type) {
        std::optional<Answer> got;
        bool inside = true;
        auto caller = std::this_thread::get_id();
        r.lookup(name, type, [&](Answer a) {
            CHECK_FALSE(inside);
            CHECK(std::this_thread::get_id() == caller);
            CHECK_FALSE(got.has_value());
            got = std::move(a);
        });
        inside = false;
        REQUIRE(run_until([&] { return got.has_value(); }));
        return *got;
    }
};

using Strings = std::vector<std::string>;
using Status = Answer::Status;

}  // namespace

TEST_CASE_METHOD(Fixture, "A and AAAA records come back as text addresses") {
    auto r = resolver();
    auto a = resolve(*r, "www.example.test", Type::A);
    REQUIRE(a.status == Status::Ok);
    CHECK(a.records == Strings{"192.0.2.1", "192.0.2.2"});
    CHECK(a.error.empty());

    auto aaaa = resolve(*r, "WWW.Example.Test", Type::AAAA);
    REQUIRE(aaaa.status == Status::Ok);
    CHECK(aaaa.records == Strings{"2001:db8::1"});

    auto bl = resolve(*r, reverse_name("192.0.2.2") + ".dnsbl.test", Type::A);
    REQUIRE(bl.status == Status::Ok);
    CHECK(bl.records == Strings{"127.0.0.2"});
}

TEST_CASE_METHOD(Fixture, "MX records are PREFERENCE HOST without the trailing dot") {
    auto r = resolver();
    auto mx = resolve(*r, "example.test", Type::MX);
    REQUIRE(mx.status == Status::Ok);
    std::sort(mx.records.begin(), mx.records.end());
    CHECK(mx.records == Strings{"10 mx1.example.test", "20 mx2.example.test"});
}

TEST_CASE_METHOD(Fixture, "TXT joins each record's strings and keeps records apart") {
    auto r = resolver();
    auto txt = resolve(*r, "example.test", Type::TXT);
    REQUIRE(txt.status == Status::Ok);
    std::sort(txt.records.begin(), txt.records.end());
    CHECK(txt.records == Strings{"hello", "v=spf1 -all"});
}

TEST_CASE_METHOD(Fixture, "PTR on the reverse name gives the host names") {
    auto r = resolver();
    auto one = resolve(*r, reverse_name("192.0.2.1") + ".in-addr.arpa", Type::PTR);
    REQUIRE(one.status == Status::Ok);
    CHECK(one.records == Strings{"www.example.test"});

    auto two = resolve(*r, "2.2.0.192.in-addr.arpa", Type::PTR);
    REQUIRE(two.status == Status::Ok);
    std::sort(two.records.begin(), two.records.end());
    CHECK(two.records == Strings{"a.example.test", "b.example.test"});

    auto v6 = resolve(*r, reverse_name("2001:db8::1") + ".ip6.arpa", Type::PTR);
    REQUIRE(v6.status == Status::Ok);
    CHECK(v6.records == Strings{"v6.example.test"});
}

TEST_CASE_METHOD(Fixture, "a truncated UDP reply is asked again over TCP") {
    auto r = resolver();
    auto txt = resolve(*r, "big.example.test", Type::TXT);
    REQUIRE(txt.status == Status::Ok);
    REQUIRE(txt.records.size() == 20);
    std::sort(txt.records.begin(), txt.records.end());
    CHECK(txt.records.front() == std::string(200, 'a'));
    CHECK(txt.records.back() == std::string(200, 't'));
    CHECK(server.tcp_queries() == 1);
    // The TCP connection is closed once idle, so the loop runs dry again.
    if (loop.stopped()) loop.restart();
    auto start = std::chrono::steady_clock::now();
    loop.run_for(2s);
    CHECK(std::chrono::steady_clock::now() - start < 1s);
}

TEST_CASE_METHOD(Fixture, "NXDOMAIN and NODATA are NotFound") {
    auto r = resolver();
    auto nx = resolve(*r, "nosuch.example.test", Type::A);
    CHECK(nx.status == Status::NotFound);
    CHECK(nx.records.empty());
    CHECK_THAT(nx.error, Catch::Contains("nosuch.example.test"));

    for (auto type : {Type::MX, Type::TXT, Type::PTR}) {
        auto nodata = resolve(*r, "www.example.test", type);
        CHECK(nodata.status == Status::NotFound);
        CHECK(nodata.records.empty());
    }
    CHECK(resolve(*r, "example.test", Type::A).status == Status::NotFound);
    CHECK(resolve(*r, "1.0.0.127.dnsbl.test", Type::A).status == Status::NotFound);
}

TEST_CASE_METHOD(Fixture, "SERVFAIL, REFUSED and a broken reply are TempFail") {
    auto r = resolver();
    auto sf = resolve(*r, "servfail.example.test", Type::A);
    CHECK(sf.status == Status::TempFail);
    CHECK_FALSE(sf.error.empty());
    CHECK(resolve(*r, "refused.example.test", Type::MX).status == Status::TempFail);
    CHECK(resolve(*r, "truncated.example.test", Type::A).status == Status::TempFail);
}

TEST_CASE_METHOD(Fixture, "a server that never answers times out as TempFail") {
    auto r = resolver(200ms, 1);
    auto start = std::chrono::steady_clock::now();
    auto a = resolve(*r, "silent.example.test", Type::A);
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(a.status == Status::TempFail);
    CHECK_THAT(a.error, Catch::Contains("silent.example.test"));
    CHECK(server.queries_for("silent.example.test") == 1);
    CHECK(took >= 150ms);
    CHECK(took < 2s);
    // The resolver is still usable after a timeout.
    CHECK(resolve(*r, "www.example.test", Type::A).status == Status::Ok);
}

TEST_CASE_METHOD(Fixture, "retries go out tries times before giving up") {
    auto r = resolver(100ms, 3);
    CHECK(resolve(*r, "silent.example.test", Type::TXT).status == Status::TempFail);
    CHECK(server.queries_for("silent.example.test") == 3);
}

TEST_CASE_METHOD(Fixture, "nobody listening is TempFail") {
    std::uint16_t port;
    {
        asio::io_context io;
        asio::ip::udp::socket s(io, asio::ip::udp::endpoint(asio::ip::address_v4::loopback(), 0));
        port = s.local_endpoint().port();
    }
    ResolverSettings s;
    s.servers = {"127.0.0.1:" + std::to_string(port)};
    s.timeout = 1000ms;
    s.tries = 1;
    auto r = make_resolver(loop, s);
    CHECK(resolve(*r, "www.example.test", Type::A).status == Status::TempFail);
}

TEST_CASE_METHOD(Fixture, "names that can't be asked are NotFound, still never inside lookup()") {
    auto r = resolver();
    auto long_label = resolve(*r, std::string(64, 'a') + ".example.test", Type::A);
    CHECK(long_label.status == Status::NotFound);
    auto nul = resolve(*r, std::string("www.example.test\0.evil", 22), Type::A);
    CHECK(nul.status == Status::NotFound);
}

TEST_CASE_METHOD(Fixture, "destroying the resolver with a query in flight never calls back") {
    auto r = resolver(5000ms, 2);
    bool called = false;
    r->lookup("silent.example.test", Type::A, [&](Answer) { called = true; });
    REQUIRE(run_until([&] { return server.queries_for("silent.example.test") > 0; }));
    r.reset();
    if (loop.stopped()) loop.restart();
    loop.run_for(300ms);
    CHECK_FALSE(called);
}

TEST_CASE_METHOD(Fixture, "destroying the resolver drops answers already posted") {
    auto r = resolver();
    bool called = false;
    // c-ares answers a bad name at once, so its result is posted but not yet run.
    r->lookup(std::string(64, 'a') + ".example.test", Type::A, [&](Answer) { called = true; });
    r->lookup("www.example.test", Type::A, [&](Answer) { called = true; });
    r.reset();
    loop.run_for(300ms);
    CHECK_FALSE(called);
}

TEST_CASE_METHOD(Fixture, "a callback may destroy the resolver while other queries are pending") {
    auto r = resolver(5000ms, 2);
    bool first = false, second = false;
    r->lookup("silent.example.test", Type::A, [&](Answer) { second = true; });
    r->lookup("www.example.test", Type::A, [&](Answer a) {
        first = true;
        CHECK(a.status == Status::Ok);
        r.reset();
    });
    REQUIRE(run_until([&] { return first; }));
    if (loop.stopped()) loop.restart();
    loop.run_for(300ms);
    CHECK_FALSE(second);
    CHECK_FALSE(r);
}

TEST_CASE_METHOD(Fixture, "200 concurrent queries all complete, each exactly once") {
    auto r = resolver(2000ms, 2);
    constexpr int n = 200;
    std::vector<int> calls(n, 0);
    std::vector<Answer> answers(n);
    int done = 0;
    bool inside = false;
    for (int i = 0; i < n; ++i) {
        inside = true;
        r->lookup("h" + std::to_string(i) + ".bulk.example.test", Type::A, [&, i](Answer a) {
            CHECK_FALSE(inside);
            ++calls[i];
            answers[i] = std::move(a);
            ++done;
        });
        inside = false;
    }
    REQUIRE(run_until([&] { return done == n; }, 10s));
    for (int i = 0; i < n; ++i) {
        INFO("query " << i);
        CHECK(calls[i] == 1);
        REQUIRE(answers[i].status == Status::Ok);
        CHECK(answers[i].records == Strings{"10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256)});
    }
    // With nothing outstanding the resolver holds no sockets or timers, so the loop runs dry.
    if (loop.stopped()) loop.restart();
    auto start = std::chrono::steady_clock::now();
    loop.run_for(2s);
    CHECK(std::chrono::steady_clock::now() - start < 1s);
}

TEST_CASE("server settings are validated") {
    asio::io_context loop;
    auto with = [&](std::string server) {
        ResolverSettings s;
        s.servers = {std::move(server)};
        return make_resolver(loop, s);
    };
    CHECK(with("127.0.0.1"));
    CHECK(with("127.0.0.1:5353"));
    CHECK(with("::1"));
    CHECK(with("[::1]:5353"));
    CHECK_THROWS_AS(with("dns.example.test"), std::runtime_error);
    CHECK_THROWS_AS(with("127.0.0.1:"), std::runtime_error);
    CHECK_THROWS_AS(with("127.0.0.1:70000"), std::runtime_error);
    CHECK_THROWS_AS(with("[::1"), std::runtime_error);
    CHECK_THROWS_AS(with("[::1]x53"), std::runtime_error);
    ResolverSettings system;  // /etc/resolv.conf (or c-ares' default): no query is sent
    CHECK(make_resolver(loop, system));
}

TEST_CASE("reverse_name reverses IPv4 octets and IPv6 nibbles") {
    CHECK(reverse_name("192.0.2.1") == "1.2.0.192");
    CHECK(reverse_name("127.0.0.2") == "2.0.0.127");
    CHECK(reverse_name("2001:db8::1") ==
          "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2");
    CHECK(reverse_name("2001:DB8:ABCD::") ==
          "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.b.d.0.1.0.0.2");
    CHECK(reverse_name("") == "");
    CHECK(reverse_name("192.0.2") == "");
    CHECK(reverse_name("192.0.2.256") == "");
    CHECK(reverse_name("mail.example.test") == "");
    CHECK(reverse_name("[2001:db8::1]") == "");
    CHECK(reverse_name(std::string("192.0.2.1\0x", 11)) == "");
}
