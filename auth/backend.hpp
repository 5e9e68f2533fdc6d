// Password backends behind one interface, and the registry that builds them from configuration
// (`auth_backends = builtin passwd-file:/etc/dovecot/users`). The SASL mechanisms and the
// protocols never see a backend directly: they go through the Authenticator. A new backend (PAM,
// LDAP, SQL) is a new file that registers itself; nothing else changes.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pillarbox::config { class Config; }

namespace pillarbox::auth {

// What a backend knows about one login name.
struct Credentials {
    std::string user;             // the canonical account name (an address), used after login
    std::string password;         // stored value, "{SCHEME}data"; empty: no password login
    std::string scram_sha1;       // optional "{SCRAM-SHA-1}..." kept beside the hash
    std::string scram_sha256;     // optional "{SCRAM-SHA-256}..."
    std::string cram_md5;         // optional "{CRAM-MD5}..." (stored only when the admin enables it)
    bool enabled = true;          // a disabled account never logs in
    // Changes whenever the account's login rights change (password, disable/enable, a revoked app
    // password), so the authentication cache can't outlive them. The cache also stamps `password`
    // itself, so a backend without versions (a passwd-file: the hash line is the version) may
    // leave it empty.
    std::string version;
    std::map<std::string, std::string> extra;  // backend-specific fields (passwd-file extras, quota)
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;  // for logs: "builtin", "passwd-file:/etc/dovecot/users"
    // Blocking (file or database reads): runs on a worker thread, possibly several at once, so
    // implementations are thread-safe. `login` is already normalised (lower-case domain, full
    // address when auth_default_domain applied). nullopt: unknown here (the next backend is asked).
    virtual std::optional<Credentials> lookup(const std::string& login) = 0;
    // Whether this backend may hold a secret CRAM-MD5 can use ({PLAIN} or {CRAM-MD5} values).
    virtual bool may_have_cram_secrets() const = 0;
    // Whether store_rehash keeps what it is given. When not (a read-only passwd-file), a login
    // computes no new hash or SCRAM keys at all: they would be thrown away, at argon2id's cost
    // on every login.
    virtual bool can_store_secrets() const { return false; }
    // A successful login whose stored hash should be upgraded: store these values (blocking, on a
    // worker).
    virtual void store_rehash(const std::string& user, const Credentials& updated) { (void)user; (void)updated; }
    // A successful login (blocking, on a worker): backends that keep last-login times note it.
    virtual void record_login(const std::string& user) { (void)user; }
};

// Builds a backend from the text after "name:" in auth_backends (may be empty); throws
// std::runtime_error with a message for the admin when the argument is unusable.
using BackendFactory = std::function<std::unique_ptr<Backend>(const std::string& arg, const config::Config& cfg)>;

// name -> factory. Backends register themselves in backends.cpp.
const std::map<std::string, BackendFactory>& backend_registry();

// Builds every backend named in auth_backends, in order; throws std::runtime_error naming the bad entry.
std::vector<std::unique_ptr<Backend>> make_backends(const config::Config& cfg);

}  // namespace pillarbox::auth
