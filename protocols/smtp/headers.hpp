// The header section of a message passing through the SMTP server: header_checks per logical
// header, Message-ID and Date added for submission when missing, and the Received: line.
// Streaming: the header section is held (up to header_size_limit), the body passes straight on.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/smtp/policy/header_checks.hpp"
#include "protocols/smtp/policy/restrictions.hpp"

namespace pillarbox::smtp {

class HeaderProcessor {
public:
    struct Options {
        std::size_t header_size_limit{};         // the listener's: beyond it the rest is body (Postfix)
        const policy::HeaderChecks* checks = nullptr;
        bool add_missing = false;                // add Message-ID: and Date: when absent
        std::string message_id;                  // "<id@host>" for a missing Message-ID
        std::string date;                        // RFC 5322 date for a missing Date
        policy::Context context;                 // client and envelope, for the log lines
    };
    explicit HeaderProcessor(Options o) : o_(std::move(o)) {}

    // Message bytes (CRLF line endings) in; bytes ready to deliver out.
    std::string feed(std::string_view data);
    // At the end of the message: whatever is still held.
    std::string finish();

    // The first REJECT verdict (kind Reject), else Dunno.
    const policy::HeaderVerdict& reject() const { return reject_; }
    bool discard() const { return discard_; }
    bool hold() const { return hold_; }
    // "warn: header Subject: ...", "reject: header ..." lines for the maillog, and problems.
    const std::vector<std::string>& log() const { return log_; }

private:
    std::string release();  // applies checks to held headers, returns them plus what followed
    void check(const std::string& header);

    Options o_;
    bool in_headers_ = true;
    std::string held_;      // the header section so far
    std::string out_headers_;
    bool have_message_id_ = false, have_date_ = false;
    policy::HeaderVerdict reject_;
    bool discard_ = false, hold_ = false;
    std::vector<std::string> log_;
};

// RFC 5322 date-time for now, e.g. "Sun, 29 Nov 2026 13:24:10 +0000".
std::string rfc5322_date();

// RFC 3848 / RFC 6531 protocol name for the Received: "with" clause.
std::string received_protocol(bool esmtp, bool tls, bool authenticated, bool smtputf8);

struct ReceivedInfo {
    std::string helo, client_name = "unknown", client_ip;
    std::string tls_version, tls_cipher;  // empty: no TLS
    std::string authenticated_user;       // shown only when the admin enabled it
    std::string hostname, protocol, queue_id;
    std::string for_recipient;            // only with a single recipient (Postfix)
};
// "Received: from helo (name [ip])\r\n\t(using ...)\r\n\tby host (Pillarbox) with ESMTPS id X\r\n\tfor <r>; date\r\n"
std::string received_header(const ReceivedInfo& r);

}  // namespace pillarbox::smtp
