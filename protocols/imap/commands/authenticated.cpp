// IMAP commands of the authenticated state (RFC 9051 6.3): ENABLE, ID, NAMESPACE, SELECT and
// EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS.
#include <fmt/format.h>

#include <algorithm>

#include "protocols/imap/grammar.hpp"
#include "protocols/imap/imap_session.hpp"
#include "protocols/imap/list.hpp"
#include "server/ascii.hpp"
#include "server/log.hpp"

namespace pillarbox::imap {

void ImapSession::store_failed(const Tagged& c, std::optional<storage::StoreError::Kind> error, const std::string& reason) {
    using K = storage::StoreError::Kind;
    if (error == K::NotFound) return finish(c, "NO", "[NONEXISTENT] Mailbox doesn't exist.");
    if (error == K::Exists) return finish(c, "NO", "[ALREADYEXISTS] Mailbox already exists.");
    if (error == K::OverQuota) return finish(c, "NO", "[OVERQUOTA] Quota exceeded.");
    if (error == K::Invalid) return finish(c, "NO", fmt::format("[CANNOT] {}", reason));
    log::line(log::Level::Error, "imap", info_.id, "user=<{}> {} failed: {}", account_, c.name, reason);
    finish(c, "NO", "[SERVERBUG] Internal error occurred. Refer to server log for more information.");
}

namespace {

// "MESSAGES 3 UNSEEN 1 ..." in the order asked.
std::string status_items(const storage::MailboxStatus& s, const std::vector<StatusItem>& items) {
    std::string out;
    for (auto item : items) {
        if (!out.empty()) out += ' ';
        switch (item) {
        case StatusItem::Messages: out += fmt::format("MESSAGES {}", s.messages); break;
        case StatusItem::Recent: out += fmt::format("RECENT {}", s.recent); break;
        case StatusItem::UidNext: out += fmt::format("UIDNEXT {}", s.info.uidnext); break;
        case StatusItem::UidValidity: out += fmt::format("UIDVALIDITY {}", s.info.uidvalidity); break;
        case StatusItem::Unseen: out += fmt::format("UNSEEN {}", s.unseen); break;
        case StatusItem::Deleted: out += fmt::format("DELETED {}", s.deleted); break;
        case StatusItem::Size: out += fmt::format("SIZE {}", s.size); break;
        case StatusItem::HighestModSeq: out += fmt::format("HIGHESTMODSEQ {}", s.info.highestmodseq); break;
        }
    }
    return out;
}

}  // namespace

void ImapSession::cmd_enable(Command& c) {
    // RFC 5161: one or more capability names; those not known are ignored.
    std::string enabled;
    bool any = false;
    while (c.args.sp()) {
        auto cap = c.args.atom();
        if (!cap) return bad(c.tag, "Invalid capability name");
        any = true;
        std::string name = ascii_upper(*cap);
        if (name == "CONDSTORE" && !condstore_) {
            enable_condstore();
            enabled += " " + name;
            continue;
        }
        if (name == "QRESYNC" && !qresync_) {
            // RFC 7162 3.2.3: QRESYNC implies CONDSTORE.
            enable_condstore();
            qresync_ = true;
            enabled += " " + name;
            continue;
        }
        // UTF8=ACCEPT (RFC 6855 section 3): mailbox names in UTF-8 rather than modified UTF-7,
        // UTF-8 in quoted strings, APPEND's UTF8 data item.
        bool* flag = name == "IMAP4REV2" ? &rev2_ : name == "UTF8=ACCEPT" ? &utf8_accept_ : nullptr;
        if (!flag || *flag) continue;
        *flag = true;
        enabled += " " + name;
    }
    if (!any || !c.args.at_end()) return bad(c.tag, "Usage: ENABLE capability...");
    send(fmt::format("* ENABLED{}\r\n", enabled));
    finish(c, "OK", "Enabled.");
}

void ImapSession::cmd_id(Command& c) {
    // RFC 2971: NIL or a list of up to 30 field/value pairs; the client's are only checked.
    if (!c.args.sp()) return bad(c.tag, "Usage: ID (field value ...) or ID NIL");
    if (!c.args.take_word("NIL")) {
        if (!c.args.enter_list()) return bad(c.tag, "Invalid ID parameters");
        int pairs = 0;
        while (!c.args.peek(')')) {
            if (pairs && !c.args.sp()) return bad(c.tag, "Invalid ID parameters");
            auto field = c.args.string();
            bool ok = field && c.args.sp() && c.args.nstring();
            if (!ok || ++pairs > 30 || field->size() > 30) return bad(c.tag, "Invalid ID parameters");
        }
        c.args.leave_list();
    }
    if (!c.args.at_end()) return bad(c.tag, "Invalid ID parameters");
    send("* ID (\"name\" \"Pillarbox\")\r\n");
    finish(c, "OK", "ID completed.");
}

void ImapSession::cmd_namespace(Command& c) {
    if (!c.args.at_end()) return bad(c.tag, "NAMESPACE takes no arguments");
    // RFC 2342: one personal namespace with the root as its prefix; no other users' or shared.
    send(fmt::format("* NAMESPACE ((\"\" \"{}\")) NIL NIL\r\n", kSeparator));
    finish(c, "OK", "Namespace completed.");
}

void ImapSession::unselect() {
    changes_ = {};
    selected_.reset();
    if (state_ == State::Selected) state_ = State::Authenticated;
}

void ImapSession::cmd_select(Command& c) {
    const bool examine = c.name == "EXAMINE";
    if (!c.args.sp()) return bad(c.tag, "Usage: " + c.name + " mailbox");
    auto req = parse_select(c.args, utf8());
    if (!req || !c.args.at_end()) return bad(c.tag, c.args.error().empty() ? "Invalid arguments" : c.args.error());
    // RFC 7162 3.2.5: QRESYNC parameters only once the client enabled it.
    if (req->qresync && !qresync_) return bad(c.tag, "QRESYNC is not enabled");
    if (req->condstore) condstore_ = true;  // RFC 7162 3.1.8; SELECT's HIGHESTMODSEQ tells the value
    if (selected_) {
        // RFC 9051 6.3.2 / RFC 7162 3.2.11: the old mailbox is closed without an expunge.
        unselect();
        send("* OK [CLOSED] Previous mailbox closed.\r\n");
    }
    park();
    services_->store->view(account(), req->mailbox, guard_.wrap([this, c = Tagged(c), examine, qresync = req->qresync,
                                                                 mailbox = req->mailbox](storage::Outcome<storage::MailboxView> o) mutable {
        Resume resume{*this};
        if (!o.ok()) return store_failed(c, o);
        selected_ = std::make_unique<SelectedMailbox>(*o.value, examine);
        state_ = State::Selected;
        // Changes published after the snapshot's answer; those before are in it.
        changes_ = services_->store->subscribe(account(), mailbox, [this](const storage::Change& ch) { selected_changed(ch); });
        auto& v = *selected_;
        std::string flags = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
        for (auto& k : v.all_keywords()) flags += " " + k;
        std::string out = fmt::format("* {} EXISTS\r\n", v.count());
        if (!rev2_) out += fmt::format("* {} RECENT\r\n", v.recent());
        out += fmt::format("* FLAGS ({})\r\n", flags);
        out += examine ? "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"
                       : fmt::format("* OK [PERMANENTFLAGS ({} \\*)] Flags permitted.\r\n", flags);
        if (!rev2_) {
            // RFC 3501 6.3.1: the first unseen message's number, when there is one.
            for (std::uint32_t seq = 1; seq <= v.count(); ++seq)
                if (!(v.at(seq).flags & storage::kSeen)) {
                    out += fmt::format("* OK [UNSEEN {}] First unseen.\r\n", seq);
                    break;
                }
        }
        out += fmt::format("* OK [UIDVALIDITY {}] UIDs valid\r\n", v.info().uidvalidity);
        out += fmt::format("* OK [UIDNEXT {}] Predicted next UID\r\n", v.info().uidnext);
        if (condstore_) out += fmt::format("* OK [HIGHESTMODSEQ {}] Highest\r\n", v.highest_modseq());
        send(out);
        const char* done_text = examine ? "[READ-ONLY] Examine completed." : "[READ-WRITE] Select completed.";
        if (!qresync || qresync->uidvalidity != v.info().uidvalidity) return finish(c, "OK", done_text);
        // RFC 7162 3.2.5.2: what changed since the client's MODSEQ: the expunged UIDs as VANISHED
        // (EARLIER), then the messages whose flags changed. The session stays parked until then.
        resume.active = false;
        services_->store->expunged_since(account(), mailbox, qresync->modseq, guard_.wrap([this, c, done_text, q = *qresync](storage::Outcome<std::vector<std::uint32_t>> o) {
            Resume resume{*this};
            if (!selected_) return finish(c, "OK", done_text);
            std::vector<std::pair<std::uint32_t, std::uint32_t>> known;
            if (q.known_uids) known = q.known_uids->resolve(std::max(selected_->max_uid(), selected_->info().uidnext - 1));
            auto in_known = [&](std::uint32_t u) {
                if (!q.known_uids) return true;
                for (auto& [lo, hi] : known)
                    if (u >= lo && u <= hi) return true;
                return false;
            };
            std::vector<std::uint32_t> vanished;
            if (o.ok())
                for (auto u : *o.value)
                    if (in_known(u)) vanished.push_back(u);
            std::string out;
            if (!vanished.empty()) out += fmt::format("* VANISHED (EARLIER) {}\r\n", uid_set(vanished));
            for (std::uint32_t seq = 1; seq <= selected_->count(); ++seq) {
                auto& m = selected_->at(seq);
                if (m.modseq <= q.modseq || !in_known(m.uid)) continue;
                out += fmt::format("* {} FETCH (UID {} {} MODSEQ ({}))\r\n", seq, m.uid, selected_->flags_item(m, rev2_), m.modseq);
                selected_->told_flags(m.uid);
            }
            send(out);
            finish(c, "OK", done_text);
        }));
    }));
}

void ImapSession::cmd_create(Command& c) {
    std::optional<std::string> name;
    if (c.args.sp()) name = c.args.mailbox(utf8());
    if (!name) return bad(c.tag, "Usage: CREATE mailbox");
    // RFC 6154 section 3: CREATE name (USE (\Sent)). The store keeps one use per mailbox.
    std::vector<std::string> uses;
    if (c.args.sp()) {
        bool ok = c.args.enter_list() && c.args.take_word("USE") && c.args.sp() && c.args.enter_list();
        while (ok && !c.args.peek(')')) {
            if (!uses.empty() && !c.args.sp()) ok = false;
            auto f = ok ? c.args.flag() : std::nullopt;
            if (!f) ok = false;
            else uses.push_back(*f);
        }
        ok = ok && c.args.leave_list() && c.args.leave_list();
        if (!ok) return bad(c.tag, "Usage: CREATE mailbox [(USE (attributes))]");
    }
    if (!c.args.at_end()) return bad(c.tag, "Usage: CREATE mailbox [(USE (attributes))]");
    std::string use;
    for (auto& u : uses) {
        static const char* const kUses[] = {"\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash"};
        const char* known = nullptr;
        for (auto* k : kUses)
            if (ascii_iequals(u, k)) known = k;
        if (!known || !use.empty()) return finish(c, "NO", "[USEATTR] Only one of \\Archive \\Drafts \\Junk \\Sent \\Trash is supported.");
        use = known;
    }
    if (!name->empty() && name->back() == kSeparator) name->pop_back();
    if (name->empty()) return bad(c.tag, "Empty mailbox name");
    park();
    services_->store->create_mailbox(account(), *name, use, guard_.wrap([this, c = Tagged(c)](storage::Outcome<bool> o) mutable {
        Resume resume{*this};
        if (!o.ok()) return store_failed(c, o);
        finish(c, "OK", "Create completed.");
    }));
}

void ImapSession::cmd_delete(Command& c) {
    std::optional<std::string> name;
    if (c.args.sp()) name = c.args.mailbox(utf8());
    if (!name || !c.args.at_end()) return bad(c.tag, "Usage: DELETE mailbox");
    if (*name == "INBOX") return finish(c, "NO", "[CANNOT] INBOX can't be deleted.");
    if (selected_ && selected_->info().name == *name) {
        // Dovecot's choice: the selected mailbox may be deleted; the session leaves it first.
        unselect();
        send("* OK [CLOSED] Mailbox closed.\r\n");
    }
    park();
    services_->store->delete_mailbox(account(), *name, guard_.wrap([this, c = Tagged(c)](storage::Outcome<bool> o) mutable {
        Resume resume{*this};
        if (!o.ok()) return store_failed(c, o);
        finish(c, "OK", "Delete completed.");
    }));
}

void ImapSession::cmd_rename(Command& c) {
    std::optional<std::string> from, to;
    if (c.args.sp()) from = c.args.mailbox(utf8());
    if (from && c.args.sp()) to = c.args.mailbox(utf8());
    if (!to || !c.args.at_end()) return bad(c.tag, "Usage: RENAME from to");
    if (*to == "INBOX") return finish(c, "NO", "[ALREADYEXISTS] INBOX always exists.");
    park();
    services_->store->rename_mailbox(account(), *from, *to, guard_.wrap([this, c = Tagged(c)](storage::Outcome<bool> o) mutable {
        Resume resume{*this};
        if (!o.ok()) return store_failed(c, o);
        finish(c, "OK", "Rename completed.");
    }));
}

void ImapSession::cmd_subscribe(Command& c) {
    std::optional<std::string> name;
    if (c.args.sp()) name = c.args.mailbox(utf8());
    if (!name || !c.args.at_end()) return bad(c.tag, "Usage: " + c.name + " mailbox");
    const bool on = c.name == "SUBSCRIBE";
    park();
    services_->store->set_subscribed(account(), *name, on, guard_.wrap([this, c = Tagged(c), on](storage::Outcome<bool> o) mutable {
        Resume resume{*this};
        // RFC 9051 6.3.8: unsubscribing from a mailbox that is gone is no error.
        if (!o.ok() && !(o.error == storage::StoreError::Kind::NotFound && !on)) return store_failed(c, o);
        finish(c, "OK", on ? "Subscribe completed." : "Unsubscribe completed.");
    }));
}

void ImapSession::list(Command& c, bool lsub) {
    std::optional<ListRequest> req;
    if (c.args.sp()) req = parse_list(c.args, utf8());
    if (!req || !c.args.at_end()) return bad(c.tag, c.args.error().empty() ? "Invalid arguments" : c.args.error());
    if (lsub && req->extended) return bad(c.tag, "LSUB takes no options");
    const bool separator_query = req->patterns.size() == 1 && req->patterns[0].empty();
    if (separator_query) {
        // RFC 9051 6.3.9: an empty pattern asks for the hierarchy separator and the root.
        send(fmt::format("* {} (\\Noselect) \"{}\" \"\"\r\n", lsub ? "LSUB" : "LIST", kSeparator));
        return finish(c, "OK", lsub ? "Lsub completed." : "List completed.");
    }
    park();
    services_->store->mailboxes(account(), guard_.wrap([this, c = Tagged(c), lsub, req = *req](storage::Outcome<std::vector<storage::MailboxInfo>> o) mutable {
        if (!o.ok()) {
            Resume resume{*this};
            return store_failed(c, o);
        }
        auto lines = std::make_shared<std::vector<std::pair<std::string, std::string>>>();  // LIST line, mailbox for STATUS
        for (auto& e : list_mailboxes(*o.value, req, lsub)) {
            std::string attrs;
            for (auto& a : e.attributes) attrs += (attrs.empty() ? "" : " ") + a;
            std::string line = fmt::format("* {} ({}) \"{}\" {}", lsub ? "LSUB" : "LIST", attrs, kSeparator, quote_mailbox(e.name, utf8()));
            if (!e.childinfo.empty()) {
                std::string info;
                for (auto& i : e.childinfo) info += (info.empty() ? "\"" : " \"") + i + "\"";
                line += fmt::format(" (\"CHILDINFO\" ({}))", info);
            }
            lines->emplace_back(line + "\r\n", e.selectable && req.return_status ? e.name : "");
        }
        list_status(c, lines, 0, req.return_status.value_or(std::vector<StatusItem>{}), lsub);
    }));
}

// RFC 5819 LIST-STATUS: each selectable mailbox's LIST line, then its STATUS, one after the other.
void ImapSession::list_status(const Tagged& t, std::shared_ptr<std::vector<std::pair<std::string, std::string>>> lines,
                              std::size_t i, std::vector<StatusItem> items, bool lsub) {
    std::string out;
    for (; i < lines->size(); ++i) {
        out += (*lines)[i].first;
        if ((*lines)[i].second.empty()) continue;
        send(out);
        const std::string name = (*lines)[i].second;
        // The session stays parked from LIST until its tagged reply.
        services_->store->status(account(), name, guard_.wrap([this, t, lines, i, items, lsub, name](storage::Outcome<storage::MailboxStatus> o) {
            // A mailbox deleted in between has no STATUS (RFC 5819 section 2).
            if (o.ok()) send(fmt::format("* STATUS {} ({})\r\n", quote_mailbox(name, utf8()), status_items(*o.value, items)));
            list_status(t, lines, i + 1, items, lsub);
        }));
        return;
    }
    send(out);
    Resume resume{*this};
    finish(t, "OK", lsub ? "Lsub completed." : "List completed.");
}

void ImapSession::cmd_list(Command& c) { list(c, false); }
void ImapSession::cmd_lsub(Command& c) { list(c, true); }

void ImapSession::cmd_status(Command& c) {
    std::optional<std::string> name;
    std::optional<std::vector<StatusItem>> items;
    if (c.args.sp()) name = c.args.mailbox(utf8());
    if (name && c.args.sp()) items = parse_status_items(c.args);
    if (!items || !c.args.at_end()) return bad(c.tag, c.args.error().empty() ? "Usage: STATUS mailbox (items)" : c.args.error());
    if (std::find(items->begin(), items->end(), StatusItem::HighestModSeq) != items->end()) enable_condstore();
    park();
    services_->store->status(account(), *name, guard_.wrap([this, c = Tagged(c), name = *name, items = *items](storage::Outcome<storage::MailboxStatus> o) mutable {
        Resume resume{*this};
        if (!o.ok()) return store_failed(c, o);
        const std::string out = status_items(*o.value, items);
        send(fmt::format("* STATUS {} ({})\r\n", quote_mailbox(name, utf8()), out));
        finish(c, "OK", "Status completed.");
    }));
}

// --- QUOTA (RFC 9208): one quota root, "", over the whole account ---

namespace {

// "(STORAGE used limit MESSAGE used limit)" with the resources that have a limit; STORAGE in
// units of 1024 octets.
std::string quota_list(const storage::Mailboxes::QuotaState& q) {
    std::string out;
    if (q.quota.max_bytes) out += fmt::format("STORAGE {} {}", q.usage.bytes / 1024, q.quota.max_bytes / 1024);
    if (q.quota.max_messages)
        out += fmt::format("{}MESSAGE {} {}", out.empty() ? "" : " ", q.usage.messages, q.quota.max_messages);
    return "(" + out + ")";
}

bool has_limits(const storage::Quota& q) { return q.max_bytes || q.max_messages; }

}  // namespace

void ImapSession::cmd_getquotaroot(Command& c) {
    std::optional<std::string> name;
    if (c.args.sp()) name = c.args.mailbox(utf8());
    if (!name || !c.args.at_end()) return bad(c.tag, "Usage: GETQUOTAROOT mailbox");
    park();
    services_->store->quota(account(), guard_.wrap([this, c = Tagged(c), name = *name](storage::Outcome<storage::Mailboxes::QuotaState> o) {
        Resume resume{*this};
        if (!o.ok()) return store_failed(c, o);
        if (!has_limits(o.value->quota)) {
            send(fmt::format("* QUOTAROOT {}\r\n", quote_mailbox(name, utf8())));
        } else {
            send(fmt::format("* QUOTAROOT {} \"\"\r\n* QUOTA \"\" {}\r\n", quote_mailbox(name, utf8()), quota_list(*o.value)));
        }
        finish(c, "OK", "Getquotaroot completed.");
    }));
}

void ImapSession::cmd_getquota(Command& c) {
    std::optional<std::string> root;
    if (c.args.sp()) root = c.args.astring();
    if (!root || !c.args.at_end()) return bad(c.tag, "Usage: GETQUOTA root");
    if (!root->empty()) return finish(c, "NO", "[NONEXISTENT] Quota root doesn't exist.");
    park();
    services_->store->quota(account(), guard_.wrap([this, c = Tagged(c)](storage::Outcome<storage::Mailboxes::QuotaState> o) {
        Resume resume{*this};
        if (!o.ok()) return store_failed(c, o);
        if (!has_limits(o.value->quota)) return finish(c, "NO", "[NONEXISTENT] Quota root doesn't exist.");
        send(fmt::format("* QUOTA \"\" {}\r\n", quota_list(*o.value)));
        finish(c, "OK", "Getquota completed.");
    }));
}

void ImapSession::cmd_setquota(Command& c) {
    // RFC 9208 4.1.3: limits are the administrator's (pillarbox user add --quota).
    finish(c, "NO", "[NOPERM] Quota limits are set by the administrator.");
}

}  // namespace pillarbox::imap
