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
#include "listener_def.hpp"
#include "tls.hpp"

namespace pillarbox {

struct ListenerState {
    std::string name;  // "smtp" for listen_smtp
    config::ListenerLine line;
    std::shared_ptr<const config::Config> config;
    std::shared_ptr<tls::ServerContexts> tls;  // null when line.tls == None
    std::chrono::milliseconds idle_timeout{300'000};
    std::size_t input_limit = 1 << 20;
    std::size_t output_limit = 1 << 20;
    std::uint64_t client_limit = 50;
    std::vector<config::Cidr> client_limit_exceptions;
    std::uint64_t client_rate_limit = 0;  // connections per client_connection_rate_time_unit; 0 = none
    std::chrono::milliseconds client_rate_unit{60'000};
};

}  // namespace pillarbox
