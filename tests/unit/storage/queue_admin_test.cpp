// The queue's admin operations: listing every place in order, finding a message wherever it is,
// releasing held messages and deleting from any place, with a reason per refused id.
#include <catch2/catch.hpp>

#include <asio/io_context.hpp>

#include "storage/queue/queue.hpp"
#include "storage/queue/queue_admin.hpp"
#include "tests/unit/server/test_support.hpp"

using namespace pillarbox;
using namespace pillarbox::storage::queue;

namespace {

std::string enqueue(const std::filesystem::path& data, Place where, const std::string& sender) {
    asio::io_context io;
    Queue q(io, data);
    Envelope e;
    e.sender = sender;
    e.recipients = {{"bob@example.net", 0, ""}};
    e.reason = where == Place::Hold ? "held for review" : "";
    std::string id;
    auto w = q.writer(where);
    w->start(std::move(e));
    w->body("Subject: hi\r\n\r\nbody\r\n");
    w->commit([&](bool ok, std::string text) {
        if (ok) id = text;
    });
    io.run();
    return id;
}

}  // namespace

TEST_CASE("queue admin: list, find, release and delete") {
    test::TempDir dir;
    CHECK(list_messages(dir.path).empty());
    auto held = enqueue(dir.path, Place::Hold, "alice@example.org");
    auto queued = enqueue(dir.path, Place::Messages, "");
    REQUIRE(!held.empty());
    REQUIRE(!queued.empty());

    auto list = list_messages(dir.path);
    REQUIRE(list.size() == 2);
    CHECK(list[0].id == queued);  // the outbound queue first, then held messages
    CHECK(list[0].place == Place::Messages);
    CHECK(list[1].id == held);
    CHECK(list[1].place == Place::Hold);
    CHECK(list[1].envelope.reason == "held for review");
    CHECK(list[1].envelope.sender == "alice@example.org");

    auto found = find_message(dir.path, held);
    REQUIRE(found);
    CHECK(found->place == Place::Hold);
    CHECK(test::read_file(found->message_file) == "Subject: hi\r\n\r\nbody\r\n");
    CHECK_FALSE(find_message(dir.path, "0123456789ABCDEF"));

    // ALL releases held messages only; an unknown id is refused with its reason.
    auto released = release_messages(dir.path, {"ALL", "0123456789ABCDEF"});
    REQUIRE(released.size() == 2);
    CHECK(released[0].id == held);
    CHECK(released[0].error.empty());
    CHECK_FALSE(released[1].error.empty());
    CHECK(find_message(dir.path, held)->place == Place::Incoming);

    auto deleted = delete_messages(dir.path, {queued, "0123456789ABCDEF"});
    REQUIRE(deleted.size() == 2);
    CHECK(deleted[0].error.empty());
    CHECK(deleted[1].error == "no such message in the queue");
    auto all = delete_messages(dir.path, {"ALL"});
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == held);
    CHECK(list_messages(dir.path).empty());
}
