// pillarbox queue list|show|release|delete: the admin's view of the queue, like mailq, postcat -q
// and postsuper; a thin shell over storage/queue/queue_admin.hpp that prints its results.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <ctime>
#include <fstream>
#include <iostream>

#include "app/cli.hpp"
#include "storage/queue/queue_admin.hpp"

namespace pillarbox::app {

namespace {

namespace q = storage::queue;

struct QueueOptions {
    std::string id;
    std::vector<std::string> ids;
};

std::string arrival(std::int64_t t) {
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    ::localtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S", &tm);
    return buf;
}

int list(const std::string& data) {
    auto messages = q::list_messages(data);
    std::uint64_t bytes = 0;
    for (auto& m : messages) {
        const auto& env = m.envelope;
        if (&m == &messages.front())
            fmt::print("{:<17} {:>8} {:<20} {}\n", "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------");
        // mailq's marks: ! held; we add > for released and not yet routed.
        std::string mark = m.place == q::Place::Hold ? "!" : m.place == q::Place::Incoming ? ">" : " ";
        fmt::print("{:<17} {:>8} {:<20} {}\n", m.id + mark, env.size, arrival(env.received),
                   env.sender.empty() ? "MAILER-DAEMON" : env.sender);
        // mailq prints why a message waits in parentheses above its recipients.
        if (!env.reason.empty()) fmt::print("{:<47}({})\n", "", env.reason);
        for (auto& r : env.recipients) fmt::print("{:<47}{}\n", "", r.address);
        fmt::print("\n");
        bytes += env.size;
    }
    auto n = messages.size();
    if (n == 0) fmt::print("Mail queue is empty\n");
    else fmt::print("-- {} Kbytes in {} Request{}.\n", (bytes + 1023) / 1024, n, n == 1 ? "" : "s");
    return 0;
}

int show(const std::string& data, const std::string& id) {
    auto m = q::find_message(data, id);
    if (!m) {
        fmt::print(stderr, "pillarbox: {}: no such message in the queue\n", id);
        return 1;
    }
    const auto& env = m->envelope;
    fmt::print("*** ENVELOPE RECORDS {} ({}) ***\n", id, q::place_name(m->place));
    fmt::print("arrival: {}\nsender: {}\n", arrival(env.received), env.sender);
    for (auto& r : env.recipients) fmt::print("recipient: {}\n", r.address);
    if (!env.reason.empty()) fmt::print("reason: {}\n", env.reason);
    if (!env.client_ip.empty()) fmt::print("client: {} helo={}\n", env.client_ip, env.helo);
    fmt::print("*** MESSAGE CONTENTS {} ***\n", id);
    std::ifstream in(m->message_file, std::ios::binary);
    std::cout << in.rdbuf();
    std::cout << std::flush;
    return 0;
}

// Each refused id with its reason, then the total: postsuper's way.
int report(const std::vector<q::MessageOutcome>& outcomes, const char* what) {
    int rc = 0;
    std::size_t n = 0;
    for (auto& o : outcomes) {
        if (!o.error.empty()) {
            fmt::print(stderr, "pillarbox: {}: {}\n", o.id, o.error);
            rc = 1;
            continue;
        }
        ++n;
    }
    fmt::print(stderr, "pillarbox: {}: {} message{}\n", what, n, n == 1 ? "" : "s");
    return rc;
}

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
    queue->add_subcommand("list", "list the queue, like mailq (! held, > released, not yet routed)")
        ->callback(with_data([](const std::string& data) { return list(data); }));
    auto* show_cmd = queue->add_subcommand("show", "print a queued message's envelope and contents, like postcat -q");
    show_cmd->add_option("ID", o->id, "queue id")->required();
    show_cmd->callback(with_data([o](const std::string& data) { return show(data, o->id); }));
    auto* release = queue->add_subcommand("release", "release held messages (postsuper -H): the server delivers them again");
    release->add_option("ID", o->ids, "queue ids, or ALL")->required();
    release->callback(with_data([o](const std::string& data) {
        return report(q::release_messages(data, o->ids), "Released from hold");
    }));
    auto* del = queue->add_subcommand("delete", "delete queued or held messages (postsuper -d)");
    del->add_option("ID", o->ids, "queue ids, or ALL")->required();
    del->callback(with_data([o](const std::string& data) { return report(q::delete_messages(data, o->ids), "Deleted"); }));
}

}  // namespace pillarbox::app
