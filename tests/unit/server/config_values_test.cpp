// Typed config values: bool, size, time, count, list, CIDR, port, endpoint.
#include <catch2/catch.hpp>

#include "server/config_values.hpp"

using namespace pillarbox::config;
using namespace std::chrono_literals;

TEST_CASE("booleans accept Postfix spellings and reject others") {
    CHECK(*parse_bool("yes").value);
    CHECK(*parse_bool("On").value);
    CHECK_FALSE(*parse_bool("no").value);
    CHECK_FALSE(*parse_bool(" false ").value);
    CHECK_FALSE(parse_bool("maybe"));
    CHECK_THAT(parse_bool("maybe").error, Catch::Contains("maybe"));
}

TEST_CASE("sizes take binary units and refuse garbage and overflow") {
    CHECK(*parse_size("10240000").value == 10240000);
    CHECK(*parse_size("512k").value == 512 * 1024);
    CHECK(*parse_size("10M").value == 10 * 1024 * 1024);
    CHECK(*parse_size("10MB").value == 10 * 1024 * 1024);
    CHECK(*parse_size("1g").value == 1024ull * 1024 * 1024);
    CHECK_FALSE(parse_size("10X"));
    CHECK_FALSE(parse_size("M"));
    CHECK_FALSE(parse_size("-1"));
    CHECK_FALSE(parse_size("99999999999999999999"));
    CHECK_FALSE(parse_size("20000000000T"));
}

TEST_CASE("times take s m h d w and a default unit") {
    CHECK(*parse_time("300s").value == 300s);
    CHECK(*parse_time("5m").value == 300s);
    CHECK(*parse_time("1h").value == 3600s);
    CHECK(*parse_time("2d").value == 48h);
    CHECK(*parse_time("1w").value == 168h);
    CHECK(*parse_time("250ms").value == 250ms);
    CHECK(*parse_time("30").value == 30s);
    CHECK(*parse_time("30", 'm').value == 30min);
    CHECK_FALSE(parse_time("5 minutes"));
    CHECK_FALSE(parse_time("soon"));
}

TEST_CASE("counts are range-checked") {
    CHECK(*parse_uint("50", 0, 100).value == 50);
    CHECK_FALSE(parse_uint("101", 0, 100));
    CHECK_FALSE(parse_uint("5x", 0, 100));
    CHECK_FALSE(parse_uint("", 0, 100));
}

TEST_CASE("lists split on commas and whitespace") {
    CHECK(split_list("a, b,c  d\te") == std::vector<std::string>{"a", "b", "c", "d", "e"});
    CHECK(split_list(" , ").empty());
}

TEST_CASE("CIDR networks in Postfix syntax") {
    auto l = parse_cidr_list("127.0.0.0/8 [::1]/128, 192.0.2.1 [2001:db8::]/32");
    REQUIRE(l);
    REQUIRE(l.value->size() == 4);
    const auto& n = *l.value;
    std::uint8_t v4[4] = {127, 1, 2, 3};
    CHECK(n[0].contains(v4, false));
    CHECK_FALSE(n[0].contains(v4, true));
    std::uint8_t other[4] = {128, 0, 0, 1};
    CHECK_FALSE(n[0].contains(other, false));
    CHECK(n[2].prefix == 32);
    std::uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9};
    CHECK(n[3].contains(v6, true));
    CHECK(n[1].to_string() == "[::1]/128");
    CHECK(n[0].to_string() == "127.0.0.0/8");
}

TEST_CASE("CIDR mistakes are reported") {
    CHECK_FALSE(parse_cidr("10.0.0.1/8"));  // host bits set
    CHECK_THAT(parse_cidr("10.0.0.1/8").error, Catch::Contains("10.0.0.0/8"));
    CHECK_FALSE(parse_cidr("10.0.0.0/33"));
    CHECK_FALSE(parse_cidr("example.com"));
    CHECK_FALSE(parse_cidr("10.0.0.0/"));
    CHECK_FALSE(parse_cidr_list("127.0.0.0/8 nonsense"));
}

TEST_CASE("ports and listen endpoints") {
    CHECK(*parse_port("25").value == 25);
    CHECK_FALSE(parse_port("0"));
    CHECK_FALSE(parse_port("65536"));
    auto bare = parse_endpoint("2525");
    REQUIRE(bare);
    CHECK(bare.value->host.empty());
    CHECK(bare.value->port == 2525);
    auto v4 = parse_endpoint("127.0.0.1:25");
    REQUIRE(v4);
    CHECK(v4.value->host == "127.0.0.1");
    auto v6 = parse_endpoint("[::1]:993");
    REQUIRE(v6);
    CHECK(v6.value->host == "::1");
    CHECK(v6.value->to_string() == "[::1]:993");
    CHECK_FALSE(parse_endpoint("::1:993"));
    CHECK_FALSE(parse_endpoint("mail.example.com:25"));
    CHECK_FALSE(parse_endpoint("[::1]993"));
    CHECK_FALSE(parse_endpoint("127.0.0.1:99999"));
}
