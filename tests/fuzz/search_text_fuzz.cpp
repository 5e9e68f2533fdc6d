// libFuzzer target: SEARCH's text helpers over arbitrary bytes. The input is decoded as a header
// value (RFC 2047) and as a Date: (RFC 5322), parsed as a message whose text parts, header
// values and Date: go through body_text / decode_header_value / header_date, and split at a point
// it chooses into a haystack and a needle for contains_text. Checked beyond crashes: the sizes of
// what comes out stay within a small factor of what went in, text without "=?" decodes to itself,
// a date is a real calendar day in the years RFC 5322 allows and reads back the same when
// written out, and the matcher finds a UTF-8 needle wherever it is put, whatever the case of its
// ASCII letters.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "protocols/common/message_parser.hpp"
#include "protocols/imap/search_text.hpp"
#include "server/ascii.hpp"
#include "server/utf8.hpp"

namespace {

using namespace pillarbox;
using namespace pillarbox::imap;

void require(bool ok) {
    if (!ok) __builtin_trap();
}

std::string swap_ascii_case(std::string_view s) {
    std::string r(s);
    for (auto& c : r) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
        else if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    }
    return r;
}

void check_header(std::string_view value) {
    std::string decoded = decode_header_value(value);
    require(decoded.size() <= 4 * value.size());
    if (value.find("=?") == std::string_view::npos) require(decoded == value);
}

void check_date(std::string_view value) {
    auto d = header_date(value);
    if (!d) return;
    require(d->year >= 1900 && d->year <= 9999 && d->month >= 1 && d->month <= 12 && d->day >= 1);
    static constexpr int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    require(d->day <= days[d->month - 1]);
    bool leap = (d->year % 4 == 0 && d->year % 100 != 0) || d->year % 400 == 0;
    require(d->month != 2 || d->day != 29 || leap);
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    auto back = header_date(fmt::format("{} {} {} 12:00:00 +0000", d->day, months[d->month - 1], d->year));
    require(back && *back == *d);
}

// Every part's header values, as SEARCH HEADER / FROM / SUBJECT would look at them.
void check_headers(const mime::Message& m, std::size_t depth) {
    for (const auto& h : m.headers) {
        check_header(h.value);
        if (ascii_iequals(h.name, "Date")) check_date(h.value);
    }
    if (depth < 4 && m.body.message) check_headers(*m.body.message, depth + 1);
}

void check_match(std::string_view haystack, std::string_view needle) {
    bool found = contains_text(haystack, needle);
    // ASCII letters are never part of a multi-byte character: flipping their case changes
    // nothing, in either argument.
    require(contains_text(swap_ascii_case(haystack), needle) == found);
    require(contains_text(haystack, swap_ascii_case(needle)) == found);
    if (needle.empty()) require(found);
    if (valid_utf8(needle)) {
        // A needle of whole characters is found wherever it is put, since no byte around it
        // can join its first or last character.
        std::string around = std::string(haystack) + swap_ascii_case(needle) + std::string(haystack);
        require(contains_text(around, needle));
        // ... and so are its halves (cut at a character boundary) when it is found.
        std::size_t half = needle.size() / 2;
        while (half > 0 && (static_cast<unsigned char>(needle[half]) & 0xC0) == 0x80) --half;
        if (found) require(contains_text(haystack, needle.substr(0, half)) && contains_text(haystack, needle.substr(half)));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    check_header(text);
    check_date(text);

    mime::Message m = mime::parse_message(text);
    std::string body = body_text(text, m);
    // Each text part gives at most 4 bytes per byte of its own, plus a newline between parts.
    require(body.size() <= 5 * text.size());
    check_headers(m, 0);

    if (size > 0) {
        std::size_t cut = 1 + data[0] % size;  // haystack text[1, cut), needle the rest
        check_match(text.substr(1, cut - 1), text.substr(cut));
        check_match(body, text.substr(cut).substr(0, 64));
    }
    return 0;
}
