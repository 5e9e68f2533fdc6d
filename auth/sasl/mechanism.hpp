// One SASL server mechanism as a pure state machine over decoded client data. It never blocks and
// never touches a backend: when it needs to check a password or fetch a secret it says so in the
// Step it returns, and the Authenticator (which does the lookup on a worker) calls it back.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/backend.hpp"

namespace pillarbox::auth::sasl {

struct Step {
    enum class Kind {
        Continue,  // send `data` as a challenge and wait for the client's next response
        Verify,    // check `password` for `login`; the exchange ends with that answer
        Lookup,    // fetch the Credentials of `login`, then call Mechanism::looked_up()
        Success,   // authenticated as `login`; `data` (may be empty) is additional server data
                   // sent with the success (SCRAM's server-final-message)
        Failure,   // `reason` says why, for the log only (never shown to the client)
    };
    Kind kind = Kind::Failure;
    std::string data;      // raw bytes (the protocol base64-encodes them)
    std::string login;     // authentication identity as sent by the client (authcid)
    std::string authzid;   // requested authorization identity; empty: same as login
    std::string password;  // Verify only
    std::string reason;

    static Step cont(std::string d) { Step s; s.kind = Kind::Continue; s.data = std::move(d); return s; }
    static Step fail(std::string r) { Step s; s.kind = Kind::Failure; s.reason = std::move(r); return s; }
};

// What the connection offers for channel binding (RFC 5056/5929/9266); empty strings when the
// type is not available (no TLS, or tls-unique under TLS 1.3).
struct ChannelBindings {
    std::string tls_unique;
    std::string tls_exporter;
};

class Mechanism {
public:
    virtual ~Mechanism() = default;
    virtual std::string_view name() const = 0;
    // The first step. `initial` is the client's initial response when it sent one (SASL-IR,
    // "AUTH PLAIN <ir>"); an empty initial response ("=") is an empty string, not nullopt.
    virtual Step start(const std::optional<std::string>& initial) = 0;
    // The client's answer to a Continue step.
    virtual Step respond(std::string_view response) = 0;
    // The answer to a Lookup step: creds is null when no backend knows the login.
    virtual Step looked_up(const Credentials* creds) { (void)creds; return Step::fail("unexpected lookup result"); }
};

// Mechanism names this build implements, in preference order for advertising:
// SCRAM-SHA-256-PLUS, SCRAM-SHA-256, SCRAM-SHA-1-PLUS, SCRAM-SHA-1, CRAM-MD5, PLAIN, LOGIN.
const std::vector<std::string>& implemented_mechanisms();
// True for mechanisms that send the password in the clear (PLAIN, LOGIN).
bool is_plaintext(std::string_view mechanism);
// A fresh mechanism instance by (case-insensitive) name; null when unknown. `server_name` goes
// into CRAM-MD5 challenges; `cb` is used by the -PLUS variants (and to refuse a client that
// says it supports channel binding when the server offered it, RFC 5802 section 6).
std::unique_ptr<Mechanism> make_mechanism(std::string_view name, const std::string& server_name,
                                          const ChannelBindings& cb, bool plus_offered,
                                          unsigned scram_iterations);

}  // namespace pillarbox::auth::sasl
