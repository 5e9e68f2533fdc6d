// pillarbox: the command line (CLI11). Registers the protocol sessions and dispatches.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands.hpp"
#include "protocols/common/unavailable_session.hpp"
#include "protocols/common/message_parser.hpp"
#include "server/log.hpp"
#include "storage/index_commands.hpp"
#include "storage/store.hpp"

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
    auto* index = app.add_subcommand("index", "check or rebuild an account's mail index (server stopped)");
    index->require_subcommand(1);
    std::string index_user;
    auto* index_check = index->add_subcommand("check", "compare the index with the Maildir; changes nothing");
    index_check->add_option("USER", index_user, "account address, localpart@domain")->required();
    auto* index_rebuild = index->add_subcommand("rebuild", "rebuild the index from the Maildir, keeping UIDs");
    index_rebuild->add_option("USER", index_user, "account address, localpart@domain")->required();

    CLI11_PARSE(app, argc, argv);
    auto env = config::Environment::detect();
    auto path = cli::ConfigPath::resolve(config_file, env);
    if (*serve) {
        SessionFactories factories;
        // The real SMTP, POP3, IMAP and HTTP sessions replace these as they land.
        for (auto p : {config::Protocol::Smtp, config::Protocol::Pop3, config::Protocol::Imap, config::Protocol::Http})
            factories[p] = protocols::make_unavailable_session;
        // The mail store the sessions will share. Quota and parser changes take effect on restart.
        auto services = [](asio::io_context& loop, const config::Config& c) -> std::shared_ptr<void> {
            auto settings = storage::StoreSettings::from(c);
            settings.parse = [](std::string_view m) { return mime::to_json(mime::parse_message(m)); };
            log::info("master", "mail store in {}/mail", settings.data_directory.string());
            return std::make_shared<storage::Store>(loop, std::move(settings));
        };
        return cli::serve(path, env, std::move(factories), services);
    }
    if (*config) return cli::config(path, env, copt);
    if (*check) return cli::check(path, env);
    if (*version) return cli::version();
    if (*index) {
        auto data = cli::data_directory(path, env);
        if (!data) return 1;
        auto root = storage::account_root_for(*data, index_user);
        if (root.empty()) {
            fmt::print(stderr, "pillarbox: {}: not an account address (localpart@domain)\n", index_user);
            return 2;
        }
        if (*index_check) {
            auto problems = storage::check_index(root);
            for (auto& p : problems) fmt::print("{}\n", p);
            fmt::print(stderr, "pillarbox: {}: {}\n", index_user, problems.empty() ? "index matches the Maildir" : "index differs from the Maildir");
            return problems.empty() ? 0 : 1;
        }
        auto err = storage::rebuild_index(root);
        if (!err.empty()) {
            fmt::print(stderr, "pillarbox: {}: {}\n", index_user, err);
            return 1;
        }
        fmt::print(stderr, "pillarbox: {}: index rebuilt\n", index_user);
        return 0;
    }
    return 2;
}
