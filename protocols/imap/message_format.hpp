// What FETCH shows of a message's structure (RFC 9051 section 7.5.2, RFC 3501 section 7.4.2):
// ENVELOPE, BODY and BODYSTRUCTURE from the parse cache (mime::Message), the byte ranges of
// BODY[section] (header field subsets included), and BINARY's decoded content (RFC 3516).
// Pure functions.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/common/message_parser.hpp"
#include "protocols/imap/grammar.hpp"

namespace pillarbox::imap {

// "(date subject (from) (sender) (reply-to) (to) (cc) (bcc) in-reply-to message-id)". utf8:
// 8-bit bytes may go in quoted strings (UTF8=ACCEPT / IMAP4rev2); otherwise they go as literals.
std::string format_envelope(const mime::Envelope& e, bool utf8);

// BODYSTRUCTURE (extended: with extension data) or BODY (not extended). utf8 also selects
// IMAP4rev2's grammar for message/global (envelope, structure and lines like message/rfc822);
// without it message/global is a basic body, as RFC 3501's grammar has it.
std::string format_body_structure(const mime::Message& m, bool extended, bool utf8);

// Where BODY[section] is in the message file: byte ranges to send in order (HEADER.FIELDS picks
// fields, each a range), or, when the content is not a plain run of the file (a header field
// subset always ends with the blank line, which may not be in the file as such), literal bytes
// to send in place. The parts are concatenated: the literal's size is total().
struct SectionContent {
    struct Piece {
        std::uint64_t offset = 0, size = 0;  // a range of the file, or
        std::string bytes;                   // these bytes when size == 0 and !bytes.empty()
    };
    std::vector<Piece> pieces;
    std::uint64_t total() const;
};

// nullopt: the section names a part that does not exist (RFC 9051 6.4.5: the result is then
// empty, "" — the caller sends NIL for BINARY and "" for BODY); so do HEADER, HEADER.FIELDS[.NOT]
// and TEXT after the number of a part that is not message/rfc822 or message/global, and MIME
// without a part number. Line ends are as stored: the caller converts LF to CRLF when it
// streams (the store keeps messages as received; see MessageInfo::rfc822_size). The blank line
// that ends a HEADER.FIELDS[.NOT] result is the bytes "\r\n".
std::optional<SectionContent> locate_section(const mime::Message& m, const Section& s);

// RFC 3516: the decoded content of a part for BINARY[part] (base64 and quoted-printable
// undone; 7bit/8bit/binary as they are). raw is the part's body bytes (locate_section's
// content). nullopt: an encoding BINARY can't undo (the reply is NO [UNKNOWN-CTE]).
std::optional<std::string> decode_part(std::string_view raw, std::string_view encoding);

}  // namespace pillarbox::imap
