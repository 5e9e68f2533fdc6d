// The admin's operations on the queue, like Postfix's mailq, postcat -q and postsuper -H / -d,
// with typed results (the CLI in app/cli_queue.cpp prints them). Safe next to a running server:
// they only read, rename and delete whole queue files, and the server picks up released
// messages by itself.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "storage/queue/queue.hpp"

namespace pillarbox::storage::queue {

struct QueuedMessage {
    std::string id;
    Place place = Place::Messages;  // Hold: held; Incoming: released and not yet routed
    Envelope envelope;
    std::filesystem::path message_file;  // the .eml, for show
};

// The outbound queue, then held messages, then released ones not yet routed; each in list order.
std::vector<QueuedMessage> list_messages(const std::filesystem::path& data_directory);
// Wherever it is; nullopt when it is in no place.
std::optional<QueuedMessage> find_message(const std::filesystem::path& data_directory, const std::string& id);

struct MessageOutcome {
    std::string id;
    std::string error;  // "" when done
};

// ids may hold "ALL": every held message. Held -> incoming/: the server delivers it again (postsuper -H).
std::vector<MessageOutcome> release_messages(const std::filesystem::path& data_directory, const std::vector<std::string>& ids);
// ids may hold "ALL": every message in every place. Deleted from wherever it is (postsuper -d).
std::vector<MessageOutcome> delete_messages(const std::filesystem::path& data_directory, const std::vector<std::string>& ids);

}  // namespace pillarbox::storage::queue
