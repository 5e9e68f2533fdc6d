// libFuzzer target: arbitrary bytes through the MIME message parser (default and tiny limits),
// structural invariants checked, JSON round trip exact; the same bytes fed to from_json.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocols/common/message_parser.hpp"

namespace {

using namespace pillarbox::mime;

void require(bool ok) {
    if (!ok) __builtin_trap();
}

struct Checker {
    const Message& top;
    std::size_t input_size;
    const Limits& limits;
    std::size_t parts = 0;

    void part(const Part& p, std::size_t depth) {
        ++parts;
        require(depth <= limits.max_depth);
        require(p.header_offset + p.header_size == p.body_offset);
        require(p.body_offset + p.body_size <= input_size);
        // What the IMAP layer relies on: containers always have something inside.
        require(p.is_multipart() == !p.children.empty());
        require((p.type == "message" && (p.subtype == "rfc822" || p.subtype == "global")) == bool(p.message));
        if (!p.is_multipart()) require(find_part(top, p.section) == &p);
        for (const auto& c : p.children) {
            require(c.header_offset >= p.body_offset);
            require(c.body_offset + c.body_size <= p.body_offset + p.body_size);
            part(c, depth + 1);
        }
        if (p.message) {
            const Message& m = *p.message;
            require(m.header_offset == p.body_offset);
            require(m.body_offset + m.body_size == p.body_offset + p.body_size);
            part(m.body, depth + 1);
        }
    }
};

void run(std::string_view text, const Limits& limits) {
    Message m = parse_message(text, limits);
    require(m.header_offset == 0 && m.size() == text.size());
    Checker check{m, text.size(), limits};
    check.part(m.body, 0);
    require(check.parts <= limits.max_parts);
    require(m.headers.size() <= limits.max_header_fields);

    std::string json = to_json(m);
    auto back = from_json(json);
    require(back.has_value() && *back == m);
    require(to_json(*back) == json);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    run(text, Limits{});
    Limits tiny;  // reaches every limit path with short inputs
    tiny.max_depth = 3;
    tiny.max_parts = 6;
    tiny.max_header_bytes = 200;
    tiny.max_header_fields = 5;
    tiny.max_addresses = 4;
    run(text, tiny);
    from_json(text);  // must refuse garbage, never crash
    return 0;
}
