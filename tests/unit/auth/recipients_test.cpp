// Recipient resolution: accounts, extensions, aliases(5) and virtual(5) aliases, catch-alls,
// chains, loops and limits; plus the alias file parser the import uses.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "auth/accounts.hpp"
#include "auth/aliases_file.hpp"
#include "auth/recipients.hpp"
#include "tests/unit/server/test_support.hpp"
#include "tests/unit/test_config.hpp"

using namespace pillarbox::auth;
using Status = Resolution::Status;

namespace {

struct Fixture {
    pillarbox::test::TempDir dir;
    AccountsDb db{dir.path / "pillarbox.db"};
    RecipientSettings settings = [] {
        auto s = RecipientSettings::from(pillarbox::test::config());
        s.mydestination = {"mail.example.org", "localhost"};
        return s;
    }();
    RecipientResolver r{db, settings};

    Fixture() {
        db.add_domain("example.com");
        for (auto a : {"bob@example.com", "alice@example.com", "root@mail.example.org"}) {
            AccountRecord rec;
            rec.address = a;
            REQUIRE(db.add_account(rec));
        }
    }
};

}  // namespace

TEST_CASE("accounts resolve to themselves, case-insensitively") {
    Fixture f;
    auto r = f.r.resolve("Bob@EXAMPLE.com");
    CHECK(r.status == Status::Local);
    CHECK(r.accounts == std::vector<std::string>{"bob@example.com"});
    CHECK(r.remote.empty());
}

TEST_CASE("unknown users of local domains are Unknown; other domains NotLocal") {
    Fixture f;
    CHECK(f.r.resolve("nobody@example.com").status == Status::Unknown);
    CHECK(f.r.resolve("nobody@mail.example.org").status == Status::Unknown);
    CHECK(f.r.resolve("bob@elsewhere.net").status == Status::NotLocal);
    CHECK(f.r.resolve("not-an-address").status == Status::NotLocal);
    CHECK(f.r.is_local_domain("EXAMPLE.COM"));
    CHECK(f.r.is_local_domain("localhost"));
    CHECK_FALSE(f.r.is_local_domain("elsewhere.net"));
}

TEST_CASE("recipient_delimiter extensions reach the base account unless the full address exists") {
    Fixture f;
    CHECK(f.r.resolve("bob+lists@example.com").accounts == std::vector<std::string>{"bob@example.com"});
    AccountRecord rec;
    rec.address = "bob+special@example.com";
    REQUIRE(f.db.add_account(rec));
    CHECK(f.r.resolve("bob+special@example.com").accounts == std::vector<std::string>{"bob+special@example.com"});
    CHECK(f.r.resolve("nobody+x@example.com").status == Status::Unknown);
    f.settings.recipient_delimiter = "";
    RecipientResolver plain(f.db, f.settings);
    CHECK(plain.resolve("bob+lists@example.com").status == Status::Unknown);
    f.settings.recipient_delimiter = "+-";
    RecipientResolver two(f.db, f.settings);
    CHECK(two.resolve("bob-news@example.com").accounts == std::vector<std::string>{"bob@example.com"});
}

TEST_CASE("mydestination domains share one namespace of local users") {
    Fixture f;
    CHECK(f.r.resolve("root@localhost").accounts == std::vector<std::string>{"root@mail.example.org"});
    CHECK(f.r.resolve("bob@localhost").status == Status::Unknown);  // example.com is a virtual domain
}

TEST_CASE("aliases fan out to local accounts and remote addresses, and chain") {
    Fixture f;
    f.db.add_alias("sales@example.com", "bob@example.com");
    f.db.add_alias("sales@example.com", "alice@example.com");
    f.db.add_alias("sales@example.com", "partner@remote.net");
    f.db.add_alias("info@example.com", "sales@example.com");
    f.db.add_alias("info@example.com", "bob@example.com");  // duplicate through the chain
    auto r = f.r.resolve("info@example.com");
    CHECK(r.status == Status::Local);
    CHECK(r.accounts == std::vector<std::string>{"bob@example.com", "alice@example.com"});
    CHECK(r.remote == std::vector<std::string>{"partner@remote.net"});
    // An alias with an extension in the recipient.
    CHECK(f.r.resolve("sales+q4@example.com").remote == std::vector<std::string>{"partner@remote.net"});
}

TEST_CASE("aliases(5) names apply to the mydestination domains with bare targets") {
    Fixture f;
    f.db.add_alias("postmaster", "root");
    f.db.add_alias("abuse", "postmaster");
    auto r = f.r.resolve("abuse@localhost");
    CHECK(r.status == Status::Local);
    CHECK(r.accounts == std::vector<std::string>{"root@mail.example.org"});
    // ... but not to virtual domains.
    CHECK(f.r.resolve("abuse@example.com").status == Status::Unknown);
}

TEST_CASE("a catch-all applies only when no account or alias matches") {
    Fixture f;
    f.db.add_alias("@example.com", "alice@example.com");
    CHECK(f.r.resolve("bob@example.com").accounts == std::vector<std::string>{"bob@example.com"});
    CHECK(f.r.resolve("anything@example.com").accounts == std::vector<std::string>{"alice@example.com"});
    // Domain-to-domain mapping keeps the local part.
    f.db.add_domain("old.example");
    f.db.add_alias("@old.example", "@example.com");
    CHECK(f.r.resolve("bob@old.example").accounts == std::vector<std::string>{"bob@example.com"});
}

TEST_CASE("alias loops are detected, self-references deliver to the mailbox") {
    Fixture f;
    // bob keeps a copy and forwards.
    f.db.add_alias("bob@example.com", "bob@example.com");
    f.db.add_alias("bob@example.com", "bob@remote.net");
    auto r = f.r.resolve("bob@example.com");
    CHECK(r.status == Status::Local);
    CHECK(r.accounts == std::vector<std::string>{"bob@example.com"});
    CHECK(r.remote == std::vector<std::string>{"bob@remote.net"});
    // a -> b -> a without mailboxes.
    f.db.add_alias("a@example.com", "b@example.com");
    f.db.add_alias("b@example.com", "a@example.com");
    auto loop = f.r.resolve("a@example.com");
    CHECK(loop.status == Status::Loop);
    CHECK_THAT(loop.detail, Catch::Contains("loop"));
    // A catch-all pointing at an unknown user of the same domain.
    f.db.add_domain("trap.example");
    f.db.add_alias("@trap.example", "ghost@trap.example");
    CHECK(f.r.resolve("x@trap.example").status == Status::Loop);
}

TEST_CASE("alias recursion and expansion limits") {
    Fixture f;
    for (int i = 0; i < 20; ++i) f.db.add_alias(fmt::format("l{}@example.com", i), fmt::format("l{}@example.com", i + 1));
    f.db.add_alias("l20@example.com", "bob@example.com");
    CHECK(f.r.resolve("l0@example.com").accounts == std::vector<std::string>{"bob@example.com"});
    f.settings.recursion_limit = 5;
    RecipientResolver shallow(f.db, f.settings);
    CHECK(shallow.resolve("l0@example.com").status == Status::Loop);
    for (int i = 0; i < 10; ++i) f.db.add_alias("many@example.com", fmt::format("p{}@remote.net", i));
    f.settings.recursion_limit = 1000;
    f.settings.expansion_limit = 5;
    RecipientResolver narrow(f.db, f.settings);
    CHECK(narrow.resolve("many@example.com").status == Status::Loop);
}

TEST_CASE("an alias target that is an unknown local user makes the recipient unknown") {
    Fixture f;
    f.db.add_alias("team@example.com", "gone@example.com");
    auto r = f.r.resolve("team@example.com");
    CHECK(r.status == Status::Unknown);
    CHECK_THAT(r.detail, Catch::Contains("gone@example.com"));
}

TEST_CASE("the account database: domains, accounts, aliases") {
    pillarbox::test::TempDir dir;
    AccountsDb db(dir.path / "pillarbox.db");
    CHECK(db.add_domain("Example.COM"));
    CHECK_FALSE(db.add_domain("example.com"));
    AccountRecord a;
    a.address = "Bob@Example.com";
    a.password = "{PLAIN}x";
    a.quota_bytes = 1000;
    CHECK(db.add_account(a));
    CHECK_FALSE(db.add_account(a));
    auto got = db.account("BOB@example.COM");
    REQUIRE(got);
    CHECK(got->address == "bob@example.com");
    CHECK(got->quota_bytes == std::optional<std::uint64_t>(1000));
    CHECK_FALSE(got->quota_messages);
    CHECK(got->created > 0);
    CHECK_THROWS_WITH(db.delete_domain("example.com"), Catch::Contains("still has 1 account"));
    db.add_alias("x@example.com", "bob@example.com");
    CHECK(db.set_enabled("bob@example.com", false));
    CHECK_FALSE(db.account("bob@example.com")->enabled);
    CHECK(db.delete_account("bob@example.com"));
    CHECK(db.delete_domain("example.com"));
    CHECK(db.aliases().empty());  // the domain's aliases went with it
    // Reopening keeps the schema.
    AccountsDb again(dir.path / "pillarbox.db");
    CHECK(again.domains().empty());
}

TEST_CASE("normalise_address") {
    CHECK(normalise_address("Bob@Example.COM") == "bob@example.com");
    CHECK(normalise_address("bob").empty());
    CHECK(normalise_address("@example.com").empty());
    CHECK(normalise_address("bob@").empty());
    CHECK(normalise_address("a@b@c").empty());
    CHECK(normalise_address("bo b@example.com").empty());
    CHECK(normalise_address("bob@exa..mple.com").empty());
    CHECK(normalise_address("../x@example.com").empty());
    // The store's rule (server/mail_names.hpp): these named folders outside the account's own.
    CHECK(normalise_address("..@example.com").empty());
    CHECK(normalise_address(".hidden@example.com").empty());
    CHECK(normalise_address("a..b@example.com").empty());
    CHECK(normalise_address("bob@.example.com").empty());
    CHECK(normalise_address(std::string(65, 'a') + "@example.com").empty());
    CHECK(normalise_address(std::string(300, 'a') + "@x.com").empty());
}

TEST_CASE("aliases(5) and virtual(5) files parse with continuations, comments and problems") {
    auto p = parse_alias_file(
        "   orphan continuation\n"
        "# /etc/aliases\n"
        "postmaster: root\n"
        "root: bob@example.com,\n"
        "  alice@example.com\n"
        "\n"
        "prog: |/usr/bin/procmail\n"
        "files: /var/log/x, bob\n"
        "inc: :include:/etc/list\n"
        "sales@example.com bob@example.com carol@other.org\r\n"
        "@example.net @example.com\n"
        "  \n"
        "Quoted: <Bob@Example.com>\n"
        "broken\n");
    REQUIRE(p.entries.size() == 6);
    CHECK(p.entries[0].source == "postmaster");
    CHECK(p.entries[0].targets == std::vector<std::string>{"root"});
    CHECK(p.entries[1].source == "root");
    CHECK(p.entries[1].targets == std::vector<std::string>{"bob@example.com", "alice@example.com"});
    CHECK(p.entries[2].source == "files");
    CHECK(p.entries[2].targets == std::vector<std::string>{"bob"});
    CHECK(p.entries[3].source == "sales@example.com");
    CHECK(p.entries[3].targets == std::vector<std::string>{"bob@example.com", "carol@other.org"});
    CHECK(p.entries[4].source == "@example.net");
    CHECK(p.entries[4].targets == std::vector<std::string>{"@example.com"});
    CHECK(p.entries[5].source == "quoted");
    CHECK(p.entries[5].targets == std::vector<std::string>{"bob@example.com"});
    CHECK(p.problems.size() == 7);  // orphan; prog (twice: target, then nothing left); files; inc (twice); broken
    CHECK_THAT(p.problems[0], Catch::StartsWith("line 1:"));
    CHECK_THAT(p.problems[1], Catch::StartsWith("line 7:"));
}

TEST_CASE("postmaster of every local domain reaches the admins when nothing else matches") {
    Fixture f;
    CHECK(f.r.resolve("postmaster@example.com").status == Status::Unknown);  // no admin yet
    AccountRecord admin;
    admin.address = "boss@example.com";
    admin.admin = true;
    REQUIRE(f.db.add_account(admin));
    auto r = f.r.resolve("Postmaster@example.com");
    CHECK(r.status == Status::Local);
    CHECK(r.accounts == std::vector<std::string>{"boss@example.com"});
    CHECK(f.r.resolve("postmaster@mail.example.org").accounts == std::vector<std::string>{"boss@example.com"});
    // An explicit alias still wins.
    f.db.add_alias("postmaster@example.com", "alice@example.com");
    CHECK(f.r.resolve("postmaster@example.com").accounts == std::vector<std::string>{"alice@example.com"});
    CHECK(f.r.resolve("postmaster@elsewhere.net").status == Status::NotLocal);
}

TEST_CASE("sender_owners: the account, its extensions and aliases reaching it, never a catch-all") {
    Fixture f;
    using V = std::vector<std::string>;
    f.db.add_alias("sales@example.com", "bob@example.com");
    f.db.add_alias("sales@example.com", "alice@example.com");
    f.db.add_alias("sales@example.com", "partner@remote.net");
    f.db.add_alias("all@example.com", "sales@example.com");
    f.db.add_alias("all@example.com", "gone@example.com");  // a target that doesn't exist
    f.db.add_alias("@example.com", "bob@example.com");      // catch-all
    CHECK(f.r.sender_owners("Bob@Example.com") == V{"bob@example.com"});
    CHECK(f.r.sender_owners("bob+lists@example.com") == V{"bob@example.com"});
    CHECK(f.r.sender_owners("sales@example.com") == V{"bob@example.com", "alice@example.com"});
    CHECK(f.r.sender_owners("all@example.com") == V{"bob@example.com", "alice@example.com"});
    // What only the catch-all reaches is nobody's sender address, though mail to it reaches bob.
    CHECK(f.r.resolve("ceo@example.com").accounts == V{"bob@example.com"});
    CHECK(f.r.sender_owners("ceo@example.com").empty());
    CHECK(f.r.sender_owners("bob@elsewhere.net").empty());
    CHECK(f.r.sender_owners("").empty());
}
