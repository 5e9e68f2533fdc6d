// libFuzzer target: arbitrary bytes as local parts, domains and addresses for the one rule that
// decides which names may become Maildir paths (server/mail_names), checked against the path
// safety it exists for: whatever passes can never climb out of DATA/mail/DOMAIN/LOCALPART.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/mail_names.hpp"

namespace {

using namespace pillarbox::names;

void require(bool ok) {
    if (!ok) __builtin_trap();
}

// What makes a name dangerous as one path component, whatever else the rule allows.
void check_path_safe(std::string_view s, std::size_t max) {
    require(!s.empty() && s.size() <= max);
    require(s != "." && s != "..");
    require(s.front() != '.' && s.back() != '.');
    require(s.find("..") == std::string_view::npos);
    require(s.find('/') == std::string_view::npos);
    require(s.find('\0') == std::string_view::npos);
    for (unsigned char c : s) require(c >= 0x20 && c != 0x7f);
    require(valid_utf8(s));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    if (valid_local_part(in)) check_path_safe(in, kMaxLocalPart);
    if (valid_domain(in)) check_path_safe(in, kMaxDomain);
    if (valid_address(in)) {
        auto at = in.rfind('@');
        require(at != std::string_view::npos);
        require(valid_local_part(in.substr(0, at)) && valid_domain(in.substr(at + 1)));
    }
    // The problem text and the verdict agree.
    require(local_part_problem(in).empty() == valid_local_part(in));
    require(domain_problem(in).empty() == valid_domain(in));
    return 0;
}
