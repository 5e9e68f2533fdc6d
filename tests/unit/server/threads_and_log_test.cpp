// Helper pools as SCHED_BATCH, the loop's gathered log lines, and values derived once per Config.
#include <catch2/catch.hpp>
#include <sched.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/thread_pool.hpp>
#include <filesystem>
#include <future>
#include <latch>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "server/background.hpp"
#include "server/config.hpp"
#include "server/log.hpp"
#include "server/loop_guard.hpp"
#include "server/worker_pool.hpp"
#include "test_support.hpp"

using namespace pillarbox;

TEST_CASE("make_background turns every thread of a pool into a SCHED_BATCH thread", "[background]") {
    asio::thread_pool pool(3);
    make_background(pool, 3);
    // Three jobs that wait for each other run on three different threads.
    std::mutex mu;
    std::set<std::thread::id> threads;
    std::set<int> policies;
    std::latch all(3);
    for (int i = 0; i < 3; ++i)
        asio::post(pool, [&] {
            {
                std::lock_guard lock(mu);
                threads.insert(std::this_thread::get_id());
                policies.insert(::sched_getscheduler(0));
            }
            all.arrive_and_wait();
        });
    pool.join();
    CHECK(threads.size() == 3);
    CHECK(policies == std::set<int>{SCHED_BATCH});
    CHECK(::sched_getscheduler(0) == SCHED_OTHER);  // the caller (the loop, in the server) is left alone
}

TEST_CASE("the worker pool's threads are SCHED_BATCH", "[background]") {
    asio::io_context loop;
    WorkerPool workers(loop, 2);
    std::promise<int> p;
    workers.run([] { return ::sched_getscheduler(0); }, [&p](int policy) { p.set_value(policy); });
    loop.run();
    CHECK(p.get_future().get() == SCHED_BATCH);
}

namespace {
// The log going to a file of its own, gathering on `loop`; both undone at the end.
struct LogToFile {
    test::TempDir dir;
    std::string file = (dir.path / "mail.log").string();
    asio::io_context loop;
    LogToFile() {
        REQUIRE(log::configure("pbtest", log::Level::Info, file).empty());
        log::gather_on(&loop);
    }
    ~LogToFile() {
        mark_loop_thread(false);
        log::gather_on(nullptr);
        log::configure("pillarbox", log::Level::Info, "");
    }
    std::string text() const { return test::read_file(file); }
};
}  // namespace

TEST_CASE("log lines written on the loop go out together at the end of its turn, in order", "[log]") {
    LogToFile log_file;
    auto& loop = log_file.loop;
    auto& file = log_file.file;
    std::string during_turn, after_warning;
    asio::post(loop, [&] {
        mark_loop_thread(true);
        log::info("smtpd", "first line");
        log::info("smtpd", "second line");
        during_turn = test::read_file(file);
        log::warning("smtpd", "third line, a warning");  // at once, after the gathered ones
        after_warning = test::read_file(file);
        log::info("smtpd", "fourth line");
    });
    loop.run();
    mark_loop_thread(false);
    log::gather_on(nullptr);
    std::string all = log_file.text();

    CHECK(during_turn.empty());
    auto first = after_warning.find("first line"), second = after_warning.find("second line"),
         third = after_warning.find("warning: third line");
    CHECK(first != std::string::npos);
    CHECK(second > first);
    CHECK(third != std::string::npos);
    CHECK(third > second);
    CHECK(after_warning.find("fourth line") == std::string::npos);
    CHECK(all.find("fourth line") > third);
    CHECK(all.find("pbtest/smtpd[") != std::string::npos);
}

TEST_CASE("lines from other threads, and from the loop when gathering is off, are written at once", "[log]") {
    LogToFile log_file;
    auto& loop = log_file.loop;
    auto& file = log_file.file;
    std::string seen;
    asio::post(loop, [&] {
        mark_loop_thread(true);
        log::info("smtpd", "from the loop");
        std::thread([] { log::info("cleanup", "from another thread"); }).join();
        seen = test::read_file(file);  // the other thread's line came after the loop's, so both are out
    });
    loop.run();
    mark_loop_thread(false);
    log::gather_on(nullptr);
    log::info("master", "no loop");
    std::string all = log_file.text();

    CHECK(seen.find("from the loop") != std::string::npos);
    CHECK(seen.find("from another thread") > seen.find("from the loop"));
    CHECK(all.find("no loop") != std::string::npos);
}

TEST_CASE("a value derived from a Config is made once and a copy of the Config makes its own", "[config]") {
    std::vector<config::Diagnostic> diags;
    auto c = config::Config::parse("smtpd_banner = a.example\n", "t.conf", config::Environment{false, "h.example"}, diags);
    struct Host {
        std::string name;
    };
    int made = 0;
    auto make = [&] {
        ++made;
        return Host{c.get("smtpd_banner")};
    };
    auto a = c.derived<Host>(make);
    auto b = c.derived<Host>(make);
    CHECK(made == 1);
    CHECK(a == b);
    CHECK(a->name == "a.example");

    config::Setting where{"listen_smtp", "", "t.conf", 2};
    auto o = c.with_overrides({{"smtpd_banner", "b.example"}}, where, diags);
    auto ob = o.derived<Host>([&] {
        ++made;
        return Host{o.get("smtpd_banner")};
    });
    CHECK(diags.empty());
    CHECK(made == 2);
    CHECK(ob->name == "b.example");
    CHECK(c.derived<Host>(make)->name == "a.example");
}
