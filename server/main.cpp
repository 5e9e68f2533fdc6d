// pillarbox: the command line (CLI11). Registers the protocol sessions and dispatches.
#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "protocols/common/unavailable_session.hpp"

int main(int argc, char** argv) {
    using namespace pillarbox;
    CLI::App app{"Pillarbox: SMTP, POP3 and IMAP mail server in one process"};
    app.require_subcommand(1);
    std::string config_file;
    app.add_option("-c,--config", config_file, "configuration file (default ./pillarbox.conf, or /etc/pillarbox/pillarbox.conf as root)");

    auto* serve = app.add_subcommand("serve", "run the server in the foreground");
    cli::ConfigOptions copt;
    auto* config = app.add_subcommand("config", "print effective parameter values, like postconf");
    config->add_flag("-n", copt.non_default, "only parameters set in the configuration file");
    config->add_flag("-d", copt.defaults, "default values");
    config->add_flag("-x", copt.expand, "expand $name references");
    config->add_flag("--doc", copt.doc, "print the parameter reference in Markdown");
    config->add_option("NAME", copt.names, "parameters to print");
    auto* check = app.add_subcommand("check", "validate configuration, files and permissions, like postfix check");
    auto* version = app.add_subcommand("version", "print version and library versions");

    CLI11_PARSE(app, argc, argv);
    auto env = config::Environment::detect();
    auto path = cli::ConfigPath::resolve(config_file, env);
    if (*serve) {
        SessionFactories factories;
        // The real SMTP, POP3, IMAP and HTTP sessions replace these as they land.
        for (auto p : {config::Protocol::Smtp, config::Protocol::Pop3, config::Protocol::Imap, config::Protocol::Http})
            factories[p] = protocols::make_unavailable_session;
        return cli::serve(path, env, std::move(factories));
    }
    if (*config) return cli::config(path, env, copt);
    if (*check) return cli::check(path, env);
    if (*version) return cli::version();
    return 2;
}
