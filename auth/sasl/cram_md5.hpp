// Internal to auth/sasl: the CRAM-MD5 mechanism factory, with a variant that takes the challenge
// so the RFC 2195 example can be replayed in tests.
#pragma once
#include <memory>
#include <string>

#include "auth/sasl/mechanism.hpp"

namespace pillarbox::auth::sasl {

// A challenge "<random.timestamp@server_name>" (RFC 2195 section 2).
std::unique_ptr<Mechanism> make_cram_md5(const std::string& server_name);
// Uses `challenge` verbatim; for tests.
std::unique_ptr<Mechanism> make_cram_md5_with_challenge(std::string challenge);

}  // namespace pillarbox::auth::sasl
