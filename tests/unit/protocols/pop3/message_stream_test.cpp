// The POP3 multi-line encoding of a stored message (RFC 1939 sections 3, 7 and 11): CRLF line
// ends, byte-stuffing, the ".\r\n" terminator, TOP's header + N body lines; every case whole,
// cut at chosen points and byte by byte, and a seeded property test over random messages.
#include <catch2/catch.hpp>

#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/pop3/message_stream.hpp"

using namespace pillarbox::pop3;

namespace {

using Top = std::optional<std::uint64_t>;

struct Encoded {
    std::string out;
    bool done = false;  // done() after the last feed, before finish()
};

// Feeds `in` cut at `cuts` (ascending offsets into in), then finishes.
Encoded encode(std::string_view in, Top top = std::nullopt, const std::vector<std::size_t>& cuts = {}) {
    MessageStream s(top);
    Encoded e;
    std::size_t pos = 0;
    std::vector<std::size_t> ends = cuts;
    ends.push_back(in.size());
    for (std::size_t end : ends) {
        if (end < pos || end > in.size()) continue;
        s.feed(in.substr(pos, end - pos), e.out);
        pos = end;
    }
    e.done = s.done();
    s.finish(e.out);
    return e;
}

// One byte per feed.
Encoded encode_bytewise(std::string_view in, Top top = std::nullopt) {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < in.size(); ++i) cuts.push_back(i);
    return encode(in, top, cuts);
}

// The expected output must come out whole, byte by byte and cut at every single offset.
std::string encode_all_ways(std::string_view in, Top top = std::nullopt) {
    auto whole = encode(in, top);
    INFO("input " << Catch::Detail::stringify(std::string(in)));
    CHECK(encode_bytewise(in, top).out == whole.out);
    CHECK(encode_bytewise(in, top).done == whole.done);
    for (std::size_t cut = 0; cut <= in.size(); ++cut) {
        INFO("cut at " << cut);
        auto e = encode(in, top, {cut});
        CHECK(e.out == whole.out);
        CHECK(e.done == whole.done);
    }
    return whole.out;
}

// The input as RFC 1939 wants it on the wire before stuffing: lines split at LF or CRLF (a CR
// before LF belongs to the line end; any other CR is content, except a CR that ends the file,
// which ends the last line), each line ending in CRLF.
std::vector<std::string> lines_of(std::string_view in) {
    std::vector<std::string> lines;
    std::size_t i = 0;
    while (i < in.size()) {
        std::size_t nl = in.find('\n', i);
        std::string_view line = in.substr(i, nl == std::string_view::npos ? in.size() - i : nl - i);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        lines.emplace_back(line);
        if (nl == std::string_view::npos) break;
        i = nl + 1;
    }
    return lines;
}

std::string join_crlf(const std::vector<std::string>& lines) {
    std::string out;
    for (auto& l : lines) out += l + "\r\n";
    return out;
}

std::string normalised(std::string_view in) { return join_crlf(lines_of(in)); }

// The lines TOP n sends: the header, the empty line, n body lines (all when there is no
// empty line or fewer body lines).
std::vector<std::string> top_lines(const std::vector<std::string>& lines, std::uint64_t n) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < lines.size()) {
        out.push_back(lines[i]);
        if (lines[i++].empty()) break;
    }
    for (std::uint64_t k = 0; k < n && i < lines.size(); ++k) out.push_back(lines[i++]);
    return out;
}

// Whether TOP n can stop before the end of the file: the empty line and n body lines all end
// in a line ending that is in the file (not the one finish() adds).
bool top_complete(std::string_view in, std::uint64_t n) {
    auto lines = lines_of(in);
    std::size_t i = 0;
    bool blank = false;
    while (i < lines.size())
        if (lines[i++].empty()) {
            blank = true;
            break;
        }
    if (!blank) return false;
    std::size_t need = i + n;  // lines that must be complete
    if (need > lines.size()) return false;
    // The last of them is complete unless it is the file's last line without a LF: a CR that
    // ends the file might still be followed by LF, so only finish() ends that line.
    bool last_terminated = !in.empty() && in.back() == '\n';
    return need < lines.size() || last_terminated;
}

// Reverses the POP3 encoding; fails the test when the output is not a well-formed multi-line
// response body.
std::string unstuff(const std::string& out) {
    REQUIRE(out.size() >= 3);
    REQUIRE(out.substr(out.size() - 3) == ".\r\n");
    std::string body = out.substr(0, out.size() - 3);
    std::string result;
    std::size_t i = 0;
    while (i < body.size()) {
        std::size_t e = body.find("\r\n", i);
        REQUIRE(e != std::string::npos);  // every line ends in CRLF
        std::string line = body.substr(i, e - i);
        REQUIRE(line.find('\n') == std::string::npos);  // no bare LF left
        if (!line.empty() && line[0] == '.') {
            REQUIRE(line.size() >= 2);   // never a lone "." before the end
            REQUIRE(line[1] == '.');     // every dot-line was stuffed
            line.erase(0, 1);
        }
        result += line + "\r\n";
        i = e + 2;
    }
    return result;
}

}  // namespace

TEST_CASE("a CRLF message passes through unchanged, then the terminator") {
    std::string msg = "From: a@example.org\r\nSubject: hi\r\n\r\nHello\r\nWorld\r\n";
    CHECK(encode_all_ways(msg) == msg + ".\r\n");
}

TEST_CASE("bare LF line ends become CRLF") {
    CHECK(encode_all_ways("Subject: x\n\nline one\nline two\n") == "Subject: x\r\n\r\nline one\r\nline two\r\n.\r\n");
    CHECK(encode_all_ways("a\r\nb\nc\r\n") == "a\r\nb\r\nc\r\n.\r\n");  // mixed
    CHECK(encode_all_ways("\n\n\n") == "\r\n\r\n\r\n.\r\n");
}

TEST_CASE("lines starting with a dot are stuffed") {
    CHECK(encode_all_ways(".first\r\n") == "..first\r\n.\r\n");
    CHECK(encode_all_ways("a\r\n.\r\nb\r\n") == "a\r\n..\r\nb\r\n.\r\n");  // a line that is only "."
    CHECK(encode_all_ways(".\r\n") == "..\r\n.\r\n");
    CHECK(encode_all_ways("..\n...\n") == "...\r\n....\r\n.\r\n");
    CHECK(encode_all_ways("a.b\r\n .c\r\n") == "a.b\r\n .c\r\n.\r\n");  // only a leading dot
    CHECK(encode_all_ways("x\n.") == "x\r\n..\r\n.\r\n");                // a last line "." without LF
}

TEST_CASE("a file without a final line ending gets CRLF before the terminator") {
    CHECK(encode_all_ways("Subject: x\r\n\r\nno newline") == "Subject: x\r\n\r\nno newline\r\n.\r\n");
    CHECK(encode_all_ways("x") == "x\r\n.\r\n");
}

TEST_CASE("an empty file gives just the terminator") {
    CHECK(encode_all_ways("") == ".\r\n");
    MessageStream s;
    std::string out;
    s.feed("", out);
    s.feed("", out);
    s.finish(out);
    CHECK(out == ".\r\n");
}

TEST_CASE("a bare CR inside a line is kept as is") {
    CHECK(encode_all_ways("a\rb\r\n") == "a\rb\r\n.\r\n");
    CHECK(encode_all_ways("a\r\rb\n") == "a\r\rb\r\n.\r\n");
    CHECK(encode_all_ways("a\r\r\n") == "a\r\r\n.\r\n");
    CHECK(encode_all_ways("\r.x\r\n") == "\r.x\r\n.\r\n");  // the line starts with CR, not a dot
}

TEST_CASE("a CR that ends the file ends the last line") {
    CHECK(encode_all_ways("abc\r") == "abc\r\n.\r\n");
    CHECK(encode_all_ways("abc\r\r") == "abc\r\r\n.\r\n");
    CHECK(encode_all_ways("\r") == "\r\n.\r\n");
}

TEST_CASE("CRLF split across chunks") {
    CHECK(encode("a\r\nb\r\n", std::nullopt, {2}).out == "a\r\nb\r\n.\r\n");  // "a\r" | "\nb\r\n"
    CHECK(encode("a\r\nb\r\n", std::nullopt, {2, 3}).out == "a\r\nb\r\n.\r\n");
    CHECK(encode("a\rb\r\n", std::nullopt, {2}).out == "a\rb\r\n.\r\n");        // "a\r" | "b": bare CR
    CHECK(encode("a\r.b\r\n", std::nullopt, {2}).out == "a\r.b\r\n.\r\n");      // not a line start
    CHECK(encode("a\r\n\r\nb", std::nullopt, {2, 3, 4}).out == "a\r\n\r\nb\r\n.\r\n");
}

TEST_CASE("a dot at the start of a chunk is stuffed only when it starts a line") {
    CHECK(encode("a\r\n.b\r\n", std::nullopt, {3}).out == "a\r\n..b\r\n.\r\n");
    CHECK(encode("a\r\n.b\r\n", std::nullopt, {2}).out == "a\r\n..b\r\n.\r\n");  // "a\r" | "\n.b"
    CHECK(encode("a\n.b\n", std::nullopt, {2}).out == "a\r\n..b\r\n.\r\n");
    CHECK(encode("a.b\r\n", std::nullopt, {1}).out == "a.b\r\n.\r\n");
    CHECK(encode(".a\r\n", std::nullopt, {0}).out == "..a\r\n.\r\n");  // an empty first chunk
    CHECK(encode("x\r\n..\r\n", std::nullopt, {3, 4}).out == "x\r\n...\r\n.\r\n");
}

TEST_CASE("TOP 0 sends the header and the blank line") {
    std::string msg = "From: a\r\nSubject: s\r\n\r\nbody 1\r\nbody 2\r\n";
    CHECK(encode_all_ways(msg, 0) == "From: a\r\nSubject: s\r\n\r\n.\r\n");
    CHECK(encode(msg, 0).done);
    CHECK(encode_all_ways("A: 1\n\nb\n", 0) == "A: 1\r\n\r\n.\r\n");
    CHECK(encode_all_ways("\r\nbody\r\n", 0) == "\r\n.\r\n");  // no header at all
}

TEST_CASE("TOP n sends n body lines") {
    std::string msg = "From: a\r\n\r\nl1\r\n.l2\r\nl3\r\nl4\r\n";
    CHECK(encode_all_ways(msg, 1) == "From: a\r\n\r\nl1\r\n.\r\n");
    CHECK(encode_all_ways(msg, 2) == "From: a\r\n\r\nl1\r\n..l2\r\n.\r\n");
    CHECK(encode_all_ways(msg, 3) == "From: a\r\n\r\nl1\r\n..l2\r\nl3\r\n.\r\n");
    CHECK(encode(msg, 3).done);
    // Empty body lines are lines.
    CHECK(encode_all_ways("H: v\r\n\r\n\r\n\r\nx\r\n", 2) == "H: v\r\n\r\n\r\n\r\n.\r\n");
    // Bare LF file.
    CHECK(encode_all_ways("H: v\n\nl1\nl2\n", 1) == "H: v\r\n\r\nl1\r\n.\r\n");
}

TEST_CASE("TOP with more lines than the body sends the whole message") {
    std::string msg = "From: a\r\n\r\nl1\r\nl2\r\n";
    CHECK(encode_all_ways(msg, 2) == msg + ".\r\n");
    CHECK(encode_all_ways(msg, 3) == msg + ".\r\n");
    CHECK(encode_all_ways(msg, 1000000) == msg + ".\r\n");
    CHECK_FALSE(encode(msg, 3).done);
    CHECK(encode_all_ways("From: a\r\n\r\nlast", 5) == "From: a\r\n\r\nlast\r\n.\r\n");
    // The n-th line has no line ending in the file: finish() completes it.
    CHECK(encode_all_ways("From: a\r\n\r\nl1\r\nl2", 2) == "From: a\r\n\r\nl1\r\nl2\r\n.\r\n");
}

TEST_CASE("TOP of a header without a blank line sends the whole header") {
    CHECK(encode_all_ways("From: a\r\nSubject: s\r\n", 0) == "From: a\r\nSubject: s\r\n.\r\n");
    CHECK(encode_all_ways("From: a\r\nSubject: s", 3) == "From: a\r\nSubject: s\r\n.\r\n");
    CHECK_FALSE(encode("From: a\r\nSubject: s\r\n", 0).done);
}

TEST_CASE("a header line holding only a CR does not end the header") {
    CHECK(encode_all_ways("A: 1\r\n\r\r\nB: 2\r\n\r\nbody\r\n", 0) == "A: 1\r\n\r\r\nB: 2\r\n\r\n.\r\n");
}

TEST_CASE("done() turns true for TOP exactly when the last wanted line ends") {
    std::string msg = "From: a\r\n\r\nl1\r\nl2\r\nl3\r\n";
    for (std::uint64_t n : {0u, 1u, 2u}) {
        MessageStream s(n);
        std::string out;
        std::size_t done_at = std::string::npos;
        for (std::size_t i = 0; i < msg.size(); ++i) {
            CHECK_FALSE(s.done());
            s.feed(msg.substr(i, 1), out);
            if (s.done()) {
                done_at = i + 1;
                break;
            }
        }
        INFO("n = " << n);
        std::string want = join_crlf(top_lines(lines_of(msg), n));
        CHECK(done_at == want.size());  // this message is CRLF already: offsets agree
        CHECK(out == want);
        // Feeding more after done() produces nothing.
        s.feed("more\r\n.dots\r\n", out);
        CHECK(out == want);
        s.finish(out);
        CHECK(out == want + ".\r\n");
    }
}

TEST_CASE("RETR is never done() before the end") {
    MessageStream s;
    std::string out;
    s.feed("H: v\r\n\r\nbody\r\n", out);
    CHECK_FALSE(s.done());
    s.finish(out);
    CHECK_FALSE(s.done());
}

TEST_CASE("long lines stream through unchanged") {
    std::string line(100000, 'x');
    line[0] = '.';
    std::string msg = "H: v\r\n\r\n" + line + "\n" + line;
    auto e = encode(msg, std::nullopt, {10, 50000, 50001, 99999});
    CHECK(e.out == "H: v\r\n\r\n." + line + "\r\n." + line + "\r\n.\r\n");
}

// The property the session relies on: RETR reads the file in chunks of whatever size the store
// returns, so the encoding must not depend on where the chunks are cut, and it must be exactly
// RFC 1939's: un-stuffed, the output is the message with CRLF line ends.
TEST_CASE("property: chunking never changes the output, and un-stuffing gives the message back") {
    std::mt19937 rng(19391996);
    auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };

    auto random_line = [&]() -> std::string {
        switch (pick(12)) {
        case 0: return "";
        case 1: return ".";
        case 2: return "..";
        case 3: return ".x";
        case 4: return "Subject: hello";
        case 5: return "a\rb";  // bare CR content
        case 6: return "\r";
        case 7: {  // a long line, sometimes starting with a dot
            std::string s(1 + pick(3000), 'L');
            if (pick(2)) s[0] = '.';
            return s;
        }
        default: {
            std::string s;
            std::size_t len = pick(40);
            for (std::size_t i = 0; i < len; ++i) s += " .:aZ09\t\r"[pick(9)];
            return s;
        }
        }
    };
    auto random_message = [&]() {
        std::string m;
        std::size_t lines = pick(30);
        for (std::size_t i = 0; i < lines; ++i) {
            m += random_line();
            switch (pick(5)) {
            case 0: m += "\n"; break;
            case 1: m += "\r"; break;  // bare CR: joins the next line, or ends the file
            default: m += "\r\n"; break;
            }
        }
        if (pick(3) == 0) m += random_line();  // no final line ending
        return m;
    };
    auto random_cuts = [&](std::size_t size) {
        std::vector<std::size_t> cuts;
        switch (pick(4)) {
        case 0:  // byte by byte
            for (std::size_t i = 1; i < size; ++i) cuts.push_back(i);
            break;
        case 1: {  // small pieces, some empty
            std::size_t pos = 0;
            while (pos < size) {
                pos += pick(4);
                cuts.push_back(std::min(pos, size));
            }
            break;
        }
        default: {  // a few random cuts
            std::size_t n = pick(8);
            for (std::size_t i = 0; i < n; ++i) cuts.push_back(size ? pick(size + 1) : 0);
            std::sort(cuts.begin(), cuts.end());
        }
        }
        return cuts;
    };

    int cases = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        std::string msg = random_message();
        Top top;
        if (pick(2)) top = pick(6);
        auto cuts = random_cuts(msg.size());
        auto whole = encode(msg, top);
        auto chunked = encode(msg, top, cuts);
        INFO("message " << Catch::Detail::stringify(msg));
        INFO("top " << (top ? std::to_string(*top) : "none") << ", " << cuts.size() << " cuts");
        REQUIRE(chunked.out == whole.out);
        REQUIRE(chunked.done == whole.done);
        auto lines = lines_of(msg);
        if (!top) {
            REQUIRE(unstuff(whole.out) == normalised(msg));
            REQUIRE_FALSE(whole.done);
        } else {
            REQUIRE(unstuff(whole.out) == join_crlf(top_lines(lines, *top)));
            REQUIRE(whole.done == top_complete(msg, *top));
            // TOP sends a prefix of what RETR sends.
            auto retr = encode(msg).out;
            auto body = whole.out.substr(0, whole.out.size() - 3);
            REQUIRE(retr.compare(0, body.size(), body) == 0);
        }
        ++cases;
    }
    CHECK(cases == 3000);
}
