// Typed values of pillarbox.conf: bool, size, time, list, CIDR list, port and listen endpoints,
// parsed from the expanded text of a parameter. Pure functions; errors are messages, not throws.
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pillarbox::config {

template <typename T>
struct Parsed {
    std::optional<T> value;
    std::string error;  // set when value is empty
    static Parsed ok(T v) { return Parsed{std::move(v), {}}; }
    static Parsed fail(std::string e) { return Parsed{std::nullopt, std::move(e)}; }
    explicit operator bool() const { return value.has_value(); }
};

// yes/no, true/false, on/off, 1/0 (case-insensitive), like Postfix's boolean parameters.
Parsed<bool> parse_bool(std::string_view text);

// Bytes with an optional binary unit: 10240000, 512k, 10M, 1G, 10MB (case-insensitive).
Parsed<std::uint64_t> parse_size(std::string_view text);

// A duration: number with unit s, m, h, d, w (or ms); a bare number takes default_unit.
Parsed<std::chrono::milliseconds> parse_time(std::string_view text, char default_unit = 's');

Parsed<std::uint64_t> parse_uint(std::string_view text, std::uint64_t min, std::uint64_t max);

// Postfix list syntax: items separated by commas and/or whitespace.
std::vector<std::string> split_list(std::string_view text);

struct Cidr {
    bool v6 = false;
    std::uint8_t addr[16] = {};  // network byte order; v4 uses the first 4 bytes
    int prefix = 0;
    bool contains(const std::uint8_t* ip, bool ip_v6) const;
    std::string to_string() const;
};
// One network: 192.0.2.0/24, 192.0.2.1, [2001:db8::]/32, [::1], 2001:db8::/32.
Parsed<Cidr> parse_cidr(std::string_view text);
Parsed<std::vector<Cidr>> parse_cidr_list(std::string_view text);

Parsed<std::uint16_t> parse_port(std::string_view text);

// A listen address: "HOST:PORT", "[V6]:PORT", or "PORT" alone (host empty: every address of
// inet_interfaces).
struct Endpoint {
    std::string host;  // literal address, without brackets; empty = inet_interfaces
    std::uint16_t port = 0;
    std::string to_string() const;
    auto operator<=>(const Endpoint&) const = default;
};
Parsed<Endpoint> parse_endpoint(std::string_view text);

std::string format_size(std::uint64_t bytes);
std::string format_time(std::chrono::milliseconds t);

}  // namespace pillarbox::config
