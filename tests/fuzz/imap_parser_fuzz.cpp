// libFuzzer target: arbitrary bytes through IMAP's CommandReader, with limits, chunk boundaries
// and the session's keep / stream / refuse choices for each literal all taken from the input,
// then the Decoder's head and token readers over every command that comes out. Checked: the
// reader makes progress and stays within its limits, streamed literals are exactly their size,
// the events are the same whole, in pieces and byte by byte; a Decoder reader either takes its
// token or leaves the position alone with an error; what it reads quotes back to the same value,
// and sequence sets resolve to sorted, disjoint ranges within 1..star.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/imap/command_reader.hpp"
#include "protocols/imap/parser.hpp"

namespace {

using namespace pillarbox::imap;
using K = CommandReader::Event::Kind;

void require(bool ok) {
    if (!ok) __builtin_trap();
}

struct Run {
    std::vector<std::string> events;    // what the reader said, streamed pieces joined
    std::vector<std::string> commands;  // the Command texts
};

// The session's answer to the n-th literal: the same for the same events, however the input is cut.
char choice(std::uint8_t seed, std::size_t n, const CommandReader::Event& e) {
    switch ((seed + n * 7 + e.literal_size) % 3) {
        case 0: return 'k';
        case 1: return 's';
        default: return 'r';
    }
}

Run read_all(std::string_view data, ReaderLimits limits, std::uint8_t seed, const std::vector<std::size_t>& cuts) {
    CommandReader reader(limits);
    Run run;
    std::string buf;
    std::size_t at = 0, cut = 0, literals = 0, idle = 0;
    std::uint64_t streamed = 0, announced = 0;
    bool streaming = false;
    while (at < data.size()) {
        std::size_t n = cut < cuts.size() && cuts[cut] ? cuts[cut] : data.size() - at;
        ++cut;
        n = std::min(n, data.size() - at);
        buf.append(data.substr(at, n));
        at += n;
        for (;;) {
            auto e = reader.next(buf);
            require(e.consumed <= buf.size());
            // Events that take no input come one at a time (LiteralEnd), never forever.
            idle = e.consumed == 0 && e.kind != K::NeedMore ? idle + 1 : 0;
            require(idle < 3);
            std::string text(e.text);
            buf.erase(0, e.consumed);
            if (e.kind == K::NeedMore) break;
            switch (e.kind) {
                case K::Command:
                    require(text.size() <= limits.command_size);
                    require(!streaming);
                    run.events.push_back("C:" + text);
                    run.commands.push_back(text);
                    break;
                case K::TooLong:
                    require(text.size() <= limits.command_size + limits.line_length);
                    streaming = false;
                    run.events.push_back("T:" + text);
                    break;
                case K::Literal: {
                    require(!streaming);
                    require(text.size() <= limits.command_size);
                    if (e.fits) require(e.literal_size <= limits.literal_size);
                    char c = choice(seed, literals++, e);
                    run.events.push_back(std::string("L") + c + std::to_string(e.literal_size) + ":" + text);
                    if (c == 'k') reader.keep_literal();
                    else if (c == 's') {
                        reader.stream_literal();
                        streaming = true;
                        streamed = 0;
                        announced = e.literal_size;
                    } else reader.refuse_literal();
                    break;
                }
                case K::LiteralData:
                    require(streaming && !text.empty());
                    streamed += text.size();
                    require(streamed <= announced);
                    if (!run.events.empty() && run.events.back().rfind("D:", 0) == 0) run.events.back() += text;
                    else run.events.push_back("D:" + text);
                    break;
                case K::LiteralEnd:
                    require(streaming && streamed == announced);
                    streaming = false;
                    run.events.push_back("E");
                    break;
                case K::NeedMore: break;
            }
        }
    }
    return run;
}

// A Decoder reader: takes its token and moves on, or stays put and says why.
template <typename R>
bool checked(Decoder& d, R&& read) {
    std::size_t before = d.pos();
    bool had_error = !d.error().empty();
    bool ok = read();
    if (ok) require(d.pos() > before);
    else require(d.pos() == before && (!d.error().empty() || had_error));
    return ok;
}

void check_resolved(const SequenceSet& set, std::uint32_t star) {
    auto r = set.resolve(star);
    for (std::size_t i = 0; i < r.size(); ++i) {
        require(r[i].first >= 1 && r[i].first <= r[i].second && r[i].second <= star);
        if (i > 0) require(static_cast<std::uint64_t>(r[i - 1].second) + 1 < r[i].first);
    }
}

void decode(const std::string& text, std::uint8_t seed) {
    Decoder::Limits limits{static_cast<std::size_t>(seed % 6), static_cast<std::size_t>(1 + seed % 40), '/'};
    Decoder d(text, limits);
    auto head = d.head();
    if (!head) {
        require(!d.error().empty());
        return;
    }
    if (head->name.empty()) require(!d.error().empty());
    for (char c : head->name) require(!(c >= 'a' && c <= 'z'));
    std::uint32_t state = seed * 2654435761u + static_cast<std::uint32_t>(text.size());
    for (int step = 0; step < 64 && !d.at_end(); ++step) {
        state = state * 1103515245u + 12345u;
        bool utf8 = (state >> 20) & 1;
        switch ((state >> 24) % 18) {
            case 0: checked(d, [&] { return d.sp(); }); break;
            case 1: checked(d, [&] { return d.atom().has_value(); }); break;
            case 2:
                checked(d, [&] {
                    auto s = d.astring();
                    if (s) {
                        std::string quoted = quote_string(*s, utf8);
                        Decoder again(quoted, limits);
                        require(again.string() == *s && again.at_end());
                    }
                    return s.has_value();
                });
                break;
            case 3: checked(d, [&] { return d.string().has_value(); }); break;
            case 4: checked(d, [&] { return d.nstring().has_value(); }); break;
            case 5: checked(d, [&] { return d.number().has_value(); }); break;
            case 6: checked(d, [&] { return d.nz_number().has_value(); }); break;
            case 7: checked(d, [&] { return d.number64().has_value(); }); break;
            case 8:
                checked(d, [&] {
                    auto s = d.sequence_set();
                    if (s) {
                        require(s->saved ? s->ranges.empty() : !s->ranges.empty());
                        require(s->ranges.size() <= limits.max_sequence_ranges);
                        check_resolved(*s, state % 50);
                        check_resolved(*s, 0xFFFFFFFFu - state % 3);
                    }
                    return s.has_value();
                });
                break;
            case 9:
                checked(d, [&] {
                    auto m = d.mailbox(utf8);
                    if (m) {
                        std::string quoted = quote_mailbox(*m, utf8);
                        Decoder again(quoted, limits);
                        require(again.mailbox(utf8) == *m && again.at_end());
                    }
                    return m.has_value();
                });
                break;
            case 10: checked(d, [&] { return d.list_mailbox(utf8).has_value(); }); break;
            case 11: checked(d, [&] { return d.flag_list().has_value(); }); break;
            case 12: checked(d, [&] { return d.flag().has_value(); }); break;
            case 13: checked(d, [&] { return d.date_time().has_value(); }); break;
            case 14: checked(d, [&] { return d.date().has_value(); }); break;
            case 15: checked(d, [&] { return d.enter_list(); }); break;
            case 16: checked(d, [&] { return d.leave_list(); }); break;
            default: checked(d, [&] { return d.take_word("NIL"); }); break;
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size < 5) return 0;
    ReaderLimits limits;
    limits.line_length = 8 + bytes[0] % 120;
    limits.literal_size = bytes[1] % 64;
    limits.command_size = 16 + bytes[2] * 2u;
    std::uint8_t seed = bytes[3];
    std::size_t ncuts = bytes[4] % 16, pos = 5;
    std::vector<std::size_t> cuts;
    for (std::size_t i = 0; i < ncuts && pos < size; ++i) cuts.push_back(1 + bytes[pos++] % 37);
    std::string_view data(reinterpret_cast<const char*>(bytes) + pos, size - pos);

    auto whole = read_all(data, limits, seed, {});
    require(read_all(data, limits, seed, cuts).events == whole.events);
    require(read_all(data, limits, seed, std::vector<std::size_t>(data.size(), 1)).events == whole.events);
    for (const auto& command : whole.commands) decode(command, seed);
    return 0;
}
