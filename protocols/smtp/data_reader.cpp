// The SMTP DATA body reader and the BDAT line-ending checker. The one rule that matters for
// SMTP smuggling (CVE-2023-51764 class): only CRLF "." CRLF ends the data, never a variant.
#include "protocols/smtp/data_reader.hpp"

#include <cstring>

namespace pillarbox::smtp {

std::string bare_line_ending_reply(std::string_view myhostname) {
    std::string r = "550 5.5.2 ";
    r.append(myhostname);
    r += " Error: bare <LF> received";
    return r;
}

namespace {
// The first CR or LF at or after i, or npos. Two memchr scans of one line instead of
// find_first_of("\r\n"), which calls memchr once for every byte of the body.
std::size_t find_line_end(std::string_view s, std::size_t i) {
    if (i >= s.size()) return std::string_view::npos;
    const char* from = s.data() + i;
    std::size_t n = s.size() - i;
    const void* lf = std::memchr(from, '\n', n);
    std::size_t upto = lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - from) : n;
    const void* cr = std::memchr(from, '\r', upto);
    if (cr) return i + static_cast<std::size_t>(static_cast<const char*>(cr) - from);
    return lf ? i + upto : std::string_view::npos;
}
}  // namespace

DataReader::DataReader(DataLimits limits, BareLineEndings mode) : limits_(limits), mode_(mode) {}

void DataReader::emit(std::string& out, std::string_view bytes) {
    line_len_ += bytes.size();
    if (line_len_ > limits_.max_line) long_line_ = true;
    // Once the message is sure to be refused nothing more is kept (the body stops at exactly
    // max_size bytes, whatever the split), but its end must still be found so that what follows
    // is read as the next command.
    if (!too_big_ && limits_.max_size != 0 && size_ + bytes.size() > limits_.max_size) {
        too_big_ = true;
        if (!(bare_ && mode_ == BareLineEndings::Reject)) out.append(bytes.substr(0, limits_.max_size - size_));
    } else if (!too_big_ && !(bare_ && mode_ == BareLineEndings::Reject)) {
        out.append(bytes);
    }
    size_ += bytes.size();
}

// Ends the current line; a bare CR or LF is written as CRLF. A line that began after a bare
// ending can never be the "." of the end marker.
void DataReader::end_line(std::string& out, bool bare) {
    if (bare) bare_ = true;
    emit(out, "\r\n");
    clean_start_ = !bare;
    line_len_ = 0;
    state_ = State::LineStart;
}

DataReader::Result DataReader::feed(std::string_view in) {
    Result r;
    if (state_ == State::Done) {
        r.done = true;
        return r;
    }
    std::size_t i = 0;
    // Each branch either consumes bytes or changes state without consuming (the byte is then
    // looked at again in the new state), so the loop always makes progress.
    while (i < in.size()) {
        char c = in[i];
        switch (state_) {
        case State::LineStart:
            if (c == '.') {
                state_ = State::Dot;
                ++i;
            } else if (c == '\r') {
                state_ = State::Cr;
                ++i;
            } else if (c == '\n') {
                end_line(r.body, true);
                ++i;
            } else {
                state_ = State::Mid;
            }
            break;
        case State::Dot:
            if (c == '\r') {
                state_ = State::DotCr;
                ++i;
            } else if (c == '\n') {
                // "." ended by a bare LF ("\n.\n" or "\r\n.\n"): a body line holding a ".",
                // never the end.
                emit(r.body, ".");
                end_line(r.body, true);
                ++i;
            } else {
                // RFC 5321 4.5.2: the leading "." of a longer line is removed.
                state_ = State::Mid;
            }
            break;
        case State::DotCr:
            if (c == '\n') {
                ++i;
                if (clean_start_) {
                    state_ = State::Done;
                    r.done = true;
                    r.consumed = i;
                    return r;
                }
                // "\n.\r\n" or "\r.\r\n": the "." line began after a bare ending.
                emit(r.body, ".");
                end_line(r.body, false);
            } else {
                // ".\r" followed by anything but LF: the CR is bare ("\r\n.\rX", "\r\n.\r\r\n").
                emit(r.body, ".");
                end_line(r.body, true);
            }
            break;
        case State::Mid: {
            std::size_t j = find_line_end(in, i);
            std::size_t end = j == std::string_view::npos ? in.size() : j;
            if (end > i) emit(r.body, in.substr(i, end - i));
            i = end;
            if (j != std::string_view::npos) {
                ++i;
                if (in[j] == '\r') state_ = State::Cr;
                else end_line(r.body, true);
            }
            break;
        }
        case State::Cr:
            if (c == '\n') {
                ++i;
                end_line(r.body, false);
            } else {
                end_line(r.body, true);
            }
            break;
        case State::Done:
            r.done = true;
            r.consumed = i;
            return r;
        }
    }
    r.consumed = in.size();
    return r;
}

LineEndingChecker::LineEndingChecker(BareLineEndings mode) : mode_(mode) {}

std::string LineEndingChecker::feed(std::string_view chunk) {
    const bool normalise = mode_ == BareLineEndings::Normalise;
    std::string out;
    out.reserve(normalise ? chunk.size() + 1 : 0);
    std::size_t i = 0;
    if (pending_cr_ && !chunk.empty()) {
        // The CR that ended the previous chunk: a CRLF split in two, or a bare CR.
        pending_cr_ = false;
        if (chunk[0] == '\n') i = 1;
        else bare_ = true;
        if (normalise) out += "\r\n";
    }
    // From line end to line end (memchr), not byte by byte.
    while (i < chunk.size()) {
        std::size_t j = find_line_end(chunk, i);
        if (j == std::string_view::npos) {
            if (normalise) out.append(chunk.substr(i));
            break;
        }
        if (normalise) out.append(chunk.substr(i, j - i));
        if (chunk[j] == '\r' && j + 1 == chunk.size()) {
            pending_cr_ = true;  // decided by the next chunk's first byte
            break;
        }
        bool crlf = chunk[j] == '\r' && chunk[j + 1] == '\n';
        if (!crlf) bare_ = true;
        if (normalise) out += "\r\n";
        i = j + (crlf ? 2 : 1);
    }
    if (!normalise) out.assign(chunk);
    return out;
}

std::string LineEndingChecker::finish() {
    if (!pending_cr_) return {};
    pending_cr_ = false;
    bare_ = true;
    return mode_ == BareLineEndings::Normalise ? "\r\n" : "";
}

}  // namespace pillarbox::smtp
