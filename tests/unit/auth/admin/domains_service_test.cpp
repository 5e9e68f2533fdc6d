// The domain rules of the admin service layer: valid names only, none twice (mydestination
// counts), none deleted while accounts are left, and a domain's aliases go with it.
#include <catch2/catch.hpp>

#include "auth/admin/accounts_service.hpp"
#include "auth/admin/aliases_service.hpp"
#include "auth/admin/domains_service.hpp"
#include "tests/unit/auth/admin/admin_bed.hpp"

using namespace pillarbox;
using namespace pillarbox::auth::admin;
using test::AdminBed;

TEST_CASE("domains: valid names, lower case, once, and not the configuration's") {
    AdminBed bed;
    auto bad = add_domain(bed.admin, "bad..domain");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == Errc::InvalidDomain);
    CHECK(bad.error().message.rfind("bad..domain: not a valid domain name (", 0) == 0);
    CHECK_FALSE(std::filesystem::exists(bed.db_file()));

    auto added = add_domain(bed.admin, "Example.COM");
    REQUIRE(added);
    CHECK(added.value() == "example.com");
    auto twice = add_domain(bed.admin, "example.com");
    REQUIRE_FALSE(twice);
    CHECK(twice.error().code == Errc::DomainExists);
    CHECK(twice.error().message == "example.com: domain exists");
    auto local = add_domain(bed.admin, "LocalHost");
    REQUIRE_FALSE(local);
    CHECK(local.error().code == Errc::DomainInMydestination);
    CHECK(local.error().message == "localhost: already local through mydestination");

    auto list = list_domains(bed.admin);
    REQUIRE(list.size() == 3);
    CHECK(list[0].name == "mail.example");
    CHECK(list[0].mydestination);
    CHECK(list[1].name == "localhost");
    CHECK(list[2].name == "example.com");
    CHECK_FALSE(list[2].mydestination);
}

TEST_CASE("a domain with accounts is not deleted; without, it goes with its aliases") {
    AdminBed bed;
    REQUIRE(add_domain(bed.admin, "example.com"));
    NewAccount n;
    n.address = "bob@example.com";
    REQUIRE(add_account(bed.admin, n, "secret"));
    REQUIRE(add_alias(bed.admin, "@example.com", {"bob@example.com"}));
    REQUIRE(add_alias(bed.admin, "sales@example.com", {"partner@remote.net"}));
    REQUIRE(add_alias(bed.admin, "root", {"bob@example.com"}));

    auto in_use = delete_domain(bed.admin, "example.com");
    REQUIRE_FALSE(in_use);
    CHECK(in_use.error().code == Errc::DomainInUse);
    CHECK(in_use.error().message == "domain example.com still has 1 account(s); delete them first");

    REQUIRE(delete_account(bed.admin, "bob@example.com"));
    CHECK(delete_domain(bed.admin, "Example.com"));
    auto gone = delete_domain(bed.admin, "example.com");
    REQUIRE_FALSE(gone);
    CHECK(gone.error().code == Errc::NoSuchDomain);
    auto aliases = list_aliases(bed.admin);
    REQUIRE(aliases.size() == 1);  // the bare name isn't the domain's
    CHECK(aliases[0].source == "root");
    // Without the domain its addresses can't get accounts or aliases again.
    NewAccount again;
    again.address = "bob@example.com";
    CHECK(check_new_account(bed.admin, again).error().code == Errc::DomainNotLocal);
    CHECK(add_alias(bed.admin, "x@example.com", {"bob@remote.net"}).error().code == Errc::DomainNotLocal);
}
