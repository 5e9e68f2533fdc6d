// The queue commands (see queue_admin.hpp).
#include "storage/queue/queue_admin.hpp"

#include <asio/io_context.hpp>
#include <fmt/format.h>

#include <ctime>
#include <fstream>
#include <iostream>
#include <optional>

#include "storage/queue/queue.hpp"

namespace pillarbox::storage::queue {

namespace {

constexpr Place kPlaces[] = {Place::Messages, Place::Hold, Place::Incoming};

std::string arrival(std::int64_t t) {
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    ::localtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S", &tm);
    return buf;
}

// Runs fn(queue) with a queue that never writes (no io_context needs to run for these calls).
template <typename Fn>
int with_queue(const std::filesystem::path& data, Fn fn) {
    asio::io_context loop;
    Queue q(loop, data, 1);
    return fn(q);
}

std::optional<Place> find(Queue& q, const std::string& id) {
    for (Place p : kPlaces)
        if (q.read_envelope(id, p)) return p;
    return std::nullopt;
}

// ids, or every id in the given places for "ALL".
std::vector<std::string> expand(Queue& q, const std::vector<std::string>& ids, std::initializer_list<Place> places) {
    std::vector<std::string> out;
    for (auto& id : ids) {
        if (id != "ALL") {
            out.push_back(id);
            continue;
        }
        for (Place p : places)
            for (auto& x : q.list(p)) out.push_back(x);
    }
    return out;
}

}  // namespace

int list_command(const std::filesystem::path& data) {
    return with_queue(data, [](Queue& q) {
        std::size_t n = 0;
        std::uint64_t bytes = 0;
        for (Place p : kPlaces) {
            for (auto& id : q.list(p)) {
                auto env = q.read_envelope(id, p);
                if (!env) continue;
                if (n++ == 0) fmt::print("{:<17} {:>8} {:<20} {}\n", "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------");
                // mailq's marks: ! held; we add > for released and not yet routed.
                std::string mark = p == Place::Hold ? "!" : p == Place::Incoming ? ">" : " ";
                fmt::print("{:<17} {:>8} {:<20} {}\n", id + mark, env->size, arrival(env->received),
                           env->sender.empty() ? "MAILER-DAEMON" : env->sender);
                // mailq prints why a message waits in parentheses above its recipients.
                if (!env->reason.empty()) fmt::print("{:<47}({})\n", "", env->reason);
                for (auto& r : env->recipients) fmt::print("{:<47}{}\n", "", r.address);
                fmt::print("\n");
                bytes += env->size;
            }
        }
        if (n == 0) fmt::print("Mail queue is empty\n");
        else fmt::print("-- {} Kbytes in {} Request{}.\n", (bytes + 1023) / 1024, n, n == 1 ? "" : "s");
        return 0;
    });
}

int show_command(const std::filesystem::path& data, const std::string& id) {
    return with_queue(data, [&](Queue& q) {
        auto p = find(q, id);
        if (!p) {
            fmt::print(stderr, "pillarbox: {}: no such message in the queue\n", id);
            return 1;
        }
        auto env = q.read_envelope(id, *p);
        fmt::print("*** ENVELOPE RECORDS {} ({}) ***\n", id, place_name(*p));
        fmt::print("arrival: {}\nsender: {}\n", arrival(env->received), env->sender);
        for (auto& r : env->recipients) fmt::print("recipient: {}\n", r.address);
        if (!env->reason.empty()) fmt::print("reason: {}\n", env->reason);
        if (!env->client_ip.empty()) fmt::print("client: {} helo={}\n", env->client_ip, env->helo);
        fmt::print("*** MESSAGE CONTENTS {} ***\n", id);
        std::ifstream in(q.message_path(id, *p), std::ios::binary);
        std::cout << in.rdbuf();
        std::cout << std::flush;
        return 0;
    });
}

namespace {
// act(id) on every id ("ALL": every message in places), its errors per id, then the total.
template <typename Act>
int apply(const std::filesystem::path& data, const std::vector<std::string>& ids, std::initializer_list<Place> places,
          const char* what, Act act) {
    return with_queue(data, [&](Queue& q) {
        int rc = 0;
        std::size_t n = 0;
        for (auto& id : expand(q, ids, places)) {
            auto err = act(q, id);
            if (!err.empty()) {
                fmt::print(stderr, "pillarbox: {}: {}\n", id, err);
                rc = 1;
                continue;
            }
            ++n;
        }
        fmt::print(stderr, "pillarbox: {}: {} message{}\n", what, n, n == 1 ? "" : "s");
        return rc;
    });
}
}  // namespace

int release_command(const std::filesystem::path& data, const std::vector<std::string>& ids) {
    return apply(data, ids, {Place::Hold}, "Released from hold",
                 [](Queue& q, const std::string& id) { return q.move(id, Place::Hold, Place::Incoming); });
}

int delete_command(const std::filesystem::path& data, const std::vector<std::string>& ids) {
    return apply(data, ids, {Place::Messages, Place::Hold, Place::Incoming}, "Deleted", [](Queue& q, const std::string& id) {
        auto p = find(q, id);
        return p ? q.remove(id, *p) : std::string("no such message in the queue");
    });
}

}  // namespace pillarbox::storage::queue
