// Client address tests shared by the listeners, the SMTP policy and the auth layer: CIDR
// membership (mynetworks, limit exceptions) and loopback, with IPv4-mapped IPv6 seen as IPv4.
#pragma once
#include <asio/ip/address.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "server/config_values.hpp"

namespace pillarbox {

inline asio::ip::address unmapped(const asio::ip::address& a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
    return a;
}

inline bool in_networks(const asio::ip::address& a, const std::vector<config::Cidr>& nets) {
    auto addr = unmapped(a);
    if (addr.is_v4()) {
        auto b = addr.to_v4().to_bytes();
        return std::any_of(nets.begin(), nets.end(), [&](const config::Cidr& n) { return n.contains(b.data(), false); });
    }
    auto b = addr.to_v6().to_bytes();
    return std::any_of(nets.begin(), nets.end(), [&](const config::Cidr& n) { return n.contains(b.data(), true); });
}

// Text forms ("192.0.2.1", "::ffff:127.0.0.1"); false when ip is not an address.
inline bool in_networks(const std::string& ip, const std::vector<config::Cidr>& nets) {
    std::error_code ec;
    auto a = asio::ip::make_address(ip, ec);
    return !ec && in_networks(a, nets);
}

// The key that per-client connection limits count by: an IPv4 address (IPv4-mapped IPv6
// included) as itself, an IPv6 address by its /64 ("2001:db8:1:2::/64"), since one host or
// customer usually holds a whole /64 and could otherwise vary its address without limit.
// The login throttle (auth/throttle.cpp) keys clients with it too.
inline std::string client_key(const asio::ip::address& a) {
    auto addr = unmapped(a);
    if (addr.is_v4()) return addr.to_string();
    auto b = addr.to_v6().to_bytes();
    std::fill(b.begin() + 8, b.end(), 0);
    return asio::ip::address_v6(b).to_string() + "/64";
}

// The same key from an address as text ("192.0.2.1", "[2001:db8::1]", "fe80::1%eth0": the zone
// names our interface, not the peer). Anything that is not an address (a Unix socket peer, "")
// is its own key.
inline std::string client_key(std::string_view ip) {
    std::string s(ip);
    if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
    if (auto pct = s.find('%'); pct != std::string::npos) s.resize(pct);
    std::error_code ec;
    auto a = asio::ip::make_address(s, ec);
    return ec ? std::string(ip) : client_key(a);
}

inline bool is_loopback(const std::string& ip) {
    std::error_code ec;
    auto a = asio::ip::make_address(ip, ec);
    return !ec && unmapped(a).is_loopback();
}

}  // namespace pillarbox
