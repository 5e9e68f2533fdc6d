// Postfix header_checks(5) with pcre: tables: one verdict per logical message header, matched
// with PCRE2 under a match limit so a pathological pattern cannot stall the event loop.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pillarbox::smtp::policy {

struct Context;

struct HeaderVerdict {
    enum class Kind {
        Dunno,    // no match, DUNNO or OK (Postfix treats OK as DUNNO here): keep the header
        Reject,   // REJECT [text]: refuse the whole message (code/enhanced/text below)
        Discard,  // DISCARD [text]: accept, then drop the message
        Hold,     // HOLD [text]: accept into the hold queue
        Warn,     // WARN [text]: log only
        Info,     // INFO [text]: log only
        Ignore,   // IGNORE (silent) or STRIP [text] (logged): delete this header from the message
    };
    Kind kind = Kind::Dunno;
    int code = 0;          // Reject: 550, or 451 when the text starts with a 4.x.x code
    std::string enhanced;  // Reject: "5.7.1" unless the text starts with its own code
    std::string text;      // the optional text after the action ($1.. substituted); Reject's
                           // default is "message content rejected"
    std::string header;    // the unfolded header that matched, shortened, for the log
    std::string action;    // "reject", "discard", "hold", "warning", "info", "strip"; empty: no log
    std::string problem;   // set when matching hit the PCRE2 match limit (treated as no match)
    std::string reply() const;  // Reject: "550 5.7.1 text"
    // Postfix's cleanup line, without the queue id: "reject: header Subject: buy now from
    // unknown[192.0.2.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<h>: 5.7.1 message content
    // rejected". Empty when the verdict is not logged (Dunno, IGNORE).
    std::string log_line(const Context& ctx) const;
};

class HeaderChecks {
public:
    // Blocking: reads a pcre:/PATH (or regexp:/PATH, or a bare path) table. Lines: /regex/flags
    // ACTION [text] or !/regex/flags ACTION, if/endif blocks; # comments; continuation lines
    // start with whitespace. Flags as Postfix: i (toggles the default case-insensitivity), m, s
    // (on by default), x, A, E, U. Throws std::runtime_error when the file can't be read; bad
    // lines (unknown or unsupported actions: BCC, FILTER, PREPEND, REDIRECT, REPLACE, PASS) go
    // to `problems` and are skipped.
    static HeaderChecks load(std::string_view spec, std::vector<std::string>& problems);
    // Several tables, searched in order until one matches (Postfix's list of maps).
    static HeaderChecks load(const std::vector<std::string>& specs, std::vector<std::string>& problems);
    static HeaderChecks parse(std::string_view text, const std::string& name, std::vector<std::string>& problems);
    HeaderChecks() = default;

    // `header` is one logical header, name included ("Subject: hi"), as received: folding
    // (CRLF or LF before a space or tab) is removed and a trailing line end dropped before
    // matching, so one pattern sees the whole header on one line. The first match decides.
    // Pure and thread-safe: the session may check a whole header block on the worker pool,
    // which also keeps many headers times a slow pattern (each bounded by the match limit,
    // ~10 ms) off the loop.
    HeaderVerdict check(std::string_view header) const;

    bool empty() const;
    std::size_t size() const;  // rules over all tables

    struct Impl;

private:
    std::shared_ptr<const Impl> impl_;
};

}  // namespace pillarbox::smtp::policy
