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
// Charsets are converted with iconv (any it knows; a "*language" suffix, RFC 2231 section 5, is
// ignored); bytes that are invalid in a known charset become U+FFFD. Adjacent words in one
// charset are converted together (a character may be split across them). Text outside encoded
// words is left as it is, 8-bit or not. Linear in raw's length; the result is at most 4 times it.
std::string decode_header_value(std::string_view raw);

// The calendar day of an RFC 5322 date-time (section 3.3, with the obsolete forms of 4.3: two-
// and three-digit years, missing day of week, missing seconds, named zones, comments), as
// written: its own time zone, "disregarding time and timezone" (RFC 9051 6.4.4 SENTON).
// nullopt when it isn't a date. Day names and month names may also be written in full, in any
// case; the time of day (hh:mm) must follow the year, what comes after it is not looked at;
// years before 1900 or after 9999 are not dates.
std::optional<Date> header_date(std::string_view value);

// Text to search in for BODY: every text/* part (and the top-level body if it has no
// Content-Type) of the message, transfer-decoded (quoted-printable, base64) and converted from
// its charset to UTF-8; parts joined with a newline. message is the whole stored message,
// parsed its structure.
// Text parts of embedded message/rfc822 (and message/global) parts count; HTML is searched as
// it is. us-ascii (the default), UTF-8 and charsets iconv doesn't know: the bytes as they are;
// others via iconv, invalid bytes as U+FFFD. The result is at most 5 times message's size.
std::string body_text(std::string_view message, const mime::Message& parsed);

// Whether needle occurs in haystack, comparing without regard to case (RFC 9051 6.4.4: "case-
// insensitive", i;unicode-casemap as in RFC 5051: ASCII and the simple Unicode case folding of
// UTF-8 text). An empty needle matches everything.
// Folding is Unicode's simple case folding (one character to one) for Latin (ASCII to Latin
// Extended-B, Latin Extended Additional, fullwidth), Greek and Cyrillic, built in and locale-free;
// other characters compare as they are. Bytes that are not well-formed UTF-8 compare as
// themselves. Knuth-Morris-Pratt: O(haystack + needle) time, O(needle) memory.
bool contains_text(std::string_view haystack, std::string_view needle);

}  // namespace pillarbox::imap
