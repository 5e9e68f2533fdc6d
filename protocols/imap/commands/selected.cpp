// IMAP commands of the selected state that change the mailbox's membership (RFC 9051 6.4):
// CLOSE, UNSELECT, EXPUNGE and UID EXPUNGE (RFC 4315).
#include <fmt/format.h>

#include <algorithm>

#include "protocols/imap/grammar.hpp"
#include "protocols/imap/imap_session.hpp"
#include "server/ascii.hpp"

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
        Resume resume{*this};
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
                                  Resume resume{*this};
                                  if (!o.ok()) return store_failed(c, o);
                                  finish(c, "OK", "Expunge completed.");
                              }));
}

}  // namespace pillarbox::imap

namespace pillarbox::imap {

std::vector<std::uint32_t> ImapSession::resolve(const SequenceSet& set, bool uid) const {
    std::vector<std::uint32_t> seqs;
    if (set.saved) {
        // RFC 5182: '$' is the last SEARCH ... RETURN (SAVE) result, as UIDs.
        for (auto u : saved_)
            if (auto seq = selected_->seq_of(u)) seqs.push_back(seq);
        return seqs;
    }
    auto ranges = set.resolve(uid ? selected_->max_uid() : selected_->count());
    for (auto& [lo, hi] : ranges) {
        if (!uid) {
            for (std::uint64_t s = lo; s <= hi; ++s) seqs.push_back(static_cast<std::uint32_t>(s));
            continue;
        }
        for (std::uint32_t s = selected_->seq_at_or_after(lo); s <= selected_->count() && selected_->at(s).uid <= hi; ++s)
            seqs.push_back(s);
    }
    return seqs;
}

std::optional<std::pair<std::uint32_t, std::vector<std::string>>> split_flags(const std::vector<std::string>& flags) {
    std::uint32_t bits = 0;
    std::vector<std::string> keywords;
    static const std::pair<const char*, std::uint32_t> kSystem[] = {
        {"\\Seen", storage::kSeen},     {"\\Answered", storage::kAnswered}, {"\\Flagged", storage::kFlagged},
        {"\\Deleted", storage::kDeleted}, {"\\Draft", storage::kDraft}};
    for (auto& f : flags) {
        if (f.empty() || f[0] != '\\') {
            keywords.push_back(f);
            continue;
        }
        bool known = false;
        for (auto& [name, bit] : kSystem)
            if (ascii_iequals(f, name)) bits |= bit, known = true;
        if (!known) return std::nullopt;
    }
    return std::pair{bits, keywords};
}

void ImapSession::cmd_store(Command& c) {
    std::optional<StoreRequest> req;
    if (c.args.sp()) req = parse_store(c.args);
    if (!req || !c.args.at_end()) return bad(c.tag, c.args.error().empty() ? "Invalid arguments" : c.args.error());
    auto flags = split_flags(req->flags);
    if (!flags) return bad(c.tag, "Invalid system flag");
    if (selected_->read_only()) return finish(c, "NO", "[READ-ONLY] Mailbox is read-only.");
    std::vector<std::uint32_t> uids;
    for (auto seq : resolve(req->set, c.uid))
        if (!(selected_->at(seq).flags & SelectedMailbox::kExpunged)) uids.push_back(selected_->at(seq).uid);
    if (uids.empty()) return finish(c, "OK", "Store completed.");
    const auto op = req->op == StoreRequest::Op::Add      ? storage::FlagOp::Add
                    : req->op == StoreRequest::Op::Remove ? storage::FlagOp::Remove
                                                          : storage::FlagOp::Replace;
    if (req->unchanged_since) enable_condstore();
    park();
    auto answer = [this, t = Tagged(c), uid = c.uid, silent = req->silent, conditional = req->unchanged_since.has_value(),
                   uids](storage::Outcome<storage::Mailboxes::ConditionalFlags> o) {
        Resume resume{*this};
        if (!o.ok()) return store_failed(t, o);
        // The change reached the view through the bus before this answer. RFC 9051 6.4.6: the
        // new flags of every message named (unless .SILENT), with the UID for UID STORE; with
        // CONDSTORE their MODSEQ, and (RFC 7162 3.1.3) a conditional STORE's changes even when
        // silent.
        std::string out;
        for (auto u : uids) {
            auto seq = selected_->seq_of(u);
            if (!seq) continue;
            auto& m = selected_->at(seq);
            const bool changed = std::any_of(o.value->changed.begin(), o.value->changed.end(),
                                             [u](const storage::MessageInfo& x) { return x.uid == u; });
            const bool failed = std::find(o.value->modified.begin(), o.value->modified.end(), u) != o.value->modified.end();
            selected_->told_flags(u);
            if (failed || (silent && !(conditional && changed))) continue;
            std::string items = uid ? fmt::format("UID {}", m.uid) : "";
            if (!silent) items += (items.empty() ? "" : " ") + selected_->flags_item(m, rev2_);
            if (condstore_) items += fmt::format("{}MODSEQ ({})", items.empty() ? "" : " ", m.modseq);
            out += fmt::format("* {} FETCH ({})\r\n", seq, items);
        }
        send(out);
        if (o.value->modified.empty()) return finish(t, "OK", "Store completed.");
        std::vector<std::uint32_t> ids;
        for (auto u : o.value->modified)
            if (auto seq = selected_->seq_of(u)) ids.push_back(uid ? u : seq);
        std::sort(ids.begin(), ids.end());
        std::string set;
        for (auto id : ids) set += (set.empty() ? "" : ",") + std::to_string(id);
        finish(t, "OK", fmt::format("[MODIFIED {}] Conditional STORE failed.", set));
    };
    if (req->unchanged_since) {
        services_->store->set_flags_unchanged_since(account(), selected_->info().name, uids, op, flags->first, flags->second,
                                                    *req->unchanged_since, guard_.wrap(std::move(answer)));
    } else {
        services_->store->set_flags(
            account(), selected_->info().name, uids, op, flags->first, flags->second,
            guard_.wrap([answer = std::move(answer)](storage::Outcome<std::vector<storage::MessageInfo>> o) mutable {
                storage::Outcome<storage::Mailboxes::ConditionalFlags> r{std::nullopt, o.error, o.reason};
                if (o.ok()) r.value = storage::Mailboxes::ConditionalFlags{std::move(*o.value), {}};
                answer(std::move(r));
            }));
    }
}

void ImapSession::cmd_copy(Command& c) {
    const bool move = c.name == "MOVE" || c.name == "UID MOVE";
    std::optional<SequenceSet> set;
    std::optional<std::string> to;
    if (c.args.sp()) set = c.args.sequence_set();
    if (set && c.args.sp()) to = c.args.mailbox(utf8());
    if (!to || !c.args.at_end()) return bad(c.tag, c.args.error().empty() ? "Usage: " + c.name + " sequence-set mailbox" : c.args.error());
    if (move && selected_->read_only()) return finish(c, "NO", "[READ-ONLY] Mailbox is read-only.");
    std::vector<std::uint32_t> uids;
    for (auto seq : resolve(*set, c.uid))
        if (!(selected_->at(seq).flags & SelectedMailbox::kExpunged)) uids.push_back(selected_->at(seq).uid);
    const char* done_text = move ? "Move completed." : "Copy completed.";
    if (uids.empty()) return finish(c, "OK", done_text);
    park();
    auto answer = guard_.wrap([this, t = Tagged(c), uids, move, done_text](storage::Outcome<storage::Mailboxes::Copied> o) {
        Resume resume{*this};
        if (o.error == storage::StoreError::Kind::NotFound)
            return finish(t, "NO", "[TRYCREATE] Mailbox doesn't exist.");
        if (!o.ok()) return store_failed(t, o);
        // RFC 4315 COPYUID: the source and target UIDs in the same order.
        std::string from, to;
        for (std::size_t i = 0; i < uids.size(); ++i) {
            if (!o.value->uids[i]) continue;
            from += (from.empty() ? "" : ",") + std::to_string(uids[i]);
            to += (to.empty() ? "" : ",") + std::to_string(o.value->uids[i]);
        }
        std::string code = from.empty() ? "" : fmt::format("[COPYUID {} {} {}] ", o.value->uidvalidity, from, to);
        if (!move) return finish(t, "OK", code + done_text);
        // RFC 6851 section 4.3: COPYUID in an untagged OK before the expunges.
        if (!code.empty()) send(fmt::format("* OK {}Moved UIDs.\r\n", code));
        finish(t, "OK", done_text);
    });
    if (move) services_->store->move(account(), selected_->info().name, uids, *to, std::move(answer));
    else services_->store->copy(account(), selected_->info().name, uids, *to, std::move(answer));
}

}  // namespace pillarbox::imap
