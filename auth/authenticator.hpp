// The one authentication service every protocol uses (SMTP AUTH, POP3 USER/PASS and AUTH, IMAP
// LOGIN and AUTHENTICATE, the Dovecot-compatible auth socket). It owns the backends, runs every
// lookup and hash on the worker pool, applies the failed-login throttle and logs failures in a
// fail2ban-friendly line. Protocols only exchange base64 lines with an Exchange.
#pragma once
#include <asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/auth_cache.hpp"
#include "auth/backend.hpp"
#include "auth/password.hpp"
#include "auth/sasl/mechanism.hpp"
#include "auth/throttle.hpp"

namespace pillarbox { class WorkerPool; }
namespace pillarbox::config { class Config; }

namespace pillarbox::auth {

class ExchangeImpl;

// The defaults are the parameters' (server/parameters.cpp), written once there: from() sets
// every field.
struct AuthSettings {
    std::vector<std::string> mechanisms;    // auth_mechanisms, upper case
    std::string default_domain;             // auth_default_domain: "bob" -> "bob@<this>"
    bool disable_plaintext_auth{};          // no PLAIN/LOGIN/USER/LOGIN before TLS
    bool loopback_cleartext{};              // auth_allow_cleartext_loopback: ... except from loopback
    bool rehash{};                          // auth_rehash: upgrade old schemes to argon2id on login
    HashSettings hash;
    ThrottleSettings throttle;
    AuthCacheSettings cache;
    std::string server_name;                // myhostname, for CRAM-MD5 challenges
    static AuthSettings from(const config::Config& c);
};

// Who is asking: one connection.
struct ClientInfo {
    std::string service;   // smtp, submission, pop3, imap, dovecot-auth ... (log prefix)
    std::string session_id;// connection log id
    std::string ip;        // remote address
    std::string host = "unknown";  // remote host name for the log line (Postfix's "unknown[ip]")
    bool tls = false;      // the connection is encrypted
    bool secured = false;  // treat as encrypted even without TLS (Dovecot's "secured" flag)
    sasl::ChannelBindings channel_bindings;
    bool is_loopback() const;
};

struct Result {
    enum class Status {
        Ok,          // authenticated as `user`
        Failed,      // bad credentials (or unknown user, or disabled account)
        TempFail,    // a backend could not answer; try again later
        Aborted,     // the client cancelled ("*")
        Malformed,   // the client's data was not valid base64 or not valid for the mechanism
        Refused,     // the mechanism is not offered to this client (unknown, or cleartext before TLS)
    };
    Status status = Status::Failed;
    std::string user;          // canonical account name on Ok
    std::string login;         // the name the client gave (for logs), when known
};

// One SASL exchange. The protocol starts it, then feeds each client line; every call answers
// exactly once through the callback, either with a challenge (base64, to send with "334 " /
// "+ " / "CONT") or with a final Result. Destroying the Exchange cancels pending callbacks.
class Exchange {
public:
    struct Reply {
        bool done = false;        // false: `challenge` holds the next base64 challenge
        std::string challenge;    // base64 (may be empty: an empty challenge)
        Result result;            // when done
    };
    using Callback = std::function<void(Reply)>;
    virtual ~Exchange() = default;
    // initial_b64: the initial response as the client sent it (base64, "=" for empty), or nullopt.
    virtual void start(std::optional<std::string> initial_b64, Callback cb) = 0;
    // A client line after a challenge: base64, or "*" to cancel.
    virtual void respond(std::string_view line, Callback cb) = 0;
};

// What a protocol session asks of authentication: the Authenticator below, or a fake that
// injects failures in the in-process conversation tests. Loop thread.
class Authentication {
public:
    virtual ~Authentication() = default;
    // Mechanism names offered to this client (upper case, preference order). Cleartext ones are
    // left out before TLS unless allowed; -PLUS ones only with channel-binding data.
    virtual std::vector<std::string> mechanisms(const ClientInfo& client) const = 0;
    // Whether USER/PASS, IMAP LOGIN and AUTH PLAIN may be used by this client now.
    virtual bool cleartext_allowed(const ClientInfo& client) const = 0;
    // Whether a mechanism a client asks for is offered to it; if not, whether only because it
    // is a cleartext one before TLS (the protocols answer "encryption required" for that).
    enum class Offer { Yes, NeedsTls, No };
    virtual Offer offer(std::string_view mechanism, const ClientInfo& client) const = 0;
    // Begins an exchange; an unknown or refused mechanism answers Refused on start().
    virtual std::unique_ptr<Exchange> begin(std::string_view mechanism, ClientInfo client) = 0;
    // A plain login (POP3 USER/PASS, IMAP LOGIN): same checks, throttle and logs as PLAIN.
    // The callback is not called after the returned handle is destroyed.
    using LoginCallback = std::function<void(Result)>;
    virtual std::shared_ptr<void> login(ClientInfo client, std::string login, std::string password, LoginCallback cb) = 0;
};

class Authenticator final : public Authentication {
public:
    Authenticator(asio::io_context& loop, WorkerPool& workers, AuthSettings settings,
                  std::vector<std::unique_ptr<Backend>> backends);
    ~Authenticator() override;
    Authenticator(const Authenticator&) = delete;
    Authenticator& operator=(const Authenticator&) = delete;

    std::vector<std::string> mechanisms(const ClientInfo& client) const override;
    bool cleartext_allowed(const ClientInfo& client) const override;
    Offer offer(std::string_view mechanism, const ClientInfo& client) const override;
    std::unique_ptr<Exchange> begin(std::string_view mechanism, ClientInfo client) override;
    std::shared_ptr<void> login(ClientInfo client, std::string login, std::string password, LoginCallback cb) override;

    // "Bob" -> "bob@example.com" with auth_default_domain; lower-cased (Dovecot's %Lu).
    std::string normalise_login(std::string_view login) const;
    const AuthSettings& settings() const { return settings_; }
    Throttle& throttle() { return throttle_; }
    AuthCache& cache();
    // The argon2id hash (of a random password, at the configured cost) that failed logins of
    // unknown or disabled users are checked against, so they cost what a wrong password costs.
    // Made on a worker at the first such login; empty before.
    std::string dummy_hash() const;

private:
    friend class ExchangeImpl;
    struct Impl;
    // Runs the attempts the throttle's queue released (on the loop, later: never re-entrantly).
    void wake(Throttle::Released r);
    asio::io_context& loop_;
    WorkerPool& workers_;
    AuthSettings settings_;
    std::shared_ptr<std::vector<std::unique_ptr<Backend>>> backends_;
    Throttle throttle_;
    std::shared_ptr<Impl> impl_;
    Throttle::AttemptId next_attempt_ = 0;
    std::unordered_map<Throttle::AttemptId, std::weak_ptr<ExchangeImpl>> attempts_;  // queued ones
    // Exchanges may outlive the Authenticator at shutdown; they leave the queue only while it lives.
    std::shared_ptr<char> alive_ = std::make_shared<char>();
};

}  // namespace pillarbox::auth
