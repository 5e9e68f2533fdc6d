// The passwd-file backend: Dovecot's line format, malformed lines, reloading a changed file, and
// lookups.
#include <catch2/catch.hpp>

#include "auth/backends/passwd_file.hpp"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace pillarbox::auth;
namespace fs = std::filesystem;

namespace {

bool mentions(const std::vector<std::string>& diags, std::string_view line, std::string_view word) {
    for (const auto& d : diags)
        if (d.rfind(std::string(line) + ":", 0) == 0 && d.find(word) != std::string::npos)
            return true;
    return false;
}

class TempDir {
public:
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "pillarbox-passwd-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    fs::path path() const { return path_; }

private:
    fs::path path_;
};

void write_file(const fs::path& p, std::string_view text, fs::file_time_type mtime) {
    {
        std::ofstream f(p, std::ios::binary | std::ios::trunc);
        f << text;
    }
    fs::last_write_time(p, mtime);
}

}  // namespace

TEST_CASE("passwd-file lines of every shape") {
    auto parsed = parse_passwd_file(
        "alice:{SHA512-CRYPT}$6$salt$hash\n"
        "bob:$6$salt$hash:\n"
        "carol:{PLAIN}secret:1000:1000\n"
        "dave:{ARGON2ID}x:1001:1002:Dave Example:/home/dave:/bin/false\n"
        "erin:{BLF-CRYPT}y::::/var/mail/erin::\n"
        "frank:\n");
    CHECK(parsed.diagnostics.empty());
    REQUIRE(parsed.entries.size() == 6);

    const auto& alice = parsed.entries.at("alice");
    CHECK(alice.user == "alice");
    CHECK(alice.password == "{SHA512-CRYPT}$6$salt$hash");
    CHECK(alice.enabled);
    CHECK(alice.extra.empty());

    CHECK(parsed.entries.at("bob").password == "$6$salt$hash");
    CHECK(parsed.entries.at("bob").extra.empty());

    const auto& carol = parsed.entries.at("carol");
    CHECK(carol.password == "{PLAIN}secret");
    CHECK(carol.extra == std::map<std::string, std::string>{{"uid", "1000"}, {"gid", "1000"}});

    const auto& dave = parsed.entries.at("dave");
    CHECK(dave.extra == std::map<std::string, std::string>{{"uid", "1001"}, {"gid", "1002"}, {"home", "/home/dave"}});

    CHECK(parsed.entries.at("erin").extra == std::map<std::string, std::string>{{"home", "/var/mail/erin"}});

    // An empty password: the account exists but can't log in with a password.
    CHECK(parsed.entries.at("frank").password.empty());
}

TEST_CASE("passwd-file extra fields as in Dovecot's documentation") {
    auto parsed = parse_passwd_file(
        "user@example.org:{SHA256-CRYPT}$5$abc:1000:1000::/home/user::userdb_mail=maildir:~/Maildir "
        "userdb_quota_rule=*:storage=1G  allow_nets=192.0.2.0/24\n"
        "blocked@example.org:{PLAIN}x:::::: nologin reason=moved\n");
    CHECK(parsed.diagnostics.empty());
    const auto& u = parsed.entries.at("user@example.org");
    CHECK(u.enabled);
    CHECK(u.password == "{SHA256-CRYPT}$5$abc");
    CHECK(u.extra == std::map<std::string, std::string>{{"uid", "1000"},
                                                        {"gid", "1000"},
                                                        {"home", "/home/user"},
                                                        {"userdb_mail", "maildir:~/Maildir"},
                                                        {"userdb_quota_rule", "*:storage=1G"},
                                                        {"allow_nets", "192.0.2.0/24"}});
    const auto& b = parsed.entries.at("blocked@example.org");
    CHECK_FALSE(b.enabled);
    CHECK(b.extra.at("nologin").empty());
    CHECK(b.extra.at("reason") == "moved");
}

TEST_CASE("passwd-file user names are stored lower-cased") {
    auto parsed = parse_passwd_file("Alice@Example.ORG:{PLAIN}x\n");
    REQUIRE(parsed.entries.count("alice@example.org"));
    CHECK(parsed.entries.at("alice@example.org").user == "alice@example.org");
}

TEST_CASE("passwd-file comments, blank lines and CRLF") {
    auto parsed = parse_passwd_file(
        "# users for example.org\r\n"
        "\r\n"
        "   \t\r\n"
        "  # indented comment\r\n"
        "alice:{PLAIN}secret:1000:1000::/home/alice\r\n"
        "bob:{PLAIN}other\r\n"
        "carol:{PLAIN}last");  // no final newline
    CHECK(parsed.diagnostics.empty());
    REQUIRE(parsed.entries.size() == 3);
    CHECK(parsed.entries.at("alice").password == "{PLAIN}secret");
    CHECK(parsed.entries.at("alice").extra.at("home") == "/home/alice");
    CHECK(parsed.entries.at("bob").password == "{PLAIN}other");
    CHECK(parsed.entries.at("carol").password == "{PLAIN}last");
}

TEST_CASE("passwd-file malformed lines are reported by number and the rest still loads") {
    std::string text =
        "alice:{PLAIN}a\n"                      // 1
        "hunter2\n"                             // 2: no colon
        ":{PLAIN}nobody\n"                      // 3: empty user
        "bad user:{PLAIN}b\n"                   // 4: space
        "tab\tuser:{PLAIN}b\n"                  // 5: tab
        "ctl\x01user:{PLAIN}b\n"                // 6: control character
        "bob:{PLAIN}b\n"                        // 7
        "long:" + std::string(70000, 'x') + "\n"  // 8: over-long
        "carol:{PLAIN}c:::::: =orphan ok=1\n";  // 9: loads, one extra ignored
    auto parsed = parse_passwd_file(text);
    CHECK(parsed.entries.size() == 3);
    CHECK(parsed.entries.count("alice"));
    CHECK(parsed.entries.count("bob"));
    CHECK(parsed.entries.at("carol").extra == std::map<std::string, std::string>{{"ok", "1"}});
    CHECK(parsed.diagnostics.size() == 7);
    CHECK(mentions(parsed.diagnostics, "line 2", "':'"));
    CHECK(mentions(parsed.diagnostics, "line 3", "empty user"));
    CHECK(mentions(parsed.diagnostics, "line 4", "whitespace"));
    CHECK(mentions(parsed.diagnostics, "line 5", "whitespace"));
    CHECK(mentions(parsed.diagnostics, "line 6", "control"));
    CHECK(mentions(parsed.diagnostics, "line 8", "longer"));
    CHECK(mentions(parsed.diagnostics, "line 9", "extra field"));
    // Never the password (or what might be one).
    for (const auto& d : parsed.diagnostics) {
        CHECK(d.find("hunter2") == std::string::npos);
        CHECK(d.find("{PLAIN}") == std::string::npos);
        CHECK(d.find("xxxx") == std::string::npos);
    }
}

TEST_CASE("passwd-file duplicate users: the first line wins") {
    auto parsed = parse_passwd_file(
        "alice:{PLAIN}first\n"
        "bob:{PLAIN}b\n"
        "ALICE:{PLAIN}second\n");
    CHECK(parsed.entries.size() == 2);
    CHECK(parsed.entries.at("alice").password == "{PLAIN}first");
    REQUIRE(parsed.diagnostics.size() == 1);
    CHECK(mentions(parsed.diagnostics, "line 3", "duplicate user alice"));
    CHECK(mentions(parsed.diagnostics, "line 3", "line 1"));
    CHECK(parsed.diagnostics[0].find("second") == std::string::npos);
}

TEST_CASE("passwd-file empty text") {
    CHECK(parse_passwd_file("").entries.empty());
    CHECK(parse_passwd_file("\n\n").diagnostics.empty());
}

TEST_CASE("passwd-file backend looks users up, case-insensitively") {
    TempDir dir;
    auto p = dir.path() / "users";
    write_file(p, "alice@example.org:{SHA512-CRYPT}$6$s$h:::::: userdb_quota_rule=*:storage=1G\n",
               fs::file_time_type::clock::now());
    PasswdFileBackend b(p.string());
    CHECK(b.name() == "passwd-file:" + p.string());
    auto c = b.lookup("alice@example.org");
    REQUIRE(c);
    CHECK(c->user == "alice@example.org");
    CHECK(c->password == "{SHA512-CRYPT}$6$s$h");
    CHECK(c->extra.at("userdb_quota_rule") == "*:storage=1G");
    CHECK(b.lookup("Alice@Example.org"));
    CHECK_FALSE(b.lookup("nobody@example.org"));
    CHECK_FALSE(b.lookup(""));
    CHECK_FALSE(b.may_have_cram_secrets());
    CHECK(b.diagnostics().empty());
    CHECK(b.generation() == 1);
}

TEST_CASE("passwd-file backend: CRAM-MD5 secrets follow the schemes in the file") {
    TempDir dir;
    auto p = dir.path() / "users";
    auto check = [&](std::string_view text, bool expected) {
        write_file(p, text, fs::file_time_type::clock::now());
        CHECK(PasswdFileBackend(p.string()).may_have_cram_secrets() == expected);
    };
    check("a:{SHA512-CRYPT}$6$x\nb:$2y$05$x\n", false);
    check("a:{SHA512-CRYPT}$6$x\nb:{plain}pw\n", true);
    check("a:{CLEARTEXT}pw\n", true);
    check("a:{CRAM-MD5}0123\n", true);
    check("a:{PLAIN.b64}cHc=\n", true);
    check("a:{PLAIN-MD5}abc\n", false);
    check("", false);
}

TEST_CASE("passwd-file backend re-reads the file when it changes") {
    TempDir dir;
    auto p = dir.path() / "users";
    auto t = fs::file_time_type::clock::now() - std::chrono::hours(1);
    write_file(p, "alice:{PLAIN}old\n", t);
    PasswdFileBackend b(p.string(), std::chrono::seconds(0));
    REQUIRE(b.lookup("alice"));
    CHECK(b.lookup("alice")->password == "{PLAIN}old");
    CHECK_FALSE(b.lookup("bob"));

    write_file(p, "alice:{PLAIN}new\nbob:{PLAIN}b\nnocolon\n", t + std::chrono::seconds(5));
    REQUIRE(b.lookup("alice"));
    CHECK(b.lookup("alice")->password == "{PLAIN}new");
    CHECK(b.lookup("bob"));
    CHECK(b.generation() == 2);
    CHECK(mentions(b.diagnostics(), "line 3", "':'"));

    // Unchanged: not read again.
    CHECK(b.lookup("alice"));
    CHECK(b.generation() == 2);

    // Replaced by a new file (a new inode), as editors and config management do.
    auto tmp = dir.path() / "users.new";
    write_file(tmp, "carol:{PLAIN}c\n", t + std::chrono::seconds(5));
    fs::rename(tmp, p);
    CHECK(b.lookup("carol"));
    CHECK_FALSE(b.lookup("alice"));
    CHECK(b.diagnostics().empty());
}

TEST_CASE("passwd-file backend checks the file at most once per interval") {
    TempDir dir;
    auto p = dir.path() / "users";
    auto t = fs::file_time_type::clock::now() - std::chrono::hours(1);
    write_file(p, "alice:{PLAIN}old\n", t);
    PasswdFileBackend b(p.string(), std::chrono::hours(1));
    write_file(p, "alice:{PLAIN}new\n", t + std::chrono::seconds(5));
    CHECK(b.lookup("alice")->password == "{PLAIN}old");
    CHECK(b.generation() == 1);
}

TEST_CASE("passwd-file backend keeps the previous content when a reload fails") {
    TempDir dir;
    auto p = dir.path() / "users";
    auto t = fs::file_time_type::clock::now() - std::chrono::hours(1);
    write_file(p, "alice:{PLAIN}a\n", t);
    PasswdFileBackend b(p.string(), std::chrono::seconds(0));

    fs::remove(p);
    CHECK(b.lookup("alice"));
    auto diags = b.diagnostics();
    REQUIRE(diags.size() == 1);
    CHECK(diags[0].find(p.string()) != std::string::npos);
    CHECK(diags[0].find("keeping") != std::string::npos);
    auto gen = b.generation();
    CHECK(b.lookup("alice"));
    CHECK(b.generation() == gen);  // a file that stays missing is reported once

    // A directory where the file was: the read fails, the old content stays.
    fs::create_directory(p);
    CHECK(b.lookup("alice"));
    CHECK(b.diagnostics().size() == 1);
    fs::remove(p);

    write_file(p, "bob:{PLAIN}b\n", t);
    CHECK(b.lookup("bob"));
    CHECK_FALSE(b.lookup("alice"));
    CHECK(b.diagnostics().empty());
}

TEST_CASE("passwd-file backend throws when the file can't be read at startup") {
    TempDir dir;
    auto missing = (dir.path() / "missing").string();
    try {
        PasswdFileBackend b(missing);
        FAIL("no exception");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find(missing) != std::string::npos);
    }
    CHECK_THROWS_AS(PasswdFileBackend(dir.path().string()), std::runtime_error);
}

TEST_CASE("passwd-file backend serves lookups from several threads during reloads") {
    TempDir dir;
    auto p = dir.path() / "users";
    auto t = fs::file_time_type::clock::now() - std::chrono::hours(1);
    write_file(p, "alice:{PLAIN}0\n", t);
    PasswdFileBackend b(p.string(), std::chrono::seconds(0));
    std::atomic<bool> stop{false};
    std::atomic<int> missing{0};
    std::vector<std::thread> workers;
    for (int i = 0; i < 4; ++i)
        workers.emplace_back([&] {
            while (!stop) {
                auto c = b.lookup("alice");
                if (!c || c->password.rfind("{PLAIN}", 0) != 0)
                    ++missing;
            }
        });
    for (int i = 1; i <= 50; ++i) {
        // Written beside and renamed, so readers never see a half-written file.
        auto tmp = dir.path() / "users.new";
        write_file(tmp, "alice:{PLAIN}" + std::to_string(i) + "\n", t + std::chrono::seconds(i));
        fs::rename(tmp, p);
    }
    stop = true;
    for (auto& w : workers)
        w.join();
    CHECK(missing == 0);
    CHECK(b.lookup("alice")->password == "{PLAIN}50");
}
