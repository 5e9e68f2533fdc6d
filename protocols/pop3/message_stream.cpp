// POP3 response encoding of a message (see message_stream.hpp).
#include "protocols/pop3/message_stream.hpp"

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
    while (i < in.size() && !stopped_) {
        if (at_line_start_ && in[i] == '.') out += '.';  // RFC 1939 section 3: byte-stuffing
        std::size_t end = in.find_first_of("\r\n", i);
        if (end == std::string_view::npos) {
            out.append(in.substr(i));
            at_line_start_ = false;
            return;
        }
        if (end > i) {
            out.append(in.substr(i, end - i));
            at_line_start_ = false;
        }
        if (in[end] == '\n') {
            end_line(out);
            i = end + 1;
        } else if (end + 1 >= in.size()) {
            pending_cr_ = true;  // CR at the end of this chunk
            return;
        } else if (in[end + 1] == '\n') {
            end_line(out);
            i = end + 2;
        } else {
            out += '\r';
            at_line_start_ = false;
            i = end + 1;
        }
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
