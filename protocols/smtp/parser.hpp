// Pure SMTP command-line parsing: verbs, MAIL FROM / RCPT TO paths (RFC 5321 4.1.2), ESMTP
// parameters and their validation (SIZE, BODY, SMTPUTF8, DSN, REQUIRETLS, AUTH). No I/O, no state.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocols/smtp/reply.hpp"

namespace pillarbox::smtp {

// RFC 5321 4.5.3.1.1-3.
inline constexpr std::size_t kMaxLocalPart = 64;
inline constexpr std::size_t kMaxDomain = 255;
inline constexpr std::size_t kMaxPath = 256;  // including the angle brackets
inline constexpr std::size_t kMaxParams = 32;

struct Command {
    std::string verb;  // upper case
    std::string args;  // everything after the single space following the verb, as sent
};

// `line` is without its CRLF. The verb is the leading run of letters (RFC 5321 4.1.1: verbs are
// case-insensitive); it must be followed by end of line or a space, otherwise nullopt
// ("MAIL:" or "HELO\t" are not commands). nullopt also when the line does not start with a letter.
std::optional<Command> parse_command(std::string_view line);

// HTTP / proxy probes that Postfix drops the connection on (smtpd_forbidden_commands):
// "GET ", "POST ", "CONNECT ", "HEAD ", "PUT ", "User-Agent:", "Host:" (case-insensitive).
bool is_forbidden_command(std::string_view line);

struct Path {
    std::string local;   // unquoted form (quotes and backslash escapes removed)
    std::string domain;  // as sent (an address literal keeps its brackets); "" for <postmaster>
    bool null = false;   // <>
    bool quoted_local = false;
    bool had_source_route = false;
    // local@domain with the local part re-quoted if it is not a Dot-string; "postmaster" for
    // <postmaster>; "" for the null path.
    std::string address() const;
};

// The HELO/EHLO argument, trailing blanks removed. It goes into Received:, the log and the
// queue's envelope, which refuse control characters and bytes that are not UTF-8 (and fields
// over 2048 bytes): such a name is refused here with the reply to send, so that a session never
// accepts a name that a later step refuses. nullopt: acceptable.
std::optional<Reply> check_helo_name(std::string_view name, bool esmtp);

// Every non-ASCII character is well-formed UTF-8 (no overlong forms, surrogates or C1 controls).
bool valid_utf8(std::string_view s);

struct PathResult {
    std::optional<Path> path;  // set on success
    Reply error;               // set when !path
    std::string rest;          // parameters after the path, leading spaces removed
};

// `args` is Command::args of MAIL: "FROM:<a@b> SIZE=10". "FROM:" is case-insensitive, one space
// after the colon is tolerated ("FROM: <a@b>"), angle brackets are required, <> is accepted.
PathResult parse_mail_from(std::string_view args, bool smtputf8_allowed);
// `args` is Command::args of RCPT: "TO:<u@d> NOTIFY=NEVER". No null path; <postmaster>
// (any case, RFC 5321 4.1.1.3) is accepted as local "postmaster" with an empty domain.
PathResult parse_rcpt_to(std::string_view args, bool smtputf8_allowed);

struct Param {
    std::string keyword;  // upper case
    std::string value;    // as sent
    bool has_value = false;
};

// Space-separated esmtp-keyword["=" esmtp-value] (RFC 5321 4.1.2). Errors (error set to a
// short reason, nullopt returned): bad keyword or value characters, empty value after "=",
// duplicate keyword, more than kMaxParams. `utf8_allowed` admits UTF-8 in values (RFC 6531).
std::optional<std::vector<Param>> parse_params(std::string_view rest, std::string& error,
                                               bool utf8_allowed = false);

// RFC 3461 4: xchar except "+" and "=", or "+" two upper-case hex digits. Strict: nullopt for
// a malformed escape, lower-case hex, or a byte outside %d33-126.
std::optional<std::string> xtext_decode(std::string_view);
std::string xtext_encode(std::string_view);

// Which extensions the EHLO response offered: a parameter for one that was not offered is
// answered like an unknown one.
struct MailExtensions {
    bool size = true;
    bool eightbitmime = true;
    bool smtputf8 = true;
    bool dsn = true;
    bool requiretls = false;  // only offered over TLS (RFC 8689)
    bool auth = true;
    bool binarymime = false;
};

using ParamError = Reply;  // 555 5.5.4 unknown/not offered, 501 5.5.4 bad value

struct MailParams {
    std::optional<std::uint64_t> size;
    enum class Body { SevenBit, EightBit, Binary } body = Body::SevenBit;
    bool body_given = false;
    bool smtputf8 = false;
    std::string ret;    // "FULL" / "HDRS" / ""
    std::string envid;  // xtext-decoded
    bool requiretls = false;
    std::optional<std::string> auth;  // AUTH= xtext-decoded; "<>" kept as "<>"
};

struct RcptParams {
    enum Notify : unsigned { Never = 1, Success = 2, Failure = 4, Delay = 8 };
    unsigned notify = 0;  // bit set of Notify; 0 = not given
    std::string orcpt_type;  // addr-type as sent ("rfc822", "utf-8")
    std::string orcpt;       // xtext-decoded
};

std::variant<MailParams, ParamError> validate_mail_params(const std::vector<Param>&,
                                                          const MailExtensions& ext);
std::variant<RcptParams, ParamError> validate_rcpt_params(const std::vector<Param>&,
                                                          const MailExtensions& ext);

}  // namespace pillarbox::smtp
