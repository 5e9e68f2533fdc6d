// The mailbox API on an Account: snapshot, flags, copy, status, folders, subscriptions, quota
// (see account.hpp). Files change first, then the index in one transaction, so a crash in
// between leaves what the next sync converges on.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <cerrno>
#include <chrono>
#include <fmt/format.h>
#include <map>
#include <system_error>

#include "server/loop_guard.hpp"
#include "storage/account.hpp"
#include "storage/index_reads.hpp"
#include "storage/maildir/filename.hpp"
#include "storage/maildir/folder_name.hpp"
#include "storage/maildir/ascii.hpp"
#include "storage/maildir/keywords.hpp"

namespace pillarbox::storage {

namespace fs = std::filesystem;

namespace {

bool same_keyword(std::string_view a, std::string_view b) { return maildir::iequals(a, b); }

// Keywords compare case-insensitively (as Dovecot does); the first spelling seen is kept.
std::vector<std::string> apply_keywords(FlagOp op, const std::vector<std::string>& have, const std::vector<std::string>& kws) {
    auto contains = [](const std::vector<std::string>& v, const std::string& k) {
        return std::any_of(v.begin(), v.end(), [&](const std::string& x) { return same_keyword(x, k); });
    };
    std::vector<std::string> out;
    if (op == FlagOp::Replace) {
        for (auto& k : kws)
            if (!contains(out, k)) out.push_back(k);
        return out;
    }
    for (auto& k : have)
        if (op == FlagOp::Add || !contains(kws, k)) out.push_back(k);
    if (op == FlagOp::Add)
        for (auto& k : kws)
            if (!contains(out, k)) out.push_back(k);
    return out;
}

std::uint32_t apply(FlagOp op, std::uint32_t have, std::uint32_t flags) {
    switch (op) {
        case FlagOp::Add: return have | flags;
        case FlagOp::Remove: return have & ~flags;
        case FlagOp::Replace: return flags;
    }
    return have;
}

}  // namespace

std::vector<std::string> split_keywords(std::string_view text) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < text.size()) {
        auto sp = text.find(' ', i);
        if (sp == std::string_view::npos) sp = text.size();
        if (sp > i) out.emplace_back(text.substr(i, sp - i));
        i = sp + 1;
    }
    return out;
}

std::string join_keywords(const std::vector<std::string>& keywords) {
    std::string out;
    for (auto& k : keywords) out += (out.empty() ? "" : " ") + k;
    return out;
}

maildir::KeywordTable load_keywords(const fs::path& mailbox_dir) {
    std::ifstream in(mailbox_dir / "dovecot-keywords", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return maildir::parse_keywords(ss.str()).table;
}

void save_keywords(const fs::path& mailbox_dir, const maildir::KeywordTable& table) {
    write_file_durably(mailbox_dir / "dovecot-keywords", maildir::format_keywords(table));
}

void set_keyword_letters(maildir::FileName& name, const std::vector<std::string>& keywords,
                         const maildir::KeywordTable& table) {
    std::uint32_t mask = 0;
    bool forwarded = false;
    for (auto& k : keywords) {
        if (same_keyword(k, "$Forwarded")) forwarded = true;  // Maildir's P (passed) letter
        else if (auto i = table.find(k)) mask |= 1u << *i;
    }
    name.set_keyword_mask(mask);
    name.set_flag('P', forwarded);
}

std::vector<std::string> keywords_from_letters(const maildir::FileName& name, const maildir::KeywordTable& table) {
    std::vector<std::string> out;
    if (name.has_flag('P')) out.push_back("$Forwarded");
    auto mask = name.keyword_mask();
    for (int i = 0; i < maildir::kMaxKeywordLetters; ++i)
        if (mask & (1u << i))
            if (auto n = table.name_for_letter(static_cast<char>('a' + i)); n && maildir::is_valid_keyword(*n)) out.emplace_back(*n);
    return out;
}

std::string Account::new_base() {
    static std::uint64_t counter = 0;
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return maildir::generate_base_name({.secs = static_cast<std::uint64_t>(us / 1'000'000),
                                        .usecs = static_cast<std::uint32_t>(us % 1'000'000),
                                        .pid = static_cast<std::uint64_t>(::getpid()),
                                        .counter = ++counter,
                                        .hostname = hostname_});
}

MailboxInfo Account::synced_mailbox(const std::string& name) {
    MailboxInfo mb = mailbox(name);
    sync_mailbox(mb, false);
    return mailbox(name);  // UIDNEXT and HIGHESTMODSEQ as the sync left them
}

std::vector<MessageInfo> Account::snapshot(const std::string& name) {
    return index::messages(*db_, synced_mailbox(name).id);
}

std::vector<MessageInfo> Account::set_flags(const std::string& name, const std::vector<std::uint32_t>& uids, FlagOp op,
                                            std::uint32_t flags, const std::vector<std::string>& keywords,
                                            std::optional<std::uint64_t> unchanged_since,
                                            std::vector<std::uint32_t>* modified) {
    blocking_call("Account::set_flags");
    MailboxInfo mb = mailbox(name);
    const fs::path dir = root_ / mb.dir;
    for (auto& k : keywords)
        if (!maildir::is_valid_keyword(k)) throw StoreError(StoreError::Kind::Invalid, fmt::format("bad keyword {}", k));
    // Keywords get a letter a..z from dovecot-keywords (written before any name uses it); past
    // 26 they live in the index only.
    auto table = load_keywords(dir);
    if (op != FlagOp::Remove) {
        auto before = table;
        for (auto& k : keywords)
            if (!same_keyword(k, "$Forwarded")) maildir::assign_keyword(table, k);
        if (!(table == before)) save_keywords(dir, table);
    }
    std::vector<MessageInfo> changed;
    auto st = db_->prepare(fmt::format("{} WHERE mailbox_id = ? AND uid = ?", index::kMessageColumns));
    bool from_new = false;
    for (auto uid : uids) {
        st.bind(1, mb.id).bind(2, uid);
        if (!st.step()) {
            st.reset();
            continue;
        }
        MessageInfo m = index::message_row(st);
        st.reset();
        if (unchanged_since && m.modseq > *unchanged_since) {
            if (modified) modified->push_back(uid);
            continue;
        }
        std::uint32_t want = apply(op, m.flags, flags);
        auto want_kw = apply_keywords(op, m.keywords, keywords);
        if (want == m.flags && want_kw == m.keywords) continue;
        auto slash = m.file.find('/');
        auto parsed = maildir::parse_file_name(std::string_view(m.file).substr(slash + 1));
        if (!parsed) continue;
        parsed->info = maildir::InfoKind::kFlags;
        parsed->set_system_flags(static_cast<maildir::SystemFlags>(want));
        set_keyword_letters(*parsed, want_kw, table);
        // Flags live in cur/ (Maildir: new/ is for mail no client has seen yet).
        std::string file = "cur/" + maildir::format_file_name(*parsed);
        if (file != m.file && ::rename((dir / m.file).c_str(), (dir / file).c_str()) != 0)
            throw std::system_error(errno, std::generic_category(), "rename " + m.file);
        from_new |= m.file.rfind("new/", 0) == 0;
        m.file = file;
        m.flags = want;
        m.keywords = want_kw;
        changed.push_back(m);
    }
    if (changed.empty()) return changed;
    // The renames' directory fsyncs beside the index commit, as add_messages does: the tagged OK
    // waits for both, and a crash between them leaves what recovery takes the files' flags from.
    auto dir_sync = run_beside(side_, [&dir, from_new] {
        fsync_dir(dir / "cur");
        if (from_new) fsync_dir(dir / "new");
    }, true);
    WaitOnExit wait_for_dir_sync{dir_sync};  // it uses `dir`
    sqlite::Db::Transaction tx(*db_);
    std::uint64_t modseq = mb.highestmodseq;
    auto upd = db_->prepare("UPDATE message SET file = ?, flags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?");
    for (auto& m : changed) {
        m.modseq = ++modseq;
        upd.bind(1, m.file)
            .bind(2, m.flags)
            .bind(3, join_keywords(m.keywords))
            .bind(4, static_cast<std::int64_t>(m.modseq))
            .bind(5, mb.id)
            .bind(6, m.uid)
            .run();
    }
    record_mailbox(mb, 0, modseq);
    tx.commit();
    dir_sync.get();  // rethrows a failed directory fsync
    changes_.push_back({Change::Kind::FlagsChanged, mb.name, {}, changed, {}, modseq});
    return changed;
}

std::vector<std::uint32_t> Account::copy(const std::string& from, const std::vector<std::uint32_t>& uids, const std::string& to) {
    blocking_call("Account::copy");
    MailboxInfo src = mailbox(from), dst = mailbox(to);
    const fs::path sdir = root_ / src.dir, ddir = root_ / dst.dir;
    std::vector<std::pair<std::size_t, MessageInfo>> found;
    auto st = db_->prepare(fmt::format("{} WHERE mailbox_id = ? AND uid = ?", index::kMessageColumns));
    std::uint64_t bytes = 0;
    for (std::size_t i = 0; i < uids.size(); ++i) {
        st.bind(1, src.id).bind(2, uids[i]);
        if (st.step()) {
            found.emplace_back(i, index::message_row(st));
            bytes += found.back().second.size;
        }
        st.reset();
    }
    std::vector<std::uint32_t> out(uids.size(), 0);
    if (found.empty()) return out;
    check_quota(bytes, found.size());
    std::vector<fs::path> linked;
    std::vector<MessageInfo> added;
    std::uint32_t uid = dst.uidnext;
    auto table = load_keywords(ddir);
    {
        auto before = table;
        for (auto& [i, m] : found)
            for (auto& k : m.keywords)
                if (!same_keyword(k, "$Forwarded")) maildir::assign_keyword(table, k);
        if (!(table == before)) save_keywords(ddir, table);
    }
    std::uint64_t modseq = dst.highestmodseq;
    try {
        for (auto& [i, m] : found) {
            NewMessage nm;
            nm.base = new_base();
            nm.size = m.size;
            nm.rfc822_size = m.rfc822_size;
            nm.flags = m.flags;
            auto parsed = maildir::parse_file_name(message_file_name(nm, uid));
            set_keyword_letters(*parsed, m.keywords, table);
            std::string file = "cur/" + maildir::format_file_name(*parsed);
            if (::link((sdir / m.file).c_str(), (ddir / file).c_str()) != 0)
                throw std::system_error(errno, std::generic_category(), "link " + m.file);
            linked.push_back(ddir / file);
            MessageInfo c = m;
            c.uid = uid++;
            c.file = file;
            c.modseq = ++modseq;
            added.push_back(c);
            out[i] = c.uid;
        }
        fsync_dir(ddir / "cur");
        sqlite::Db::Transaction tx(*db_);
        auto ins = db_->prepare(
            "INSERT INTO message(mailbox_id, uid, base, file, size, rfc822_size, internal_date, flags, modseq, keywords) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        for (auto& c : added) {
            auto base = c.file.substr(4, c.file.find(',') - 4);
            ins.bind(1, dst.id)
                .bind(2, c.uid)
                .bind(3, base)
                .bind(4, c.file)
                .bind(5, static_cast<std::int64_t>(c.size))
                .bind(6, static_cast<std::int64_t>(c.rfc822_size))
                .bind(7, c.internal_date)
                .bind(8, c.flags)
                .bind(9, static_cast<std::int64_t>(c.modseq))
                .bind(10, join_keywords(c.keywords))
                .run();
        }
        record_mailbox(dst, uid, modseq);
        tx.commit();
    } catch (...) {
        for (auto& p : linked) ::unlink(p.c_str());
        throw;
    }
    changes_.push_back({Change::Kind::Added, dst.name, {}, added, {}, modseq});
    return out;
}

std::vector<std::uint32_t> Account::search(const std::string& name, const SearchQuery& q) {
    return index::search(*db_, synced_mailbox(name).id, q);
}

std::vector<std::uint32_t> Account::move(const std::string& from, const std::vector<std::uint32_t>& uids, const std::string& to) {
    auto moved = copy(from, uids, to);
    std::vector<std::uint32_t> gone;
    for (std::size_t i = 0; i < uids.size(); ++i)
        if (moved[i]) gone.push_back(uids[i]);
    expunge(from, gone);
    return moved;
}

MailboxStatus Account::status(const std::string& name) { return index::status(*db_, synced_mailbox(name)); }

std::string Account::commit_maildrop(const std::string& mailbox_name, const MaildropUpdate& u) {
    if (!u.expunge.empty()) expunge(mailbox_name, u.expunge);
    if (u.seen.empty()) return "";
    try {
        set_flags(mailbox_name, u.seen, FlagOp::Add, kSeen);
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

void Account::create_mailbox(const std::string& name, const std::string& special_use) {
    blocking_call("Account::create_mailbox");
    auto dir = maildir::mailbox_to_folder_dir(name);
    if (!dir.value) throw StoreError(StoreError::Kind::Invalid, dir.error);
    if (dir.value->empty()) throw StoreError(StoreError::Kind::Exists, "INBOX always exists");
    {
        auto st = db_->prepare("SELECT 1 FROM mailbox WHERE name = ? OR dir = ?");
        st.bind(1, name).bind(2, *dir.value);
        if (st.step()) throw StoreError(StoreError::Kind::Exists, fmt::format("mailbox {} exists", name));
    }
    const fs::path path = root_ / *dir.value;
    make_maildir(path, true);
    auto uv = static_cast<std::uint32_t>(std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()));
    // A mailbox that existed before under this name had UIDs; a new UIDVALIDITY keeps clients
    // from mixing them up (RFC 9051 2.3.1.1).
    if (auto old = read_uid_file(path); old && old->uidvalidity >= uv) uv = old->uidvalidity + 1;
    write_uid_file(path, {uv, 1});
    fsync_dir(root_);
    db_->prepare("INSERT INTO mailbox(name, dir, uidvalidity, uidnext, highestmodseq, subscribed, special_use) VALUES(?, ?, ?, 1, 1, 0, ?)")
        .bind(1, name)
        .bind(2, *dir.value)
        .bind(3, uv)
        .bind(4, special_use)
        .run();
    changes_.push_back({Change::Kind::MailboxCreated, name, {}, {}, {}, 1});
}

void Account::delete_mailbox(const std::string& name) {
    blocking_call("Account::delete_mailbox");
    MailboxInfo mb = mailbox(name);
    if (mb.dir.empty()) throw StoreError(StoreError::Kind::Invalid, "INBOX cannot be deleted");
    db_->prepare("DELETE FROM mailbox WHERE id = ?").bind(1, mb.id).run();
    std::error_code ec;
    fs::remove_all(root_ / mb.dir, ec);
    fsync_dir(root_);
    changes_.push_back({Change::Kind::MailboxDeleted, name, {}, {}, {}, 0});
}

void Account::rename_mailbox(const std::string& from, const std::string& to) {
    blocking_call("Account::rename_mailbox");
    MailboxInfo mb = mailbox(from);
    auto dir = maildir::mailbox_to_folder_dir(to);
    if (!dir.value) throw StoreError(StoreError::Kind::Invalid, dir.error);
    {
        auto st = db_->prepare("SELECT 1 FROM mailbox WHERE name = ? OR dir = ?");
        st.bind(1, to).bind(2, *dir.value);
        if (st.step()) throw StoreError(StoreError::Kind::Exists, fmt::format("mailbox {} exists", to));
    }
    if (mb.dir.empty()) {
        // RFC 9051 6.3.6: renaming INBOX moves its messages to the new mailbox; INBOX stays.
        create_mailbox(to);
        std::vector<std::uint32_t> uids;
        for (auto& m : snapshot(from)) uids.push_back(m.uid);
        move(from, uids, to);
        return;
    }
    // Children move with their parent: every mailbox named FROM/... becomes TO/...
    std::vector<std::pair<MailboxInfo, std::string>> moves{{mb, to}};
    for (auto& m : mailboxes())
        if (m.name.size() > from.size() && m.name.compare(0, from.size() + 1, from + "/") == 0)
            moves.emplace_back(m, to + m.name.substr(from.size()));
    sqlite::Db::Transaction tx(*db_);
    for (auto& [m, new_name] : moves) {
        auto d = maildir::mailbox_to_folder_dir(new_name);
        if (!d.value) throw StoreError(StoreError::Kind::Invalid, d.error);
        if (::rename((root_ / m.dir).c_str(), (root_ / *d.value).c_str()) != 0)
            throw std::system_error(errno, std::generic_category(), "rename " + m.dir);
        db_->prepare("UPDATE mailbox SET name = ?, dir = ? WHERE id = ?").bind(1, new_name).bind(2, *d.value).bind(3, m.id).run();
        changes_.push_back({Change::Kind::MailboxRenamed, m.name, new_name, {}, {}, 0});
    }
    fsync_dir(root_);
    tx.commit();
}

void Account::subscribe(const std::string& name, bool on) {
    MailboxInfo mb = mailbox(name);
    db_->prepare("UPDATE mailbox SET subscribed = ? WHERE id = ?").bind(1, on ? 1 : 0).bind(2, mb.id).run();
}

Usage Account::usage() {
    auto st = db_->prepare("SELECT count(*), coalesce(sum(size), 0) FROM message");
    st.step();
    return {static_cast<std::uint64_t>(st.int64(1)), static_cast<std::uint64_t>(st.int64(0))};
}

std::string Account::parsed(const std::string& name, std::uint32_t uid) {
    MailboxInfo mb = mailbox(name);
    auto st = db_->prepare("SELECT parsed FROM message_parsed WHERE mailbox_id = ? AND uid = ?");
    st.bind(1, mb.id).bind(2, uid);
    return st.step() && !st.is_null(0) ? st.text(0) : "";
}

void Account::set_parsed(const std::string& name, std::uint32_t uid, const std::string& blob) {
    MailboxInfo mb = mailbox(name);
    // Only for a message still there (one expunged meanwhile gets nothing).
    db_->prepare(
           "INSERT OR REPLACE INTO message_parsed(mailbox_id, uid, parsed) "
           "SELECT mailbox_id, uid, ? FROM message WHERE mailbox_id = ? AND uid = ?")
        .bind(1, blob)
        .bind(2, mb.id)
        .bind(3, uid)
        .run();
}

void Account::check_quota(std::uint64_t more_bytes, std::uint64_t more_messages) {
    if (!quota_.max_bytes && !quota_.max_messages) return;
    Usage u = usage();
    known_usage_ = u;
    if (quota_.max_bytes && u.bytes + more_bytes > quota_.max_bytes)
        throw StoreError(StoreError::Kind::OverQuota,
                         fmt::format("over quota: {} + {} bytes > {}", u.bytes, more_bytes, quota_.max_bytes));
    if (quota_.max_messages && u.messages + more_messages > quota_.max_messages)
        throw StoreError(StoreError::Kind::OverQuota,
                         fmt::format("over quota: {} + {} messages > {}", u.messages, more_messages, quota_.max_messages));
}

bool quota_full(const Usage& u, const Quota& q, std::uint64_t size) {
    if (q.max_messages && u.messages + 1 > q.max_messages) return true;
    if (q.max_bytes && (size ? u.bytes + size > q.max_bytes : u.bytes >= q.max_bytes)) return true;
    return false;
}

}  // namespace pillarbox::storage
