// Settings for unit tests, taken from the configuration the way the server takes them: the
// embedded defaults (server/parameters.cpp, their one definition) with the given lines over them.
// Tests that want "the default" get it from here rather than from a value written in the test.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

#include "auth/authenticator.hpp"
#include "auth/password.hpp"
#include "server/config.hpp"
#include "storage/store.hpp"

namespace pillarbox::test {

// Config::parse of `lines` ("name = value" lines) over the embedded defaults, for an ordinary
// user on host h.example. Throws std::runtime_error on a diagnostic of error severity.
config::Config config(std::string_view lines = "");

// StoreSettings::from(config()) with the store in `data_directory` and `hostname` in Maildir
// file names.
storage::StoreSettings store_settings(const std::filesystem::path& data_directory,
                                      const std::string& hostname = "mx.example.org");

// AuthSettings::from(config()).
auth::AuthSettings auth_settings();

// The default costs of new password hashes (auth_argon2_time_cost, auth_argon2_memory_cost,
// auth_scram_iterations).
auth::HashSettings default_hash();

}  // namespace pillarbox::test
