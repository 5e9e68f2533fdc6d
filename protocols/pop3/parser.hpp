// POP3 command lines (RFC 1939 section 3, RFC 2449 section 4): pure functions, no I/O.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pillarbox::pop3 {

struct Command {
    std::string verb;  // upper case
    std::string args;  // the rest of the line after one space, as sent (PASS keeps its spaces)
};

// A command line without its CRLF. nullopt: not a command (empty, or a keyword that is not
// 1..8 ASCII letters/digits).
std::optional<Command> parse_command(std::string_view line);

// Arguments split on spaces (RFC 1939: "separated by a single SPACE"; runs of spaces are
// tolerated).
std::vector<std::string_view> split_args(std::string_view args);

// A message number or line count: decimal digits only, at most 10, no sign. nullopt otherwise
// (or when it does not fit 32 bits).
std::optional<std::uint32_t> parse_number(std::string_view s);

// Expands Dovecot's pop3_uidl_format for one message: %u the UID, %v the UIDVALIDITY, %f the
// Maildir base file name (Courier-style UIDLs), %% a percent sign. As in Dovecot's var_expand,
// a width with a leading zero pads with zeros ("%08Xu"), one without keeps that many leading
// characters ("%2u"), and X (or x) prints lower-case hex: "%08Xu%08Xv" is Dovecot's default.
// Other characters are copied. The result is cut to 70 characters, the
// unique-id limit of RFC 1939 section 7, and bytes outside 0x21..0x7E are dropped.
std::string format_uidl(std::string_view format, std::uint32_t uid, std::uint32_t uidvalidity, std::string_view file_base);

// Whether the format is one format_uidl understands and that identifies messages (it names %u
// or %f): the check behind `pillarbox check` and the listener setup.
bool valid_uidl_format(std::string_view format);

}  // namespace pillarbox::pop3
