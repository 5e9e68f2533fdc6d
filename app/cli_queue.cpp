// pillarbox queue list|show|release|delete: the admin's view of the queue, like mailq, postcat -q
// and postsuper.
#include <CLI/CLI.hpp>

#include "app/cli.hpp"
#include "storage/queue/queue_admin.hpp"

namespace pillarbox::app {

namespace {

struct QueueOptions {
    std::string id;
    std::vector<std::string> ids;
};

}  // namespace

void add_queue_commands(CLI::App& cli, Invocation& run) {
    auto* queue = cli.add_subcommand("queue", "show, release and delete queued mail, like mailq and postsuper");
    queue->require_subcommand(1);
    auto o = std::make_shared<QueueOptions>();
    // Runs fn(data_directory) once the configuration gives it.
    auto with_data = [&run](auto fn) {
        return [&run, fn] {
            auto env = run.env();
            auto data = data_directory(run.config_path(env), env);
            run.exit_code = data ? fn(*data) : 1;
        };
    };
    namespace q = storage::queue;
    queue->add_subcommand("list", "list the queue, like mailq (! held, > released, not yet routed)")
        ->callback(with_data([](const std::string& data) { return q::list_command(data); }));
    auto* show = queue->add_subcommand("show", "print a queued message's envelope and contents, like postcat -q");
    show->add_option("ID", o->id, "queue id")->required();
    show->callback(with_data([o](const std::string& data) { return q::show_command(data, o->id); }));
    auto* release = queue->add_subcommand("release", "release held messages (postsuper -H): the server delivers them again");
    release->add_option("ID", o->ids, "queue ids, or ALL")->required();
    release->callback(with_data([o](const std::string& data) { return q::release_command(data, o->ids); }));
    auto* del = queue->add_subcommand("delete", "delete queued or held messages (postsuper -d)");
    del->add_option("ID", o->ids, "queue ids, or ALL")->required();
    del->callback(with_data([o](const std::string& data) { return q::delete_command(data, o->ids); }));
}

}  // namespace pillarbox::app
