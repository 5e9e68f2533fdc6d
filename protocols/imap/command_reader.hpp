// Splits an IMAP client's input into whole commands (RFC 9051 sections 2.2 and 4.3): lines, and
// the literals that continue a command past its line ends. Pure and bounded: every line and every
// literal kept in memory is checked against a limit before it is read, so a client can't make the
// session buffer more than the limits say, and the session is told of each literal before its
// bytes come (to answer "+" or refuse a synchronising literal, or to stream APPEND's message
// instead of keeping it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocols/common/line_framer.hpp"

namespace pillarbox::imap {

struct ReaderLimits {
    std::size_t line_length = 0;     // imap_max_line_length: one line of a command, its CRLF counted
    std::uint64_t literal_size = 0;  // the largest literal kept as an argument (not APPEND's message)
    std::size_t command_size = 0;    // a whole command's text: its lines and kept literals
};

class CommandReader {
public:
    explicit CommandReader(ReaderLimits limits);

    struct Event {
        enum class Kind {
            NeedMore,     // nothing complete: call again when more input arrives (consumed may be > 0)
            Command,      // text is a whole command: its lines without the final CRLF, each kept
                          // literal inline after its marker and CRLF ("A1 LOGIN {3}\r\nbob pw")
            Literal,      // the command announces a literal: text is the command so far, without
                          // the marker. Call keep_literal, stream_literal or refuse_literal next
                          // (next() without a choice gives the same event again).
            LiteralData,  // streaming: the next piece of the literal is text
            LiteralEnd,   // streaming: the literal is complete; the command goes on (its text
                          // leaves the streamed literal out, marker included)
            TooLong,      // a line or the command is over its limit; text is what was read of
                          // the command, with the start of the too-long line (for its tag).
                          // Framing is lost: answer and close.
        };
        Kind kind = Kind::NeedMore;
        std::string_view text;      // valid until the next call
        std::size_t consumed = 0;   // bytes of the input used
        // Literal:
        std::uint64_t literal_size = 0;
        bool synchronizing = true;  // {n}: the client waits for "+"; {n+}: it doesn't (LITERAL+)
        bool binary = false;        // ~{n} (RFC 3516 literal8)
        bool fits = false;          // keep_literal is allowed (within literal_size and command_size)
    };

    // The next event from the front of data (the session's unread input).
    Event next(std::string_view data);

    // After a Literal event: its bytes become part of the command text (only when fits). A
    // synchronising literal needs the session's "+ " continuation first.
    void keep_literal();
    // After a Literal event: its bytes come out as LiteralData events, then LiteralEnd.
    void stream_literal();
    // After a Literal event: the command is dropped (the session answers it, tagged BAD or NO).
    // A synchronising literal is never sent by the client, so the next line is a new command; a
    // non-synchronising one is read and thrown away, with the rest of the command (its further
    // lines and literals), before the next command.
    void refuse_literal();

    // Forget everything buffered (STARTTLS: the input before the handshake is dropped).
    void reset();

private:
    enum class State {
        Lines,              // reading the command's next line
        Announced,          // a Literal event is out; the session's choice is awaited
        Keeping,            // the literal's bytes go into command_
        Streaming,          // the literal's bytes go out as LiteralData
        StreamEnd,          // LiteralEnd is the next event
        DiscardingLiteral,  // a refused non-synchronising literal's bytes are thrown away
        DiscardingLines,    // ... and then the rest of its command
    };
    enum class Choice { None, Keep, Stream, Refuse };

    std::optional<Event> step(std::string_view rest, std::size_t& used);
    std::optional<Event> read_line(std::string_view rest, std::size_t& used);
    std::optional<Event> on_line(std::string_view line);
    std::optional<Event> read_literal(std::string_view rest, std::size_t& used);
    std::optional<Event> discard_line(std::string_view rest, std::size_t& used);
    Event too_long(std::string_view line_start);
    std::string_view too_long_prefix(std::string_view rest, std::size_t consumed) const;
    void settle();

    ReaderLimits limits_;
    protocols::LineFramer framer_;
    std::string command_;        // the command so far: its lines and kept literals
    std::string piece_;          // LiteralData's bytes (a copy, so that the caller may drop its input)
    State state_ = State::Lines;
    Event announced_;            // the Literal event while the session chooses
    std::size_t marker_length_ = 0;
    // The session's choice and the end of a command take effect at the start of the next call,
    // so that the views of the last event stay valid until then.
    Choice choice_ = Choice::None;
    bool finished_ = false;
};

}  // namespace pillarbox::imap
