// The DATA body reader and the BDAT line-ending checker: dot-stuffing, the end marker across
// any split, SMTP smuggling variants in both modes, size limit; every case whole and byte by byte.
#include <catch2/catch.hpp>

#include <random>

#include "protocols/smtp/data_reader.hpp"

using namespace pillarbox::smtp;

namespace {

struct Outcome {
    std::string body;
    bool done = false;
    std::string rest;  // input not consumed (the next pipelined command)
    bool bare = false;
    bool too_big = false;
    bool long_line = false;
    std::uint64_t size = 0;
    bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
    return os << "{body=" << Catch::Detail::stringify(o.body) << " done=" << o.done
              << " rest=" << Catch::Detail::stringify(o.rest) << " bare=" << o.bare
              << " too_big=" << o.too_big << " size=" << o.size << "}";
}

// Feeds `in` cut at `cuts` (ascending offsets).
Outcome read(std::string_view in, BareLineEndings mode, const std::vector<std::size_t>& cuts,
             DataLimits limits = {}) {
    DataReader reader(limits, mode);
    Outcome o;
    std::size_t pos = 0;
    std::vector<std::size_t> ends = cuts;
    ends.push_back(in.size());
    for (std::size_t end : ends) {
        if (end < pos) continue;
        std::string_view piece = in.substr(pos, end - pos);
        auto r = reader.feed(piece);
        REQUIRE(r.consumed <= piece.size());
        REQUIRE(r.body.size() <= 2 * piece.size() + 2);
        o.body += r.body;
        pos += r.consumed;
        if (r.done) {
            REQUIRE(reader.done());
            o.done = true;
            break;
        }
        REQUIRE(r.consumed == piece.size());
    }
    o.rest.assign(in.substr(pos));
    o.bare = reader.bare_line_ending();
    o.too_big = reader.too_big();
    o.long_line = reader.long_line();
    o.size = reader.size();
    return o;
}

// Whole, byte by byte and at every single cut point: all must agree.
Outcome read_all_ways(std::string_view in, BareLineEndings mode, DataLimits limits = {}) {
    Outcome whole = read(in, mode, {}, limits);
    std::vector<std::size_t> every;
    for (std::size_t i = 1; i < in.size(); ++i) every.push_back(i);
    INFO("input " << Catch::Detail::stringify(std::string(in)));
    CHECK(read(in, mode, every, limits) == whole);
    for (std::size_t i = 1; i < in.size(); ++i) {
        INFO("cut at " << i);
        CHECK(read(in, mode, {i}, limits) == whole);
    }
    return whole;
}

const BareLineEndings kModes[] = {BareLineEndings::Reject, BareLineEndings::Normalise};

}  // namespace

TEST_CASE("DATA: plain message", "[smtp][data]") {
    for (auto mode : kModes) {
        auto o = read_all_ways("Subject: hi\r\n\r\nbody line\r\n.\r\n", mode);
        CHECK(o.done);
        CHECK(o.body == "Subject: hi\r\n\r\nbody line\r\n");
        CHECK(o.rest.empty());
        CHECK_FALSE(o.bare);
        CHECK_FALSE(o.too_big);
        CHECK(o.size == o.body.size());
    }
}

TEST_CASE("DATA: empty message and the first line", "[smtp][data]") {
    // The 354 reply stands in for the CRLF before the "." (RFC 5321 4.1.1.4).
    auto o = read_all_ways(".\r\n", BareLineEndings::Reject);
    CHECK(o.done);
    CHECK(o.body.empty());
    CHECK(o.size == 0);

    o = read_all_ways("\r\n.\r\n", BareLineEndings::Reject);
    CHECK(o.done);
    CHECK(o.body == "\r\n");

    o = read_all_ways("abc\r\n.\r\n", BareLineEndings::Reject);
    CHECK(o.done);
    CHECK(o.body == "abc\r\n");

    // Without the CRLF before the dot there is no end.
    o = read_all_ways("abc.\r\n", BareLineEndings::Reject);
    CHECK_FALSE(o.done);
    CHECK(o.body == "abc.\r\n");
}

TEST_CASE("DATA: dot-unstuffing", "[smtp][data]") {
    auto o = read_all_ways("..\r\n..x\r\n.y\r\n...\r\nx.\r\n.\r\n", BareLineEndings::Reject);
    CHECK(o.done);
    // RFC 5321 4.5.2: the first "." of a line is removed when more follows.
    CHECK(o.body == ".\r\n.x\r\ny\r\n..\r\nx.\r\n");
    CHECK(o.size == o.body.size());

    o = read_all_ways("..\r\n.\r\n", BareLineEndings::Normalise);
    CHECK(o.body == ".\r\n");
    CHECK(o.done);
}

TEST_CASE("DATA: bytes after the end are the next command", "[smtp][data]") {
    for (auto mode : kModes) {
        auto o = read_all_ways("a\r\n.\r\nQUIT\r\n", mode);
        CHECK(o.done);
        CHECK(o.body == "a\r\n");
        CHECK(o.rest == "QUIT\r\n");
    }
    DataReader r({}, BareLineEndings::Reject);
    auto res = r.feed(".\r\nMAIL");
    CHECK(res.done);
    CHECK(res.consumed == 3);
    res = r.feed("more");  // after done nothing more is taken
    CHECK(res.done);
    CHECK(res.consumed == 0);
    CHECK(res.body.empty());
}

TEST_CASE("DATA: the end marker split across feeds", "[smtp][data]") {
    DataReader r({}, BareLineEndings::Reject);
    std::string body;
    for (std::string_view piece : {"abc\r", "\n", ".", "\r", "\n"}) {
        REQUIRE_FALSE(r.done());
        auto res = r.feed(piece);
        body += res.body;
        CHECK(res.consumed == piece.size());
    }
    CHECK(r.done());
    CHECK(body == "abc\r\n");
}

TEST_CASE("DATA: SMTP smuggling variants never end the message", "[smtp][data]") {
    // Each of these would end DATA on a lax server and start a smuggled transaction.
    struct Case {
        const char* end;         // the would-be end marker after "a"
        const char* normalised;  // what "a" + end is delivered as
    };
    const Case cases[] = {
        {"\n.\n", "a\r\n.\r\n"},
        {"\n.\r\n", "a\r\n.\r\n"},
        {"\r.\r\n", "a\r\n.\r\n"},
        {"\r\n.\n", "a\r\n.\r\n"},
        {"\r.\r", "a\r\n.\r\n"},
        {"\n.\r", "a\r\n.\r\n"},
        {"\r\n.\r", "a\r\n.\r\n"},
        {"\r\n.\rX", "a\r\n.\r\nX"},
        {"\r\r\n.\r\r\n", "a\r\n\r\n.\r\n\r\n"},
    };
    const std::string smuggled =
        "MAIL FROM:<admin@victim.example>\r\nRCPT TO:<v@victim.example>\r\nDATA\r\nforged\r\n";
    for (const auto& c : cases) {
        for (auto mode : kModes) {
            INFO(Catch::Detail::stringify(std::string(c.end))
                 << (mode == BareLineEndings::Reject ? " reject" : " normalise"));
            std::string in = std::string("a") + c.end + smuggled + ".\r\nQUIT\r\n";
            auto o = read_all_ways(in, mode);
            // Only the real CRLF.CRLF ends it, and the pipelined commands stayed body.
            CHECK(o.done);
            CHECK(o.rest == "QUIT\r\n");
            CHECK(o.bare);
            if (mode == BareLineEndings::Normalise) CHECK(o.body == c.normalised + smuggled);
            else CHECK(std::string(c.normalised).substr(0, o.body.size() + 1) == o.body + "\r");
            // ^ with Reject the body stops at the bare ending: the message will be refused

            // Without the final real marker it is never done.
            auto open = read_all_ways(std::string("a") + c.end + smuggled, mode);
            CHECK_FALSE(open.done);
        }
    }
}

TEST_CASE("DATA: a normalised \".\" line is delivered as a line", "[smtp][data]") {
    auto o = read_all_ways("x\n.\nMAIL FROM:<a@b>\r\n.\r\n", BareLineEndings::Normalise);
    CHECK(o.done);
    CHECK(o.bare);
    CHECK(o.body == "x\r\n.\r\nMAIL FROM:<a@b>\r\n");

    // Bare endings at the very start, and a bare CR before a real CRLF.
    o = read_all_ways("\n.\n\r\r\n.\r\n", BareLineEndings::Normalise);
    CHECK(o.done);
    CHECK(o.body == "\r\n.\r\n\r\n\r\n");

    // ".\n" as the first line is not the end either.
    o = read_all_ways(".\n.\r\n", BareLineEndings::Normalise);
    CHECK_FALSE(o.done);
    CHECK(o.body == ".\r\n.\r\n");  // the second "." line follows a bare LF
    o = read_all_ways(".\n\r\n.\r\n", BareLineEndings::Normalise);
    CHECK(o.done);
    CHECK(o.body == ".\r\n\r\n");
}

TEST_CASE("DATA: bare line endings inside lines", "[smtp][data]") {
    auto o = read_all_ways("a\nb\rc\r\nd\r\n.\r\n", BareLineEndings::Normalise);
    CHECK(o.done);
    CHECK(o.bare);
    CHECK(o.body == "a\r\nb\r\nc\r\nd\r\n");
    CHECK(o.size == o.body.size());
    o = read_all_ways("x\r\na\nb\rc\r\nd\r\n.\r\n", BareLineEndings::Reject);
    CHECK(o.done);
    CHECK(o.bare);
    CHECK(o.body == "x\r\na");
    CHECK(o.size == 15);  // still counted
    auto clean = read_all_ways("a\r\nb\r\n.\r\n", BareLineEndings::Reject);
    CHECK_FALSE(clean.bare);
}

TEST_CASE("DATA: too big keeps reading to the end", "[smtp][data]") {
    DataLimits lim;
    lim.max_size = 10;
    auto o = read_all_ways("0123456789\r\nMAIL FROM:<x@y>\r\n.\r\nQUIT\r\n", BareLineEndings::Reject, lim);
    CHECK(o.done);
    CHECK(o.too_big);
    CHECK(o.rest == "QUIT\r\n");
    CHECK(o.size == 29);
    CHECK(o.body == "0123456789");  // exactly max_size bytes, whatever the split

    lim.max_size = 5;
    o = read_all_ways("abc\r\n.\r\n", BareLineEndings::Reject, lim);  // exactly 5: fine
    CHECK(o.done);
    CHECK_FALSE(o.too_big);
    CHECK(o.body == "abc\r\n");

    lim.max_size = 4;
    o = read_all_ways("abc\r\n.\r\n", BareLineEndings::Reject, lim);
    CHECK(o.done);
    CHECK(o.too_big);
    CHECK(o.body == "abc\r");

    // Byte by byte the body is never more than the limit.
    DataReader r(lim, BareLineEndings::Reject);
    std::string body;
    for (char c : std::string(1000, 'x')) body += r.feed(std::string_view(&c, 1)).body;
    CHECK(body == "xxxx");
    CHECK(r.size() == 1000);
}

TEST_CASE("DATA: long lines are counted, not refused", "[smtp][data]") {
    DataLimits lim;
    lim.max_line = 100;
    std::string line(5000, 'y');
    auto o = read(line + "\r\n.\r\n", BareLineEndings::Reject, {}, lim);
    CHECK(o.done);
    CHECK(o.long_line);
    CHECK(o.body == line + "\r\n");
    o = read(std::string(98, 'y') + "\r\n.\r\n", BareLineEndings::Reject, {}, lim);
    CHECK_FALSE(o.long_line);
}

TEST_CASE("bare_line_ending_reply", "[smtp][data]") {
    CHECK(bare_line_ending_reply("mx.example") == "550 5.5.2 mx.example Error: bare <LF> received");
}

TEST_CASE("LineEndingChecker", "[smtp][data]") {
    auto run = [](BareLineEndings mode, const std::vector<std::string>& chunks, bool& bare) {
        LineEndingChecker c(mode);
        std::string out;
        for (const auto& ch : chunks) out += c.feed(ch);
        out += c.finish();
        bare = c.bare_line_ending();
        return out;
    };
    bool bare = false;
    CHECK(run(BareLineEndings::Normalise, {"a\r\nb\r\n"}, bare) == "a\r\nb\r\n");
    CHECK_FALSE(bare);
    // CRLF split across chunks is not bare.
    CHECK(run(BareLineEndings::Normalise, {"a\r", "\nb\r", "\n"}, bare) == "a\r\nb\r\n");
    CHECK_FALSE(bare);
    CHECK(run(BareLineEndings::Reject, {"a\r", "\nb\r", "\n"}, bare) == "a\r\nb\r\n");
    CHECK_FALSE(bare);

    CHECK(run(BareLineEndings::Normalise, {"a\nb"}, bare) == "a\r\nb");
    CHECK(bare);
    CHECK(run(BareLineEndings::Normalise, {"a\r", "b"}, bare) == "a\r\nb");
    CHECK(bare);
    CHECK(run(BareLineEndings::Normalise, {"a\r\r\n"}, bare) == "a\r\n\r\n");
    CHECK(bare);
    CHECK(run(BareLineEndings::Normalise, {"a\r"}, bare) == "a\r\n");  // bare CR at the very end
    CHECK(bare);
    CHECK(run(BareLineEndings::Normalise, {"\n.\n"}, bare) == "\r\n.\r\n");
    CHECK(bare);

    // Reject passes bytes through unchanged and only reports.
    CHECK(run(BareLineEndings::Reject, {"a\nb\r", "c"}, bare) == "a\nb\rc");
    CHECK(bare);
    CHECK(run(BareLineEndings::Reject, {"a\r"}, bare) == "a\r");
    CHECK(bare);
    CHECK(run(BareLineEndings::Reject, {""}, bare).empty());
    CHECK_FALSE(bare);

    // Random bodies of CR, LF, "." and letters, cut at random places: the same as a plain
    // byte-by-byte model of the rules.
    auto model = [](BareLineEndings mode, const std::string& in, bool& bare) {
        std::string out;
        bare = false;
        for (std::size_t i = 0; i < in.size(); ++i) {
            bool crlf = in[i] == '\r' && i + 1 < in.size() && in[i + 1] == '\n';
            if (in[i] == '\r' || in[i] == '\n') {
                if (!crlf) bare = true;
                out += "\r\n";
                if (crlf) ++i;
            } else {
                out += in[i];
            }
        }
        return mode == BareLineEndings::Normalise ? out : in;
    };
    std::mt19937 rng(5);
    for (int round = 0; round < 2000; ++round) {
        std::string in;
        auto len = rng() % 40;
        for (std::size_t k = 0; k < len; ++k) in += "\r\n.ab"[rng() % 5];
        std::vector<std::string> chunks;
        for (std::size_t off = 0; off < in.size();) {
            auto n = 1 + rng() % 8;
            chunks.push_back(in.substr(off, n));
            off += n;
        }
        for (auto mode : kModes) {
            bool want_bare = false, got_bare = false;
            INFO("round " << round);
            CHECK(run(mode, chunks, got_bare) == model(mode, in, want_bare));
            CHECK(got_bare == want_bare);
        }
    }

    // Byte by byte equals whole.
    std::string in = "x\r\ny\nz\r\r\nw\r";
    for (auto mode : kModes) {
        bool b1 = false, b2 = false;
        std::vector<std::string> bytes;
        for (char c : in) bytes.emplace_back(1, c);
        CHECK(run(mode, {in}, b1) == run(mode, bytes, b2));
        CHECK(b1 == b2);
    }
}
