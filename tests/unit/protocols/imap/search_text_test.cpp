// SEARCH's text helpers: RFC 2047 words (charsets through iconv), RFC 5322 dates with their
// obsolete forms, the body's text parts decoded, and case-insensitive matching beyond ASCII that
// stays linear on adversarial input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>
#include <string>

#include "protocols/imap/search_text.hpp"

using namespace pillarbox;
using namespace pillarbox::imap;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("search text: RFC 2047 encoded words", "[imap][search_text]") {
    CHECK(decode_header_value("") == "");
    CHECK(decode_header_value("plain text") == "plain text");
    CHECK(decode_header_value("=?utf-8?q?caf=C3=A9_cr=C3=A8me?=") == "café crème");
    CHECK(decode_header_value("=?UTF-8?Q?caf=c3=a9?=") == "café");  // lower-case hex, upper-case Q
    CHECK(decode_header_value("=?ISO-8859-1?Q?Andr=E9?= Pirard") == "André Pirard");
    CHECK(decode_header_value("=?utf-8?b?w6lsw6h2ZQ==?=") == "élève");
    CHECK(decode_header_value("=?utf-8?B?w6lsw6h2ZQ?=") == "élève");  // padding left out
    CHECK(decode_header_value("=?utf-8?q?\?=") == "");
    CHECK(decode_header_value("Re: =?utf-8?q?=C3=A9t=C3=A9?= report") == "Re: été report");
    // A '=' that is no "=XX" stays.
    CHECK(decode_header_value("=?utf-8?q?1=2?=") == "1=2");
    // Raw 8-bit text outside encoded words (RFC 6532) is left alone.
    CHECK(decode_header_value("d\xC3\xA9j\xC3\xA0 =?utf-8?q?vu?=") == "déjà vu");
    // Words not separated from text by white space are decoded all the same (as other servers do).
    CHECK(decode_header_value("x=?utf-8?q?=C3=A9?=y") == "xéy");
}

TEST_CASE("search text: RFC 2047 section 8's white space examples", "[imap][search_text]") {
    CHECK(decode_header_value("(=?ISO-8859-1?Q?a?=)") == "(a)");
    CHECK(decode_header_value("(=?ISO-8859-1?Q?a?= b)") == "(a b)");
    CHECK(decode_header_value("(a =?ISO-8859-1?Q?b?=)") == "(a b)");
    CHECK(decode_header_value("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)") == "(ab)");
    CHECK(decode_header_value("(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)") == "(ab)");
    CHECK(decode_header_value("(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)") == "(ab)");
    CHECK(decode_header_value("(=?ISO-8859-1?Q?a?=\t=?ISO-8859-1?Q?b?=)") == "(ab)");
    CHECK(decode_header_value("(=?ISO-8859-1?Q?a_b?=)") == "(a b)");
    CHECK(decode_header_value("(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)") == "(a b)");
    CHECK(decode_header_value("=?utf-8?q?a?= b =?utf-8?q?c?=") == "a b c");
}

TEST_CASE("search text: RFC 2047 charsets", "[imap][search_text]") {
    // RFC 2231 section 5: charset*language.
    CHECK(decode_header_value("=?US-ASCII*EN?Q?Keith_Moore?=") == "Keith Moore");
    CHECK(decode_header_value("=?utf-8*en?q?x?=") == "x");
    CHECK(decode_header_value("=?koi8-r?b?8NLJ18XU?=") == "Привет");
    CHECK(decode_header_value("=?windows-1251?q?=CF=F0=E8=E2=E5=F2?=") == "Привет");
    CHECK(decode_header_value("=?windows-1252?q?=80_5?=") == "€ 5");
    CHECK(decode_header_value("=?iso-8859-7?q?=C1=E8=DE=ED=E1?=") == "Αθήνα");
    CHECK(decode_header_value("=?iso-8859-15?q?=A4?=") == "€");
    CHECK(decode_header_value("=?ISO-2022-JP?B?GyRCJEgkRiRiGyhC?=") == "とても");  // stateful
    CHECK(decode_header_value("=?shift_jis?b?g2WDWINn?=") == "テスト");
    CHECK(decode_header_value("=?gb2312?b?1tDOxA==?=") == "中文");
    CHECK(decode_header_value("=?big5?b?pKSk5Q==?=") == "中文");
    CHECK(decode_header_value("=?euc-kr?b?x9Gx2w==?=") == "한글");
    // A character split across two adjacent words of the same charset comes out whole.
    CHECK(decode_header_value("=?utf-8?q?=C3?= =?utf-8?q?=A9?=") == "é");
    CHECK(decode_header_value("=?utf-8?b?5Lit?= =?UTF-8?b?5paH?=") == "中文");
    // Bytes that are not valid in the charset become U+FFFD; the rest of the word is kept.
    CHECK(decode_header_value("=?utf-8?q?a=FFb?=") == "a\xEF\xBF\xBD" "b");
    CHECK(decode_header_value("=?us-ascii?q?a=E9b?=") == "a\xEF\xBF\xBD" "b");
    CHECK(decode_header_value("=?shift_jis?q?x=81?=") == "x\xEF\xBF\xBD");  // cut short
    CHECK(decode_header_value("=?utf-8?q?=C3?= x") == "\xEF\xBF\xBD x");
}

TEST_CASE("search text: RFC 2047 words that stay as written", "[imap][search_text]") {
    // Charsets iconv doesn't know: the words as written, white space between them too.
    CHECK(decode_header_value("=?x-nope?q?a?=") == "=?x-nope?q?a?=");
    CHECK(decode_header_value("=?x-nope?q?a?= =?x-nope?q?b?= c") == "=?x-nope?q?a?= =?x-nope?q?b?= c");
    CHECK(decode_header_value("=?x-nope?q?a?= =?utf-8?q?b?=") == "=?x-nope?q?a?=b");
    // Not charset tokens: no iconv "//" suffixes, no blanks.
    CHECK(decode_header_value("=?utf-8//TRANSLIT?q?a?=") == "=?utf-8//TRANSLIT?q?a?=");
    CHECK(decode_header_value("=?utf 8?q?a?=") == "=?utf 8?q?a?=");
    // Malformed words.
    CHECK(decode_header_value("=?utf-8?q?a b?=") == "=?utf-8?q?a b?=");
    CHECK(decode_header_value("=?utf-8?x?a?=") == "=?utf-8?x?a?=");
    CHECK(decode_header_value("=?\?q?a?=") == "=?\?q?a?=");
    CHECK(decode_header_value("=?*en?q?a?=") == "=?*en?q?a?=");
    CHECK(decode_header_value("=?utf-8?q?abc") == "=?utf-8?q?abc");
    CHECK(decode_header_value("=?utf-8?qq?a?=") == "=?utf-8?qq?a?=");
    CHECK(decode_header_value("=?utf-8?b?w6@?=") == "=?utf-8?b?w6@?=");
    CHECK(decode_header_value("=?utf-8?b?w=6k?=") == "=?utf-8?b?w=6k?=");
    CHECK(decode_header_value("=?utf-8?b?w?=") == "=?utf-8?b?w?=");  // one sextet is no byte
    // A broken word doesn't hide the good one after it, and breaks the run of adjacent words.
    CHECK(decode_header_value("=?=?utf-8?q?a?=") == "=?a");
    CHECK(decode_header_value("=?utf-8?q?a?= =?bad =?utf-8?q?b?=") == "a =?bad b");
}

TEST_CASE("search text: RFC 2047 decoding is linear", "[imap][search_text]") {
    // Each "=?" starts a word that is never closed: a decoder that looks for "?=" from every one
    // of them is quadratic.
    std::string opens;
    for (int k = 0; k < 100000; ++k) opens += "=?utf-8?q?ab";
    std::string words;
    for (int k = 0; k < 50000; ++k) words += "=?utf-8?q?ab?= ";
    std::string charsets;
    for (int k = 0; k < 20000; ++k) charsets += (k % 2 ? "=?koi8-r?q?a?= " : "=?iso-8859-1?q?b?= ");
    auto start = std::chrono::steady_clock::now();
    CHECK(decode_header_value(opens) == opens);
    std::string ab;
    for (int k = 0; k < 50000; ++k) ab += "ab";
    CHECK(decode_header_value(words) == ab + " ");
    CHECK(decode_header_value(charsets).size() == 20001);
    CHECK(seconds_since(start) < 5.0);
}

TEST_CASE("search text: Date: fields, RFC 5322 syntax", "[imap][search_text]") {
    CHECK(header_date("Tue, 1 Jul 2003 10:52:37 +0200") == Date{2003, 7, 1});
    CHECK(header_date("Tue, 01 Jul 2003 10:52:37 -0700 (PDT)") == Date{2003, 7, 1});
    CHECK(header_date("1 Jul 2003 10:52 +0200") == Date{2003, 7, 1});  // no day of week, no seconds
    CHECK(header_date("Mon, 31 Dec 2029 23:59:60 +0000") == Date{2029, 12, 31});  // leap second
    // The day as written, whatever the zone says.
    CHECK(header_date("Wed, 31 Dec 2003 23:30:00 -1200") == Date{2003, 12, 31});
    CHECK(header_date("Thu, 1 Jan 2004 00:10:00 +1400") == Date{2004, 1, 1});
}

TEST_CASE("search text: Date: fields, obsolete syntax (RFC 5322 4.3)", "[imap][search_text]") {
    CHECK(header_date("1 Jul 03 10:52 GMT") == Date{2003, 7, 1});
    CHECK(header_date("Thu, 01 Jan 98 00:00:00 -0000") == Date{1998, 1, 1});
    CHECK(header_date("1 Jan 49 00:00 UT") == Date{2049, 1, 1});
    CHECK(header_date("1 Jan 50 00:00 EST") == Date{1950, 1, 1});
    CHECK(header_date("1 Jan 00 00:00 Z") == Date{2000, 1, 1});
    CHECK(header_date("Fri, 21 Nov 103 09:55:06 -0600") == Date{2003, 11, 21});  // year - 1900
    CHECK(header_date("Fri, 21 Nov 999 09:55:06 -0600") == Date{2899, 11, 21});
    // White space and comments between every token, around the colons too.
    CHECK(header_date("  Tue , 29 Feb 2028 10:52:37 -0700 (PDT)") == Date{2028, 2, 29});
    CHECK(header_date("(x) Tue (day) , (y) 1 (d) Jul (m (nested) ) 2003 (z) 10 : 52 : 37 +0200 (a) (b)") ==
          Date{2003, 7, 1});
    CHECK(header_date("Tue,\r\n 1\r\n Jul\r\n 2003\r\n 10:52:37\r\n +0200") == Date{2003, 7, 1});
    CHECK(header_date("1 Jul 2003(c)10:52") == Date{2003, 7, 1});
    CHECK(header_date("Tue, 1 Jul 2003 10:52:37 +0200 (unclosed") == Date{2003, 7, 1});
    // Names in any case, and in full.
    CHECK(header_date("tue, 1 JUL 2003 10:52") == Date{2003, 7, 1});
    CHECK(header_date("Tuesday, 1 July 2003 10:52:37 +0200") == Date{2003, 7, 1});
    // What follows the time (a zone of any name, or anything else) doesn't change the day.
    CHECK(header_date("Thu, 13 Feb 2009 23:31:30 -0800 PST") == Date{2009, 2, 13});
    CHECK(header_date("Thu, 13 Feb 2009 23:31:30 CEST") == Date{2009, 2, 13});
    CHECK(header_date("Thu, 13 Feb 2009 23:31") == Date{2009, 2, 13});
}

TEST_CASE("search text: Date: days against months", "[imap][search_text]") {
    CHECK(header_date("29 Feb 2024 12:00 +0000") == Date{2024, 2, 29});
    CHECK(header_date("29 Feb 2000 12:00 +0000") == Date{2000, 2, 29});
    CHECK(header_date("29 Feb 96 12:00 +0000") == Date{1996, 2, 29});
    CHECK_FALSE(header_date("29 Feb 2023 12:00 +0000"));
    CHECK_FALSE(header_date("29 Feb 1900 12:00 +0000"));
    CHECK_FALSE(header_date("Tue, 29 Feb 2027 10:52:37 -0700"));
    CHECK_FALSE(header_date("31 Apr 2024 12:00 +0000"));
    CHECK(header_date("30 Apr 2024 12:00 +0000") == Date{2024, 4, 30});
    CHECK(header_date("31 Dec 2024 12:00 +0000") == Date{2024, 12, 31});
    CHECK_FALSE(header_date("32 Jan 2020 12:00 +0000"));
    CHECK_FALSE(header_date("0 Jan 2020 12:00 +0000"));
}

TEST_CASE("search text: not dates", "[imap][search_text]") {
    for (const char* s : {"", "   ", "yesterday", "32 Jan 2020", "1 Jul 2003", "1 Jul 2003 +0200", "1 Jul 2003 10",
                          "1 Jul 2003 10:", "1 Jul 2003 24:00", "1 Jul 2003 10:60", "1 Jul 2003 10:52:61",
                          "1 Jul 2003 1052", "Tue 1 Jul 2003 10:52", "Xyz, 1 Jul 2003 10:52", "Tu, 1 Jul 2003 10:52",
                          "1 Foo 2003 10:52", "1 Ju 2003 10:52", "001 Jul 2003 10:52", "1 Jul 12003 10:52",
                          "1 Jul 2 10:52", "1 Jul 1899 10:52", "1 Jul 2003x 10:52", "Jul 1 2003 10:52",
                          "2003-07-01T10:52:37Z", "Tue Jul  1 10:52:37 2003", "-1 Jul 2003 10:52",
                          "(1 Jul 2003 10:52)"})
        CHECK_FALSE(header_date(s));
}

TEST_CASE("search text: case-insensitive matching", "[imap][search_text]") {
    CHECK(contains_text("Hello World", "WORLD"));
    CHECK(contains_text("Hello World", "o w"));
    CHECK(contains_text("anything", ""));
    CHECK(contains_text("", ""));
    CHECK_FALSE(contains_text("", "a"));
    CHECK_FALSE(contains_text("abc", "abcd"));
    CHECK_FALSE(contains_text("Hello", "world"));
    CHECK(contains_text("aaab", "aab"));  // a partial match restarts in the right place
    CHECK(contains_text("abacababc", "ababc"));
    CHECK_FALSE(contains_text("abacababd", "ababc"));
    CHECK(contains_text("x[]{}@^_`", "[]{}@^_`"));  // no folding of ASCII punctuation
    CHECK_FALSE(contains_text("@", "`"));
    CHECK_FALSE(contains_text("[", "{"));
}

TEST_CASE("search text: case folding beyond ASCII", "[imap][search_text]") {
    CHECK(contains_text("Crème BRÛLÉE", "brûlée"));
    CHECK(contains_text("ÀÉÎÕÜÇÑØÞ", "àéîõüçñøþ"));
    CHECK_FALSE(contains_text("×", "÷"));  // U+00D7 and U+00F7 are no pair
    CHECK(contains_text("ŁÓDŹ, ŻÓŁW, ĆMA, ŚĆ", "łódź, żółw, ćma, ść"));
    CHECK(contains_text("ČEŠTINA ĽUBOŠ ŇŤ", "čeština ľuboš ňť"));
    CHECK(contains_text("ŐRÜLT ŰR", "őrült űr"));
    CHECK(contains_text("ŞĞ ĂȘȚ ƠƯ", "şğ ășț ơư"));  // Turkish, Romanian, Vietnamese
    CHECK(contains_text("Ÿ", "ÿ"));
    CHECK(contains_text("ſ", "S"));   // long s folds to s
    CHECK(contains_text("µ", "Μ"));   // micro sign folds to mu
    CHECK(contains_text("ẞ", "ß"));   // capital sharp s folds to ß
    CHECK_FALSE(contains_text("ß", "ss"));  // simple folding: no one-to-many mappings
    CHECK_FALSE(contains_text("İ", "i"));   // no simple folding; Turkish I is left alone
    CHECK(contains_text("ΑΘΗΝΑ", "αθηνα"));
    CHECK(contains_text("ΟΔΥΣΣΕΥΣ", "οδυσσευς"));  // final sigma folds to sigma
    CHECK(contains_text("ΆΈΉΊΌΎΏ", "άέήίόύώ"));
    CHECK(contains_text("ПРИВЕТ мир", "привет МИР"));
    CHECK(contains_text("ЁЖИК ЇЖАК ЄЇ Ґ", "ёжик їжак єї ґ"));
    CHECK(contains_text("ӁҐҒ", "ӂґғ"));
    CHECK(contains_text("ỆT NAM", "ệt nam"));
    CHECK(contains_text("ＡＢＣ", "ａｂｃ"));
    // Outside the folded ranges, characters compare as they are.
    CHECK(contains_text("中文 テスト", "テスト"));
    CHECK_FALSE(contains_text("Ա", "ա"));  // Armenian is not folded
}

TEST_CASE("search text: bytes that are not UTF-8", "[imap][search_text]") {
    CHECK(contains_text("bad \xff byte", "\xff BYTE"));
    CHECK(contains_text("caf\xe9", "CAF\xe9"));
    CHECK_FALSE(contains_text("caf\xe9", "café"));  // Latin-1 bytes are not characters
    CHECK_FALSE(contains_text("café", "caf\xe9"));
    CHECK_FALSE(contains_text("caf\xef\xbf\xbd", "caf\xe9"));  // nor are they U+FFFD
    CHECK_FALSE(contains_text("caf\xc3", "café"));
    CHECK_FALSE(contains_text("caf\xc3\xa9", "CAF\xc3"));  // a cut character is a byte, not part of one
    CHECK_FALSE(contains_text("\xC0\xAF", "/"));  // overlong forms are bytes, not characters
    CHECK(contains_text("\xED\xA0\x80x", "\xED\xA0\x80X"));  // surrogates too
}

TEST_CASE("search text: matching agrees with a naive search", "[imap][search_text]") {
    // Texts made of these pieces; a lone 0xC3 is never followed by a continuation byte, so it is
    // always a byte that is no character. The reference compares folding classes, naively.
    const std::string pieces[] = {"a", "A", "b", "B", "\xC3\xA9", "\xC3\x89", "\xC3"};
    const int fold_class[] = {0, 0, 1, 1, 2, 2, 3};
    std::mt19937 rng(20261205);
    auto random_text = [&](std::size_t max_pieces, std::string& text, std::vector<int>& classes) {
        std::size_t n = rng() % (max_pieces + 1);
        for (std::size_t k = 0; k < n; ++k) {
            std::size_t p = rng() % 7;
            text += pieces[p];
            classes.push_back(fold_class[p]);
        }
    };
    for (int round = 0; round < 20000; ++round) {
        std::string h, n;
        std::vector<int> hc, nc;
        random_text(24, h, hc);
        random_text(5, n, nc);
        bool expected = nc.empty() || std::search(hc.begin(), hc.end(), nc.begin(), nc.end()) != hc.end();
        INFO("haystack " << h << " needle " << n);
        REQUIRE(contains_text(h, n) == expected);
    }
}

TEST_CASE("search text: matching is linear", "[imap][search_text]") {
    // A naive search (and Boyer-Moore-Horspool) does needle * haystack work here: 10^11.
    std::string haystack(4 * 1024 * 1024, 'a');
    std::string needle = std::string(64 * 1024 - 1, 'A') + "b";
    std::string cyrillic;
    for (int k = 0; k < 1024 * 1024; ++k) cyrillic += "Я";
    auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(contains_text(haystack, needle));
    CHECK_FALSE(contains_text(haystack, "b" + std::string(64 * 1024 - 1, 'A')));  // Horspool's worst case
    CHECK(contains_text(haystack + "b", needle));
    CHECK(contains_text(haystack, std::string(64 * 1024, 'A')));
    CHECK_FALSE(contains_text(cyrillic, std::string(32 * 1024 - 1, 'a') + "я"));
    CHECK(contains_text(cyrillic + "ы", [] { std::string s; for (int k = 0; k < 20000; ++k) s += "я"; return s + "Ы"; }()));
    CHECK(seconds_since(start) < 5.0);
}

TEST_CASE("search text: a long needle against many short values", "[imap][search_text]") {
    // SEARCH TEXT tries the needle on each header field: 64 KB against 100,000 short values.
    std::string needle(64 * 1024, 'x');
    auto start = std::chrono::steady_clock::now();
    int found = 0;
    for (int k = 0; k < 100000; ++k) found += contains_text("Subject: short", needle);
    CHECK(found == 0);
    CHECK(seconds_since(start) < 5.0);
    // The shortcut counts characters of up to 4 bytes: these still match.
    CHECK(contains_text("\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"));
    CHECK(contains_text("a", "A"));
    CHECK(contains_text("\xD0\xAF\xD0\xAF", "\xD1\x8F\xD1\x8F"));
}

TEST_CASE("search text: the body's text parts, decoded", "[imap][search_text]") {
    std::string m =
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "caf=E9 au lait\r\n"
        "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nc2VjcmV0\r\n"
        "--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+Ym9sZDwvYj4=\r\n"
        "--b--\r\n";
    auto parsed = mime::parse_message(m);
    auto text = body_text(m, parsed);
    CHECK(text == "café au lait\n<b>bold</b>");
    CHECK(contains_text(text, "CAFÉ AU LAIT"));
    CHECK(contains_text(text, "<b>bold</b>"));
    CHECK_FALSE(contains_text(text, "secret"));
}

TEST_CASE("search text: body without Content-Type, and charsets of the body", "[imap][search_text]") {
    auto text_of = [](const std::string& m) { return body_text(m, mime::parse_message(m)); };
    CHECK(text_of("Subject: hi\r\n\r\nJust text.\r\n") == "Just text.\r\n");
    CHECK(text_of("Subject: hi\r\n\r\n") == "");
    CHECK(text_of("Subject: hi\n\nbare LF\n") == "bare LF\n");
    // us-ascii (the default) and UTF-8: the bytes as they are, 8-bit or not.
    CHECK(text_of("Subject: hi\r\n\r\ncaf\xE9 caf\xC3\xA9\r\n") == "caf\xE9 caf\xC3\xA9\r\n");
    CHECK(text_of("Content-Type: text/plain; charset=utf-8\r\n\r\n\xFF\xC3\xA9\r\n") == "\xFF\xC3\xA9\r\n");
    CHECK(text_of("Content-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: base64\r\n\r\n8NLJ18XU\r\n") ==
          "Привет");
    CHECK(text_of("Content-Type: text/plain; charset=\"windows-1251\"\r\n\r\n\xCF\xF0\xE8\xE2\xE5\xF2\r\n") ==
          "Привет\r\n");
    CHECK(text_of("Content-Type: text/plain; charset=ISO-2022-JP\r\n\r\n\x1B$B$H$F$b\x1B(B\r\n") == "とても\r\n");
    CHECK(text_of("Content-Type: text/plain; charset=shift_jis\r\n\r\n\x83\x65\x83\x58\x83\x67\r\n") == "テスト\r\n");
    // RFC 2231-encoded charset parameter.
    CHECK(text_of("Content-Type: text/plain; charset*=''iso-8859-1\r\n\r\n\xE9t\xE9\r\n") == "été\r\n");
    // Bytes the charset doesn't have: U+FFFD.
    CHECK(text_of("Content-Type: text/plain; charset=shift_jis\r\n\r\nx\x80y") == "x\xEF\xBF\xBDy");
    // Charsets iconv doesn't know, and encodings decode_part doesn't: the bytes as they are.
    CHECK(text_of("Content-Type: text/plain; charset=x-nope\r\n\r\ncaf\xE9\r\n") == "caf\xE9\r\n");
    CHECK(text_of("Content-Type: text/plain; charset=\"utf-8//IGNORE\"\r\n\r\nabc") == "abc");
    CHECK(text_of("Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n") == "begin 644 x\r\n");
    // Not text: nothing.
    CHECK(text_of("Content-Type: image/png\r\n\r\nPNG data\r\n") == "");
    CHECK(text_of("Content-Type: application/pdf\r\n\r\n%PDF\r\n") == "");
}

TEST_CASE("search text: the body's parts, nested and embedded", "[imap][search_text]") {
    std::string m =
        "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
        "--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
        "--inner\r\nContent-Type: text/plain\r\n\r\nplain version\r\n"
        "--inner\r\nContent-Type: text/html\r\n\r\n<p>html version</p>\r\n"
        "--inner--\r\n"
        "--outer\r\nContent-Type: message/rfc822\r\n\r\n"
        "Subject: forwarded subject\r\nContent-Type: multipart/mixed; boundary=fwd\r\n\r\n"
        "--fwd\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "forwarded d=E9j=E0 vu\r\n"
        "--fwd\r\nContent-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lGODlh\r\n"
        "--fwd--\r\n"
        "--outer\r\nContent-Type: text/csv; name=a.csv\r\nContent-Disposition: attachment\r\n\r\na,b\r\n"
        "--outer--\r\n";
    auto text = body_text(m, mime::parse_message(m));
    CHECK(text == "plain version\n<p>html version</p>\nforwarded déjà vu\na,b");
    CHECK_FALSE(contains_text(text, "GIF"));
}

TEST_CASE("search text: the body's text is bounded", "[imap][search_text]") {
    // Every byte invalid: three bytes of U+FFFD each, not more.
    std::string m = "Content-Type: text/plain; charset=iso-2022-jp\r\n\r\n" + std::string(100000, '\xFF');
    auto text = body_text(m, mime::parse_message(m));
    CHECK(text.size() == 300000);
    CHECK(text.size() <= 4 * m.size());
    // Offsets that don't fit the message (a parse of other bytes): no reads past the end.
    std::string longer = "Content-Type: text/plain\r\n\r\n" + std::string(1000, 'x');
    auto parsed = mime::parse_message(longer);
    CHECK(body_text("Content-Type: text/plain\r\n\r\nxx", parsed) == "xx");
    CHECK(body_text("short", parsed) == "");
}

TEST_CASE("search text: Date: comments cut short", "[imap][search_text]") {
    CHECK_FALSE(header_date("1 Jul 2003 (\\"));
    CHECK_FALSE(header_date("(\\"));
    CHECK_FALSE(header_date("Tue (\\"));
    CHECK_FALSE(header_date("1 (\\"));  // the cut quoted-pair must not step past the end
    CHECK_FALSE(header_date("1 Jul (\\"));
    CHECK(header_date("1 Jul 2003 10:52 (\\") == Date{2003, 7, 1});
    CHECK(header_date("1 (\\)) Jul 2003 10:52") == Date{2003, 7, 1});
}
