// Unit tests for the SASL server mechanisms (auth/sasl): the RFC examples replayed byte for byte,
// a small SCRAM client for channel binding and Dovecot-stored keys, and malformed input.
#include <catch2/catch.hpp>

#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/password.hpp"
#include "auth/sasl/cram_md5.hpp"
#include "auth/sasl/mechanism.hpp"
#include "auth/sasl/scram.hpp"
#include "tests/unit/test_config.hpp"

using namespace pillarbox::auth;
using namespace pillarbox::auth::sasl;
using Kind = Step::Kind;

namespace {

// `doveadm pw` output (Dovecot 2.3, Debian).
constexpr const char* doveadm_scram256_pencil =
    "{SCRAM-SHA-256}4096,VdG0yEUhD8xqU1Zld1UD+A==,OaxMZoxKiLuMjz+4mR6arN+LF8WYsDL8kiMjZt9xCig=,"
    "S9NE4E3QMfQkhMMizes37X5l+CaRGK2OKggm0MZ6tNo=";
constexpr const char* doveadm_scram1_pencil =
    "{SCRAM-SHA-1}4096,VEwrCqyqauOvpy6fFWREzw==,8hY9KOqDZG5VbPFocuxbhuXWQOE=,GAHiVRMJ9itX2skK5BCNt+0LGgc=";
constexpr const char* doveadm_scram1_horse =  // password "correct horse"
    "{SCRAM-SHA-1}4096,iKH9Hy1FpAoW3jvHP8vwQQ==,Hn+Dpo/7bmWbgzSUcSbuKmlmfXU=,Ywuqh7IDm2y1zRuzXa6GE78YzQ0=";
constexpr const char* doveadm_scram256_utf8 =  // password "Grüße, 2=3"
    "{SCRAM-SHA-256}4096,inE181yzp/8AXZg6yX53QA==,+VueTkkjzsoeaRxg/P75qmhmz7oKUKxFA0R9w+/0jwE=,"
    "JEaOUYNUtyXk137BMD5i+41TB4eyLRwtp6kQmewdRw4=";
constexpr const char* doveadm_cram_tanstaaf =
    "{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b";

constexpr const char* rfc2195_challenge = "<1896.697170952@postoffice.reston.mci.net>";

std::string b64d(std::string_view s) { return base64_decode(s).value(); }

Credentials creds_with_password(std::string stored) {
    Credentials c;
    c.user = "user@example.org";
    c.password = std::move(stored);
    return c;
}

// --- a minimal SCRAM client, independent of the server code beyond base64 ---

const EVP_MD* md(ScramHash h) { return h == ScramHash::Sha1 ? EVP_sha1() : EVP_sha256(); }

std::string hmac(ScramHash h, std::string_view key, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    HMAC(md(h), key.data(), key.size(), reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
    return std::string(reinterpret_cast<const char*>(out), len);
}

std::string digest(ScramHash h, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_Digest(data.data(), data.size(), out, &len, md(h), nullptr);
    return std::string(reinterpret_cast<const char*>(out), len);
}

struct ScramClient {
    ScramClient(ScramHash h, std::string pw, std::string gs2_header = "n,,", std::string cb = {})
        : hash(h), password(std::move(pw)), gs2(std::move(gs2_header)), cb_data(std::move(cb)) {}
    ScramHash hash;
    std::string password;
    std::string gs2;
    std::string cb_data;
    std::string bare;
    std::string final_extensions;  // ",x=..." between nonce and proof
    std::string expected_server_final;

    std::string first(std::string_view user, std::string_view nonce = "clientnonce123") {
        bare = "n=" + std::string(user) + ",r=" + std::string(nonce);
        return gs2 + bare;
    }

    std::string final(std::string_view server_first) {
        std::string nonce, salt;
        unsigned iterations = 0;
        std::string_view rest = server_first;
        while (!rest.empty()) {
            auto comma = rest.find(',');
            auto attr = rest.substr(0, comma);
            if (attr.starts_with("r=")) nonce = attr.substr(2);
            if (attr.starts_with("s=")) salt = b64d(attr.substr(2));
            if (attr.starts_with("i=")) iterations = static_cast<unsigned>(std::stoul(std::string(attr.substr(2))));
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        }
        std::string salted(hash == ScramHash::Sha1 ? 20 : 32, '\0');
        PKCS5_PBKDF2_HMAC(password.data(), password.size(), reinterpret_cast<const unsigned char*>(salt.data()),
                          salt.size(), iterations, md(hash), salted.size(),
                          reinterpret_cast<unsigned char*>(salted.data()));
        auto client_key = hmac(hash, salted, "Client Key");
        auto server_key = hmac(hash, salted, "Server Key");
        std::string without_proof = "c=" + base64_encode(gs2 + cb_data) + ",r=" + nonce + final_extensions;
        std::string auth = bare + "," + std::string(server_first) + "," + without_proof;
        auto signature = hmac(hash, digest(hash, client_key), auth);
        std::string proof = client_key;
        for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = static_cast<char>(proof[i] ^ signature[i]);
        expected_server_final = "v=" + base64_encode(hmac(hash, server_key, auth));
        return without_proof + ",p=" + base64_encode(proof);
    }
};

// Runs a whole SCRAM exchange; returns the last step.
Step run_scram(Mechanism& m, ScramClient& client, std::string_view user, const Credentials* creds) {
    auto s = m.start(client.first(user));
    if (s.kind != Kind::Lookup) return s;
    s = m.looked_up(creds);
    if (s.kind != Kind::Continue) return s;
    return m.respond(client.final(s.data));
}

std::unique_ptr<Mechanism> scram(ScramHash h, bool plus = false, ChannelBindings cb = {}, bool plus_offered = false,
                                 std::string server_nonce = {}) {
    ScramOptions o;
    o.iterations = pillarbox::test::default_hash().scram_iterations;
    o.hash = h;
    o.plus = plus;
    o.cb = std::move(cb);
    o.plus_offered = plus_offered;
    o.server_nonce = std::move(server_nonce);
    return make_scram(std::move(o));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Registry

TEST_CASE("implemented mechanisms in preference order", "[auth][sasl]") {
    CHECK(implemented_mechanisms() == std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256",
                                                               "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "CRAM-MD5",
                                                               "PLAIN", "LOGIN"});
    for (const auto& name : implemented_mechanisms()) {
        auto m = make_mechanism(name, "mail.example.org", {}, false, 4096);
        REQUIRE(m);
        CHECK(m->name() == name);
    }
}

TEST_CASE("make_mechanism is case-insensitive and knows only its own", "[auth][sasl]") {
    auto m = make_mechanism("scram-sha-256-plus", "h", {}, true, 4096);
    REQUIRE(m);
    CHECK(m->name() == "SCRAM-SHA-256-PLUS");
    CHECK(make_mechanism("Plain", "h", {}, false, 4096)->name() == "PLAIN");
    CHECK_FALSE(make_mechanism("GSSAPI", "h", {}, false, 4096));
    CHECK_FALSE(make_mechanism("SCRAM-SHA-512", "h", {}, false, 4096));
    CHECK_FALSE(make_mechanism("", "h", {}, false, 4096));
    CHECK_FALSE(make_mechanism("PLAIN ", "h", {}, false, 4096));
}

TEST_CASE("is_plaintext", "[auth][sasl]") {
    CHECK(is_plaintext("PLAIN"));
    CHECK(is_plaintext("login"));
    CHECK_FALSE(is_plaintext("CRAM-MD5"));
    CHECK_FALSE(is_plaintext("SCRAM-SHA-1"));
    CHECK_FALSE(is_plaintext("XOAUTH2"));
}

// ---------------------------------------------------------------------------------------------
// PLAIN

TEST_CASE("PLAIN RFC 4616 section 4 examples", "[auth][sasl][plain]") {
    auto m = make_mechanism("PLAIN", "h", {}, false, 4096);
    auto s = m->start(std::string("\0tim\0tanstaaftanstaaf", 21));
    CHECK(s.kind == Kind::Verify);
    CHECK(s.login == "tim");
    CHECK(s.authzid == "");
    CHECK(s.password == "tanstaaftanstaaf");

    m = make_mechanism("PLAIN", "h", {}, false, 4096);
    s = m->start(std::string("Ursel\0Kurt\0xipj3plmq", 20));
    CHECK(s.kind == Kind::Verify);
    CHECK(s.login == "Kurt");
    CHECK(s.authzid == "Ursel");
    CHECK(s.password == "xipj3plmq");
}

TEST_CASE("PLAIN without initial response asks with an empty challenge", "[auth][sasl][plain]") {
    auto m = make_mechanism("PLAIN", "h", {}, false, 4096);
    auto s = m->start(std::nullopt);
    CHECK(s.kind == Kind::Continue);
    CHECK(s.data.empty());
    s = m->respond(std::string("\0tim\0secret", 11));
    CHECK(s.kind == Kind::Verify);
    CHECK(s.login == "tim");
    CHECK(s.password == "secret");
    // The exchange is over.
    CHECK(m->respond(std::string("\0tim\0secret", 11)).kind == Kind::Failure);
}

TEST_CASE("PLAIN passes the authzid on, even when it equals the authcid", "[auth][sasl][plain]") {
    auto m = make_mechanism("PLAIN", "h", {}, false, 4096);
    auto s = m->start(std::string("tim\0tim\0pw", 10));
    CHECK(s.kind == Kind::Verify);
    CHECK(s.authzid == "tim");
    CHECK(s.login == "tim");
}

TEST_CASE("PLAIN rejects malformed messages", "[auth][sasl][plain]") {
    const std::string long_field(1025, 'x');
    const std::string ok_field(1024, 'x');
    using namespace std::string_literals;
    for (const std::string& bad : {""s, "tim"s, "\0tim"s, "\0tim\0"s, "\0\0pw"s, "\0\0"s, "a\0tim\0pw\0x"s,
                                   "\0tim\0pw\0"s, "\0"s + long_field + "\0pw"s, "\0tim\0"s + long_field,
                                   long_field + "\0tim\0pw"s}) {
        INFO(bad.size());
        auto m = make_mechanism("PLAIN", "h", {}, false, 4096);
        CHECK(m->start(bad).kind == Kind::Failure);
        auto m2 = make_mechanism("PLAIN", "h", {}, false, 4096);
        REQUIRE(m2->start(std::nullopt).kind == Kind::Continue);
        CHECK(m2->respond(bad).kind == Kind::Failure);
    }
    auto m = make_mechanism("PLAIN", "h", {}, false, 4096);
    auto s = m->start(ok_field + "\0"s + ok_field + "\0"s + ok_field);
    CHECK(s.kind == Kind::Verify);
    CHECK(s.password.size() == 1024);
}

TEST_CASE("PLAIN respond before start fails", "[auth][sasl][plain]") {
    auto m = make_mechanism("PLAIN", "h", {}, false, 4096);
    CHECK(m->respond(std::string("\0tim\0pw", 7)).kind == Kind::Failure);
    CHECK(m->looked_up(nullptr).kind == Kind::Failure);
}

// ---------------------------------------------------------------------------------------------
// LOGIN

TEST_CASE("LOGIN without initial response", "[auth][sasl][login]") {
    auto m = make_mechanism("LOGIN", "h", {}, false, 4096);
    auto s = m->start(std::nullopt);
    CHECK(s.kind == Kind::Continue);
    CHECK(s.data == "Username:");
    s = m->respond("tim@example.org");
    CHECK(s.kind == Kind::Continue);
    CHECK(s.data == "Password:");
    s = m->respond("tanstaaf tanstaaf");
    CHECK(s.kind == Kind::Verify);
    CHECK(s.login == "tim@example.org");
    CHECK(s.authzid.empty());
    CHECK(s.password == "tanstaaf tanstaaf");
    CHECK(m->respond("again").kind == Kind::Failure);
}

TEST_CASE("LOGIN with an initial response takes it as the username", "[auth][sasl][login]") {
    auto m = make_mechanism("LOGIN", "h", {}, false, 4096);
    auto s = m->start(std::string("tim"));
    CHECK(s.kind == Kind::Continue);
    CHECK(s.data == "Password:");
    s = m->respond("pw");
    CHECK(s.kind == Kind::Verify);
    CHECK(s.login == "tim");
    CHECK(s.password == "pw");
}

TEST_CASE("LOGIN rejects empty, over-long and NUL-carrying fields", "[auth][sasl][login]") {
    CHECK(make_mechanism("LOGIN", "h", {}, false, 4096)->start(std::string()).kind == Kind::Failure);
    {
        auto m = make_mechanism("LOGIN", "h", {}, false, 4096);
        m->start(std::nullopt);
        CHECK(m->respond(std::string(1025, 'u')).kind == Kind::Failure);
    }
    {
        auto m = make_mechanism("LOGIN", "h", {}, false, 4096);
        m->start(std::nullopt);
        CHECK(m->respond(std::string("ti\0m", 4)).kind == Kind::Failure);
    }
    {
        auto m = make_mechanism("LOGIN", "h", {}, false, 4096);
        m->start(std::string("tim"));
        CHECK(m->respond("").kind == Kind::Failure);
    }
    {
        auto m = make_mechanism("LOGIN", "h", {}, false, 4096);
        m->start(std::string("tim"));
        CHECK(m->respond(std::string(1025, 'p')).kind == Kind::Failure);
    }
    {
        auto m = make_mechanism("LOGIN", "h", {}, false, 4096);
        CHECK(m->respond("tim").kind == Kind::Failure);  // before start
    }
}

// ---------------------------------------------------------------------------------------------
// CRAM-MD5

TEST_CASE("CRAM-MD5 digest, RFC 2195 section 2 example", "[auth][sasl][cram]") {
    CHECK(cram_md5_digest(cram_md5_context("tanstaaftanstaaf"), rfc2195_challenge) ==
          "b913a602c7eda7a495b4e6e7334d3890");
}

TEST_CASE("CRAM-MD5 mechanism, RFC 2195 section 2 example", "[auth][sasl][cram]") {
    Credentials plain = creds_with_password("{PLAIN}tanstaaftanstaaf");
    Credentials stored = creds_with_password("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$xx$yy");
    stored.cram_md5 = doveadm_cram_tanstaaf;
    for (const Credentials* creds : {&plain, &stored}) {
        auto m = make_cram_md5_with_challenge(rfc2195_challenge);
        CHECK(m->name() == "CRAM-MD5");
        auto s = m->start(std::nullopt);
        CHECK(s.kind == Kind::Continue);
        CHECK(s.data == rfc2195_challenge);
        s = m->respond("tim b913a602c7eda7a495b4e6e7334d3890");
        CHECK(s.kind == Kind::Lookup);
        CHECK(s.login == "tim");
        s = m->looked_up(creds);
        CHECK(s.kind == Kind::Success);
        CHECK(s.login == "tim");
        CHECK(s.data.empty());
    }
}

TEST_CASE("CRAM-MD5 accepts an upper-case digest and user names with spaces", "[auth][sasl][cram]") {
    auto m = make_cram_md5_with_challenge(rfc2195_challenge);
    m->start(std::string());  // an empty initial response is tolerated
    auto s = m->respond("tim B913A602C7EDA7A495B4E6E7334D3890");
    REQUIRE(s.kind == Kind::Lookup);
    auto creds = creds_with_password("{PLAIN}tanstaaftanstaaf");
    CHECK(m->looked_up(&creds).kind == Kind::Success);

    auto ctx = cram_md5_context("pw");
    auto m2 = make_cram_md5_with_challenge("<1.2@h>");
    m2->start(std::nullopt);
    s = m2->respond("john smith " + cram_md5_digest(ctx, "<1.2@h>"));
    REQUIRE(s.kind == Kind::Lookup);
    CHECK(s.login == "john smith");
    auto c2 = creds_with_password("{PLAIN}pw");
    CHECK(m2->looked_up(&c2).kind == Kind::Success);
}

TEST_CASE("CRAM-MD5 failures", "[auth][sasl][cram]") {
    auto lookup = [](std::string response) {
        auto m = make_cram_md5_with_challenge(rfc2195_challenge);
        m->start(std::nullopt);
        auto s = m->respond(response);
        return std::pair{std::move(m), s};
    };
    SECTION("wrong password") {
        auto [m, s] = lookup("tim b913a602c7eda7a495b4e6e7334d3891");
        REQUIRE(s.kind == Kind::Lookup);
        auto creds = creds_with_password("{PLAIN}tanstaaftanstaaf");
        CHECK(m->looked_up(&creds).kind == Kind::Failure);
    }
    SECTION("unknown user") {
        auto [m, s] = lookup("tim b913a602c7eda7a495b4e6e7334d3890");
        auto f = m->looked_up(nullptr);
        CHECK(f.kind == Kind::Failure);
        CHECK(f.reason == "unknown user");
    }
    SECTION("no usable secret") {
        auto [m, s] = lookup("tim b913a602c7eda7a495b4e6e7334d3890");
        auto creds = creds_with_password("{SHA512-CRYPT}$6$salt$hash");
        auto f = m->looked_up(&creds);
        CHECK(f.kind == Kind::Failure);
        CHECK(f.reason == "no CRAM-MD5 secret");
    }
    SECTION("a broken {CRAM-MD5} field falls back to the password") {
        auto [m, s] = lookup("tim b913a602c7eda7a495b4e6e7334d3890");
        auto creds = creds_with_password("{PLAIN}tanstaaftanstaaf");
        creds.cram_md5 = "{CRAM-MD5}garbage";
        CHECK(m->looked_up(&creds).kind == Kind::Success);
    }
    SECTION("malformed responses") {
        for (const char* bad : {"", "tim", "timb913a602c7eda7a495b4e6e7334d3890", " b913a602c7eda7a495b4e6e7334d3890",
                                "tim b913a602c7eda7a495b4e6e7334d389", "tim b913a602c7eda7a495b4e6e7334d38900",
                                "tim b913a602c7eda7a495b4e6e7334d389g", "tim b913a602c7eda7a495b4e6e7334d3890 "}) {
            INFO(bad);
            CHECK(lookup(bad).second.kind == Kind::Failure);
        }
        CHECK(lookup(std::string(5000, 'a') + " b913a602c7eda7a495b4e6e7334d3890").second.kind == Kind::Failure);
    }
    SECTION("a non-empty initial response") {
        auto m = make_cram_md5_with_challenge(rfc2195_challenge);
        CHECK(m->start(std::string("tim")).kind == Kind::Failure);
    }
    SECTION("out of order calls") {
        auto m = make_cram_md5_with_challenge(rfc2195_challenge);
        CHECK(m->respond("tim b913a602c7eda7a495b4e6e7334d3890").kind == Kind::Failure);
        auto m2 = make_cram_md5_with_challenge(rfc2195_challenge);
        m2->start(std::nullopt);
        CHECK(m2->looked_up(nullptr).kind == Kind::Failure);
    }
}

TEST_CASE("CRAM-MD5 challenges are fresh and name the server", "[auth][sasl][cram]") {
    auto a = make_mechanism("CRAM-MD5", "mail.example.org", {}, false, 4096)->start(std::nullopt).data;
    auto b = make_mechanism("CRAM-MD5", "mail.example.org", {}, false, 4096)->start(std::nullopt).data;
    CHECK(a != b);
    CHECK(a.front() == '<');
    CHECK(a.ends_with("@mail.example.org>"));
    CHECK(a.find('.') < a.find('@'));
}

// ---------------------------------------------------------------------------------------------
// SCRAM

TEST_CASE("SCRAM-SHA-1, RFC 5802 section 5 example", "[auth][sasl][scram]") {
    auto keys = scram_keys(ScramHash::Sha1, "pencil", 4096, b64d("QSXCR+Q6sek8bf92"));
    Credentials in_own_field = creds_with_password("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$xx$yy");
    in_own_field.scram_sha1 = format_scram(keys);
    Credentials in_password = creds_with_password(format_scram(keys));
    for (const Credentials* creds : {&in_own_field, &in_password}) {
        auto m = scram(ScramHash::Sha1, false, {}, false, "3rfcNHYJY1ZVvWVs7j");
        CHECK(m->name() == "SCRAM-SHA-1");
        auto s = m->start(std::string("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"));
        REQUIRE(s.kind == Kind::Lookup);
        CHECK(s.login == "user");
        CHECK(s.authzid.empty());
        s = m->looked_up(creds);
        REQUIRE(s.kind == Kind::Continue);
        CHECK(s.data == "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
        s = m->respond("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
        REQUIRE(s.kind == Kind::Success);
        CHECK(s.login == "user");
        CHECK(s.data == "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    }
}

TEST_CASE("SCRAM-SHA-256, RFC 7677 section 3 example", "[auth][sasl][scram]") {
    auto keys = scram_keys(ScramHash::Sha256, "pencil", 4096, b64d("W22ZaJ0SNY7soEsUEjb6gQ=="));
    Credentials creds = creds_with_password("{SHA512-CRYPT}$6$x$y");
    creds.scram_sha256 = format_scram(keys);
    auto m = scram(ScramHash::Sha256, false, {}, false, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    CHECK(m->name() == "SCRAM-SHA-256");
    auto s = m->start(std::nullopt);
    REQUIRE(s.kind == Kind::Continue);  // client-first after an empty challenge
    CHECK(s.data.empty());
    s = m->respond("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    REQUIRE(s.kind == Kind::Lookup);
    CHECK(s.login == "user");
    s = m->looked_up(&creds);
    REQUIRE(s.kind == Kind::Continue);
    CHECK(s.data == "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    s = m->respond(
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    REQUIRE(s.kind == Kind::Success);
    CHECK(s.data == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

TEST_CASE("SCRAM with keys derived from a cleartext password", "[auth][sasl][scram]") {
    for (auto h : {ScramHash::Sha1, ScramHash::Sha256}) {
        auto m = scram(h);
        ScramClient client{h, "pencil"};
        auto creds = creds_with_password("{PLAIN}pencil");
        auto s = run_scram(*m, client, "user", &creds);
        REQUIRE(s.kind == Kind::Success);
        CHECK(s.data == client.expected_server_final);
    }
}

TEST_CASE("SCRAM with keys stored by doveadm pw", "[auth][sasl][scram]") {
    struct Case {
        ScramHash hash;
        const char* stored;
        const char* password;
    };
    for (auto [h, stored, password] : {Case{ScramHash::Sha256, doveadm_scram256_pencil, "pencil"},
                                       Case{ScramHash::Sha1, doveadm_scram1_pencil, "pencil"},
                                       Case{ScramHash::Sha1, doveadm_scram1_horse, "correct horse"},
                                       Case{ScramHash::Sha256, doveadm_scram256_utf8, "Grüße, 2=3"}}) {
        INFO(stored);
        Credentials creds = creds_with_password("{SHA512-CRYPT}$6$x$y");
        (h == ScramHash::Sha1 ? creds.scram_sha1 : creds.scram_sha256) = stored;
        {
            auto m = scram(h);
            ScramClient client{h, password};
            auto s = run_scram(*m, client, "user", &creds);
            REQUIRE(s.kind == Kind::Success);
            CHECK(s.data == client.expected_server_final);
        }
        {
            auto m = scram(h);
            ScramClient client{h, "wrong"};
            auto s = run_scram(*m, client, "user", &creds);
            CHECK(s.kind == Kind::Failure);
            CHECK(s.reason == "wrong password");
        }
    }
}

TEST_CASE("SCRAM ignores keys of the other hash", "[auth][sasl][scram]") {
    Credentials creds = creds_with_password("{SHA512-CRYPT}$6$x$y");
    creds.scram_sha1 = doveadm_scram1_pencil;
    auto m = scram(ScramHash::Sha256);
    ScramClient client{ScramHash::Sha256, "pencil"};
    auto s = run_scram(*m, client, "user", &creds);
    CHECK(s.kind == Kind::Failure);
    CHECK(s.reason == "no SCRAM secret");
}

TEST_CASE("SCRAM wrong password", "[auth][sasl][scram]") {
    auto m = scram(ScramHash::Sha256);
    ScramClient client{ScramHash::Sha256, "pencil2"};
    auto creds = creds_with_password("{PLAIN}pencil");
    auto s = run_scram(*m, client, "user", &creds);
    CHECK(s.kind == Kind::Failure);
    CHECK(s.reason == "wrong password");
    CHECK(m->respond("anything").kind == Kind::Failure);
}

TEST_CASE("SCRAM does not reveal unknown users before the last step", "[auth][sasl][scram]") {
    auto server_first = [](const Credentials* creds, std::string user) {
        auto m = scram(ScramHash::Sha256);
        auto s = m->start("n,,n=" + user + ",r=abc");
        REQUIRE(s.kind == Kind::Lookup);
        s = m->looked_up(creds);
        REQUIRE(s.kind == Kind::Continue);
        auto salt_at = s.data.find(",s=");
        return s.data.substr(salt_at);
    };
    auto a1 = server_first(nullptr, "ghost");
    auto a2 = server_first(nullptr, "ghost");
    auto b = server_first(nullptr, "other");
    CHECK(a1 == a2);  // a stable salt, like a real account's
    CHECK(a1 != b);
    CHECK(a1.ends_with(",i=4096"));
    CHECK(b64d(a1.substr(3, a1.find(",i=") - 3)).size() == 16);

    auto m = scram(ScramHash::Sha256);
    ScramClient client{ScramHash::Sha256, "pencil"};
    auto s = run_scram(*m, client, "ghost", nullptr);
    CHECK(s.kind == Kind::Failure);
    CHECK(s.reason == "unknown user");

    auto m2 = scram(ScramHash::Sha256);
    auto creds = creds_with_password("{SHA512-CRYPT}$6$x$y");
    s = run_scram(*m2, client, "user", &creds);
    CHECK(s.kind == Kind::Failure);
    CHECK(s.reason == "no SCRAM secret");
}

TEST_CASE("SCRAM usernames and authzid are unescaped", "[auth][sasl][scram]") {
    auto m = scram(ScramHash::Sha256);
    ScramClient client{ScramHash::Sha256, "pencil"};
    client.gs2 = "n,a=adm=2Cin=3Dx,";
    auto s = m->start(client.first("us=2Cer=3D@ex.org"));
    REQUIRE(s.kind == Kind::Lookup);
    CHECK(s.login == "us,er=@ex.org");
    CHECK(s.authzid == "adm,in=x");
    auto creds = creds_with_password("{PLAIN}pencil");
    s = m->looked_up(&creds);
    REQUIRE(s.kind == Kind::Continue);
    s = m->respond(client.final(s.data));
    REQUIRE(s.kind == Kind::Success);
    CHECK(s.login == "us,er=@ex.org");
    CHECK(s.authzid == "adm,in=x");
}

TEST_CASE("SCRAM accepts UTF-8 names as sent", "[auth][sasl][scram]") {
    auto m = scram(ScramHash::Sha256);
    auto s = m->start(std::string("n,,n=j\xC3\xBCrgen@example.org,r=abc"));
    REQUIRE(s.kind == Kind::Lookup);
    CHECK(s.login == "j\xC3\xBCrgen@example.org");
    auto m2 = scram(ScramHash::Sha256);
    s = m2->start(std::string("n,,n=\xE2\x82\xAC\xF0\x9F\x93\xAB,r=abc"));  // euro sign, mailbox emoji
    REQUIRE(s.kind == Kind::Lookup);
    CHECK(s.login == "\xE2\x82\xAC\xF0\x9F\x93\xAB");
}

TEST_CASE("SCRAM channel binding", "[auth][sasl][scram][plus]") {
    ChannelBindings cb;
    cb.tls_exporter = std::string("\x01\x02\x03\x00 exporter key material 32 byte", 32);
    cb.tls_unique = "finished-message";
    auto creds = creds_with_password("{PLAIN}pencil");

    SECTION("tls-exporter matching") {
        auto m = scram(ScramHash::Sha256, true, cb, true);
        CHECK(m->name() == "SCRAM-SHA-256-PLUS");
        ScramClient client{ScramHash::Sha256, "pencil", "p=tls-exporter,,", cb.tls_exporter};
        auto s = run_scram(*m, client, "user", &creds);
        REQUIRE(s.kind == Kind::Success);
        CHECK(s.data == client.expected_server_final);
    }
    SECTION("tls-unique matching, SHA-1") {
        auto m = scram(ScramHash::Sha1, true, cb, true);
        CHECK(m->name() == "SCRAM-SHA-1-PLUS");
        ScramClient client{ScramHash::Sha1, "pencil", "p=tls-unique,,", cb.tls_unique};
        CHECK(run_scram(*m, client, "user", &creds).kind == Kind::Success);
    }
    SECTION("tls-exporter with an authzid") {
        auto m = scram(ScramHash::Sha256, true, cb, true);
        ScramClient client{ScramHash::Sha256, "pencil", "p=tls-exporter,a=boss,", cb.tls_exporter};
        auto s = run_scram(*m, client, "user", &creds);
        REQUIRE(s.kind == Kind::Success);
        CHECK(s.authzid == "boss");
    }
    SECTION("tls-exporter not matching: a relayed exchange") {
        auto m = scram(ScramHash::Sha256, true, cb, true);
        ScramClient client{ScramHash::Sha256, "pencil", "p=tls-exporter,,", "other connection's exporter"};
        auto s = run_scram(*m, client, "user", &creds);
        CHECK(s.kind == Kind::Failure);
        CHECK(s.reason == "SCRAM: channel binding mismatch");
    }
    SECTION("gs2 header in c= differs from the one sent") {
        auto m = scram(ScramHash::Sha256, true, cb, true);
        ScramClient client{ScramHash::Sha256, "pencil", "p=tls-exporter,,", cb.tls_exporter};
        auto s = m->start(client.first("user"));
        s = m->looked_up(&creds);
        client.gs2 = "p=tls-unique,,";  // the final message now binds to another header
        CHECK(m->respond(client.final(s.data)).kind == Kind::Failure);
    }
    SECTION("a type this connection lacks") {
        ChannelBindings tls13;
        tls13.tls_exporter = cb.tls_exporter;
        auto m = scram(ScramHash::Sha256, true, tls13, true);
        CHECK(m->start(std::string("p=tls-unique,,n=user,r=abc")).kind == Kind::Failure);
    }
    SECTION("an unknown type") {
        auto m = scram(ScramHash::Sha256, true, cb, true);
        CHECK(m->start(std::string("p=tls-server-end-point,,n=user,r=abc")).kind == Kind::Failure);
    }
    SECTION("-PLUS without binding") {
        for (const char* first : {"n,,n=user,r=abc", "y,,n=user,r=abc"}) {
            auto m = scram(ScramHash::Sha256, true, cb, true);
            CHECK(m->start(std::string(first)).kind == Kind::Failure);
        }
    }
    SECTION("binding requested on the plain mechanism") {
        auto m = scram(ScramHash::Sha256, false, cb, true);
        CHECK(m->start(std::string("p=tls-exporter,,n=user,r=abc")).kind == Kind::Failure);
    }
    SECTION("y when -PLUS was offered: a downgrade (RFC 5802 section 6)") {
        auto m = scram(ScramHash::Sha256, false, cb, true);
        auto s = m->start(std::string("y,,n=user,r=abc"));
        CHECK(s.kind == Kind::Failure);
        CHECK(s.reason == "SCRAM: channel binding downgrade (y flag)");
    }
    SECTION("y when -PLUS was not offered is fine") {
        auto m = scram(ScramHash::Sha256, false, {}, false);
        ScramClient client{ScramHash::Sha256, "pencil", "y,,"};
        CHECK(run_scram(*m, client, "user", &creds).kind == Kind::Success);
    }
    SECTION("n when -PLUS was offered is fine: the client cannot bind") {
        auto m = scram(ScramHash::Sha256, false, cb, true);
        ScramClient client{ScramHash::Sha256, "pencil"};
        CHECK(run_scram(*m, client, "user", &creds).kind == Kind::Success);
    }
    SECTION("through make_mechanism") {
        auto m = make_mechanism("SCRAM-SHA-256-PLUS", "h", cb, true, 4096);
        ScramClient client{ScramHash::Sha256, "pencil", "p=tls-exporter,,", cb.tls_exporter};
        CHECK(run_scram(*m, client, "user", &creds).kind == Kind::Success);
        auto m2 = make_mechanism("SCRAM-SHA-256", "h", cb, true, 4096);
        CHECK(m2->start(std::string("y,,n=user,r=abc")).kind == Kind::Failure);
    }
}

TEST_CASE("SCRAM uses the configured iteration count for derived keys", "[auth][sasl][scram]") {
    auto m = make_mechanism("SCRAM-SHA-1", "h", {}, false, 5000);
    ScramClient client{ScramHash::Sha1, "pencil"};
    auto s = m->start(client.first("user"));
    auto creds = creds_with_password("{PLAIN}pencil");
    s = m->looked_up(&creds);
    REQUIRE(s.kind == Kind::Continue);
    CHECK(s.data.ends_with(",i=5000"));
    CHECK(m->respond(client.final(s.data)).kind == Kind::Success);
}

TEST_CASE("SCRAM rejects malformed client-first messages", "[auth][sasl][scram]") {
    for (const char* bad : {"", "n", "n,", "n,,", "x,,n=user,r=abc", "n,,m=ext,n=user,r=abc", "n,,r=abc,n=user",
                            "n,,n=user", "n,,n=,r=abc", "n,,n=user,r=", "n,,n=user,r=a,b", "n,,n=user,r=a,m=x",
                            "n,,n=us=er,r=abc", "n,,n=user=2,r=abc", "n,,n=user=,r=abc", "n,,n=us=41er,r=abc",
                            "n,a=,n=user,r=abc", "n,b=x,n=user,r=abc", "n,a=x=,n=user,r=abc", "n,,n=user,r=ab\x7f",
                            "n,,n=user,r=a b", "n,,n=us\x01r,r=abc", "n,,n=\xff,r=abc", "n,,n=\xC3,r=abc",
                            "n,,n=\xC0\xAF,r=abc", "n,,n=\xED\xA0\x80,r=abc", "n,,n=user,r=abc,", "p,,n=user,r=abc",
                            "p=tls-exporter", "N,,n=user,r=abc", " n,,n=user,r=abc", "n,,n=user,,r=abc"}) {
        INFO(bad);
        auto m = scram(ScramHash::Sha256, false, {}, false);
        CHECK(m->start(std::string(bad)).kind == Kind::Failure);
    }
    auto m = scram(ScramHash::Sha256);
    CHECK(m->start("n,,n=user,r=" + std::string(5000, 'a')).kind == Kind::Failure);
}

TEST_CASE("SCRAM ignores unknown optional extensions", "[auth][sasl][scram]") {
    auto m = scram(ScramHash::Sha256);
    CHECK(m->start(std::string("n,,n=user,r=abc,x=future,y=more")).kind == Kind::Lookup);
}

TEST_CASE("SCRAM rejects malformed client-final messages", "[auth][sasl][scram]") {
    auto creds = creds_with_password("{PLAIN}pencil");
    ScramClient client{ScramHash::Sha256, "pencil"};
    auto prepare = [&](std::string& server_first) {
        auto m = scram(ScramHash::Sha256, false, {}, false, "SERVERNONCE");
        REQUIRE(m->start(client.first("user", "abc")).kind == Kind::Lookup);
        auto s = m->looked_up(&creds);
        REQUIRE(s.kind == Kind::Continue);
        server_first = s.data;
        return m;
    };
    std::string server_first;
    {
        auto m = prepare(server_first);
        auto good = client.final(server_first);
        CHECK(m->respond(good).kind == Kind::Success);
    }
    auto good = client.final(server_first);
    auto proof = good.substr(good.find(",p="));
    const std::string wrong_length_proof = ",p=" + base64_encode(std::string(31, 'x'));
    for (const std::string& bad : std::initializer_list<std::string>{
             "",
             "c=biws",
             "c=biws,r=abcSERVERNONCE",
             "r=abcSERVERNONCE,c=biws" + proof,
             "c=biws" + proof + ",r=abcSERVERNONCE",
             "c=biws,r=abc" + proof,                  // only the client's part of the nonce
             "c=biws,r=abcSERVERNONCEx" + proof,
             "c=eSws,r=abcSERVERNONCE" + proof,       // "y,," instead of "n,,"
             "c=bi ws,r=abcSERVERNONCE" + proof,
             "c=biw,r=abcSERVERNONCE" + proof,
             "c=biws,r=abcSERVERNONCE,p=!!!!",
             "c=biws,r=abcSERVERNONCE" + wrong_length_proof,
             "c=biws,r=abcSERVERNONCE,p=",
             "c=biws,r=abcSERVERNONCE,p=" + proof.substr(3) + ",x=1",
             "c=biws,r=abcSERVERNONCE,p=AAAA" + proof,
             "c=biws,r=abcSERVERNONCE,," + proof.substr(1),
             "c=biws,r=abcSERVERNONCE,1=x" + proof,
             good + std::string(5000, 'A'),
         }) {
        INFO(bad);
        auto m = prepare(server_first);
        CHECK(m->respond(bad).kind == Kind::Failure);
    }
    // An extension between nonce and proof is covered by the proof and otherwise ignored.
    {
        auto m = prepare(server_first);
        ScramClient with_ext = client;
        with_ext.final_extensions = ",x=ext";
        CHECK(m->respond(with_ext.final(server_first)).kind == Kind::Success);
    }
    {
        auto m = prepare(server_first);
        CHECK(m->respond(good.substr(0, good.find(",p=")) + ",x=ext" + proof).kind == Kind::Failure);
    }
}

TEST_CASE("SCRAM calls out of order fail", "[auth][sasl][scram]") {
    auto creds = creds_with_password("{PLAIN}pencil");
    {
        auto m = scram(ScramHash::Sha256);
        CHECK(m->looked_up(&creds).kind == Kind::Failure);
    }
    {
        auto m = scram(ScramHash::Sha256);
        CHECK(m->respond("n,,n=user,r=abc").kind == Kind::Failure);  // before start
    }
    {
        auto m = scram(ScramHash::Sha256);
        REQUIRE(m->start(std::string("n,,n=user,r=abc")).kind == Kind::Lookup);
        CHECK(m->respond("c=biws,r=abc,p=AAAA").kind == Kind::Failure);  // before the lookup answer
    }
    {
        auto m = scram(ScramHash::Sha256);
        REQUIRE(m->start(std::string("n,,n=user,r=abc")).kind == Kind::Lookup);
        REQUIRE(m->looked_up(&creds).kind == Kind::Continue);
        CHECK(m->looked_up(&creds).kind == Kind::Failure);
    }
    {
        auto m = scram(ScramHash::Sha256);
        REQUIRE(m->start(std::string("n,,n=user,r=abc")).kind == Kind::Lookup);
        CHECK(m->start(std::string("n,,n=user,r=abc")).kind == Kind::Failure);
    }
}
