// A SessionIo without a socket, for driving sessions and the session core in-process: records
// what was sent, counts resume_input() calls, and can simulate stress.
#pragma once
#include <string>

#include "server/session.hpp"

namespace pillarbox::testing {

class FakeIo : public SessionIo {
public:
    FakeIo() { info_.id = "TEST0001"; info_.peer_ip = "192.0.2.1"; info_.listener = "test"; }
    void send(std::string_view bytes) override { out += bytes; }
    void close() override { closed = true; }
    void start_tls() override { tls_requested = true; }
    void resume_input() override { ++resumes; }
    std::size_t output_queued() const override { return 0; }
    void set_peer_name(const std::string& name) override { info_.peer_name = name; }
    const ConnectionInfo& info() const override { return info_; }
    bool under_stress() const override { return stressed; }
    // What was sent since the last take().
    std::string take() { return std::exchange(out, {}); }

    ConnectionInfo info_;
    std::string out;
    bool closed = false, tls_requested = false, stressed = false;
    int resumes = 0;
};

}  // namespace pillarbox::testing
