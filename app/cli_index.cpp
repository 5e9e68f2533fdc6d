// pillarbox index check|rebuild USER: an account's mail index against its Maildir, for a stopped
// server (storage/index_commands.hpp does the work; this prints it).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "app/cli.hpp"
#include "storage/index_commands.hpp"

namespace pillarbox::app {

namespace {

int index_command(const std::string& data, const std::string& user, bool rebuild) {
    auto root = storage::account_root_for(data, user);
    if (root.empty()) {
        fmt::print(stderr, "pillarbox: {}: not an account address (localpart@domain)\n", user);
        return 2;
    }
    if (!rebuild) {
        auto problems = storage::check_index(root);
        for (auto& p : problems) fmt::print("{}\n", p);
        fmt::print(stderr, "pillarbox: {}: {}\n", user, problems.empty() ? "index matches the Maildir" : "index differs from the Maildir");
        return problems.empty() ? 0 : 1;
    }
    auto err = storage::rebuild_index(root);
    if (!err.empty()) {
        fmt::print(stderr, "pillarbox: {}: {}\n", user, err);
        return 1;
    }
    fmt::print(stderr, "pillarbox: {}: index rebuilt\n", user);
    return 0;
}

}  // namespace

void add_index_commands(CLI::App& cli, Invocation& run) {
    auto* index = cli.add_subcommand("index", "check or rebuild an account's mail index (server stopped)");
    index->require_subcommand(1);
    auto user = std::make_shared<std::string>();
    auto add = [&](const char* name, const char* what, bool rebuild) {
        auto* sub = index->add_subcommand(name, what);
        sub->add_option("USER", *user, "account address, localpart@domain")->required();
        sub->callback([&run, user, rebuild] {
            auto env = run.env();
            auto data = data_directory(run.config_path(env), env);
            run.exit_code = data ? index_command(*data, *user, rebuild) : 1;
        });
    };
    add("check", "compare the index with the Maildir; changes nothing", false);
    add("rebuild", "rebuild the index from the Maildir, keeping UIDs", true);
}

}  // namespace pillarbox::app
