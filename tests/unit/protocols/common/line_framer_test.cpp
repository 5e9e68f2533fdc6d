// LineFramer: one definition of the line limit (CRLF counted), too-long lines answered once,
// byte-at-a-time input, bare LF, and IMAP's literal mode.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "protocols/common/line_framer.hpp"

using pillarbox::protocols::LineFramer;
using K = LineFramer::Item::Kind;

namespace {
// Feeds input the way the Connection does (a buffer that grows by `step` bytes, consumed
// prefixes erased) and records what came out: "L:text", "TOO", "LIT:bytes".
std::vector<std::string> run(LineFramer& f, const std::string& input, std::size_t step) {
    std::vector<std::string> out;
    std::string buf;
    for (std::size_t at = 0; at < input.size();) {
        buf += input.substr(at, step);
        at += step;
        for (;;) {
            auto item = f.next(buf);
            if (item.kind == K::NeedMore) break;
            if (item.kind == K::Line) out.push_back("L:" + std::string(item.data));
            if (item.kind == K::TooLong) out.push_back("TOO");
            if (item.kind == K::Literal) out.push_back("LIT:" + std::string(item.data));
            buf.erase(0, item.consumed);
        }
    }
    return out;
}
}  // namespace

TEST_CASE("line framer splits lines, whole or byte by byte", "[framer]") {
    for (std::size_t step : {1u, 3u, 1000u}) {
        LineFramer f(16);
        auto out = run(f, "NOOP\r\nQUIT\nUSER a b\r\n", step);
        REQUIRE(out == std::vector<std::string>{"L:NOOP", "L:QUIT", "L:USER a b"});
    }
}

TEST_CASE("line framer counts CRLF in the limit", "[framer]") {
    LineFramer f(8);
    // 6 octets + CRLF = 8: fits; 7 + CRLF = 9: too long.
    CHECK(run(f, "123456\r\n", 1) == std::vector<std::string>{"L:123456"});
    CHECK(run(f, "1234567\r\n", 1) == std::vector<std::string>{"TOO"});
    // A bare LF is counted as if it were CRLF.
    CHECK(run(f, "1234567\n", 100) == std::vector<std::string>{"TOO"});
    // A line without its LF yet that could still fit is waited for (it may end in CR).
    LineFramer g(8);
    CHECK(g.next("123456\r").kind == K::NeedMore);
    CHECK(g.next("123456\r\n").kind == K::Line);
}

TEST_CASE("a too-long line is answered once and skipped to its end", "[framer]") {
    for (std::size_t step : {1u, 5u, 4096u}) {
        LineFramer f(10);
        auto out = run(f, std::string(100, 'x') + "\r\nNOOP\r\n", step);
        REQUIRE(out == std::vector<std::string>{"TOO", "L:NOOP"});
    }
}

TEST_CASE("a too-long line does not grow the buffer while it is skipped", "[framer]") {
    LineFramer f(10);
    auto a = f.next(std::string(10, 'x'));
    CHECK(a.kind == K::TooLong);
    CHECK(a.consumed == 10);  // the Connection drops what was skipped
    auto b = f.next(std::string(50, 'x'));
    CHECK(b.kind == K::Skipped);
    CHECK(b.consumed == 50);
    auto c = f.next("xx\r\nQUIT\r\n");
    CHECK(c.kind == K::Skipped);
    CHECK(c.consumed == 4);
    CHECK(f.next("QUIT\r\n").kind == K::Line);
}

TEST_CASE("literal mode hands out exactly the literal's octets, then lines", "[framer]") {
    for (std::size_t step : {1u, 4u, 100u}) {
        LineFramer f(64);
        std::string buf = "A APPEND x {5}\r\n";
        auto first = f.next(buf);
        REQUIRE(first.kind == K::Line);
        f.expect_literal(5);
        std::vector<std::string> out = run(f, "a\r\nb\nTAIL\r\n", step);
        std::string literal;
        std::vector<std::string> lines;
        for (auto& o : out) {
            if (o.rfind("LIT:", 0) == 0) literal += o.substr(4);
            else lines.push_back(o);
        }
        CHECK(literal == "a\r\nb\n");
        CHECK(lines == std::vector<std::string>{"L:TAIL"});
        CHECK(f.literal_remaining() == 0);
    }
}

TEST_CASE("literal bytes are not limited by the line limit", "[framer]") {
    LineFramer f(8);
    f.expect_literal(1000);
    auto out = run(f, std::string(1000, 'z') + "OK\r\n", 333);
    std::size_t total = 0;
    for (auto& o : out)
        if (o.rfind("LIT:", 0) == 0) total += o.size() - 4;
    CHECK(total == 1000);
    CHECK(out.back() == "L:OK");
}
