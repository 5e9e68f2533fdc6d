// The account rules of the admin service layer: valid addresses in local domains only, one
// account per address (in any case), password length, quota syntax, nothing half-done on a
// refusal; and the first admin account.
#include <catch2/catch.hpp>

#include "auth/admin/accounts_service.hpp"
#include "auth/admin/aliases_service.hpp"
#include "auth/admin/domains_service.hpp"
#include "auth/admin/first_admin.hpp"
#include "auth/password.hpp"
#include "tests/unit/auth/admin/admin_bed.hpp"

using namespace pillarbox;
using namespace pillarbox::auth::admin;
using test::AdminBed;

namespace {
NewAccount account(std::string address) {
    NewAccount n;
    n.address = std::move(address);
    return n;
}
}  // namespace

TEST_CASE("an account is added only in a domain whose mail is delivered here") {
    AdminBed bed;
    auto r = add_account(bed.admin, account("bob@example.com"), "secret");
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::DomainNotLocal);
    CHECK(r.error().subject == "example.com");
    CHECK(r.error().message == "bob@example.com: mail for example.com is not delivered here; add the domain first");
    CHECK(list_accounts(bed.admin).empty());

    REQUIRE(add_domain(bed.admin, "example.com"));
    r = add_account(bed.admin, account("Bob@Example.COM"), "secret");
    REQUIRE(r);
    CHECK(r.value() == "bob@example.com");
    // mydestination domains need no database domain.
    CHECK(add_account(bed.admin, account("root@localhost"), "secret"));
    CHECK(list_accounts(bed.admin).size() == 2);
}

TEST_CASE("an address has one account, whatever its case") {
    AdminBed bed;
    REQUIRE(add_account(bed.admin, account("carol@mail.example"), "secret"));
    for (auto again : {"carol@mail.example", "CAROL@Mail.Example"}) {
        auto r = check_new_account(bed.admin, account(again));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::AccountExists);
        CHECK(r.error().message == "carol@mail.example: account exists");
        CHECK_FALSE(add_account(bed.admin, account(again), "other"));
    }
    CHECK(list_accounts(bed.admin).size() == 1);
}

TEST_CASE("addresses that can't be a Maildir path are refused before the database is opened") {
    AdminBed bed;
    for (auto bad : {"no-at-sign", "a b@mail.example", "x/y@mail.example", "@mail.example", "bob@"}) {
        auto r = check_new_account(bed.admin, account(bad));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::InvalidAddress);
    }
    CHECK(check_new_account(bed.admin, account("no-at-sign")).error().message == "no-at-sign: not an address (localpart@domain)");
    CHECK(check_new_account(bed.admin, account(std::string(250, 'x') + "@mail.example")).error().message.find("longer than 254 bytes") !=
          std::string::npos);
    CHECK_FALSE(std::filesystem::exists(bed.db_file()));
}

TEST_CASE("passwords must be non-empty and at most 1024 bytes") {
    AdminBed bed;
    auto r = add_account(bed.admin, account("dave@mail.example"), "");
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::BadPassword);
    CHECK(r.error().message == "empty password");
    r = add_account(bed.admin, account("dave@mail.example"), std::string(kMaxPassword + 1, 'p'));
    REQUIRE_FALSE(r);
    CHECK(r.error().message == "password longer than 1024 bytes");
    CHECK(list_accounts(bed.admin).empty());
    CHECK(add_account(bed.admin, account("dave@mail.example"), std::string(kMaxPassword, 'p')));
    CHECK(set_password(bed.admin, "dave@mail.example", "").error().code == Errc::BadPassword);
}

TEST_CASE("a new account keeps its flags, quotas and derived secrets, never the password") {
    AdminBed bed;
    NewAccount n = account("erin@mail.example");
    n.admin = true;
    n.disabled = true;
    n.quota_bytes = 2048;
    n.quota_messages = 10;
    REQUIRE(add_account(bed.admin, n, "pa55word"));
    auto i = find_account(bed.admin, "ERIN@mail.example");
    REQUIRE(i);
    CHECK(i->address == "erin@mail.example");
    CHECK(i->admin);
    CHECK_FALSE(i->enabled);
    CHECK(i->quota_bytes == std::optional<std::uint64_t>(2048));
    CHECK(i->quota_messages == std::optional<std::uint64_t>(10));
    CHECK(i->password_scheme == "ARGON2ID");
    CHECK(i->stored_secrets == std::vector<std::string>{"SCRAM-SHA-256", "SCRAM-SHA-1"});
    CHECK(i->maildir == bed.dir.path.string() + "/mail/mail.example/erin");
    auto stored = bed.admin.db().account("erin@mail.example");
    REQUIRE(stored);
    CHECK(auth::verify_password(stored->password, "pa55word"));
}

TEST_CASE("update_account: quota syntax, 'default', and nothing changed when a part is refused") {
    AdminBed bed;
    REQUIRE(add_account(bed.admin, account("fay@mail.example"), "secret"));
    AccountChanges bad;
    bad.enabled = false;
    bad.quota_bytes = "2Q";
    auto r = update_account(bed.admin, "fay@mail.example", bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::BadQuota);
    CHECK(r.error().message == "fay@mail.example: bad size unit in '2Q' (use k, M, G or T)");
    CHECK(find_account(bed.admin, "fay@mail.example")->enabled);  // the valid part was not applied

    AccountChanges both_bad;
    both_bad.quota_bytes = "1Z";
    both_bad.quota_messages = "abc";
    CHECK(update_account(bed.admin, "fay@mail.example", both_bad).error().message == "fay@mail.example: bad number 'abc'");

    AccountChanges set;
    set.quota_bytes = "10M";
    set.quota_messages = "55";
    set.enabled = false;
    REQUIRE(update_account(bed.admin, "fay@mail.example", set));
    auto i = find_account(bed.admin, "fay@mail.example");
    CHECK(i->quota_bytes == std::optional<std::uint64_t>(10u * 1024 * 1024));
    CHECK(i->quota_messages == std::optional<std::uint64_t>(55));
    CHECK_FALSE(i->enabled);

    AccountChanges reset;
    reset.quota_bytes = "default";  // the message quota stays
    REQUIRE(update_account(bed.admin, "fay@mail.example", reset));
    i = find_account(bed.admin, "fay@mail.example");
    CHECK_FALSE(i->quota_bytes);
    CHECK(i->quota_messages == std::optional<std::uint64_t>(55));

    CHECK(update_account(bed.admin, "nobody@mail.example", set).error().code == Errc::NoSuchAccount);
    CHECK(update_account(bed.admin, "bad", set).error().code == Errc::InvalidAddress);
}

TEST_CASE("set_password replaces the secrets; delete_account leaves the mail and names it") {
    AdminBed bed;
    REQUIRE(add_account(bed.admin, account("gus@mail.example"), "first"));
    REQUIRE(set_password(bed.admin, "Gus@mail.example", "second"));
    CHECK(auth::verify_password(bed.admin.db().account("gus@mail.example")->password, "second"));
    CHECK(set_password(bed.admin, "nobody@mail.example", "x").error().message == "nobody@mail.example: no such account");

    auto d = delete_account(bed.admin, "GUS@mail.example");
    REQUIRE(d);
    CHECK(d->address == "gus@mail.example");
    CHECK(d->maildir == bed.dir.path.string() + "/mail/mail.example/gus");
    CHECK(delete_account(bed.admin, "gus@mail.example").error().code == Errc::NoSuchAccount);
    CHECK(delete_account(bed.admin, "no-at").error().code == Errc::InvalidAddress);
    // A name an older release stored, which today's rule refuses, can still be deleted.
    auto legacy = delete_account(bed.admin, "Old Name@mail.example");
    REQUIRE_FALSE(legacy);
    CHECK(legacy.error().message == "old name@mail.example: no such account");
}

TEST_CASE("find_account lists the aliases that deliver to the account") {
    AdminBed bed;
    REQUIRE(add_account(bed.admin, account("hal@mail.example"), "secret"));
    REQUIRE(add_alias(bed.admin, "sales@mail.example", {"hal@mail.example"}));
    REQUIRE(add_alias(bed.admin, "root", {"hal@mail.example"}));
    auto i = find_account(bed.admin, "hal@mail.example");
    REQUIRE(i);
    CHECK(i->aliases == std::vector<std::string>{"root", "sales@mail.example"});
    CHECK(list_accounts(bed.admin).front().aliases.empty());  // only find_account looks them up
}

TEST_CASE("the first admin is created once, and only for the builtin backend") {
    SECTION("builtin") {
        AdminBed bed;
        auto first = create_first_admin(bed.admin);
        REQUIRE(first);
        CHECK(first->address == "postmaster@mail.example");
        CHECK(first->password.size() == 20);
        auto i = find_account(bed.admin, first->address);
        REQUIRE(i);
        CHECK(i->admin);
        CHECK_FALSE(create_first_admin(bed.admin));  // accounts exist now
    }
    SECTION("another backend") {
        test::TempDir dir;
        auto s = test::admin_settings(dir);
        s.builtin_backend = false;
        Admin admin(dir.path / "pillarbox.db", s);
        CHECK_FALSE(create_first_admin(admin));
        CHECK_FALSE(std::filesystem::exists(dir.path / "pillarbox.db"));
    }
}

TEST_CASE("the first admin's file is private and replaces an older one") {
    test::TempDir dir;
    auto file = dir.path / kFirstAdminFile;
    dir.write(kFirstAdminFile, "old");
    CHECK(write_first_admin_file(file, "postmaster@mail.example", "pw123") == "");
    auto text = test::read_file(file);
    CHECK(text.find("address: postmaster@mail.example\npassword: pw123\n") != std::string::npos);
    auto mode = std::filesystem::status(file).permissions() & std::filesystem::perms::all;
    CHECK(mode == (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    CHECK_FALSE(write_first_admin_file(dir.path / "missing" / "file", "a@b", "c").empty());
}
