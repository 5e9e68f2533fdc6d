// The argument grammars of the IMAP commands that have more than a name or two: FETCH, SEARCH,
// STORE, STATUS, LIST, SELECT/EXAMINE parameters, APPEND. Pure: each reads from a Decoder
// positioned after the command name (and its SP) and returns the request, or nullopt with the
// Decoder's error() saying why (the reply is "<tag> BAD <error>").
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "protocols/imap/parser.hpp"

namespace pillarbox::imap {

// ---- FETCH (RFC 9051 6.4.5, RFC 3516 BINARY, RFC 7162 CONDSTORE/QRESYNC) ----

struct Section {
    std::vector<std::uint32_t> part;  // 1.2.3; empty: the whole message
    enum class Text { None, Header, HeaderFields, HeaderFieldsNot, Text, Mime } text = Text::None;
    std::vector<std::string> fields;  // HEADER.FIELDS (...), as sent
    bool operator==(const Section&) const = default;
};

struct FetchAtt {
    enum class Kind {
        Envelope, Flags, InternalDate, Rfc822, Rfc822Header, Rfc822Size, Rfc822Text,
        Body,           // BODY without a section: BODYSTRUCTURE without extension data
        BodyStructure,
        Uid,
        BodySection,    // BODY[section]<partial> and BODY.PEEK[...]
        Binary,         // BINARY[part]<partial> and BINARY.PEEK[...]
        BinarySize,     // BINARY.SIZE[part]
        ModSeq,
    };
    Kind kind = Kind::Flags;
    bool peek = false;
    Section section;
    std::optional<std::pair<std::uint64_t, std::uint64_t>> partial;  // <origin.octets>
    bool operator==(const FetchAtt&) const = default;
};

struct FetchRequest {
    std::vector<FetchAtt> atts;  // macros ALL, FAST, FULL expanded; order as sent
    std::optional<std::uint64_t> changed_since;  // (CHANGEDSINCE n)
    bool vanished = false;                       // (VANISHED), UID FETCH only
};

// After "FETCH SP sequence-set SP": fetch-att / "(" fetch-att *(SP fetch-att) ")" / macro, then
// optional modifiers. uid: UID FETCH (VANISHED allowed).
std::optional<FetchRequest> parse_fetch(Decoder& d, bool uid);

// ---- SEARCH (RFC 9051 6.4.4, RFC 4731 ESEARCH, RFC 5182 SEARCHRES, RFC 7162 MODSEQ) ----

struct SearchKey {
    enum class Kind {
        All, And /* parenthesised list: children */, Or /* two children */, Not /* one child */,
        Answered, Deleted, Draft, Flagged, Seen, Recent, New, Old,
        Unanswered, Undeleted, Undraft, Unflagged, Unseen,
        Keyword, Unkeyword,                   // text = keyword
        Bcc, Cc, From, Subject, To, Body, Text,  // text = string
        Header,                               // header = field name, text = string
        Before, On, Since,                    // date: internal date
        SentBefore, SentOn, SentSince,        // date: Date: header
        Larger, Smaller,                      // number
        Uid,                                  // set
        SequenceSet,                          // set (message numbers)
        ModSeq,                               // number (RFC 7162; entry name/type ignored)
    };
    Kind kind = Kind::All;
    std::string text, header;
    std::uint64_t number = 0;
    Date date;
    SequenceSet set;
    std::vector<SearchKey> children;
};

struct SearchRequest {
    std::string charset;  // as given (upper-cased), "" when none; the session refuses all but UTF-8 and US-ASCII
    // RETURN (...): ESEARCH (RFC 4731). `esearch` is true when RETURN was given (even empty,
    // which means ALL).
    bool esearch = false;
    bool min = false, max = false, all = false, count = false, save = false;
    SearchKey key;  // an And of the keys sent
};

// After "SEARCH SP" (or "UID SEARCH SP"): [RETURN (...)] [CHARSET astring] search-key *(SP key).
std::optional<SearchRequest> parse_search(Decoder& d);

// ---- STORE (RFC 9051 6.4.6, RFC 7162 UNCHANGEDSINCE) ----

struct StoreRequest {
    SequenceSet set;
    std::optional<std::uint64_t> unchanged_since;
    enum class Op { Add, Remove, Replace } op = Op::Replace;
    bool silent = false;
    std::vector<std::string> flags;  // as sent ("\\Seen", keywords)
};

// After "STORE SP": sequence-set [SP "(" UNCHANGEDSINCE n ")"] SP ["+"/"-"] "FLAGS"[".SILENT"]
// SP (flag-list / flag *(SP flag)).
std::optional<StoreRequest> parse_store(Decoder& d);

// ---- STATUS (RFC 9051 6.3.11, RFC 8438 SIZE, RFC 7162 HIGHESTMODSEQ) ----

enum class StatusItem { Messages, Recent, UidNext, UidValidity, Unseen, Deleted, Size, HighestModSeq };

// "(" status-att *(SP status-att) ")"
std::optional<std::vector<StatusItem>> parse_status_items(Decoder& d);

// ---- LIST / LSUB (RFC 9051 6.3.9, RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154) ----

struct ListRequest {
    // Selection options: (SUBSCRIBED REMOTE RECURSIVEMATCH SPECIAL-USE)
    bool subscribed = false, remote = false, recursive_match = false, special_use = false;
    std::string reference;              // UTF-8
    std::vector<std::string> patterns;  // one, or a parenthesised list; UTF-8
    // Return options: RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (items))
    bool return_subscribed = false, return_children = false, return_special_use = false;
    std::optional<std::vector<StatusItem>> return_status;
    bool extended = false;  // any selection or return option was given (LIST-EXTENDED syntax)
};

// After "LIST SP". RFC 5258 section 3: RECURSIVEMATCH alone (without another selection option) is BAD.
std::optional<ListRequest> parse_list(Decoder& d, bool utf8);

// ---- SELECT / EXAMINE parameters (RFC 7162 CONDSTORE, QRESYNC) ----

struct SelectRequest {
    std::string mailbox;
    bool condstore = false;
    struct Qresync {
        std::uint32_t uidvalidity = 0;
        std::uint64_t modseq = 0;
        std::optional<SequenceSet> known_uids;
        std::optional<std::pair<SequenceSet, SequenceSet>> seq_match;  // known sequence numbers, their UIDs
    };
    std::optional<Qresync> qresync;
};

// After "SELECT SP": mailbox [SP "(" select-param *(SP select-param) ")"]
std::optional<SelectRequest> parse_select(Decoder& d, bool utf8);

// ---- APPEND (RFC 9051 6.3.12, RFC 3516 literal8) ----

struct AppendHead {
    std::string mailbox;
    std::vector<std::string> flags;
    std::optional<std::int64_t> date_time;
    bool utf8_data = false;  // the message is RFC 6855's UTF8 data item: "UTF8 (" literal8 ")"
};

// The part of APPEND before the message literal: after "APPEND SP", mailbox [SP flag-list]
// [SP date-time] SP ["UTF8" SP "("]; the Decoder ends at the end of what CommandReader gave in
// its Literal event (the literal's marker is not part of it). message_read: the same text once
// the literal has been streamed away, where the UTF8 item's ")" follows its "(".
std::optional<AppendHead> parse_append_head(Decoder& d, bool utf8, bool message_read = false);

}  // namespace pillarbox::imap
