// Maildir file names: unique base generation, BASE,FIELDS:2,FLAGS parsing and formatting,
// flag letters.
#include <catch2/catch.hpp>

#include "storage/maildir/filename.hpp"

using namespace pillarbox::storage::maildir;
namespace sf = pillarbox::storage::maildir::system_flag;

TEST_CASE("generated base names have Dovecot's shape") {
    CHECK(generate_base_name({.secs = 1700000000, .usecs = 123456, .pid = 4242, .counter = 7, .hostname = "mail.example.org"}) ==
          "1700000000.M123456P4242Q7.mail.example.org");
    CHECK(generate_base_name({.secs = 1, .usecs = 0, .pid = 1, .counter = 0, .hostname = "h"}) == "1.M0P1Q0.h");
}

TEST_CASE("generated base names carry excess microseconds into seconds") {
    CHECK(generate_base_name({.secs = 10, .usecs = 2'500'000, .pid = 1, .counter = 1, .hostname = "h"}) == "12.M500000P1Q1.h");
}

TEST_CASE("generated base names differ in every input") {
    UniqueSource s{.secs = 100, .usecs = 5, .pid = 9, .counter = 1, .hostname = "h"};
    auto a = generate_base_name(s);
    s.counter = 2;
    auto b = generate_base_name(s);
    s.pid = 10;
    auto c = generate_base_name(s);
    CHECK(a != b);
    CHECK(b != c);
    CHECK(a != c);
}

TEST_CASE("hostnames escape / and : as the Maildir spec says, and our own separators") {
    CHECK(escape_hostname("a/b:c") == "a\\057b\\072c");
    CHECK(escape_hostname("a,b;c") == "a\\054b\\073c");
    CHECK(escape_hostname("mail.example.org") == "mail.example.org");
    CHECK(escape_hostname("") == "localhost");
    auto base = generate_base_name({.secs = 1, .usecs = 2, .pid = 3, .counter = 4, .hostname = "x:y/z,w"});
    CHECK(base.find_first_of("/:,;") == std::string::npos);
    auto parsed = parse_file_name(base);
    REQUIRE(parsed);
    CHECK(parsed->base == base);
}

TEST_CASE("a Dovecot name with sizes and flags parses and formats back unchanged") {
    std::string name = "1700000000.M123456P4242.mail,S=1234,W=1260:2,FRS";
    auto f = parse_file_name(name);
    REQUIRE(f);
    CHECK(f->base == "1700000000.M123456P4242.mail");
    CHECK(f->size == 1234u);
    CHECK(f->vsize == 1260u);
    CHECK_FALSE(f->uid);
    CHECK(f->info == InfoKind::kFlags);
    CHECK(f->flags == "FRS");
    CHECK(f->system_flags() == (sf::kFlagged | sf::kAnswered | sf::kSeen));
    CHECK(format_file_name(*f) == name);
}

TEST_CASE("the U= field persists the IMAP UID in the name") {
    auto f = parse_file_name("123.M1P2Q3.host,S=10,W=11,U=4711:2,S");
    REQUIRE(f);
    CHECK(f->uid == 4711u);
    f->uid = 4712;
    CHECK(format_file_name(*f) == "123.M1P2Q3.host,S=10,W=11,U=4712:2,S");
    FileName fresh;
    fresh.base = "1.M2P3Q4.h";
    fresh.size = 5;
    fresh.uid = 1;
    CHECK(format_file_name(fresh) == "1.M2P3Q4.h,S=5,U=1");
}

TEST_CASE("U=0 and out-of-range UIDs are not UIDs but are kept") {
    auto zero = parse_file_name("b,U=0");
    REQUIRE(zero);
    CHECK_FALSE(zero->uid);
    CHECK(zero->other_fields == std::vector<std::string>{"U=0"});
    auto big = parse_file_name("b,U=4294967296");
    REQUIRE(big);
    CHECK_FALSE(big->uid);
    CHECK(format_file_name(*big) == "b,U=4294967296");
    auto max = parse_file_name("b,U=4294967295");
    REQUIRE(max);
    CHECK(max->uid == 4294967295u);
}

TEST_CASE("unknown comma fields survive parse and format in order") {
    auto f = parse_file_name("base,X=1,S=5,foo,Z=bar:2,S");
    REQUIRE(f);
    CHECK(f->size == 5u);
    CHECK(f->other_fields == std::vector<std::string>{"X=1", "foo", "Z=bar"});
    CHECK(format_file_name(*f) == "base,S=5,X=1,foo,Z=bar:2,S");
}

TEST_CASE("malformed or repeated size fields are kept verbatim, first valid one wins") {
    auto f = parse_file_name("b,S=abc,S=12,S=13,W=,W=-1,W=007");
    REQUIRE(f);
    CHECK(f->size == 12u);
    CHECK_FALSE(f->vsize);
    CHECK(f->other_fields == std::vector<std::string>{"S=abc", "S=13", "W=", "W=-1", "W=007"});
    auto overflow = parse_file_name("b,S=99999999999999999999");
    REQUIRE(overflow);
    CHECK_FALSE(overflow->size);
}

TEST_CASE("flags are sorted in ASCII order and deduplicated") {
    auto f = parse_file_name("b:2,TSRSFDba");
    REQUIRE(f);
    CHECK(f->flags == "DFRSTab");
    CHECK(format_file_name(*f) == "b:2,DFRSTab");
    CHECK(normalize_flags("zSaD") == "DSaz");
    CHECK(normalize_flags("") == "");
}

TEST_CASE("setting flags keeps ASCII order with keywords after the standard letters") {
    FileName f;
    f.base = "b";
    f.set_flag('S', true);
    f.set_flag('c', true);
    f.set_flag('D', true);
    f.set_flag('P', true);
    f.set_flag('a', true);
    CHECK(format_file_name(f) == "b:2,DPSac");
    f.set_flag('P', false);
    f.set_flag('c', false);
    CHECK(format_file_name(f) == "b:2,DSa");
    f.set_flag('1', true);  // not a letter: refused
    CHECK(f.flags == "DSa");
}

TEST_CASE("system flags map to letters and back") {
    FileName f;
    f.base = "b";
    f.set_system_flags(sf::kSeen | sf::kDeleted | sf::kDraft);
    CHECK(f.flags == "DST");
    CHECK(f.system_flags() == (sf::kSeen | sf::kDeleted | sf::kDraft));
    f.set_flag('P', true);
    f.set_system_flags(sf::kAnswered);
    CHECK(f.flags == "PR");  // P is $Forwarded, not a system flag: left alone
    CHECK(letters_for_system_flags(sf::kSeen | sf::kAnswered | sf::kFlagged | sf::kDeleted | sf::kDraft) == "DFRST");
    CHECK(letters_for_system_flags(0) == "");
    CHECK(system_flags_from_letters("SXa") == sf::kSeen);
}

TEST_CASE("IMAP flag names map to Maildir letters case-insensitively") {
    CHECK(letter_for_imap_flag("\\Seen") == 'S');
    CHECK(letter_for_imap_flag("\\answered") == 'R');
    CHECK(letter_for_imap_flag("\\FLAGGED") == 'F');
    CHECK(letter_for_imap_flag("\\Deleted") == 'T');
    CHECK(letter_for_imap_flag("\\Draft") == 'D');
    CHECK(letter_for_imap_flag("$Forwarded") == 'P');
    CHECK_FALSE(letter_for_imap_flag("\\Recent"));
    CHECK_FALSE(letter_for_imap_flag("Seen"));
    CHECK_FALSE(letter_for_imap_flag("$Junk"));
    CHECK(imap_flag_for_letter('T') == "\\Deleted");
    CHECK(imap_flag_for_letter('P') == "$Forwarded");
    CHECK_FALSE(imap_flag_for_letter('a'));
    CHECK_FALSE(imap_flag_for_letter('X'));
}

TEST_CASE("keyword letters read and write as a bit mask") {
    auto f = parse_file_name("b:2,Sacz");
    REQUIRE(f);
    CHECK(f->keyword_mask() == ((1u << 0) | (1u << 2) | (1u << 25)));
    f->set_keyword_mask(1u << 1);
    CHECK(f->flags == "Sb");
    f->set_keyword_mask(0);
    CHECK(f->flags == "S");
}

TEST_CASE("unknown flag letters are kept across flag changes") {
    auto f = parse_file_name("b:2,KS");
    REQUIRE(f);
    f->set_system_flags(sf::kFlagged);
    CHECK(format_file_name(*f) == "b:2,FK");
}

TEST_CASE("names without info, experimental :1, and unknown info are tolerated") {
    auto none = parse_file_name("1.M2P3Q4.host,S=9");
    REQUIRE(none);
    CHECK(none->info == InfoKind::kNone);
    CHECK(none->system_flags() == 0);
    CHECK(format_file_name(*none) == "1.M2P3Q4.host,S=9");

    auto exp = parse_file_name("b:1,something");
    REQUIRE(exp);
    CHECK(exp->info == InfoKind::kExperimental);
    CHECK(exp->info_rest == "1,something");
    CHECK_FALSE(exp->has_flag('S'));
    CHECK(format_file_name(*exp) == "b:1,something");

    auto odd = parse_file_name("b:3");
    REQUIRE(odd);
    CHECK(odd->info == InfoKind::kUnknown);
    CHECK(format_file_name(*odd) == "b:3");

    auto empty = parse_file_name("b:");
    REQUIRE(empty);
    CHECK(empty->info == InfoKind::kUnknown);
    CHECK(format_file_name(*empty) == "b:");
}

TEST_CASE("setting a flag on a name without :2, info gives it :2, info") {
    auto f = parse_file_name("b,S=3");
    REQUIRE(f);
    f->set_flag('S', true);
    CHECK(format_file_name(*f) == "b,S=3:2,S");
    auto exp = parse_file_name("b:1,xyz");
    exp->set_flag('R', false);  // clearing an absent flag changes nothing
    CHECK(format_file_name(*exp) == "b:1,xyz");
    exp->set_flag('R', true);
    CHECK(format_file_name(*exp) == "b:2,R");
}

TEST_CASE("a second flag set after the flags is kept, as Dovecot does") {
    auto f = parse_file_name("b:2,SR,extra");
    REQUIRE(f);
    CHECK(f->flags == "RS");
    CHECK(f->info_rest == ",extra");
    f->set_flag('T', true);
    CHECK(format_file_name(*f) == "b:2,RST,extra");
}

TEST_CASE("the alternative ';' info separator") {
    auto f = parse_file_name("b,S=1;2,S", kAltInfoSeparator);
    REQUIRE(f);
    CHECK(f->size == 1u);
    CHECK(f->flags == "S");
    CHECK(format_file_name(*f, kAltInfoSeparator) == "b,S=1;2,S");
    CHECK(format_file_name(*f) == "b,S=1:2,S");
    // With ';' configured a ':' is nothing special.
    auto colon = parse_file_name("b:2,S", kAltInfoSeparator);
    REQUIRE(colon);
    CHECK(colon->base == "b:2");
    CHECK(colon->info == InfoKind::kNone);
    CHECK(base_of("b,S=1;2,S", ';') == "b");
}

TEST_CASE("the info starts at the last separator, like Dovecot") {
    auto f = parse_file_name("a:b:2,S");
    REQUIRE(f);
    CHECK(f->base == "a:b");
    CHECK(f->flags == "S");
    CHECK(format_file_name(*f) == "a:b:2,S");
}

TEST_CASE("base_of strips fields and info without parsing") {
    CHECK(base_of("1.M2P3.h,S=5,W=6:2,S") == "1.M2P3.h");
    CHECK(base_of("1.M2P3.h:2,S") == "1.M2P3.h");
    CHECK(base_of("1.M2P3.h") == "1.M2P3.h");
    CHECK(base_of("") == "");
}

TEST_CASE("garbage names are refused, not crashed on") {
    CHECK_FALSE(parse_file_name(""));
    CHECK_FALSE(parse_file_name("."));
    CHECK_FALSE(parse_file_name(".."));
    CHECK_FALSE(parse_file_name(".hidden"));
    CHECK_FALSE(parse_file_name("a/b"));
    CHECK_FALSE(parse_file_name(std::string("a\0b", 3)));
    CHECK_FALSE(parse_file_name(",S=5"));
    CHECK_FALSE(parse_file_name(":2,S"));
    CHECK_FALSE(parse_file_name(std::string(256, 'x')));
    CHECK(parse_file_name(std::string(255, 'x')));
    auto weird = parse_file_name("x,,,:2,");
    REQUIRE(weird);
    CHECK(weird->other_fields.empty());
    CHECK(format_file_name(*weird) == "x:2,");
    auto binary = parse_file_name("\xff\xfe,\x01=\x02:2,\x7f\x80");
    REQUIRE(binary);
    CHECK(parse_file_name(format_file_name(*binary)) == binary);
}

TEST_CASE("parse and format are inverse on their own output") {
    for (const char* name : {"1.M2P3Q4.h", "1.M2P3Q4.h,S=0,W=0,U=1:2,", "b,Q=1,S=2:2,DFPRSTaz,more", "b:1,", "x,S=01,S=1"}) {
        auto once = parse_file_name(name);
        REQUIRE(once);
        auto twice = parse_file_name(format_file_name(*once));
        REQUIRE(twice);
        CHECK(*twice == *once);
    }
}
