// The one shape of an SMTP reply: what the client sees (code, enhanced status code, text).
// What went wrong inside goes to the log separately, never into the text (DESIGN.md).
#pragma once
#include <string>
#include <string_view>

namespace pillarbox::smtp {

struct Reply {
    int code = 0;
    std::string enhanced;  // "5.1.7" (RFC 3463), or "" for replies without one (220, 354)
    std::string text;
    std::string line() const;  // "501 5.1.7 text" without CRLF
    // A stored reply line ("503 5.5.1 text", as policy tables and the dispatcher give them)
    // back into its parts; a line without a code keeps it all as text.
    static Reply parse(std::string_view line);
};

}  // namespace pillarbox::smtp
