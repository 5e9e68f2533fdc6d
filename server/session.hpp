// The boundary between a Connection (socket, TLS, timers, buffers) and a protocol Session (a
// state machine over bytes). Sessions never touch sockets: they get input through on_input()
// and act through SessionIo.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config.hpp"
#include "listener_def.hpp"
#include "stream_layer.hpp"

namespace pillarbox {

struct ConnectionInfo {
    std::string id;        // per-connection log id, e.g. 3F2A0001
    std::string listener;  // listener name: smtp, submission, ...; the service for Unix-domain peers
    config::TlsMode tls_mode = config::TlsMode::None;
    std::string peer_ip, local_ip;  // empty for a Unix-domain peer; local_ip is then the socket path
    std::string peer_name = "unknown";  // the client's verified host name, once a session learns it
    std::uint16_t peer_port = 0, local_port = 0;
    bool tls_active = false;
    std::string tls_version, tls_cipher, tls_sni;
    const config::Config* config = nullptr;  // effective config of the listener (overrides applied); null for Unix-domain services
};

class SessionIo {
public:
    virtual ~SessionIo() = default;
    virtual void send(std::string_view bytes) = 0;
    // A reply that may wait for the replies to the commands pipelined behind it, so a group
    // goes out in one segment (RFC 2920 section 3.2: responses to RSET, MAIL and RCPT). It is
    // sent with the next send(), or as soon as no complete command line is left unread.
    virtual void send_grouped(std::string_view bytes) { send(bytes); }
    // Close once queued output is written.
    virtual void close() = 0;
    // Once queued output is written: drop any input already buffered (a client may not pipeline
    // plaintext past STARTTLS, CVE-2011-0411), run the TLS handshake, then call on_tls_started().
    virtual void start_tls() = 0;
    // Offer buffered input again (a session that returned 0 from on_input while busy).
    virtual void resume_input() = 0;
    // Bytes sent and not yet written to the socket: a session streaming a large reply (POP3
    // RETR) sends the next piece only while this is small, so a slow reader costs bounded memory.
    virtual std::size_t output_queued() const = 0;
    // The client's forward-confirmed host name (SMTP's peername lookup): later connection log
    // lines (TLS, timeout, disconnect) say name[ip] instead of unknown[ip].
    virtual void set_peer_name(const std::string& name) = 0;
    virtual const ConnectionInfo& info() const = 0;
    // True while the server is under stress (connection_stress_threshold reached): sessions
    // then disconnect a client at its first error, as Postfix's stress-dependent
    // smtpd_hard_error_limit does. Compare error counters with error_limit(configured).
    virtual bool under_stress() const { return false; }
    unsigned error_limit(unsigned configured) const { return under_stress() ? 1u : configured; }
    // A login succeeded: under stress the connection keeps its normal idle timeout (only
    // sessions that have not logged in are shed after connection_stress_idle_timeout).
    virtual void set_authenticated() {}
    // This session's idle timeout instead of the listener's (IMAP IDLE waits up to 30 minutes);
    // nullopt goes back to the listener's. Counted from the last activity; stress mode still
    // shortens it before login.
    virtual void set_idle_timeout(std::optional<std::chrono::milliseconds> timeout) { (void)timeout; }
    // Stacks `layer` right under the session: output sent from now on goes through it (what was
    // sent before does not), and so does input not yet consumed by on_input (it came after the
    // command that asked for the layer, e.g. IMAP COMPRESS). False when this connection can't.
    virtual bool push_layer(std::unique_ptr<StreamLayer> layer) {
        (void)layer;
        return false;
    }
};

class Session {
public:
    virtual ~Session() = default;
    virtual void on_start() = 0;  // send the greeting
    // Use a prefix of the buffered input; return how many bytes were used. Unused bytes stay
    // buffered and are offered again when more arrive (or after SessionIo::resume_input()).
    virtual std::size_t on_input(std::string_view data) = 0;
    virtual void on_tls_started() {}
    // A write to the socket completed (output_queued() went down).
    virtual void on_output_written() {}
    // Instead of on_start when a connection limit is reached: send the protocol's "too many
    // connections" reply; the connection closes after it.
    virtual void on_refused(std::string_view reason) = 0;
    // The client was silent for the idle timeout; say so, the connection closes after it.
    virtual void on_timeout() = 0;
    // The server is stopping and busy() is false: say goodbye; the connection closes after it.
    virtual void on_shutdown() = 0;
    // A transaction is in progress that shutdown should let finish.
    virtual bool busy() const { return false; }
    // False while the session can't take more input (a delivery's buffers are full): the
    // connection stops reading from the socket until SessionIo::resume_input().
    virtual bool wants_input() const { return true; }
    // Appended to the disconnect log line (e.g. "ehlo=1 mail=1 quit=1 commands=3").
    virtual std::string summary() const { return ""; }
    // No more input will come (the client left, the connection closes or is aborted): cancel
    // async work whose answer has nowhere to go. Called once; output sent now may be dropped.
    virtual void on_close() {}
};

using SessionFactory = std::function<std::unique_ptr<Session>(SessionIo&)>;

}  // namespace pillarbox
