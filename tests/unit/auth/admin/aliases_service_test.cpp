// The alias rules of the admin service layer: source and target syntax (every target checked
// before anything is added), local domains only, and importing an aliases(5)/virtual(5) file
// with the notes an admin reads.
#include <catch2/catch.hpp>

#include "auth/admin/aliases_service.hpp"
#include "auth/admin/domains_service.hpp"
#include "tests/unit/auth/admin/admin_bed.hpp"

using namespace pillarbox;
using namespace pillarbox::auth::admin;
using test::AdminBed;

TEST_CASE("alias sources: user@domain, @domain and bare names; targets checked first") {
    AdminBed bed;
    auto bad_source = add_alias(bed.admin, "bad name@mail.example", {"bob@mail.example"});
    REQUIRE_FALSE(bad_source);
    CHECK(bad_source.error().code == Errc::InvalidAliasName);
    CHECK(bad_source.error().message.rfind("bad name@mail.example: not an alias name (user@domain, @domain or a local name: ", 0) == 0);

    auto bad_target = add_alias(bed.admin, "sales@mail.example", {"ok@remote.net", "bad target"});
    REQUIRE_FALSE(bad_target);
    CHECK(bad_target.error().code == Errc::InvalidAliasTarget);
    CHECK(bad_target.error().message.find("; nothing added") != std::string::npos);
    CHECK(list_aliases(bed.admin).empty());  // not even the good target

    auto remote = add_alias(bed.admin, "sales@elsewhere.net", {"bob@mail.example"});
    REQUIRE_FALSE(remote);
    CHECK(remote.error().code == Errc::DomainNotLocal);
    CHECK(remote.error().message == "sales@elsewhere.net: mail for elsewhere.net is not delivered here; add the domain first");

    auto added = add_alias(bed.admin, "Sales@Mail.Example", {"Bob@Mail.Example", "partner@remote.net"});
    REQUIRE(added);
    REQUIRE(added->size() == 2);
    CHECK(added.value()[0].source == "sales@mail.example");
    CHECK(added.value()[0].target == "bob@mail.example");
    CHECK(added.value()[0].added);
    auto again = add_alias(bed.admin, "sales@mail.example", {"bob@mail.example"});
    REQUIRE(again);
    CHECK_FALSE(again.value()[0].added);  // it existed: not an error
    CHECK(add_alias(bed.admin, "@mail.example", {"bob@mail.example"}));
    CHECK(add_alias(bed.admin, "root", {"bob"}));

    auto list = list_aliases(bed.admin);
    REQUIRE(list.size() == 3);
    CHECK(list[0].source == "@mail.example");
    CHECK(list[1].source == "root");
    CHECK(list[1].targets == std::vector<std::string>{"bob"});
    CHECK(list[2].source == "sales@mail.example");
    CHECK(list[2].targets == std::vector<std::string>{"bob@mail.example", "partner@remote.net"});
}

TEST_CASE("deleting one alias target or all of them") {
    AdminBed bed;
    REQUIRE(add_alias(bed.admin, "sales@mail.example", {"a@remote.net", "b@remote.net", "c@remote.net"}));
    auto one = delete_alias(bed.admin, "SALES@mail.example", "b@remote.net");
    REQUIRE(one);
    CHECK(one->source == "sales@mail.example");
    CHECK(one->targets == 1);
    auto rest = delete_alias(bed.admin, "sales@mail.example");
    REQUIRE(rest);
    CHECK(rest->targets == 2);
    auto none = delete_alias(bed.admin, "sales@mail.example");
    REQUIRE_FALSE(none);
    CHECK(none.error().code == Errc::NoSuchAlias);
    CHECK(none.error().message == "sales@mail.example: no such alias");
    CHECK(delete_alias(bed.admin, "").error().code == Errc::InvalidAliasName);
}

TEST_CASE("importing an aliases file: notes in file order, counts, and a size limit") {
    AdminBed bed;
    REQUIRE(add_domain(bed.admin, "example.com"));
    auto r = import_aliases(bed.admin,
                            "# comment\n"
                            "postmaster: root\n"
                            "root: bob@example.com, admin@remote.net\n"
                            "x@notours.org: bob@example.com\n"
                            "pipe: |/bin/true\n"
                            "info@example.com bob@example.com\n");
    REQUIRE(r);
    CHECK(r->entries == 4);
    CHECK(r->skipped == 1);
    CHECK(r->added == 4);
    CHECK(r->problems == 2);
    REQUIRE(r->notes.size() == 3);
    CHECK(r->notes[0].find("pipes, files and :include: are not supported") != std::string::npos);
    CHECK(r->notes[2] == "line 4: x@notours.org: mail for notours.org is not delivered here; skipped");
    auto list = list_aliases(bed.admin);
    REQUIRE(list.size() == 3);
    CHECK(list[0].source == "info@example.com");
    CHECK(list[2].targets == std::vector<std::string>{"bob@example.com", "admin@remote.net"});

    auto big = import_aliases(bed.admin, std::string(kMaxAliasImport + 1, '#'));
    REQUIRE_FALSE(big);
    CHECK(big.error().code == Errc::TooLarge);
}
