// Settings for unit tests from the embedded defaults (see test_config.hpp).
#include "tests/unit/test_config.hpp"

#include <stdexcept>
#include <vector>

namespace pillarbox::test {

config::Config config(std::string_view lines) {
    std::vector<config::Diagnostic> diags;
    auto c = config::Config::parse(lines, "test.conf", config::Environment{false, "h.example"}, diags);
    for (auto& d : diags)
        if (d.severity == config::Diagnostic::Error) throw std::runtime_error("test config: " + d.to_string());
    return c;
}

storage::StoreSettings store_settings(const std::filesystem::path& data_directory, const std::string& hostname) {
    auto s = storage::StoreSettings::from(config());
    s.data_directory = data_directory;
    s.hostname = hostname;
    return s;
}

auth::AuthSettings auth_settings() { return auth::AuthSettings::from(config()); }

auth::HashSettings default_hash() { return auth_settings().hash; }

}  // namespace pillarbox::test
