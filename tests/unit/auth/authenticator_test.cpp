// The Authenticator end to end on a real io_context and worker pool: mechanism offers, PLAIN,
// LOGIN and CRAM-MD5 exchanges, plain logins, cleartext refusal, the penalty, rehashing and
// cancellation.
#include <catch2/catch.hpp>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <map>
#include <mutex>

#include "auth/accounts.hpp"
#include "auth/authenticator.hpp"
#include "auth/backends/builtin.hpp"
#include "auth/password.hpp"
#include "server/worker_pool.hpp"
#include "tests/unit/server/test_support.hpp"
#include "tests/unit/test_config.hpp"

using namespace pillarbox;
using namespace pillarbox::auth;
using Status = Result::Status;

namespace {

class MapBackend : public Backend {
public:
    explicit MapBackend(std::map<std::string, Credentials> users, bool cram = false, bool writable = false)
        : users_(std::move(users)), cram_(cram), writable_(writable) {}
    std::string name() const override { return "map"; }
    std::optional<Credentials> lookup(const std::string& login) override {
        std::lock_guard lock(mu_);
        ++lookups;
        auto it = users_.find(login);
        if (it == users_.end()) return std::nullopt;
        return it->second;
    }
    bool may_have_cram_secrets() const override { return cram_; }
    bool can_store_secrets() const override { return writable_; }
    void store_rehash(const std::string&, const Credentials& updated) override {
        std::lock_guard lock(mu_);
        stored.push_back(updated);
    }
    int lookups = 0;
    std::vector<Credentials> stored;

private:
    std::mutex mu_;
    std::map<std::string, Credentials> users_;
    bool cram_;
    bool writable_;
};

Credentials user(std::string name, std::string password, bool enabled = true) {
    Credentials c;
    c.user = std::move(name);
    c.password = std::move(password);
    c.enabled = enabled;
    return c;
}

// The configured defaults, with short penalties and cheap hashes.
AuthSettings fast_settings() {
    AuthSettings s = test::auth_settings();
    s.throttle.initial = std::chrono::milliseconds(1);
    s.throttle.max = std::chrono::milliseconds(4);
    s.hash.argon2_ops = 1;
    s.hash.argon2_memory = 8u * 1024 * 1024;
    s.server_name = "mail.example.com";
    return s;
}

ClientInfo tls_client(std::string ip = "192.0.2.7") {
    ClientInfo c;
    c.service = "submission";
    c.session_id = "TEST0001";
    c.ip = std::move(ip);
    c.tls = true;
    return c;
}

struct Harness {
    asio::io_context loop;
    WorkerPool workers{loop, 2};
    MapBackend* backend = nullptr;
    std::unique_ptr<Authenticator> auth;

    explicit Harness(AuthSettings s = fast_settings(), bool cram = false) {
        auto b = std::make_unique<MapBackend>(std::map<std::string, Credentials>{
            {"bob@example.com", user("bob@example.com", "{PLAIN}secret")},
            {"off@example.com", user("off@example.com", "{PLAIN}secret", false)},
        }, cram);
        backend = b.get();
        std::vector<std::unique_ptr<Backend>> v;
        v.push_back(std::move(b));
        auth = std::make_unique<Authenticator>(loop, workers, std::move(s), std::move(v));
    }

    // Runs the loop until the callback fired.
    Exchange::Reply run(const std::function<void(Exchange::Callback)>& step) {
        std::optional<Exchange::Reply> got;
        step([&](Exchange::Reply r) { got = std::move(r); });
        loop.restart();
        while (!got && loop.run_one()) {}
        REQUIRE(got);
        return *got;
    }
    Result login(ClientInfo c, std::string name, std::string pw) {
        std::optional<Result> got;
        auto h = auth->login(std::move(c), std::move(name), std::move(pw), [&](Result r) { got = std::move(r); });
        loop.restart();
        while (!got && loop.run_one()) {}
        REQUIRE(got);
        return *got;
    }
};

std::string b64(std::string_view s) { return base64_encode(s); }

}  // namespace

TEST_CASE("mechanisms offered depend on TLS, loopback, backends and channel bindings") {
    Harness h;
    auto plain = tls_client();
    plain.tls = false;
    CHECK(h.auth->mechanisms(plain) == std::vector<std::string>{"SCRAM-SHA-256", "SCRAM-SHA-1"});
    CHECK_FALSE(h.auth->cleartext_allowed(plain));
    CHECK(h.auth->mechanisms(tls_client()) == std::vector<std::string>{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "LOGIN"});
    auto loop_client = plain;
    loop_client.ip = "127.0.0.1";
    CHECK_FALSE(h.auth->cleartext_allowed(loop_client));

    auto s = fast_settings();
    s.loopback_cleartext = true;
    s.mechanisms = {"PLAIN", "CRAM-MD5", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"};
    Harness h2(s, /*cram=*/true);
    CHECK(h2.auth->cleartext_allowed(loop_client));
    loop_client.ip = "::ffff:127.0.0.1";
    CHECK(h2.auth->cleartext_allowed(loop_client));
    loop_client.ip = "::1";
    CHECK(h2.auth->cleartext_allowed(loop_client));
    // Only the host's own addresses: another loopback address may be a proxy or tunnel that
    // forwards outside clients.
    for (const char* other : {"127.0.0.2", "::ffff:127.0.0.2", "127.1.2.3", "::2"}) {
        loop_client.ip = other;
        CHECK_FALSE(h2.auth->cleartext_allowed(loop_client));
    }
    loop_client.ip = "127.0.0.1";
    CHECK_FALSE(h2.auth->cleartext_allowed(plain));
    CHECK(h2.auth->mechanisms(plain) == std::vector<std::string>{"SCRAM-SHA-256", "CRAM-MD5"});
    auto cb = tls_client();
    cb.channel_bindings.tls_exporter = std::string(32, 'x');
    CHECK(h2.auth->mechanisms(cb) == std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "CRAM-MD5", "PLAIN"});

    s.disable_plaintext_auth = false;
    Harness h3(s);
    CHECK(h3.auth->cleartext_allowed(plain));
    CHECK(h3.auth->mechanisms(plain) == std::vector<std::string>{"SCRAM-SHA-256", "PLAIN"});  // no CRAM secrets
}

TEST_CASE("PLAIN exchanges answer once with the result") {
    Harness h;
    auto ex = h.auth->begin("PLAIN", tls_client());
    auto r = h.run([&](auto cb) { ex->start(b64(std::string("\0bob@example.com\0secret", 23)), cb); });
    REQUIRE(r.done);
    CHECK(r.result.status == Status::Ok);
    CHECK(r.result.user == "bob@example.com");

    ex = h.auth->begin("PLAIN", tls_client());
    r = h.run([&](auto cb) { ex->start(b64(std::string("\0bob@example.com\0wrong", 22)), cb); });
    CHECK(r.result.status == Status::Failed);

    ex = h.auth->begin("PLAIN", tls_client("192.0.2.8"));
    r = h.run([&](auto cb) { ex->start(b64(std::string("\0nobody@example.com\0secret", 26)), cb); });
    CHECK(r.result.status == Status::Failed);

    ex = h.auth->begin("PLAIN", tls_client("192.0.2.9"));
    r = h.run([&](auto cb) { ex->start(b64(std::string("\0off@example.com\0secret", 23)), cb); });
    CHECK(r.result.status == Status::Failed);

    // Without an initial response: an empty challenge, then the response.
    ex = h.auth->begin("PLAIN", tls_client("192.0.2.10"));
    r = h.run([&](auto cb) { ex->start(std::nullopt, cb); });
    REQUIRE_FALSE(r.done);
    CHECK(r.challenge.empty());
    r = h.run([&](auto cb) { ex->respond(b64(std::string("\0bob@example.com\0secret", 23)), cb); });
    CHECK(r.result.status == Status::Ok);
}

TEST_CASE("malformed base64, cancellation and refused mechanisms") {
    Harness h;
    auto ex = h.auth->begin("PLAIN", tls_client());
    auto r = h.run([&](auto cb) { ex->start(std::string("!!notbase64"), cb); });
    CHECK(r.result.status == Status::Malformed);

    ex = h.auth->begin("LOGIN", tls_client());
    r = h.run([&](auto cb) { ex->start(std::nullopt, cb); });
    REQUIRE_FALSE(r.done);
    r = h.run([&](auto cb) { ex->respond("*", cb); });
    CHECK(r.result.status == Status::Aborted);

    auto cleartext = tls_client();
    cleartext.tls = false;
    ex = h.auth->begin("PLAIN", cleartext);
    r = h.run([&](auto cb) { ex->start(b64(std::string("\0bob@example.com\0secret", 23)), cb); });
    CHECK(r.result.status == Status::Refused);
    CHECK(h.backend->lookups == 0);  // the password was never looked at

    ex = h.auth->begin("DIGEST-MD5", tls_client());
    r = h.run([&](auto cb) { ex->start(std::nullopt, cb); });
    CHECK(r.result.status == Status::Refused);
}

TEST_CASE("LOGIN asks for the user name and password in two challenges") {
    Harness h;
    auto ex = h.auth->begin("LOGIN", tls_client());
    auto r = h.run([&](auto cb) { ex->start(std::nullopt, cb); });
    REQUIRE_FALSE(r.done);
    CHECK(base64_decode(r.challenge) == std::optional<std::string>("Username:"));
    r = h.run([&](auto cb) { ex->respond(b64("bob@example.com"), cb); });
    REQUIRE_FALSE(r.done);
    CHECK(base64_decode(r.challenge) == std::optional<std::string>("Password:"));
    r = h.run([&](auto cb) { ex->respond(b64("secret"), cb); });
    CHECK(r.result.status == Status::Ok);
}

TEST_CASE("CRAM-MD5 through the Authenticator, with a {PLAIN} secret") {
    auto s = fast_settings();
    s.mechanisms = {"CRAM-MD5"};
    Harness h(s, true);
    auto client = tls_client();
    client.tls = false;  // CRAM-MD5 sends no secret: fine before TLS
    auto ex = h.auth->begin("CRAM-MD5", client);
    auto r = h.run([&](auto cb) { ex->start(std::nullopt, cb); });
    REQUIRE_FALSE(r.done);
    auto challenge = *base64_decode(r.challenge);
    CHECK_THAT(challenge, Catch::EndsWith("@mail.example.com>"));
    auto digest = cram_md5_digest(cram_md5_context("secret"), challenge);
    r = h.run([&](auto cb) { ex->respond(b64("bob@example.com " + digest), cb); });
    CHECK(r.result.status == Status::Ok);
}

TEST_CASE("plain logins, auth_default_domain and the cleartext rule") {
    auto s = fast_settings();
    s.default_domain = "Example.COM";
    Harness h(s);
    auto r = h.login(tls_client(), "bob", "secret");
    CHECK(r.status == Status::Ok);
    CHECK(r.user == "bob@example.com");
    CHECK(h.login(tls_client(), "BOB@EXAMPLE.COM", "secret").status == Status::Ok);
    CHECK(h.auth->normalise_login("bob") == "bob@example.com");
    CHECK(h.auth->normalise_login("Bob@Example.COM") == "bob@example.com");
    CHECK(h.auth->normalise_login(std::string("a\0b", 3)).empty());
    auto clear = tls_client();
    clear.tls = false;
    CHECK(h.login(clear, "bob", "secret").status == Status::Refused);
    clear.secured = true;  // e.g. Postfix over TLS through the auth socket
    CHECK(h.login(clear, "bob", "secret").status == Status::Ok);
}

TEST_CASE("a failure is answered after the penalty, and later attempts wait it out") {
    auto s = fast_settings();
    s.throttle.initial = std::chrono::milliseconds(150);
    s.throttle.max = std::chrono::milliseconds(600);
    Harness h(s);
    auto t0 = std::chrono::steady_clock::now();
    CHECK(h.login(tls_client(), "bob@example.com", "wrong1").status == Status::Failed);
    auto t1 = std::chrono::steady_clock::now();
    CHECK(t1 - t0 >= std::chrono::milliseconds(150));
    // The next attempt from that IP waits for the rest of the penalty, then fails after 300 ms.
    CHECK(h.login(tls_client(), "bob@example.com", "wrong2").status == Status::Failed);
    CHECK(std::chrono::steady_clock::now() - t1 >= std::chrono::milliseconds(300));
    // Another client and account are not held up by bob's penalty.
    CHECK(h.auth->throttle().delay("198.51.100.1", "alice@example.com", std::chrono::steady_clock::now()).count() == 0);
    // A success clears the penalty.
    CHECK(h.login(tls_client("192.0.2.50"), "bob@example.com", "secret").status == Status::Ok);
    CHECK(h.auth->throttle().delay("192.0.2.50", "bob@example.com", std::chrono::steady_clock::now()).count() == 0);
}

TEST_CASE("a successful cleartext login rehashes an imported scheme and stores SCRAM keys") {
    pillarbox::test::TempDir dir;
    auto db = std::make_shared<AccountsDb>(dir.path / "pillarbox.db");
    db->add_domain("example.com");
    AccountRecord a;
    a.address = "old@example.com";
    a.password = "{PLAIN}hunter2";  // as imported from a Dovecot passwd-file
    REQUIRE(db->add_account(a));
    asio::io_context loop;
    WorkerPool workers(loop, 2);
    std::vector<std::unique_ptr<Backend>> v;
    v.push_back(std::make_unique<BuiltinBackend>(db, false));
    Authenticator auth(loop, workers, fast_settings(), std::move(v));
    std::optional<Result> got;
    auto handle = auth.login(tls_client(), "old@example.com", "hunter2", [&](Result r) { got = r; });
    loop.run();
    REQUIRE(got);
    CHECK(got->status == Status::Ok);
    auto after = db->account("old@example.com");
    REQUIRE(after);
    CHECK(scheme_of(after->password) == "ARGON2ID");
    CHECK(verify_password(after->password, "hunter2"));
    CHECK_FALSE(after->scram_sha256.empty());
    CHECK_FALSE(after->scram_sha1.empty());
    CHECK(after->last_login > 0);
}

TEST_CASE("a backend that cannot store secrets gets no rehash, and a writable one does") {
    for (bool writable : {false, true}) {
        asio::io_context loop;
        WorkerPool workers(loop, 2);
        auto backend = std::make_unique<MapBackend>(std::map<std::string, Credentials>{{"old@example.com", user("old@example.com", "{PLAIN}hunter2")}},
                                                    false, writable);
        MapBackend* raw = backend.get();
        std::vector<std::unique_ptr<Backend>> v;
        v.push_back(std::move(backend));
        Authenticator auth(loop, workers, fast_settings(), std::move(v));
        std::optional<Result> got;
        auto handle = auth.login(tls_client(), "old@example.com", "hunter2", [&](Result r) { got = r; });
        loop.run();
        REQUIRE(got);
        CHECK(got->status == Status::Ok);
        if (writable) {
            REQUIRE(raw->stored.size() == 1);
            CHECK(scheme_of(raw->stored[0].password) == "ARGON2ID");
            CHECK_FALSE(raw->stored[0].scram_sha256.empty());
        } else {
            CHECK(raw->stored.empty());
        }
    }
}

TEST_CASE("destroying an exchange before its answer cancels the callback") {
    auto s = fast_settings();
    s.throttle.initial = std::chrono::milliseconds(50);
    Harness h(s);
    bool called = false;
    {
        auto ex = h.auth->begin("PLAIN", tls_client());
        ex->start(b64(std::string("\0bob@example.com\0wrong", 22)), [&](Exchange::Reply) { called = true; });
    }
    {
        auto handle = h.auth->login(tls_client("192.0.2.99"), "bob@example.com", "secret", [&](Result) { called = true; });
    }
    h.loop.restart();
    h.loop.run();
    CHECK_FALSE(called);
}

TEST_CASE("offer: offered, cleartext before TLS, or not at all") {
    Harness h;
    auto plain = tls_client();
    plain.tls = false;
    using O = Authenticator::Offer;
    CHECK(h.auth->offer("PLAIN", tls_client()) == O::Yes);
    CHECK(h.auth->offer("PLAIN", plain) == O::NeedsTls);
    CHECK(h.auth->offer("LOGIN", plain) == O::NeedsTls);
    CHECK(h.auth->offer("SCRAM-SHA-256", plain) == O::Yes);
    CHECK(h.auth->offer("GSSAPI", tls_client()) == O::No);
    CHECK(h.auth->offer("CRAM-MD5", tls_client()) == O::No);  // this backend has no CRAM secrets
    plain.ip = "127.0.0.1";
    CHECK(h.auth->offer("PLAIN", plain) == O::NeedsTls);  // loopback only when the admin allows it
}

namespace {

// An argon2id account in a real builtin database, with SCRAM keys as `pillarbox user add`
// stores them, so a login stores nothing new.
void add_argon_account(AccountsDb& db, const std::string& address, const std::string& password, const AuthSettings& s) {
    AccountRecord a;
    a.address = address;
    a.password = hash_password(password, s.hash);
    a.scram_sha256 = format_scram(scram_keys(ScramHash::Sha256, password, s.hash.scram_iterations));
    a.scram_sha1 = format_scram(scram_keys(ScramHash::Sha1, password, s.hash.scram_iterations));
    REQUIRE(db.add_account(a));
}

struct DbHarness {
    pillarbox::test::TempDir dir;
    std::shared_ptr<AccountsDb> db;
    asio::io_context loop;
    WorkerPool workers{loop, 2};
    std::unique_ptr<Authenticator> auth;
    unsigned next_ip = 1;

    explicit DbHarness(AuthSettings s) {
        db = std::make_shared<AccountsDb>(dir.path / "pillarbox.db");
        db->add_domain("example.com");
        add_argon_account(*db, "bob@example.com", "secret", s);
        std::vector<std::unique_ptr<Backend>> v;
        v.push_back(std::make_unique<BuiltinBackend>(db, false));
        auth = std::make_unique<Authenticator>(loop, workers, std::move(s), std::move(v));
    }
    // One login from a fresh IP (no penalty carried over); returns the status and how many
    // argon2 verifications it ran.
    std::pair<Status, std::uint64_t> login(const std::string& name, const std::string& pw) {
        auto before = argon2_verifications();
        std::optional<Result> got;
        auto h = auth->login(tls_client("192.0.2." + std::to_string(next_ip++)), name, pw, [&](Result r) { got = r; });
        loop.restart();
        while (!got && loop.run_one()) {}
        REQUIRE(got);
        return {got->status, argon2_verifications() - before};
    }
};

}  // namespace

TEST_CASE("an unknown or disabled user pays one argon2id at the configured cost, like a wrong password") {
    auto s = fast_settings();
    s.hash.argon2_ops = 2;
    s.hash.argon2_memory = 16u * 1024 * 1024;
    DbHarness h(s);
    AccountRecord off;
    off.address = "off@example.com";
    off.password = hash_password("secret", s.hash);
    off.enabled = false;
    REQUIRE(h.db->add_account(off));

    CHECK(h.login("bob@example.com", "wrong") == std::pair{Status::Failed, std::uint64_t{1}});
    CHECK(h.login("nobody@example.com", "wrong") == std::pair{Status::Failed, std::uint64_t{1}});
    CHECK(h.login("off@example.com", "secret") == std::pair{Status::Failed, std::uint64_t{1}});
    // The dummy hash has the configured costs (m in KiB, t), so it costs what a real one does.
    auto dummy = h.auth->dummy_hash();
    CHECK(scheme_of(dummy) == "ARGON2ID");
    CHECK(dummy.find("$m=16384,t=2,p=1$") != std::string::npos);
    CHECK_FALSE(needs_rehash(dummy, s.hash));
}

TEST_CASE("the authentication cache skips argon2id for a repeated right password only") {
    auto s = fast_settings();
    DbHarness h(s);
    CHECK(h.login("bob@example.com", "secret") == std::pair{Status::Ok, std::uint64_t{1}});
    CHECK(h.login("bob@example.com", "secret") == std::pair{Status::Ok, std::uint64_t{0}});
    CHECK(h.login("BOB@example.com", "secret") == std::pair{Status::Ok, std::uint64_t{0}});  // same normalised login
    // A wrong password never hits: every failure pays the full verification.
    CHECK(h.login("bob@example.com", "secreT") == std::pair{Status::Failed, std::uint64_t{1}});
    CHECK(h.login("bob@example.com", "wrong") == std::pair{Status::Failed, std::uint64_t{1}});
    CHECK(h.auth->cache().size() == 1);
}

TEST_CASE("a password change, a disabled account or a version bump takes effect at the next login despite the cache") {
    auto s = fast_settings();
    DbHarness h(s);
    REQUIRE(h.login("bob@example.com", "secret").first == Status::Ok);
    REQUIRE(h.login("bob@example.com", "secret") == std::pair{Status::Ok, std::uint64_t{0}});

    // Password changed (as `pillarbox user passwd` does, from another process).
    auto a = *h.db->account("bob@example.com");
    auto version = a.credential_version;
    a.password = hash_password("new-secret", s.hash);
    REQUIRE(h.db->set_secrets(a));
    CHECK(h.db->account("bob@example.com")->credential_version > version);
    CHECK(h.login("bob@example.com", "secret") == std::pair{Status::Failed, std::uint64_t{1}});
    CHECK(h.login("bob@example.com", "new-secret") == std::pair{Status::Ok, std::uint64_t{1}});
    CHECK(h.login("bob@example.com", "new-secret") == std::pair{Status::Ok, std::uint64_t{0}});

    // Disabled: refused at once although the password is cached; enabled again: verified afresh.
    REQUIRE(h.db->set_enabled("bob@example.com", false));
    CHECK(h.login("bob@example.com", "new-secret").first == Status::Failed);
    REQUIRE(h.db->set_enabled("bob@example.com", true));
    CHECK(h.login("bob@example.com", "new-secret") == std::pair{Status::Ok, std::uint64_t{1}});
    CHECK(h.login("bob@example.com", "new-secret") == std::pair{Status::Ok, std::uint64_t{0}});

    // A bare version bump (a revoked app password) also ends the cached login.
    REQUIRE(h.db->bump_credentials("bob@example.com"));
    CHECK(h.login("bob@example.com", "new-secret") == std::pair{Status::Ok, std::uint64_t{1}});
}

TEST_CASE("auth_cache_size = 0 turns the cache off, and a short ttl ends entries") {
    auto s = fast_settings();
    s.cache.size = 0;
    DbHarness h(s);
    CHECK(h.login("bob@example.com", "secret") == std::pair{Status::Ok, std::uint64_t{1}});
    CHECK(h.login("bob@example.com", "secret") == std::pair{Status::Ok, std::uint64_t{1}});
    CHECK(h.auth->cache().size() == 0);

    AuthCache c({.size = 2 * AuthCache::kEntryBytes, .ttl = std::chrono::milliseconds(1000)});
    auto t = AuthCache::Clock::now();
    auto k1 = c.key("a@x", "pw"), k2 = c.key("b@x", "pw"), k3 = c.key("c@x", "pw");
    CHECK(k1 != c.key("a@x", "pw2"));
    CHECK(c.key("a@xp", "w") != c.key("a@x", "pw"));
    auto st = c.stamp("builtin", "1", "{ARGON2ID}...");
    c.put(k1, st, t);
    CHECK(c.hit(k1, st, t + std::chrono::milliseconds(999)));
    CHECK_FALSE(c.hit(k1, st, t + std::chrono::milliseconds(1000)));  // expired, and dropped
    CHECK(c.size() == 0);
    // Bounded: the least recently used goes.
    c.put(k1, st, t);
    c.put(k2, st, t);
    CHECK(c.hit(k1, st, t));
    c.put(k3, st, t);
    CHECK(c.size() == 2);
    CHECK_FALSE(c.hit(k2, st, t));
    CHECK(c.hit(k1, st, t));
    CHECK_FALSE(c.hit(k1, c.stamp("builtin", "2", "{ARGON2ID}..."), t));  // stale stamp: dropped
}

TEST_CASE("parallel guesses for one account are checked in turn, and those beyond the queue limit get a temporary failure") {
    // The attack of issue 14 in small: five connections send a wrong password for bob at once.
    auto s = fast_settings();
    s.throttle.initial = std::chrono::milliseconds(200);
    s.throttle.max = std::chrono::milliseconds(2000);
    s.throttle.queue_limit = 1;
    Harness h(s);
    std::vector<std::unique_ptr<Exchange>> exchanges;
    std::vector<std::pair<Status, std::chrono::steady_clock::time_point>> answers;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) {
        exchanges.push_back(h.auth->begin("PLAIN", tls_client("192.0.2." + std::to_string(10 + i))));
        exchanges.back()->start(b64(std::string("\0bob@example.com\0wrong", 22) + std::to_string(i)),
                                [&](Exchange::Reply r) { answers.emplace_back(r.result.status, std::chrono::steady_clock::now()); });
    }
    h.loop.restart();
    while (answers.size() < 5 && h.loop.run_one()) {}
    REQUIRE(answers.size() == 5);
    // The first is checked at once; its failure sets a penalty and the queue behind it shrinks to
    // one waiting: two are turned away at once.
    CHECK(answers[0].first == Status::TempFail);
    CHECK(answers[1].first == Status::TempFail);
    int failed = 0;
    for (auto& a : answers) failed += a.first == Status::Failed;
    CHECK(failed == 3);
    // The three guesses were checked one after the other, each after the previous penalty
    // (200 ms, then 400 ms), and each answer waited its own penalty (200, 400, 800 ms).
    CHECK(answers.back().second - t0 >= std::chrono::milliseconds(200 + 400 + 800));
    CHECK(h.auth->throttle().queued() == 0);
}

TEST_CASE("a SCRAM client that never sends its proof holds the account's turn only for challenge_hold") {
    auto s = fast_settings();
    s.throttle.challenge_hold = std::chrono::milliseconds(100);
    Harness h(s);
    auto scram = h.auth->begin("SCRAM-SHA-256", tls_client("203.0.113.1"));
    auto r = h.run([&](auto cb) { scram->start(b64("n,,n=bob@example.com,r=abcdefghijkl"), cb); });
    REQUIRE_FALSE(r.done);  // server-first sent; the client stays silent
    CHECK(h.auth->throttle().queued() == 1);
    auto t0 = std::chrono::steady_clock::now();
    CHECK(h.login(tls_client("192.0.2.77"), "bob@example.com", "secret").status == Status::Ok);
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(100));
    CHECK(h.auth->throttle().queued() == 0);
}
