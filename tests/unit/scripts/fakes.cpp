// The in-process fakes (see fakes.hpp).
#include "tests/unit/scripts/fakes.hpp"

#include <asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <fstream>

#include "protocols/common/message_parser.hpp"
#include "storage/message_file.hpp"

namespace pillarbox::scripts {

using storage::AccountId;
using storage::MessageInfo;
using storage::Outcome;

void FakeStore::later(std::function<void()> fn) {
    if (faults.delay.count() == 0) {
        asio::post(loop_, std::move(fn));
        return;
    }
    auto t = std::make_shared<asio::steady_timer>(loop_, faults.delay);
    t->async_wait([t, fn = std::move(fn)](std::error_code) { fn(); });
}

FakeStore::Box& FakeStore::box(const AccountId& a, const std::string& mailbox) {
    auto& boxes = accounts_[key(a)];
    if (boxes.empty()) {
        // What the store creates with an account: INBOX and the special-use folders.
        for (auto [name, use] : {std::pair{"INBOX", ""}, {"Drafts", "\\Drafts"}, {"Sent", "\\Sent"}, {"Trash", "\\Trash"},
                                 {"Junk", "\\Junk"}, {"Archive", "\\Archive"}}) {
            auto& b = boxes[name];
            b.info.id = static_cast<std::int64_t>(boxes.size());
            b.info.name = name;
            b.info.special_use = use;
            b.info.subscribed = true;
            b.info.uidvalidity = 0x12345678;
        }
    }
    auto& b = boxes[mailbox];
    if (b.info.name.empty()) {
        b.info.id = static_cast<std::int64_t>(boxes.size());
        b.info.name = mailbox;
        b.info.uidvalidity = 0x12345678;
    }
    return b;
}

std::uint32_t FakeStore::add(const AccountId& a, const std::string& mailbox, std::string text, std::uint32_t flags) {
    auto& b = box(a, mailbox);
    MessageInfo m;
    m.uid = b.info.uidnext++;
    m.file = fmt::format("new/{}.fake,S={}", m.uid, text.size());
    m.size = m.rfc822_size = text.size();
    m.internal_date = 1700000000;
    m.flags = flags;
    m.modseq = ++b.info.highestmodseq;  // MODSEQs count per mailbox, as the store's do
    b.messages[m.uid] = {m, std::move(text)};
    storage::Change c;
    c.kind = storage::Change::Kind::Added;
    c.mailbox = mailbox;
    c.messages = {m};
    c.modseq = m.modseq;
    bus_.publish(key(a), c);
    return m.uid;
}

void FakeStore::add_message(const AccountId& a, const std::string& text) { add(a, "INBOX", text, 0); }

std::vector<std::string> FakeStore::inbox(const AccountId& a) const {
    std::vector<std::string> out;
    auto acc = accounts_.find(key(a));
    if (acc == accounts_.end()) return out;
    auto b = acc->second.find("INBOX");
    if (b == acc->second.end()) return out;
    for (auto& [uid, m] : b->second.messages) out.push_back(m.second);
    return out;
}

storage::ChangeBus::Subscription FakeStore::subscribe(const AccountId& account, const std::string& mailbox,
                                                      storage::ChangeBus::Listener listener) {
    return bus_.subscribe(key(account), mailbox, std::move(listener));
}

void FakeStore::snapshot(const AccountId& account, const std::string& mailbox, Done<storage::MailboxSnapshot> done) {
    if (!exists(account, mailbox)) return fail_later(std::move(done), storage::StoreError::Kind::NotFound, "no mailbox " + mailbox);
    storage::MailboxSnapshot s;
    auto& b = box(account, mailbox);
    s.mailbox = b.info;
    for (auto& [uid, m] : b.messages) s.messages.push_back(m.first);
    later([done = std::move(done), s = std::move(s)]() mutable { done({std::move(s), {}, {}}); });
}

void FakeStore::view(const AccountId& account, const std::string& mailbox, Done<storage::MailboxView> done) {
    if (!exists(account, mailbox)) return fail_later(std::move(done), storage::StoreError::Kind::NotFound, "no mailbox " + mailbox);
    storage::MailboxView s;
    auto& b = box(account, mailbox);
    s.mailbox = b.info;
    for (auto& [uid, m] : b.messages)
        s.messages.push_back({m.first.uid, m.first.flags, m.first.modseq, m.first.file.rfind("new/", 0) == 0, m.first.keywords});
    later([done = std::move(done), s = std::move(s)]() mutable { done({std::move(s), {}, {}}); });
}

void FakeStore::messages(const AccountId& account, const std::string& mailbox, storage::UidRanges uids,
                         Done<std::vector<storage::MessageInfo>> done) {
    if (!exists(account, mailbox)) return fail_later(std::move(done), storage::StoreError::Kind::NotFound, "no mailbox " + mailbox);
    std::vector<storage::MessageInfo> out;
    auto& b = box(account, mailbox);
    for (auto [lo, hi] : uids)
        for (auto it = b.messages.lower_bound(lo); it != b.messages.end() && it->first <= hi; ++it) out.push_back(it->second.first);
    later([done = std::move(done), out = std::move(out)]() mutable { done({std::move(out), {}, {}}); });
}

void FakeStore::status(const AccountId& account, const std::string& mailbox, Done<storage::MailboxStatus> done) {
    if (!exists(account, mailbox)) return fail_later(std::move(done), storage::StoreError::Kind::NotFound, "no mailbox " + mailbox);
    storage::MailboxStatus st;
    auto& b = box(account, mailbox);
    st.info = b.info;
    for (auto& [uid, m] : b.messages) {
        ++st.messages;
        st.size += m.first.rfc822_size;
        if (!(m.first.flags & storage::kSeen)) ++st.unseen;
        if (m.first.flags & storage::kDeleted) ++st.deleted;
        if (m.first.file.rfind("new/", 0) == 0) ++st.recent;
    }
    later([done = std::move(done), st] { done({st, {}, {}}); });
}

void FakeStore::message(const AccountId& account, const std::string& mailbox, std::uint32_t uid,
                        Done<std::optional<MessageInfo>> done) {
    std::optional<MessageInfo> m;
    auto& b = box(account, mailbox);
    if (auto it = b.messages.find(uid); it != b.messages.end()) m = it->second.first;
    later([done = std::move(done), m] { done({m, {}, {}}); });
}

void FakeStore::mailboxes(const AccountId& account, Done<std::vector<storage::MailboxInfo>> done) {
    box(account, "INBOX");
    std::vector<storage::MailboxInfo> out;
    for (auto& [name, b] : accounts_[key(account)]) out.push_back(b.info);
    later([done = std::move(done), out] { done({out, {}, {}}); });
}

void FakeStore::search(const AccountId& account, const std::string& mailbox, const storage::SearchQuery& q,
                       Done<std::vector<std::uint32_t>> done) {
    std::vector<std::uint32_t> out;
    for (auto& [uid, m] : box(account, mailbox).messages)
        if ((m.first.flags & q.flags_set) == q.flags_set && !(m.first.flags & q.flags_clear)) out.push_back(uid);
    later([done = std::move(done), out] { done({out, {}, {}}); });
}

void FakeStore::read(const AccountId& account, const storage::MailboxInfo& mailbox, const std::string& file, std::uint64_t offset,
                     std::size_t length, Done<std::string> done) {
    Outcome<std::string> out;
    for (auto& [uid, m] : box(account, mailbox.name).messages)
        if (m.first.file == file) out.value = offset < m.second.size() ? m.second.substr(offset, length) : std::string();
    if (!out.value) {
        out.error = storage::StoreError::Kind::NotFound;
        out.reason = file + ": no such message";
    }
    later([done = std::move(done), out = std::move(out)]() mutable { done(std::move(out)); });
}

void FakeStore::set_flags(const AccountId& account, const std::string& mailbox, const std::vector<std::uint32_t>& uids,
                          storage::FlagOp op, std::uint32_t flags, const std::vector<std::string>& keywords,
                          Done<std::vector<MessageInfo>> done) {
    std::vector<MessageInfo> changed;
    auto& b = box(account, mailbox);
    for (auto uid : uids) {
        auto it = b.messages.find(uid);
        if (it == b.messages.end()) continue;
        auto& f = it->second.first.flags;
        f = op == storage::FlagOp::Add ? f | flags : op == storage::FlagOp::Remove ? f & ~flags : flags;
        auto& kw = it->second.first.keywords;
        if (op == storage::FlagOp::Replace) kw.clear();
        for (auto& k : keywords) {
            auto at = std::find(kw.begin(), kw.end(), k);
            if (op == storage::FlagOp::Remove && at != kw.end()) kw.erase(at);
            else if (op != storage::FlagOp::Remove && at == kw.end()) kw.push_back(k);
        }
        it->second.first.modseq = ++b.info.highestmodseq;
        changed.push_back(it->second.first);
    }
    later([this, account, mailbox, changed, done = std::move(done)] {
        if (!changed.empty()) {
            storage::Change c;
            c.kind = storage::Change::Kind::FlagsChanged;
            c.mailbox = mailbox;
            c.messages = changed;
            c.modseq = changed.back().modseq;
            bus_.publish(key(account), c);
        }
        done({changed, {}, {}});
    });
}

void FakeStore::expunge(const AccountId& account, const std::string& mailbox, const std::vector<std::uint32_t>& uids,
                        Done<std::vector<std::uint32_t>> done) {
    if (faults.disk_full) {
        later([done = std::move(done)] { done({std::nullopt, {}, "No space left on device"}); });
        return;
    }
    std::vector<std::uint32_t> gone;
    auto& b = box(account, mailbox);
    for (auto uid : uids)
        if (b.messages.erase(uid)) gone.push_back(uid);
    std::uint64_t modseq = gone.empty() ? 0 : ++b.info.highestmodseq;
    for (auto uid : gone) b.expunged[uid] = modseq;
    if (modseq) b.info.highestmodseq = modseq;
    later([this, account, mailbox, gone, modseq, done = std::move(done)] {
        if (!gone.empty()) {
            storage::Change c;
            c.kind = storage::Change::Kind::Expunged;
            c.mailbox = mailbox;
            c.uids = gone;
            c.modseq = modseq;
            bus_.publish(key(account), c);
        }
        done({gone, {}, {}});
    });
}

void FakeStore::commit_maildrop(const AccountId& account, const std::string& mailbox, const storage::MaildropUpdate& update,
                                Done<std::string> done) {
    expunge(account, mailbox, update.expunge, [this, account, mailbox, seen = update.seen, done = std::move(done)](Outcome<std::vector<std::uint32_t>> e) {
        if (!e.ok()) return done({std::nullopt, e.error, e.reason});
        set_flags(account, mailbox, seen, storage::FlagOp::Add, storage::kSeen, {},
                  [done](Outcome<std::vector<MessageInfo>>) { done({std::string(), {}, {}}); });
    });
}

// An APPEND kept in memory until commit.
class FakeAppend final : public storage::AppendTarget {
public:
    FakeAppend(FakeStore& s, AccountId a, std::string mailbox, std::uint32_t flags)
        : s_(s), a_(std::move(a)), mailbox_(std::move(mailbox)), flags_(flags) {}
    void body(std::string_view chunk) override { text_ += chunk; }
    std::size_t buffered() const override { return 0; }
    void on_drained(std::function<void()> cb) override { cb(); }
    void commit(std::function<void(Outcome<std::uint32_t>)> done) override {
        if (s_.faults.disk_full) return s_.later([done] { done({std::nullopt, {}, "No space left on device"}); });
        if (s_.faults.over_quota.count(FakeStore::key(a_)) || s_.over_limits(a_, text_.size()))
            return s_.later([done] { done({std::nullopt, storage::StoreError::Kind::OverQuota, "over quota"}); });
        auto uid = s_.add(a_, mailbox_, std::move(text_), flags_);
        s_.later([done, uid] { done({uid, {}, {}}); });
    }
    void abort() override { text_.clear(); }

private:
    FakeStore& s_;
    AccountId a_;
    std::string mailbox_;
    std::uint32_t flags_;
    std::string text_;
};

std::unique_ptr<storage::AppendTarget> FakeStore::append(const AccountId& account, const std::string& mailbox, std::uint32_t flags,
                                                         std::int64_t) {
    return std::make_unique<FakeAppend>(*this, account, mailbox, flags);
}

// A delivery kept in memory; at commit each recipient gets the message, or the fault in force.
class FakeDelivery final : public storage::DeliveryTarget {
public:
    explicit FakeDelivery(FakeStore& s) : s_(s) {}
    void start(const std::string& return_path, bool add_return_path) override {
        prefix_ = add_return_path ? "Return-Path: <" + return_path + ">\r\n" : "";
    }
    void add_recipient(const std::string& localpart, const std::string& domain, const std::string& delivered_to,
                       const storage::RecipientDsn&) override {
        rcpts_.push_back({{localpart, domain}, delivered_to});
    }
    void body(std::string_view chunk) override { text_ += chunk; }
    std::size_t buffered() const override { return 0; }
    void on_drained(std::function<void()> cb) override { cb(); }
    void commit(std::function<void(std::vector<storage::RecipientResult>)> done) override {
        auto run = [this, done = std::move(done)] {
            std::vector<storage::RecipientResult> out;
            for (auto& [a, delivered_to] : rcpts_) {
                storage::RecipientResult r;
                if (s_.faults.disk_full) {
                    r.reason = "write: No space left on device";
                } else if (s_.faults.commit_tempfail) {
                    r.reason = "fsync: Input/output error (injected)";
                } else if (s_.faults.over_quota.count(FakeStore::key(a))) {
                    r.over_quota = true;
                    r.temporary = false;
                    r.reason = "over quota (injected)";
                } else {
                    std::string copy = prefix_ + (delivered_to.empty() ? "" : "Delivered-To: " + delivered_to + "\r\n") + text_;
                    r.ok = true;
                    r.uid = s_.add(a, "INBOX", copy, 0);
                }
                out.push_back(r);
            }
            // The message as given, on disk, for the dispatcher's retry and hold copies.
            auto path = s_.dir_ / fmt::format("copy-{}.eml", ++s_.copies_);
            std::ofstream(path, std::ios::binary) << text_;
            source_ = std::make_shared<storage::MessageCopy>();
            source_->path = path.string();
            s_.later([done, out] { done(out); });
        };
        if (s_.faults.hold_commits) s_.held_.push_back(std::move(run));
        else run();
    }
    void abort() override { text_.clear(); }
    std::shared_ptr<const storage::MessageCopy> copy_source() const override { return source_; }

private:
    FakeStore& s_;
    std::string prefix_, text_;
    std::vector<std::pair<AccountId, std::string>> rcpts_;
    std::shared_ptr<storage::MessageCopy> source_;
};

void FakeStore::publish_later(const AccountId& a, storage::Change c) {
    later([this, k = key(a), c = std::move(c)] { bus_.publish(k, c); });
}

bool FakeStore::exists(const AccountId& a, const std::string& mailbox) {
    return box(a, "INBOX"), accounts_[key(a)].count(mailbox) > 0;
}

void FakeStore::copy(const AccountId& account, const std::string& from, const std::vector<std::uint32_t>& uids,
                     const std::string& to, Done<Copied> done) {
    if (!exists(account, to)) return fail_later(std::move(done), storage::StoreError::Kind::NotFound, "no mailbox " + to);
    if (faults.over_quota.count(key(account))) return fail_later(std::move(done), storage::StoreError::Kind::OverQuota, "over quota");
    Copied out;
    auto& src = box(account, from);
    auto& dst = box(account, to);
    out.uidvalidity = dst.info.uidvalidity;
    storage::Change c;
    c.kind = storage::Change::Kind::Added;
    c.mailbox = to;
    for (auto uid : uids) {
        auto it = src.messages.find(uid);
        if (it == src.messages.end()) {
            out.uids.push_back(0);
            continue;
        }
        auto m = it->second;
        m.first.uid = dst.info.uidnext++;
        m.first.modseq = ++dst.info.highestmodseq;
        out.uids.push_back(m.first.uid);
        c.messages.push_back(m.first);
        dst.messages[m.first.uid] = std::move(m);
    }
    c.modseq = dst.info.highestmodseq;
    if (!c.messages.empty()) publish_later(account, std::move(c));
    later([done = std::move(done), out] { done({out, {}, {}}); });
}

void FakeStore::move(const AccountId& account, const std::string& from, const std::vector<std::uint32_t>& uids,
                     const std::string& to, Done<Copied> done) {
    copy(account, from, uids, to, [this, account, from, uids, done = std::move(done)](Outcome<Copied> c) mutable {
        if (!c.ok()) return done(std::move(c));
        std::vector<std::uint32_t> gone;
        for (std::size_t i = 0; i < uids.size(); ++i)
            if (c.value->uids[i]) gone.push_back(uids[i]);
        expunge(account, from, gone, [c, done = std::move(done)](Outcome<std::vector<std::uint32_t>> e) {
            if (!e.ok()) return done({std::nullopt, e.error, e.reason});
            done(c);
        });
    });
}

void FakeStore::create_mailbox(const AccountId& account, const std::string& name, const std::string& special_use,
                               Done<bool> done) {
    if (exists(account, name)) return fail_later(std::move(done), storage::StoreError::Kind::Exists, "mailbox exists");
    box(account, name).info.special_use = special_use;
    storage::Change c;
    c.kind = storage::Change::Kind::MailboxCreated;
    c.mailbox = name;
    publish_later(account, std::move(c));
    later([done = std::move(done)] { done({true, {}, {}}); });
}

void FakeStore::delete_mailbox(const AccountId& account, const std::string& name, Done<bool> done) {
    if (name == "INBOX") return fail_later(std::move(done), storage::StoreError::Kind::Invalid, "INBOX cannot be deleted");
    if (!exists(account, name)) return fail_later(std::move(done), storage::StoreError::Kind::NotFound, "no mailbox " + name);
    accounts_[key(account)].erase(name);
    storage::Change c;
    c.kind = storage::Change::Kind::MailboxDeleted;
    c.mailbox = name;
    publish_later(account, std::move(c));
    later([done = std::move(done)] { done({true, {}, {}}); });
}

void FakeStore::rename_mailbox(const AccountId& account, const std::string& from, const std::string& to, Done<bool> done) {
    if (!exists(account, from)) return fail_later(std::move(done), storage::StoreError::Kind::NotFound, "no mailbox " + from);
    if (exists(account, to)) return fail_later(std::move(done), storage::StoreError::Kind::Exists, "mailbox exists");
    auto& boxes = accounts_[key(account)];
    if (from == "INBOX") {
        std::vector<std::uint32_t> uids;
        for (auto& [uid, m] : box(account, from).messages) uids.push_back(uid);
        box(account, to);
        return move(account, from, uids, to, [done = std::move(done)](Outcome<Copied> c) { done({c.ok(), c.error, c.reason}); });
    }
    auto node = boxes.extract(from);
    node.key() = to;
    node.mapped().info.name = to;
    boxes.insert(std::move(node));
    storage::Change c;
    c.kind = storage::Change::Kind::MailboxRenamed;
    c.mailbox = from;
    c.new_name = to;
    publish_later(account, std::move(c));
    later([done = std::move(done)] { done({true, {}, {}}); });
}

void FakeStore::set_subscribed(const AccountId& account, const std::string& name, bool subscribed, Done<bool> done) {
    if (!exists(account, name)) return fail_later(std::move(done), storage::StoreError::Kind::NotFound, "no mailbox " + name);
    box(account, name).info.subscribed = subscribed;
    later([done = std::move(done)] { done({true, {}, {}}); });
}

void FakeStore::parsed(const AccountId& account, const std::string& mailbox, std::uint32_t uid, Done<std::string> done) {
    ++parsed_reads;
    auto& b = box(account, mailbox);
    auto it = b.messages.find(uid);
    if (it == b.messages.end()) return fail_later(std::move(done), storage::StoreError::Kind::NotFound, "no such message");
    auto json = mime::to_json(mime::parse_message(it->second.second));
    later([done = std::move(done), json] { done({json, {}, {}}); });
}

// The fake's cache is always full: every message's structure, made from its content.
void FakeStore::cached_parses(const AccountId& account, const std::string& mailbox, storage::UidRanges uids,
                              Done<CachedParses> done) {
    ++cached_parse_reads;
    if (!exists(account, mailbox)) return fail_later(std::move(done), storage::StoreError::Kind::NotFound, "no mailbox " + mailbox);
    CachedParses out;
    auto& b = box(account, mailbox);
    for (auto [lo, hi] : uids)
        for (auto it = b.messages.lower_bound(lo); it != b.messages.end() && it->first <= hi; ++it)
            out.emplace_back(it->first, mime::to_json(mime::parse_message(it->second.second)));
    later([done = std::move(done), out = std::move(out)]() mutable { done({std::move(out), {}, {}}); });
}

bool FakeStore::over_limits(const AccountId& account, std::uint64_t more_bytes) {
    std::uint64_t messages = 0, bytes = 0;
    box(account, "INBOX");
    for (auto& [name, b] : accounts_[key(account)])
        for (auto& [uid, m] : b.messages) ++messages, bytes += m.first.size;
    return (limits.max_messages && messages + 1 > limits.max_messages) || (limits.max_bytes && bytes + more_bytes > limits.max_bytes);
}

void FakeStore::quota(const AccountId& account, Done<QuotaState> done) {
    QuotaState q;
    q.quota = limits;
    box(account, "INBOX");
    for (auto& [name, b] : accounts_[key(account)])
        for (auto& [uid, m] : b.messages) {
            ++q.usage.messages;
            q.usage.bytes += m.first.size;
        }
    later([done = std::move(done), q] { done({q, {}, {}}); });
}

void FakeStore::set_flags_unchanged_since(const AccountId& account, const std::string& mailbox,
                                          const std::vector<std::uint32_t>& uids, storage::FlagOp op, std::uint32_t flags,
                                          const std::vector<std::string>& keywords, std::uint64_t unchanged_since,
                                          Done<ConditionalFlags> done) {
    auto r = std::make_shared<ConditionalFlags>();
    std::vector<std::uint32_t> pass;
    auto& b = box(account, mailbox);
    for (auto uid : uids) {
        auto it = b.messages.find(uid);
        if (it == b.messages.end()) continue;
        if (it->second.first.modseq > unchanged_since) r->modified.push_back(uid);
        else pass.push_back(uid);
    }
    set_flags(account, mailbox, pass, op, flags, keywords, [r, done = std::move(done)](Outcome<std::vector<MessageInfo>> o) {
        if (!o.ok()) return done({std::nullopt, o.error, o.reason});
        r->changed = std::move(*o.value);
        done({*r, {}, {}});
    });
}

void FakeStore::expunged_since(const AccountId& account, const std::string& mailbox, std::uint64_t modseq,
                               Done<std::vector<std::uint32_t>> done) {
    if (!exists(account, mailbox)) return fail_later(std::move(done), storage::StoreError::Kind::NotFound, "no mailbox " + mailbox);
    std::vector<std::uint32_t> out;
    for (auto& [uid, m] : box(account, mailbox).expunged)
        if (m > modseq) out.push_back(uid);
    later([done = std::move(done), out] { done({out, {}, {}}); });
}

std::unique_ptr<storage::DeliveryTarget> FakeStore::delivery() { return std::make_unique<FakeDelivery>(*this); }

void FakeStore::release_commits() {
    auto held = std::move(held_);
    held_.clear();
    for (auto& fn : held) fn();
}

namespace {
// An exchange that ends at once with a temporary failure (the backend can't answer).
class TempFailExchange final : public auth::Exchange {
public:
    void start(std::optional<std::string>, Callback cb) override { answer(std::move(cb)); }
    void respond(std::string_view, Callback cb) override { answer(std::move(cb)); }

private:
    void answer(Callback cb) {
        Reply r;
        r.done = true;
        r.result.status = auth::Result::Status::TempFail;
        cb(r);
    }
};
}  // namespace

std::unique_ptr<auth::Exchange> FakeAuthentication::begin(std::string_view mechanism, auth::ClientInfo client) {
    if (faults.tempfail) return std::make_unique<TempFailExchange>();
    return real_.begin(mechanism, std::move(client));
}

std::shared_ptr<void> FakeAuthentication::login(auth::ClientInfo client, std::string login, std::string password, LoginCallback cb) {
    if (faults.tempfail) {
        auth::Result r;
        r.status = auth::Result::Status::TempFail;
        cb(r);
        return nullptr;
    }
    return real_.login(std::move(client), std::move(login), std::move(password), std::move(cb));
}

}  // namespace pillarbox::scripts
