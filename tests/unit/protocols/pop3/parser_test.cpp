// POP3 command lines (RFC 1939 section 3): keywords, arguments, message numbers; and the UIDL
// format (Dovecot's pop3_uidl_format, RFC 1939 section 7 unique-id rules).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "protocols/pop3/parser.hpp"

using namespace pillarbox::pop3;

namespace {

Command cmd_ok(std::string_view line) {
    auto c = parse_command(line);
    INFO(Catch::Detail::stringify(std::string(line)));
    REQUIRE(c);
    return *c;
}

std::vector<std::string> split(std::string_view args) {
    std::vector<std::string> out;
    for (auto a : split_args(args)) out.emplace_back(a);
    return out;
}

// RFC 1939 section 7: 1 to 70 characters in the range 0x21 to 0x7E.
bool valid_unique_id(const std::string& s) {
    if (s.empty() || s.size() > 70) return false;
    for (unsigned char c : s)
        if (c < 0x21 || c > 0x7E) return false;
    return true;
}

constexpr std::uint32_t kValidity = 0x6B0C4CAE;  // 1795968174
const std::string kBase = "1700000000.M1P1Q1.host";

}  // namespace

TEST_CASE("parse_command: keywords are case-insensitive and upper-cased") {
    CHECK(cmd_ok("USER alice").verb == "USER");
    CHECK(cmd_ok("user alice").verb == "USER");
    CHECK(cmd_ok("uSeR alice").verb == "USER");
    CHECK(cmd_ok("user alice").args == "alice");  // arguments keep their case
    CHECK(cmd_ok("retr 1").verb == "RETR");
    CHECK(cmd_ok("Top 1 10").args == "1 10");
    CHECK(cmd_ok("capa").verb == "CAPA");
    CHECK(cmd_ok("AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=").args == "PLAIN dGVzdAB0ZXN0AHRlc3Q=");
}

TEST_CASE("parse_command: a keyword alone has empty arguments") {
    auto c = cmd_ok("QUIT");
    CHECK(c.verb == "QUIT");
    CHECK(c.args.empty());
    CHECK(cmd_ok("stat").args.empty());
    CHECK(cmd_ok("NOOP ").args.empty());  // one trailing space: nothing after it
}

TEST_CASE("parse_command: arguments are kept verbatim after one space (PASS keeps its spaces)") {
    CHECK(cmd_ok("PASS my secret").args == "my secret");
    CHECK(cmd_ok("PASS  leading").args == " leading");
    CHECK(cmd_ok("PASS trailing ").args == "trailing ");
    CHECK(cmd_ok("PASS a  b   c").args == "a  b   c");
    CHECK(cmd_ok("PASS  ").args == " ");
    CHECK(cmd_ok("pass \t tab\t").args == "\t tab\t");
    CHECK(cmd_ok("APOP mrose c4c9334bac560ecc979e58001b3e22fb").args == "mrose c4c9334bac560ecc979e58001b3e22fb");
    std::string with_nul("PASS a\0b", 8);
    CHECK(cmd_ok(with_nul).args == std::string("a\0b", 3));
}

TEST_CASE("parse_command: empty lines and bad keywords are not commands") {
    CHECK_FALSE(parse_command(""));
    CHECK_FALSE(parse_command(" "));
    CHECK_FALSE(parse_command(" USER alice"));  // empty keyword before the first space
    CHECK_FALSE(parse_command("US-R alice"));
    CHECK_FALSE(parse_command("USER\talice"));  // a tab is not the separator
    CHECK_FALSE(parse_command("US.R"));
    CHECK_FALSE(parse_command("USER:"));
    CHECK_FALSE(parse_command("\xC3\x9CSER alice"));  // non-ASCII letter
    CHECK_FALSE(parse_command(std::string("US\0R", 4)));
    CHECK_FALSE(parse_command("USER\r"));  // the caller strips CRLF; a stray CR is not a letter
}

TEST_CASE("parse_command: keywords of 1..8 letters or digits") {
    CHECK(cmd_ok("X").verb == "X");
    CHECK(cmd_ok("X9").verb == "X9");
    CHECK(cmd_ok("12345678").verb == "12345678");
    CHECK(cmd_ok("abcdefgh arg").verb == "ABCDEFGH");
    CHECK_FALSE(parse_command("ABCDEFGHI"));
    CHECK_FALSE(parse_command("abcdefghi arg"));
    CHECK_FALSE(parse_command(std::string(100, 'A')));
}

TEST_CASE("split_args: on spaces, runs of spaces tolerated") {
    CHECK(split("").empty());
    CHECK(split(" ").empty());
    CHECK(split("    ").empty());
    CHECK(split("1") == std::vector<std::string>{"1"});
    CHECK(split("1 10") == std::vector<std::string>{"1", "10"});
    CHECK(split("  1   10  ") == std::vector<std::string>{"1", "10"});
    CHECK(split("a b c d") == std::vector<std::string>{"a", "b", "c", "d"});
    CHECK(split("a\tb c") == std::vector<std::string>{"a\tb", "c"});  // only spaces separate
}

TEST_CASE("split_args: pieces are views into the arguments") {
    std::string args = "12 34";
    auto v = split_args(args);
    REQUIRE(v.size() == 2);
    CHECK(v[0].data() == args.data());
    CHECK(v[1].data() == args.data() + 3);
}

TEST_CASE("parse_number: decimal digits only, 32 bits") {
    CHECK(parse_number("0") == 0u);
    CHECK(parse_number("1") == 1u);
    CHECK(parse_number("42") == 42u);
    CHECK(parse_number("007") == 7u);
    CHECK(parse_number("0000000001") == 1u);  // 10 digits
    CHECK(parse_number("4294967295") == 4294967295u);
    CHECK_FALSE(parse_number("4294967296"));
    CHECK_FALSE(parse_number("9999999999"));
    CHECK_FALSE(parse_number("00000000001"));  // 11 digits, even with a small value
    CHECK_FALSE(parse_number("12345678901"));
    CHECK_FALSE(parse_number(""));
    CHECK_FALSE(parse_number("+1"));
    CHECK_FALSE(parse_number("-1"));
    CHECK_FALSE(parse_number(" 1"));
    CHECK_FALSE(parse_number("1 "));
    CHECK_FALSE(parse_number("1a"));
    CHECK_FALSE(parse_number("0x10"));
    CHECK_FALSE(parse_number("1.0"));
    CHECK_FALSE(parse_number("\xD9\xA1"));  // ARABIC-INDIC DIGIT ONE
    CHECK_FALSE(parse_number(std::string("1\0", 2)));
}

TEST_CASE("format_uidl: %u, %v and %f") {
    CHECK(format_uidl("%u", 42, kValidity, kBase) == "42");
    CHECK(format_uidl("%v", 42, kValidity, kBase) == "1795968174");
    CHECK(format_uidl("%v.%u", 42, kValidity, kBase) == "1795968174.42");  // Cyrus >= 2.1.4
    CHECK(format_uidl("%v-%u", 42, kValidity, kBase) == "1795968174-42");  // Courier version 2
    CHECK(format_uidl("%f", 42, kValidity, kBase) == kBase);                // Courier version 0
    CHECK(format_uidl("U%u/V%v/F%f", 1, 2, "b") == "U1/V2/Fb");
    CHECK(format_uidl("%u", 4294967295u, 0, "") == "4294967295");
    CHECK(format_uidl("%u%u", 7, 0, "") == "77");
}

TEST_CASE("format_uidl: %x is lower-case hex, with and without a zero-padded width") {
    CHECK(format_uidl("%xu", 255, kValidity, kBase) == "ff");
    CHECK(format_uidl("%xv", 1, kValidity, kBase) == "6b0c4cae");
    CHECK(format_uidl("%08xu", 255, kValidity, kBase) == "000000ff");
    CHECK(format_uidl("%08xu%08xv", 1, kValidity, kBase) == "000000016b0c4cae");
    CHECK(format_uidl("%08xv%08xu", 1, kValidity, kBase) == "6b0c4cae00000001");
    CHECK(format_uidl("%xu", 0, 0, "") == "0");
    CHECK(format_uidl("%xu", 0xFFFFFFFFu, 0, "") == "ffffffff");
}

TEST_CASE("format_uidl: the default %08Xu%08Xv zero-pads hex digits") {
    // Values with no hex letters: the same whatever the case of the digits.
    CHECK(format_uidl("%08Xu%08Xv", 1, 0x12345678, kBase) == "0000000112345678");
    CHECK(format_uidl("%08Xu%08Xv", 0x10, 0x1, kBase) == "0000001000000001");
    CHECK(format_uidl("%08Xu%08Xv", 0, 0, kBase) == "0000000000000000");
    CHECK(format_uidl("%08Xv%08Xu", 2, 0x99, kBase) == "0000009900000002");  // UW ipop3d
    auto u = format_uidl("%08Xu%08Xv", 0xFFFFFFFFu, kValidity, kBase);
    CHECK(u.size() == 16);
    CHECK(valid_unique_id(u));
}

// Dovecot's X modifier is "%llx" (var-expand.c m_str_hex): lower case. Cyrus' uidl_format
// "dovecot" documents the same ("8 digits of leading hex (lower case)"). A server replacing
// Dovecot must send the very same unique-ids, or every POP3 client that leaves mail on the
// server downloads the whole maildrop again.
TEST_CASE("format_uidl: %X matches Dovecot (lower-case hex digits)") {
    CHECK(format_uidl("%08Xu%08Xv", 1, kValidity, kBase) == "000000016b0c4cae");
    CHECK(format_uidl("%08Xv%08Xu", 1, kValidity, kBase) == "6b0c4cae00000001");
    CHECK(format_uidl("%Xu", 255, 0, "") == "ff");
}

TEST_CASE("format_uidl: widths without a zero pad add no characters") {
    // Space padding would break the unique-id character rules; the value is sent as is.
    CHECK(format_uidl("%8u", 1, kValidity, kBase) == "1");
    CHECK(format_uidl("%8xu", 255, kValidity, kBase) == "ff");
    CHECK(format_uidl("%20f", 1, kValidity, "abc") == "abc");
    CHECK(format_uidl("%3u", 12345, 0, "").find(' ') == std::string::npos);
    CHECK(format_uidl("%04u", 7, 0, "") == "0007");
    CHECK(format_uidl("%04u", 123456, 0, "") == "123456");  // zero pad never truncates
    CHECK(format_uidl("%02f", 1, 0, "x") == "0x");
}

// Dovecot: "%2u gives first two characters" (a width without the leading zero is a substring);
// only a width with a leading zero pads. Rare in a pop3_uidl_format, but a migrated config may
// carry it.
TEST_CASE("format_uidl: a width without zero is a Dovecot substring") {
    CHECK(format_uidl("%2u", 12345, 0, "") == "12");
    CHECK(format_uidl("%4f", 1, 0, kBase) == "1700");
}

TEST_CASE("format_uidl: %% and literal characters") {
    CHECK(format_uidl("%%", 1, 2, "") == "%");
    CHECK(format_uidl("%%u", 1, 2, "") == "%u");
    CHECK(format_uidl("%u%%%v", 1, 2, "") == "1%2");
    CHECK(format_uidl("pb-%u", 9, 2, "") == "pb-9");
    CHECK(format_uidl("%f.%u", 9, 2, "base") == "base.9");
}

TEST_CASE("format_uidl: cut to 70 characters") {
    std::string long_base(100, 'b');
    auto u = format_uidl("%f", 1, 2, long_base);
    CHECK(u == std::string(70, 'b'));
    CHECK(format_uidl(std::string(80, 'a'), 1, 2, "") == std::string(70, 'a'));
    CHECK(format_uidl("%u" + std::string(80, 'z'), 12, 2, "") == "12" + std::string(68, 'z'));
    CHECK(format_uidl("%0100u", 1, 2, "") == std::string(70, '0'));  // padded, then cut
    CHECK(format_uidl(std::string(69, 'a') + "%u", 12, 2, "") == std::string(69, 'a') + "1");
}

TEST_CASE("format_uidl: bytes outside 0x21..0x7E are dropped") {
    CHECK(format_uidl("a b\tc%u", 1, 2, "") == "abc1");
    CHECK(format_uidl("%f", 1, 2, "a b\x7F" "c\x80\xFF" "d\x01") == "abcd");
    CHECK(format_uidl("\x21%u\x7E", 1, 2, "") == "!1~");
    CHECK(format_uidl(std::string("x\0y", 3), 1, 2, "") == "xy");
    // Dropped bytes do not count towards the 70.
    CHECK(format_uidl(std::string(30, ' ') + std::string(70, 'q'), 1, 2, "") == std::string(70, 'q'));
}

TEST_CASE("format_uidl: a malformed format falls back to the default") {
    const auto def = format_uidl("%08Xu%08Xv", 5, kValidity, kBase);
    REQUIRE(def.size() == 16);
    for (std::string bad : {"%", "abc%", "%q", "%U", "%Xf", "%xf", "%08X", "%08", "%0", "%{uid}", "%-2u", "%Lu", "%g",
                            "%m", "%u%", "%u%z", "%2.1u"}) {
        INFO(bad);
        CHECK(format_uidl(bad, 5, kValidity, kBase) == def);
    }
    CHECK(def.substr(0, 8) == "00000005");
}

TEST_CASE("format_uidl: an empty format gives an empty string") {
    // valid_uidl_format refuses it, so a configured server never uses it.
    CHECK(format_uidl("", 1, 2, "b").empty());
    CHECK_FALSE(valid_uidl_format(""));
}

TEST_CASE("format_uidl: always a valid unique-id for the usual formats") {
    for (std::string f : {"%08Xu%08Xv", "%08Xv%08Xu", "%u", "%v.%u", "%v-%u", "%f", "%08xu%08xv"}) {
        for (std::uint32_t uid : {1u, 9u, 100u, 65536u, 4294967295u}) {
            INFO(f << " " << uid);
            CHECK(valid_unique_id(format_uidl(f, uid, kValidity, kBase)));
        }
    }
}

TEST_CASE("valid_uidl_format: understood and naming %u or %f") {
    CHECK(valid_uidl_format("%08Xu%08Xv"));
    CHECK(valid_uidl_format("%08Xv%08Xu"));
    CHECK(valid_uidl_format("%u"));
    CHECK(valid_uidl_format("%v.%u"));
    CHECK(valid_uidl_format("%v-%u"));
    CHECK(valid_uidl_format("%f"));
    CHECK(valid_uidl_format("%xu"));
    CHECK(valid_uidl_format("%8u"));
    CHECK(valid_uidl_format("x%%%u"));
    CHECK(valid_uidl_format("%20f"));

    CHECK_FALSE(valid_uidl_format(""));
    CHECK_FALSE(valid_uidl_format("%v"));         // the same for every message
    CHECK_FALSE(valid_uidl_format("%08Xv"));
    CHECK_FALSE(valid_uidl_format("constant"));
    CHECK_FALSE(valid_uidl_format("%%u"));        // a literal "%u"
    CHECK_FALSE(valid_uidl_format("%"));
    CHECK_FALSE(valid_uidl_format("%u%"));
    CHECK_FALSE(valid_uidl_format("%q%u"));
    CHECK_FALSE(valid_uidl_format("%Xf"));
    CHECK_FALSE(valid_uidl_format("%u%08X"));
    CHECK_FALSE(valid_uidl_format("%{uid}"));
    CHECK_FALSE(valid_uidl_format("%m"));
    CHECK_FALSE(valid_uidl_format("%g"));
}

TEST_CASE("valid_uidl_format agrees with format_uidl's fallback") {
    // A format that passes the check is expanded as written, never replaced by the default.
    for (std::string f : {"pb%u", "%f-x", "%u.%v", "%010u"}) {
        INFO(f);
        REQUIRE(valid_uidl_format(f));
        CHECK(format_uidl(f, 3, 4, "base") != format_uidl("%08Xu%08Xv", 3, 4, "base"));
    }
    CHECK(format_uidl("pb%u", 3, 4, "b") == "pb3");
    CHECK(format_uidl("%010u", 3, 4, "b") == "0000000003");
}
