// libFuzzer target: the session core's LineFramer over arbitrary bytes, a limit, literal
// requests and chunk boundaries all chosen by the input. Checked: progress (an item consumes
// bytes unless it needs more), lines hold no LF and fit the limit with their CRLF, a too-long
// line is reported once, literals hand out exactly their octets, and the items are the same
// whether the input arrives whole or cut at the chosen points.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/common/line_framer.hpp"

namespace {

using pillarbox::protocols::LineFramer;
using K = LineFramer::Item::Kind;

void require(bool ok) {
    if (!ok) __builtin_trap();
}

// The items of data fed in pieces of the given sizes (0: the rest), as the Connection feeds a
// session: a growing buffer, consumed prefixes erased. A line "L:text", "TOO", literal bytes
// "B:x" one per byte (pieces may differ by cut), a line that asks for a literal requests one of
// (its length mod 64) octets.
std::vector<std::string> run(std::string_view data, std::size_t limit, const std::vector<std::size_t>& cuts) {
    LineFramer f(limit);
    std::vector<std::string> out;
    std::string buf;
    std::size_t at = 0, cut = 0;
    while (at < data.size() || !buf.empty()) {
        if (at < data.size()) {
            std::size_t n = cut < cuts.size() && cuts[cut] ? cuts[cut] : data.size() - at;
            ++cut;
            n = std::min(n, data.size() - at);
            buf.append(data.substr(at, n));
            at += n;
        }
        for (;;) {
            auto item = f.next(buf);
            if (item.kind == K::NeedMore) {
                require(item.consumed == 0);
                break;
            }
            require(item.consumed > 0 && item.consumed <= buf.size());
            if (item.kind == K::Line) {
                require(item.data.find('\n') == std::string_view::npos);
                require(item.data.size() + 2 <= limit);
                out.push_back("L:" + std::string(item.data));
                if (!item.data.empty() && item.data.back() == '}') f.expect_literal(item.data.size() % 64);
            } else if (item.kind == K::TooLong) {
                out.push_back("TOO");
            } else if (item.kind == K::Literal) {
                require(item.data.size() == item.consumed);
                for (char c : item.data) out.push_back(std::string("B:") + c);
            }
            buf.erase(0, item.consumed);
        }
        if (at >= data.size()) break;  // what's left needs more than there is
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size < 3) return 0;
    std::size_t limit = 3 + bytes[0] % 200;
    std::size_t ncuts = bytes[1] % 16;
    std::vector<std::size_t> cuts;
    std::size_t pos = 2;
    for (std::size_t i = 0; i < ncuts && pos < size; ++i) cuts.push_back(1 + bytes[pos++] % 37);
    std::string_view data(reinterpret_cast<const char*>(bytes) + pos, size - pos);
    auto whole = run(data, limit, {});
    auto pieces = run(data, limit, cuts);
    auto single = run(data, limit, std::vector<std::size_t>(data.size(), 1));
    require(whole == pieces);
    require(whole == single);
    return 0;
}
