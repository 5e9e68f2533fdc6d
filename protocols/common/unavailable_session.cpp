// The "not available yet" session (see unavailable_session.hpp).
#include "unavailable_session.hpp"

#include "service_replies.hpp"

namespace pillarbox::protocols {
namespace {

class UnavailableSession final : public Session {
public:
    explicit UnavailableSession(SessionIo& io) : io_(io) {}
    void on_start() override { say(Goodbye::NotAvailable); }
    std::size_t on_input(std::string_view data) override { return data.size(); }
    void on_refused(std::string_view) override { say(Goodbye::TooManyConnections); }
    void on_timeout() override { say(Goodbye::IdleTimeout); }
    void on_shutdown() override { say(Goodbye::ShuttingDown); }

private:
    void say(Goodbye why) {
        const auto& info = io_.info();
        io_.send(goodbye(info.protocol, why, info.config->get("myhostname")));
        io_.close();
    }
    SessionIo& io_;
};

}  // namespace

std::unique_ptr<Session> make_unavailable_session(SessionIo& io) { return std::make_unique<UnavailableSession>(io); }

}  // namespace pillarbox::protocols
