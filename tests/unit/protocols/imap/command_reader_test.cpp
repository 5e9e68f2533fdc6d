// CommandReader: whole commands out of lines and literals, the same events at every split point
// of the input, literals kept, streamed and refused (synchronising or not), and the limits.
#include <catch2/catch.hpp>

#include <deque>
#include <limits>
#include <string>
#include <vector>

#include "protocols/imap/command_reader.hpp"

using pillarbox::imap::CommandReader;
using pillarbox::imap::ReaderLimits;
using K = CommandReader::Event::Kind;

namespace {

const ReaderLimits kLimits{64, 100, 200};

// What the session decides for each Literal event, in order: 'k'eep, 's'tream or 'r'efuse.
struct Choices {
    std::deque<char> order;
    char next() {
        if (order.empty()) return 'k';
        char c = order.front();
        order.pop_front();
        return c;
    }
};

// Feeds the chunks the way the Connection does (a buffer that grows, consumed prefixes erased)
// and records the events: "CMD:text", "LIT:text|size|sync or nonsync|binary?|fits?", "DATA:"
// (consecutive pieces joined, as they differ with the chunking), "END", "TOO:text".
std::vector<std::string> run_chunks(ReaderLimits limits, const std::vector<std::string>& chunks, std::string choices) {
    CommandReader r(limits);
    Choices ch{std::deque<char>(choices.begin(), choices.end())};
    std::vector<std::string> out;
    std::string buf;
    for (const auto& chunk : chunks) {
        buf += chunk;
        for (;;) {
            auto e = r.next(buf);
            REQUIRE(e.consumed <= buf.size());
            std::string text(e.text);
            buf.erase(0, e.consumed);
            if (e.kind == K::NeedMore) break;
            switch (e.kind) {
                case K::Command: out.push_back("CMD:" + text); break;
                case K::TooLong: out.push_back("TOO:" + text); break;
                case K::LiteralEnd: out.push_back("END"); break;
                case K::LiteralData:
                    REQUIRE(!text.empty());
                    if (!out.empty() && out.back().rfind("DATA:", 0) == 0) out.back() += text;
                    else out.push_back("DATA:" + text);
                    break;
                case K::Literal: {
                    out.push_back("LIT:" + text + "|" + std::to_string(e.literal_size) + "|" +
                                  (e.synchronizing ? "sync" : "nonsync") + (e.binary ? "|binary" : "") +
                                  (e.fits ? "|fits" : ""));
                    char c = ch.next();
                    if (c == 'k') r.keep_literal();
                    else if (c == 's') r.stream_literal();
                    else r.refuse_literal();
                    break;
                }
                case K::NeedMore: break;
            }
        }
    }
    return out;
}

std::vector<std::string> run(const std::string& input, std::string choices = "", ReaderLimits limits = kLimits) {
    return run_chunks(limits, {input}, choices);
}

// The events of the input whole must be those of every two-piece split and of byte-by-byte feeding.
std::vector<std::string> run_every_split(const std::string& input, std::string choices = "", ReaderLimits limits = kLimits) {
    auto whole = run(input, choices, limits);
    for (std::size_t cut = 1; cut < input.size(); ++cut) {
        INFO("split at " << cut);
        REQUIRE(run_chunks(limits, {input.substr(0, cut), input.substr(cut)}, choices) == whole);
    }
    std::vector<std::string> bytes;
    for (char c : input) bytes.emplace_back(1, c);
    REQUIRE(run_chunks(limits, bytes, choices) == whole);
    return whole;
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("commands without literals, CRLF or bare LF", "[imap][imap_reader]") {
    CHECK(run_every_split("A1 NOOP\r\nA2 CAPABILITY\nA3 LOGOUT\r\n") ==
          V{"CMD:A1 NOOP", "CMD:A2 CAPABILITY", "CMD:A3 LOGOUT"});
    // An empty line is an (empty) command: the session answers it.
    CHECK(run_every_split("\r\nA1 NOOP\r\n") == V{"CMD:", "CMD:A1 NOOP"});
    // Nothing complete without the line end.
    CHECK(run("A1 NOOP").empty());
    CHECK(run("A1 NOOP\r").empty());
}

TEST_CASE("kept literals go inline after their marker and CRLF", "[imap][imap_reader]") {
    CHECK(run_every_split("A1 LOGIN {3}\r\nbob {2}\r\npw\r\nA2 NOOP\r\n") ==
          V{"LIT:A1 LOGIN |3|sync|fits", "LIT:A1 LOGIN {3}\r\nbob |2|sync|fits", "CMD:A1 LOGIN {3}\r\nbob {2}\r\npw",
            "CMD:A2 NOOP"});
    // LITERAL+ and literal8 markers are kept as sent; a bare LF after a marker becomes CRLF.
    CHECK(run_every_split("A1 LOGIN {3+}\nbob ~{2}\npw\n") ==
          V{"LIT:A1 LOGIN |3|nonsync|fits", "LIT:A1 LOGIN {3+}\r\nbob |2|sync|binary|fits",
            "CMD:A1 LOGIN {3+}\r\nbob ~{2}\r\npw"});
    CHECK(run_every_split("A1 X ~{2+}\r\nab\r\n") == V{"LIT:A1 X |2|nonsync|binary|fits", "CMD:A1 X ~{2+}\r\nab"});
    // Literal bytes are not lines: CRLF, a marker or a whole command inside stay data.
    CHECK(run_every_split("A1 X {14}\r\nA2 LOGOUT\r\n{1}\r\n") ==
          V{"LIT:A1 X |14|sync|fits", "CMD:A1 X {14}\r\nA2 LOGOUT\r\n{1}"});
}

TEST_CASE("zero-length literals", "[imap][imap_reader]") {
    CHECK(run_every_split("A1 LOGIN {0}\r\n {0+}\r\n\r\nA2 NOOP\r\n") ==
          V{"LIT:A1 LOGIN |0|sync|fits", "LIT:A1 LOGIN {0}\r\n |0|nonsync|fits", "CMD:A1 LOGIN {0}\r\n {0+}\r\n",
            "CMD:A2 NOOP"});
    CHECK(run_every_split("A1 APPEND INBOX {0}\r\n\r\n", "s") == V{"LIT:A1 APPEND INBOX |0|sync|fits", "END", "CMD:A1 APPEND INBOX "});
}

TEST_CASE("streamed literals come out as data, and the command leaves them out", "[imap][imap_reader]") {
    CHECK(run_every_split("A1 APPEND INBOX (\\Seen) {12}\r\nhello\r\nworld\r\nA2 NOOP\r\n", "s") ==
          V{"LIT:A1 APPEND INBOX (\\Seen) |12|sync|fits", "DATA:hello\r\nworld", "END", "CMD:A1 APPEND INBOX (\\Seen) ",
            "CMD:A2 NOOP"});
    // MULTIAPPEND (RFC 3502): two messages in one command, the second non-synchronising.
    CHECK(run_every_split("A1 APPEND INBOX {5}\r\nhello {3+}\r\nabc\r\n", "ss") ==
          V{"LIT:A1 APPEND INBOX |5|sync|fits", "DATA:hello", "END", "LIT:A1 APPEND INBOX  |3|nonsync|fits", "DATA:abc",
            "END", "CMD:A1 APPEND INBOX  "});
    // A message larger than literal_size can still be streamed: only kept literals count.
    std::string big(500, 'x');
    CHECK(run_every_split("A1 APPEND INBOX {500}\r\n" + big + "\r\n", "s") ==
          V{"LIT:A1 APPEND INBOX |500|sync", "DATA:" + big, "END", "CMD:A1 APPEND INBOX "});
}

TEST_CASE("a refused synchronising literal drops its command; the client sends no bytes", "[imap][imap_reader]") {
    CHECK(run_every_split("A1 LOGIN {300}\r\nA2 NOOP\r\n", "r") == V{"LIT:A1 LOGIN |300|sync", "CMD:A2 NOOP"});
    // Refusing a literal that would fit is the session's right too (e.g. not authenticated).
    CHECK(run_every_split("A1 LOGIN {3}\r\nA2 NOOP\r\n", "r") == V{"LIT:A1 LOGIN |3|sync|fits", "CMD:A2 NOOP"});
}

TEST_CASE("a refused non-synchronising literal and the rest of its command are skipped", "[imap][imap_reader]") {
    // Its bytes (even ones that look like commands), its further lines and their literals.
    CHECK(run_every_split("A1 LOGIN {12+}\r\nA9 LOGOUT\r\n {3+}\r\nabc more {0+}\r\n\r\nA2 NOOP\r\n", "r") ==
          V{"LIT:A1 LOGIN |12|nonsync|fits", "CMD:A2 NOOP"});
    // A synchronising literal later in the command ends it: its client waits for a "+" that
    // never comes and reads the tagged answer instead.
    CHECK(run_every_split("A1 X {2+}\r\nab {5}\r\nA2 NOOP\r\n", "r") == V{"LIT:A1 X |2|nonsync|fits", "CMD:A2 NOOP"});
    // Too large to keep: refused, skipped all the same.
    std::string big(300, 'y');
    CHECK(run_every_split("A1 LOGIN {300+}\r\n" + big + "\r\nA2 NOOP\r\n", "r") == V{"LIT:A1 LOGIN |300|nonsync", "CMD:A2 NOOP"});
    // Zero-length refused: just the rest of the line.
    CHECK(run_every_split("A1 X {0+}\r\n rest\r\nA2 NOOP\r\n", "r") == V{"LIT:A1 X |0|nonsync|fits", "CMD:A2 NOOP"});
    // A later literal of the same command after a kept one: refusing drops what was kept.
    CHECK(run_every_split("A1 X {2}\r\nab {3+}\r\nabc\r\nA2 NOOP\r\n", "kr") ==
          V{"LIT:A1 X |2|sync|fits", "LIT:A1 X {2}\r\nab |3|nonsync|fits", "CMD:A2 NOOP"});
}

TEST_CASE("keep_literal on a literal that doesn't fit refuses it", "[imap][imap_reader]") {
    CHECK(run_every_split("A1 LOGIN {101+}\r\n" + std::string(101, 'z') + "\r\nA2 NOOP\r\n", "k") ==
          V{"LIT:A1 LOGIN |101|nonsync", "CMD:A2 NOOP"});
}

TEST_CASE("literal markers are only {digits} or {digits+} at the end of a line", "[imap][imap_reader]") {
    CHECK(run_every_split("A1 X {}\r\nA2 X {+}\r\nA3 X {1a}\r\nA4 X 5}\r\nA5 X {5} \r\nA6 X {-1}\r\n") ==
          V{"CMD:A1 X {}", "CMD:A2 X {+}", "CMD:A3 X {1a}", "CMD:A4 X 5}", "CMD:A5 X {5} ", "CMD:A6 X {-1}"});
    // Leading zeros are digits like any others; "~" alone before a marker makes it literal8.
    CHECK(run("A1 X {003}\r\nabc\r\n") == V{"LIT:A1 X |3|sync|fits", "CMD:A1 X {003}\r\nabc"});
    CHECK(run("~{1}\r\na\r\n") == V{"LIT:|1|sync|binary|fits", "CMD:~{1}\r\na"});
}

TEST_CASE("too-long lines are reported once with the start of the line, then reading goes on", "[imap][imap_reader]") {
    ReaderLimits l{20, 100, 200};
    std::string longline = "A1 " + std::string(40, 'x');
    // The text holds line_length - 2 bytes of the line, whole or in pieces.
    CHECK(run_every_split(longline + "\r\nA2 NOOP\r\n", "", l) == V{"TOO:A1 xxxxxxxxxxxxxxx", "CMD:A2 NOOP"});
    // 18 octets + CRLF = 20 fits; 19 + CRLF does not (LineFramer counts the CRLF).
    CHECK(run(std::string(18, 'a') + "\r\n", "", l) == V{"CMD:" + std::string(18, 'a')});
    CHECK(run(std::string(19, 'a') + "\r\n", "", l) == V{"TOO:" + std::string(18, 'a')});
    // A too-long line after a kept literal ("ab"): the text has the command so far.
    std::string tail = " " + std::string(17, 'c');
    CHECK(run_every_split("A1 X {2}\r\nab " + std::string(30, 'c') + "\r\nA2 NOOP\r\n", "", l) ==
          V{"LIT:A1 X |2|sync|fits", "TOO:A1 X {2}\r\nab" + tail, "CMD:A2 NOOP"});
    // In the lines of a refused command as well: framing is lost either way.
    CHECK(run_every_split("A1 X {2+}\r\nab " + std::string(30, 'c') + "\r\nA2 NOOP\r\n", "r", l) ==
          V{"LIT:A1 X |2|nonsync|fits", "TOO:" + tail, "CMD:A2 NOOP"});
}

TEST_CASE("the whole command is bounded by command_size", "[imap][imap_reader]") {
    ReaderLimits l{64, 50, 40};
    // "A1 X {20}" (9) + CRLF (2) + 20 = 31 <= 40: fits; {30} would make 41.
    CHECK(run("A1 X {20}\r\n" + std::string(20, 'a') + "\r\n", "", l) ==
          V{"LIT:A1 X |20|sync|fits", "CMD:A1 X {20}\r\n" + std::string(20, 'a')});
    CHECK(run("A1 X {29}\r\n", "r", l) == V{"LIT:A1 X |29|sync|fits"});
    CHECK(run("A1 X {30}\r\n", "r", l) == V{"LIT:A1 X |30|sync"});
    // A line that takes the command over the limit ends it.
    CHECK(run_every_split("A1 X {20}\r\n" + std::string(20, 'a') + " " + std::string(10, 'b') + "\r\nA2 NOOP\r\n", "", l) ==
          V{"LIT:A1 X |20|sync|fits", "TOO:A1 X {20}\r\n" + std::string(20, 'a') + " " + std::string(10, 'b'), "CMD:A2 NOOP"});
    CHECK(run(std::string(40, 'q') + "\r\n", "", l) == V{"CMD:" + std::string(40, 'q')});
    CHECK(run(std::string(41, 'q') + "\r\n", "", l) == V{"TOO:" + std::string(41, 'q')});
}

TEST_CASE("huge literal announcements don't overflow: they don't fit", "[imap][imap_reader]") {
    const auto max = std::numeric_limits<std::uint64_t>::max();
    for (std::string digits : std::vector<std::string>{"99999999999999999999", "18446744073709551616", "18446744073709551615",
                               std::string(40, '9')}) {
        CommandReader r(kLimits);
        std::string line = "A1 LOGIN {" + digits + "}\r\n";
        auto e = r.next(line);
        REQUIRE(e.kind == K::Literal);
        CHECK(e.literal_size == max);
        CHECK_FALSE(e.fits);
        CHECK(e.consumed == line.size());
        r.refuse_literal();
        CHECK(r.next("A2 NOOP\r\n").text == "A2 NOOP");
    }
    // Just below the limit of the type: exact, still too big.
    CommandReader r(kLimits);
    auto e = r.next("A1 X {18446744073709551614+}\r\n");
    CHECK(e.literal_size == max - 1);
    CHECK_FALSE(e.fits);
    CHECK_FALSE(e.synchronizing);
}

TEST_CASE("without a choice the Literal event comes again", "[imap][imap_reader]") {
    CommandReader r(kLimits);
    std::string in = "A1 LOGIN {3}\r\nbob\r\n";
    auto e = r.next(in);
    REQUIRE(e.kind == K::Literal);
    CHECK(e.consumed == 14);
    in.erase(0, e.consumed);
    auto again = r.next(in);
    CHECK(again.kind == K::Literal);
    CHECK(again.consumed == 0);
    CHECK(again.text == "A1 LOGIN ");
    r.keep_literal();
    auto c = r.next(in);
    CHECK(c.kind == K::Command);
    CHECK(c.text == "A1 LOGIN {3}\r\nbob");
}

TEST_CASE("event text stays valid after the caller drops its input", "[imap][imap_reader]") {
    CommandReader r(kLimits);
    std::string in = "A1 APPEND INBOX {4}\r\nabcd\r\n";
    auto lit = r.next(in);
    in.erase(0, lit.consumed);
    // The choice doesn't touch the text of the event it answers.
    r.stream_literal();
    CHECK(lit.text == "A1 APPEND INBOX ");
    auto data = r.next(in);
    REQUIRE(data.kind == K::LiteralData);
    std::string left = in.substr(data.consumed);
    in.assign(in.size(), '#');
    CHECK(data.text == "abcd");
    CHECK(r.next(left).kind == K::LiteralEnd);
    auto cmd = r.next(left);
    CHECK(cmd.kind == K::Command);
    CHECK(cmd.text == "A1 APPEND INBOX ");
}

TEST_CASE("NeedMore can consume input the reader throws away", "[imap][imap_reader]") {
    CommandReader r(kLimits);
    REQUIRE(r.next("A1 X {10+}\r\n").kind == K::Literal);
    r.refuse_literal();
    auto n = r.next("abcd");
    CHECK(n.kind == K::NeedMore);
    CHECK(n.consumed == 4);
    // The rest of the literal, the end of the command and a whole next command in one buffer.
    auto c = r.next("efghij\r\nA2 NOOP\r\n");
    CHECK(c.kind == K::Command);
    CHECK(c.text == "A2 NOOP");
    CHECK(c.consumed == 17);
}

TEST_CASE("NUL and 8-bit bytes pass through the reader; the Decoder judges them", "[imap][imap_reader]") {
    CHECK(run(std::string("A1 LOGIN a\0b \xc3\xa9\r\n", 17)) == V{"CMD:" + std::string("A1 LOGIN a\0b \xc3\xa9", 15)});
}

TEST_CASE("reset forgets a command in progress", "[imap][imap_reader]") {
    CommandReader r(kLimits);
    auto e = r.next("A1 LOGIN {3}\r\n");
    REQUIRE(e.kind == K::Literal);
    r.keep_literal();
    CHECK(r.next("b").kind == K::NeedMore);
    r.reset();
    auto c = r.next("A2 NOOP\r\n");
    CHECK(c.kind == K::Command);
    CHECK(c.text == "A2 NOOP");
}
