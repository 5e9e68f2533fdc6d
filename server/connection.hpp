// One client connection over a TCP or Unix-domain stream: optional TLS (implicit or STARTTLS),
// stacked byte layers, idle watchdog, bounded input and output buffers. Drives a Session and
// implements SessionIo for it. Lives on the loop thread only.
#pragma once
#include <asio/awaitable.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "connection_settings.hpp"
#include "listener_state.hpp"
#include "session.hpp"
#include "tls_stream.hpp"

namespace pillarbox {

class Connection : public std::enable_shared_from_this<Connection>, public SessionIo {
public:
    // on_closed runs once when the connection is finished (used to release limit counts).
    Connection(asio::ip::tcp::socket socket, std::shared_ptr<const ConnectionSettings> settings, std::string id,
               const SessionFactory& factory, std::function<void()> on_closed);
    // A Unix-domain client: no TLS; settings.name names the service in ConnectionInfo.
    Connection(asio::local::stream_protocol::socket socket, std::shared_ptr<const ConnectionSettings> settings,
               std::string id, const SessionFactory& factory, std::function<void()> on_closed);
    ~Connection() override;

    // refusal non-empty: the session answers on_refused(refusal) instead of greeting.
    void start(std::string refusal = "");
    // Server shutdown: idle sessions say goodbye now, busy ones when they finish.
    void begin_shutdown();
    void abort();  // close at once, no more output
    // The server's load (stress mode); null: never stressed. Set before start().
    void set_load(std::shared_ptr<const ServerLoad> load) { load_ = std::move(load); }
    // The server entered stress mode (or the session logged in): the idle deadline follows the
    // timeout now in force.
    void load_changed();

    // SessionIo
    void send(std::string_view bytes) override;
    void send_grouped(std::string_view bytes) override;
    void close() override;
    void start_tls() override;
    void resume_input() override;
    std::size_t output_queued() const override { return out_.size() + wire_.size() + writing_; }
    void set_peer_name(const std::string& name) override { info_.peer_name = name; }
    const ConnectionInfo& info() const override { return info_; }
    bool under_stress() const override { return load_ && load_->stressed; }
    void set_authenticated() override;
    void set_idle_timeout(std::optional<std::chrono::milliseconds> timeout) override;
    bool push_layer(std::unique_ptr<StreamLayer> layer) override;

private:
    using Stream = asio::generic::stream_protocol::socket;
    // The accepted socket as a generic stream, with the addresses read before it was converted.
    struct Accepted {
        Stream socket;
        ConnectionInfo addresses;
    };
    static Accepted accepted(asio::ip::tcp::socket socket);
    static Accepted accepted(asio::local::stream_protocol::socket socket);
    Connection(Accepted accepted, std::shared_ptr<const ConnectionSettings> settings, std::string id,
               const SessionFactory& factory, std::function<void()> on_closed);

    asio::awaitable<void> reader();
    asio::awaitable<void> writer();
    void arm_watchdog();
    void on_watchdog();
    bool watch_deadline();  // at the timer: true when the connection is finished with
    asio::awaitable<bool> handshake();
    // Some bytes from the client (through TLS when active), into the loop thread's read buffer.
    asio::awaitable<std::string_view> read_some(std::error_code& ec);
    void release_idle_buffers();
    void process_input();
    void consume_input(std::size_t n);
    bool decode_input(std::string_view bytes);  // through the layers into in_; false: corrupt
    bool decode_buffered_input();               // in_ again, through the newest layer only
    void encode_output();                       // out_ through the layers into wire_
    bool output_empty() const { return out_.empty() && wire_.empty(); }
    void flush_held();
    void check_drain();
    void finish();
    void closed_for_session();  // Session::on_close, once
    void touch();
    void rearm_idle();
    std::chrono::milliseconds base_idle_timeout() const;  // the session's, or the listener's
    std::chrono::milliseconds idle_timeout() const;       // that, or the stress one
    asio::awaitable<void> close_tls();

    Stream socket_;
    std::unique_ptr<TlsStream> tls_;
    std::shared_ptr<const ConnectionSettings> settings_;
    std::unique_ptr<Session> session_;
    std::function<void()> on_closed_;
    std::shared_ptr<const ServerLoad> load_;
    ConnectionInfo info_;
    std::optional<std::chrono::milliseconds> session_idle_timeout_;
    // Bottom (next to the socket or TLS) first; the session reads and writes above the last.
    std::vector<std::unique_ptr<StreamLayer>> layers_;

    std::string in_;
    std::string out_;   // queued output, as the session sent it
    std::string wire_;  // queued output already through the layers (empty while there are none)
    asio::steady_timer writer_wake_, reader_wake_, idle_timer_;
    std::chrono::steady_clock::time_point deadline_;
    std::chrono::steady_clock::time_point last_active_;  // last input, or output progress
    bool closing_ = false;       // no more input; close once output is written
    bool tls_requested_ = false;
    bool in_handshake_ = false;
    bool draining_ = false;
    bool finished_ = false;
    bool timed_out_ = false;
    bool refused_ = false;
    bool authenticated_ = false;
    bool handshake_timed_out_ = false;
    bool tls_closing_ = false;  // sending close_notify
    bool reader_done_ = false;
    bool held_ = false;        // out_ waits for the replies to pipelined commands (send_grouped)
    bool in_on_input_ = false;       // inside Session::on_input: in_ still holds what it is reading
    bool layer_pushed_ = false;      // a layer came during on_input; the rest of in_ goes through it
    bool session_closed_ = false;    // Session::on_close has run
    std::size_t writing_ = 0;  // bytes handed to the socket and not yet confirmed written
    int spawns_ = 0;           // coroutines still running; finish() when the last one ends
    std::string pending_refusal_;
    std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

}  // namespace pillarbox
