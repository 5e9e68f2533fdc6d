// SEARCH's text helpers: RFC 2047 words, RFC 5322 dates with their obsolete forms, the body's
// text parts decoded, and case-insensitive matching beyond ASCII.
#include <catch2/catch.hpp>

#include "protocols/imap/search_text.hpp"

using namespace pillarbox;
using namespace pillarbox::imap;

TEST_CASE("search text: RFC 2047 encoded words", "[imap][search_text]") {
    CHECK(decode_header_value("plain text") == "plain text");
    CHECK(decode_header_value("=?utf-8?q?caf=C3=A9_cr=C3=A8me?=") == "café crème");
    CHECK(decode_header_value("=?ISO-8859-1?Q?Andr=E9?= Pirard") == "André Pirard");
    CHECK(decode_header_value("=?utf-8?b?w6lsw6h2ZQ==?=") == "élève");
    // RFC 2047 6.2: the space between two encoded words goes.
    CHECK(decode_header_value("=?utf-8?q?a?= =?utf-8?q?b?=") == "ab");
    CHECK(decode_header_value("=?utf-8?q?a?= b") == "a b");
    CHECK(decode_header_value("=?utf-8*en?q?x?=") == "x");
    // Unknown charsets and broken words stay as written.
    CHECK(decode_header_value("=?x-nope?q?a?=") == "=?x-nope?q?a?=");
    CHECK(decode_header_value("=?utf-8?q?a b?=") == "=?utf-8?q?a b?=");
    CHECK(decode_header_value("=?utf-8?x?a?=") == "=?utf-8?x?a?=");
    CHECK(decode_header_value("=?koi8-r?b?8NLJ18XU?=") == "Привет");
}

TEST_CASE("search text: Date: fields, new and obsolete syntax", "[imap][search_text]") {
    CHECK(header_date("Tue, 1 Jul 2003 10:52:37 +0200") == Date{2003, 7, 1});
    CHECK(header_date("1 Jul 03 10:52 GMT") == Date{2003, 7, 1});
    CHECK(header_date("Thu, 01 Jan 98 00:00:00 -0000") == Date{1998, 1, 1});
    CHECK(header_date("Fri, 21 Nov 103 09:55:06 -0600") == Date{2003, 11, 21});  // year - 1900 (RFC 5322 4.3)
    CHECK(header_date("  Tue , 29 Feb 2028 10:52:37 -0700 (PDT)") == Date{2028, 2, 29});
    CHECK_FALSE(header_date("Tue, 29 Feb 2027 10:52:37 -0700"));
    CHECK_FALSE(header_date("yesterday"));
    CHECK_FALSE(header_date(""));
    CHECK_FALSE(header_date("32 Jan 2020"));
}

TEST_CASE("search text: case-insensitive matching", "[imap][search_text]") {
    CHECK(contains_text("Hello World", "WORLD"));
    CHECK(contains_text("Crème BRÛLÉE", "brûlée"));
    CHECK(contains_text("ΑΘΗΝΑ", "αθηνα"));
    CHECK(contains_text("ПРИВЕТ мир", "привет"));
    CHECK(contains_text("anything", ""));
    CHECK_FALSE(contains_text("abc", "abcd"));
    CHECK_FALSE(contains_text("Hello", "world"));
    CHECK(contains_text("bad \xff byte", "\xff BYTE"));
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
    CHECK(contains_text(text, "CAFÉ AU LAIT"));
    CHECK(contains_text(text, "<b>bold</b>"));
    CHECK_FALSE(contains_text(text, "secret"));
}
