// Change bus (see change_bus.hpp).
#include "change_bus.hpp"

#include <vector>

namespace pillarbox::storage {

ChangeBus::Subscription ChangeBus::subscribe(const std::string& account, const std::string& mailbox, Listener l) {
    auto id = ++next_;
    listeners_[id] = Entry{account, mailbox, std::move(l)};
    return Subscription(this, id);
}

void ChangeBus::publish(const std::string& account, const Change& c) {
    // A listener may unsubscribe (or subscribe others) while being called: collect first.
    std::vector<std::uint64_t> ids;
    for (auto& [id, e] : listeners_)
        if (e.account == account && (e.mailbox.empty() || e.mailbox == c.mailbox)) ids.push_back(id);
    for (auto id : ids) {
        auto it = listeners_.find(id);
        if (it == listeners_.end()) continue;
        if (c.kind == Change::Kind::MailboxRenamed && it->second.mailbox == c.mailbox) it->second.mailbox = c.new_name;
        it->second.listener(c);
    }
}

}  // namespace pillarbox::storage
