// Turns a stored message into a POP3 multi-line response body (RFC 1939 section 3): every line
// ends in CRLF (a file written by another program may use bare LF), lines starting with "." get
// one more ".", and the end is ".\r\n" on a line of its own. For TOP (RFC 1939 section 7) it
// stops after the header, the blank line and N body lines. Fed in chunks, so a message of any
// size streams through bounded memory. Pure: no I/O.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pillarbox::pop3 {

class MessageStream {
public:
    // body_lines: nullopt for RETR (the whole message), N for TOP msg N.
    explicit MessageStream(std::optional<std::uint64_t> body_lines = std::nullopt) : top_(body_lines) {
        if (top_ && *top_ == 0) stop_after_header_ = true;
    }

    // Appends the encoded form of the next bytes of the file to out.
    void feed(std::string_view chunk, std::string& out);
    // The file ended: completes the last line and appends the terminating ".\r\n".
    void finish(std::string& out);
    // TOP has everything it needs; the rest of the file need not be read.
    bool done() const { return stopped_; }

private:
    void end_line(std::string& out);

    std::optional<std::uint64_t> top_;
    bool stop_after_header_ = false;
    bool at_line_start_ = true;
    bool pending_cr_ = false;  // the last chunk ended in CR: CRLF or a bare CR, not known yet
    bool in_header_ = true;
    bool stopped_ = false;
    std::uint64_t body_lines_ = 0;
};

}  // namespace pillarbox::pop3
