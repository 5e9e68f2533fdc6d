// Splits a session's input into command lines (and, for IMAP, literals): pure, bounded, one
// definition of the line limit for every protocol. The Connection's buffer is the storage; the
// framer only says how much of it makes the next item.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pillarbox::protocols {

class LineFramer {
public:
    // limit: the longest line accepted, counting its CRLF (RFC 5321 4.5.3.1.4 and RFC 1939
    // section 3 both count it). A line may end in a bare LF; it is counted as if it had CRLF.
    explicit LineFramer(std::size_t limit) : limit_(limit) {}

    struct Item {
        enum class Kind {
            NeedMore,  // nothing complete yet: consumed is 0, call again when more bytes arrive
            Line,      // a line (without CR LF); consumed includes its line ending
            TooLong,   // a line over the limit: reported once, the rest of it is skipped
            Skipped,   // more of a too-long line thrown away (nothing to answer)
            Literal,   // literal mode: the next piece of the literal (may be part of it)
        };
        Kind kind = Kind::NeedMore;
        std::string_view data;  // the line or the literal piece; a view into the input
        std::size_t consumed = 0;
    };

    // The next item at the front of data (the session's unread input).
    Item next(std::string_view data);

    // The limit for the lines that follow (SASL responses may be longer than commands).
    void set_limit(std::size_t limit) { limit_ = limit; }
    std::size_t limit() const { return limit_; }

    // IMAP literals (RFC 9051 section 4.3): the next `octets` bytes are data, not lines; next()
    // hands them out as Literal pieces as they arrive, then goes back to lines.
    void expect_literal(std::uint64_t octets) { literal_ = octets; }
    std::uint64_t literal_remaining() const { return literal_; }

    // Forget a too-long line in progress (STARTTLS: the buffered input was dropped).
    void reset() {
        skipping_ = false;
        literal_ = 0;
    }

private:
    std::size_t limit_;
    bool skipping_ = false;
    std::uint64_t literal_ = 0;
};

}  // namespace pillarbox::protocols
