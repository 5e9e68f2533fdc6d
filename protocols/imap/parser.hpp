// IMAP command syntax (RFC 9051 section 9, RFC 3501 section 9): a Decoder that reads one whole
// command (from CommandReader) token by token, as each command's grammar asks. Pure; every
// reader either takes its token and returns it, or leaves the position alone, returns nullopt /
// false and says why in error().
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pillarbox::imap {

// sequence-set (RFC 9051 section 9): numbers, ranges in either order, '*', and '$' (RFC 5182
// SEARCHRES: the result saved by the last SEARCH ... RETURN (SAVE)).
struct SequenceSet {
    static constexpr std::uint32_t kStar = 0;  // '*' in a Range
    struct Range {
        std::uint32_t first = 0, last = 0;  // as written: 4:2 stays {4, 2}; kStar for '*'
        bool operator==(const Range&) const = default;
    };
    std::vector<Range> ranges;
    bool saved = false;  // '$': ranges is empty
    // Sorted, merged, inclusive ranges with '*' replaced by star (the largest number in use:
    // the message count, or the largest UID). RFC 9051 6.4.8: a UID range past star still
    // includes star ("*:4" and "4:*" are the same set; with no messages, star is 0 and nothing
    // results). Numbers above star are dropped.
    std::vector<std::pair<std::uint32_t, std::uint32_t>> resolve(std::uint32_t star) const;
    bool operator==(const SequenceSet&) const = default;
};

struct Date {  // a calendar day (SEARCH BEFORE/ON/SINCE ... compare days, RFC 9051 6.4.4)
    int year = 0, month = 0, day = 0;
    std::int64_t unix_day_start() const;  // 00:00:00 UTC of this day, unix seconds
    bool operator==(const Date&) const = default;
};

// tag SP command: a complete command's head.
struct CommandHead {
    std::string tag;   // 1*(ASTRING-CHAR except "+")
    std::string name;  // upper case; "UID FETCH" etc. for the UID forms (one space)
};

class Decoder {
public:
    struct Limits {
        std::size_t max_depth = 0;          // nesting of parenthesised lists (SEARCH, FETCH, ...)
        std::size_t max_sequence_ranges = 0;  // ranges in one sequence-set
        char separator = '/';               // the hierarchy separator, for INBOX's case rule
    };
    // The Decoder reads text in place: it must outlive the Decoder. A temporary string would
    // not, so that is refused at compile time (a string literal is fine).
    Decoder(std::string_view text, Limits limits);
    Decoder(const char* text, Limits limits) : Decoder(std::string_view(text), limits) {}
    Decoder(std::string&& text, Limits limits) = delete;

    // The head. nullopt: no valid tag (the reply is "* BAD"); a tag but no valid command name
    // sets error() and returns the tag with an empty name (the reply is "<tag> BAD").
    std::optional<CommandHead> head();

    bool at_end() const;
    std::size_t pos() const;
    const std::string& error() const;

    bool sp();                 // exactly one space
    bool take(char c);         // that character
    bool peek(char c) const;
    bool take_word(std::string_view word);  // an atom equal to word, ASCII case-insensitive
    bool peek_word(std::string_view word) const;  // take_word's test, without taking or failing
    std::string_view rest() const;               // the text not read yet (for lookahead)
    void skip(std::size_t n);                    // takes n bytes the caller saw in rest()

    std::optional<std::string> atom();      // 1*ATOM-CHAR
    std::optional<std::string> string();    // quoted or literal (literal8 too)
    std::optional<std::string> astring();   // 1*ASTRING-CHAR or string
    // nstring: std::nullopt inside = NIL.
    std::optional<std::optional<std::string>> nstring();
    std::optional<std::uint32_t> number();      // 32-bit
    std::optional<std::uint32_t> nz_number();   // 32-bit, non-zero
    std::optional<std::uint64_t> number64();    // RFC 9051 number64 (mod-sequence values)
    std::optional<SequenceSet> sequence_set();
    // mailbox: astring; "INBOX" in any case becomes "INBOX". utf8: names are UTF-8 (UTF8=ACCEPT
    // enabled, or IMAP4rev2) instead of modified UTF-7; either way the result is UTF-8.
    std::optional<std::string> mailbox(bool utf8);
    // list-mailbox: 1*list-char ('%' and '*' allowed) or string; decoded like mailbox().
    std::optional<std::string> list_mailbox(bool utf8);
    // "(" [flag *(SP flag)] ")" with flags as written ("\\Seen", "$Forwarded", "work").
    // "\Recent" is refused, in any case: its users, STORE and APPEND, may not set it (RFC 3501
    // section 2.3.2; SEARCH's keys don't read flags this way).
    std::optional<std::vector<std::string>> flag_list();
    // One flag: "\" atom or a keyword atom ("\Recent" refused as above).
    std::optional<std::string> flag();
    // date-time: DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE, as
    // unix seconds.
    std::optional<std::int64_t> date_time();
    // date: date-text or DQUOTE date-text DQUOTE (SEARCH).
    std::optional<Date> date();
    // "(" ... ")" of atoms: ENABLE's capabilities and similar word lists are read one atom at a
    // time by the caller; this is the nesting guard for callers that recurse.
    bool enter_list();   // takes "(", false past Limits::max_depth
    bool leave_list();   // takes ")"
    // One level deeper without parentheses (SEARCH's NOT and OR nest too): false past
    // Limits::max_depth. unnest() goes back up.
    bool nest();
    void unnest();

    void fail(std::string message);  // sets error() (keeps the first)

private:
    struct Scanned;
    Scanned scan_number(std::uint64_t max) const;
    std::optional<std::uint64_t> read_number(std::uint64_t max, bool nonzero);
    std::optional<std::uint32_t> seq_number();
    std::optional<std::string> quoted();
    std::optional<std::string> literal();
    std::optional<std::string> list_mailbox_raw();
    std::optional<std::string> mailbox_name(std::string raw, bool utf8);
    std::optional<std::pair<Date, std::size_t>> date_text(std::size_t at, bool fixed_day) const;
    std::string_view run(bool (*accept)(unsigned char), std::size_t from) const;
    bool failed_at(std::size_t start, std::string message);

    std::string_view text_;
    std::size_t pos_ = 0;
    std::size_t depth_ = 0;
    Limits limits_;
    std::string error_;
};

// Quoting for responses: a quoted string when the value allows it (no CR, LF, NUL, at most
// a few hundred bytes, and 8-bit only when utf8), otherwise a literal "{n}\r\n..."
std::string quote_string(std::string_view value, bool utf8);
std::string nstring(const std::optional<std::string>& value, bool utf8);  // NIL or quote_string
// A mailbox name as IMAP writes it: modified UTF-7 unless utf8, quoted when needed.
std::string quote_mailbox(std::string_view utf8_name, bool utf8);
// The date-time of INTERNALDATE: "17-Jul-1996 02:44:25 -0700", in the server's time zone.
std::string format_date_time(std::int64_t unix_seconds);

}  // namespace pillarbox::imap
