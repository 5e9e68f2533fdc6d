// The selected mailbox's view (see selected.hpp).
#include "protocols/imap/selected.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "server/ascii.hpp"

namespace pillarbox::imap {

namespace {

constexpr std::uint32_t kSystemFlags = storage::kSeen | storage::kAnswered | storage::kFlagged | storage::kDeleted |
                                       storage::kDraft;


}  // namespace

std::string uid_set(const std::vector<std::uint32_t>& uids) {
    std::string set;
    for (std::size_t i = 0; i < uids.size();) {
        std::size_t j = i;
        while (j + 1 < uids.size() && uids[j + 1] == uids[j] + 1) ++j;
        if (!set.empty()) set += ',';
        set += i == j ? fmt::format("{}", uids[i]) : fmt::format("{}:{}", uids[i], uids[j]);
        i = j + 1;
    }
    return set;
}

storage::UidRanges uid_ranges(std::vector<std::uint32_t> uids) {
    std::sort(uids.begin(), uids.end());
    storage::UidRanges out;
    for (auto u : uids) {
        if (!out.empty() && u <= out.back().second + 1) out.back().second = std::max(out.back().second, u);
        else out.emplace_back(u, u);
    }
    return out;
}

SelectedMailbox::SelectedMailbox(const storage::MailboxView& view, bool read_only)
    : info_(view.mailbox), read_only_(read_only) {
    messages_.reserve(view.messages.size());
    for (auto& m : view.messages) {
        Message x{m.uid, m.flags & kSystemFlags, m.modseq, intern(m.keywords)};
        if (m.in_new) x.flags |= kRecent;
        messages_.push_back(x);
    }
    told_ = static_cast<std::uint32_t>(messages_.size());
}

std::uint32_t SelectedMailbox::intern(const std::vector<std::string>& keywords) {
    if (keywords.empty()) return 0;
    for (std::size_t i = 1; i < keyword_sets_.size(); ++i)
        if (keyword_sets_[i] == keywords) return static_cast<std::uint32_t>(i);
    std::set<std::string> known;
    for (auto& s : keyword_sets_) known.insert(s.begin(), s.end());
    for (auto& k : keywords)
        if (!known.count(k)) new_keywords_ = true;
    keyword_sets_.push_back(keywords);
    return static_cast<std::uint32_t>(keyword_sets_.size() - 1);
}

std::uint32_t SelectedMailbox::seq_of(std::uint32_t uid) const {
    auto end = messages_.begin() + told_;
    auto it = std::lower_bound(messages_.begin(), end, uid, [](const Message& m, std::uint32_t u) { return m.uid < u; });
    if (it == end || it->uid != uid) return 0;
    return static_cast<std::uint32_t>(it - messages_.begin()) + 1;
}

std::uint32_t SelectedMailbox::seq_at_or_after(std::uint32_t uid) const {
    auto end = messages_.begin() + told_;
    auto it = std::lower_bound(messages_.begin(), end, uid, [](const Message& m, std::uint32_t u) { return m.uid < u; });
    return static_cast<std::uint32_t>(it - messages_.begin()) + 1;
}

SelectedMailbox::Message* SelectedMailbox::find(std::uint32_t uid) {
    auto it = std::lower_bound(messages_.begin(), messages_.end(), uid,
                               [](const Message& m, std::uint32_t u) { return m.uid < u; });
    return it != messages_.end() && it->uid == uid ? &*it : nullptr;
}

std::uint32_t SelectedMailbox::recent() const {
    std::uint32_t n = 0;
    for (std::uint32_t i = 0; i < told_; ++i)
        if (messages_[i].flags & kRecent) ++n;
    return n;
}

std::vector<std::string> SelectedMailbox::all_keywords() const {
    std::set<std::string> all;
    for (auto& s : keyword_sets_) all.insert(s.begin(), s.end());
    return {all.begin(), all.end()};
}

void SelectedMailbox::apply(const storage::Change& c) {
    using K = storage::Change::Kind;
    switch (c.kind) {
    case K::Added:
        if (c.mailbox != info_.name) return;
        for (auto& m : c.messages) {
            // Only UIDs above every one in the view: a message is added once.
            if (!messages_.empty() && m.uid <= messages_.back().uid) continue;
            messages_.push_back({m.uid, (m.flags & kSystemFlags) | kRecent, m.modseq, intern(m.keywords)});
            info_.uidnext = std::max(info_.uidnext, m.uid + 1);
        }
        break;
    case K::FlagsChanged:
        if (c.mailbox != info_.name) return;
        for (auto& m : c.messages) {
            Message* x = find(m.uid);
            // Already known (the session's own change, told already) or gone.
            if (!x || x->modseq >= m.modseq || (x->flags & kExpunged)) continue;
            x->flags = (x->flags & ~kSystemFlags) | (m.flags & kSystemFlags) | kDirty;
            x->keywords = intern(m.keywords);
            x->modseq = m.modseq;
        }
        break;
    case K::Expunged:
        if (c.mailbox != info_.name) return;
        for (auto uid : c.uids)
            if (Message* x = find(uid)) x->flags |= kExpunged;
        break;
    case K::MailboxDeleted:
        if (c.mailbox == info_.name) deleted_ = true;
        return;
    case K::MailboxRenamed:
        // Renaming INBOX moves its messages (they come as expunges); any other rename takes the
        // selected mailbox away under its old name, as a delete would.
        if (c.mailbox == info_.name && info_.dir != "") deleted_ = true;
        return;
    case K::MailboxCreated: return;
    }
    if (c.modseq > info_.highestmodseq) info_.highestmodseq = c.modseq;
}

void SelectedMailbox::told_flags(std::uint32_t uid) {
    if (Message* x = find(uid)) x->flags &= ~kDirty;
}

std::string SelectedMailbox::flags_item(const Message& m, bool rev2) const {
    std::string out = "FLAGS (";
    auto add = [&out](std::string_view f) {
        if (out.back() != '(') out += ' ';
        out += f;
    };
    if (m.flags & storage::kSeen) add("\\Seen");
    if (m.flags & storage::kAnswered) add("\\Answered");
    if (m.flags & storage::kFlagged) add("\\Flagged");
    if (m.flags & storage::kDeleted) add("\\Deleted");
    if (m.flags & storage::kDraft) add("\\Draft");
    if ((m.flags & kRecent) && !rev2) add("\\Recent");
    for (auto& k : keyword_sets_[m.keywords]) add(k);
    return out + ")";
}

std::string SelectedMailbox::updates(const Options& o) {
    std::string out;
    if (o.expunges_allowed) {
        // From the highest sequence number down, so that each number is still the client's.
        std::vector<std::uint32_t> vanished;
        for (std::uint32_t seq = told_; seq >= 1; --seq) {
            if (!(messages_[seq - 1].flags & kExpunged)) continue;
            if (o.qresync) vanished.push_back(messages_[seq - 1].uid);
            else out += fmt::format("* {} EXPUNGE\r\n", seq);
        }
        if (!vanished.empty()) {
            // RFC 7162 3.2.10: VANISHED (without EARLIER) with the UIDs as a set.
            std::sort(vanished.begin(), vanished.end());
            out += fmt::format("* VANISHED {}\r\n", uid_set(vanished));
        }
        auto gone = [](const Message& m) { return (m.flags & kExpunged) != 0; };
        std::uint32_t told_gone = static_cast<std::uint32_t>(std::count_if(messages_.begin(), messages_.begin() + told_, gone));
        messages_.erase(std::remove_if(messages_.begin(), messages_.end(), gone), messages_.end());
        told_ -= told_gone;
    }
    if (new_keywords_) {
        new_keywords_ = false;
        std::string flags = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
        for (auto& k : all_keywords()) flags += " " + k;
        out += fmt::format("* FLAGS ({})\r\n", flags);
        if (!read_only_) out += fmt::format("* OK [PERMANENTFLAGS ({} \\*)] Flags permitted.\r\n", flags);
    }
    if (messages_.size() != told_) {
        // Messages not told yet that are already expunged can't be left out while earlier ones
        // wait: they sit behind them in the numbering. They are told and expunged in turn.
        std::uint32_t recent_before = o.rev2 ? 0 : recent();
        told_ = static_cast<std::uint32_t>(messages_.size());
        out += fmt::format("* {} EXISTS\r\n", told_);
        if (!o.rev2 && recent() != recent_before) out += fmt::format("* {} RECENT\r\n", recent());
    }
    for (std::uint32_t seq = 1; seq <= told_; ++seq) {
        Message& m = messages_[seq - 1];
        if (!(m.flags & kDirty) || (m.flags & kExpunged)) continue;
        m.flags &= ~kDirty;
        // RFC 7162 3.2.4 / 3.1.4: with CONDSTORE or QRESYNC the UID and MODSEQ come along.
        if (o.condstore || o.qresync)
            out += fmt::format("* {} FETCH (UID {} {} MODSEQ ({}))\r\n", seq, m.uid, flags_item(m, o.rev2), m.modseq);
        else
            out += fmt::format("* {} FETCH ({})\r\n", seq, flags_item(m, o.rev2));
    }
    return out;
}

}  // namespace pillarbox::imap
