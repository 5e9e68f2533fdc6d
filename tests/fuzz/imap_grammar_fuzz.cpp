// libFuzzer target: arbitrary bytes as the arguments of FETCH (and UID FETCH), SEARCH, STORE,
// STATUS, LIST, SELECT and APPEND, with the nesting and sequence-set limits and UTF-8 mode taken
// from the input. Checked beyond crashes: a success reads the whole text (APPEND's head too) and
// leaves no error behind, a failure always says why, SEARCH trees stay within the depth limit,
// sequence sets within their range limit, and no flag read for STORE or APPEND is \Recent.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocols/imap/grammar.hpp"

namespace {

using namespace pillarbox::imap;

void require(bool ok) {
    if (!ok) __builtin_trap();
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 32);
        if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 32);
        if (x != y) return false;
    }
    return true;
}

// Levels below the top-level And: parentheses, NOT and OR each count one.
std::size_t depth(const SearchKey& k) {
    std::size_t deepest = 0;
    for (const auto& c : k.children) deepest = std::max(deepest, depth(c));
    bool nests = k.kind == SearchKey::Kind::And || k.kind == SearchKey::Kind::Or || k.kind == SearchKey::Kind::Not;
    return deepest + (nests ? 1 : 0);
}

void check_set(const SequenceSet& s, const Decoder::Limits& l) {
    require(s.saved ? s.ranges.empty() : !s.ranges.empty() && s.ranges.size() <= l.max_sequence_ranges);
}

void check_flags(const std::vector<std::string>& flags) {
    for (const auto& f : flags) require(!f.empty() && !iequals(f, "\\Recent"));
}

template <typename T>
void outcome(const Decoder& d, const std::optional<T>& result, bool whole) {
    if (result) {
        require(d.error().empty());
        if (whole) require(d.at_end());
    } else {
        require(!d.error().empty());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size < 3) return 0;
    Decoder::Limits limits{static_cast<std::size_t>(bytes[1] % 8), static_cast<std::size_t>(1 + bytes[2] % 32),
                           (bytes[0] & 0x80) ? '.' : '/'};
    bool utf8 = bytes[0] & 0x40;
    std::string_view text(reinterpret_cast<const char*>(bytes) + 3, size - 3);
    Decoder d(text, limits);
    switch (bytes[0] % 8) {
        case 0:
        case 1: {
            auto r = parse_fetch(d, bytes[0] % 8 == 1);
            outcome(d, r, true);
            if (r) {
                require(!r->atts.empty());
                if (r->vanished) require(bytes[0] % 8 == 1 && r->changed_since);
            }
            break;
        }
        case 2: {
            auto r = parse_search(d);
            outcome(d, r, true);
            if (r) {
                require(r->key.kind == SearchKey::Kind::And && !r->key.children.empty());
                require(depth(r->key) <= limits.max_depth + 1);
                if (r->esearch) require(r->min || r->max || r->all || r->count || r->save);
            }
            break;
        }
        case 3: {
            auto r = parse_store(d);
            outcome(d, r, true);
            if (r) {
                check_set(r->set, limits);
                check_flags(r->flags);
            }
            break;
        }
        case 4: {
            auto r = parse_list(d, utf8);
            outcome(d, r, true);
            if (r) {
                require(!r->patterns.empty());
                if (r->recursive_match) require(r->subscribed || r->special_use);
            }
            break;
        }
        case 5: {
            auto r = parse_select(d, utf8);
            outcome(d, r, true);
            if (r && r->qresync) {
                require(r->qresync->uidvalidity != 0);
                if (r->qresync->known_uids) check_set(*r->qresync->known_uids, limits);
            }
            break;
        }
        case 6: {
            auto r = parse_status_items(d);
            outcome(d, r, false);
            if (r) require(!r->empty());
            break;
        }
        default: {
            auto r = parse_append_head(d, utf8, (bytes[0] & 0x20) != 0);
            outcome(d, r, true);
            if (r) check_flags(r->flags);
            break;
        }
    }
    return 0;
}
