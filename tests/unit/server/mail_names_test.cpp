// The one rule for local parts and domains that name accounts, aliases and hosted domains, and
// the data folder's private modes.
#include <catch2/catch.hpp>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "server/file_modes.hpp"
#include "server/mail_names.hpp"
#include "test_support.hpp"

using namespace pillarbox;
using namespace std::string_literals;

TEST_CASE("mail_names: local parts", "[names]") {
    struct Row {
        std::string name;
        bool ok;
    };
    const Row rows[] = {
        {"bob", true},
        {"Bob", true},  // case is the account database's business (stored lower-case), not the rule's
        {"bob.smith", true},
        {"bob+tag", true},
        {"o'brien", true},
        {"a_b-c=d", true},
        {"j\xc3\xb6rg", true},                 // UTF-8 (SMTPUTF8)
        {std::string(64, 'a'), true},
        {std::string(65, 'a'), false},         // RFC 5321 limit
        {"", false},
        {".", false},
        {"..", false},                         // would be DATA/mail itself
        {".hidden", false},                    // a Maildir++ folder's shape, a hidden file
        {"bob.", false},
        {"a..b", false},
        {"a/b", false},
        {"../x", false},
        {"a\\b", false},
        {"a\0b"s, false},
        {"a\nb", false},
        {"a\tb", false},
        {"a\x7f", false},
        {"a b", false},
        {"a@b", false},
        {"\"quoted\"", false},
        {"<bob>", false},
        {"a,b", false},
        {"a:b", false},
        {"\xff\xfe", false},                   // not UTF-8
        {"\xc3", false},                       // truncated sequence
        {"\xc0\xaf", false},                   // overlong '/'
        {"\xed\xa0\x80", false},               // surrogate
    };
    for (auto& r : rows) {
        INFO("local part: " << r.name);
        CHECK(names::valid_local_part(r.name) == r.ok);
        CHECK(names::local_part_problem(r.name).empty() == r.ok);
    }
}

TEST_CASE("mail_names: domains", "[names]") {
    struct Row {
        std::string name;
        bool ok;
    };
    std::string label63(63, 'a');
    const Row rows[] = {
        {"example.com", true},
        {"EXAMPLE.com", true},
        {"localhost", true},
        {"mail-1.example.co.uk", true},
        {"xn--bcher-kva.example", true},
        {"b\xc3\xbc" "cher.example", true},   // a U-label
        {label63 + ".example", true},
        {std::string(64, 'a') + ".example", false},
        {label63 + "." + label63 + "." + label63 + "." + std::string(63, 'b'), true},  // 255 bytes
        {label63 + "." + label63 + "." + label63 + "." + label63 + ".a", false},  // 257 bytes
        {"", false},
        {".", false},
        {"..", false},
        {".example.com", false},
        {"example.com.", false},
        {"example..com", false},
        {"exa/mple.com", false},
        {"exa\\mple.com", false},
        {"exa\0mple.com"s, false},
        {"exa\rmple.com", false},
        {"exa mple.com", false},
        {"exa_mple.com", false},
        {"-example.com", false},
        {"example-.com", false},
        {"[192.0.2.1]", false},
        {"ex@mple.com", false},
        {"\xff.example", false},
    };
    for (auto& r : rows) {
        INFO("domain: " << r.name);
        CHECK(names::valid_domain(r.name) == r.ok);
    }
}

TEST_CASE("mail_names: addresses split at the last @", "[names]") {
    CHECK(names::valid_address("bob@example.com"));
    CHECK_FALSE(names::valid_address("..@example.com"));
    CHECK_FALSE(names::valid_address(".hidden@example.com"));
    CHECK_FALSE(names::valid_address("bob@..example.com"));
    CHECK_FALSE(names::valid_address("a@b@example.com"));
    CHECK_FALSE(names::valid_address("bob"));
    CHECK(names::address_problem("..@example.com") == "local part starts with a dot");
}

TEST_CASE("file_modes: private folders whatever the umask, and looser modes found and repaired", "[file_modes]") {
    test::TempDir dir;
    mode_t old = ::umask(022);
    std::error_code ec;
    auto deep = dir.path / "data" / "mail" / "example.com";
    REQUIRE(files::make_private_directories(deep, ec));
    CHECK(files::make_private_directories(deep, ec));  // already there
    ::umask(old);
    struct stat st{};
    for (auto p : {dir.path / "data", dir.path / "data" / "mail", deep}) {
        REQUIRE(::stat(p.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0700);
    }
    auto data = dir.path / "data";
    CHECK(files::find_loose_modes(data, false).empty());
    { std::ofstream(data / "pillarbox.db") << "x"; }
    ::chmod((data / "pillarbox.db").c_str(), 0644);
    ::chmod((data / "mail").c_str(), 0755);
    ::symlink("/etc/passwd", (data / "link").c_str());  // links are not followed or changed
    auto found = files::find_loose_modes(data, false);
    REQUIRE(found.size() == 2);
    for (auto& l : found) {
        CHECK_FALSE(l.fixed);
        CHECK((l.wanted & 077) == 0);
    }
    found = files::find_loose_modes(data, true);
    REQUIRE(found.size() == 2);
    for (auto& l : found) CHECK(l.fixed);
    REQUIRE(::stat((data / "pillarbox.db").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat((data / "mail").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    CHECK(files::find_loose_modes(data, false).empty());
}
