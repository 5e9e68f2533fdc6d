// Server side of Dovecot's auth-client protocol (v1.2, what Postfix's smtpd_sasl_type = dovecot and
// Exim's dovecot authenticator speak) for one connection, as a socket-free state machine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/authenticator.hpp"

namespace pillarbox::auth {

struct DovecotProtocolLimits {
    std::size_t max_line = 16384;    // Dovecot's AUTH_CLIENT_MAX_LINE_LENGTH; longer: disconnect
    std::size_t max_requests = 64;   // AUTH ids in flight on one connection
};

// What the server says about itself in the handshake.
struct DovecotIdentity {
    unsigned long spid = 0;    // server process id
    unsigned long cuid = 0;    // connection number, unique within this process
    std::string cookie;        // 32 hex digits
    // spid = getpid(), the given cuid and 128 random bits (libsodium) as the cookie.
    static DovecotIdentity make(unsigned long cuid);
};

class DovecotProtocol {
public:
    // Receives bytes to write to the client (whole lines, "\n"-terminated). May be called from
    // feed() and, later, from Authenticator callbacks on the loop.
    using Output = std::function<void(std::string_view)>;

    // `log_id` prefixes this connection's log lines. The Authenticator must outlive this object.
    DovecotProtocol(Authenticator& auth, DovecotIdentity identity, Output out, DovecotProtocolLimits limits = {},
                    std::string log_id = {});
    ~DovecotProtocol();
    DovecotProtocol(const DovecotProtocol&) = delete;
    DovecotProtocol& operator=(const DovecotProtocol&) = delete;

    // Sends the server handshake at once, without waiting for the client's VERSION: clients such
    // as Exim read the whole handshake before they send anything.
    void start();

    // Consumes client bytes (any split); complete lines are handled, a partial line is kept.
    // Returns false when the connection must be closed (the reason is in error()); the output
    // emitted so far should still be flushed. After false, further calls do nothing.
    bool feed(std::string_view bytes);

    // Cancels every request in flight (no more output). Call before dropping the connection.
    void abort();

    bool failed() const { return failed_; }
    const std::string& error() const { return error_; }
    std::size_t requests_in_flight() const { return requests_.size(); }
    std::size_t buffered() const { return in_.size(); }

private:
    struct Request {
        std::uint64_t serial = 0;        // tells a reused id's callbacks from the old request's
        std::unique_ptr<Exchange> exchange;
        bool awaiting_client = false;    // a CONT was sent; the client's CONT is expected
        std::string mechanism;
    };

    bool handle_line(std::string_view line);
    bool handle_handshake(std::string_view line);
    bool handle_auth(const std::vector<std::string_view>& args);
    bool handle_cont(const std::vector<std::string_view>& args);
    bool handle_cancel(const std::vector<std::string_view>& args);
    void on_reply(std::uint32_t id, std::uint64_t serial, Exchange::Reply reply);
    void finish(std::uint32_t id);
    bool evict_idle_request();
    bool offered(std::string_view mechanism) const;
    void send_fail(std::uint32_t id, std::string_view user, bool temp, std::string_view reason);
    bool protocol_error(std::string message);
    void emit(const std::string& line);
    void reap();

    Authenticator& auth_;
    DovecotIdentity identity_;
    Output out_;
    DovecotProtocolLimits limits_;
    std::string log_id_;

    std::string in_;
    std::vector<std::string> offered_;    // mechanisms named in the handshake (upper case)
    bool version_ok_ = false;
    bool handshake_done_ = false;         // CPID received
    unsigned long client_pid_ = 0;
    bool failed_ = false;
    std::string error_;
    std::uint64_t next_serial_ = 1;
    std::map<std::uint32_t, Request> requests_;
    // Finished exchanges are destroyed on the next feed(), never inside their own callback.
    std::vector<std::unique_ptr<Exchange>> retired_;
};

// Dovecot's tab-escaping (\001 followed by 0, 1, t, r, n) for values in replies, and its inverse.
std::string dovecot_escape(std::string_view value);
std::string dovecot_unescape(std::string_view value);

}  // namespace pillarbox::auth
