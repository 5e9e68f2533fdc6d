// The SASL mechanism registry: which mechanisms exist, which are cleartext, and building one by name.
#include "auth/sasl/mechanism.hpp"
#include "server/ascii.hpp"

#include <algorithm>

#include "auth/sasl/cram_md5.hpp"
#include "auth/sasl/scram.hpp"

namespace pillarbox::auth::sasl {

// Defined in plain.cpp and login.cpp; they need no test hooks, hence no header of their own.
std::unique_ptr<Mechanism> make_plain();
std::unique_ptr<Mechanism> make_login();

const std::vector<std::string>& implemented_mechanisms() {
    static const std::vector<std::string> names{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS",
                                                "SCRAM-SHA-1",        "CRAM-MD5",      "PLAIN",
                                                "LOGIN"};
    return names;
}

namespace {
}  // namespace

bool is_plaintext(std::string_view mechanism) {
    auto m = ascii_upper(mechanism);
    return m == "PLAIN" || m == "LOGIN";
}

std::unique_ptr<Mechanism> make_mechanism(std::string_view name, const std::string& server_name,
                                          const ChannelBindings& cb, bool plus_offered,
                                          unsigned scram_iterations) {
    auto m = ascii_upper(name);
    if (m == "PLAIN") return make_plain();
    if (m == "LOGIN") return make_login();
    if (m == "CRAM-MD5") return make_cram_md5(server_name);
    ScramOptions o;
    o.cb = cb;
    o.plus_offered = plus_offered;
    o.iterations = scram_iterations;
    if (m == "SCRAM-SHA-256" || m == "SCRAM-SHA-256-PLUS") o.hash = ScramHash::Sha256;
    else if (m == "SCRAM-SHA-1" || m == "SCRAM-SHA-1-PLUS") o.hash = ScramHash::Sha1;
    else return nullptr;
    o.plus = m.ends_with("-PLUS");
    return make_scram(std::move(o));
}

}  // namespace pillarbox::auth::sasl
