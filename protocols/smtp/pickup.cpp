// Pickup of released messages (see pickup.hpp).
#include "protocols/smtp/pickup.hpp"

#include <fcntl.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <set>

#include "auth/accounts.hpp"
#include "delivery/dispatcher.hpp"
#include "server/log.hpp"
#include "server/worker_pool.hpp"
#include "storage/queue/queue.hpp"
#include "storage/store.hpp"

namespace pillarbox::smtp {

namespace fs = std::filesystem;
using storage::queue::Place;

// One released message, routed.
struct Pickup::Routed {
    std::string id;
    storage::queue::Envelope env;
    std::string data;                                 // the .eml, as held
    std::vector<std::pair<std::string, std::string>> refused;  // recipient, why (permanent)
    std::string error;                                // reading or resolving failed: try later
    // Per envelope recipient (same order): where it goes (empty when refused).
    std::vector<delivery::Recipient> targets;
    std::vector<bool> is_refused;
};

Pickup::Pickup(std::shared_ptr<Services> services, auth::RecipientSettings recipients, std::chrono::seconds interval)
    : services_(std::move(services)), recipients_(std::move(recipients)), interval_(interval), timer_(*services_->loop) {}

void Pickup::start() {
    auto dir = services_->queue->message_path("0000000000000000", Place::Incoming).parent_path();
    std::error_code ec;
    fs::create_directories(dir, ec);
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd >= 0 && ::inotify_add_watch(fd, dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) >= 0) {
        inotify_ = std::make_unique<asio::posix::stream_descriptor>(*services_->loop, fd);
        event_buf_.resize(4096);
        watch();
    } else {
        if (fd >= 0) ::close(fd);
        log::warning("pickup", "cannot watch {} ({}): released messages wait for the next scan", dir.string(), std::strerror(errno));
    }
    scan();
}

void Pickup::stop() {
    stopped_ = true;
    timer_.cancel();
    if (inotify_) inotify_->close();
}

void Pickup::watch() {
    inotify_->async_read_some(asio::buffer(event_buf_), [self = shared_from_this()](std::error_code ec, std::size_t) {
        if (ec || self->stopped_) return;
        self->scan();
        self->watch();
    });
}

// Lists incoming/ and routes the messages one at a time; a scan asked for meanwhile runs after.
void Pickup::scan() {
    if (stopped_) return;
    if (busy_) {
        again_ = true;
        return;
    }
    busy_ = true;
    again_ = false;
    auto* queue = services_->queue;
    services_->workers->run([queue] { return queue->list(Place::Incoming); },
                            [self = shared_from_this()](std::vector<std::string> ids) {
                                self->todo_ = std::move(ids);
                                std::reverse(self->todo_.begin(), self->todo_.end());  // oldest first, from the back
                                self->next();
                            });
}

void Pickup::next() {
    if (stopped_) return;
    if (todo_.empty()) {
        busy_ = false;
        if (again_) return scan();
        timer_.expires_after(interval_);
        timer_.async_wait([self = shared_from_this()](std::error_code ec) {
            if (!ec) self->scan();
        });
        return;
    }
    auto id = std::move(todo_.back());
    todo_.pop_back();
    auto* queue = services_->queue;
    auto db = services_->accounts;
    auto rs = recipients_;
    services_->workers->run(
        [queue, db, rs, id] {
            auto r = std::make_shared<Routed>();
            r->id = id;
            std::string why;
            auto env = queue->read_envelope(id, Place::Incoming, &why);
            if (!env) {
                r->error = why;
                return r;
            }
            r->env = *env;
            auto path = queue->message_path(id, Place::Incoming);
            int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                r->error = fmt::format("open {}: {}", path.string(), std::strerror(errno));
                return r;
            }
            r->data.resize(env->size);
            std::size_t got = 0;
            while (got < r->data.size()) {
                ssize_t n = ::pread(fd, r->data.data() + got, r->data.size() - got, static_cast<off_t>(got));
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                got += static_cast<std::size_t>(n);
            }
            ::close(fd);
            if (got != r->data.size()) {
                r->error = fmt::format("read {}: short read", path.string());
                return r;
            }
            // Routed again from scratch, like new mail: aliases or accounts may have changed
            // while the message was held.
            auth::RecipientResolver resolver(*db, rs);
            try {
                for (auto& rcpt : env->recipients) {
                    auto res = resolver.resolve(rcpt.address);
                    using S = auth::Resolution::Status;
                    auto& t = r->targets.emplace_back();
                    t.address = rcpt.address;
                    t.dsn.notify = rcpt.notify;
                    t.dsn.orcpt = rcpt.orcpt;
                    if (res.status == S::NotLocal) res.remote = {rcpt.address};
                    if (res.status == S::TempFail) throw std::runtime_error(res.detail);
                    bool refused = res.status == S::Unknown || res.status == S::Loop;
                    r->is_refused.push_back(refused);
                    if (refused) {
                        r->refused.emplace_back(rcpt.address, res.status == S::Unknown ? "5.1.1 unknown user"
                                                                                        : "5.4.6 alias loop or too many expansions");
                        continue;
                    }
                    t.accounts = res.accounts;
                    t.remote = res.remote;
                }
            } catch (const std::exception& e) {
                r->error = fmt::format("recipient lookup: {}", e.what());
            }
            return r;
        },
        [self = shared_from_this()](std::shared_ptr<Routed> r) {
            if (!r->error.empty()) {
                // The message stays in incoming/ and is tried again at the next scan.
                log::line(log::Level::Warning, "pickup", r->id, "not routed, will try again: {}", r->error);
                return self->next();
            }
            self->deliver(std::move(r));
        });
}

void Pickup::deliver(std::shared_ptr<Routed> r) {
    log::line(log::Level::Info, "pickup", r->id, "from=<{}>, size={}, nrcpt={} (from incoming/: released from hold, or a local retry)", r->env.sender, r->env.size,
              r->env.recipients.size());
    delivery::Message m;
    m.queue_id = r->id;
    m.service = "pickup";
    m.envelope = r->env;
    m.envelope.recipients.clear();
    m.envelope.id.clear();
    m.envelope.received = 0;
    m.envelope.next_attempt = 0;
    m.envelope.reason.clear();
    // Postfix's delay=: since the message arrived, time on hold included.
    m.arrived = std::chrono::system_clock::from_time_t(static_cast<std::time_t>(r->env.received));
    for (std::size_t i = 0; i < r->targets.size(); ++i)
        if (!r->is_refused[i]) m.recipients.push_back(r->targets[i]);
    auto dispatch = delivery::Dispatcher::create({services_->loop, services_->store, services_->queue}, std::move(m));
    if (!dispatch->open()) {
        log::line(log::Level::Error, "pickup", r->id, "not delivered, will try again: the store or the queue is not available");
        return next();
    }
    dispatch->body(r->data);
    dispatch->commit(delivery::PartialFailures::Report,
                     [self = shared_from_this(), r](delivery::Result res) { self->finished(r, std::move(res)); });
}

void Pickup::finished(std::shared_ptr<Routed> r, delivery::Result res) {
    for (auto& [rcpt, why] : r->refused)
        log::line(log::Level::Info, "pickup", r->id, "to=<{}>, relay=none, dsn={}, status=bounced ({})", rcpt, why.substr(0, 5),
                  why.substr(6));
    // The recipients not done yet stay with the message: a temporary failure is tried again
    // from incoming/; a permanent one (unknown now, over quota) sends the message back to the
    // hold queue for the admin, as there are no bounce messages yet. Nothing is dropped.
    std::vector<storage::queue::Recipient> keep;
    bool permanent = false;
    using State = delivery::RecipientState;
    for (std::size_t i = 0, k = 0; i < r->targets.size() && i < r->env.recipients.size(); ++i) {
        State state = r->is_refused[i] ? State::Permanent : k < res.recipients.size() ? res.recipients[k++] : State::Temporary;
        if (state == State::Delivered) continue;
        keep.push_back(r->env.recipients[i]);
        if (state == State::Permanent) permanent = true;
    }
    auto* queue = services_->queue;
    auto self = shared_from_this();
    if (keep.empty()) {
        services_->workers->run([queue, id = r->id] { return queue->remove(id, Place::Incoming); },
                                [self, id = r->id](std::string err) {
                                    if (!err.empty()) log::line(log::Level::Error, "pickup", id, "remove from incoming/: {}", err);
                                    else log::line(log::Level::Info, "pickup", id, "removed");
                                    self->next();
                                });
        return;
    }
    auto env = r->env;
    // Nothing changed (the same recipients failed again, temporarily): leave the files alone.
    // Rewriting them would wake the watch on incoming/ at once and retry in a tight loop; the
    // next try is the next periodic scan.
    bool same = !permanent && keep.size() == env.recipients.size();
    env.recipients = keep;
    if (permanent) {
        std::string why;
        for (std::size_t i = 0; i < res.local.size() && i < res.accounts.size(); ++i)
            if (!res.local[i].ok && !res.local[i].temporary) why += (why.empty() ? "" : "; ") + res.accounts[i] + ": " + res.local[i].reason;
        for (auto& [rcpt, reason] : r->refused) why += (why.empty() ? "" : "; ") + rcpt + ": " + reason;
        env.reason = delivery::envelope_reason("not delivered, back on hold: " + why);
    }
    services_->workers->run(
        [queue, env, permanent, same] {
            if (same) return std::string();
            auto err = queue->rewrite_envelope(env, Place::Incoming);
            if (err.empty() && permanent) err = queue->move(env.id, Place::Incoming, Place::Hold);
            return err;
        },
        [self, id = r->id, n = keep.size(), permanent, interval = interval_](std::string err) {
            if (!err.empty())
                log::line(log::Level::Error, "pickup", id, "keeping {} recipient(s) failed, the message stays as it was: {}", n, err);
            else if (permanent)
                log::line(log::Level::Warning, "pickup", id,
                          "back in the hold queue with {} recipient(s) that could not be delivered (no bounce messages yet): "
                          "release it again once fixed, or delete it",
                          n);
            else
                log::line(log::Level::Warning, "pickup", id, "kept in incoming/ with {} recipient(s), will try again in {}s", n,
                          interval.count());
            self->next();
        });
}

}  // namespace pillarbox::smtp
