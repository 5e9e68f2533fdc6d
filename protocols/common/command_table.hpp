// A protocol's commands in one table {verb, handler, flags}; the flags say in which session
// states a command is allowed and are checked here, in one place, for every protocol. Also the
// bad-command counter the protocols' error limits use.
#pragma once
#include <initializer_list>
#include <string_view>
#include <vector>

#include "server/session.hpp"

namespace pillarbox::protocols {

// Command flags (plain unsigned bits, so protocols can add their own beside them).
inline constexpr unsigned kBeforeLogin = 1u << 0;    // allowed before authentication
inline constexpr unsigned kAfterLogin = 1u << 1;     // allowed after authentication
inline constexpr unsigned kAnyLogin = kBeforeLogin | kAfterLogin;
inline constexpr unsigned kNeedsTls = 1u << 2;       // refused where the session requires TLS and it isn't active yet
inline constexpr unsigned kInTransaction = 1u << 3;  // needs a transaction (SMTP: after MAIL; IMAP: a selected mailbox)
inline constexpr unsigned kNoTransaction = 1u << 4;  // refused while a transaction is open
// Bits from here up are the protocol's own (SMTP: junk command, last in a pipelined group).
inline constexpr unsigned kFirstProtocolFlag = 1u << 8;

// Where the session is, as far as the flags care.
struct CommandState {
    bool logged_in = false;
    bool tls_missing = false;  // TLS is required for kNeedsTls commands and is not active
    bool in_transaction = false;
};

// Why a command was refused by its flags; checked in this order.
enum class Refusal { None, NotLoggedIn, AlreadyLoggedIn, NoTransaction, InTransaction, NeedsTls };

Refusal check_command(unsigned flags, const CommandState& s);

template <typename Handler>
struct CommandDef {
    std::string_view verb;  // upper case, as the parsers give it
    Handler handler;
    unsigned flags = kAnyLogin;
};

template <typename Handler>
class CommandTable {
public:
    CommandTable(std::initializer_list<CommandDef<Handler>> defs) : defs_(defs) {}
    // null when the verb is not a command of this protocol.
    const CommandDef<Handler>* find(std::string_view verb) const {
        for (auto& d : defs_)
            if (d.verb == verb) return &d;
        return nullptr;
    }

private:
    std::vector<CommandDef<Handler>> defs_;
};

// Errors a client made in this session, against a limit (pop3_max_bad_commands,
// smtpd_hard_error_limit): under stress the limit is 1 (SessionIo::error_limit).
class ErrorCounter {
public:
    // Counts one; true when that reaches the limit and the client must go.
    bool add(const SessionIo& io, unsigned limit) { return ++count_ >= io.error_limit(limit); }
    bool reached(const SessionIo& io, unsigned limit) const { return count_ >= io.error_limit(limit); }
    unsigned count() const { return count_; }

private:
    unsigned count_ = 0;
};

}  // namespace pillarbox::protocols
