// SMTP command parsing: verbs, forbidden probes, MAIL/RCPT path grammar (RFC 5321 4.1.2,
// RFC 6531), ESMTP parameters, xtext and the MAIL/RCPT parameter validation rules.
#include <catch2/catch.hpp>

#include "protocols/smtp/parser.hpp"

using namespace pillarbox::smtp;

namespace {

Path mail_ok(std::string_view args, bool utf8 = false) {
    auto r = parse_mail_from(args, utf8);
    INFO(std::string(args) << " -> " << r.error.line());
    REQUIRE(r.path);
    return *r.path;
}

Path rcpt_ok(std::string_view args, bool utf8 = false) {
    auto r = parse_rcpt_to(args, utf8);
    INFO(std::string(args) << " -> " << r.error.line());
    REQUIRE(r.path);
    return *r.path;
}

Reply mail_err(std::string_view args, bool utf8 = false) {
    auto r = parse_mail_from(args, utf8);
    INFO(std::string(args));
    REQUIRE_FALSE(r.path);
    return r.error;
}

Reply rcpt_err(std::string_view args, bool utf8 = false) {
    auto r = parse_rcpt_to(args, utf8);
    INFO(std::string(args));
    REQUIRE_FALSE(r.path);
    return r.error;
}

std::vector<Param> params(std::string_view rest, bool utf8 = false) {
    std::string err;
    auto p = parse_params(rest, err, utf8);
    INFO(std::string(rest) << " -> " << err);
    REQUIRE(p);
    return *p;
}

std::string params_err(std::string_view rest, bool utf8 = false) {
    std::string err;
    auto p = parse_params(rest, err, utf8);
    INFO(std::string(rest));
    REQUIRE_FALSE(p);
    return err;
}

MailParams mail_params(std::string_view rest, MailExtensions ext = {}) {
    auto v = validate_mail_params(params(rest, true), ext);
    if (auto* e = std::get_if<ParamError>(&v)) FAIL(std::string(rest) << " -> " << e->line());
    return std::get<MailParams>(v);
}

ParamError mail_params_err(std::string_view rest, MailExtensions ext = {}) {
    auto v = validate_mail_params(params(rest, true), ext);
    INFO(std::string(rest));
    REQUIRE(std::holds_alternative<ParamError>(v));
    return std::get<ParamError>(v);
}

RcptParams rcpt_params(std::string_view rest, MailExtensions ext = {}) {
    auto v = validate_rcpt_params(params(rest, true), ext);
    if (auto* e = std::get_if<ParamError>(&v)) FAIL(std::string(rest) << " -> " << e->line());
    return std::get<RcptParams>(v);
}

ParamError rcpt_params_err(std::string_view rest, MailExtensions ext = {}) {
    auto v = validate_rcpt_params(params(rest, true), ext);
    INFO(std::string(rest));
    REQUIRE(std::holds_alternative<ParamError>(v));
    return std::get<ParamError>(v);
}

}  // namespace

TEST_CASE("parse_command splits the verb and keeps the arguments as sent", "[smtp][parser]") {
    auto c = parse_command("mail FROM:<a@b> SIZE=1");
    REQUIRE(c);
    CHECK(c->verb == "MAIL");
    CHECK(c->args == "FROM:<a@b> SIZE=1");

    c = parse_command("QUIT");
    REQUIRE(c);
    CHECK(c->verb == "QUIT");
    CHECK(c->args.empty());

    c = parse_command("ehlo  two.spaces ");
    REQUIRE(c);
    CHECK(c->verb == "EHLO");
    CHECK(c->args == " two.spaces ");  // only the one separating space is taken

    c = parse_command("DATA ");
    REQUIRE(c);
    CHECK(c->args.empty());

    CHECK_FALSE(parse_command(""));
    CHECK_FALSE(parse_command(" MAIL FROM:<>"));
    CHECK_FALSE(parse_command("8BITMIME"));
    CHECK_FALSE(parse_command("MAIL:FROM"));
    CHECK_FALSE(parse_command("HELO\tx"));
    CHECK_FALSE(parse_command(std::string_view("\0MAIL", 5)));
}

TEST_CASE("check_helo_name refuses what the queue's envelope would refuse", "[smtp][parser][helo]") {
    CHECK_FALSE(check_helo_name("client.example", true));
    CHECK_FALSE(check_helo_name("[192.0.2.1]", false));
    CHECK_FALSE(check_helo_name("b\xc3\xbc" "cher.example", true));  // UTF-8 (RFC 6531)
    CHECK_FALSE(check_helo_name(std::string(255, 'a'), true));
    for (std::string bad : {std::string("bad\xffname"), std::string("caf\xc3"), std::string("\xc0\xaf"),
                            std::string("\xed\xa0\x80x"), std::string("\xf4\x90\x80\x80"),
                            std::string("\xc2\x85")}) {
        INFO(bad);
        auto r = check_helo_name(bad, true);
        REQUIRE(r);
        CHECK(r->code == 501);
        CHECK(r->enhanced == "5.5.2");
    }
    for (std::string bad : {std::string(""), std::string("a\rb"), std::string("a\nb"), std::string("a\x7f"),
                            std::string(256, 'a')}) {
        INFO(bad);
        auto r = check_helo_name(bad, false);
        REQUIRE(r);
        CHECK(r->line() == "501 5.5.4 Syntax: HELO hostname");
    }
    CHECK(valid_utf8("plain"));
    CHECK(valid_utf8("\xe2\x82\xac"));
    CHECK_FALSE(valid_utf8("\xe2\x82"));
}

TEST_CASE("is_forbidden_command catches HTTP and proxy probes", "[smtp][parser]") {
    CHECK(is_forbidden_command("GET / HTTP/1.1"));
    CHECK(is_forbidden_command("post /x HTTP/1.0"));
    CHECK(is_forbidden_command("CONNECT mx.example:25 HTTP/1.1"));
    CHECK(is_forbidden_command("HEAD / HTTP/1.1"));
    CHECK(is_forbidden_command("PUT /a HTTP/1.1"));
    CHECK(is_forbidden_command("User-Agent: curl/8"));
    CHECK(is_forbidden_command("host: mx.example"));
    CHECK_FALSE(is_forbidden_command("GETX"));
    CHECK_FALSE(is_forbidden_command("HELO get"));
    CHECK_FALSE(is_forbidden_command("Hostname: x"));
    CHECK_FALSE(is_forbidden_command("GET"));
}

TEST_CASE("MAIL FROM: plain, null, keyword case and the tolerated space", "[smtp][parser]") {
    auto p = mail_ok("FROM:<user@example.com>");
    CHECK(p.local == "user");
    CHECK(p.domain == "example.com");
    CHECK_FALSE(p.null);
    CHECK(p.address() == "user@example.com");

    p = mail_ok("from:<User@Example.COM>");
    CHECK(p.domain == "Example.COM");  // kept as sent; lower-casing is the caller's job
    CHECK(p.local == "User");

    p = mail_ok("FROM: <a@b.c>");
    CHECK(p.address() == "a@b.c");

    p = mail_ok("FROM:<>");
    CHECK(p.null);
    CHECK(p.address().empty());
    CHECK(mail_ok("FROM: <>").null);

    auto r = parse_mail_from("FROM:<a@b.c> SIZE=10 BODY=8BITMIME", false);
    REQUIRE(r.path);
    CHECK(r.rest == "SIZE=10 BODY=8BITMIME");
    r = parse_mail_from("FROM:<>   SIZE=10", false);
    REQUIRE(r.path);
    CHECK(r.rest == "SIZE=10");
    r = parse_mail_from("FROM:<a@b.c> ", false);
    REQUIRE(r.path);
    CHECK(r.rest.empty());
}

TEST_CASE("MAIL FROM: syntax errors", "[smtp][parser]") {
    auto syntax = mail_err("FROM:a@b.c");  // brackets are required
    CHECK(syntax.code == 501);
    CHECK(syntax.enhanced == "5.5.4");
    CHECK(syntax.line() == "501 5.5.4 Syntax: MAIL FROM:<address>");
    CHECK(mail_err("TO:<a@b.c>").code == 501);
    CHECK(mail_err("").enhanced == "5.5.4");
    CHECK(mail_err("FROM").enhanced == "5.5.4");
    CHECK(mail_err("FROM <a@b.c>").enhanced == "5.5.4");
    CHECK(mail_err("FROM:  <a@b.c>").enhanced == "5.5.4");  // one space only
    CHECK(mail_err("FROM:\t<a@b.c>").enhanced == "5.5.4");
    CHECK(mail_err("FROM:<a@b.c>x").enhanced == "5.5.4");   // trailing garbage
    CHECK(mail_err("FROM:<a@b.c>SIZE=1").enhanced == "5.5.4");

    auto bad = mail_err("FROM:<a@b.c");
    CHECK(bad.line() == "501 5.1.7 Bad sender address syntax");
    for (auto s : {"FROM:< a@b.c>", "FROM:<a@b.c >", "FROM:<a b@c.d>", "FROM:<a@>", "FROM:<@b.c>",
                   "FROM:<a>", "FROM:<a@b..c>", "FROM:<a@.b>", "FROM:<a@b.>", "FROM:<a@-b.c>",
                   "FROM:<a@b-.c>", "FROM:<a@b_c.d>", "FROM:<.a@b.c>", "FROM:<a.@b.c>",
                   "FROM:<a..b@c.d>", "FROM:<a@b@c.d>", "FROM:<<a@b.c>>", "FROM:<a(b)@c.d>",
                   "FROM:<a,b@c.d>", "FROM:<a@b.c", "FROM:<\"a@b.c>", "FROM:<a@[1.2.3.4>"}) {
        INFO(s);
        CHECK(mail_err(s).enhanced == "5.1.7");
    }
}

TEST_CASE("RCPT TO: plain, postmaster, no null path", "[smtp][parser]") {
    auto p = rcpt_ok("TO:<u@d.example>");
    CHECK(p.address() == "u@d.example");
    p = rcpt_ok("to: <u@d.example>");
    CHECK(p.local == "u");

    // RFC 5321 4.1.1.3: <postmaster> without a domain, any case.
    p = rcpt_ok("TO:<postmaster>");
    CHECK(p.local == "postmaster");
    CHECK(p.domain.empty());
    CHECK(p.address() == "postmaster");
    CHECK(rcpt_ok("TO:<PostMaster>").local == "postmaster");
    CHECK(rcpt_ok("TO:<Postmaster@d.example>").local == "Postmaster");
    CHECK(rcpt_err("TO:<postmasterx>").enhanced == "5.1.3");
    CHECK(mail_err("FROM:<postmaster>").enhanced == "5.1.7");  // only for RCPT

    auto bad = rcpt_err("TO:<>");
    CHECK(bad.line() == "501 5.1.3 Bad recipient address syntax");
    CHECK(rcpt_err("TO:u@d").line() == "501 5.5.4 Syntax: RCPT TO:<address>");
    CHECK(rcpt_err("FROM:<u@d>").enhanced == "5.5.4");

    auto r = parse_rcpt_to("TO:<u@d> NOTIFY=NEVER ORCPT=rfc822;u@d", false);
    REQUIRE(r.path);
    CHECK(r.rest == "NOTIFY=NEVER ORCPT=rfc822;u@d");
}

TEST_CASE("quoted local parts", "[smtp][parser]") {
    auto p = mail_ok(R"(FROM:<"john doe"@example.com>)");
    CHECK(p.quoted_local);
    CHECK(p.local == "john doe");
    CHECK(p.address() == R"("john doe"@example.com)");

    p = mail_ok(R"(FROM:<"a\"b\\c"@d.e>)");
    CHECK(p.local == R"(a"b\c)");
    CHECK(p.address() == R"("a\"b\\c"@d.e)");

    p = mail_ok(R"(FROM:<"abc"@d.e>)");  // quoting that was not needed is dropped
    CHECK(p.quoted_local);
    CHECK(p.address() == "abc@d.e");

    p = mail_ok(R"(FROM:<"a@b>c"@d.e>)");  // "@" and ">" inside quotes
    CHECK(p.local == "a@b>c");
    CHECK(p.domain == "d.e");

    p = mail_ok(R"(FROM:<""@d.e>)");
    CHECK(p.local.empty());
    CHECK(p.address() == R"(""@d.e)");

    p = mail_ok(R"(FROM:<".a..b."@d.e>)");
    CHECK(p.address() == R"(".a..b."@d.e)");

    CHECK(mail_err(R"(FROM:<"a"b@d.e>)").enhanced == "5.1.7");
    CHECK(mail_err(R"(FROM:<"a\)" "\x01" R"("@d.e>)").enhanced == "5.1.7");  // quoted-pair of a control
    CHECK(mail_err(std::string("FROM:<\"a\tb\"@d.e>")).enhanced == "5.1.7");
    CHECK(mail_err(R"(FROM:<"abc@d.e>)").enhanced == "5.1.7");
}

TEST_CASE("atext local parts, bang paths and the percent hack are plain local parts", "[smtp][parser]") {
    auto p = mail_ok("FROM:<a.b+tag!#$%&'*/=?^_`{|}~-@d.e>");
    CHECK(p.local == "a.b+tag!#$%&'*/=?^_`{|}~-");
    CHECK_FALSE(p.quoted_local);
    CHECK(rcpt_ok("TO:<u%ext.example@d.e>").local == "u%ext.example");
    CHECK(rcpt_ok("TO:<host!u@d.e>").local == "host!u");
}

TEST_CASE("address literals", "[smtp][parser]") {
    CHECK(rcpt_ok("TO:<u@[192.0.2.1]>").domain == "[192.0.2.1]");
    CHECK(rcpt_ok("TO:<u@[192.0.2.1]>").address() == "u@[192.0.2.1]");
    CHECK(rcpt_ok("TO:<u@[0.0.0.0]>").domain == "[0.0.0.0]");
    CHECK(rcpt_ok("TO:<u@[255.255.255.255]>").domain == "[255.255.255.255]");
    CHECK(rcpt_ok("TO:<u@[IPv6:2001:db8::1]>").domain == "[IPv6:2001:db8::1]");
    CHECK(rcpt_ok("TO:<u@[ipv6:2001:DB8::1]>").domain == "[ipv6:2001:DB8::1]");
    CHECK(rcpt_ok("TO:<u@[IPv6:1:2:3:4:5:6:7:8]>").domain == "[IPv6:1:2:3:4:5:6:7:8]");
    CHECK(rcpt_ok("TO:<u@[IPv6:::]>").domain == "[IPv6:::]");
    CHECK(rcpt_ok("TO:<u@[IPv6:::1]>").domain == "[IPv6:::1]");
    CHECK(rcpt_ok("TO:<u@[IPv6:1:2:3:4:5:6::]>").domain == "[IPv6:1:2:3:4:5:6::]");
    CHECK(rcpt_ok("TO:<u@[IPv6:1:2:3:4:5:6:192.0.2.1]>").domain == "[IPv6:1:2:3:4:5:6:192.0.2.1]");
    CHECK(rcpt_ok("TO:<u@[IPv6:::ffff:192.0.2.1]>").domain == "[IPv6:::ffff:192.0.2.1]");

    for (auto s : {"TO:<u@[256.0.0.1]>", "TO:<u@[1.2.3]>", "TO:<u@[1.2.3.4.5]>", "TO:<u@[1.2.3.04444]>",
                   "TO:<u@[1..2.3]>", "TO:<u@[]>", "TO:<u@[example.com]>", "TO:<u@[IPv6:1:2:3:4:5:6:7]>",
                   "TO:<u@[IPv6:1:2:3:4:5:6:7:8:9]>", "TO:<u@[IPv6:1::2::3]>", "TO:<u@[IPv6:12345::1]>",
                   "TO:<u@[IPv6:1:2:3:4:5:6:7::]>",  // RFC 5321: at most 6 groups besides "::"
                   "TO:<u@[IPv6:g::1]>", "TO:<u@[IPv6:1:2:3:4:5:192.0.2.1]>", "TO:<u@[IPv6:]>",
                   "TO:<u@[x-tag:abc]>", "TO:<u@[1.2.3.4]x>", "TO:<u@1.2.3.4]>"}) {
        INFO(s);
        CHECK(rcpt_err(s).enhanced == "5.1.3");
    }
}

TEST_CASE("source routes are accepted and ignored", "[smtp][parser]") {
    // RFC 5321 4.1.1.3 and appendix C: MUST accept, SHOULD ignore.
    auto p = rcpt_ok("TO:<@hosta.int,@jkl.org:userc@d.bar.org>");
    CHECK(p.had_source_route);
    CHECK(p.local == "userc");
    CHECK(p.domain == "d.bar.org");
    CHECK(p.address() == "userc@d.bar.org");
    CHECK(mail_ok("FROM:<@a.example:u@d.e>").had_source_route);
    CHECK_FALSE(rcpt_ok("TO:<u@d.e>").had_source_route);

    for (auto s : {"TO:<@a.example u@d.e>", "TO:<@a.example,u@d.e>", "TO:<@:u@d.e>", "TO:<@a.example:>",
                   "TO:<@a.example,:u@d.e>", "TO:<@[1.2.3.4]:u@d.e>", "TO:<@a..b:u@d.e>"}) {
        INFO(s);
        CHECK(rcpt_err(s).enhanced == "5.1.3");
    }
    CHECK(mail_err("FROM:<@a.example:>").enhanced == "5.1.7");  // no null path behind a route
}

TEST_CASE("UTF-8 addresses need SMTPUTF8", "[smtp][parser]") {
    // RFC 6531 3.3: UTF8-non-ascii in atext, qtext and domain labels.
    auto p = rcpt_ok("TO:<用户@例子.广告>", true);
    CHECK(p.local == "用户");
    CHECK(p.domain == "例子.广告");
    CHECK(p.address() == "用户@例子.广告");
    CHECK(rcpt_ok("TO:<\"jöhn döe\"@bücher.example>", true).local == "jöhn döe");
    CHECK(mail_ok("FROM:<ñ@xn--bcher-kva.example>", true).local == "ñ");

    auto e = rcpt_err("TO:<用户@例子.广告>", false);
    CHECK(e.line() == "553 5.6.7 Non-ASCII address requires SMTPUTF8");
    CHECK(mail_err("FROM:<a@bücher.example>", false).code == 553);
    CHECK(mail_err("FROM:<ä@b.example>", false).code == 553);

    // Malformed UTF-8 and C1 controls are syntax errors in either mode.
    for (bool utf8 : {false, true}) {
        CHECK(rcpt_err("TO:<a\xff@b.c>", utf8).code == 501);
        CHECK(rcpt_err("TO:<a\xc3@b.c>", utf8).code == 501);           // truncated
        CHECK(rcpt_err("TO:<a\xc0\xaf@b.c>", utf8).code == 501);       // overlong
        CHECK(rcpt_err("TO:<a\xed\xa0\x80@b.c>", utf8).code == 501);   // surrogate
        CHECK(rcpt_err("TO:<a\xc2\x85@b.c>", utf8).code == 501);       // C1 NEL
        CHECK(rcpt_err("TO:<a@b\xf4\x90\x80\x80.c>", utf8).code == 501);  // above U+10FFFF
        CHECK(rcpt_err("TO:<a\x01@b.c>", utf8).code == 501);
    }
}

TEST_CASE("length limits of RFC 5321 4.5.3.1", "[smtp][parser]") {
    std::string local64(64, 'l');
    CHECK(rcpt_ok("TO:<" + local64 + "@d.e>").local == local64);
    auto e = rcpt_err("TO:<" + local64 + "l@d.e>");
    CHECK(e.line() == "501 5.1.3 Local part too long");
    // The limit counts the local part as sent, quotes included.
    CHECK(rcpt_err("TO:<\"" + std::string(63, 'q') + "\"@d.e>").text == "Local part too long");
    CHECK(rcpt_ok("TO:<\"" + std::string(62, 'q') + "\"@d.e>").local.size() == 62);

    std::string label63(63, 'a');
    CHECK(rcpt_ok("TO:<u@" + label63 + ".e>").domain.size() == 65);
    CHECK(rcpt_err("TO:<u@" + label63 + "a.e>").enhanced == "5.1.3");  // 64-octet label

    // 4 labels of 63 plus dots: 255 octets is fine, 257 is not; the path limit (256 with the
    // brackets) then bites before the domain limit for such a domain with a local part.
    std::string d255 = label63 + "." + label63 + "." + label63 + "." + std::string(63, 'b');
    REQUIRE(d255.size() == 255);
    CHECK(rcpt_err("TO:<u@" + d255 + ">").text == "Path too long");  // 259 octets
    std::string d257 = d255 + ".c";
    CHECK(rcpt_err("TO:<u@" + d257 + ">").text == "Domain too long");

    std::string d251 = label63 + "." + label63 + "." + label63 + "." + std::string(59, 'b');
    REQUIRE(d251.size() == 251);
    CHECK(rcpt_ok("TO:<ab@" + d251 + ">").domain == d251);  // exactly 256 with the brackets
    CHECK(rcpt_err("TO:<abc@" + d251 + ">").line() == "501 5.1.3 Path too long");
    CHECK(mail_err("FROM:<abc@" + d251 + ">").line() == "501 5.1.7 Path too long");
}

TEST_CASE("parse_params", "[smtp][parser]") {
    auto p = params("");
    CHECK(p.empty());
    p = params("   ");
    CHECK(p.empty());

    p = params("size=100 BODY=8BITMIME smtputf8 x-Custom-1=v");
    REQUIRE(p.size() == 4);
    CHECK(p[0].keyword == "SIZE");
    CHECK(p[0].value == "100");
    CHECK(p[0].has_value);
    CHECK(p[1].keyword == "BODY");
    CHECK(p[2].keyword == "SMTPUTF8");
    CHECK_FALSE(p[2].has_value);
    CHECK(p[2].value.empty());
    CHECK(p[3].keyword == "X-CUSTOM-1");
    CHECK(p[3].value == "v");

    p = params("A=1  B=2 ");  // runs of spaces and a trailing space are tolerated
    REQUIRE(p.size() == 2);
    CHECK(p[1].value == "2");

    p = params("AUTH=<> ORCPT=rfc822;a+2Bb@c");
    CHECK(p[0].value == "<>");
    CHECK(p[1].value == "rfc822;a+2Bb@c");

    CHECK(params_err("SIZE=1 size=2") == "Duplicate parameter SIZE");
    CHECK(params_err("SIZE=") == "Syntax error in parameter SIZE");
    CHECK(params_err("=1") == "Syntax error in parameters");
    CHECK(params_err("-A=1") == "Syntax error in parameters");
    CHECK(params_err("A_B=1") == "Syntax error in parameters");
    CHECK(params_err("A=b=c") == "Syntax error in parameter A");
    CHECK(params_err("A=\x01") == "Syntax error in parameter A");
    CHECK(params_err("A=\x7f") == "Syntax error in parameter A");
    CHECK(params_err("A\tB") == "Syntax error in parameters");
    CHECK(params_err("A=b\tC=d") == "Syntax error in parameter A");

    // RFC 6531 3.3: UTF-8 in esmtp-value only with SMTPUTF8.
    CHECK(params_err("ENVID=ü") == "Syntax error in parameter ENVID");
    CHECK(params("ENVID=ü", true)[0].value == "ü");
    CHECK(params_err("ENVID=\xc2\x80", true) == "Syntax error in parameter ENVID");
    CHECK(params_err("ENVID=\xff", true) == "Syntax error in parameter ENVID");

    std::string many;
    for (int i = 0; i < 32; ++i) many += "P" + std::to_string(i) + " ";
    CHECK(params(many).size() == 32);
    CHECK(params_err(many + "P32") == "Too many parameters");
}

TEST_CASE("xtext", "[smtp][parser]") {
    CHECK(xtext_decode("") == std::string());
    CHECK(xtext_decode("abc") == std::string("abc"));
    CHECK(xtext_decode("a+2Bb+3Dc") == std::string("a+b=c"));
    CHECK(xtext_decode("+20+00") == std::string(" \0", 2));
    CHECK(xtext_decode("+C3+A9") == std::string("é"));
    CHECK_FALSE(xtext_decode("a+2bb"));  // lower-case hex is not xtext
    CHECK_FALSE(xtext_decode("a+2"));
    CHECK_FALSE(xtext_decode("a+"));
    CHECK_FALSE(xtext_decode("a+GG"));
    CHECK_FALSE(xtext_decode("a=b"));
    CHECK_FALSE(xtext_decode("a b"));
    CHECK_FALSE(xtext_decode("é"));

    CHECK(xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d");
    CHECK(xtext_encode(std::string("\0\x7f\xff", 3)) == "+00+7F+FF");
    for (std::string s : {std::string("plain"), std::string("+=+= "), std::string("\r\n\t é ü"),
                          std::string("\0x", 2)}) {
        CHECK(xtext_decode(xtext_encode(s)) == s);
    }
}

TEST_CASE("validate_mail_params", "[smtp][parser]") {
    auto m = mail_params("");
    CHECK_FALSE(m.size);
    CHECK(m.body == MailParams::Body::SevenBit);
    CHECK_FALSE(m.body_given);

    m = mail_params("SIZE=12345 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2B1 AUTH=<>");
    CHECK(m.size == 12345u);
    CHECK(m.body == MailParams::Body::EightBit);
    CHECK(m.body_given);
    CHECK(m.smtputf8);
    CHECK(m.ret == "HDRS");
    CHECK(m.envid == "QQ+1");
    CHECK(m.auth == std::string("<>"));
    CHECK(mail_params("AUTH=e+2Bx@d.e").auth == std::string("e+x@d.e"));
    CHECK(mail_params("RET=FULL").ret == "FULL");
    CHECK(mail_params("BODY=7BIT").body_given);

    SECTION("SIZE") {
        CHECK(mail_params("SIZE=0").size == 0u);
        CHECK(mail_params("SIZE=18446744073709551615").size == UINT64_MAX);
        CHECK(mail_params("SIZE=99999999999999999999").size == UINT64_MAX);  // saturates
        CHECK(mail_params_err("SIZE=999999999999999999999").line() == "501 5.5.4 Bad SIZE parameter");
        CHECK(mail_params_err("SIZE=-1").code == 501);
        CHECK(mail_params_err("SIZE=1k").code == 501);
        CHECK(mail_params_err("SIZE").code == 501);
    }
    SECTION("BODY") {
        CHECK(mail_params_err("BODY=BINARYMIME").line() == "501 5.5.4 Bad BODY parameter");
        MailExtensions bin;
        bin.binarymime = true;
        CHECK(mail_params("BODY=binarymime", bin).body == MailParams::Body::Binary);
        CHECK(mail_params_err("BODY=9BIT").code == 501);
        CHECK(mail_params_err("BODY").code == 501);
        MailExtensions no8;
        no8.eightbitmime = false;
        CHECK(mail_params_err("BODY=8BITMIME", no8).code == 555);
    }
    SECTION("SMTPUTF8 and REQUIRETLS take no value; REQUIRETLS only when offered") {
        CHECK(mail_params_err("SMTPUTF8=yes").code == 501);
        CHECK(mail_params_err("REQUIRETLS").line() == "555 5.5.4 Unsupported option: REQUIRETLS");
        MailExtensions tls;
        tls.requiretls = true;
        CHECK(mail_params("REQUIRETLS", tls).requiretls);
        CHECK(mail_params_err("REQUIRETLS=1", tls).code == 501);
    }
    SECTION("RET and ENVID") {
        CHECK(mail_params_err("RET=ALL").code == 501);
        CHECK(mail_params_err("RET").code == 501);
        CHECK(mail_params("ENVID=" + std::string(100, 'x')).envid.size() == 100);
        CHECK(mail_params_err("ENVID=" + std::string(101, 'x')).code == 501);
        std::string plus100;
        for (int i = 0; i < 100; ++i) plus100 += "+2B";
        CHECK(mail_params("ENVID=" + plus100).envid == std::string(100, '+'));  // limit after decoding
        CHECK(mail_params_err("ENVID=" + plus100 + "x").code == 501);
        CHECK(mail_params_err("ENVID=a+0Ab").code == 501);  // not printable once decoded
        CHECK(mail_params_err("ENVID=a+09b").code == 501);  // TAB: the queue would refuse it
        CHECK(mail_params_err("ENVID=a+2b").code == 501);   // bad xtext
        CHECK(mail_params_err("ENVID").code == 501);
    }
    SECTION("AUTH") {
        CHECK(mail_params_err("AUTH").code == 501);
        CHECK(mail_params_err("AUTH=a+zz").code == 501);
    }
    SECTION("unknown and not offered") {
        auto e = mail_params_err("FOO=bar");
        CHECK(e.code == 555);
        CHECK(e.enhanced == "5.5.4");
        CHECK(e.text == "Unsupported option: FOO");
        CHECK(mail_params_err("NOTIFY=NEVER").code == 555);  // an RCPT parameter
        MailExtensions none{false, false, false, false, false, false, false};
        for (auto s : {"SIZE=1", "BODY=7BIT", "SMTPUTF8", "RET=FULL", "ENVID=x", "AUTH=<>"}) {
            INFO(s);
            CHECK(mail_params_err(s, none).code == 555);
        }
    }
}

TEST_CASE("validate_rcpt_params", "[smtp][parser]") {
    auto r = rcpt_params("");
    CHECK(r.notify == 0);
    CHECK(r.orcpt.empty());

    r = rcpt_params("NOTIFY=success,Failure,DELAY ORCPT=rfc822;a+2Bb@c.d");
    CHECK(r.notify == (RcptParams::Success | RcptParams::Failure | RcptParams::Delay));
    CHECK(r.orcpt_type == "rfc822");
    CHECK(r.orcpt == "a+b@c.d");
    CHECK(rcpt_params_err("ORCPT=rfc822;a+09b@c.d").code == 501);  // TAB once decoded
    CHECK(rcpt_params("NOTIFY=NEVER").notify == RcptParams::Never);
    CHECK(rcpt_params("NOTIFY=FAILURE").notify == RcptParams::Failure);

    CHECK(rcpt_params_err("NOTIFY=NEVER,SUCCESS").line() ==
          "501 5.5.4 Bad NOTIFY parameter: NEVER must appear alone");
    CHECK(rcpt_params_err("NOTIFY=FAILURE,NEVER").code == 501);
    CHECK(rcpt_params_err("NOTIFY=SOMETIMES").code == 501);
    CHECK(rcpt_params_err("NOTIFY=SUCCESS,").code == 501);
    CHECK(rcpt_params_err("NOTIFY=,SUCCESS").code == 501);
    CHECK(rcpt_params_err("NOTIFY").code == 501);

    CHECK(rcpt_params_err("ORCPT=u@d").code == 501);            // no addr-type
    CHECK(rcpt_params_err("ORCPT=;u@d").code == 501);
    CHECK(rcpt_params_err("ORCPT=rfc822;").code == 501);
    CHECK(rcpt_params_err("ORCPT=rfc(822);u@d").code == 501);   // addr-type is an atom
    CHECK(rcpt_params_err("ORCPT=rfc822;u+2@d").code == 501);
    CHECK(rcpt_params_err("ORCPT=rfc822;u+0D@d").code == 501);  // not printable once decoded
    CHECK(rcpt_params_err("ORCPT=rfc822;ü@d").code == 501);
    std::string long_orcpt = "rfc822;" + std::string(493, 'x');
    REQUIRE(long_orcpt.size() == 500);
    CHECK(rcpt_params("ORCPT=" + long_orcpt).orcpt.size() == 493);
    CHECK(rcpt_params_err("ORCPT=" + long_orcpt + "x").code == 501);

    // RFC 6533 3: utf-8 addr-type with raw UTF-8 or \x{HEX} escapes.
    r = rcpt_params("ORCPT=utf-8;j\\x{F6}hn@b\\x{FC}cher.example");
    CHECK(r.orcpt_type == "utf-8");
    CHECK(r.orcpt == "jöhn@bücher.example");
    CHECK(rcpt_params("ORCPT=UTF-8;用户@例子.广告").orcpt == "用户@例子.广告");
    CHECK(rcpt_params_err("ORCPT=utf-8;a\\x{D800}").code == 501);
    CHECK(rcpt_params_err("ORCPT=utf-8;a\\x{f6}").code == 501);
    CHECK(rcpt_params_err("ORCPT=utf-8;a\\xF6").code == 501);
    CHECK(rcpt_params_err("ORCPT=utf-8;a+2B").code == 501);

    CHECK(rcpt_params_err("SIZE=1").line() == "555 5.5.4 Unsupported option: SIZE");
    MailExtensions nodsn;
    nodsn.dsn = false;
    CHECK(rcpt_params_err("NOTIFY=NEVER", nodsn).code == 555);
    CHECK(rcpt_params_err("ORCPT=rfc822;u@d", nodsn).code == 555);
}
