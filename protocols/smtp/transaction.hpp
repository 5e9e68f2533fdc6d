// The SMTP transaction (RFC 5321 3.3): the envelope from MAIL to the end of the message, and
// the message in flight (reader, header checks, the delivery it feeds). RSET, a new EHLO, a
// finished or refused message end it; destroying it aborts whatever wasn't committed.
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "delivery/dispatcher.hpp"
#include "protocols/smtp/data_reader.hpp"
#include "protocols/smtp/headers.hpp"
#include "protocols/smtp/parser.hpp"

namespace pillarbox::smtp {

// A recipient accepted at RCPT.
struct Recipient {
    std::string address;                // as given (domain lower-cased)
    RcptParams params;
    std::vector<std::string> accounts;  // local accounts it reaches
    std::vector<std::string> remote;    // remote addresses (relay, or aliases pointing out)
};

// DATA or BDAT's message, from the first byte to its commit.
struct MessageInFlight {
    std::shared_ptr<delivery::Dispatcher> dispatch;  // where the bytes go
    std::unique_ptr<DataReader> data_reader;         // DATA: dot-unstuffing, end of data
    std::unique_ptr<LineEndingChecker> bdat_checker; // BDAT: bare CR/LF checks
    std::unique_ptr<HeaderProcessor> headers;        // header_checks, missing headers
    std::string received;                            // our Received: line, first in every copy
    std::uint64_t size = 0;
    bool too_big = false;
    bool hold_failed = false;  // HOLD from header_checks, but the hold queue can't be written
    ~MessageInFlight() {
        if (dispatch) dispatch->abort();
    }
};

struct Transaction {
    std::string queue_id;
    Path sender;
    MailParams params;
    std::vector<Recipient> recipients;
    std::chrono::system_clock::time_point arrived = std::chrono::system_clock::now();
    std::optional<std::vector<std::string>> sender_owners;
    bool discard = false;    // an access table said DISCARD
    bool hold = false;       // an access table said HOLD: the message goes to the hold queue
    bool bdat_used = false;  // BDAT began the message: DATA is refused (RFC 3030 2)
    std::optional<MessageInFlight> message;
};

}  // namespace pillarbox::smtp
