// Decoder: the command head, atoms, strings (quoted, literal, literal8), numbers, sequence sets,
// mailbox names, flags, dates; what a failing reader leaves behind; and the response quoting.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "protocols/imap/parser.hpp"

using namespace pillarbox::imap;
using namespace std::string_literals;

namespace {

const Decoder::Limits kLimits{4, 10, '/'};

Decoder dec(std::string_view text) { return Decoder(text, kLimits); }

using Range = SequenceSet::Range;
using Pairs = std::vector<std::pair<std::uint32_t, std::uint32_t>>;

SequenceSet set_of(std::string_view text) {
    auto d = dec(text);
    auto s = d.sequence_set();
    REQUIRE(s);
    REQUIRE(d.at_end());
    return *s;
}

}  // namespace

TEST_CASE("the head: tag, upper-cased name, the UID forms", "[imap][imap_decoder]") {
    auto d = dec("a1 noop");
    auto h = d.head();
    REQUIRE(h);
    CHECK(h->tag == "a1");
    CHECK(h->name == "NOOP");
    CHECK(d.at_end());

    for (std::string sub : {"fetch", "SEARCH", "Store", "copy", "MOVE", "expunge"}) {
        std::string text = "A2 uid " + sub + " 1:*";  // the Decoder reads it in place
        auto u = dec(text);
        auto uh = u.head();
        REQUIRE(uh);
        std::string upper;
        for (char c : sub) upper += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        CHECK(uh->name == "UID " + upper);
        CHECK(u.rest() == " 1:*");
    }
    // ']' is a tag character (ASTRING-CHAR); the command name stops where atoms stop.
    auto b = dec("A]1 LOGIN{3}");
    auto bh = b.head();
    REQUIRE(bh);
    CHECK(bh->tag == "A]1");
    CHECK(bh->name == "LOGIN");
    CHECK(b.peek('{'));
}

TEST_CASE("a head without a valid tag or command name", "[imap][imap_decoder]") {
    // No valid tag: nullopt, the reply goes untagged.
    for (std::string bad : {""s, " NOOP"s, "+1 NOOP"s, "A+1 NOOP"s, "*A NOOP"s, "A(1 NOOP"s, "A\"1 NOOP"s, "A%1 X"s,
                            "A\x01 NOOP"s, "A\xc3\xa9 NOOP"s, "A{1} NOOP"s, "A\\1 NOOP"s}) {
        INFO(bad);
        auto d = dec(bad);
        CHECK_FALSE(d.head());
        CHECK_FALSE(d.error().empty());
    }
    // A tag but no command: the tag comes back with an empty name and error() says why.
    for (auto [text, error] : std::vector<std::pair<std::string, std::string>>{
             {"A1", "missing command name"}, {"A1 ", "missing command name"}, {"A1 (X", "missing command name"},
             {"A1 UID", "UID needs a command"}, {"A1 UID FOO 1", "UID FOO is not a command"},
             {"A1 UID  FETCH", "UID needs a command"}}) {
        INFO(text);
        auto d = dec(text);
        auto h = d.head();
        REQUIRE(h);
        CHECK(h->tag == "A1");
        CHECK(h->name.empty());
        CHECK(d.error() == error);
    }
}

TEST_CASE("atoms and astrings", "[imap][imap_decoder]") {
    auto d = dec("abc]def");
    CHECK(d.atom() == "abc");
    CHECK(d.peek(']'));
    auto a = dec("abc]def rest");
    CHECK(a.astring() == "abc]def");  // ASTRING-CHAR includes ']'
    CHECK(a.sp());
    CHECK(a.astring() == "rest");
    // '~' starts an atom unless a '{' follows (literal8).
    auto t = dec("~user");
    CHECK(t.astring() == "~user");
    for (std::string bad : {"(x", ")", "{x", " x", "%", "*", "\\x", "\x7f", "\x80", ""}) {
        auto b = dec(bad);
        CHECK_FALSE(b.astring());
        CHECK(b.pos() == 0);
        CHECK_FALSE(b.error().empty());
    }
}

TEST_CASE("quoted strings: only \\\" and \\\\ escapes, no CR, LF or NUL, 8-bit only as UTF-8", "[imap][imap_decoder]") {
    CHECK(dec(R"("a\"b\\c")").string() == R"(a"b\c)");
    CHECK(dec(R"("")").string() == "");
    CHECK(dec("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"").astring() == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    for (auto [text, error] : std::vector<std::pair<std::string, std::string>>{
             {R"("a\b")", "only \\\" and \\\\ may be escaped in a quoted string"},
             {R"("abc)", "unterminated quoted string"},
             {R"("abc\")", "unterminated quoted string"},
             {"\"a\0b\""s, "NUL in a quoted string"},
             {"\"a\rb\"", "CR or LF in a quoted string"},
             {"\"a\nb\"", "CR or LF in a quoted string"},
             {"\"\xc3\x28\"", "a quoted string is not valid UTF-8"},
             {"\"\xc0\xaf\"", "a quoted string is not valid UTF-8"},      // overlong '/'
             {"\"\xed\xa0\x80\"", "a quoted string is not valid UTF-8"},  // a surrogate
             {"\"\xf4\x90\x80\x80\"", "a quoted string is not valid UTF-8"},  // past U+10FFFF
             {"\"\xe2\x82\"", "a quoted string is not valid UTF-8"},  // cut short
             {"\"\xff\"", "a quoted string is not valid UTF-8"}}) {
        INFO(text);
        auto d = dec(text);
        CHECK_FALSE(d.string());
        CHECK(d.pos() == 0);
        CHECK(d.error() == error);
    }
}

TEST_CASE("literals inline as CommandReader keeps them: {n}, {n+}, ~{n}", "[imap][imap_decoder]") {
    auto d = dec("{3}\r\nbob {2+}\r\npw ~{4}\r\na\r\nb {0}\r\n");
    CHECK(d.astring() == "bob");
    CHECK(d.sp());
    CHECK(d.string() == "pw");
    CHECK(d.sp());
    CHECK(d.astring() == "a\r\nb");
    CHECK(d.sp());
    auto empty = d.nstring();
    REQUIRE(empty);
    CHECK(*empty == std::optional<std::string>(""));
    CHECK(d.at_end());
    // 8-bit bytes are fine in literals (CHAR8), in any mode.
    CHECK(dec("{2}\r\n\xc3\xa9").string() == "\xc3\xa9");
    for (auto [text, error] : std::vector<std::pair<std::string, std::string>>{
             {"{4}\r\nabc", "literal longer than the command"},
             {"{3}\nabc", "invalid literal"},
             {"{3}abc", "invalid literal"},
             {"{3}\r", "invalid literal"},
             {"{}\r\n", "invalid literal size"},
             {"{x}\r\n", "invalid literal size"},
             {"~{1+}\r\n\0"s, "NUL in a literal"},
             {"{99999999999999999999}\r\n", "literal too long"},
             {"{9223372036854775808}\r\n", "literal too long"},
             {"{9223372036854775807}\r\nabc", "literal longer than the command"}}) {
        INFO(text);
        auto s = dec(text);
        CHECK_FALSE(s.string());
        CHECK(s.pos() == 0);
        CHECK(s.error() == error);
    }
}

TEST_CASE("nstring: NIL in any case, or a string", "[imap][imap_decoder]") {
    for (std::string nil : {"NIL", "nil", "Nil"}) {
        auto n = dec(nil).nstring();
        REQUIRE(n);
        CHECK_FALSE(n->has_value());
    }
    auto quoted = dec("\"NIL\"").nstring();
    REQUIRE(quoted);
    CHECK(*quoted == std::optional<std::string>("NIL"));
    CHECK_FALSE(dec("NILS").nstring());
    CHECK_FALSE(dec("abc").nstring());
}

TEST_CASE("numbers: 32-bit, non-zero, 63-bit", "[imap][imap_decoder]") {
    CHECK(dec("0").number() == 0u);
    CHECK(dec("007").number() == 7u);
    CHECK(dec("4294967295").number() == 4294967295u);
    auto big = dec("4294967296");
    CHECK_FALSE(big.number());
    CHECK(big.error() == "number out of range");
    CHECK(dec("1").nz_number() == 1u);
    CHECK_FALSE(dec("0").nz_number());
    CHECK_FALSE(dec("01").nz_number());  // nz-number = digit-nz *DIGIT
    CHECK(dec("9223372036854775807").number64() == 9223372036854775807ull);
    CHECK_FALSE(dec("9223372036854775808").number64());
    CHECK_FALSE(dec("99999999999999999999999").number64());
    auto none = dec("x1");
    CHECK_FALSE(none.number());
    CHECK(none.error() == "expected a number");
    CHECK_FALSE(dec("-1").number());
}

TEST_CASE("sequence sets as written: ranges in either order, '*', '$'", "[imap][imap_decoder]") {
    const auto star = SequenceSet::kStar;
    CHECK(set_of("1").ranges == std::vector<Range>{{1, 1}});
    CHECK(set_of("1,3:5,*,7:*,4:2,*:9").ranges ==
          std::vector<Range>{{1, 1}, {3, 5}, {star, star}, {7, star}, {4, 2}, {star, 9}});
    auto saved = set_of("$");
    CHECK(saved.saved);
    CHECK(saved.ranges.empty());
    // "$" stands alone (RFC 5182): what follows it is not part of the set.
    auto d = dec("$,1");
    REQUIRE(d.sequence_set());
    CHECK(d.rest() == ",1");
    for (std::string bad : {"", "0", "1:", ":1", "1,", ",1", "1,,2", "1:0", "01", "4294967296", "x", "1:$"}) {
        INFO(bad);
        auto b = dec(bad);
        auto s = b.sequence_set();
        // Either refused outright, or it stops before the bad part (the caller then fails on it).
        if (s) CHECK_FALSE(b.at_end());
        else {
            CHECK(b.pos() == 0);
            CHECK(b.error() == "invalid sequence set");
        }
    }
    // Limits::max_sequence_ranges
    CHECK(set_of("1,2,3,4,5,6,7,8,9,10").ranges.size() == 10);
    auto many = dec("1,2,3,4,5,6,7,8,9,10,11");
    CHECK_FALSE(many.sequence_set());
    CHECK(many.error() == "too many ranges in a sequence set");
}

TEST_CASE("sequence sets resolve to sorted, merged ranges", "[imap][imap_decoder]") {
    CHECK(set_of("4:2").resolve(10) == Pairs{{2, 4}});
    CHECK(set_of("1:3,4:5,9,7:8").resolve(10) == Pairs{{1, 5}, {7, 9}});
    CHECK(set_of("*").resolve(10) == Pairs{{10, 10}});
    // RFC 9051 6.4.8: "*:4" is "4:*"; a range past star still includes star.
    CHECK(set_of("*:4").resolve(10) == Pairs{{4, 10}});
    CHECK(set_of("20:*").resolve(10) == Pairs{{10, 10}});
    CHECK(set_of("20:30").resolve(10) == Pairs{});
    CHECK(set_of("15,3").resolve(10) == Pairs{{3, 3}});
    // No messages: nothing, '*' included.
    CHECK(set_of("1:*").resolve(0) == Pairs{});
    CHECK(set_of("*").resolve(0) == Pairs{});
    // The top of the range: no wrap-around when merging.
    CHECK(set_of("4294967295,1:4294967294").resolve(4294967295u) == Pairs{{1, 4294967295u}});
    CHECK(set_of("$").resolve(10) == Pairs{});
}

TEST_CASE("mailbox names: modified UTF-7 or UTF-8, INBOX in any case", "[imap][imap_decoder]") {
    CHECK(dec("inbox").mailbox(false) == "INBOX");
    CHECK(dec("\"InBoX/Sub\"").mailbox(false) == "INBOX/Sub");
    CHECK(dec("inboxes").mailbox(false) == "inboxes");
    CHECK(dec("&U,BTFw-").mailbox(false) == "\xe5\x8f\xb0\xe5\x8c\x97");  // 台北
    CHECK(dec("\"a&-b\"").mailbox(false) == "a&b");
    // UTF-8 mode: no modified UTF-7 decoding.
    CHECK(dec("&U,BTFw-").mailbox(true) == "&U,BTFw-");
    CHECK(dec("\"\xe5\x8f\xb0\xe5\x8c\x97\"").mailbox(true) == "\xe5\x8f\xb0\xe5\x8c\x97");
    CHECK(dec("{5}\r\nInbox").mailbox(true) == "INBOX");
    for (auto [text, utf8, error] : std::vector<std::tuple<std::string, bool, std::string>>{
             {"&Jjo", false, "mailbox name is not valid modified UTF-7"},
             {"\"\xc3\xa9\"", false, "mailbox name is not valid modified UTF-7"},
             {"{1}\r\n\xff", true, "mailbox name is not valid UTF-8"},
             {"(", false, "expected an atom or a string"}}) {
        INFO(text);
        auto d = dec(text);
        CHECK_FALSE(d.mailbox(utf8));
        CHECK(d.pos() == 0);
        CHECK(d.error() == error);
    }
    // The separator from the limits decides what "INBOX as the first level" is.
    Decoder dot("inbox.Sub", Decoder::Limits{4, 10, '.'});
    CHECK(dot.mailbox(false) == "INBOX.Sub");
}

TEST_CASE("list-mailbox: wildcards allowed, decoded like mailbox", "[imap][imap_decoder]") {
    CHECK(dec("%").list_mailbox(false) == "%");
    CHECK(dec("*").list_mailbox(false) == "*");
    CHECK(dec("inbox/%").list_mailbox(false) == "INBOX/%");
    CHECK(dec("&U,BTFw-/*").list_mailbox(false) == "\xe5\x8f\xb0\xe5\x8c\x97/*");
    CHECK(dec("\"\"").list_mailbox(false) == "");
    CHECK(dec("a]b").list_mailbox(false) == "a]b");
    CHECK_FALSE(dec("(a").list_mailbox(false));
}

TEST_CASE("flags and flag lists; \\Recent refused", "[imap][imap_decoder]") {
    CHECK(dec("(\\Seen $Forwarded work \\Flagged)").flag_list() ==
          std::vector<std::string>{"\\Seen", "$Forwarded", "work", "\\Flagged"});
    CHECK(dec("()").flag_list() == std::vector<std::string>{});
    CHECK(dec("\\seen").flag() == "\\seen");  // as written; the session normalises
    for (auto [text, error] : std::vector<std::pair<std::string, std::string>>{
             {"(\\Recent)", "\\Recent can't be set by a client"},
             {"(\\Seen \\recent)", "\\Recent can't be set by a client"},
             {"(\\*)", "expected a flag"},
             {"(\\Seen", "expected a space"},
             {"(\\Seen  \\Draft)", "expected a flag"},
             {"( \\Seen)", "expected a flag"},
             {"\\Seen", "expected '('"}}) {
        INFO(text);
        auto d = dec(text);
        CHECK_FALSE(d.flag_list());
        CHECK(d.pos() == 0);
        CHECK(d.error() == error);
    }
}

TEST_CASE("date-time: fixed day (space-padded too), month in any case, zone", "[imap][imap_decoder]") {
    CHECK(dec("\"17-Jul-1996 02:44:25 -0700\"").date_time() == 837596665);
    CHECK(dec("\" 1-jan-2024 00:00:00 +0000\"").date_time() == 1704067200);
    CHECK(dec("\"01-JAN-2024 01:30:00 +0130\"").date_time() == 1704067200);
    CHECK(dec("\"29-Feb-2024 00:00:00 +0000\"").date_time() == 1709164800);
    CHECK(dec("\"31-Dec-1969 00:00:00 +0000\"").date_time() == -86400);
    for (std::string bad : {"17-Jul-1996 02:44:25 -0700", "\"1-Jan-2024 00:00:00 +0000\"", "\"32-Jan-2024 00:00:00 +0000\"",
                            "\"29-Feb-2023 00:00:00 +0000\"", "\"01-Foo-2024 00:00:00 +0000\"", "\"01-Jan-24 00:00:00 +0000\"",
                            "\"01-Jan-2024 24:00:00 +0000\"", "\"01-Jan-2024 00:60:00 +0000\"", "\"01-Jan-2024 00:00:00 +0060\"",
                            "\"01-Jan-2024 00:00:00 0000\"", "\"01-Jan-2024 00:00:00 +0000", "\"01-Jan-2024 0:00:00 +0000\"",
                            "\"00-Jan-2024 00:00:00 +0000\"", "\"01-Jan-2024\""}) {
        INFO(bad);
        auto d = dec(bad);
        CHECK_FALSE(d.date_time());
        CHECK(d.pos() == 0);
        CHECK(d.error() == "invalid date-time");
    }
}

TEST_CASE("SEARCH dates: 1 or 2 digit day, quoted or not", "[imap][imap_decoder]") {
    CHECK(dec("1-Jan-2024").date() == Date{2024, 1, 1});
    CHECK(dec("01-feb-2024").date() == Date{2024, 2, 1});
    CHECK(dec("\"29-Feb-2024\"").date() == Date{2024, 2, 29});
    auto d = dec("1-Jan-2024 rest");
    CHECK(d.date());
    CHECK(d.rest() == " rest");
    for (std::string bad : {"", "1-Jan-24", "123-Jan-2024", "\"1-Jan-2024", "31-Apr-2024", "1 Jan 2024", "x"}) {
        INFO(bad);
        auto b = dec(bad);
        CHECK_FALSE(b.date());
        CHECK(b.error() == "invalid date");
    }
    CHECK(Date{2024, 1, 1}.unix_day_start() == 1704067200);
    CHECK(Date{1969, 12, 31}.unix_day_start() == -86400);
}

TEST_CASE("a failing reader leaves the position; the first error is kept", "[imap][imap_decoder]") {
    auto d = dec("abc 12x");
    CHECK_FALSE(d.number());
    CHECK(d.pos() == 0);
    CHECK(d.error() == "expected a number");
    CHECK(d.atom() == "abc");
    CHECK_FALSE(d.take(')'));
    CHECK(d.error() == "expected a number");  // the first one stays
    d.fail("something else");
    CHECK(d.error() == "expected a number");
    CHECK(d.sp());
    CHECK(d.number() == 12u);
    CHECK_FALSE(d.at_end());
    CHECK(d.rest() == "x");
}

TEST_CASE("words, spaces and lookahead", "[imap][imap_decoder]") {
    auto d = dec("Return (x)");
    CHECK(d.peek_word("RETURN"));
    CHECK_FALSE(d.peek_word("RET"));
    CHECK(d.error().empty());  // peeking never fails
    CHECK(d.take_word("RETURN"));
    CHECK(d.sp());
    CHECK_FALSE(d.sp());
    CHECK(d.error() == "expected a space");
    auto t = dec("RETURNS");
    CHECK_FALSE(t.take_word("RETURN"));
    CHECK(t.error() == "expected RETURN");
    auto s = dec("abc");
    s.skip(2);
    CHECK(s.rest() == "c");
    s.skip(10);
    CHECK(s.at_end());
}

TEST_CASE("nesting is bounded by max_depth", "[imap][imap_decoder]") {
    auto d = dec("(((((x");
    for (int i = 0; i < 4; ++i) CHECK(d.enter_list());
    CHECK_FALSE(d.enter_list());
    CHECK(d.error() == "too deeply nested");
    CHECK(d.pos() == 4);
    auto n = dec("");
    for (int i = 0; i < 4; ++i) CHECK(n.nest());
    CHECK_FALSE(n.nest());
    n.unnest();
    CHECK(n.nest());
    auto l = dec("()");
    CHECK(l.enter_list());
    CHECK(l.leave_list());
    CHECK(l.at_end());
    auto m = dec("x");
    CHECK_FALSE(m.enter_list());
    CHECK(m.error() == "expected '('");
}

TEST_CASE("quote_string: quoted when it can be, a literal otherwise", "[imap][imap_decoder]") {
    CHECK(quote_string("abc", false) == "\"abc\"");
    CHECK(quote_string("", false) == "\"\"");
    CHECK(quote_string(R"(a"b\c)", false) == R"("a\"b\\c")");
    CHECK(quote_string("a\r\nb", false) == "{4}\r\na\r\nb");
    CHECK(quote_string("a\0b"s, false) == "{3}\r\na\0b"s);
    CHECK(quote_string("caf\xc3\xa9", false) == "{5}\r\ncaf\xc3\xa9");
    CHECK(quote_string("caf\xc3\xa9", true) == "\"caf\xc3\xa9\"");
    CHECK(quote_string("\xff", true) == "{1}\r\n\xff");  // not UTF-8: never quoted
    std::string long_value(600, 'a');
    CHECK(quote_string(long_value, false) == "{600}\r\n" + long_value);
    CHECK(nstring(std::nullopt, false) == "NIL");
    CHECK(nstring(std::optional<std::string>("NIL"), false) == "\"NIL\"");
    // Round trip through the Decoder.
    for (std::string v : {"abc"s, "a\"b\\"s, "x\r\ny"s, "caf\xc3\xa9"s, long_value}) {
        for (bool utf8 : {false, true}) {
            std::string q = quote_string(v, utf8);
            CHECK(dec(q).string() == v);
        }
    }
}

TEST_CASE("quote_mailbox: modified UTF-7 unless utf8, quoted when needed", "[imap][imap_decoder]") {
    CHECK(quote_mailbox("INBOX", false) == "INBOX");
    CHECK(quote_mailbox("Work/2024", false) == "Work/2024");
    CHECK(quote_mailbox("My Mail", false) == "\"My Mail\"");
    CHECK(quote_mailbox("\xe5\x8f\xb0\xe5\x8c\x97", false) == "&U,BTFw-");
    CHECK(quote_mailbox("\xe5\x8f\xb0\xe5\x8c\x97", true) == "\"\xe5\x8f\xb0\xe5\x8c\x97\"");
    CHECK(quote_mailbox("a&b", false) == "a&-b");
    CHECK(quote_mailbox("", false) == "\"\"");
    CHECK(quote_mailbox("NIL", false) == "\"NIL\"");  // an atom NIL would read as no mailbox
    CHECK(quote_mailbox("50%", false) == "\"50%\"");
}

TEST_CASE("format_date_time uses the local zone's offset", "[imap][imap_decoder]") {
    const char* old = std::getenv("TZ");
    std::string saved = old ? old : "";
    ::setenv("TZ", "UTC0", 1);
    ::tzset();
    CHECK(format_date_time(837596665) == "17-Jul-1996 09:44:25 +0000");
    CHECK(format_date_time(1704067200) == "01-Jan-2024 00:00:00 +0000");
    // A POSIX zone rule needs no tzdata: Pacific time, daylight saving in July.
    ::setenv("TZ", "PST8PDT,M3.2.0,M11.1.0", 1);
    ::tzset();
    CHECK(format_date_time(837596665) == "17-Jul-1996 02:44:25 -0700");
    CHECK(format_date_time(1704067200) == "31-Dec-2023 16:00:00 -0800");
    ::setenv("TZ", "<+0530>-5:30", 1);
    ::tzset();
    CHECK(format_date_time(1704067200) == "01-Jan-2024 05:30:00 +0530");
    // What it writes, date_time reads back (with quotes).
    CHECK(dec("\"" + format_date_time(837596665) + "\"").date_time() == 837596665);
    if (old) ::setenv("TZ", saved.c_str(), 1);
    else ::unsetenv("TZ");
    ::tzset();
}
