// Released messages back into the mail stream (Postfix's pickup and qmgr, for this one step):
// the server watches the queue's incoming/, routes each message's recipients again (local
// accounts to their mailboxes through the Store, other addresses to the outbound queue) and
// deletes it once every copy is durable.
#pragma once
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "auth/recipients.hpp"
#include "delivery/dispatcher.hpp"
#include "protocols/smtp/session.hpp"

namespace pillarbox::smtp {

class Pickup : public std::enable_shared_from_this<Pickup> {
public:
    // services: loop, workers, store, queue and accounts must be set.
    Pickup(std::shared_ptr<Services> services, auth::RecipientSettings recipients, std::chrono::seconds interval);
    // Creates incoming/ if needed, then routes what is there now, again whenever something is
    // moved into it (inotify), and every interval (a message that failed for a while).
    void start();
    void stop();

private:
    struct Routed;
    void scan();
    void next();
    void deliver(std::shared_ptr<Routed> r);
    void finished(std::shared_ptr<Routed> r, delivery::Result res);
    void watch();

    std::shared_ptr<Services> services_;
    auth::RecipientSettings recipients_;
    std::chrono::seconds interval_;
    asio::steady_timer timer_;
    std::unique_ptr<asio::posix::stream_descriptor> inotify_;
    std::vector<char> event_buf_;
    std::vector<std::string> todo_;
    bool busy_ = false, again_ = false, stopped_ = false;
};

}  // namespace pillarbox::smtp
