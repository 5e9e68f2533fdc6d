// The backend registry: auth_backends entries ("builtin", "passwd-file:/etc/dovecot/users")
// mapped to the code that builds them. A new backend adds one line here and its own file.
#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "auth/accounts.hpp"
#include "auth/backend.hpp"
#include "auth/backends/builtin.hpp"
#include "auth/backends/passwd_file.hpp"
#include "server/config.hpp"

namespace pillarbox::auth {

namespace {

bool cram_enabled(const config::Config& c) {
    for (auto m : c.get_list("auth_mechanisms")) {
        std::transform(m.begin(), m.end(), m.begin(), [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
        if (m == "CRAM-MD5") return true;
    }
    return false;
}

}  // namespace

const std::map<std::string, BackendFactory>& backend_registry() {
    static const std::map<std::string, BackendFactory> registry = {
        {"builtin",
         [](const std::string& arg, const config::Config& c) -> std::unique_ptr<Backend> {
             if (!arg.empty()) throw std::runtime_error("builtin takes no argument");
             auto db = std::make_shared<AccountsDb>(AccountsDb::path_in(c.get("data_directory")));
             return std::make_unique<BuiltinBackend>(std::move(db), cram_enabled(c));
         }},
        {"passwd-file",
         [](const std::string& arg, const config::Config&) -> std::unique_ptr<Backend> {
             if (arg.empty()) throw std::runtime_error("passwd-file needs a path: passwd-file:/etc/dovecot/users");
             return std::make_unique<PasswdFileBackend>(arg);
         }},
    };
    return registry;
}

std::vector<std::unique_ptr<Backend>> make_backends(const config::Config& cfg) {
    std::vector<std::unique_ptr<Backend>> r;
    for (auto& entry : cfg.get_list("auth_backends")) {
        auto colon = entry.find(':');
        std::string name = entry.substr(0, colon), arg = colon == std::string::npos ? "" : entry.substr(colon + 1);
        auto& reg = backend_registry();
        auto it = reg.find(name);
        if (it == reg.end()) {
            std::string known;
            for (auto& [n, f] : reg) known += (known.empty() ? "" : ", ") + n;
            throw std::runtime_error(fmt::format("auth_backends: unknown backend '{}' (known: {})", name, known));
        }
        try {
            r.push_back(it->second(arg, cfg));
        } catch (const std::exception& e) {
            throw std::runtime_error(fmt::format("auth_backends: {}: {}", entry, e.what()));
        }
    }
    if (r.empty()) throw std::runtime_error("auth_backends is empty: nobody could log in");
    return r;
}

}  // namespace pillarbox::auth
