// One client connection: socket, optional TLS (implicit or STARTTLS), idle watchdog, bounded
// input and output buffers. Drives a Session and implements SessionIo for it. Lives on the loop
// thread only.
#pragma once
#include <asio/ip/tcp.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <string>

#include "listener_state.hpp"
#include "session.hpp"

namespace pillarbox {

class Connection : public std::enable_shared_from_this<Connection>, public SessionIo {
public:
    // on_closed runs once when the connection is finished (used to release limit counts).
    Connection(asio::ip::tcp::socket socket, std::shared_ptr<const ListenerState> listener, std::string id,
               const SessionFactory& factory, std::function<void()> on_closed);
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
    std::size_t output_queued() const override { return out_.size() + writing_; }
    void set_peer_name(const std::string& name) override { info_.peer_name = name; }
    const ConnectionInfo& info() const override { return info_; }
    bool under_stress() const override { return load_ && load_->stressed; }
    void set_authenticated() override;

private:
    asio::awaitable<void> reader();
    asio::awaitable<void> writer();
    asio::awaitable<void> watchdog();
    asio::awaitable<bool> handshake();
    void process_input();
    void flush_held();
    void check_drain();
    void finish();
    void touch();
    std::chrono::milliseconds idle_timeout() const;  // the listener's, or the stress one
    asio::awaitable<void> close_tls();

    asio::ip::tcp::socket socket_;
    std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
    std::shared_ptr<const ListenerState> listener_;
    std::unique_ptr<Session> session_;
    std::function<void()> on_closed_;
    std::shared_ptr<const ServerLoad> load_;
    ConnectionInfo info_;
    std::string service_;  // log service name: smtpd, pop3, ...

    std::string in_;
    std::string out_;  // queued output
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
    std::size_t writing_ = 0;  // bytes handed to the socket and not yet confirmed written
    int spawns_ = 0;           // coroutines still running; finish() when the last one ends
    std::string pending_refusal_;
    std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

}  // namespace pillarbox
