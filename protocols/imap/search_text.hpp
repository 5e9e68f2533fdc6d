// What SEARCH compares text and dates against (RFC 9051 6.4.4): header values with their RFC 2047
// encoded words decoded, the body's text parts decoded from their transfer encoding and charset,
// the Date: header's calendar day, and the case-insensitive substring match. Pure functions.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "protocols/common/message_parser.hpp"
#include "protocols/imap/parser.hpp"

namespace pillarbox::imap {

// A header value with RFC 2047 encoded words ("=?utf-8?q?...?=", "=?iso-8859-1?b?...?=")
// decoded to UTF-8; whitespace between adjacent encoded words is dropped (RFC 2047 section 6.2).
// Words in charsets that can't be converted, or malformed ones, stay as written.
std::string decode_header_value(std::string_view raw);

// The calendar day of an RFC 5322 date-time (section 3.3, with the obsolete forms of 4.3: two-
// and three-digit years, missing day of week, missing seconds, named zones, comments), as
// written: its own time zone, "disregarding time and timezone" (RFC 9051 6.4.4 SENTON).
// nullopt when it isn't a date.
std::optional<Date> header_date(std::string_view value);

// Text to search in for BODY: every text/* part (and the top-level body if it has no
// Content-Type) of the message, transfer-decoded (quoted-printable, base64) and converted from
// its charset to UTF-8; parts joined with a newline. message is the whole stored message,
// parsed its structure.
std::string body_text(std::string_view message, const mime::Message& parsed);

// Whether needle occurs in haystack, comparing without regard to case (RFC 9051 6.4.4: "case-
// insensitive", i;unicode-casemap as in RFC 5051: ASCII and the simple Unicode case folding of
// UTF-8 text). An empty needle matches everything.
bool contains_text(std::string_view haystack, std::string_view needle);

}  // namespace pillarbox::imap
