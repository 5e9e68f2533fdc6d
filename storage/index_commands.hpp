// pillarbox index check|rebuild USER: compare an account's index with its Maildir, or rebuild
// the index from the Maildir keeping UIDs and UIDVALIDITY. For a stopped server (the running
// one owns the index as its single writer).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace pillarbox::storage {

// Differences between the index and the files, one line each; empty when they agree. Changes
// nothing.
std::vector<std::string> check_index(const std::filesystem::path& account_root);

// Moves the index aside and rebuilds it. Returns "" or the error.
std::string rebuild_index(const std::filesystem::path& account_root);

// USER is localpart@domain; "" when it isn't one.
std::filesystem::path account_root_for(const std::filesystem::path& data_directory, const std::string& user);

}  // namespace pillarbox::storage
