// The scripted conversations of tests/scripts/ run in-process against the sessions, with the
// fakes (DESIGN.md's second tier), and what only fakes can do: a slow store while another client
// is served.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <map>

#include "tests/unit/scripts/runner.hpp"

using namespace pillarbox;
using namespace pillarbox::scripts;

namespace {

std::filesystem::path script_dir(const char* protocol) {
    return std::filesystem::path(PILLARBOX_UNIT_TEST_DIR).parent_path() / "scripts" / protocol;
}

// One World per distinct config, as conversation.py shares one server per config.
void run_dir(const char* protocol) {
    auto scripts = load_dir(script_dir(protocol));
    REQUIRE(!scripts.empty());
    std::map<std::vector<std::pair<std::string, std::string>>, std::vector<const Script*>> groups;
    for (auto& s : scripts) {
        auto key = s.config;
        std::sort(key.begin(), key.end());
        groups[key].push_back(&s);
    }
    for (auto& [config, group] : groups) {
        World world(config);
        for (auto* s : group) {
            INFO(s->name);
            try {
                world.run(*s);
            } catch (const std::exception& e) {
                FAIL_CHECK(e.what());
            }
        }
    }
}

}  // namespace

TEST_CASE("SMTP conversation scripts, in-process", "[scripts]") { run_dir("smtp"); }

TEST_CASE("POP3 conversation scripts, in-process", "[scripts]") { run_dir("pop3"); }

TEST_CASE("IMAP conversation scripts, in-process", "[scripts][imap]") { run_dir("imap"); }

namespace {

// An IMAP client of a World's session, logged in as ADDRESS with MAILBOX selected (or examined).
class ImapClient {
public:
    ImapClient(World& world, const std::string& address, const std::string& select) : c_(world.connect("imap")) {
        CHECK(line().rfind("* OK", 0) == 0);
        c_->client_send("a LOGIN " + address + " " + kPassword + "\r\nb " + select + "\r\n");
        until_tagged("a");
        until_tagged("b");
    }
    // The untagged lines of the command's answer.
    std::vector<std::string> command(const std::string& text) {
        c_->client_send("c " + text + "\r\n");
        return until_tagged("c");
    }

private:
    std::string line() { return c_->read_line(std::chrono::seconds(5)).value_or("(none)"); }
    std::vector<std::string> until_tagged(const std::string& tag) {
        std::vector<std::string> lines;
        for (auto l = line(); l.rfind(tag + " ", 0) != 0 && l != "(none)"; l = line()) lines.push_back(l);
        return lines;
    }
    std::unique_ptr<Pipe> c_;
};

using Config = std::vector<std::pair<std::string, std::string>>;

}  // namespace

TEST_CASE("SEARCH by header reads the parse caches a slice at a time, not message by message", "[scripts][imap]") {
    World world(Config{{"auth_allow_cleartext_loopback", "yes"}});
    world.add_account("s1@example.com");
    for (int i = 1; i <= 300; ++i)
        world.store().add_message({"s1", "example.com"}, fmt::format("Subject: {}\r\n\r\nbody\r\n", i % 7 == 0 ? "match" : "other"));
    ImapClient c(world, "s1@example.com", "SELECT INBOX");
    auto found = c.command("SEARCH SUBJECT match");
    std::string want = "* SEARCH";
    for (int i = 7; i <= 300; i += 7) want += fmt::format(" {}", i);
    CHECK(found == std::vector<std::string>{want});
    CHECK(world.store().cached_parse_reads == 2);  // 256 + 44
    CHECK(world.store().parsed_reads == 0);
}

TEST_CASE("FETCH BODY.PEEK[] and RFC822 send the file without reading its structure", "[scripts][imap]") {
    World world(Config{{"auth_allow_cleartext_loopback", "yes"}});
    world.add_account("s2@example.com");
    const std::string text = "Subject: one\r\n\r\nbody\r\n";
    world.store().add_message({"s2", "example.com"}, text);
    ImapClient c(world, "s2@example.com", "EXAMINE INBOX");
    auto got = c.command("FETCH 1 (BODY.PEEK[] RFC822 BODY.PEEK[]<5.3>)");
    CHECK(got == std::vector<std::string>{fmt::format("* 1 FETCH (BODY[] {{{}}}", text.size()), "Subject: one", "", "body",
                                          fmt::format(" RFC822 {{{}}}", text.size()), "Subject: one", "", "body",
                                          " BODY[]<5> {3}", "ct:)"});
    CHECK(world.store().cached_parse_reads == 0);
    CHECK(world.store().parsed_reads == 0);
}

TEST_CASE("a slow store keeps one client waiting, never the others", "[scripts]") {
    World world({});
    world.store().faults.hold_commits = true;  // the first client's commit doesn't come back yet
    auto a = world.connect("mx");
    REQUIRE(a->read_line(std::chrono::seconds(5)).value_or("").rfind("220 ", 0) == 0);
    a->client_send("EHLO a.example\r\n");
    for (auto l = a->read_line(std::chrono::seconds(5)); l && l->rfind("250 ", 0) != 0; l = a->read_line(std::chrono::seconds(5))) {}
    a->client_send("MAIL FROM:<x@a.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n");
    CHECK(a->read_line(std::chrono::seconds(5)) == "250 2.1.0 Ok");
    CHECK(a->read_line(std::chrono::seconds(5)) == "250 2.1.5 Ok");
    CHECK(a->read_line(std::chrono::seconds(5)).value_or("").rfind("354 ", 0) == 0);
    a->client_send("Subject: one\r\n\r\nbody\r\n.\r\n");
    // The commit is held: no answer for a, however long the loop runs ...
    CHECK_THROWS(a->read_line(std::chrono::milliseconds(300)));
    REQUIRE(world.store().held_commits() == 1);
    // ... while b is served from greeting to QUIT, and gets every answer at once.
    auto b = world.connect("mx");
    CHECK(b->read_line(std::chrono::seconds(5)).value_or("").rfind("220 ", 0) == 0);
    b->client_send("HELO b.example\r\n");
    CHECK(b->read_line(std::chrono::seconds(5)) == "250 mail.pillarbox.test");
    b->client_send("NOOP\r\n");
    CHECK(b->read_line(std::chrono::seconds(5)) == "250 2.0.0 Ok");
    b->client_send("QUIT\r\n");
    CHECK(b->read_line(std::chrono::seconds(5)) == "221 2.0.0 Bye");
    CHECK(b->read_line(std::chrono::seconds(5)) == std::nullopt);
    // Released, a gets its 250 only now: acknowledged means committed.
    world.store().faults.hold_commits = false;
    world.store().release_commits();
    CHECK(a->read_line(std::chrono::seconds(5)).value_or("").rfind("250 2.0.0 Ok: queued as ", 0) == 0);
    CHECK(world.store().inbox({"bob", "example.com"}).size() == 1);
}
