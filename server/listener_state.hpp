// What a running listener hands each new connection: its name and definition, the effective
// config with the listener's overrides, per-connection limits and the TLS contexts. Built off
// the loop (it reads certificate files) and replaced whole on reload; connections keep the one
// they were accepted with.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "connection_settings.hpp"
#include "listener_def.hpp"
#include "protocol_registry.hpp"

namespace pillarbox {

// The ConnectionSettings part is what each connection gets; the rest is for the acceptor.
struct ListenerState : ConnectionSettings {
    config::ListenerLine line;
    std::shared_ptr<const ProtocolEntry> protocol;  // null: nothing serves line.protocol in this build
    // From the listener's parameters (build_runtime; their defaults are written once, in
    // server/parameters.cpp).
    std::uint64_t client_limit{};  // client_connection_limit; 0 = none
    std::vector<config::Cidr> client_limit_exceptions;
    std::uint64_t client_rate_limit{};  // client_connection_rate_limit: connections per client_rate_unit; 0 = none
    std::chrono::milliseconds client_rate_unit{};  // client_connection_rate_time_unit
};

// The server's load as its connections see it, shared by the Server (which decides it) and every
// Connection (which asks it for the idle timeout in force).
struct ServerLoad {
    bool stressed = false;  // connection_stress_threshold reached
    std::chrono::milliseconds stress_idle_timeout{};  // connection_stress_idle_timeout (Server::update_limits)
};

}  // namespace pillarbox
