// Failed-login penalty per client IP and per account, like Dovecot's auth_penalty: the first
// failure costs `initial`, each further one doubles it up to `max`. Retrying the same wrong
// password (a phone with a stale password) doesn't grow it. Pure bookkeeping with the time passed
// in, so tests never sleep; the Authenticator waits on an Asio timer.
//
// Attempts for one key (a client IP, an IPv6 /64, or an account) also queue behind each other:
// each one is checked only when the one before it has been answered, and waits the penalty that
// one's failure set. Otherwise N parallel connections would all wait the same penalty and all
// guess. While a penalty runs, the queue per key is bounded; attempts beyond it are refused at
// once (a temporary failure), so guesses can't pile up in front of the real user.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pillarbox::auth {

// initial, max and queue_limit are parameters: their defaults are written once, in
// server/parameters.cpp, and AuthSettings::from() sets them. The rest are not parameters.
struct ThrottleSettings {
    std::chrono::milliseconds initial{};          // auth_failure_delay
    std::chrono::milliseconds max{};              // auth_penalty_max
    std::chrono::seconds forget_after{15 * 60};   // an entry idle this long is dropped
    std::size_t max_entries = 100000;             // bounded memory under a spray of IPs/logins
    std::size_t queue_limit{};                    // auth_penalty_queue_limit: attempts waiting per key
    // How long a SCRAM attempt keeps its turn while the client owes its proof; past it the next
    // attempt goes (the proof, if it comes, still counts). Not a config parameter: a client has
    // no reason to take long, and the real user waits at most this behind a silent one.
    std::chrono::milliseconds challenge_hold{10000};
};

// Not thread-safe: owned and called by the event loop thread only. Memory stays within
// max_entries entries whatever the clients send.
class Throttle {
public:
    using Clock = std::chrono::steady_clock;

    explicit Throttle(ThrottleSettings s);
    // Takes effect for the next computation; a smaller max_entries evicts at once.
    void set_settings(ThrottleSettings s);

    // How long an attempt from `ip` for `login` (empty when not known yet) must wait before it is
    // processed: the larger of the IP's and the account's remaining penalty; zero when none.
    std::chrono::milliseconds delay(std::string_view ip, std::string_view login, Clock::time_point now) const;

    // A failed attempt. `fingerprint` identifies the password tried (a keyed hash, never the
    // password; empty: unknown, always counts as new). Repeating the previous failure's password
    // refreshes the penalty without growing it. Returns the penalty now in force, which the
    // failure reply waits.
    std::chrono::milliseconds failure(std::string_view ip, std::string_view login, std::string_view fingerprint,
                                      Clock::time_point now);

    // A successful login clears the account's entry only: the IP keeps the penalty its failures
    // earned, or an attacker could reset it by logging in to an account of their own between
    // guesses at others.
    void success(std::string_view ip, std::string_view login, Clock::time_point now);

    std::size_t size() const;  // entries held, IPs and logins together (for tests)

    // --- the queue of concurrent attempts ---
    using AttemptId = std::uint64_t;
    enum class Admission {
        Go,       // first in line for its IP and its account: wait delay(), then check it
        Wait,     // behind other attempts; returned by a later finish() as ready
        Refused,  // a penalty runs for its IP or account and queue_limit attempts already wait
    };
    // Puts an attempt (a unique id) in line for its IP and login (empty: the IP only).
    Admission enqueue(AttemptId id, std::string_view ip, std::string_view login, Clock::time_point now);
    struct Released {
        std::vector<AttemptId> ready;    // now first in line for all their keys: their turn
        std::vector<AttemptId> refused;  // dropped from a queue that a new penalty made too long
    };
    // The attempt is over (answered, or abandoned by its connection), and failure() or success()
    // already recorded its outcome. Unknown ids are ignored.
    Released finish(AttemptId id, Clock::time_point now);
    std::size_t queued() const { return attempts_.size(); }  // attempts in line (for tests)

private:
    struct Entry {
        bool is_login = false;         // which map points here
        std::string key;               // the maps' string_view keys point into this
        unsigned count = 0;            // failures that grew the penalty
        Clock::time_point last{};      // last failure; the penalty runs from here
        std::string last_login;        // IP entries: the login of the last failure
        std::string last_fingerprint;
    };
    using List = std::list<Entry>;  // least recently failed first
    using Map = std::unordered_map<std::string_view, List::iterator>;

    std::chrono::milliseconds penalty(unsigned count) const;
    std::chrono::milliseconds remaining(const Map& map, std::string_view key, Clock::time_point now) const;
    bool expired(const Entry& e, Clock::time_point now) const;
    // Finds or creates the entry and moves it to the back of the LRU list; resets an expired one.
    Entry& touch(Map& map, bool is_login, std::string_view key, Clock::time_point now);
    void erase(Map& map, std::string_view key);
    void erase_front();
    void sweep(Clock::time_point now);

    struct Attempt {
        std::string ip_key, login;
        bool started = false;  // reported as Go or ready once
    };
    using Queues = std::unordered_map<std::string, std::deque<AttemptId>>;
    bool first_in_line(AttemptId id, const Attempt& a) const;
    // Removes id from its queues (not from attempts_).
    void dequeue(AttemptId id, const Attempt& a);
    // Attempts beyond queue_limit waiting behind a running penalty on this queue.
    void trim(Queues& queues, const Map& map, const std::string& key, Clock::time_point now,
              std::vector<AttemptId>& refused, std::vector<Attempt>& gone);

    ThrottleSettings settings_;
    std::unordered_map<AttemptId, Attempt> attempts_;
    Queues ip_queues_, login_queues_;
    List lru_;
    Map ips_;
    Map logins_;
};

}  // namespace pillarbox::auth
