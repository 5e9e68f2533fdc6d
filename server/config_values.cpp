// Typed value parsing for pillarbox.conf (see config_values.hpp).
#include "config_values.hpp"
#include "ascii.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <fmt/format.h>

namespace pillarbox::config {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// Leading decimal digits of s; false on none or overflow.
bool leading_number(std::string_view& s, std::uint64_t& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc{} || p == s.data()) return false;
    s.remove_prefix(static_cast<std::size_t>(p - s.data()));
    return true;
}

bool mul_overflows(std::uint64_t a, std::uint64_t b) { return b != 0 && a > UINT64_MAX / b; }

}  // namespace

Parsed<bool> parse_bool(std::string_view text) {
    auto t = ascii_lower(trim(text));
    if (t == "yes" || t == "true" || t == "on" || t == "1") return Parsed<bool>::ok(true);
    if (t == "no" || t == "false" || t == "off" || t == "0") return Parsed<bool>::ok(false);
    return Parsed<bool>::fail(fmt::format("bad boolean value '{}' (use yes or no)", text));
}

Parsed<std::uint64_t> parse_size(std::string_view text) {
    std::string_view s = trim(text);
    std::uint64_t n = 0;
    if (!leading_number(s, n)) return Parsed<std::uint64_t>::fail(fmt::format("bad size '{}' (e.g. 10240000, 512k, 10M)", text));
    auto unit = ascii_lower(trim(s));
    std::uint64_t mult = 1;
    if (unit.empty() || unit == "b") mult = 1;
    else if (unit == "k" || unit == "kb" || unit == "kib") mult = 1024;
    else if (unit == "m" || unit == "mb" || unit == "mib") mult = 1024ull * 1024;
    else if (unit == "g" || unit == "gb" || unit == "gib") mult = 1024ull * 1024 * 1024;
    else if (unit == "t" || unit == "tb" || unit == "tib") mult = 1024ull * 1024 * 1024 * 1024;
    else return Parsed<std::uint64_t>::fail(fmt::format("bad size unit in '{}' (use k, M, G or T)", text));
    if (mul_overflows(n, mult)) return Parsed<std::uint64_t>::fail(fmt::format("size '{}' is too large", text));
    return Parsed<std::uint64_t>::ok(n * mult);
}

Parsed<std::chrono::milliseconds> parse_time(std::string_view text, char default_unit) {
    using R = Parsed<std::chrono::milliseconds>;
    std::string_view s = trim(text);
    std::uint64_t n = 0;
    if (!leading_number(s, n)) return R::fail(fmt::format("bad time '{}' (e.g. 300s, 5m, 1h)", text));
    auto unit = ascii_lower(trim(s));
    if (unit.empty()) unit = std::string(1, default_unit);
    std::uint64_t ms = 0;
    if (unit == "ms") ms = 1;
    else if (unit == "s") ms = 1000;
    else if (unit == "m") ms = 60'000;
    else if (unit == "h") ms = 3'600'000;
    else if (unit == "d") ms = 86'400'000;
    else if (unit == "w") ms = 604'800'000;
    else return R::fail(fmt::format("bad time unit in '{}' (use s, m, h, d or w)", text));
    if (mul_overflows(n, ms) || n * ms > static_cast<std::uint64_t>(INT64_MAX))
        return R::fail(fmt::format("time '{}' is too large", text));
    return R::ok(std::chrono::milliseconds(static_cast<std::int64_t>(n * ms)));
}

Parsed<std::uint64_t> parse_uint(std::string_view text, std::uint64_t min, std::uint64_t max) {
    std::string_view s = trim(text);
    std::uint64_t n = 0;
    if (!leading_number(s, n) || !s.empty()) return Parsed<std::uint64_t>::fail(fmt::format("bad number '{}'", text));
    if (n < min || n > max) return Parsed<std::uint64_t>::fail(fmt::format("{} is out of range {}..{}", n, min, max));
    return Parsed<std::uint64_t>::ok(n);
}

std::vector<std::string> split_list(std::string_view text) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : text) {
        if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
            if (!cur.empty()) out.push_back(std::move(cur));
            cur.clear();
        } else {
            cur.push_back(c);
        }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

bool Cidr::contains(const std::uint8_t* ip, bool ip_v6) const {
    if (ip_v6 != v6) return false;
    int full = prefix / 8, rest = prefix % 8;
    if (std::memcmp(ip, addr, static_cast<std::size_t>(full)) != 0) return false;
    if (rest == 0) return true;
    std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (ip[full] & mask) == (addr[full] & mask);
}

std::string Cidr::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(v6 ? AF_INET6 : AF_INET, addr, buf, sizeof buf);
    return v6 ? fmt::format("[{}]/{}", buf, prefix) : fmt::format("{}/{}", buf, prefix);
}

Parsed<Cidr> parse_cidr(std::string_view text) {
    using R = Parsed<Cidr>;
    std::string_view s = trim(text);
    std::string_view host = s, len;
    if (auto slash = s.rfind('/'); slash != std::string_view::npos) {
        host = s.substr(0, slash);
        len = s.substr(slash + 1);
    }
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    Cidr c;
    std::string h(host);
    if (inet_pton(AF_INET, h.c_str(), c.addr) == 1) c.v6 = false;
    else if (inet_pton(AF_INET6, h.c_str(), c.addr) == 1) c.v6 = true;
    else return R::fail(fmt::format("bad network address '{}'", text));
    int maxlen = c.v6 ? 128 : 32;
    c.prefix = maxlen;
    if (!len.empty() || s.find('/') != std::string_view::npos) {
        auto n = parse_uint(len, 0, static_cast<std::uint64_t>(maxlen));
        if (!n) return R::fail(fmt::format("bad prefix length in '{}'", text));
        c.prefix = static_cast<int>(*n.value);
    }
    // Postfix refuses host bits set below the prefix (a common typo); so do we.
    Cidr masked = c;
    for (int bit = c.prefix; bit < maxlen; ++bit) masked.addr[bit / 8] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
    if (std::memcmp(masked.addr, c.addr, 16) != 0)
        return R::fail(fmt::format("'{}' has host bits set below the prefix; did you mean {}?", text, masked.to_string()));
    return R::ok(c);
}

Parsed<std::vector<Cidr>> parse_cidr_list(std::string_view text) {
    std::vector<Cidr> out;
    for (auto& item : split_list(text)) {
        auto c = parse_cidr(item);
        if (!c) return Parsed<std::vector<Cidr>>::fail(c.error);
        out.push_back(*c.value);
    }
    return Parsed<std::vector<Cidr>>::ok(std::move(out));
}

Parsed<std::uint16_t> parse_port(std::string_view text) {
    auto n = parse_uint(text, 1, 65535);
    if (!n) return Parsed<std::uint16_t>::fail(fmt::format("bad port '{}' (1..65535)", text));
    return Parsed<std::uint16_t>::ok(static_cast<std::uint16_t>(*n.value));
}

std::string Endpoint::to_string() const {
    if (host.empty()) return std::to_string(port);
    if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
    return fmt::format("{}:{}", host, port);
}

Parsed<Endpoint> parse_endpoint(std::string_view text) {
    using R = Parsed<Endpoint>;
    std::string_view s = trim(text);
    Endpoint ep;
    std::string_view port = s;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find("]:");
        if (close == std::string_view::npos) return R::fail(fmt::format("bad address '{}' (use [IPv6]:PORT)", text));
        ep.host = std::string(s.substr(1, close - 1));
        port = s.substr(close + 2);
    } else if (auto colon = s.rfind(':'); colon != std::string_view::npos) {
        ep.host = std::string(s.substr(0, colon));
        port = s.substr(colon + 1);
        if (ep.host.find(':') != std::string::npos)
            return R::fail(fmt::format("bad address '{}' (write IPv6 addresses as [ADDR]:PORT)", text));
    }
    if (!ep.host.empty()) {
        std::uint8_t buf[16];
        if (inet_pton(AF_INET, ep.host.c_str(), buf) != 1 && inet_pton(AF_INET6, ep.host.c_str(), buf) != 1)
            return R::fail(fmt::format("bad address '{}': '{}' is not an IP address", text, ep.host));
    }
    auto p = parse_port(port);
    if (!p) return R::fail(fmt::format("bad address '{}': {}", text, p.error));
    ep.port = *p.value;
    return R::ok(ep);
}

std::string format_size(std::uint64_t bytes) { return std::to_string(bytes); }

std::string format_time(std::chrono::milliseconds t) {
    auto ms = t.count();
    if (ms % 1000 != 0) return fmt::format("{}ms", ms);
    return fmt::format("{}s", ms / 1000);
}

}  // namespace pillarbox::config
