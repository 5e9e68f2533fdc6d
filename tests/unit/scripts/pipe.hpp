// A Connection without a socket: drives one Session in-process the way server/connection.cpp
// does (input offered while the session wants it, pipelined replies held for their group,
// STARTTLS, idle timeout, close after output), and gives the test the client's end.
#pragma once
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "server/session.hpp"

namespace pillarbox::scripts {

class Pipe : public SessionIo {
public:
    Pipe(asio::io_context& io, ConnectionInfo info, std::chrono::milliseconds idle_timeout);
    ~Pipe() override;
    // Starts the session (its greeting); for implicit TLS, info.tls_active is set already.
    void start(const SessionFactory& factory);

    // The client's end.
    void client_send(std::string_view bytes);
    // The next line the server sent (without CRLF), running the loop until one is there; nullopt
    // when the server closed the connection; throws std::runtime_error after `timeout`.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout);
    // The client's TLS handshake after a STARTTLS reply; false when the server didn't ask for it.
    bool client_tls();
    // The client hangs up: the session is destroyed, as the Connection does when its socket closes.
    void client_close();

    // SessionIo
    void send(std::string_view bytes) override;
    void send_grouped(std::string_view bytes) override;
    void close() override;
    void start_tls() override { tls_requested_ = true; }
    void resume_input() override;
    std::size_t output_queued() const override { return 0; }  // the client reads everything at once
    void set_peer_name(const std::string& name) override { info_.peer_name = name; }
    const ConnectionInfo& info() const override { return info_; }
    void set_authenticated() override {}

private:
    void pump();  // socket bytes into the input buffer while the session wants them, then process
    void process_input();
    void touch();  // restarts the idle timer

    asio::io_context& io_;
    ConnectionInfo info_;
    std::chrono::milliseconds idle_timeout_;
    asio::steady_timer idle_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    std::unique_ptr<Session> session_;
    std::string socket_;  // sent by the client, not read by the connection yet
    std::string in_;      // read, not used by the session yet
    std::string out_;     // written: what the client reads
    std::string held_;    // grouped replies waiting for their group
    bool closing_ = false, tls_requested_ = false;
};

}  // namespace pillarbox::scripts
