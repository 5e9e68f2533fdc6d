// Where the configuration file is and loading it for the commands that only read it (see cli.hpp).
#include "app/cli.hpp"

#include <algorithm>
#include <iostream>

namespace pillarbox::app {

using config::Config;
using config::Diagnostic;

ConfigPath ConfigPath::resolve(const std::string& given, const config::Environment& env) {
    if (!given.empty()) return {given, true};
    return {env.root ? "/etc/pillarbox/pillarbox.conf" : "./pillarbox.conf", false};
}

void print_diagnostics(const std::vector<Diagnostic>& diags) {
    for (auto& d : diags) std::cerr << "pillarbox: " << d.to_string() << "\n";
}

std::optional<Config> load_config(const ConfigPath& cfg, const config::Environment& env) {
    std::vector<Diagnostic> diags;
    Config c = Config::load_file(cfg.path, cfg.explicit_, env, diags);
    bool errors = std::any_of(diags.begin(), diags.end(), [](const Diagnostic& d) { return d.severity == Diagnostic::Error; });
    if (errors) {
        print_diagnostics(diags);
        return std::nullopt;
    }
    return c;
}

std::optional<std::string> data_directory(const ConfigPath& cfg, const config::Environment& env) {
    auto c = load_config(cfg, env);
    if (!c) return std::nullopt;
    return c->get("data_directory");
}

}  // namespace pillarbox::app
