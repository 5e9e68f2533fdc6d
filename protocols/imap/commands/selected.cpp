// IMAP commands of the selected state that change the mailbox's membership (RFC 9051 6.4):
// CLOSE, UNSELECT, EXPUNGE and UID EXPUNGE (RFC 4315).
#include <fmt/format.h>

#include "protocols/imap/imap_session.hpp"

namespace pillarbox::imap {

void ImapSession::cmd_unselect(Command& c) {
    if (!c.args.at_end()) return bad(c.tag, "UNSELECT takes no arguments");
    // RFC 3691: no expunge, and no EXPUNGE responses for what others removed.
    unselect();
    finish(c, "OK", "Unselect completed.");
}

void ImapSession::cmd_close(Command& c) {
    if (!c.args.at_end()) return bad(c.tag, "CLOSE takes no arguments");
    // RFC 9051 6.4.1: the \Deleted messages are removed silently (none on EXAMINE).
    std::vector<std::uint32_t> uids;
    if (!selected_->read_only())
        for (std::uint32_t seq = 1; seq <= selected_->count(); ++seq)
            if ((selected_->at(seq).flags & storage::kDeleted) && !(selected_->at(seq).flags & SelectedMailbox::kExpunged))
                uids.push_back(selected_->at(seq).uid);
    const std::string mailbox = selected_->info().name;
    unselect();
    if (uids.empty()) return finish(c, "OK", "Close completed.");
    park();
    services_->store->expunge(account(), mailbox, uids, guard_.wrap([this, c = Tagged(c)](storage::Outcome<std::vector<std::uint32_t>> o) {
        unpark();
        if (!o.ok()) return store_failed(c, o);
        finish(c, "OK", "Close completed.");
    }));
}

void ImapSession::cmd_expunge(Command& c) {
    std::optional<SequenceSet> set;
    if (c.uid) {
        if (c.args.sp()) set = c.args.sequence_set();
        if (!set) return bad(c.tag, "Usage: UID EXPUNGE uid-set");
    }
    if (!c.args.at_end()) return bad(c.tag, "Invalid arguments");
    if (selected_->read_only()) return finish(c, "NO", "[READ-ONLY] Mailbox is read-only.");
    std::vector<std::pair<std::uint32_t, std::uint32_t>> ranges;
    if (set) ranges = set->resolve(selected_->max_uid());
    std::vector<std::uint32_t> uids;
    for (std::uint32_t seq = 1; seq <= selected_->count(); ++seq) {
        auto& m = selected_->at(seq);
        if (!(m.flags & storage::kDeleted) || (m.flags & SelectedMailbox::kExpunged)) continue;
        bool in = !set;
        for (auto& [lo, hi] : ranges) in = in || (m.uid >= lo && m.uid <= hi);
        if (in) uids.push_back(m.uid);
    }
    if (uids.empty()) return finish(c, "OK", "Expunge completed.");
    park();
    // The store publishes the expunge before this answer; the EXPUNGE (or VANISHED) responses
    // go out with the tagged OK, after the removal is durable.
    services_->store->expunge(account(), selected_->info().name, uids,
                              guard_.wrap([this, c = Tagged(c)](storage::Outcome<std::vector<std::uint32_t>> o) {
                                  unpark();
                                  if (!o.ok()) return store_failed(c, o);
                                  finish(c, "OK", "Expunge completed.");
                              }));
}

}  // namespace pillarbox::imap
