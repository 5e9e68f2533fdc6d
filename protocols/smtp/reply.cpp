// SMTP replies (see reply.hpp).
#include "protocols/smtp/reply.hpp"

namespace pillarbox::smtp {

std::string Reply::line() const {
    std::string r = std::to_string(code);
    r += ' ';
    if (!enhanced.empty()) r.append(enhanced).append(" ");
    r += text;
    return r;
}

Reply Reply::parse(std::string_view line) {
    Reply r{0, "", std::string(line)};
    if (line.size() < 4 || line[3] != ' ') return r;
    for (char c : line.substr(0, 3)) r.code = r.code * 10 + (c - '0');
    std::string_view rest = line.substr(4);
    auto sp = rest.find(' ');
    if (sp != std::string_view::npos && sp >= 5 && (rest[0] == '4' || rest[0] == '5') && rest[1] == '.') {
        r.enhanced.assign(rest.substr(0, sp));
        rest.remove_prefix(sp + 1);
    }
    r.text.assign(rest);
    return r;
}

}  // namespace pillarbox::smtp
