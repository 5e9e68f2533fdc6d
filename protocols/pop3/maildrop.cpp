// The POP3 maildrop and its UPDATE state (see maildrop.hpp).
#include "protocols/pop3/maildrop.hpp"

#include <algorithm>

#include "protocols/pop3/parser.hpp"

namespace pillarbox::pop3 {

Maildrop::Maildrop(storage::MailboxInfo inbox, const std::vector<storage::MessageInfo>& messages,
                   const std::string& uidl_format)
    : inbox_(std::move(inbox)) {
    messages_.reserve(messages.size());
    // Only a format with %f (Dovecot's file name base) needs each file name parsed: the default
    // %08Xu%08Xv doesn't, and this runs for every message at every login.
    bool uses_base = uidl_format.find('f') != std::string::npos;
    for (auto& m : messages) {
        DropMessage d;
        d.uid = m.uid;
        d.file = m.file;
        d.size = m.rfc822_size;
        d.flags = m.flags;
        d.uidl = format_uidl(uidl_format, m.uid, inbox_.uidvalidity, uses_base ? storage::message_base(m.file) : std::string());
        messages_.push_back(std::move(d));
    }
}

DropMessage* Maildrop::get(std::uint32_t n) {
    if (n == 0 || n > messages_.size()) return nullptr;
    DropMessage& m = messages_[n - 1];
    return m.deleted ? nullptr : &m;
}

std::pair<std::uint64_t, std::uint64_t> Maildrop::stat() const {
    std::uint64_t count = 0, octets = 0;
    for (auto& m : messages_)
        if (!m.deleted) {
            ++count;
            octets += m.size;
        }
    return {count, octets};
}

void Maildrop::reset() {
    for (auto& m : messages_) m.deleted = false;
}

void Maildrop::apply(const storage::Change& c) {
    using K = storage::Change::Kind;
    auto find = [this](std::uint32_t uid) -> DropMessage* {
        auto it = std::lower_bound(messages_.begin(), messages_.end(), uid,
                                   [](const DropMessage& m, std::uint32_t u) { return m.uid < u; });
        return it != messages_.end() && it->uid == uid ? &*it : nullptr;
    };
    if (c.kind == K::FlagsChanged) {
        for (auto& info : c.messages)
            if (auto* m = find(info.uid)) {
                m->file = info.file;
                m->flags = info.flags;
            }
    } else if (c.kind == K::Expunged) {
        for (auto uid : c.uids)
            if (auto* m = find(uid)) m->expunged = true;
    }
}

Maildrop::Update Maildrop::update() const {
    Update u;
    for (auto& m : messages_) {
        if (m.expunged) continue;
        if (m.deleted) u.expunge.push_back(m.uid);
        else if (m.retrieved && !(m.flags & storage::kSeen)) u.seen.push_back(m.uid);
    }
    return u;
}

}  // namespace pillarbox::pop3
