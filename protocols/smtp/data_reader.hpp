// The SMTP DATA body reader (RFC 5321 4.1.1.4, 4.5.2 dot-stuffing) with the SMTP smuggling
// defence, and the bare CR/LF checker for BDAT chunks. Streaming, bounded, no I/O.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pillarbox::smtp {

struct DataLimits {
    // Very generous: RFC 5321 4.5.3.1.6 says 998+2, but Postfix accepts long lines and so do we;
    // the reader never buffers a line, so this only bounds what is counted as one line.
    // Lines longer than this are still accepted and delivered; see long_line().
    std::size_t max_line = 1000 * 1000;
    std::uint64_t max_size = 0;  // message_size_limit; 0 = none
};

// What to do with a bare LF or bare CR inside message data (Postfix smtpd_forbid_bare_newline).
enum class BareLineEndings { Reject, Normalise };

// Postfix's reply for a bare line ending (smtpd_forbid_bare_newline = reject; its
// smtpd_forbid_bare_newline_reject_code defaults to 550). No CRLF.
std::string bare_line_ending_reply(std::string_view myhostname);

class DataReader {
public:
    DataReader(DataLimits, BareLineEndings);

    struct Result {
        std::size_t consumed = 0;  // bytes of the input used; < input.size() only when done
        // Dot-unstuffed bytes to deliver, CRLF line endings (bare ones normalised). Bounded by the input: at most
        // 2 * input.size() + 2 (a bare LF grows to CRLF; a "." and CR held from the last feed).
        std::string body;
        bool done = false;         // saw CRLF.CRLF; consumed includes it
    };

    // Any split of the input is fine (byte by byte). After done, bytes after the end marker are
    // not consumed: they are the next pipelined command. Feeding after done returns {0, "", true}.
    Result feed(std::string_view input);

    bool done() const { return state_ == State::Done; }
    // More than max_size body bytes were seen: keep reading to the end, then 552 5.3.4.
    bool too_big() const { return too_big_; }
    // A bare CR or LF was seen. With Reject, answer bare_line_ending_reply() at the end; from
    // the bare ending on, feed() returns no more body (the message will not be delivered).
    bool bare_line_ending() const { return bare_; }
    // A line longer than max_line was seen (informational; such lines are delivered).
    bool long_line() const { return long_line_; }
    // Body bytes so far (after unstuffing, CRLF), counted even when too_big.
    std::uint64_t size() const { return size_; }

private:
    enum class State {
        LineStart,  // at the start of a line (the 354 reply acts as the CRLF before the first)
        Dot,        // a line began with "." (not yet emitted)
        DotCr,      // "." + CR at line start: CRLF.CR, the end marker if LF follows
        Mid,        // inside a line
        Cr,         // saw CR inside a line, LF may follow
        Done,
    };
    void emit(std::string& out, std::string_view bytes);
    void end_line(std::string& out, bool bare);

    DataLimits limits_;
    BareLineEndings mode_;
    State state_ = State::LineStart;
    // Whether the current line start was preceded by a real CRLF (or is the very first line).
    // A line begun after a bare CR/LF can never be the end marker's "." line.
    bool clean_start_ = true;
    bool too_big_ = false;
    bool bare_ = false;
    bool long_line_ = false;
    std::uint64_t size_ = 0;
    std::size_t line_len_ = 0;
};

// Bare CR / LF detection across BDAT chunk boundaries (RFC 3030 chunks carry exact byte
// counts, so no end marker and no dot-stuffing; only the line endings need checking).
class LineEndingChecker {
public:
    explicit LineEndingChecker(BareLineEndings);
    // Returns the bytes to store: the input as is with Reject; with Normalise bare CR and bare LF
    // become CRLF. A CR at the end of a chunk is held back until the next feed() or finish().
    std::string feed(std::string_view chunk);
    // After the LAST chunk: flushes a held-back CR (which was bare).
    std::string finish();
    bool bare_line_ending() const { return bare_; }

private:
    BareLineEndings mode_;
    bool pending_cr_ = false;
    bool bare_ = false;
};

}  // namespace pillarbox::smtp
