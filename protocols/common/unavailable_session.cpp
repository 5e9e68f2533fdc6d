// The "not available yet" session (see unavailable_session.hpp).
#include "unavailable_session.hpp"

#include "server/config.hpp"

namespace pillarbox::protocols {
namespace {

class UnavailableSession final : public Session {
public:
    UnavailableSession(SessionIo& io, GoodbyeText goodbye) : io_(io), goodbye_(goodbye) {}
    void on_start() override { say(Goodbye::NotAvailable); }
    std::size_t on_input(std::string_view data) override { return data.size(); }
    void on_refused(std::string_view) override { say(Goodbye::TooManyConnections); }
    void on_timeout() override { say(Goodbye::IdleTimeout); }
    void on_shutdown() override { say(Goodbye::ShuttingDown); }

private:
    void say(Goodbye why) {
        io_.send(goodbye_(why, io_.info().config->get("myhostname")));
        io_.close();
    }
    SessionIo& io_;
    GoodbyeText goodbye_;
};

}  // namespace

std::unique_ptr<Session> make_unavailable_session(SessionIo& io, GoodbyeText goodbye) {
    return std::make_unique<UnavailableSession>(io, goodbye);
}

}  // namespace pillarbox::protocols
