// pillarbox queue list|show|release|delete: the admin's view of the queue, like Postfix's mailq,
// postcat -q and postsuper -H / -d. Safe next to a running server: they only read, rename and
// delete whole queue files, and the server picks up released messages by itself.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace pillarbox::storage::queue {

// mailq's table: the outbound queue, held messages (marked !) and released ones not yet routed.
int list_command(const std::filesystem::path& data_directory);
// The envelope, then the message as queued.
int show_command(const std::filesystem::path& data_directory, const std::string& id);
// ids may be "ALL". release: held -> incoming/ (the server delivers it again, postsuper -H).
// remove: from wherever the message is (postsuper -d).
int release_command(const std::filesystem::path& data_directory, const std::vector<std::string>& ids);
int delete_command(const std::filesystem::path& data_directory, const std::vector<std::string>& ids);

}  // namespace pillarbox::storage::queue
