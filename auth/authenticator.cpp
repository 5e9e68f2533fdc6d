// The Authenticator: mechanism selection, the exchange driver (lookups and hashing on the worker
// pool, results back on the loop), the failed-login throttle and the fail2ban-friendly log lines.
#include "auth/authenticator.hpp"
#include "server/ascii.hpp"

#include <asio/ip/address.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <fmt/format.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <mutex>

#include "server/config.hpp"
#include "server/log.hpp"
#include "server/networks.hpp"
#include "server/worker_pool.hpp"

namespace pillarbox::auth {

namespace {

bool contains(const std::vector<std::string>& v, std::string_view s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

// A keyed hash of a tried password: lets the throttle recognise a repeated wrong password
// without keeping the password.
std::string fingerprint(std::string_view secret) {
    static const std::string key = [] {
        std::string k(32, '\0');
        RAND_bytes(reinterpret_cast<std::uint8_t*>(k.data()), k.size());
        return k;
    }();
    std::uint8_t out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    HMAC(EVP_sha256(), key.data(), key.size(), reinterpret_cast<const std::uint8_t*>(secret.data()), secret.size(), out, &len);
    return std::string(reinterpret_cast<char*>(out), 16);
}

// What a worker found out about one login.
struct Verdict {
    enum class Kind { Ok, NoUser, BadPassword, Disabled, TempFail } kind = Kind::NoUser;
    std::optional<Credentials> creds;
    std::string backend;
    std::string detail;  // for the log
    bool cached = false; // verified by the authentication cache
};

}  // namespace

AuthSettings AuthSettings::from(const config::Config& c) {
    AuthSettings s;
    for (auto& m : c.get_list("auth_mechanisms")) s.mechanisms.push_back(ascii_upper(m));
    s.default_domain = c.get("auth_default_domain");
    s.disable_plaintext_auth = c.get_bool("disable_plaintext_auth");
    s.loopback_cleartext = c.get_bool("auth_allow_cleartext_loopback");
    s.rehash = c.get_bool("auth_rehash");
    s.hash.argon2_ops = c.get_count("auth_argon2_time_cost");
    s.hash.argon2_memory = c.get_size("auth_argon2_memory_cost");
    s.hash.scram_iterations = static_cast<unsigned>(c.get_count("auth_scram_iterations"));
    s.throttle.initial = c.get_time("auth_failure_delay");
    s.throttle.max = c.get_time("auth_penalty_max");
    s.throttle.queue_limit = c.get_count("auth_penalty_queue_limit");
    s.cache.size = c.get_size("auth_cache_size");
    s.cache.ttl = c.get_time("auth_cache_ttl");
    s.server_name = c.get("myhostname");
    return s;
}

// Only the addresses the server itself uses to reach itself (127.0.0.1, ::1), not all of
// 127.0.0.0/8: a local proxy or tunnel that forwards outside clients from another loopback
// address must not turn them into trusted cleartext logins.
bool ClientInfo::is_loopback() const {
    std::error_code ec;
    auto a = asio::ip::make_address(ip, ec);
    if (ec) return false;
    a = unmapped(a);
    return a.is_v4() ? a.to_v4() == asio::ip::address_v4::loopback() : a.to_v6() == asio::ip::address_v6::loopback();
}

// Shared state of the Authenticator that outlives it in pending worker jobs.
struct Authenticator::Impl {
    explicit Impl(AuthCacheSettings cs) : cache(cs) {}
    std::shared_ptr<std::vector<std::unique_ptr<Backend>>> backends;
    bool cram_available = false;
    AuthCache cache;
    std::once_flag dummy_once;
    std::string dummy;
    std::atomic<bool> dummy_ready{false};

    // Blocking (argon2id): on a worker only.
    const std::string& dummy_hash(const HashSettings& h) {
        std::call_once(dummy_once, [&] {
            std::string pw(24, '\0');
            RAND_bytes(reinterpret_cast<std::uint8_t*>(pw.data()), pw.size());
            dummy = hash_password(base64_encode(pw), h);
            dummy_ready = true;
        });
        return dummy;
    }
};

// One exchange (or one plain login). Async steps hold a weak_ptr: when the protocol destroys the
// Exchange, completions find nothing and do nothing.
class ExchangeImpl : public Exchange, public std::enable_shared_from_this<ExchangeImpl> {
public:
    ExchangeImpl(Authenticator& a, ClientInfo client, std::string mech)
        : a_(a), alive_(a.alive_), client_(std::move(client)), mech_name_(std::move(mech)), timer_(a.loop_) {}
    ~ExchangeImpl() { leave_queue(); }

    void start(std::optional<std::string> initial_b64, Callback cb) override {
        cb_ = std::move(cb);
        auto offered = a_.mechanisms(client_);
        if (!contains(offered, mech_name_)) {
            finish(Result::Status::Refused);
            return;
        }
        bool plus_offered = contains(offered, mech_name_.ends_with("-PLUS") ? mech_name_ : mech_name_ + "-PLUS");
        mech_ = sasl::make_mechanism(mech_name_, a_.settings_.server_name, client_.channel_bindings, plus_offered,
                                     a_.settings_.hash.scram_iterations);
        if (!mech_) {
            finish(Result::Status::Refused);
            return;
        }
        std::optional<std::string> initial;
        if (initial_b64) {
            if (*initial_b64 == "=") {
                initial = std::string();
            } else {
                initial = base64_decode(*initial_b64);
                if (!initial) {
                    finish(Result::Status::Malformed);
                    return;
                }
            }
        }
        handle(mech_->start(initial));
    }

    void respond(std::string_view line, Callback cb) override {
        cb_ = std::move(cb);
        if (line == "*") {
            log::line(log::Level::Info, client_.service, client_.session_id, "{}[{}]: SASL {} authentication aborted",
                      client_.host, client_.ip, mech_name_);
            finish(Result::Status::Aborted);
            return;
        }
        auto data = line.empty() ? std::optional<std::string>(std::string()) : base64_decode(line);
        if (!data) {
            finish(Result::Status::Malformed);
            return;
        }
        if (awaiting_final_ack_) {
            // RFC 4954 section 4: after additional data with the success, the client answers
            // with an empty response.
            awaiting_final_ack_ = false;
            if (!data->empty()) {
                failed("unexpected data after the server's final message");
                return;
            }
            succeeded();
            return;
        }
        if (!mech_) {
            finish(Result::Status::Malformed);
            return;
        }
        handle(mech_->respond(*data));
    }

    // POP3 USER/PASS and IMAP LOGIN.
    void plain_login(std::string login, std::string password, Callback cb) {
        cb_ = std::move(cb);
        if (!a_.cleartext_allowed(client_)) {
            finish(Result::Status::Refused);
            return;
        }
        sasl::Step s;
        s.kind = sasl::Step::Kind::Verify;
        s.login = std::move(login);
        s.password = std::move(password);
        handle(std::move(s));
    }

private:
    using Kind = sasl::Step::Kind;

    void handle(sasl::Step step) {
        switch (step.kind) {
        case Kind::Continue:
            reply_challenge(step.data);
            return;
        case Kind::Failure:
            failed(step.reason);
            return;
        case Kind::Verify:
        case Kind::Lookup:
            if (!step.authzid.empty() && a_.normalise_login(step.authzid) != a_.normalise_login(step.login)) {
                login_ = step.login;
                failed("authorization identity differs from the login (proxy authorization is not supported)");
                return;
            }
            login_ = a_.normalise_login(step.login);
            if (login_.empty()) {
                failed("empty or malformed login name");
                return;
            }
            fp_ = fingerprint(step.kind == Kind::Verify ? step.password : login_ + "\n" + std::to_string(++attempt_seq_));
            pending_ = std::move(step);
            join_queue();
            return;
        case Kind::Success:
            if (!step.data.empty()) {
                awaiting_final_ack_ = true;
                reply_challenge(step.data);
                return;
            }
            succeeded();
            return;
        }
    }

    // Attempts for one IP or account take turns: each is checked only after the previous one was
    // answered, and first waits out the penalty that one's failure set (Dovecot applies the
    // penalty before looking at an attempt too). Without the queue, parallel connections would all
    // wait the same penalty and all guess.
    void join_queue() {
        leave_queue();  // a SCRAM exchange is one attempt; never two places in line
        attempt_ = ++a_.next_attempt_;
        switch (a_.throttle_.enqueue(attempt_, client_.ip, login_, std::chrono::steady_clock::now())) {
        case Throttle::Admission::Refused:
            attempt_ = 0;
            too_many_attempts();
            return;
        case Throttle::Admission::Wait:
            a_.attempts_[attempt_] = weak_from_this();
            return;
        case Throttle::Admission::Go:
            a_.attempts_[attempt_] = weak_from_this();
            my_turn();
            return;
        }
    }

public:
    // First in line: wait the penalty in force, then check.
    void my_turn() {
        auto wait = a_.throttle_.delay(client_.ip, login_, std::chrono::steady_clock::now());
        if (wait.count() > 0) {
            timer_.expires_after(wait);
            timer_.async_wait([weak = weak_from_this()](std::error_code ec) {
                auto self = weak.lock();
                if (ec || !self) return;
                self->my_turn();  // a failure without a login (before the queue) may have added some
            });
            return;
        }
        if (pending_) {
            auto step = std::move(*pending_);
            pending_.reset();
            ask_backends(std::move(step));
        }
    }

    // The queue behind a new penalty was too long: this attempt is turned away.
    void too_many_attempts() {
        // Postfix's failure shape, so fail2ban counts a flood of parallel attempts too.
        log::line(log::Level::Warning, client_.service, client_.session_id,
                  "{}[{}]: SASL {} authentication failed: too many parallel attempts (temporary failure), sasl_username={}",
                  client_.host, client_.ip, mech_name_, login_.empty() ? "<unknown>" : login_);
        pending_.reset();
        finish(Result::Status::TempFail);
    }

private:
    // The attempt is answered (or abandoned): the next in line may go.
    void leave_queue() {
        if (attempt_ == 0 || alive_.expired()) return;
        a_.attempts_.erase(attempt_);
        auto released = a_.throttle_.finish(attempt_, std::chrono::steady_clock::now());
        attempt_ = 0;
        if (!released.ready.empty() || !released.refused.empty()) a_.wake(std::move(released));
    }

    void ask_backends(sasl::Step step) {
        auto backends = a_.backends_;
        auto settings = a_.settings_;
        std::string login = login_;
        bool verify = step.kind == Kind::Verify;
        std::string password = std::move(step.password);
        a_.workers_.run(
            [backends, settings, login, verify, password = std::move(password), impl = a_.impl_]() {
                Verdict v;
                try {
                    for (auto& b : *backends) {
                        auto c = b->lookup(login);
                        if (!c) continue;
                        v.backend = b->name();
                        v.creds = std::move(c);
                        break;
                    }
                    // An unknown or disabled user costs what a wrong password costs (one argon2id at
                    // the configured cost), so the answer's timing doesn't tell which users exist.
                    if (!v.creds) {
                        v.kind = Verdict::Kind::NoUser;
                        if (verify) (void)verify_password(impl->dummy_hash(settings.hash), password);
                        return v;
                    }
                    if (!v.creds->enabled) {
                        v.kind = Verdict::Kind::Disabled;
                        if (verify) (void)verify_password(impl->dummy_hash(settings.hash), password);
                        return v;
                    }
                    if (!verify) {
                        // SCRAM keys derived from a {PLAIN} password cost thousands of PBKDF2
                        // rounds: derive them here, not in the mechanism on the loop.
                        auto& c = *v.creds;
                        if (c.scram_sha256.empty())
                            if (auto k = scram_keys_from(c.password, ScramHash::Sha256, settings.hash.scram_iterations)) c.scram_sha256 = format_scram(*k);
                        if (c.scram_sha1.empty())
                            if (auto k = scram_keys_from(c.password, ScramHash::Sha1, settings.hash.scram_iterations)) c.scram_sha1 = format_scram(*k);
                        v.kind = Verdict::Kind::Ok;
                        return v;
                    }
                    // The cache only ever holds successes, so only the right password can hit it:
                    // every failure still pays the full verification and the equal cost of
                    // failures above stays. The lookup above ran anyway, so a changed password,
                    // a disabled account or a bumped version is seen at this login.
                    const bool cache_on = impl->cache.enabled();
                    std::string ckey, cstamp;
                    if (cache_on) {
                        ckey = impl->cache.key(login, password);
                        cstamp = impl->cache.stamp(v.backend, v.creds->version, v.creds->password);
                        if (impl->cache.hit(ckey, cstamp, AuthCache::Clock::now())) {
                            v.kind = Verdict::Kind::Ok;
                            v.cached = true;
                            return v;
                        }
                    }
                    if (!verify_password(v.creds->password, password)) {
                        v.kind = Verdict::Kind::BadPassword;
                        if (!v.creds->password.empty() && !scheme_supported(scheme_of(v.creds->password)))
                            v.detail = fmt::format("unsupported password scheme {}", scheme_of(v.creds->password));
                        return v;
                    }
                    v.kind = Verdict::Kind::Ok;
                    // Cached before a rehash: the rehash changes the stamp, so the next login
                    // verifies the new hash once and caches that.
                    if (cache_on) impl->cache.put(ckey, cstamp, AuthCache::Clock::now());
                    upgrade_secrets(*backends, settings, *v.creds, password, v);
                } catch (const std::exception& e) {
                    v.kind = Verdict::Kind::TempFail;
                    v.detail = e.what();
                }
                return v;
            },
            [weak = weak_from_this(), verify](Verdict v) {
                auto self = weak.lock();
                if (!self) return;
                self->backend_answered(verify, std::move(v));
            });
    }

    // On a successful cleartext login we know the password: replace an old scheme with argon2id
    // and fill in missing SCRAM keys, so the next login can use SCRAM (Dovecot can't do this).
    static void upgrade_secrets(std::vector<std::unique_ptr<Backend>>& backends, const AuthSettings& s,
                                Credentials& c, const std::string& password, Verdict& v) {
        Backend* store = nullptr;
        for (auto& b : backends)
            if (b->name() == v.backend && b->can_store_secrets()) store = b.get();
        if (!store) return;
        bool rehash = s.rehash && needs_rehash(c.password, s.hash);
        bool missing_scram = c.scram_sha256.empty() || c.scram_sha1.empty();
        if (!rehash && !missing_scram) return;
        Credentials updated = c;
        if (rehash) updated.password = hash_password(password, s.hash);
        if (updated.scram_sha256.empty()) updated.scram_sha256 = format_scram(scram_keys(ScramHash::Sha256, password, s.hash.scram_iterations));
        if (updated.scram_sha1.empty()) updated.scram_sha1 = format_scram(scram_keys(ScramHash::Sha1, password, s.hash.scram_iterations));
        store->store_rehash(c.user, updated);
        if (rehash) v.detail = fmt::format("password rehashed from {} to ARGON2ID", scheme_of(c.password));
    }

    void backend_answered(bool verify, Verdict v) {
        switch (v.kind) {
        case Verdict::Kind::TempFail:
            log::line(log::Level::Error, client_.service, client_.session_id, "{}[{}]: SASL {} authentication temporarily failed: sasl_username={}: {}",
                      client_.host, client_.ip, mech_name_, login_, v.detail);
            finish(Result::Status::TempFail);
            return;
        case Verdict::Kind::NoUser:
            if (!verify) {
                handle(mech_->looked_up(nullptr));
                hold_turn_for_answer();
                return;
            }
            failed("unknown user");
            return;
        case Verdict::Kind::Disabled:
            failed("account disabled");
            return;
        case Verdict::Kind::BadPassword:
            failed(v.detail.empty() ? "wrong password" : v.detail);
            return;
        case Verdict::Kind::Ok:
            user_ = v.creds->user;
            if (!v.detail.empty())
                log::line(log::Level::Info, client_.service, client_.session_id, "sasl_username={}: {}", user_, v.detail);
            if (!verify) {
                handle(mech_->looked_up(&*v.creds));
                hold_turn_for_answer();
                return;
            }
            succeeded();
            return;
        }
    }

    // SCRAM checks the client's proof after a challenge, so the attempt keeps its turn until the
    // proof comes (its failure sets the penalty the next one waits). A client that never answers
    // would hold everyone behind it until its connection times out: after challenge_hold the turn
    // passes on, and a late proof is still counted as a failure.
    void hold_turn_for_answer() {
        if (attempt_ == 0) return;
        timer_.expires_after(a_.settings_.throttle.challenge_hold);
        timer_.async_wait([weak = weak_from_this()](std::error_code ec) {
            auto self = weak.lock();
            if (ec || !self) return;
            self->leave_queue();
        });
    }

    void reply_challenge(std::string_view raw) {
        Reply r;
        r.challenge = base64_encode(raw);
        deliver(std::move(r));
    }

    void succeeded() {
        if (user_.empty()) user_ = login_;
        a_.throttle_.success(client_.ip, login_, std::chrono::steady_clock::now());
        leave_queue();
        auto backends = a_.backends_;
        std::string user = user_;
        a_.workers_.run([backends, user] {
            for (auto& b : *backends) try { b->record_login(user); } catch (...) {}
        }, [] {});
        log::line(log::Level::Info, client_.service, client_.session_id, "{}[{}]: sasl_method={}, sasl_username={}",
                  client_.host, client_.ip, mech_name_, user_);
        Result res;
        res.status = Result::Status::Ok;
        res.user = user_;
        res.login = login_;
        Reply r;
        r.done = true;
        r.result = std::move(res);
        deliver(std::move(r));
    }

    // The reply waits for the penalty: a guesser can't learn faster by closing the connection.
    void failed(const std::string& reason) {
        auto penalty = a_.throttle_.failure(client_.ip, login_, fp_.empty() ? fingerprint(reason) : fp_, std::chrono::steady_clock::now());
        leave_queue();  // after failure(): the next in line waits the penalty just set
        // Postfix's shape, which fail2ban's postfix-sasl filter matches.
        log::line(log::Level::Warning, client_.service, client_.session_id,
                  "{}[{}]: SASL {} authentication failed: {}, sasl_username={}", client_.host, client_.ip, mech_name_,
                  reason, login_.empty() ? "<unknown>" : login_);
        timer_.expires_after(penalty);
        timer_.async_wait([weak = weak_from_this()](std::error_code ec) {
            auto self = weak.lock();
            if (ec || !self) return;
            self->finish(Result::Status::Failed);
        });
    }

    void finish(Result::Status st) {
        leave_queue();
        Reply r;
        r.done = true;
        r.result.status = st;
        r.result.login = login_;
        if (st == Result::Status::Ok) r.result.user = user_;
        deliver(std::move(r));
    }

    void deliver(Reply r) {
        auto cb = std::move(cb_);
        cb_ = nullptr;
        if (cb) cb(std::move(r));
    }

    Authenticator& a_;
    std::weak_ptr<char> alive_;
    ClientInfo client_;
    std::string mech_name_;
    asio::steady_timer timer_;
    std::unique_ptr<sasl::Mechanism> mech_;
    Callback cb_;
    std::string login_, user_, fp_;
    std::optional<sasl::Step> pending_;  // the step waiting for its turn
    Throttle::AttemptId attempt_ = 0;    // our place in the throttle's queue; 0: none
    unsigned attempt_seq_ = 0;
    bool awaiting_final_ack_ = false;
};

namespace {

// The Exchange handed to a protocol: owns the shared state, so destroying it cancels.
class ExchangeHandle : public Exchange {
public:
    explicit ExchangeHandle(std::shared_ptr<ExchangeImpl> impl) : impl_(std::move(impl)) {}
    void start(std::optional<std::string> initial_b64, Callback cb) override { impl_->start(std::move(initial_b64), std::move(cb)); }
    void respond(std::string_view line, Callback cb) override { impl_->respond(line, std::move(cb)); }

private:
    std::shared_ptr<ExchangeImpl> impl_;
};

}  // namespace

Authenticator::Authenticator(asio::io_context& loop, WorkerPool& workers, AuthSettings settings,
                             std::vector<std::unique_ptr<Backend>> backends)
    : loop_(loop), workers_(workers), settings_(std::move(settings)),
      backends_(std::make_shared<std::vector<std::unique_ptr<Backend>>>(std::move(backends))),
      throttle_(settings_.throttle), impl_(std::make_shared<Impl>(settings_.cache)) {
    impl_->backends = backends_;
    for (auto& b : *backends_)
        if (b->may_have_cram_secrets()) impl_->cram_available = true;
}

Authenticator::~Authenticator() = default;

AuthCache& Authenticator::cache() { return impl_->cache; }

std::string Authenticator::dummy_hash() const { return impl_->dummy_ready ? impl_->dummy : std::string(); }

void Authenticator::wake(Throttle::Released r) {
    auto post = [this](Throttle::AttemptId id, bool refused) {
        auto it = attempts_.find(id);
        if (it == attempts_.end()) return;
        auto weak = it->second;
        if (refused) attempts_.erase(it);
        asio::post(loop_, [weak, refused] {
            auto self = weak.lock();
            if (!self) return;
            if (refused)
                self->too_many_attempts();
            else
                self->my_turn();
        });
    };
    for (auto id : r.refused) post(id, true);
    for (auto id : r.ready) post(id, false);
}

bool Authenticator::cleartext_allowed(const ClientInfo& client) const {
    if (!settings_.disable_plaintext_auth || client.tls || client.secured) return true;
    return settings_.loopback_cleartext && client.is_loopback();
}

std::vector<std::string> Authenticator::mechanisms(const ClientInfo& client) const {
    std::vector<std::string> r;
    bool cleartext = cleartext_allowed(client);
    bool cb = client.tls && (!client.channel_bindings.tls_exporter.empty() || !client.channel_bindings.tls_unique.empty());
    for (auto& m : sasl::implemented_mechanisms()) {
        if (!contains(settings_.mechanisms, m)) continue;
        if (sasl::is_plaintext(m) && !cleartext) continue;
        if (m == "CRAM-MD5" && !impl_->cram_available) continue;
        if (m.ends_with("-PLUS") && !cb) continue;
        r.push_back(m);
    }
    return r;
}

Authenticator::Offer Authenticator::offer(std::string_view mechanism, const ClientInfo& client) const {
    auto offered = mechanisms(client);
    if (std::find(offered.begin(), offered.end(), mechanism) != offered.end()) return Offer::Yes;
    auto& all = sasl::implemented_mechanisms();
    bool known = std::find(all.begin(), all.end(), mechanism) != all.end();
    return known && sasl::is_plaintext(mechanism) && !cleartext_allowed(client) ? Offer::NeedsTls : Offer::No;
}

std::unique_ptr<Exchange> Authenticator::begin(std::string_view mechanism, ClientInfo client) {
    return std::make_unique<ExchangeHandle>(std::make_shared<ExchangeImpl>(*this, std::move(client), ascii_upper(mechanism)));
}

std::shared_ptr<void> Authenticator::login(ClientInfo client, std::string login, std::string password, LoginCallback cb) {
    auto impl = std::make_shared<ExchangeImpl>(*this, std::move(client), "LOGIN");
    impl->plain_login(std::move(login), std::move(password), [cb = std::move(cb)](Exchange::Reply r) { cb(std::move(r.result)); });
    return impl;
}

std::string Authenticator::normalise_login(std::string_view login) const {
    std::string r(login);
    if (r.empty() || r.size() > 320) return {};
    for (unsigned char c : r)
        if (c < ' ' || c == 0x7f) return {};
    if (r.find('@') == std::string::npos && !settings_.default_domain.empty()) {
        r += "@" + settings_.default_domain;
    }
    // Dovecot's default auth_username_format %Lu: login names are case-insensitive.
    for (auto& c : r)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return r;
}

}  // namespace pillarbox::auth
