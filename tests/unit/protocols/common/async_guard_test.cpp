// AsyncGuard: parked sessions are resumed through the Connection, and callbacks handed out
// before the session went never run.
#include <catch2/catch.hpp>

#include <functional>
#include <memory>

#include "protocols/common/async_guard.hpp"
#include "protocols/common/command_table.hpp"
#include "tests/unit/protocols/common/fake_io.hpp"

using namespace pillarbox;

TEST_CASE("async guard parks, resumes and drops late callbacks", "[async_guard]") {
    testing::FakeIo io;
    std::function<void(int)> late;
    int got = 0;
    {
        protocols::AsyncGuard g(io);
        g.park();
        CHECK(g.parked());
        auto cb = g.wrap([&](int v) {
            got = v;
            g.unpark();
        });
        cb(7);
        CHECK(got == 7);
        CHECK(!g.parked());
        CHECK(io.resumes == 1);
        late = g.wrap([&](int v) { got = v; });
    }
    late(9);  // the session is gone: nothing happens
    CHECK(got == 7);
}

TEST_CASE("end() stops callbacks before the guard itself goes", "[async_guard]") {
    testing::FakeIo io;
    protocols::AsyncGuard g(io);
    bool ran = false;
    auto cb = g.wrap([&] { ran = true; });
    g.end();
    cb();
    CHECK(!ran);
    CHECK(!g.alive());
}

TEST_CASE("error counter follows the stress limit", "[async_guard]") {
    testing::FakeIo io;
    protocols::ErrorCounter c;
    CHECK(!c.add(io, 3));
    CHECK(!c.add(io, 3));
    CHECK(c.add(io, 3));
    protocols::ErrorCounter s;
    io.stressed = true;  // under stress the first error ends the session
    CHECK(s.add(io, 20));
}
