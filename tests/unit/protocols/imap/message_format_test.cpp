// IMAP FETCH views of a message: ENVELOPE, BODY and BODYSTRUCTURE against a corpus of tricky
// MIME messages with hand-written expectations, BODY[section] byte ranges, and the transfer
// decodings behind BINARY.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "protocols/common/message_parser.hpp"
#include "protocols/imap/message_format.hpp"

using namespace pillarbox;
using namespace pillarbox::imap;

namespace {

// The build passes the source directory: __FILE__ is relative to the build directory.
#ifdef PILLARBOX_UNIT_TEST_DIR
std::filesystem::path corpus_dir() { return std::filesystem::path(PILLARBOX_UNIT_TEST_DIR) / "protocols/imap/corpus"; }
#else
std::filesystem::path corpus_dir() { return std::filesystem::path(__FILE__).parent_path() / "corpus"; }
#endif

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// NAME.expected holds "ITEM value" CRLF per item, in wire form: a value may hold a literal
// ("{n}" CRLF and n bytes), after which it goes on.
std::map<std::string, std::string> read_expected(const std::filesystem::path& path) {
    std::string text = read_file(path);
    std::map<std::string, std::string> items;
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t sp = text.find(' ', i);
        REQUIRE(sp != std::string::npos);
        std::string name = text.substr(i, sp - i);
        std::size_t start = sp + 1, pos = start;
        for (;;) {
            std::size_t eol = text.find("\r\n", pos);
            REQUIRE(eol != std::string::npos);
            std::size_t open = text.rfind('{', eol);
            bool literal = eol > 0 && text[eol - 1] == '}' && open != std::string::npos && open >= pos &&
                           eol - open > 2 &&
                           std::all_of(text.begin() + static_cast<std::ptrdiff_t>(open) + 1,
                                       text.begin() + static_cast<std::ptrdiff_t>(eol) - 1,
                                       [](char c) { return c >= '0' && c <= '9'; });
            if (!literal) {
                items[name] = text.substr(start, eol - start);
                i = eol + 2;
                break;
            }
            pos = eol + 2 + std::stoul(text.substr(open + 1, eol - 1 - open - 1));
        }
    }
    return items;
}

std::vector<std::string> corpus_names() {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(corpus_dir()))
        if (entry.path().extension() == ".eml") names.push_back(entry.path().stem().string());
    std::sort(names.begin(), names.end());
    return names;
}

void check_items(const mime::Message& m, const std::filesystem::path& expected, bool utf8) {
    auto items = read_expected(expected);
    INFO(expected.filename().string());
    REQUIRE(items.size() == 3);
    CHECK(format_envelope(m.envelope, utf8) == items.at("ENVELOPE"));
    CHECK(format_body_structure(m, false, utf8) == items.at("BODY"));
    CHECK(format_body_structure(m, true, utf8) == items.at("BODYSTRUCTURE"));
    // FETCH works from the parse cache: the JSON form must give the same answers.
    auto cached = mime::from_json(mime::to_json(m));
    REQUIRE(cached);
    CHECK(format_body_structure(*cached, true, utf8) == items.at("BODYSTRUCTURE"));
}

// The bytes locate_section names, taken from the message as the caller would send them.
std::string extract(std::string_view message, const SectionContent& c) {
    std::string out;
    for (const auto& p : c.pieces) {
        if (p.size > 0) {
            REQUIRE(p.offset + p.size <= message.size());
            out.append(message.substr(p.offset, p.size));
        } else {
            out += p.bytes;
        }
    }
    CHECK(out.size() == c.total());
    return out;
}

Section sec(std::vector<std::uint32_t> part, Section::Text text = Section::Text::None,
            std::vector<std::string> fields = {}) {
    Section s;
    s.part = std::move(part);
    s.text = text;
    s.fields = std::move(fields);
    return s;
}

struct Loaded {
    std::string raw;
    mime::Message m;
};

Loaded load(const std::string& name) {
    Loaded l;
    l.raw = read_file(corpus_dir() / (name + ".eml"));
    l.m = mime::parse_message(l.raw);
    return l;
}

std::optional<std::string> section_text(const Loaded& l, const Section& s) {
    auto c = locate_section(l.m, s);
    if (!c) return std::nullopt;
    return extract(l.raw, *c);
}

std::string crlf(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\n') out += "\r\n";
        else out.push_back(c);
    }
    return out;
}

using T = Section::Text;

}  // namespace

TEST_CASE("corpus: ENVELOPE, BODY and BODYSTRUCTURE of each message", "[imap][message_format]") {
    auto names = corpus_names();
    REQUIRE(names.size() >= 20);
    for (const auto& name : names) {
        SECTION(name) {
            std::string raw = read_file(corpus_dir() / (name + ".eml"));
            // The corpus is stored as Pillarbox stores mail: CRLF only.
            for (std::size_t i = 0; i < raw.size(); ++i)
                if (raw[i] == '\n') REQUIRE((i > 0 && raw[i - 1] == '\r'));
            mime::Message m = mime::parse_message(raw);
            auto expected = corpus_dir() / (name + ".expected");
            REQUIRE(std::filesystem::exists(expected));
            check_items(m, expected, false);
            auto expected_utf8 = corpus_dir() / (name + ".utf8.expected");
            // Without 8-bit text or message/global, a UTF-8 session sees the same.
            check_items(m, std::filesystem::exists(expected_utf8) ? expected_utf8 : expected, true);
        }
    }
}

TEST_CASE("ENVELOPE: quoting, NIL and address forms", "[imap][message_format]") {
    mime::Envelope e;
    CHECK(format_envelope(e, false) == "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");

    e.subject = "say \"hi\" \\o/";
    e.date = "";
    CHECK(format_envelope(e, false) == R"(("" "say \"hi\" \\o/" NIL NIL NIL NIL NIL NIL NIL NIL))");

    SECTION("CR, LF or NUL in a value make a literal") {
        e.subject = std::string("a\0b", 3);
        CHECK(format_envelope(e, false) == std::string("(\"\" {3}\r\na") + '\0' + "b NIL NIL NIL NIL NIL NIL NIL NIL)");
        e.subject = "a\rb";
        CHECK(format_envelope(e, true) == "(\"\" {3}\r\na\rb NIL NIL NIL NIL NIL NIL NIL NIL)");
    }
    SECTION("8-bit: a literal unless UTF-8 is on, and then only well-formed UTF-8 is quoted") {
        e.subject = "caf\xc3\xa9";
        CHECK(format_envelope(e, false) == "(\"\" {5}\r\ncaf\xc3\xa9 NIL NIL NIL NIL NIL NIL NIL NIL)");
        CHECK(format_envelope(e, true) == "(\"\" \"caf\xc3\xa9\" NIL NIL NIL NIL NIL NIL NIL NIL)");
        e.subject = "caf\xe9";  // Latin-1 in a header
        CHECK(format_envelope(e, true) == "(\"\" {4}\r\ncaf\xe9 NIL NIL NIL NIL NIL NIL NIL NIL)");
    }
    SECTION("routes, empty names, quoted local parts, domain literals") {
        using K = mime::Address::Kind;
        e = {};
        e.from = {mime::Address{K::mailbox, "", "@relay.example,@b.example", "joe", "example.com"}};
        e.to = {mime::Address{K::mailbox, "", "", R"("john \"j\" doe")", "[192.0.2.1]"},
                mime::Address{K::mailbox, "", "", R"(john."q".doe)", "example.com"}};
        CHECK(format_envelope(e, false) ==
              R"((NIL NIL ((NIL "@relay.example,@b.example" "joe" "example.com")) NIL NIL )"
              R"(((NIL NIL "john \"j\" doe" "[192.0.2.1]")(NIL NIL "john.q.doe" "example.com")) NIL NIL NIL NIL))");
    }
    SECTION("an empty group and a group with an empty name") {
        using K = mime::Address::Kind;
        e = {};
        e.bcc = {mime::Address{K::group_start, "", "", "", ""}, mime::Address{K::group_end, "", "", "", ""}};
        CHECK(format_envelope(e, false) == R"((NIL NIL NIL NIL NIL NIL NIL ((NIL NIL "" NIL)(NIL NIL NIL NIL)) NIL NIL))");
    }
}

TEST_CASE("envelopes parsed from headers", "[imap][message_format]") {
    SECTION("the first of repeated fields counts; Sender and Reply-To fall back to From when empty") {
        auto m = mime::parse_message(crlf("Subject: one\nSubject: two\nFrom: a@x.example\nSender:\n"
                                          "Reply-To: <>\n\nbody\n"));
        CHECK(format_envelope(m.envelope, false) ==
              R"((NIL "one" ((NIL NIL "a" "x.example")) ((NIL NIL "a" "x.example")) ((NIL NIL "a" "x.example")) NIL NIL NIL NIL NIL))");
    }
    SECTION("an old-style comment name, and a name of encoded words left as they are") {
        auto m = mime::parse_message(crlf("From: a@x.example (Ann Example)\nTo: =?utf-8?q?B=C3=B6b?= <b@y.example>\n\n"));
        CHECK(format_envelope(m.envelope, false) ==
              R"((NIL NIL (("Ann Example" NIL "a" "x.example")) (("Ann Example" NIL "a" "x.example")) )"
              R"((("Ann Example" NIL "a" "x.example")) (("=?utf-8?q?B=C3=B6b?=" NIL "b" "y.example")) NIL NIL NIL NIL))");
    }
}

TEST_CASE("BODYSTRUCTURE details", "[imap][message_format]") {
    SECTION("a text part without charset gets Dovecot's us-ascii after its own parameters") {
        auto m = mime::parse_message(crlf("Content-Type: text/plain; format=flowed\n\nx\n"));
        CHECK(format_body_structure(m, false, false) ==
              R"(("text" "plain" ("format" "flowed" "charset" "us-ascii") NIL NIL "7bit" 3 1))");
    }
    SECTION("a non-text part without parameters has NIL") {
        auto m = mime::parse_message(crlf("Content-Type: image/gif\nContent-Transfer-Encoding: base64\n\nR0lG\n"));
        CHECK(format_body_structure(m, true, false) == R"(("image" "gif" NIL NIL NIL "base64" 6 NIL NIL NIL NIL))");
    }
    SECTION("an RFC 2231 value without language, with 8-bit bytes and characters to escape") {
        auto m = mime::parse_message(crlf("Content-Type: application/x; name*=iso-8859-1''caf%E9%20%28v2%29.txt\n\n"));
        CHECK(format_body_structure(m, false, false) ==
              R"(("application" "x" ("name*" "iso-8859-1''caf%E9%20%28v2%29.txt") NIL NIL "7bit" 0))");
    }
    SECTION("8-bit parameter values follow the string rules") {
        auto m = mime::parse_message(crlf("Content-Type: application/x; name=\"\xc3\xa9.txt\"\n\n"));
        CHECK(format_body_structure(m, false, false) ==
              "(\"application\" \"x\" (\"name\" {6}\r\n\xc3\xa9.txt) NIL NIL \"7bit\" 0)");
        CHECK(format_body_structure(m, false, true) ==
              "(\"application\" \"x\" (\"name\" \"\xc3\xa9.txt\") NIL NIL \"7bit\" 0)");
    }
    SECTION("a multipart that the parse cache left without children still gets a body") {
        mime::Message m;
        m.body.type = "multipart";
        m.body.subtype = "mixed";
        CHECK(format_body_structure(m, false, false) == R"((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed"))");
        CHECK(format_body_structure(m, true, false) ==
              R"((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" NIL NIL NIL NIL))");
    }
    SECTION("a message/rfc822 part in base64 is opaque: no envelope") {
        auto m = mime::parse_message(crlf("Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeA0KDQp5\n"));
        CHECK(format_body_structure(m, false, false) == R"(("application" "octet-stream" NIL NIL NIL "base64" 22))");
    }
}

TEST_CASE("locate_section: whole message, header, fields, text", "[imap][message_format]") {
    Loaded l = load("nested_multipart");
    const std::string& raw = l.raw;
    std::size_t blank = raw.find("\r\n\r\n") + 4;
    CHECK(section_text(l, sec({})) == raw);
    CHECK(section_text(l, sec({}, T::Header)) == raw.substr(0, blank));
    CHECK(section_text(l, sec({}, T::Text)) == raw.substr(blank));

    SECTION("HEADER.FIELDS: in message order, names in any case, then the blank line") {
        CHECK(section_text(l, sec({}, T::HeaderFields, {"subject", "FROM"})) ==
              "From: Carol <carol@example.net>\r\nSubject: nested\r\n\r\n");
        auto c = locate_section(l.m, sec({}, T::HeaderFields, {"Subject"}));
        REQUIRE(c);
        REQUIRE(c->pieces.size() == 2);  // the field as a range of the file, the CRLF as bytes
        CHECK(c->pieces[0].size == 17);
        CHECK(c->pieces[1].size == 0);
        CHECK(c->pieces[1].bytes == "\r\n");
        CHECK(c->total() == 19);
    }
    SECTION("HEADER.FIELDS without a match is the blank line alone") {
        CHECK(section_text(l, sec({}, T::HeaderFields, {"X-None"})) == "\r\n");
    }
    SECTION("HEADER.FIELDS.NOT") {
        CHECK(section_text(l, sec({}, T::HeaderFieldsNot, {"from", "to", "date", "message-id", "mime-version"})) ==
              "Subject: nested\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n");
    }
    SECTION("MIME needs a part number") {
        CHECK_FALSE(locate_section(l.m, sec({}, T::Mime)));
    }
}

TEST_CASE("locate_section: folded and repeated fields", "[imap][message_format]") {
    std::string raw = crlf("Received: from a\n\tby b\nSubject: one\nReceived: from c\nX-Long: a\n b\n c\n\nbody\n");
    Loaded l{raw, mime::parse_message(raw)};
    CHECK(section_text(l, sec({}, T::HeaderFields, {"received"})) ==
          crlf("Received: from a\n\tby b\nReceived: from c\n\n"));
    CHECK(section_text(l, sec({}, T::HeaderFields, {"x-long", "subject"})) == crlf("Subject: one\nX-Long: a\n b\n c\n\n"));
    CHECK(section_text(l, sec({}, T::HeaderFieldsNot, {"Received"})) == crlf("Subject: one\nX-Long: a\n b\n c\n\n"));
}

TEST_CASE("locate_section: parts of nested multiparts", "[imap][message_format]") {
    Loaded l = load("nested_multipart");
    auto alt = section_text(l, sec({1}));
    REQUIRE(alt);
    CHECK(alt->starts_with("--alt\r\nContent-Type: text/plain"));
    CHECK(alt->ends_with("<p>HTML version <img src=3D\"cid:logo@example.net\"></p>\r\n--rel\r\n"
                         "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
                         "Content-ID: <logo@example.net>\r\nContent-Disposition: inline\r\n\r\n"
                         "iVBORw0KGgo=\r\n--rel--\r\n--alt--\r\n"));
    CHECK(section_text(l, sec({1}, T::Mime)) == "Content-Type: multipart/alternative; boundary=alt\r\n\r\n");
    CHECK(section_text(l, sec({1, 1})) == "Plain version.");
    CHECK(section_text(l, sec({1, 1}, T::Mime)) == "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    CHECK(section_text(l, sec({1, 2, 1})) == "<p>HTML version <img src=3D\"cid:logo@example.net\"></p>");
    CHECK(section_text(l, sec({1, 2, 2})) == "iVBORw0KGgo=");
    CHECK(section_text(l, sec({1, 2, 2}, T::Mime)) ==
          "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
          "Content-ID: <logo@example.net>\r\nContent-Disposition: inline\r\n\r\n");
    CHECK(section_text(l, sec({2})) == "JVBERi0xLjQK");

    SECTION("parts that do not exist") {
        CHECK_FALSE(locate_section(l.m, sec({3})));
        CHECK_FALSE(locate_section(l.m, sec({0})));
        CHECK_FALSE(locate_section(l.m, sec({1, 3})));
        CHECK_FALSE(locate_section(l.m, sec({1, 1, 1})));
        CHECK_FALSE(locate_section(l.m, sec({2, 1}, T::Mime)));
    }
    SECTION("HEADER and TEXT of a part that is not a message name nothing") {
        CHECK_FALSE(locate_section(l.m, sec({1}, T::Header)));
        CHECK_FALSE(locate_section(l.m, sec({1, 1}, T::Text)));
        CHECK_FALSE(locate_section(l.m, sec({2}, T::HeaderFields, {"content-type"})));
    }
}

TEST_CASE("locate_section: an attached message", "[imap][message_format]") {
    Loaded l = load("rfc822_attachment");
    std::size_t start = l.raw.find("From: Grace");
    std::size_t end = l.raw.find("\r\n--==b1==--");
    std::string embedded = l.raw.substr(start, end - start);
    std::size_t blank = embedded.find("\r\n\r\n") + 4;
    CHECK(section_text(l, sec({2})) == embedded);
    CHECK(section_text(l, sec({2}, T::Mime)) ==
          "Content-Type: message/rfc822\r\nContent-Description: forwarded message\r\n\r\n");
    CHECK(section_text(l, sec({2}, T::Header)) == embedded.substr(0, blank));
    CHECK(section_text(l, sec({2}, T::Text)) == embedded.substr(blank));
    CHECK(section_text(l, sec({2}, T::HeaderFields, {"CC", "in-reply-to"})) ==
          "Cc: Heidi <heidi@example.net>, ivan@example.net\r\nIn-Reply-To: <earlier@example.com>\r\n\r\n");
    CHECK(section_text(l, sec({2}, T::HeaderFieldsNot, {"from", "to", "cc", "date", "message-id", "in-reply-to",
                                                         "mime-version", "content-type"})) ==
          "Subject: lunch\r\n\r\n");
    CHECK(section_text(l, sec({2, 1})) == "Noon?");
    CHECK(section_text(l, sec({2, 1}, T::Mime)) == "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    CHECK(section_text(l, sec({2, 2})) == "<b>Noon?</b>");
    CHECK_FALSE(locate_section(l.m, sec({2, 3})));
    CHECK_FALSE(locate_section(l.m, sec({2, 1}, T::Header)));
    CHECK(section_text(l, sec({1})) == "See the forwarded message.");
}

TEST_CASE("locate_section: a message in a digest, with a single-part body", "[imap][message_format]") {
    Loaded l = load("digest");
    CHECK(section_text(l, sec({1})) == "From: one@example.com\r\nSubject: first\r\n\r\none");
    CHECK(section_text(l, sec({1}, T::Mime)) == "\r\n");  // the part's header is only the blank line
    CHECK(section_text(l, sec({1}, T::Header)) == "From: one@example.com\r\nSubject: first\r\n\r\n");
    CHECK(section_text(l, sec({1}, T::Text)) == "one");
    // The embedded message's only part is 1.1, and its MIME header is the message's header.
    CHECK(section_text(l, sec({1, 1})) == "one");
    CHECK(section_text(l, sec({1, 1}, T::Mime)) == "From: one@example.com\r\nSubject: first\r\n\r\n");
    CHECK_FALSE(locate_section(l.m, sec({1, 2})));
    CHECK(section_text(l, sec({2})) == "not a message");
}

TEST_CASE("locate_section: single-part messages", "[imap][message_format]") {
    Loaded l = load("simple_text");
    std::size_t blank = l.raw.find("\r\n\r\n") + 4;
    SECTION("[1] is the body and [1.MIME] the message header, as in Dovecot") {
        CHECK(section_text(l, sec({1})) == l.raw.substr(blank));
        CHECK(section_text(l, sec({1}, T::Mime)) == l.raw.substr(0, blank));
        CHECK_FALSE(locate_section(l.m, sec({2})));
        CHECK_FALSE(locate_section(l.m, sec({1, 1})));
        CHECK_FALSE(locate_section(l.m, sec({1}, T::Header)));
    }
    SECTION("a message that is only a header has an empty body, which exists") {
        Loaded h = load("header_only");
        auto text = locate_section(h.m, sec({}, T::Text));
        REQUIRE(text);
        CHECK(text->pieces.empty());
        CHECK(text->total() == 0);
        CHECK(section_text(h, sec({1})) == "");
        CHECK(section_text(h, sec({}, T::Header)) == h.raw);
        CHECK(section_text(h, sec({})) == h.raw);
        CHECK(section_text(h, sec({}, T::HeaderFields, {"subject"})) == "Subject: only a header\r\n\r\n");
    }
    SECTION("an empty message") {
        Loaded e{"", mime::parse_message("")};
        auto all = locate_section(e.m, sec({}));
        REQUIRE(all);
        CHECK(all->total() == 0);
        CHECK(section_text(e, sec({}, T::HeaderFields, {"subject"})) == "\r\n");
    }
}

TEST_CASE("decode_part: identity encodings and unknown ones", "[imap][message_format]") {
    std::string raw("a\0b\xff\r\n", 6);
    for (const char* enc : {"7bit", "8bit", "binary", "", "BINARY", "8Bit"}) {
        INFO(enc);
        CHECK(decode_part(raw, enc) == raw);
    }
    CHECK_FALSE(decode_part("begin 644 x\r\n", "x-uuencode"));
    CHECK_FALSE(decode_part("x", "base65"));
}

TEST_CASE("decode_part: base64", "[imap][message_format]") {
    CHECK(decode_part("SGVsbG8sIHdvcmxkIQ==", "base64") == "Hello, world!");
    CHECK(decode_part("SGVsbG8sIHdvcmxkIQ==", "BASE64") == "Hello, world!");
    CHECK(decode_part("", "base64") == "");
    CHECK(decode_part("AAECAw==", "base64") == std::string("\0\1\2\3", 4));
    CHECK(decode_part("/+8=", "base64") == "\xff\xef");
    SECTION("line breaks, blanks and characters outside the alphabet are ignored") {
        CHECK(decode_part("SGVs\r\nbG8s\r\n IHdv\tcmxk\r\nIQ==\r\n", "base64") == "Hello, world!");
        CHECK(decode_part("SGVs!bG8*sIH#dvcmxkIQ==", "base64") == "Hello, world!");
    }
    SECTION("missing padding and a last group cut short") {
        CHECK(decode_part("SGk", "base64") == "Hi");
        CHECK(decode_part("SGVsbG8", "base64") == "Hello");
        CHECK(decode_part("SGVsbG8sS", "base64") == "Hello,");  // a lone sextet is no byte
    }
    SECTION("separately padded runs decode one after the other") {
        CHECK(decode_part("SGk=\r\nSGk=\r\n", "base64") == "HiHi");
        CHECK(decode_part("YQ==Yg==", "base64") == "ab");
    }
    SECTION("every byte value") {
        // 0x00..0xff in base64, 76 characters a line.
        std::string all;
        for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
        auto decoded = decode_part(
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4\r\n"
            "OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3Bx\r\n"
            "cnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmq\r\n"
            "q6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj\r\n"
            "5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w==\r\n",
            "base64");
        CHECK(decoded == all);
    }
}

TEST_CASE("decode_part: quoted-printable", "[imap][message_format]") {
    CHECK(decode_part("caf=E9", "quoted-printable") == "caf\xe9");
    CHECK(decode_part("caf=e9", "Quoted-Printable") == "caf\xe9");  // lower-case hex (RFC 2045 6.7 rule 1)
    CHECK(decode_part("a=3Db", "quoted-printable") == "a=b");
    SECTION("hard line breaks stay, soft ones go") {
        CHECK(decode_part("one\r\ntwo\r\n", "quoted-printable") == "one\r\ntwo\r\n");
        CHECK(decode_part("a long li=\r\nne\r\n", "quoted-printable") == "a long line\r\n");
        CHECK(decode_part("a long li=  \t\r\nne", "quoted-printable") == "a long line");  // blanks after '='
        CHECK(decode_part("bare=\nlf\n", "quoted-printable") == "barelf\n");
        CHECK(decode_part("ends soft=", "quoted-printable") == "ends soft");
        CHECK(decode_part("keep =\r\nthe blank", "quoted-printable") == "keep the blank");
    }
    SECTION("trailing blanks were added in transport; encoded ones stay") {
        CHECK(decode_part("abc  \t\r\ndef \r\n", "quoted-printable") == "abc\r\ndef\r\n");
        CHECK(decode_part("abc =20\r\n", "quoted-printable") == "abc  \r\n");
        CHECK(decode_part("end  ", "quoted-printable") == "end");
    }
    SECTION("a '=' that is no escape stays as it is") {
        CHECK(decode_part("a=ZZb", "quoted-printable") == "a=ZZb");
        CHECK(decode_part("a=4", "quoted-printable") == "a=4");
        CHECK(decode_part("x=4\r\n", "quoted-printable") == "x=4\r\n");
        CHECK(decode_part("=\xe9t\xe9", "quoted-printable") == "=\xe9t\xe9");  // 8-bit left as sent
    }
    SECTION("UTF-8 in escapes") {
        CHECK(decode_part("Gr=C3=BC=C3=9Fe", "quoted-printable") == "Gr\xc3\xbc\xc3\x9f" "e");
    }
}
