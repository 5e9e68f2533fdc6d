// The pillarbox subcommands that are about the server itself: serve, config, check, version.
// Later work adds user, alias, domain and queue beside them.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <functional>
#include <memory>

#include "server/config.hpp"
#include "server/server.hpp"
#include "server/session.hpp"

namespace pillarbox::cli {

struct ConfigPath {
    std::string path;
    bool explicit_ = false;  // given with --config: then it must exist
    static ConfigPath resolve(const std::string& given, const config::Environment& env);
};

// services: called once the configuration is loaded and the listeners are up (before any
// connection is served), to create what the sessions share (the mail store, the authenticator);
// what it returns lives until the loop ends. Throwing std::exception stops the start with its message.
using Services = std::function<std::shared_ptr<void>(asio::io_context&, Server&, const config::Config&)>;
int serve(const ConfigPath& cfg, const config::Environment& env, ProtocolRegistry protocols, Services services = nullptr);

struct ConfigOptions {
    bool non_default = false;  // -n
    bool defaults = false;     // -d
    bool expand = false;       // -x
    bool doc = false;          // --doc: the Markdown reference
    std::vector<std::string> names;
};
int config(const ConfigPath& cfg, const config::Environment& env, const ConfigOptions& opt);

// fix (check --fix): chmod what is looser than 0700/0600 in the data folder (see file_modes.hpp).
// protocols: run each listener's protocol checks.
int check(const ConfigPath& cfg, const config::Environment& env, bool fix = false, const ProtocolRegistry* protocols = nullptr);

// The configuration for commands that only read it; nullopt (with the errors printed) on errors.
std::optional<config::Config> load_config(const ConfigPath& cfg, const config::Environment& env);

// data_directory from the configuration; nullopt (with the errors printed) when it has errors.
std::optional<std::string> data_directory(const ConfigPath& cfg, const config::Environment& env);
int version();

// The Markdown parameter reference (docs/configuration.md).
std::string parameter_reference(const config::Environment& env);

}  // namespace pillarbox::cli
