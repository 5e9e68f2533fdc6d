// RFC 5322 / MIME parser: header fields, envelope, body structure, byte ranges for
// BODY[section], limits on hostile input, JSON round trip.
#include <catch2/catch.hpp>

#include <chrono>
#include <functional>

#include "protocols/common/message_parser.hpp"

using namespace pillarbox::mime;

namespace {

// Tests are written with \n; eol() turns them into the stored form.
std::string with_eol(std::string_view text, std::string_view eol) {
    std::string out;
    for (char c : text) {
        if (c == '\n') out += eol;
        else out.push_back(c);
    }
    return out;
}

std::string crlf(std::string_view text) { return with_eol(text, "\r\n"); }

std::string_view body_of(std::string_view msg, const Part& p) { return msg.substr(p.body_offset, p.body_size); }
std::string_view mime_of(std::string_view msg, const Part& p) { return msg.substr(p.header_offset, p.header_size); }

const Part& at(const Message& m, std::vector<std::uint32_t> section) {
    const Part* p = find_part(m, section);
    REQUIRE(p != nullptr);
    return *p;
}

Address mailbox(std::string name, std::string local, std::string domain, std::string route = {}) {
    return Address{Address::Kind::mailbox, std::move(name), std::move(route), std::move(local), std::move(domain)};
}
Address group_start(std::string name) { return Address{Address::Kind::group_start, std::move(name), {}, {}, {}}; }
Address group_end() { return Address{Address::Kind::group_end, {}, {}, {}, {}}; }

std::vector<Address> from_of(std::string_view from_value) {
    return parse_message(crlf("From: " + std::string(from_value) + "\n\nx\n")).envelope.from;
}

void each_part(const Part& p, const std::function<void(const Part&, std::size_t)>& f, std::size_t depth = 0) {
    f(p, depth);
    for (const auto& c : p.children) each_part(c, f, depth + 1);
    if (p.message) each_part(p.message->body, f, depth + 1);
}

std::size_t count_parts(const Message& m) {
    std::size_t n = 0;
    each_part(m.body, [&](const Part&, std::size_t) { ++n; });
    return n;
}

std::size_t max_depth_of(const Message& m) {
    std::size_t d = 0;
    each_part(m.body, [&](const Part&, std::size_t depth) { d = std::max(d, depth); });
    return d;
}

// Every range lies in the input, bodies follow headers, children lie inside their parent.
void check_ranges(const Message& m, std::size_t input_size) {
    each_part(m.body, [&](const Part& p, std::size_t) {
        CHECK(p.header_offset + p.header_size == p.body_offset);
        CHECK(p.body_offset + p.body_size <= input_size);
        for (const auto& c : p.children) {
            CHECK(c.header_offset >= p.body_offset);
            CHECK(c.body_offset + c.body_size <= p.body_offset + p.body_size);
        }
        if (p.message) {
            CHECK(p.message->header_offset == p.body_offset);
            CHECK(p.message->body_offset + p.message->body_size == p.body_offset + p.body_size);
        }
    });
}

void check_round_trip(const Message& m) {
    std::string j = to_json(m);
    auto back = from_json(j);
    REQUIRE(back.has_value());
    CHECK(*back == m);
    CHECK(to_json(*back) == j);
}

const char* const simple = R"(From: Alice <alice@example.com>
To: bob@example.org
Subject: Hello
Date: Mon, 1 Jan 2024 10:00:00 +0000
Message-ID: <1@example.com>
In-Reply-To: <0@example.com>

Hi Bob.
Bye.
)";

const char* const nested = R"(From: a@example.com
To: b@example.com
Subject: nested
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

This is the preamble.
--outer
Content-Type: multipart/alternative; boundary=alt

--alt
Content-Type: text/plain; charset=utf-8

plain text
line two
--alt
Content-Type: text/html

<p>html</p>
--alt--
alt epilogue
--outer
Content-Type: message/rfc822
Content-Disposition: attachment; filename="fwd.eml"

From: c@example.com
Subject: inner
Content-Type: multipart/mixed; boundary=inner

--inner
Content-Type: text/plain

inner text
--inner
Content-Type: application/pdf; name=doc.pdf
Content-Transfer-Encoding: BASE64
Content-ID: <pdf@x>
Content-Description: A document
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==
Content-Language: en, de (German)
Content-Location: http://example.com/doc.pdf

SGVsbG8=
--inner--
--outer--
epilogue
)";

}  // namespace

TEST_CASE("a simple text message gives its fields, envelope and one text/plain part") {
    std::string msg = crlf(simple);
    Message m = parse_message(msg);
    REQUIRE(m.headers.size() == 6);
    CHECK(m.headers[0].name == "From");
    CHECK(m.headers[0].value == "Alice <alice@example.com>");
    CHECK(m.headers[2].value == "Hello");
    CHECK(msg.substr(m.headers[1].offset, m.headers[1].size) == "To: bob@example.org\r\n");
    CHECK(m.header_offset == 0);
    CHECK(m.header_size == msg.find("Hi Bob."));
    CHECK(msg.substr(m.body_offset, m.body_size) == "Hi Bob.\r\nBye.\r\n");
    CHECK(m.size() == msg.size());

    const Envelope& e = m.envelope;
    CHECK(e.date == "Mon, 1 Jan 2024 10:00:00 +0000");
    CHECK(e.subject == "Hello");
    CHECK(e.message_id == "<1@example.com>");
    CHECK(e.in_reply_to == "<0@example.com>");
    CHECK(e.from == std::vector<Address>{mailbox("Alice", "alice", "example.com")});
    CHECK(e.to == std::vector<Address>{mailbox("", "bob", "example.org")});
    CHECK(e.cc.empty());
    CHECK(e.bcc.empty());

    const Part& b = m.body;
    CHECK(b.section == std::vector<std::uint32_t>{1});
    CHECK(b.type == "text");
    CHECK(b.subtype == "plain");
    CHECK(b.params == std::vector<Param>{{"charset", "us-ascii", "", ""}});
    CHECK(b.encoding == "7bit");
    CHECK(b.body_lines == 2);
    CHECK(body_of(msg, b) == "Hi Bob.\r\nBye.\r\n");
    CHECK(&at(m, {1}) == &m.body);
    CHECK(find_part(m, std::vector<std::uint32_t>{2}) == nullptr);
    CHECK(find_part(m, std::vector<std::uint32_t>{1, 1}) == nullptr);
    CHECK(find_part(m, std::vector<std::uint32_t>{}) == nullptr);
    CHECK(find_header(m.headers, "message-id")->value == "<1@example.com>");
    CHECK(find_header(m.headers, "cc") == nullptr);
}

TEST_CASE("sender and reply-to default to from when absent or empty (RFC 9051 7.5.2)") {
    Message m = parse_message(crlf("From: a@b.example\nReply-To:\n\n"));
    CHECK(m.envelope.sender == m.envelope.from);
    CHECK(m.envelope.reply_to == m.envelope.from);
    Message n = parse_message(crlf("From: a@b.example\nSender: s@b.example\n\n"));
    CHECK(n.envelope.sender == std::vector<Address>{mailbox("", "s", "b.example")});
    CHECK(n.envelope.reply_to == n.envelope.from);
}

TEST_CASE("CRLF, bare LF and mixed line ends give the same structure with their own offsets") {
    for (std::string eol : {"\r\n", "\n"}) {
        std::string msg = with_eol(nested, eol);
        Message m = parse_message(msg);
        INFO("eol size " << eol.size());
        CHECK(body_of(msg, at(m, {1, 1})) == with_eol("plain text\nline two", eol));
        CHECK(at(m, {1, 1}).body_lines == 1);
        CHECK(body_of(msg, at(m, {2, 2})) == "SGVsbG8=");
        CHECK(count_parts(m) == 8);
        check_ranges(m, msg.size());
    }
    std::string mixed = "Subject: x\nContent-Type: multipart/mixed; boundary=b\r\n\n--b\r\n\r\none\n--b\n\ntwo\r\n--b--\n";
    Message m = parse_message(mixed);
    REQUIRE(m.body.children.size() == 2);
    CHECK(body_of(mixed, m.body.children[0]) == "one");
    CHECK(body_of(mixed, m.body.children[1]) == "two");
    CHECK(m.envelope.subject == "x");
}

TEST_CASE("folded header fields are unfolded and keep their raw extent") {
    std::string msg = crlf("Subject: one\n  two\n\tthree\nX-Other: y\n\nbody\n");
    Message m = parse_message(msg);
    REQUIRE(m.headers.size() == 2);
    CHECK(m.headers[0].value == "one  two\tthree");
    CHECK(msg.substr(m.headers[0].offset, m.headers[0].size) == "Subject: one\r\n  two\r\n\tthree\r\n");
    CHECK(m.envelope.subject == "one  two\tthree");
    CHECK(m.headers[1].value == "y");
}

TEST_CASE("obsolete blank before the colon and lines that are not fields") {
    Message m = parse_message(crlf("From foo@bar Mon Jan  1 00:00:00 2024\n cont\nSubject  : spaced\nnot a field\n\nb"));
    REQUIRE(m.headers.size() == 1);
    CHECK(m.headers[0].name == "Subject");
    CHECK(m.envelope.subject == "spaced");
}

TEST_CASE("RFC 2047 display names are kept raw, quoted names are unquoted") {
    CHECK(from_of("=?UTF-8?Q?J=C3=B6rg?= <j@example.com>") ==
          std::vector<Address>{mailbox("=?UTF-8?Q?J=C3=B6rg?=", "j", "example.com")});
    CHECK(from_of("\"Doe, John\" <john@example.com>") == std::vector<Address>{mailbox("Doe, John", "john", "example.com")});
    CHECK(from_of(R"("a \"b\"" <c@d.example>)") == std::vector<Address>{mailbox("a \"b\"", "c", "d.example")});
    CHECK(from_of("John Q. Public <jqp@example.com>") == std::vector<Address>{mailbox("John Q. Public", "jqp", "example.com")});
}

TEST_CASE("groups and empty groups become start and end markers") {
    CHECK(from_of("Friends: a@x.example, \"B\" <b@y.example>;, c@z.example") ==
          std::vector<Address>{group_start("Friends"), mailbox("", "a", "x.example"), mailbox("B", "b", "y.example"),
                               group_end(), mailbox("", "c", "z.example")});
    CHECK(from_of("undisclosed-recipients:;") == std::vector<Address>{group_start("undisclosed-recipients"), group_end()});
    CHECK(from_of("Unclosed: a@x.example") ==
          std::vector<Address>{group_start("Unclosed"), mailbox("", "a", "x.example"), group_end()});
}

TEST_CASE("quoted local parts, comments, routes and obsolete address syntax") {
    CHECK(from_of("\"john doe\"@example.com (John Doe)") ==
          std::vector<Address>{mailbox("John Doe", "\"john doe\"", "example.com")});
    CHECK(from_of("john.doe(comment)@(another)example.com") == std::vector<Address>{mailbox("", "john.doe", "example.com")});
    // RFC 5322 A.5
    CHECK(from_of(R"(Pete(A nice \) chap) <pete(his account)@silly.test(his host)>)") ==
          std::vector<Address>{mailbox("Pete", "pete", "silly.test")});
    CHECK(from_of("Joe <@a.test,@b.test:joe@c.test>") == std::vector<Address>{mailbox("Joe", "joe", "c.test", "@a.test,@b.test")});
    CHECK(from_of("john . doe @ example . com") == std::vector<Address>{mailbox("", "john.doe", "example.com")});
    CHECK(from_of("root") == std::vector<Address>{mailbox("", "root", "")});
    CHECK(from_of("a@[192.0.2.1], , b@x.example") ==
          std::vector<Address>{mailbox("", "a", "[192.0.2.1]"), mailbox("", "b", "x.example")});
    CHECK(from_of("<>").empty());
    CHECK(from_of("Broken <a@b.example, c@d.example") ==
          std::vector<Address>{mailbox("Broken", "a", "b.example"), mailbox("", "c", "d.example")});
}

TEST_CASE("missing headers leave the envelope empty and the body still parses") {
    Message m = parse_message(crlf("Subject: only\n\nbody\n"));
    CHECK(m.envelope.subject == "only");
    CHECK_FALSE(m.envelope.date);
    CHECK_FALSE(m.envelope.message_id);
    CHECK(m.envelope.from.empty());
    CHECK(m.envelope.sender.empty());

    std::string no_header = crlf("\nbody only\n");
    Message n = parse_message(no_header);
    CHECK(n.headers.empty());
    CHECK(n.header_size == 2);
    CHECK(body_of(no_header, n.body) == "body only\r\n");

    std::string no_body = crlf("Subject: x\n");
    Message o = parse_message(no_body);
    CHECK(o.header_size == no_body.size());
    CHECK(o.body_size == 0);
    CHECK(o.body_offset == no_body.size());

    Message empty = parse_message("");
    CHECK(empty.size() == 0);
    CHECK(empty.body.section == std::vector<std::uint32_t>{1});
}

TEST_CASE("multipart/mixed with nested alternative and an attached message with its own multipart") {
    std::string msg = crlf(nested);
    Message m = parse_message(msg);
    check_ranges(m, msg.size());
    const Part& top = m.body;
    CHECK(top.type == "multipart");
    CHECK(top.subtype == "mixed");
    CHECK(top.boundary == "outer");
    CHECK(top.section.empty());
    REQUIRE(top.children.size() == 2);
    // The multipart's own body covers preamble and epilogue.
    CHECK(body_of(msg, top).starts_with("This is the preamble.\r\n--outer\r\n"));
    CHECK(body_of(msg, top).ends_with("--outer--\r\nepilogue\r\n"));
    CHECK(m.body_offset == top.body_offset);

    const Part& alt = at(m, {1});
    CHECK(&alt == &top.children[0]);
    CHECK(alt.section == std::vector<std::uint32_t>{1});
    CHECK(alt.subtype == "alternative");
    CHECK(mime_of(msg, alt) == "Content-Type: multipart/alternative; boundary=alt\r\n\r\n");
    CHECK(body_of(msg, alt) == crlf("--alt\nContent-Type: text/plain; charset=utf-8\n\nplain text\nline two\n--alt\n"
                                    "Content-Type: text/html\n\n<p>html</p>\n--alt--\nalt epilogue"));

    const Part& plain = at(m, {1, 1});
    CHECK(plain.section == std::vector<std::uint32_t>{1, 1});
    CHECK(plain.params == std::vector<Param>{{"charset", "utf-8", "", ""}});
    CHECK(body_of(msg, plain) == "plain text\r\nline two");
    CHECK(plain.body_size == 20);
    CHECK(plain.body_lines == 1);  // the CRLF before the delimiter belongs to the delimiter

    const Part& html = at(m, {1, 2});
    CHECK(html.subtype == "html");
    CHECK(html.params.empty());
    CHECK(mime_of(msg, html) == "Content-Type: text/html\r\n\r\n");
    CHECK(body_of(msg, html) == "<p>html</p>");
    CHECK(html.body_lines == 0);

    const Part& att = at(m, {2});
    CHECK(att.type == "message");
    CHECK(att.subtype == "rfc822");
    REQUIRE(att.disposition);
    CHECK(att.disposition->type == "attachment");
    CHECK(att.disposition->params == std::vector<Param>{{"filename", "fwd.eml", "", ""}});
    std::string inner = crlf("From: c@example.com\nSubject: inner\nContent-Type: multipart/mixed; boundary=inner\n\n"
                             "--inner\nContent-Type: text/plain\n\ninner text\n--inner\n"
                             "Content-Type: application/pdf; name=doc.pdf\nContent-Transfer-Encoding: BASE64\n"
                             "Content-ID: <pdf@x>\nContent-Description: A document\n"
                             "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\nContent-Language: en, de (German)\n"
                             "Content-Location: http://example.com/doc.pdf\n\nSGVsbG8=\n--inner--");
    CHECK(body_of(msg, att) == inner);
    CHECK(att.body_lines == 18);
    REQUIRE(att.message);
    const Message& em = *att.message;
    CHECK(em.envelope.subject == "inner");
    CHECK(em.envelope.from == std::vector<Address>{mailbox("", "c", "example.com")});
    CHECK(msg.substr(em.header_offset, em.header_size) ==
          "From: c@example.com\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n");
    CHECK(em.body.section == std::vector<std::uint32_t>{2});
    REQUIRE(em.body.children.size() == 2);

    const Part& itext = at(m, {2, 1});
    CHECK(&itext == &em.body.children[0]);
    CHECK(body_of(msg, itext) == "inner text");
    const Part& pdf = at(m, {2, 2});
    CHECK(pdf.section == std::vector<std::uint32_t>{2, 2});
    CHECK(pdf.type == "application");
    CHECK(pdf.subtype == "pdf");
    CHECK(pdf.params == std::vector<Param>{{"name", "doc.pdf", "", ""}});
    CHECK(pdf.encoding == "base64");
    CHECK(pdf.id == "<pdf@x>");
    CHECK(pdf.description == "A document");
    CHECK(pdf.md5 == "Q2hlY2sgSW50ZWdyaXR5IQ==");
    CHECK(pdf.language == std::vector<std::string>{"en", "de"});
    CHECK(pdf.location == "http://example.com/doc.pdf");
    CHECK(body_of(msg, pdf) == "SGVsbG8=");
    CHECK(pdf.body_size == 8);

    CHECK(find_part(m, std::vector<std::uint32_t>{2, 1, 1}) == nullptr);
    CHECK(find_part(m, std::vector<std::uint32_t>{3}) == nullptr);
    CHECK(find_part(m, std::vector<std::uint32_t>{0}) == nullptr);
    CHECK(section_string(pdf.section) == "2.2");
}

TEST_CASE("multipart/digest parts default to message/rfc822 (RFC 2046 5.1.5)") {
    std::string msg = crlf("Content-Type: multipart/digest; boundary=d\n\n--d\n\nFrom: x@y.example\nSubject: one\n\n"
                           "body one\n--d\nContent-Type: text/plain\n\nnot a message\n--d--\n");
    Message m = parse_message(msg);
    REQUIRE(m.body.children.size() == 2);
    const Part& first = at(m, {1});
    CHECK(first.type == "message");
    CHECK(first.subtype == "rfc822");
    CHECK(first.params.empty());
    REQUIRE(first.message);
    CHECK(first.message->envelope.subject == "one");
    const Part& inner_body = at(m, {1, 1});
    CHECK(&inner_body == &first.message->body);
    CHECK(inner_body.section == std::vector<std::uint32_t>{1, 1});
    CHECK(body_of(msg, inner_body) == "body one");
    CHECK(at(m, {2}).type == "text");
}

TEST_CASE("RFC 2231 continuations and charset'language' are merged into one value") {
    std::string msg = crlf("Content-Type: application/x-stuff;\n"
                           " title*0*=us-ascii'en'This%20is%20even%20more%20;\n"
                           " title*1*=%2A%2A%2Afun%2A%2A%2A%20;\n"
                           " title*2=\"isn't it!\"; name=plain;\n"
                           " b*1=two; b*0=one; gap*0=x; gap*2=z\n"
                           "Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve.txt; filename=\"naive.txt\"\n\n");
    Message m = parse_message(msg);
    CHECK(m.body.params == std::vector<Param>{{"title", "This is even more ***fun*** isn't it!", "us-ascii", "en"},
                                              {"name", "plain", "", ""},
                                              {"b", "onetwo", "", ""},
                                              {"gap", "x", "", ""}});
    REQUIRE(m.body.disposition);
    CHECK(m.body.disposition->params == std::vector<Param>{{"filename", "na\xc3\xafve.txt", "UTF-8", ""}});
}

TEST_CASE("parameter values: comments dropped, unquoted blanks kept, junk skipped") {
    Message m = parse_message(crlf("Content-Type: TEXT/Plain; CharSet=us-ascii (Plain text); junk; name=my file.txt\n\n"));
    CHECK(m.body.type == "text");
    CHECK(m.body.params == std::vector<Param>{{"charset", "us-ascii", "", ""}, {"name", "my file.txt", "", ""}});
    Message bad = parse_message(crlf("Content-Type: garbage\n\n"));
    CHECK(bad.body.type == "text");
    CHECK(bad.body.params == std::vector<Param>{{"charset", "us-ascii", "", ""}});
}

TEST_CASE("a missing final boundary ends the last part at the end of the input") {
    std::string msg = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nfirst\n--b\n"
                           "Content-Type: text/plain\n\nlast part never closed\n");
    Message m = parse_message(msg);
    REQUIRE(m.body.children.size() == 2);
    CHECK(body_of(msg, m.body.children[0]) == "first");
    CHECK(body_of(msg, m.body.children[1]) == "last part never closed\r\n");
    CHECK(m.body.children[1].body_lines == 1);
    CHECK(m.body.body_offset + m.body.body_size == msg.size());
}

TEST_CASE("an unclosed inner multipart ends at the next outer delimiter") {
    std::string msg = crlf("Content-Type: multipart/mixed; boundary=outer\n\n--outer\n"
                           "Content-Type: multipart/alternative; boundary=inner\n\n--inner\n\na\n--outer\n\nb\n--outer--\n");
    Message m = parse_message(msg);
    REQUIRE(m.body.children.size() == 2);
    REQUIRE(at(m, {1}).children.size() == 1);
    CHECK(body_of(msg, at(m, {1, 1})) == "a");
    CHECK(body_of(msg, at(m, {1})) == "--inner\r\n\r\na");
    CHECK(body_of(msg, at(m, {2})) == "b");
}

TEST_CASE("boundary-looking lines that are not delimiters stay in the body") {
    std::string msg = crlf("Content-Type: multipart/mixed; boundary=xyz\n\n--xyz\n\n --xyz\n-xyz\nx--xyz\n--XYZ\n--xy\n"
                           "--abc\n--xyz--\n--xyz\nepilogue\n");
    Message m = parse_message(msg);
    REQUIRE(m.body.children.size() == 1);
    CHECK(body_of(msg, at(m, {1})) == crlf(" --xyz\n-xyz\nx--xyz\n--XYZ\n--xy\n--abc"));
    // A body that is not multipart has no delimiters at all.
    std::string plain = crlf("Subject: s\n\n--xyz\n-- \nsig\n");
    CHECK(body_of(plain, parse_message(plain).body) == crlf("--xyz\n-- \nsig\n"));
}

TEST_CASE("RFC 2046 delimiters match by prefix, the longest active boundary winning") {
    // "--b-inner" also starts with "--b"; like Dovecot we give it to the inner multipart.
    std::string msg = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n"
                           "Content-Type: multipart/alternative; boundary=b-inner\n\n--b-inner\n\none\n--b-inner\n\ntwo\n"
                           "--b-inner--\n--b  \n\nthree\n--b--trailing junk\n");
    Message m = parse_message(msg);
    REQUIRE(m.body.children.size() == 2);
    REQUIRE(at(m, {1}).children.size() == 2);
    CHECK(body_of(msg, at(m, {1, 2})) == "two");
    CHECK(body_of(msg, at(m, {2})) == "three");
}

TEST_CASE("a part that is only a header ends at the delimiter") {
    std::string msg = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n--b\n--b--\n");
    Message m = parse_message(msg);
    REQUIRE(m.body.children.size() == 2);
    const Part& p = at(m, {1});
    CHECK(p.subtype == "html");
    CHECK(mime_of(msg, p) == "Content-Type: text/html");
    CHECK(p.body_size == 0);
    CHECK(at(m, {2}).header_size == 0);
    CHECK(at(m, {2}).body_size == 0);
    check_ranges(m, msg.size());
}

TEST_CASE("containers that cannot be descended into become opaque parts") {
    Message no_boundary = parse_message(crlf("Content-Type: multipart/mixed\n\n--x\n\nbody\n"));
    CHECK(no_boundary.body.opaque == Opaque::no_boundary);
    CHECK(no_boundary.body.type == "application");
    CHECK(no_boundary.body.section == std::vector<std::uint32_t>{1});

    Message no_parts = parse_message(crlf("Content-Type: multipart/mixed; boundary=b\n\njust text\n"));
    CHECK(no_parts.body.opaque == Opaque::no_parts);
    CHECK(no_parts.body.children.empty());
    CHECK(no_parts.body.section == std::vector<std::uint32_t>{1});

    Message encoded = parse_message(crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n"
                                         "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeA==\n--b--\n"));
    const Part& e = at(encoded, {1});
    CHECK(e.opaque == Opaque::encoded_message);
    CHECK(e.subtype == "octet-stream");
    CHECK_FALSE(e.message);
}

TEST_CASE("the part limit stops adding children and marks the multipart") {
    std::string msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n";
    for (int i = 0; i < 10; ++i) msg += "--b\r\n\r\npart\r\n";
    msg += "--b--\r\n";
    Limits lim;
    lim.max_parts = 4;
    Message m = parse_message(msg, lim);
    CHECK(m.body.children.size() == 3);
    CHECK(m.body.children_truncated);
    CHECK(count_parts(m) == 4);
    CHECK(m.body.body_offset + m.body.body_size == msg.size());
}

TEST_CASE("hostile: 10,000 nested multiparts stop at the depth limit") {
    std::string msg;
    for (int i = 0; i < 10000; ++i)
        msg += "Content-Type: multipart/mixed; boundary=\"=_" + std::to_string(i) + "_=\"\r\n\r\n--=_" + std::to_string(i) + "_=\r\n";
    msg += "\r\nleaf\r\n";
    Message m = parse_message(msg);
    CHECK(max_depth_of(m) == 32);
    CHECK(count_parts(m) == 33);
    const Part* p = &m.body;
    while (!p->children.empty()) p = &p->children[0];
    CHECK(p->opaque == Opaque::too_deep);
    CHECK(p->body_offset + p->body_size == msg.size());
    check_ranges(m, msg.size());

    Limits huge;
    huge.max_depth = 1'000'000;  // clamped to the ceiling, never recursed
    CHECK_FALSE(huge.validate().empty());
    CHECK(max_depth_of(parse_message(msg, huge)) == max_depth_ceiling);

    // The same through message/rfc822 nesting.
    std::string rfc;
    for (int i = 0; i < 10000; ++i) rfc += "Content-Type: message/rfc822\r\n\r\n";
    Message r = parse_message(rfc);
    CHECK(max_depth_of(r) == 32);
    check_round_trip(r);
}

TEST_CASE("hostile: 5 MB inputs complete in linear time and respect the limits") {
    using clock = std::chrono::steady_clock;
    const std::size_t five_mb = 5 * 1024 * 1024;
    auto start = clock::now();

    SECTION("a boundary on every line") {
        std::string msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n";
        while (msg.size() < five_mb) msg += "--b\r\n";
        Message m = parse_message(msg);
        CHECK(count_parts(m) == 1000);
        CHECK(m.body.children_truncated);
        check_ranges(m, msg.size());
    }
    SECTION("nested multiparts reusing one boundary on every line") {
        std::string msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n";
        while (msg.size() < five_mb) msg += "--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n";
        Message m = parse_message(msg);
        CHECK(count_parts(m) <= 1000);
        CHECK(max_depth_of(m) <= 32);
        check_ranges(m, msg.size());
    }
    SECTION("one 5 MB header line") {
        std::string msg = "Subject: " + std::string(five_mb, 'a') + "\r\n\r\nbody";
        Message m = parse_message(msg);
        CHECK(m.headers_truncated);
        CHECK(m.headers.at(0).value.size() < 1024 * 1024);
        CHECK(body_of(msg, m.body) == "body");
    }
    SECTION("a million header fields") {
        std::string msg;
        while (msg.size() < five_mb) msg += "X: y\r\n";
        msg += "\r\nbody";
        Message m = parse_message(msg);
        CHECK(m.headers.size() == 1000);
        CHECK(m.headers_truncated);
        CHECK(body_of(msg, m.body) == "body");
    }
    SECTION("a huge address list and deeply nested comments") {
        std::string msg = "To: ";
        while (msg.size() < five_mb / 2) msg += "a@b, <@c,@d";
        msg += "\r\nCc: " + std::string(five_mb / 4, '(') + "\r\nBcc: g:" + std::string(five_mb / 8, '"') + "\r\n\r\n";
        Limits lim;
        lim.max_header_bytes = five_mb;
        Message m = parse_message(msg, lim);
        CHECK(m.envelope.to.size() == lim.max_addresses);
        CHECK(m.envelope.cc.empty());
    }
    SECTION("an unterminated multipart of long lines without line ends") {
        std::string msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + std::string(five_mb, '-');
        Message m = parse_message(msg);
        CHECK(m.body.children.size() == 1);
    }
    CHECK(clock::now() - start < std::chrono::seconds(20));
}

TEST_CASE("hostile: NUL bytes and 8-bit headers are data, and survive JSON") {
    std::string msg = std::string("Subject: caf\xe9 \0 x\r\n", 19) + "From: \xff\xfe <a@b\x80.example>\r\n" +
                      "Content-Type: text/plain; name=\"\xc3\x28\"\r\n\r\n" + std::string("body\0\r\n", 7);
    Message m = parse_message(msg);
    REQUIRE(m.envelope.subject);
    CHECK(*m.envelope.subject == std::string("caf\xe9 \0 x", 8));
    CHECK(m.envelope.from == std::vector<Address>{mailbox("\xff\xfe", "a", "b\x80.example")});
    CHECK(body_of(msg, m.body) == std::string_view("body\0\r\n", 7));
    check_round_trip(m);
}

TEST_CASE("JSON round trip is exact") {
    for (const char* text : {simple, nested}) {
        std::string msg = crlf(text);
        check_round_trip(parse_message(msg));
    }
    check_round_trip(parse_message(crlf("To: G: a@b;, \"q\\\"x\"@y (c)\nContent-Type: text/plain; a*0*=utf-8'de'%FF\n\n")));
}

TEST_CASE("headers_from_json gives the header fields and offsets of from_json, and nothing else") {
    for (const char* text : {simple, nested}) {
        Message m = parse_message(crlf(text));
        auto h = headers_from_json(to_json(m));
        REQUIRE(h);
        CHECK(h->headers == m.headers);
        CHECK(h->headers_truncated == m.headers_truncated);
        CHECK(h->header_offset == m.header_offset);
        CHECK(h->header_size == m.header_size);
        CHECK(h->body_offset == m.body_offset);
        CHECK(h->body_size == m.body_size);
        CHECK(h->envelope == Envelope{});
        CHECK(h->body == Part{});
    }
    CHECK_FALSE(headers_from_json("{}"));
    CHECK_FALSE(headers_from_json("not json"));
}

TEST_CASE("headers_from_json into a reused Message gives each message's fields, however many the last one had") {
    Message many = parse_message(crlf(nested)), few = parse_message(crlf("Subject: x\nFrom: \xff <a@b>\n\nbody\n"));
    REQUIRE(many.headers.size() > few.headers.size());
    Message reused;
    for (const Message* m : {&many, &few, &many}) {
        REQUIRE(headers_from_json(to_json(*m), reused));
        CHECK(reused.headers == m->headers);  // the 8-bit From goes through {"hex": ...}
        CHECK(reused.body_offset == m->body_offset);
    }
    CHECK_FALSE(headers_from_json("[]", reused));
}

TEST_CASE("from_json refuses what to_json did not write") {
    CHECK_FALSE(from_json(""));
    CHECK_FALSE(from_json("{}"));
    CHECK_FALSE(from_json("[1,2]"));
    CHECK_FALSE(from_json("not json"));
    std::string good = to_json(parse_message(crlf(simple)));
    REQUIRE(from_json(good));
    std::string wrong_version = good;
    wrong_version.replace(wrong_version.find("\"v\":1"), 5, "\"v\":9");
    CHECK_FALSE(from_json(wrong_version));
    std::string negative = good;
    negative.replace(negative.find("\"hoff\":0"), 8, "\"hoff\":-1");
    CHECK_FALSE(from_json(negative));
    std::string bad_hex = good;
    bad_hex.replace(bad_hex.find("\"Hello\""), 7, "{\"hex\":\"zz\"}");
    CHECK_FALSE(from_json(bad_hex));
    CHECK_FALSE(from_json(std::string(100000, '[') + std::string(100000, ']')));
}

TEST_CASE("limits validate") {
    CHECK(Limits{}.validate().empty());
    Limits l;
    l.max_parts = 0;
    CHECK_FALSE(l.validate().empty());
}

TEST_CASE("regression: a message whose body is message/rfc822 numbers the inner body 1.1") {
    // Found by message_fuzz: the inner body was numbered before the outer one was settled.
    std::string msg = crlf("Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\nSubject: deep\n\ntext\n");
    Message m = parse_message(msg);
    CHECK(m.body.section == std::vector<std::uint32_t>{1});
    CHECK(&at(m, {1, 1}) == &m.body.message->body);
    CHECK(&at(m, {1, 1, 1}) == &m.body.message->body.message->body);
    CHECK(body_of(msg, at(m, {1, 1, 1})) == "text\r\n");
    CHECK(at(m, {1, 1}).message->envelope.subject == "deep");
}
