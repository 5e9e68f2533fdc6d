// What the pillarbox subcommands share: where the configuration file is, loading it for the
// commands that only read it, and the functions that add each family of subcommands to CLI11.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "server/config.hpp"

namespace CLI { class App; }

namespace pillarbox::app {

struct ConfigPath {
    std::string path;
    bool explicit_ = false;  // given with --config: then it must exist
    static ConfigPath resolve(const std::string& given, const config::Environment& env);
};

// One run of the command line: the global options as parsed, and the exit code the chosen
// subcommand's callback leaves.
struct Invocation {
    std::string config_file;  // --config, empty when not given
    int exit_code = 2;        // a subcommand that runs sets it
    // Asked once the command line is parsed (the environment decides the default path).
    config::Environment env() const { return config::Environment::detect(); }
    ConfigPath config_path(const config::Environment& env) const { return ConfigPath::resolve(config_file, env); }
};

// "pillarbox: file:line: message" on standard error, one line each.
void print_diagnostics(const std::vector<config::Diagnostic>& diags);

// The configuration for commands that only read it; nullopt (with the errors printed) on errors.
std::optional<config::Config> load_config(const ConfigPath& cfg, const config::Environment& env);

// data_directory from the configuration; nullopt (with the errors printed) when it has errors.
std::optional<std::string> data_directory(const ConfigPath& cfg, const config::Environment& env);

// The subcommand families, added in the order `pillarbox --help` lists them. Each callback
// stores its exit code in `run`, which must outlive parsing.
void add_server_commands(CLI::App& cli, Invocation& run);   // serve, config, check, version (cli_server.cpp)
void add_index_commands(CLI::App& cli, Invocation& run);    // index check|rebuild (cli_index.cpp)
void add_queue_commands(CLI::App& cli, Invocation& run);    // queue list|show|release|delete (cli_queue.cpp)
void add_account_commands(CLI::App& cli, Invocation& run);  // user, domain, alias, aliases (cli_accounts.cpp)

// The Markdown parameter reference (docs/configuration.md).
std::string parameter_reference(const config::Environment& env);

}  // namespace pillarbox::app
