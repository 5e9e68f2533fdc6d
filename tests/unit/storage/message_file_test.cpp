// New message files: unnamed (O_TMPFILE + linkat) and named (tmp/ + rename), placing, mtime,
// discarding; and whole deliveries through the Store on the named fallback.
#include <catch2/catch.hpp>

#include <asio/io_context.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "storage/message_file.hpp"
#include "storage/store.hpp"
#include "tests/unit/server/test_support.hpp"
#include "tests/unit/storage/store_support.hpp"
#include "tests/unit/test_config.hpp"

using namespace pillarbox;
using namespace pillarbox::storage;
namespace fs = std::filesystem;

namespace {

std::size_t entries(const fs::path& dir) {
    return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

struct Restore {
    ~Restore() { use_unnamed_message_files(true); }
};

}  // namespace

TEST_CASE("message files: written, timed and placed, the unnamed and the named way") {
    Restore restore;
    for (bool unnamed : {true, false}) {
        DYNAMIC_SECTION((unnamed ? "unnamed" : "named")) {
            use_unnamed_message_files(unnamed);
            test::TempDir dir;
            fs::create_directories(dir.path / "tmp");
            fs::create_directories(dir.path / "new");
            NewMessage m;
            m.base = "1700000000.M1P1Q1.test";
            int fd = create_message_file(dir.path / "tmp", m);
            REQUIRE(fd >= 0);
            CHECK(static_cast<bool>(m.file) == unnamed);
            CHECK(m.tmp_path.empty() == unnamed);
            // An unnamed file is invisible until placed.
            CHECK(entries(dir.path / "tmp") == (unnamed ? 0u : 1u));
            REQUIRE(write_fully(fd, "Subject: x\r\n\r\nbody\r\n"));
            if (!m.file) ::close(fd);
            set_message_mtime(m, 1600000000);
            place_message_file(m, dir.path / "new" / (m.base + ",S=20"));
            CHECK_FALSE(m.file);
            CHECK(m.tmp_path.empty());
            CHECK(entries(dir.path / "tmp") == 0);
            auto placed = dir.path / "new" / (m.base + ",S=20");
            CHECK(test::read_file(placed) == "Subject: x\r\n\r\nbody\r\n");
            CHECK(std::chrono::duration_cast<std::chrono::seconds>(
                      fs::last_write_time(placed).time_since_epoch() -
                      std::chrono::file_clock::from_sys(std::chrono::sys_seconds(std::chrono::seconds(1600000000)))
                          .time_since_epoch())
                      .count() == 0);
        }
    }
}

TEST_CASE("message files: a discarded one leaves nothing behind") {
    Restore restore;
    for (bool unnamed : {true, false}) {
        use_unnamed_message_files(unnamed);
        test::TempDir dir;
        fs::create_directories(dir.path / "tmp");
        NewMessage m;
        m.base = "1700000000.M2P1Q1.test";
        int fd = create_message_file(dir.path / "tmp", m);
        REQUIRE(fd >= 0);
        REQUIRE(write_fully(fd, "data"));
        if (!m.file) ::close(fd);
        discard_message_file(m);
        CHECK(entries(dir.path / "tmp") == 0);
        CHECK_FALSE(m.file);
    }
}

TEST_CASE("the store delivers and appends through the named fallback too") {
    Restore restore;
    use_unnamed_message_files(false);
    test::TempDir dir;
    asio::io_context io;
    Store store(io, test::store_settings(dir.path));
    std::vector<RecipientResult> got;
    auto d = store.delivery();
    d->start("s@example.net", true);
    d->add_recipient("alice", "example.org", "alice@example.org");
    d->add_recipient("bob", "example.org", "");
    d->body("Subject: named\r\n\r\nhello\r\n");
    d->commit([&](std::vector<RecipientResult> r) { got = std::move(r); });
    io.run();
    io.restart();
    REQUIRE(got.size() == 2);
    CHECK(got[0].ok);
    CHECK(got[1].ok);
    auto appended = test::append_text(io, store, {"alice", "example.org"}, "Sent", "Subject: sent\r\n\r\nx\r\n", kSeen);
    CHECK(appended.ok());
    auto root = dir.path / "mail" / "example.org";
    CHECK(entries(root / "alice" / "new") == 1);
    CHECK(entries(root / "bob" / "new") == 1);
    CHECK(entries(root / "alice" / ".Sent" / "cur") == 1);
    for (auto* who : {"alice", "bob"}) CHECK(entries(root / who / "tmp") == 0);
}

TEST_CASE("a batch over quota is retried message by message, and the ones that fit arrive") {
    Restore restore;
    for (bool unnamed : {true, false}) {
        DYNAMIC_SECTION((unnamed ? "unnamed" : "named")) {
            use_unnamed_message_files(unnamed);
            test::TempDir dir;
            asio::io_context io;
            auto settings = test::store_settings(dir.path);
            settings.quota.max_messages = 3;
            Store store(io, settings);
            // Four deliveries committed at once: the first two go in batches of their own (two
            // batches may be in flight), the other two queue up behind them and form one batch,
            // which is over the quota as a whole; one by one, the first of them still fits.
            std::vector<std::optional<RecipientResult>> got(4);
            std::vector<std::unique_ptr<DeliveryTarget>> ds;
            for (int i = 0; i < 4; ++i) {
                auto d = store.delivery();
                d->start("s@example.net", false);
                d->add_recipient("alice", "example.org", "");
                d->body("Subject: " + std::to_string(i) + "\r\n\r\nx\r\n");
                d->commit([&got, i](std::vector<RecipientResult> r) { got[static_cast<std::size_t>(i)] = r.at(0); });
                ds.push_back(std::move(d));
            }
            io.run();
            int ok = 0, over = 0;
            for (auto& r : got) {
                REQUIRE(r);
                if (r->ok) ++ok;
                else if (r->over_quota) ++over;
                else FAIL("a failure that is not over quota: " << r->reason);
            }
            CHECK(ok == 3);
            CHECK(over == 1);
            auto root = dir.path / "mail" / "example.org" / "alice";
            CHECK(entries(root / "new") == 3);
            CHECK(entries(root / "tmp") == 0);
        }
    }
}
