// RFC 5322 + MIME structure of a stored message: header fields, ENVELOPE, BODYSTRUCTURE and
// the byte ranges IMAP needs for BODY[section], computed once and kept as JSON in the index.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pillarbox::mime {

// Recursion in the parser (and in from_json) never goes deeper than this, whatever Limits say.
inline constexpr std::size_t max_depth_ceiling = 256;

// Bounds on what one parse may build. Beyond a limit the parser degrades: the container that
// would go too deep becomes an opaque part, extra parts are left out, extra header bytes and
// fields are not recorded. Offsets stay exact either way.
struct Limits {
    std::size_t max_depth = 32;                 // multipart / message/rfc822 nesting levels
    std::size_t max_parts = 1000;               // parts in the whole message, every level
    std::size_t max_header_bytes = 1024 * 1024; // of each header block, parsed into fields
    std::size_t max_header_fields = 1000;       // recorded per header block
    std::size_t max_addresses = 10000;          // per address header of an envelope
    std::string validate() const;               // empty when fine
};

// A value-semantics owning pointer (deep copy, deep ==): lets Part hold an embedded Message.
template <typename T>
class Box {
public:
    Box() = default;
    Box(const Box& o) : p_(o.p_ ? std::make_unique<T>(*o.p_) : nullptr) {}
    Box(Box&&) noexcept = default;
    Box& operator=(const Box& o) {
        if (this != &o) p_ = o.p_ ? std::make_unique<T>(*o.p_) : nullptr;
        return *this;
    }
    Box& operator=(Box&&) noexcept = default;
    ~Box() = default;
    T& emplace() { p_ = std::make_unique<T>(); return *p_; }
    void reset() { p_.reset(); }
    explicit operator bool() const { return p_ != nullptr; }
    T& operator*() { return *p_; }
    const T& operator*() const { return *p_; }
    T* operator->() { return p_.get(); }
    const T* operator->() const { return p_.get(); }
    friend bool operator==(const Box& a, const Box& b) { return a.p_ ? (b.p_ && *a.p_ == *b.p_) : !b.p_; }

private:
    std::unique_ptr<T> p_;
};

struct HeaderField {
    std::string name;         // as written, trailing blanks removed
    std::string value;        // unfolded (RFC 5322 2.2.3), leading/trailing blanks removed
    std::size_t offset = 0;   // of the field's first byte in the input
    std::size_t size = 0;     // raw bytes of the field including its folded lines and line end
    bool operator==(const HeaderField&) const = default;
};

// One entry of an IMAP address list. IMAP writes a group as a start marker (mailbox = group
// name, host NIL) and an end marker (mailbox and host NIL); kind says which one this is, so an
// empty domain of a plain mailbox ("root") must be written as "" and not as NIL.
struct Address {
    enum class Kind : std::uint8_t { mailbox, group_start, group_end };
    Kind kind = Kind::mailbox;
    std::string name;    // display name or group name, raw (RFC 2047 words not decoded)
    std::string route;   // obsolete source route "@a,@b", usually empty
    std::string local;   // local part as written, quotes kept: "john doe"
    std::string domain;  // empty when the address had none
    bool operator==(const Address&) const = default;
};

// RFC 9051 7.5.2 ENVELOPE. Absent header = nullopt / empty list. sender and reply_to already
// default to from as IMAP requires (absent or empty header).
struct Envelope {
    std::optional<std::string> date, subject, in_reply_to, message_id;
    std::vector<Address> from, sender, reply_to, to, cc, bcc;
    bool operator==(const Envelope&) const = default;
};

// A Content-Type / Content-Disposition parameter, RFC 2231 continuations joined and
// %-decoded. charset and language are set only when the value was RFC 2231 encoded; then value
// holds bytes in that charset.
struct Param {
    std::string name;  // lower-case, without the RFC 2231 "*n*" suffix
    std::string value;
    std::string charset;
    std::string language;
    bool operator==(const Param&) const = default;
};

struct Disposition {
    std::string type;  // lower-case: inline, attachment, ...
    std::vector<Param> params;
    bool operator==(const Disposition&) const = default;
};

// Why a part that says it is a container has no children / no embedded message. Such a part
// is turned into application/octet-stream so that "multipart has children" and "message/rfc822
// has a message" always hold for the IMAP layer.
enum class Opaque : std::uint8_t {
    none,
    too_deep,          // Limits::max_depth reached
    too_many_parts,    // Limits::max_parts reached before any child could be added
    no_boundary,       // multipart without a usable boundary parameter
    no_parts,          // multipart whose body holds no delimiter line of its boundary
    encoded_message,   // message/* with a base64 / quoted-printable encoding
};

struct Message;

struct Part {
    // IMAP section number (RFC 9051 6.4.5). The top-level non-multipart body is {1}; a
    // multipart that is a message body has no number of its own in IMAP and carries the number
    // of its message ({} at the top level), so its children are section + {i}.
    std::vector<std::uint32_t> section;
    std::size_t header_offset = 0, header_size = 0;  // MIME header incl. blank line: BODY[x.MIME]
    std::size_t body_offset = 0, body_size = 0;      // BODY[x]
    std::size_t body_lines = 0;  // LF count of the body, as Dovecot counts it; IMAP shows it
                                 // for text/* and message/rfc822 only
    std::string type = "text", subtype = "plain";    // lower-case
    std::vector<Param> params;                       // in header order
    std::optional<std::string> id, description, md5, location;  // raw, unfolded
    std::string encoding = "7bit";                   // lower-case Content-Transfer-Encoding
    std::optional<Disposition> disposition;
    std::vector<std::string> language;
    std::string boundary;            // multipart only
    std::vector<Part> children;      // multipart only; preamble and epilogue are not parts
    Box<Message> message;            // message/rfc822 and message/global only
    Opaque opaque = Opaque::none;
    bool children_truncated = false; // Limits::max_parts cut the list of children
    bool is_multipart() const { return type == "multipart"; }
    bool operator==(const Part&) const = default;
};

struct Message {
    std::size_t header_offset = 0, header_size = 0;  // BODY[HEADER], incl. the blank line
    std::size_t body_offset = 0, body_size = 0;      // BODY[TEXT]
    std::vector<HeaderField> headers;
    bool headers_truncated = false;  // max_header_bytes or max_header_fields cut the list
    Envelope envelope;
    Part body;  // the body, typed by the message's own Content-* fields
    std::size_t size() const { return body_offset + body_size - header_offset; }
    bool operator==(const Message&) const = default;
};

// Parses the whole message as stored (CRLF, bare LF or mixed). Never fails: broken input
// yields the most sensible structure, offsets always lie inside input.
Message parse_message(std::string_view input, const Limits& limits = {});

// The part an IMAP section number names, e.g. {1, 2} for BODY[1.2]; nullptr if there is none.
// For a message/rfc822 part, x.HEADER / x.TEXT are part->message's header and body ranges.
const Part* find_part(const Message& message, std::span<const std::uint32_t> section);

// "1.2.3"; empty for the top level.
std::string section_string(std::span<const std::uint32_t> section);

// The first field with this name (case-insensitive), or nullptr.
const HeaderField* find_header(const std::vector<HeaderField>& headers, std::string_view name);

// Exact round trip: from_json(to_json(m)) == m. Strings that are not valid UTF-8 are stored
// as {"hex": "..."}. from_json returns nullopt on malformed or foreign JSON (other version,
// missing keys, wrong types, nesting deeper than max_depth_ceiling).
std::string to_json(const Message& message);
std::optional<Message> from_json(std::string_view json);
// The same, but only the top level's header fields and offsets (envelope and body left empty):
// what a SEARCH by header needs, at a fraction of the cost.
std::optional<Message> headers_from_json(std::string_view json);
// The same into `into`, reusing the header fields (and their strings' storage) it already has:
// for a loop over many messages. Only the header fields and offsets are set. False: not a parse
// cache (into is then left in some state; don't use it).
bool headers_from_json(std::string_view json, Message& into);

}  // namespace pillarbox::mime
