// POP3 response encoding of a message (see message_stream.hpp).
#include "protocols/pop3/message_stream.hpp"

#include <cstring>

namespace pillarbox::pop3 {

void MessageStream::end_line(std::string& out) {
    out += "\r\n";
    if (in_header_) {
        // The empty line that ends the header (RFC 5322 section 2.1).
        if (at_line_start_) {
            in_header_ = false;
            if (stop_after_header_) stopped_ = true;
        }
    } else if (top_ && ++body_lines_ >= *top_) {
        stopped_ = true;
    }
    at_line_start_ = true;
}

void MessageStream::feed(std::string_view in, std::string& out) {
    std::size_t i = 0;
    if (pending_cr_ && !in.empty() && !stopped_) {
        pending_cr_ = false;
        if (in[0] == '\n') {
            end_line(out);
            i = 1;
        } else {
            // A bare CR inside a line is content (RFC 5322 forbids it, but we send what is stored).
            out += '\r';
            at_line_start_ = false;
        }
    }
    // Line by line with memchr for LF (a CR not followed by LF is content). This loop is the
    // per-byte cost of RETR, so no per-character searches.
    while (i < in.size() && !stopped_) {
        if (at_line_start_ && in[i] == '.') out += '.';  // RFC 1939 section 3: byte-stuffing
        const char* base = in.data() + i;
        const void* hit = std::memchr(base, '\n', in.size() - i);
        if (!hit) {
            std::string_view rest = in.substr(i);
            if (rest.back() == '\r') {
                pending_cr_ = true;  // CRLF or a bare CR: the next chunk tells
                rest.remove_suffix(1);
            }
            if (!rest.empty()) at_line_start_ = false;
            out.append(rest);
            return;
        }
        std::size_t nl = static_cast<std::size_t>(static_cast<const char*>(hit) - in.data());
        std::size_t end = nl > i && in[nl - 1] == '\r' ? nl - 1 : nl;  // CRLF or bare LF
        if (end > i) {
            out.append(in.substr(i, end - i));
            at_line_start_ = false;
        }
        end_line(out);
        i = nl + 1;
    }
}

void MessageStream::finish(std::string& out) {
    if (!stopped_) {
        if (pending_cr_) {
            pending_cr_ = false;
            end_line(out);
        } else if (!at_line_start_) {
            end_line(out);  // a file without a final line ending still ends its last line
        }
    }
    out += ".\r\n";
}

}  // namespace pillarbox::pop3
