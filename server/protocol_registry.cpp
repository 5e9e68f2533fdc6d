// The protocol registry (see protocol_registry.hpp).
#include "protocol_registry.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace pillarbox {

void ProtocolRegistry::add(ProtocolEntry entry) {
    if (!entry.make_session || !entry.goodbye || entry.name.empty() || entry.log_service.empty() ||
        entry.idle_timeout_parameter.empty())
        throw std::logic_error(fmt::format("protocol {}: incomplete registry entry", entry.name));
    if (entry.name != config::to_string(entry.protocol))
        throw std::logic_error(fmt::format("protocol {}: registered for listener word {}", entry.name, config::to_string(entry.protocol)));
    auto p = entry.protocol;
    if (!entries_.emplace(p, std::make_shared<const ProtocolEntry>(std::move(entry))).second)
        throw std::logic_error(fmt::format("protocol {}: registered twice", config::to_string(p)));
}

std::shared_ptr<const ProtocolEntry> ProtocolRegistry::find(config::Protocol protocol) const {
    auto it = entries_.find(protocol);
    return it == entries_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const ProtocolEntry>> ProtocolRegistry::entries() const {
    std::vector<std::shared_ptr<const ProtocolEntry>> out;
    for (auto& [p, e] : entries_) out.push_back(e);
    return out;
}

}  // namespace pillarbox
