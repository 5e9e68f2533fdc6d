// The server: loads the config into a Runtime (listeners, TLS contexts, limits), binds the
// listeners, accepts connections on the one loop thread, and handles SIGHUP (reload without
// dropping connections; a bad config leaves the old one in force) and SIGTERM (drain, exit 0).
#pragma once
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config.hpp"
#include "listener_state.hpp"
#include "protocol_registry.hpp"
#include "connection_rate.hpp"
#include "worker_pool.hpp"

namespace pillarbox {

class Connection;

// The defaults are the parameters' (server/parameters.cpp), written once there: from() sets
// every field.
struct ServerSettings {
    std::string data_directory;
    std::string hostname;                       // myhostname
    std::uint64_t connection_limit{};
    std::uint64_t stress_threshold_percent{};   // connection_stress_threshold: of the effective connection limit; 0 = never
    std::chrono::milliseconds stress_idle_timeout{};  // connection_stress_idle_timeout
    std::chrono::milliseconds shutdown_timeout{};
    std::size_t worker_threads{};
    std::size_t open_accounts_limit{};  // the store's: their descriptors are kept in reserve
    std::vector<std::string> inet_interfaces;
    static ServerSettings from(const config::Config& c);
};

// Everything a config turns into before it can be applied: built off the loop.
struct Runtime {
    std::shared_ptr<const config::Config> config;
    ServerSettings settings;
    std::map<std::string, std::shared_ptr<const ListenerState>> listeners;
    std::map<asio::ip::tcp::endpoint, std::string> endpoints;  // bind address -> listener name
    std::set<asio::ip::tcp::endpoint> optional_endpoints;  // wildcard IPv6 that may be missing
};

// Validates the config and builds listener states and TLS contexts. Blocking (reads files).
// With create_files it also creates data_directory and the self-signed certificate when
// missing; without (pillarbox check) it only reports what would be created. `protocols`, when
// given, supplies each listener's protocol entry (idle timeout parameter, check_listener).
// Problems go to diags; returns null when there is any error.
std::shared_ptr<Runtime> build_runtime(const config::Config& config, std::vector<config::Diagnostic>& diags,
                                       bool create_files = true, const ProtocolRegistry* protocols = nullptr);

// How many connections open_files descriptors can hold after a reserve for files, the
// databases and DNS (open_files 0: unlimited).
std::uint64_t connection_capacity(std::uint64_t open_files, std::size_t worker_threads, std::size_t open_accounts);

class Server {
public:
    // load() reads the config file; reload reads it again from the same place.
    Server(asio::io_context& loop, config::Environment env, std::string config_path, bool config_must_exist,
           ProtocolRegistry protocols);
    ~Server();

    // Loads, validates and binds. False (with the reason logged) when the config is bad or a
    // listener cannot bind.
    bool start();
    void handle_signals();  // SIGHUP reload, SIGTERM/SIGINT shutdown
    // Re-reads the config on a worker; applies it on the loop, or logs why not. done(ok) after.
    void reload(std::function<void(bool)> done = nullptr);
    // Runs when shutdown begins (SIGTERM): services close their own listeners (the auth socket)
    // so the loop can run out of work.
    void on_shutdown(std::function<void()> hook) { shutdown_hooks_.push_back(std::move(hook)); }
    // Runs after a reload took effect: services drop what they cached from files (access tables).
    void on_reload(std::function<void()> hook) { reload_hooks_.push_back(std::move(hook)); }
    void shutdown();
    bool stopping() const { return stopping_; }

    std::size_t connection_count() const { return connections_.size(); }
    // connection_limit, lowered when the open files limit can't hold that many connections.
    std::uint64_t effective_connection_limit() const { return effective_limit_; }
    bool under_stress() const { return load_->stressed; }
    std::vector<asio::ip::tcp::endpoint> bound_endpoints() const;
    const Runtime& runtime() const { return *runtime_; }
    WorkerPool& workers() { return *workers_; }

private:
    struct Acceptor;
    std::shared_ptr<Runtime> load(std::vector<config::Diagnostic>& diags) const;
    bool apply(std::shared_ptr<Runtime> rt);
    void accept_loop(std::shared_ptr<Acceptor> a);
    void on_accept(asio::ip::tcp::socket socket, const std::shared_ptr<const ListenerState>& listener);
    void stop_if_drained();
    void update_limits(const Runtime& rt, bool starting);
    void update_stress();

    asio::io_context& loop_;
    config::Environment env_;
    std::string config_path_;
    bool config_must_exist_;
    ProtocolRegistry protocols_;
    std::unique_ptr<WorkerPool> workers_;
    std::vector<std::function<void()>> shutdown_hooks_, reload_hooks_;
    std::shared_ptr<Runtime> runtime_;
    std::map<asio::ip::tcp::endpoint, std::shared_ptr<Acceptor>> acceptors_;
    std::map<std::uint64_t, std::weak_ptr<Connection>> connections_;
    ClientConnections per_client_;
    ConnectionRate rate_;
    std::size_t refusing_ = 0;
    std::uint64_t open_files_limit_ = 0;  // hard RLIMIT_NOFILE after start (0: unlimited or unknown)
    std::uint64_t effective_limit_ = 0;
    std::uint64_t stress_threshold_ = 0;  // connections; 0 = stress mode off
    std::shared_ptr<ServerLoad> load_ = std::make_shared<ServerLoad>();
    std::uint64_t accept_failures_ = 0;  // in the current burst of failed accepts
    std::uint64_t next_id_ = 0;
    asio::signal_set signals_;
    asio::steady_timer shutdown_timer_;
    bool stopping_ = false;
    bool reloading_ = false;
};

}  // namespace pillarbox
