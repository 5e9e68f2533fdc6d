// The admin's operations on the queue (see queue_admin.hpp).
#include "storage/queue/queue_admin.hpp"

#include <asio/io_context.hpp>

namespace pillarbox::storage::queue {

namespace {

constexpr Place kPlaces[] = {Place::Messages, Place::Hold, Place::Incoming};

// Runs fn(queue) with a queue that never writes (no io_context needs to run for these calls).
template <typename Fn>
auto with_queue(const std::filesystem::path& data, Fn fn) {
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

// act(queue, id) on every id ("ALL": every message in places): its error, or "".
template <typename Act>
std::vector<MessageOutcome> apply(const std::filesystem::path& data, const std::vector<std::string>& ids,
                                  std::initializer_list<Place> places, Act act) {
    return with_queue(data, [&](Queue& q) {
        std::vector<MessageOutcome> out;
        for (auto& id : expand(q, ids, places)) out.push_back({id, act(q, id)});
        return out;
    });
}

}  // namespace

std::vector<QueuedMessage> list_messages(const std::filesystem::path& data) {
    return with_queue(data, [](Queue& q) {
        std::vector<QueuedMessage> out;
        for (Place p : kPlaces) {
            for (auto& id : q.list(p)) {
                auto env = q.read_envelope(id, p);
                if (!env) continue;  // gone meanwhile (delivered, released)
                out.push_back({id, p, std::move(*env), q.message_path(id, p)});
            }
        }
        return out;
    });
}

std::optional<QueuedMessage> find_message(const std::filesystem::path& data, const std::string& id) {
    return with_queue(data, [&](Queue& q) -> std::optional<QueuedMessage> {
        auto p = find(q, id);
        if (!p) return std::nullopt;
        auto env = q.read_envelope(id, *p);
        if (!env) return std::nullopt;
        return QueuedMessage{id, *p, std::move(*env), q.message_path(id, *p)};
    });
}

std::vector<MessageOutcome> release_messages(const std::filesystem::path& data, const std::vector<std::string>& ids) {
    return apply(data, ids, {Place::Hold}, [](Queue& q, const std::string& id) { return q.move(id, Place::Hold, Place::Incoming); });
}

std::vector<MessageOutcome> delete_messages(const std::filesystem::path& data, const std::vector<std::string>& ids) {
    return apply(data, ids, {Place::Messages, Place::Hold, Place::Incoming}, [](Queue& q, const std::string& id) {
        auto p = find(q, id);
        return p ? q.remove(id, *p) : std::string("no such message in the queue");
    });
}

}  // namespace pillarbox::storage::queue
