// Failed-login penalty bookkeeping: one LRU list of IP and login entries, indexed by two hash
// maps, so every operation is O(1) amortised and memory stays bounded.
#include "auth/throttle.hpp"
#include "server/networks.hpp"


#include <algorithm>
#include <iterator>

namespace pillarbox::auth {

namespace {

// Caps the growth counter: the penalty reaches any sane max long before, and the doubling loop
// stays short.
constexpr unsigned kMaxCount = 64;

// The key an address is penalised under: an IPv6 host normally owns a whole /64 and can pick a
// fresh address from it for every attempt, so the /64 is the unit; IPv4 (and IPv4-mapped) stays
// whole. The per-client connection limits count clients the same way.
std::string ip_key(std::string_view ip) { return client_key(ip); }

}  // namespace

Throttle::Throttle(ThrottleSettings s) : settings_(s) {}

void Throttle::set_settings(ThrottleSettings s) {
    settings_ = s;
    while (!lru_.empty() && size() > settings_.max_entries)
        erase_front();
}

std::size_t Throttle::size() const { return ips_.size() + logins_.size(); }

std::chrono::milliseconds Throttle::penalty(unsigned count) const {
    using std::chrono::milliseconds;
    const milliseconds initial = settings_.initial, max = settings_.max;
    if (count == 0 || initial <= milliseconds::zero() || max <= milliseconds::zero())
        return milliseconds::zero();
    milliseconds d = initial;
    for (unsigned i = 1; i < count && d < max; ++i) {
        if (d > max / 2) {
            d = max;
            break;
        }
        d *= 2;
    }
    return std::min(d, max);
}

bool Throttle::expired(const Entry& e, Clock::time_point now) const {
    return now - e.last >= settings_.forget_after;
}

std::chrono::milliseconds Throttle::remaining(const Map& map, std::string_view key, Clock::time_point now) const {
    auto it = map.find(key);
    if (it == map.end() || expired(*it->second, now))
        return std::chrono::milliseconds::zero();
    const Entry& e = *it->second;
    auto end = e.last + penalty(e.count);
    if (end <= now)
        return std::chrono::milliseconds::zero();
    // Rounded up: waiting a fraction too little would let the attempt in before the penalty ends.
    return std::chrono::ceil<std::chrono::milliseconds>(end - now);
}

std::chrono::milliseconds Throttle::delay(std::string_view ip, std::string_view login, Clock::time_point now) const {
    auto d = remaining(ips_, ip_key(ip), now);
    if (!login.empty())
        d = std::max(d, remaining(logins_, login, now));
    return d;
}

Throttle::Entry& Throttle::touch(Map& map, bool is_login, std::string_view key, Clock::time_point now) {
    if (auto it = map.find(key); it != map.end()) {
        lru_.splice(lru_.end(), lru_, it->second);
        Entry& e = *it->second;
        if (expired(e, now)) {
            e.count = 0;
            e.last_login.clear();
            e.last_fingerprint.clear();
        }
        return e;
    }
    while (!lru_.empty() && size() >= settings_.max_entries)
        erase_front();
    Entry& e = lru_.emplace_back();
    e.is_login = is_login;
    e.key = std::string(key);
    e.last = now;
    map.emplace(std::string_view(e.key), std::prev(lru_.end()));
    return e;
}

void Throttle::erase(Map& map, std::string_view key) {
    auto it = map.find(key);
    if (it == map.end())
        return;
    auto node = it->second;
    map.erase(it);  // before the node: the map's key points into it
    lru_.erase(node);
}

void Throttle::erase_front() {
    Entry& e = lru_.front();
    (e.is_login ? logins_ : ips_).erase(std::string_view(e.key));
    lru_.pop_front();
}

void Throttle::sweep(Clock::time_point now) {
    // The list is in order of last failure, so the expired entries are all at the front and the
    // sweep costs only what it removes.
    while (!lru_.empty() && expired(lru_.front(), now))
        erase_front();
}

std::chrono::milliseconds Throttle::failure(std::string_view ip, std::string_view login, std::string_view fingerprint,
                                            Clock::time_point now) {
    sweep(now);
    // The IP's penalty counts a retry as "the same" only for the same login too: one password
    // sprayed over many accounts is new information for the attacker each time.
    std::chrono::milliseconds result;
    {
        Entry& e = touch(ips_, false, ip_key(ip), now);
        bool same = !fingerprint.empty() && e.count > 0 && e.last_login == login && e.last_fingerprint == fingerprint;
        if (!same && e.count < kMaxCount)
            ++e.count;
        e.last = now;
        e.last_login = std::string(login);
        e.last_fingerprint = std::string(fingerprint);
        result = penalty(e.count);
    }
    // The IP entry may be evicted by the touch below (a tiny max_entries); its penalty is taken.
    if (!login.empty()) {
        Entry& e = touch(logins_, true, login, now);
        bool same = !fingerprint.empty() && e.count > 0 && e.last_fingerprint == fingerprint;
        if (!same && e.count < kMaxCount)
            ++e.count;
        e.last = now;
        e.last_fingerprint = std::string(fingerprint);
        result = std::max(result, penalty(e.count));
    }
    return result;
}

void Throttle::success(std::string_view ip, std::string_view login, Clock::time_point now) {
    (void)ip;
    sweep(now);
    if (!login.empty())
        erase(logins_, login);
}

bool Throttle::first_in_line(AttemptId id, const Attempt& a) const {
    auto ip = ip_queues_.find(a.ip_key);
    if (ip == ip_queues_.end() || ip->second.empty() || ip->second.front() != id)
        return false;
    if (a.login.empty())
        return true;
    auto lg = login_queues_.find(a.login);
    return lg != login_queues_.end() && !lg->second.empty() && lg->second.front() == id;
}

Throttle::Admission Throttle::enqueue(AttemptId id, std::string_view ip, std::string_view login, Clock::time_point now) {
    Attempt a;
    a.ip_key = ip_key(ip);
    a.login = std::string(login);
    // Waiting attempts are those behind the one being checked (the front).
    auto too_long = [&](const Queues& qs, const Map& map, const std::string& key) {
        auto q = qs.find(key);
        std::size_t waiting = q == qs.end() || q->second.empty() ? 0 : q->second.size() - 1;
        return waiting >= settings_.queue_limit && remaining(map, key, now) > std::chrono::milliseconds::zero();
    };
    if (too_long(ip_queues_, ips_, a.ip_key) || (!a.login.empty() && too_long(login_queues_, logins_, a.login)))
        return Admission::Refused;
    ip_queues_[a.ip_key].push_back(id);
    if (!a.login.empty())
        login_queues_[a.login].push_back(id);
    auto& stored = attempts_[id] = std::move(a);
    if (first_in_line(id, stored)) {
        stored.started = true;
        return Admission::Go;
    }
    return Admission::Wait;
}

void Throttle::dequeue(AttemptId id, const Attempt& a) {
    auto drop = [id](Queues& qs, const std::string& key) {
        auto q = qs.find(key);
        if (q == qs.end())
            return;
        auto& d = q->second;
        d.erase(std::remove(d.begin(), d.end(), id), d.end());
        if (d.empty())
            qs.erase(q);
    };
    drop(ip_queues_, a.ip_key);
    if (!a.login.empty())
        drop(login_queues_, a.login);
}

void Throttle::trim(Queues& queues, const Map& map, const std::string& key, Clock::time_point now,
                    std::vector<AttemptId>& refused, std::vector<Attempt>& gone) {
    auto q = queues.find(key);
    if (q == queues.end() || remaining(map, key, now) <= std::chrono::milliseconds::zero())
        return;
    // The front is being checked; queue_limit may wait behind it; the newest beyond that go.
    while (q != queues.end() && q->second.size() > settings_.queue_limit + 1) {
        AttemptId victim = q->second.back();
        q->second.pop_back();
        if (auto it = attempts_.find(victim); it != attempts_.end()) {
            gone.push_back(std::move(it->second));
            attempts_.erase(it);
            dequeue(victim, gone.back());  // its place in its other queue
        }
        refused.push_back(victim);
        q = queues.find(key);
    }
}

Throttle::Released Throttle::finish(AttemptId id, Clock::time_point now) {
    Released r;
    auto it = attempts_.find(id);
    if (it == attempts_.end())
        return r;
    std::vector<Attempt> gone;
    gone.push_back(std::move(it->second));
    attempts_.erase(it);
    dequeue(id, gone.front());
    // A failure just set a penalty: the queues it now bounds shrink to queue_limit.
    std::string ip = gone.front().ip_key, login = gone.front().login;
    trim(ip_queues_, ips_, ip, now, r.refused, gone);
    if (!login.empty())
        trim(login_queues_, logins_, login, now, r.refused, gone);
    // Only the fronts of the queues these attempts left can have become first in all their lines.
    auto front_of = [&](const Queues& qs, const std::string& key) {
        auto q = qs.find(key);
        if (q == qs.end() || q->second.empty())
            return;
        auto f = attempts_.find(q->second.front());
        if (f != attempts_.end() && !f->second.started && first_in_line(f->first, f->second)) {
            f->second.started = true;
            r.ready.push_back(f->first);
        }
    };
    for (const auto& a : gone) {
        front_of(ip_queues_, a.ip_key);
        if (!a.login.empty())
            front_of(login_queues_, a.login);
    }
    return r;
}

}  // namespace pillarbox::auth
