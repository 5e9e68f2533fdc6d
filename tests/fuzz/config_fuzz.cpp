// libFuzzer target: pillarbox.conf text through the parser, expansion, typed validation and
// listener lines. Must never crash, hang or grow without bound.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/config.hpp"
#include "server/listener_def.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace pillarbox::config;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    std::vector<Diagnostic> diags;
    Config c = Config::parse(text, "fuzz.conf", Environment{false, "fuzz.example"}, diags);
    for (auto& name : c.listener_names()) {
        auto l = parse_listener_line(c.get(name));
        if (l && c.setting(name)) c.with_overrides(l.value->overrides, *c.setting(name), diags);
    }
    parse_cidr_list(text);
    parse_endpoint(text);
    parse_size(text);
    parse_time(text);
    return 0;
}
