// Strict UTF-8 validation, one rule for every place that must refuse bad text before it is
// stored: mailbox names, queue envelopes, the parse cache's JSON.
#pragma once
#include <cstddef>
#include <string_view>

namespace pillarbox {

// Well-formed UTF-8 (RFC 3629 section 4): no overlong forms, no surrogates, nothing above
// U+10FFFF; the same set nlohmann::json's serializer accepts, so dump() never throws on it.
inline bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = 0;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c < 0x80) { ++i; continue; }
        if (c >= 0xc2 && c <= 0xdf) n = 1;
        else if (c == 0xe0) { n = 2; lo = 0xa0; }
        else if (c >= 0xe1 && c <= 0xec) n = 2;
        else if (c == 0xed) { n = 2; hi = 0x9f; }
        else if (c >= 0xee && c <= 0xef) n = 2;
        else if (c == 0xf0) { n = 3; lo = 0x90; }
        else if (c >= 0xf1 && c <= 0xf3) n = 3;
        else if (c == 0xf4) { n = 3; hi = 0x8f; }
        else return false;
        if (i + n >= s.size()) return false;
        for (std::size_t k = 1; k <= n; ++k) {
            auto d = static_cast<unsigned char>(s[i + k]);
            if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xbf)) return false;
        }
        i += n + 1;
    }
    return true;
}

}  // namespace pillarbox
