// Password schemes: hashes made by Dovecot's own doveadm must verify, new argon2id hashes round
// trip, and malformed stored values (hand-edited passwd-files) fail closed instead of crashing.
#include <catch2/catch.hpp>

#include <crypt.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "auth/password.hpp"
#include "tests/unit/test_config.hpp"

using namespace pillarbox::auth;
using pillarbox::test::default_hash;

namespace {

struct Fixture {
    std::string scheme, password, hash;
};

// PILLARBOX_TEST_FIXTURES, when the build defines it, is the directory holding doveadm_pw.txt;
// otherwise the file is found next to this source, which works when run from a source checkout.
std::filesystem::path fixture_dir() {
#ifdef PILLARBOX_TEST_FIXTURES
    return PILLARBOX_TEST_FIXTURES;
#else
    return std::filesystem::path(__FILE__).parent_path() / "fixtures";
#endif
}

const std::vector<Fixture>& doveadm_fixtures() {
    static const std::vector<Fixture> all = [] {
        std::vector<Fixture> out;
        std::ifstream in(fixture_dir() / "doveadm_pw.txt");
        if (!in) FAIL("cannot open " << (fixture_dir() / "doveadm_pw.txt"));
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty() || line.front() == '#') continue;
            const auto t1 = line.find('\t');
            const auto t2 = line.find('\t', t1 == std::string::npos ? t1 : t1 + 1);
            if (t1 == std::string::npos || t2 == std::string::npos) FAIL("bad fixture line: " << line);
            out.push_back({line.substr(0, t1), line.substr(t1 + 1, t2 - t1 - 1), line.substr(t2 + 1)});
        }
        return out;
    }();
    return all;
}

bool is_argon2(const Fixture& f) { return f.scheme.starts_with("ARGON2"); }

std::string lower(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

// The value after "{SCHEME}".
std::string data_of(const std::string& stored) { return stored.substr(stored.find('}') + 1); }

const Fixture& fixture(std::string_view scheme, std::string_view password = "correct horse battery staple") {
    for (const auto& f : doveadm_fixtures())
        if (f.scheme == scheme && f.password == password) return f;
    FAIL("no fixture for " << scheme);
    throw std::logic_error("unreachable");
}

// Cheap enough for tests; production defaults take ~100 ms per hash.
const HashSettings fast{.argon2_ops = 1, .argon2_memory = 8u * 1024 * 1024};

std::string crypt_with_prefix(const char* prefix, std::string_view password) {
    crypt_data cd{};
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    REQUIRE(crypt_gensalt_rn(prefix, 0, nullptr, 0, setting, sizeof setting) != nullptr);
    const char* out = crypt_rn(std::string(password).c_str(), setting, &cd, sizeof cd);
    REQUIRE(out != nullptr);
    return out;
}

}  // namespace

TEST_CASE("the doveadm fixture covers every scheme Dovecot users bring") {
    std::set<std::string> seen;
    for (const auto& f : doveadm_fixtures()) seen.insert(f.scheme);
    for (const char* s : {"ARGON2ID", "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "SSHA512", "SSHA256", "SHA512",
                          "PLAIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "MD5-CRYPT", "PLAIN-MD5"}) {
        INFO(s);
        CHECK(seen.count(s) == 1);
    }
}

TEST_CASE("doveadm pw hashes verify with the right password only") {
    const auto& all = doveadm_fixtures();
    REQUIRE(all.size() >= 60);
    for (const auto& f : all) {
        INFO(f.scheme << " / " << f.password << " / " << f.hash);
        CHECK(scheme_of(f.hash) == f.scheme);
        CHECK(scheme_supported(f.scheme));
        CHECK(verify_password(f.hash, f.password));
        CHECK_FALSE(verify_password(f.hash, "wrong"));
        if (is_argon2(f)) continue;  // the other wrong guesses cost 100 ms each and add nothing here
        CHECK_FALSE(verify_password(f.hash, ""));
        CHECK_FALSE(verify_password(f.hash, "X" + f.password.substr(1)));
        // DES crypt only looks at 8 characters, so an appended one goes unnoticed there.
        if (f.scheme != "DES-CRYPT") CHECK_FALSE(verify_password(f.hash, f.password + "x"));
    }
}

TEST_CASE("scheme names are case-insensitive") {
    for (const auto& f : doveadm_fixtures()) {
        if (is_argon2(f) && f.password != "s3cret") continue;
        const std::string lowered = "{" + lower(f.scheme) + "}" + data_of(f.hash);
        INFO(lowered);
        CHECK(scheme_of(lowered) == f.scheme);
        CHECK(verify_password(lowered, f.password));
        CHECK_FALSE(verify_password(lowered, "wrong"));
    }
    const auto& ssha = fixture("SSHA512.HEX");
    CHECK(verify_password("{Ssha512.Hex}" + data_of(ssha.hash), ssha.password));
    CHECK(scheme_supported("sha512-crypt"));
    CHECK(scheme_supported("Scram-Sha-256"));
    CHECK(scheme_supported("plain.base64"));
}

TEST_CASE("scheme_supported knows the verifiable schemes and their encodings") {
    for (const char* s : {"ARGON2ID", "ARGON2I", "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "CRYPT", "MD5-CRYPT",
                          "SSHA512", "SSHA256", "SSHA", "SHA512", "SHA256", "SHA", "PLAIN", "CLEARTEXT", "PLAIN-MD5",
                          "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "SHA256.HEX", "SSHA.B64", "PLAIN.BASE64",
                          "PLAIN-MD5.B64"}) {
        INFO(s);
        CHECK(scheme_supported(s));
    }
    for (const char* s : {"", "MD4", "PLAIN-MD4", "SMD5", "OTP", "SHA256.", "SHA256.ROT13", ".HEX", "{SHA256}",
                          "SCRAM-SHA-256.HEX", "ARGON2ID.B64", "SHA512-CRYPT.HEX", "SHA256 "}) {
        INFO(s);
        CHECK_FALSE(scheme_supported(s));
    }
}

TEST_CASE("scheme_of") {
    CHECK(scheme_of("") == "");
    CHECK(scheme_of("{sha256.hex}abc") == "SHA256.HEX");
    CHECK(scheme_of("{unknown}x") == "UNKNOWN");
    CHECK(scheme_of("$6$salt$hash") == "SHA512-CRYPT");
    CHECK(scheme_of("$5$salt$hash") == "SHA256-CRYPT");
    CHECK(scheme_of("$2a$05$x") == "BLF-CRYPT");
    CHECK(scheme_of("$2b$05$x") == "BLF-CRYPT");
    CHECK(scheme_of("$2y$05$x") == "BLF-CRYPT");
    CHECK(scheme_of("$1$salt$hash") == "MD5-CRYPT");
    CHECK(scheme_of("$argon2id$v=19$m=8,t=1,p=1$a$b") == "ARGON2ID");
    CHECK(scheme_of("$argon2i$v=19$m=8,t=1,p=1$a$b") == "ARGON2I");
    CHECK(scheme_of("$y$j9T$salt$hash") == "CRYPT");
    CHECK(scheme_of("abJnggxhB/yWI") == "CRYPT");
    CHECK(scheme_of("{SHA512") == "CRYPT");  // no closing brace: not a scheme prefix
}

TEST_CASE("bare crypt strings without a scheme prefix verify by their crypt prefix") {
    int checked = 0;
    for (const auto& f : doveadm_fixtures()) {
        const std::string bare = data_of(f.hash);
        if (!bare.starts_with("$") || (is_argon2(f) && f.password != "s3cret")) continue;
        INFO(f.scheme << " " << bare);
        const std::string expected = f.scheme == "CRYPT" ? "BLF-CRYPT" : f.scheme;  // Debian's {CRYPT} is bcrypt
        CHECK(scheme_of(bare) == expected);
        CHECK(verify_password(bare, f.password));
        CHECK_FALSE(verify_password(bare, "wrong"));
        ++checked;
    }
    CHECK(checked >= 15);

    const auto& des = fixture("DES-CRYPT", "s3cret");
    CHECK(scheme_of(data_of(des.hash)) == "CRYPT");
    CHECK(verify_password(data_of(des.hash), "s3cret"));
    CHECK_FALSE(verify_password(data_of(des.hash), "s3crex"));

    // Shadow files from current distributions: yescrypt, and bcrypt's $2b$/$2a$ spellings.
    for (const char* prefix : {"$y$", "$2b$", "$2a$", "$6$", "$5$", "$1$"}) {
        const std::string h = crypt_with_prefix(prefix, "pässwörd ✓");
        INFO(h);
        CHECK(verify_password(h, "pässwörd ✓"));
        CHECK(verify_password("{CRYPT}" + h, "pässwörd ✓"));
        CHECK_FALSE(verify_password(h, "passwörd ✓"));
    }
    CHECK(scheme_of(crypt_with_prefix("$y$", "x")) == "CRYPT");
}

TEST_CASE("Dovecot's encoding guesses and suffixes") {
    // A {SHA256} value in hex (twice the digest size) is hex, as in Dovecot.
    const auto& hex = fixture("SHA256.HEX");
    CHECK(verify_password("{SHA256}" + data_of(hex.hash), hex.password));
    CHECK(verify_password("{SHA256.hex}" + data_of(hex.hash), hex.password));
    // An explicit suffix is taken at its word.
    CHECK_FALSE(verify_password("{SHA256.B64}" + data_of(hex.hash), hex.password));
    const auto& b64 = fixture("SHA256");
    CHECK(verify_password("{SHA256.BASE64}" + data_of(b64.hash), b64.password));
    CHECK_FALSE(verify_password("{SHA256.HEX}" + data_of(b64.hash), b64.password));
    // {PLAIN-MD5} is hex by default, but base64 of the 16 bytes is accepted as well.
    CHECK(verify_password("{PLAIN-MD5}nMKuihunqT2jm0b8EBnEgQ==", "correct horse battery staple"));
    CHECK(verify_password("{PLAIN.BASE64}cMOkc3N3w7ZyZCDinJM=", "pässwörd ✓"));
    CHECK(verify_password("{CLEARTEXT.B64}cMOkc3N3w7ZyZCDinJM=", "pässwörd ✓"));
    CHECK(verify_password("{PLAIN.HEX}733363726574", "s3cret"));
    CHECK(verify_password("{SHA1}q/eq1kOINtvlJqojGr3i0O73TUI=", "correct horse battery staple"));
    const auto& cram = fixture("CRAM-MD5", "s3cret");
    CHECK(verify_password("{HMAC-MD5}" + data_of(cram.hash), "s3cret"));
    CHECK(verify_password(format_cram_md5(cram_md5_context("s3cret")), "s3cret"));
}

TEST_CASE("SCRAM values made here verify, and both keys must match") {
    for (auto h : {ScramHash::Sha1, ScramHash::Sha256}) {
        const auto keys = scram_keys(h, "correct horse battery staple", 4096);
        const std::string stored = format_scram(keys);
        INFO(stored);
        CHECK(verify_password(stored, "correct horse battery staple"));
        CHECK_FALSE(verify_password(stored, "correct horse battery stapl"));
        auto bad = keys;
        bad.server_key[0] = static_cast<char>(bad.server_key[0] ^ 1);
        CHECK_FALSE(verify_password(format_scram(bad), "correct horse battery staple"));
    }
    // SHA-1 keys under a SCRAM-SHA-256 label are not a SCRAM-SHA-256 secret.
    const auto& sha1 = fixture("SCRAM-SHA-1");
    CHECK_FALSE(verify_password("{SCRAM-SHA-256}" + data_of(sha1.hash), sha1.password));
}

TEST_CASE("hash_password makes Dovecot-style argon2id values that round trip") {
    const std::string h = hash_password("pässwörd ✓", fast);
    CHECK(h.starts_with("{ARGON2ID}$argon2id$v=19$m=8192,t=1,p=1$"));
    CHECK(scheme_of(h) == "ARGON2ID");
    CHECK(verify_password(h, "pässwörd ✓"));
    CHECK_FALSE(verify_password(h, "passwörd ✓"));
    CHECK_FALSE(verify_password(h, ""));
    CHECK(hash_password("pässwörd ✓", fast) != h);  // fresh salt each time

    const std::string empty = hash_password("", fast);
    CHECK(verify_password(empty, ""));
    CHECK_FALSE(verify_password(empty, " "));

    // Embedded NUL bytes are part of the password, not its end.
    const std::string with_nul("ab\0cd", 5);
    const std::string h2 = hash_password(with_nul, fast);
    CHECK(verify_password(h2, with_nul));
    CHECK_FALSE(verify_password(h2, "ab"));

    HashSettings no_ops = default_hash();
    no_ops.argon2_ops = 0;
    CHECK_THROWS_AS(hash_password("x", no_ops), std::invalid_argument);
    CHECK_THROWS_AS(hash_password("x", HashSettings{.argon2_ops = 1, .argon2_memory = 1024}), std::invalid_argument);
}

TEST_CASE("needs_rehash is false only for argon2id at the configured costs") {
    const std::string h = hash_password("secret", fast);
    CHECK_FALSE(needs_rehash(h, fast));
    CHECK_FALSE(needs_rehash(data_of(h), fast));                  // bare libsodium string
    CHECK_FALSE(needs_rehash("{argon2id}" + data_of(h), fast));  // case-insensitive
    CHECK(needs_rehash(h, HashSettings{.argon2_ops = 2, .argon2_memory = fast.argon2_memory}));
    CHECK(needs_rehash(h, HashSettings{.argon2_ops = 1, .argon2_memory = 16u * 1024 * 1024}));
    CHECK(needs_rehash(h, default_hash()));

    // doveadm's argon2id uses libsodium's interactive defaults, which are ours too.
    const auto& dove = fixture("ARGON2ID");
    CHECK_FALSE(needs_rehash(dove.hash, default_hash()));
    CHECK(needs_rehash(dove.hash, fast));

    for (const auto& f : doveadm_fixtures()) {
        if (f.scheme == "ARGON2ID") continue;
        INFO(f.hash);
        CHECK(needs_rehash(f.hash, default_hash()));
    }
    // argon2i with matching costs is still the wrong algorithm.
    const auto& argon2i = fixture("ARGON2I");
    CHECK(needs_rehash(argon2i.hash, HashSettings{.argon2_ops = 4, .argon2_memory = 32u * 1024 * 1024}));
    CHECK(needs_rehash("{ARGON2ID}" + data_of(argon2i.hash), HashSettings{.argon2_ops = 4, .argon2_memory = 32u * 1024 * 1024}));
    CHECK(needs_rehash("", default_hash()));
    CHECK(needs_rehash("{ARGON2ID}", default_hash()));
    CHECK(needs_rehash("{ARGON2ID}$argon2id$v=19$m=65536,t=3", default_hash()));
}

TEST_CASE("malformed stored values fail closed") {
    const std::string pw = "correct horse battery staple";
    const auto& sha512crypt = fixture("SHA512-CRYPT");
    const auto& argon = fixture("ARGON2ID");
    const auto& argon2i = fixture("ARGON2I");
    const std::vector<std::string> bad = {
        "",
        "{}",
        "{}" + pw,
        "{UNKNOWN}" + pw,
        "{PLAIN",
        "{PLAIN.ROT13}" + pw,
        "{SHA512-CRYPT}",
        "{SHA512-CRYPT}$6$",
        "{SHA512-CRYPT}$6$" + std::string(200, '$'),
        "{SHA512-CRYPT}" + std::string(10000, 'a'),
        "$6",
        "*",
        "!",
        "!" + data_of(sha512crypt.hash),  // a locked shadow entry
        "{ARGON2ID}",
        "{ARGON2ID}garbage",
        "{ARGON2ID}$argon2id$v=19$m=65536",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$",
        "{ARGON2ID}" + data_of(argon2i.hash),  // the label must match the algorithm
        "{ARGON2I}" + data_of(argon.hash),
        "{ARGON2ID}$argon2d$v=19$m=65536,t=3,p=1$ShHDEHAbYAjdtn5ST+RuCw$fQDLoJOew4DB/Fq2n5gfikzHhm3Eiu0Zy+DlFgSw8DU",
        "{SSHA512}",
        "{SSHA512}!!!!",
        "{SSHA512}x8slt0NYuH6eq6XVCJzZPuWUic/MssWYi/BhXaReUvVlovjxgW2H4c/6wU1VqJOtxxgdGJXgW0Js4FN89UrLFER9bf0",
        "{SSHA512} x8slt0NYuH6eq6XVCJzZPuWUic/MssWYi/BhXaReUvVlovjxgW2H4c/6wU1VqJOtxxgdGJXgW0Js4FN89UrLFER9bf0=",
        // Exactly a digest with no salt: Dovecot rejects it, so do we.
        "{SSHA256}" + data_of(fixture("SHA256").hash),
        "{SHA256}",
        "{SHA256}xLvLH77JnWW/WdhcjLYu4tuWPw/hBvSD2a+nO9Tjmo",
        "{SHA256}xLvLH77JnWW/WdhcjLYu4tuWPw/hBvSD2a+nO9Tjmoo=xLvL",
        "{SHA256.HEX}zz" + data_of(fixture("SHA256.HEX").hash).substr(2),
        "{SHA256.HEX}c4bbcb1fbec99d65bf59d85c8cb62ee2db963f0fe106f483d9afa73bd4e39a8",
        "{PLAIN.B64}Y29yc*VjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZQ==",
        "{PLAIN-MD5}9cc2ae8a1ba7a93da39b46fc1019c48",
        "{CRAM-MD5}",
        "{CRAM-MD5}09eae0fafdb8b11dde53f0031217a5c4938a03ccb3eebe1b64e0c243b569921",
        "{CRAM-MD5}g9eae0fafdb8b11dde53f0031217a5c4938a03ccb3eebe1b64e0c243b569921c",
        "{SCRAM-SHA-256}",
        "{SCRAM-SHA-256}4096,abc",
        "{SCRAM-SHA-256}0,3Vwki8unSAtIhZ4FCBhNRA==,KbgfdFlt+3jiDVguw9VzyrlA6NtvrUTAke8YjOlxRBQ=,"
        "1MDVkwS4dcCDYMUA6Ys6EOmfMlj9ObSIO2j42AgjYDU=",
        "{SCRAM-SHA-256}4096,,KbgfdFlt+3jiDVguw9VzyrlA6NtvrUTAke8YjOlxRBQ=,1MDVkwS4dcCDYMUA6Ys6EOmfMlj9ObSIO2j42AgjYDU=",
        "{SCRAM-SHA-256}99999999999,3Vwki8unSAtIhZ4FCBhNRA==,KbgfdFlt+3jiDVguw9VzyrlA6NtvrUTAke8YjOlxRBQ=,"
        "1MDVkwS4dcCDYMUA6Ys6EOmfMlj9ObSIO2j42AgjYDU=",
        "{SCRAM-SHA-256.B64}" + data_of(fixture("SCRAM-SHA-256").hash),
        "{PLAIN}correct" + std::string(1, '\0') + "horse battery staple",
        std::string("{SHA512-CRYPT}") + data_of(sha512crypt.hash) + std::string("\0", 1),
    };
    for (const auto& stored : bad) {
        INFO("stored: " << stored);
        CHECK_FALSE(verify_password(stored, pw));
        CHECK_FALSE(verify_password(stored, ""));
    }
    // A NUL would cut the password short for crypt(3); the whole password has to match.
    CHECK_FALSE(verify_password(sha512crypt.hash, pw + std::string("\0x", 2)));
    CHECK_FALSE(verify_password(fixture("DES-CRYPT", "s3cret").hash, std::string("s3cret\0", 7)));
}

TEST_CASE("every truncation of a stored value fails to verify") {
    for (const auto& f : doveadm_fixtures()) {
        if (is_argon2(f)) continue;  // each attempt would run argon2 at 64 MiB
        for (std::size_t n = 0; n < f.hash.size(); ++n) {
            const std::string cut = f.hash.substr(0, n);
            INFO(f.scheme << " cut to " << cut);
            CHECK_FALSE(verify_password(cut, f.password));
        }
    }
    // For argon2, a few cuts that still parse: shorter tag, shorter salt.
    const auto& argon = fixture("ARGON2ID", "s3cret");
    for (std::size_t drop : {1, 4, 30}) {
        const std::string cut = argon.hash.substr(0, argon.hash.size() - drop);
        INFO(cut);
        CHECK_FALSE(verify_password(cut, argon.password));
    }
}
