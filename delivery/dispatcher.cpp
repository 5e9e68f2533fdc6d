// The delivery dispatcher (see dispatcher.hpp).
#include "delivery/dispatcher.hpp"

#include <asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "server/log.hpp"
#include "storage/mailboxes.hpp"

namespace pillarbox::delivery {

using storage::queue::Place;

std::shared_ptr<Dispatcher> Dispatcher::create(Targets targets, Message message) {
    return std::shared_ptr<Dispatcher>(new Dispatcher(targets, std::move(message)));
}

Dispatcher::~Dispatcher() = default;  // targets not committed abort as their handles go

double Dispatcher::delay() const {
    return std::max(0.0, std::chrono::duration<double>(std::chrono::system_clock::now() - m_.arrived).count());
}

bool Dispatcher::open() {
    std::set<std::string> accounts;
    for (auto& r : m_.recipients) accounts.insert(r.accounts.begin(), r.accounts.end());
    result_.accounts.assign(accounts.begin(), accounts.end());
    if (m_.hold) return open_hold();
    if (!accounts.empty()) {
        if (!t_.store) return false;
        local_ = t_.store->delivery();
        local_->start(m_.envelope.sender, true);
        for (auto& a : result_.accounts) {
            auto at = a.rfind('@');
            local_->add_recipient(a.substr(0, at), a.substr(at + 1), a);
        }
    }
    std::set<std::string> seen;
    for (auto& r : m_.recipients)
        for (auto& x : r.remote) {
            if (!seen.insert(x).second) continue;
            if (!remote_) {
                if (!t_.queue) return false;
                auto base = m_.envelope;
                base.recipients.clear();
                remote_ = t_.queue->writer(Place::Messages, std::move(base));
                remote_->start(m_.envelope.sender, false);
            }
            remote_->add_recipient(x, "", "", r.dsn);
        }
    return true;
}

// Postfix's hold queue: the whole message, with every recipient as the client gave it, goes to
// the queue's hold/ and nothing is delivered. Released (pillarbox queue release), it is routed
// again from scratch, as Postfix's qmgr resolves a released message's recipients again.
bool Dispatcher::open_hold() {
    if (!t_.queue) return false;
    auto base = m_.envelope;
    base.recipients.clear();
    remote_ = t_.queue->writer(Place::Hold, std::move(base));
    remote_->start(m_.envelope.sender, false);
    for (auto& r : m_.recipients) remote_->add_recipient(r.address, "", "", r.dsn);
    held_ = true;
    return true;
}

bool Dispatcher::hold_now() {
    if (local_) local_->abort();
    if (remote_) remote_->abort();
    local_.reset();
    remote_.reset();
    return open_hold();
}

void Dispatcher::body(std::string_view bytes) {
    if (local_) local_->body(bytes);
    if (remote_) remote_->body(bytes);
}

std::size_t Dispatcher::buffered() const { return (local_ ? local_->buffered() : 0) + (remote_ ? remote_->buffered() : 0); }

void Dispatcher::on_drained(std::function<void()> cb) {
    auto waiting = std::make_shared<int>((local_ ? 1 : 0) + (remote_ ? 1 : 0));
    if (*waiting == 0) return cb();
    // Weak: a target keeps its callback until it drains, and the target is ours.
    auto resume = [weak = weak_from_this(), waiting, cb = std::move(cb)] {
        if (weak.expired() || --*waiting > 0) return;
        cb();
    };
    if (local_) local_->on_drained(resume);
    if (remote_) remote_->on_drained(resume);
}

void Dispatcher::commit(PartialFailures partial, std::function<void(Result)> done) {
    committing_ = true;
    partial_ = partial;
    done_ = std::move(done);
    pending_ = (local_ ? 1 : 0) + (remote_ ? 1 : 0);
    auto self = shared_from_this();  // the targets' callbacks keep the dispatcher until the end
    if (local_)
        local_->commit([self](std::vector<storage::RecipientResult> results) {
            self->result_.local = std::move(results);
            if (--self->pending_ == 0) self->committed();
        });
    if (remote_)
        remote_->commit([self](std::vector<storage::RecipientResult> results) {
            self->remote_results_ = std::move(results);
            bool ok = !self->remote_results_.empty() && self->remote_results_.front().ok;
            auto& m = self->m_;
            if (!ok) {
                log::line(log::Level::Error, m.service, m.queue_id, "queue write failed: {}",
                          self->remote_results_.empty() ? std::string("no result") : self->remote_results_.front().reason);
            } else {
                const std::string& id = self->remote_results_.front().queue_id;
                if (self->held_) {
                    for (auto& r : m.recipients)
                        self->log_.push_back(fmt::format("to=<{}>, relay=none, status=held (hold queue id {})", r.address, id));
                } else {
                    std::set<std::string> seen;
                    for (auto& r : m.recipients)
                        for (auto& x : r.remote)
                            if (seen.insert(x).second)
                                self->log_.push_back(fmt::format("to=<{}>, relay=none, status=queued (outbound queue id {})", x, id));
                }
            }
            if (--self->pending_ == 0) self->committed();
        });
    if (pending_ == 0) committed();
}

// Every commit is back. A message that reached anyone is accepted: answering 4xx/5xx for a
// partly delivered message made the client retry (a duplicate for everyone who had it) or
// bounce it (a false failure). With QueueCopies the recipients it missed get their copy in the
// queue first, durably, before the answer: a temporary failure goes to incoming/, where the
// pickup service retries it; over quota goes to the hold queue with the reason, kept for the
// admin until bounce messages exist. Only when nobody has it is the message refused.
void Dispatcher::committed() {
    auto& accounts = result_.accounts;
    if (local_ && result_.local.size() != accounts.size()) {
        // A DeliveryTarget answers once per recipient; anything else is a bug: fail safe.
        result_.local.assign(accounts.size(), storage::RecipientResult{});
    }
    bool remote_ok = remote_ && !remote_results_.empty() && remote_results_.front().ok;
    result_.remote_failed = remote_ && !held_ && !remote_ok;
    auto outcome = decide_outcome(result_.local, accounts, remote_ != nullptr && !held_, remote_ok);
    if (!local_ && !remote_) outcome = {.accepted = true, .refusal = {}, .copies = {}};  // nothing was to be written
    if (held_) {
        // The whole message went to the hold queue (HOLD): that copy is the only one.
        outcome = {};
        outcome.accepted = remote_ok;
        if (!remote_ok) outcome.refusal = "451 4.3.0 Error: queue file write error";
    }
    for (auto& r : m_.recipients) {
        auto state = RecipientState::Delivered;
        auto worse = [&](RecipientState s) { state = std::max(state, s); };
        if (held_ && !remote_ok) worse(RecipientState::Temporary);
        for (auto& a : r.accounts) {
            if (held_) break;  // the hold queue's copy speaks for every account
            auto i = static_cast<std::size_t>(std::find(accounts.begin(), accounts.end(), a) - accounts.begin());
            if (i >= result_.local.size()) worse(RecipientState::Temporary);
            else if (!result_.local[i].ok) worse(result_.local[i].temporary ? RecipientState::Temporary : RecipientState::Permanent);
        }
        if (!r.remote.empty() && result_.remote_failed) worse(RecipientState::Temporary);
        result_.recipients.push_back(state);
    }
    if (partial_ == PartialFailures::QueueCopies && !outcome.copies.empty()) return queue_copies(std::move(outcome));
    log_local({});
    result_.accepted = outcome.accepted;
    result_.refusal = outcome.refusal;
    finish();
}

// The retry and hold copies of a partly delivered message. Their bytes come from a file already
// on disk, not from memory (a session may take message_size_limit bytes, and there may be a
// thousand sessions): the store keeps a descriptor of one complete copy it wrote (its own
// Return-Path/Delivered-To lines skipped), else the outbound queue's .eml; the queue reads and
// writes it on its own threads.
void Dispatcher::queue_copies(DeliveryOutcome outcome) {
    std::shared_ptr<const storage::MessageCopy> source = local_ ? local_->copy_source() : nullptr;
    bool remote_ok = remote_ && !remote_results_.empty() && remote_results_.front().ok;
    if (!source && remote_ok && !held_) {
        auto c = std::make_shared<storage::MessageCopy>();
        c->path = t_.queue->message_path(remote_results_.front().queue_id).string();
        source = std::move(c);
    }
    auto self = shared_from_this();
    auto copies = std::make_shared<std::vector<DeliveryOutcome::Copy>>(std::move(outcome.copies));
    auto pending = std::make_shared<std::size_t>(copies->size());
    auto results = std::make_shared<std::vector<std::pair<bool, std::string>>>(copies->size());
    auto done = [self, copies, results] {
        bool all_ok = true;
        std::vector<std::string> copy_of(self->result_.accounts.size());  // the copy's log text, per account
        for (std::size_t k = 0; k < copies->size(); ++k) {
            auto& c = (*copies)[k];
            auto& [ok, id_or_error] = (*results)[k];
            if (!ok) all_ok = false;
            std::string what = !ok ? fmt::format("could not be queued: {}", id_or_error)
                             : c.place == Place::Hold ? fmt::format("held in the hold queue as {}", id_or_error)
                                                      : fmt::format("queued for a local retry as {}", id_or_error);
            for (auto i : c.accounts) copy_of[i] = what;
            if (c.remote) {
                for (auto& r : self->m_.recipients)
                    for (auto& x : r.remote)
                        self->log_.push_back(ok ? fmt::format("to=<{}>, relay=none, status=queued (outbound queue id {})", x, id_or_error)
                                                : fmt::format("to=<{}>, relay=none, status=deferred (queue write failed: {})", x, id_or_error));
            }
        }
        self->log_local(copy_of);
        // A copy that could not be made durable: the recipients it names would be lost with an
        // acknowledgement, so the sender keeps the message (the others get it twice, never none).
        self->result_.accepted = all_ok;
        if (!all_ok) self->result_.refusal = "451 4.3.0 Error: queue file write error";
        self->finish();
    };
    for (std::size_t k = 0; k < copies->size(); ++k) {
        auto& c = (*copies)[k];
        auto env = m_.envelope;
        env.recipients.clear();
        env.reason = c.reason;
        auto add = [&](const std::string& address, const Recipient& from) {
            storage::queue::Recipient qr;
            qr.address = address;
            qr.notify = from.dsn.notify;
            qr.orcpt = from.dsn.orcpt;
            env.recipients.push_back(std::move(qr));
        };
        // The account's own address, not the alias the client gave: pickup routes it again, and
        // an alias would reach the accounts that have it already.
        for (auto i : c.accounts) {
            const Recipient* from = &m_.recipients.front();
            for (auto& r : m_.recipients)
                if (std::find(r.accounts.begin(), r.accounts.end(), result_.accounts[i]) != r.accounts.end()) {
                    from = &r;
                    break;
                }
            add(result_.accounts[i], *from);
        }
        if (c.remote)
            for (auto& r : m_.recipients)
                for (auto& x : r.remote) add(x, r);
        auto one_done = [k, pending, results, done](bool ok, std::string id_or_error) {
            (*results)[k] = {ok, std::move(id_or_error)};
            if (--*pending == 0) done();
        };
        if (!t_.queue || !source) {
            asio::post(*t_.loop, [one_done] { one_done(false, "no complete copy of the message to queue"); });
            continue;
        }
        t_.queue->copy_in(std::move(env), c.place, source, one_done);
    }
}

// The local recipients' delivery lines; copy_of (per account, may be empty) says what became of
// a failed one's queue copy.
void Dispatcher::log_local(const std::vector<std::string>& copy_of) {
    auto d = delay();
    auto& local = result_.local;
    for (std::size_t i = 0; i < local.size(); ++i) {
        auto& r = local[i];
        std::string note = i < copy_of.size() && !copy_of[i].empty() && !r.ok ? r.reason + "; " + copy_of[i] : std::string();
        log_.push_back(local_delivery_log(i < result_.accounts.size() ? result_.accounts[i] : "?", r, d, note));
    }
}

void Dispatcher::finish() {
    for (auto& l : log_) log::line(log::Level::Info, m_.service, m_.queue_id, "{}", l);
    log_.clear();
    local_.reset();
    remote_.reset();
    if (auto done = std::move(done_)) done(std::move(result_));
}

void Dispatcher::abort() {
    if (committing_) return;  // the commit decides; its answer goes nowhere once the caller left
    if (local_) local_->abort();
    if (remote_) remote_->abort();
    local_.reset();
    remote_.reset();
}

}  // namespace pillarbox::delivery
