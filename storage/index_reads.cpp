// Index queries shared by the writer and the readers (see index_reads.hpp).
#include "storage/index_reads.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <string>

#include "storage/account.hpp"
#include "storage/maildir/ascii.hpp"

namespace pillarbox::storage::index {

namespace {

constexpr const char* kMailboxColumns =
    "SELECT id, name, dir, uidvalidity, uidnext, highestmodseq, subscribed, special_use FROM mailbox";

MailboxInfo mailbox_row(sqlite::Stmt& st) {
    MailboxInfo m;
    m.id = st.int64(0);
    m.name = st.text(1);
    m.dir = st.text(2);
    m.uidvalidity = static_cast<std::uint32_t>(st.int64(3));
    m.uidnext = static_cast<std::uint32_t>(st.int64(4));
    m.highestmodseq = static_cast<std::uint64_t>(st.int64(5));
    m.subscribed = st.int64(6) != 0;
    m.special_use = st.text(7);
    return m;
}

}  // namespace

const char* const kMessageColumns =
    "SELECT uid, file, size, rfc822_size, internal_date, flags, modseq, keywords FROM message";

MessageInfo message_row(sqlite::Stmt& st) {
    return {static_cast<std::uint32_t>(st.int64(0)), st.text(1),
            static_cast<std::uint64_t>(st.int64(2)), static_cast<std::uint64_t>(st.int64(3)),
            st.int64(4), static_cast<std::uint32_t>(st.int64(5)), static_cast<std::uint64_t>(st.int64(6)),
            split_keywords(st.text(7))};
}

std::vector<MailboxInfo> mailboxes(sqlite::Db& db) {
    std::vector<MailboxInfo> out;
    auto st = db.prepare(fmt::format("{} ORDER BY name", kMailboxColumns));
    while (st.step()) out.push_back(mailbox_row(st));
    return out;
}

std::optional<MailboxInfo> find_mailbox(sqlite::Db& db, std::string_view name) {
    auto st = db.prepare(fmt::format("{} WHERE name = ?", kMailboxColumns));
    st.bind(1, name);
    if (!st.step()) return std::nullopt;
    return mailbox_row(st);
}

SyncMarks sync_marks(sqlite::Db& db, std::int64_t mailbox_id) {
    auto st = db.prepare("SELECT synced_new_mtime, synced_cur_mtime FROM mailbox WHERE id = ?");
    st.bind(1, mailbox_id);
    if (!st.step()) return {};
    return {st.int64(0), st.int64(1)};
}

std::vector<MessageInfo> messages(sqlite::Db& db, std::int64_t mailbox_id) {
    std::vector<MessageInfo> out;
    auto st = db.prepare(fmt::format("{} WHERE mailbox_id = ? ORDER BY uid", kMessageColumns));
    st.bind(1, mailbox_id);
    while (st.step()) out.push_back(message_row(st));
    return out;
}

std::vector<MessageInfo> messages(sqlite::Db& db, std::int64_t mailbox_id, const UidRanges& uids) {
    std::vector<MessageInfo> out;
    // One index range scan per UID range: a handful of messages out of 100,000 costs a handful.
    auto st = db.prepare(fmt::format("{} WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid", kMessageColumns));
    for (auto [lo, hi] : uids) {
        st.reset();
        st.bind(1, mailbox_id).bind(2, lo).bind(3, hi);
        while (st.step()) out.push_back(message_row(st));
    }
    return out;
}

std::vector<ViewRow> view_rows(sqlite::Db& db, std::int64_t mailbox_id) {
    std::vector<ViewRow> out;
    auto st = db.prepare(
        "SELECT uid, flags, modseq, substr(file, 1, 4) = 'new/', keywords FROM message WHERE mailbox_id = ? ORDER BY uid");
    st.bind(1, mailbox_id);
    while (st.step()) {
        ViewRow r;
        r.uid = static_cast<std::uint32_t>(st.int64(0));
        r.flags = static_cast<std::uint32_t>(st.int64(1));
        r.modseq = static_cast<std::uint64_t>(st.int64(2));
        r.in_new = st.int64(3) != 0;
        if (auto k = st.text_view(4); !k.empty()) r.keywords = split_keywords(k);
        out.push_back(std::move(r));
    }
    return out;
}

std::optional<MessageInfo> message(sqlite::Db& db, std::int64_t mailbox_id, std::uint32_t uid) {
    auto st = db.prepare(fmt::format("{} WHERE mailbox_id = ? AND uid = ?", kMessageColumns));
    st.bind(1, mailbox_id).bind(2, uid);
    if (!st.step()) return std::nullopt;
    return message_row(st);
}

MailboxStatus status(sqlite::Db& db, const MailboxInfo& info) {
    MailboxStatus s;
    s.info = info;
    auto st = db.prepare(
        "SELECT count(*), coalesce(sum(rfc822_size), 0), coalesce(sum((flags & 1) = 0), 0), "
        "coalesce(sum((flags & 8) != 0), 0), coalesce(sum(substr(file, 1, 4) = 'new/'), 0) FROM message WHERE mailbox_id = ?");
    st.bind(1, info.id);
    st.step();
    s.messages = static_cast<std::uint32_t>(st.int64(0));
    s.size = static_cast<std::uint64_t>(st.int64(1));
    s.unseen = static_cast<std::uint32_t>(st.int64(2));
    s.deleted = static_cast<std::uint32_t>(st.int64(3));
    s.recent = static_cast<std::uint32_t>(st.int64(4));
    return s;
}

std::vector<std::uint32_t> search(sqlite::Db& db, std::int64_t mailbox_id, const SearchQuery& q) {
    std::string sql = "SELECT uid, keywords FROM message WHERE mailbox_id = ?";
    std::vector<std::int64_t> args{mailbox_id};
    if (!q.uids.empty()) {
        sql += " AND (";
        for (std::size_t i = 0; i < q.uids.size(); ++i) {
            sql += i ? " OR " : "";
            sql += "uid BETWEEN ? AND ?";
            args.push_back(q.uids[i].first);
            args.push_back(q.uids[i].second);
        }
        sql += ")";
    }
    if (q.flags_set) sql += " AND (flags & ?) = ?", args.push_back(q.flags_set), args.push_back(q.flags_set);
    if (q.flags_clear) sql += " AND (flags & ?) = 0", args.push_back(q.flags_clear);
    if (q.larger) sql += " AND rfc822_size > ?", args.push_back(static_cast<std::int64_t>(*q.larger));
    if (q.smaller) sql += " AND rfc822_size < ?", args.push_back(static_cast<std::int64_t>(*q.smaller));
    if (q.since) sql += " AND internal_date >= ?", args.push_back(*q.since);
    if (q.before) sql += " AND internal_date < ?", args.push_back(*q.before);
    if (q.modseq) sql += " AND modseq >= ?", args.push_back(static_cast<std::int64_t>(*q.modseq));
    sql += " ORDER BY uid";
    auto st = db.prepare(sql);
    for (std::size_t i = 0; i < args.size(); ++i) st.bind(static_cast<int>(i + 1), args[i]);
    // Keywords compare case-insensitively, as everywhere in the store.
    auto has = [](const std::vector<std::string>& kws, const std::string& k) {
        return std::any_of(kws.begin(), kws.end(), [&](const std::string& x) { return maildir::iequals(x, k); });
    };
    std::vector<std::uint32_t> out;
    while (st.step()) {
        auto kws = split_keywords(st.text(1));
        if (std::all_of(q.keywords_set.begin(), q.keywords_set.end(), [&](auto& k) { return has(kws, k); }) &&
            std::none_of(q.keywords_clear.begin(), q.keywords_clear.end(), [&](auto& k) { return has(kws, k); }))
            out.push_back(static_cast<std::uint32_t>(st.int64(0)));
    }
    return out;
}

}  // namespace pillarbox::storage::index
