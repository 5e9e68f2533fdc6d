// The Dovecot-compatible auth socket (auth_socket_path): a unix-socket listener so that Postfix
// (smtpd_sasl_type = dovecot) or Exim authenticate their SMTP clients against Pillarbox's accounts.
#pragma once
#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <sys/types.h>

#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "auth/dovecot_protocol.hpp"

namespace pillarbox { class Connection; struct ConnectionSettings; }
namespace pillarbox::config { class Config; }

namespace pillarbox::auth {

class Authenticator;

class DovecotAuthSocket {
public:
    struct Settings {
        // Parameters: their defaults are written once, in server/parameters.cpp; from() sets them.
        std::string path;                   // auth_socket_path: absolute path of the socket file
        std::string user;                   // auth_socket_user: owner (name); empty: keep ours
        std::string group;                  // auth_socket_group: group (name); empty: keep ours
        mode_t mode{};                      // auth_socket_mode
        // Not parameters: the socket's own limits.
        std::size_t max_connections = 100;  // further clients are closed at once (Postfix: one per smtpd)
        std::size_t input_limit = 1 << 20;  // unprocessed input from one client above this: disconnect
        std::size_t output_limit = 64 * 1024;  // unsent replies above this: stop reading that client
        DovecotProtocolLimits limits;

        // auth_socket_path, auth_socket_user, auth_socket_group and auth_socket_mode (octal).
        static Settings from(const config::Config& c);
    };

    // The Authenticator must outlive this object (or stop() must run before it goes).
    DovecotAuthSocket(asio::io_context& loop, Authenticator& auth, Settings settings);
    ~DovecotAuthSocket();
    DovecotAuthSocket(const DovecotAuthSocket&) = delete;
    DovecotAuthSocket& operator=(const DovecotAuthSocket&) = delete;

    // Creates the socket (replacing a stale one left by a crash), sets owner and mode, starts
    // accepting. Throws std::runtime_error with a message for the admin. Resolves user and group
    // names through NSS, so it may block briefly: call it at startup or reload.
    void start();
    // Closes the listener and every client connection and removes the socket file (when it is
    // still the one start() created). Idempotent.
    void stop();

    const Settings& settings() const { return settings_; }
    std::size_t connection_count() const { return connections_.size(); }

private:
    void accept_loop();
    void remove_socket_file();

    asio::io_context& loop_;
    Authenticator& auth_;
    Settings settings_;
    asio::local::stream_protocol::acceptor acceptor_;
    // Each client is a Connection (server/connection.hpp) around a DovecotProtocol session.
    std::shared_ptr<const ConnectionSettings> connection_settings_;
    std::map<unsigned long, std::shared_ptr<Connection>> connections_;  // by cuid
    unsigned long next_cuid_ = 1;
    bool running_ = false;
    dev_t dev_ = 0;   // identity of the socket file we created, so stop() never unlinks another's
    ino_t ino_ = 0;
    // Completion handlers may outlive this object (they run after stop()); they check this first.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace pillarbox::auth
