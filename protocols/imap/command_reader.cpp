// Splits IMAP input into whole commands and the literals inside them (see command_reader.hpp).
#include "protocols/imap/command_reader.hpp"

#include <algorithm>
#include <limits>

namespace pillarbox::imap {

namespace {

using Kind = CommandReader::Event::Kind;

struct Marker {
    std::size_t length = 0;     // its bytes at the end of the line, '~' included
    std::uint64_t size = 0;     // saturated: an announcement past 2^64 - 1 can't fit anyway
    bool synchronizing = true;
    bool binary = false;
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::uint64_t saturating_number(std::string_view digits) {
    constexpr auto max = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t v = 0;
    for (char c : digits) {
        auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (max - d) / 10) return max;
        v = v * 10 + d;
    }
    return v;
}

// A literal marker ends the line: "{" number64 ["+"] "}" (RFC 9051 section 9 literal, RFC 7888
// literal with "+"), optionally after "~" (RFC 3516 literal8). Only at the very end: the
// literal's bytes follow the line's CRLF (RFC 9051 section 4.3).
std::optional<Marker> find_marker(std::string_view line) {
    if (line.empty() || line.back() != '}') return std::nullopt;
    std::size_t i = line.size() - 1;
    Marker m;
    if (i > 0 && line[i - 1] == '+') {
        m.synchronizing = false;
        --i;
    }
    std::size_t digits_end = i;
    while (i > 0 && is_digit(line[i - 1])) --i;
    if (i == digits_end || i == 0 || line[i - 1] != '{') return std::nullopt;
    m.size = saturating_number(line.substr(i, digits_end - i));
    std::size_t start = i - 1;
    if (start > 0 && line[start - 1] == '~') {
        m.binary = true;
        --start;
    }
    m.length = line.size() - start;
    return m;
}

CommandReader::Event event(Kind kind, std::string_view text = {}) {
    CommandReader::Event e;
    e.kind = kind;
    e.text = text;
    return e;
}

}  // namespace

CommandReader::CommandReader(ReaderLimits limits) : limits_(limits), framer_(limits.line_length) {}

CommandReader::Event CommandReader::next(std::string_view data) {
    settle();
    std::size_t used = 0;
    for (;;) {
        // Each step either ends the call with an event or consumed input (so the loop ends).
        if (auto e = step(data.substr(used), used)) {
            e->consumed = used;
            return *e;
        }
    }
}

void CommandReader::keep_literal() {
    // Keeping a literal that doesn't fit would let a client past the limits: refuse it instead.
    if (state_ == State::Announced) choice_ = announced_.fits ? Choice::Keep : Choice::Refuse;
}

void CommandReader::stream_literal() {
    if (state_ == State::Announced) choice_ = Choice::Stream;
}

void CommandReader::refuse_literal() {
    if (state_ == State::Announced) choice_ = Choice::Refuse;
}

void CommandReader::reset() {
    framer_.reset();
    command_.clear();
    piece_.clear();
    state_ = State::Lines;
    choice_ = Choice::None;
    finished_ = false;
}

// What the last event and the session's choice after it leave to do.
void CommandReader::settle() {
    if (finished_) {
        command_.clear();
        finished_ = false;
    }
    if (choice_ == Choice::None) return;
    std::uint64_t size = announced_.literal_size;
    switch (choice_) {
        case Choice::Keep:
            // Always CRLF, even after a bare LF, so that the Decoder sees one form of literal.
            command_ += "\r\n";
            state_ = size > 0 ? State::Keeping : State::Lines;
            break;
        case Choice::Stream:
            command_.resize(command_.size() - marker_length_);
            state_ = size > 0 ? State::Streaming : State::StreamEnd;
            break;
        case Choice::Refuse:
            command_.clear();
            // A synchronising literal's client waits for "+", which never comes: it sends no
            // bytes and reads the tagged answer. A non-synchronising one's bytes are on the way
            // (RFC 7888 section 4: consume the command, literal included, or close).
            if (announced_.synchronizing) state_ = State::Lines;
            else state_ = size > 0 ? State::DiscardingLiteral : State::DiscardingLines;
            break;
        case Choice::None: break;
    }
    if (state_ == State::Keeping || state_ == State::Streaming || state_ == State::DiscardingLiteral)
        framer_.expect_literal(size);
    choice_ = Choice::None;
}

std::optional<CommandReader::Event> CommandReader::step(std::string_view rest, std::size_t& used) {
    switch (state_) {
        case State::Lines: return read_line(rest, used);
        case State::Announced: return announced_;  // no choice yet: the same question again
        case State::Keeping:
        case State::Streaming:
        case State::DiscardingLiteral: return read_literal(rest, used);
        case State::StreamEnd: state_ = State::Lines; return event(Kind::LiteralEnd);
        case State::DiscardingLines: return discard_line(rest, used);
    }
    return event(Kind::NeedMore);
}

std::optional<CommandReader::Event> CommandReader::read_line(std::string_view rest, std::size_t& used) {
    // An empty buffer is always "more needed" (the framer with a zero limit would call it too long).
    if (rest.empty()) return event(Kind::NeedMore);
    auto item = framer_.next(rest);
    using F = protocols::LineFramer::Item::Kind;
    switch (item.kind) {
        case F::NeedMore: return event(Kind::NeedMore);
        case F::TooLong:
            used += item.consumed;
            return too_long(too_long_prefix(rest, item.consumed));
        case F::Line:
            used += item.consumed;
            return on_line(item.data);
        case F::Skipped:  // the rest of a line already reported too long
        case F::Literal:  // not in this state (no literal is expected)
            used += item.consumed;
            return std::nullopt;
    }
    return event(Kind::NeedMore);
}

std::optional<CommandReader::Event> CommandReader::on_line(std::string_view line) {
    if (line.size() > limits_.command_size || command_.size() > limits_.command_size - line.size())
        return too_long(line);
    command_ += line;
    auto marker = find_marker(line);
    if (!marker) {
        finished_ = true;
        return event(Kind::Command, command_);
    }
    announced_ = event(Kind::Literal, std::string_view(command_).substr(0, command_.size() - marker->length));
    announced_.literal_size = marker->size;
    announced_.synchronizing = marker->synchronizing;
    announced_.binary = marker->binary;
    // Kept, the literal adds CRLF and its bytes to the command's text.
    std::size_t after_crlf = command_.size() + 2;
    announced_.fits = marker->size <= limits_.literal_size && after_crlf <= limits_.command_size &&
                      marker->size <= limits_.command_size - after_crlf;
    marker_length_ = marker->length;
    state_ = State::Announced;
    return announced_;
}

std::optional<CommandReader::Event> CommandReader::read_literal(std::string_view rest, std::size_t& used) {
    if (rest.empty()) return event(Kind::NeedMore);
    auto item = framer_.next(rest);
    if (item.kind != protocols::LineFramer::Item::Kind::Literal) return event(Kind::NeedMore);
    used += item.consumed;
    bool done = framer_.literal_remaining() == 0;
    switch (state_) {
        case State::Keeping:
            command_ += item.data;
            if (done) state_ = State::Lines;
            return std::nullopt;
        case State::Streaming:
            piece_.assign(item.data);
            if (done) state_ = State::StreamEnd;
            return event(Kind::LiteralData, piece_);
        default:
            if (done) state_ = State::DiscardingLines;
            return std::nullopt;
    }
}

// The lines of a command whose non-synchronising literal was refused: thrown away up to the
// command's end, with any further non-synchronising literals. A synchronising literal ends it:
// its client waits for a "+" that never comes and takes the tagged answer instead.
std::optional<CommandReader::Event> CommandReader::discard_line(std::string_view rest, std::size_t& used) {
    if (rest.empty()) return event(Kind::NeedMore);
    auto item = framer_.next(rest);
    using F = protocols::LineFramer::Item::Kind;
    if (item.kind == F::NeedMore) return event(Kind::NeedMore);
    used += item.consumed;
    state_ = State::Lines;
    if (item.kind == F::TooLong) return too_long(too_long_prefix(rest, item.consumed));
    if (item.kind != F::Line) return std::nullopt;
    auto marker = find_marker(item.data);
    if (marker && !marker->synchronizing) {
        framer_.expect_literal(marker->size);
        state_ = marker->size > 0 ? State::DiscardingLiteral : State::DiscardingLines;
    }
    return std::nullopt;
}

// The start of a too-long line, for the tag: the same bytes whether the line came whole or in
// pieces (the framer reports it once line_length bytes are in without a LF, or at its LF).
std::string_view CommandReader::too_long_prefix(std::string_view rest, std::size_t consumed) const {
    std::size_t keep = limits_.line_length > 2 ? limits_.line_length - 2 : 0;
    return rest.substr(0, std::min(consumed, keep));
}

CommandReader::Event CommandReader::too_long(std::string_view line_start) {
    command_ += line_start;
    finished_ = true;
    state_ = State::Lines;
    return event(Kind::TooLong, command_);
}

}  // namespace pillarbox::imap
