// Local part and domain name validation (see mail_names.hpp).
#include "mail_names.hpp"
#include "server/utf8.hpp"

#include <fmt/format.h>

namespace pillarbox::names {

bool valid_utf8(std::string_view s) { return pillarbox::valid_utf8(s); }

namespace {

bool control(unsigned char c) { return c < 0x20 || c == 0x7f; }

}  // namespace

std::string local_part_problem(std::string_view s) {
    if (s.empty()) return "empty local part";
    if (s.size() > kMaxLocalPart) return fmt::format("local part longer than {} bytes", kMaxLocalPart);
    if (!valid_utf8(s)) return "local part is not UTF-8";
    for (unsigned char c : s) {
        if (control(c)) return "control character in the local part";
        if (c == ' ') return "space in the local part";
        if (std::string_view("\"(),:;<>@[]\\/").find(static_cast<char>(c)) != std::string_view::npos)
            return fmt::format("'{}' in the local part", static_cast<char>(c));
    }
    if (s.front() == '.') return "local part starts with a dot";
    if (s.back() == '.') return "local part ends with a dot";
    if (s.find("..") != std::string_view::npos) return "two dots in a row in the local part";
    return {};
}

std::string domain_problem(std::string_view s) {
    if (s.empty()) return "empty domain";
    if (s.size() > kMaxDomain) return fmt::format("domain longer than {} bytes", kMaxDomain);
    if (!valid_utf8(s)) return "domain is not UTF-8";
    for (unsigned char c : s)
        if (control(c)) return "control character in the domain";
    if (s.front() == '[') return "address literals can't name a mail domain here";
    if (s.front() == '.') return "domain starts with a dot";
    if (s.back() == '.') return "domain ends with a dot";
    std::size_t start = 0;
    while (start <= s.size()) {
        auto end = s.find('.', start);
        if (end == std::string_view::npos) end = s.size();
        auto label = s.substr(start, end - start);
        if (label.empty()) return "two dots in a row in the domain";
        if (label.size() > kMaxLabel) return fmt::format("domain label longer than {} bytes", kMaxLabel);
        for (unsigned char c : label) {
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c >= 0x80;
            if (!ok) return c == ' ' ? "space in the domain" : fmt::format("'{}' in the domain", static_cast<char>(c));
        }
        if (label.front() == '-' || label.back() == '-') return "domain label starts or ends with a hyphen";
        start = end + 1;
    }
    return {};
}

std::string address_problem(std::string_view address) {
    auto at = address.rfind('@');
    if (at == std::string_view::npos) return "no '@'";
    if (auto p = local_part_problem(address.substr(0, at)); !p.empty()) return p;
    return domain_problem(address.substr(at + 1));
}

}  // namespace pillarbox::names
