// Line and literal framing (see line_framer.hpp).
#include "protocols/common/line_framer.hpp"

#include <algorithm>

namespace pillarbox::protocols {

LineFramer::Item LineFramer::next(std::string_view data) {
    using K = Item::Kind;
    if (literal_ > 0) {
        if (data.empty()) return {};
        std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(literal_, data.size()));
        literal_ -= take;
        return {K::Literal, data.substr(0, take), take};
    }
    auto nl = data.find('\n');
    if (nl == std::string_view::npos) {
        // Without its LF the line can still fit while it is shorter than the limit (it may end
        // in the CR of its CRLF); beyond that it can't, whatever comes.
        if (data.size() < limit_) return {};
        if (skipping_) return {K::Skipped, {}, data.size()};
        skipping_ = true;
        return {K::TooLong, {}, data.size()};
    }
    std::string_view line = data.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (skipping_) {
        skipping_ = false;
        return {K::Skipped, {}, nl + 1};
    }
    if (line.size() + 2 > limit_) return {K::TooLong, {}, nl + 1};
    return {K::Line, line, nl + 1};
}

}  // namespace pillarbox::protocols
