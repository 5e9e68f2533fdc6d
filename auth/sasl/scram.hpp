// Internal to auth/sasl: the SCRAM mechanism factory (RFC 5802, RFC 7677), with a hook to fix the
// server nonce so the RFC examples can be replayed in tests.
#pragma once
#include <memory>
#include <string>

#include "auth/password.hpp"
#include "auth/sasl/mechanism.hpp"

namespace pillarbox::auth::sasl {

struct ScramOptions {
    ScramHash hash = ScramHash::Sha256;
    bool plus = false;            // the -PLUS variant: the client must bind to the channel
    ChannelBindings cb;           // what this connection can bind to
    bool plus_offered = false;    // -PLUS was advertised, so a "y" client is being downgraded
    unsigned iterations{};        // auth_scram_iterations: for keys derived from a cleartext password, and fake salts
    std::string server_nonce;     // empty: 24 random printable characters; tests set it
};

std::unique_ptr<Mechanism> make_scram(ScramOptions o);

}  // namespace pillarbox::auth::sasl
