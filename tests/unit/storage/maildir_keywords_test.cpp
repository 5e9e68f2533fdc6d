// dovecot-keywords: parsing (tolerant), formatting, letter assignment, keyword validation.
#include <catch2/catch.hpp>

#include "storage/maildir/keywords.hpp"

using namespace pillarbox::storage::maildir;

TEST_CASE("a Dovecot keywords file parses and formats back unchanged") {
    std::string text = "0 $Forwarded\n1 $Junk\n3 Work\n";
    auto p = parse_keywords(text);
    CHECK(p.problems.empty());
    CHECK(p.table.names[0] == "$Forwarded");
    CHECK(p.table.names[1] == "$Junk");
    CHECK(p.table.names[2].empty());
    CHECK(p.table.names[3] == "Work");
    CHECK(p.table.count() == 3);
    CHECK(p.table.name_for_letter('d') == "Work");
    CHECK_FALSE(p.table.name_for_letter('c'));
    CHECK_FALSE(p.table.name_for_letter('D'));
    CHECK(format_keywords(p.table) == text);
}

TEST_CASE("keyword letters are a..z for indexes 0..25") {
    CHECK(keyword_letter(0) == 'a');
    CHECK(keyword_letter(25) == 'z');
    CHECK(keyword_index('a') == 0);
    CHECK(keyword_index('z') == 25);
    CHECK_FALSE(keyword_index('A'));
    CHECK_FALSE(keyword_index('{'));
    CHECK_FALSE(keyword_index('`'));
}

TEST_CASE("keyword lookup is case-insensitive like Dovecot") {
    auto p = parse_keywords("2 NonJunk\n");
    CHECK(p.table.find("nonjunk") == 2);
    CHECK(p.table.find("NONJUNK") == 2);
    CHECK_FALSE(p.table.find("Junk"));
}

TEST_CASE("junk lines, bad and out-of-range indexes and empty names are skipped and reported") {
    auto p = parse_keywords("garbage\n26 TooFar\n-1 Neg\nx Bad\n 5 Lead\n4 \n99999999999999999999 Big\n7 Ok\n\n\r\n");
    CHECK(p.table.count() == 1);
    CHECK(p.table.names[7] == "Ok");
    CHECK(p.problems.size() == 7);
    CHECK_THAT(p.problems[0], Catch::Contains("line 1"));
    CHECK_THAT(p.problems[1], Catch::Contains("past 'z'"));
}

TEST_CASE("a repeated index takes the later line") {
    auto p = parse_keywords("0 First\n0 Second\n");
    CHECK(p.table.names[0] == "Second");
    CHECK_FALSE(p.table.find("First"));
    REQUIRE(p.problems.size() == 1);
    CHECK_THAT(p.problems[0], Catch::Contains("again"));
}

TEST_CASE("a keyword under two letters keeps both letters") {
    auto p = parse_keywords("0 Dup\n4 dup\n");
    CHECK(p.table.names[0] == "Dup");
    CHECK(p.table.names[4] == "dup");
    CHECK(p.table.find("DUP") == 0);
    CHECK(p.problems.size() == 1);
}

TEST_CASE("CRLF files and a missing final newline are read") {
    auto p = parse_keywords("0 A\r\n1 B");
    CHECK(p.problems.empty());
    CHECK(p.table.names[0] == "A");
    CHECK(p.table.names[1] == "B");
}

TEST_CASE("names that are not valid keywords keep their letter but are reported") {
    auto p = parse_keywords("0 has space\n1 \\Seen\n");
    CHECK(p.table.names[0] == "has space");
    CHECK(p.table.names[1] == "\\Seen");
    CHECK(p.problems.size() == 2);
    auto a = assign_keyword(p.table, "New");
    CHECK(a.status == AssignStatus::kAdded);
    CHECK(a.index == 2);
}

TEST_CASE("a file of junk does not produce an unbounded list of problems") {
    std::string junk;
    for (int i = 0; i < 10000; ++i) junk += "x\n";
    auto p = parse_keywords(junk);
    CHECK(p.problems.size() <= 21);
    CHECK_THAT(p.problems.back(), Catch::Contains("more problems"));
}

TEST_CASE("assigning a keyword reuses its letter or takes the lowest free one") {
    auto p = parse_keywords("0 A\n2 C\n");
    auto existing = assign_keyword(p.table, "c");
    CHECK(existing.status == AssignStatus::kExisting);
    CHECK(existing.index == 2);
    auto added = assign_keyword(p.table, "B");
    CHECK(added.status == AssignStatus::kAdded);
    CHECK(added.index == 1);
    auto next = assign_keyword(p.table, "D");
    CHECK(next.index == 3);
    CHECK(format_keywords(p.table) == "0 A\n1 B\n2 C\n3 D\n");
}

TEST_CASE("the 27th keyword is reported as full and changes nothing") {
    KeywordTable t;
    for (int i = 0; i < kMaxKeywordLetters; ++i) {
        auto a = assign_keyword(t, "k" + std::to_string(i));
        REQUIRE(a.status == AssignStatus::kAdded);
        CHECK(a.index == i);
    }
    CHECK(t.full());
    auto before = t;
    CHECK(assign_keyword(t, "extra").status == AssignStatus::kFull);
    CHECK(t == before);
    CHECK(assign_keyword(t, "K25").status == AssignStatus::kExisting);
}

TEST_CASE("invalid keywords are refused a letter") {
    KeywordTable t;
    for (const char* bad : {"", "\\Seen", "two words", "paren(", "brace{", "brack]", "pct%", "star*", "quote\"", "tab\t", "8bit\xc3\xa9", "del\x7f"}) {
        INFO(bad);
        CHECK(assign_keyword(t, bad).status == AssignStatus::kInvalid);
    }
    CHECK(t.count() == 0);
}

TEST_CASE("keyword validation follows the RFC 9051 atom") {
    CHECK(is_valid_keyword("$Forwarded"));
    CHECK(is_valid_keyword("$MDNSent"));
    CHECK(is_valid_keyword("NonJunk"));
    CHECK(is_valid_keyword("a[b"));  // '[' is an ATOM-CHAR, only ']' is not
    CHECK(is_valid_keyword("x-y_z.1+2"));
    CHECK_FALSE(is_valid_keyword(""));
    CHECK_FALSE(is_valid_keyword("\\Seen"));
    CHECK_FALSE(is_valid_keyword("a b"));
    CHECK_FALSE(is_valid_keyword("a]"));
    CHECK_FALSE(is_valid_keyword(std::string("a\0b", 3)));
}

TEST_CASE("formatting leaves out names that would break the line format") {
    KeywordTable t;
    t.names[0] = "ok";
    t.names[1] = "bad\nline";
    t.names[2] = "bad\r";
    CHECK(format_keywords(t) == "0 ok\n");
    CHECK(format_keywords(KeywordTable{}) == "");
}

TEST_CASE("format then parse gives the same table") {
    KeywordTable t;
    t.names[0] = "$Junk";
    t.names[5] = "Project-X";
    t.names[25] = "Last";
    auto p = parse_keywords(format_keywords(t));
    CHECK(p.problems.empty());
    CHECK(p.table == t);
}
