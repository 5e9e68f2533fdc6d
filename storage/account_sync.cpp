// Reconciling an account's index with its Maildir, expunging, and the pillarbox-uidvalidity
// file (see account.hpp). The Maildir is the durable truth; the index follows it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <system_error>

#include "server/log.hpp"
#include "server/loop_guard.hpp"
#include "storage/account.hpp"
#include "storage/index/schema.hpp"
#include "storage/index_reads.hpp"
#include "storage/maildir/filename.hpp"

namespace pillarbox::storage {

namespace fs = std::filesystem;

namespace {

constexpr const char* kUidFile = "pillarbox-uidvalidity";

// Size with CRLF line ends, for files other programs delivered without W=.
std::uint64_t crlf_size(const fs::path& p, std::uint64_t size) {
    std::ifstream in(p, std::ios::binary);
    std::uint64_t bare = 0;
    char prev = 0, buf[65536];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        for (std::streamsize i = 0; i < in.gcount(); ++i) {
            if (buf[i] == '\n' && prev != '\r') ++bare;
            prev = buf[i];
        }
    }
    return size + bare;
}

struct DiskFile {
    std::string sub;  // "new" or "cur"
    std::string name;
    maildir::FileName parsed;
};

struct Row {
    std::uint32_t uid;
    std::string file;
    std::uint32_t flags;
    std::string keywords;
};

}  // namespace

std::optional<UidFile> read_uid_file(const fs::path& dir) {
    std::ifstream in(dir / kUidFile);
    if (!in) return std::nullopt;
    UidFile f;
    std::string key;
    std::uint64_t v = 0;
    bool have_v = false;
    while (in >> key >> v) {
        if (key == "V") f.uidvalidity = static_cast<std::uint32_t>(v), have_v = true;
        else if (key == "N") f.uidnext_floor = static_cast<std::uint32_t>(v);
    }
    if (!have_v || f.uidvalidity == 0) return std::nullopt;
    return f;
}

void write_file_durably(const fs::path& path, const std::string& text) {
    blocking_call("write_file_durably");
    std::string tmp = path.string() + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "create " + tmp);
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0)
        throw std::system_error(ok ? errno : err, std::generic_category(), "write " + tmp);
    fsync_dir(path.parent_path());
}

void write_uid_file(const fs::path& dir, const UidFile& f) {
    write_file_durably(dir / kUidFile, fmt::format("V {}\nN {}\n", f.uidvalidity, f.uidnext_floor));
}

std::int64_t mtime_ns(const fs::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return 0;
    return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

bool index_synced(sqlite::Db& db, const MailboxInfo& mb, const fs::path& dir) {
    auto marks = index::sync_marks(db, mb.id);
    return marks.new_mtime == mtime_ns(dir / "new") && marks.cur_mtime == mtime_ns(dir / "cur");
}

void Account::sync_mailbox(MailboxInfo mb, bool force, bool rebuilding) {
    blocking_call("Account::sync_mailbox");
    const fs::path dir = root_ / mb.dir;
    if (!force && index_synced(*db_, mb, dir)) return;
    if (!read_uid_file(dir)) write_uid_file(dir, {mb.uidvalidity, mb.uidnext});

    std::map<std::string, DiskFile> disk;  // by base name
    for (const char* sub : {"new", "cur"}) {
        std::error_code ec;
        for (auto& e : fs::directory_iterator(dir / sub, ec)) {
            std::string name = e.path().filename().string();
            if (name.empty() || name[0] == '.') continue;
            auto parsed = maildir::parse_file_name(name);
            if (!parsed) {
                log::warning("store", "{}: ignoring unparsable file {}/{}", dir.string(), sub, name);
                continue;
            }
            // The same message in new/ and cur/ (a tool crashed mid-move): cur/ wins.
            if (disk.count(parsed->base) && std::string_view(sub) == "new") continue;
            disk[parsed->base] = DiskFile{sub, name, *parsed};
        }
    }
    std::map<std::string, Row> rows;  // by base name
    std::set<std::uint32_t> used;
    {
        auto st = db_->prepare("SELECT uid, base, file, flags, keywords FROM message WHERE mailbox_id = ?");
        st.bind(1, mb.id);
        while (st.step()) {
            Row r{static_cast<std::uint32_t>(st.int64(0)), st.text(2), static_cast<std::uint32_t>(st.int64(3)), st.text(4)};
            used.insert(r.uid);
            rows.emplace(st.text(1), std::move(r));
        }
    }

    std::uint64_t modseq = mb.highestmodseq;
    std::uint32_t uidnext = mb.uidnext;
    const std::uint32_t uidnext_before = mb.uidnext;
    bool renamed = false;
    sqlite::Db::Transaction tx(*db_);
    auto del = db_->prepare("DELETE FROM message WHERE mailbox_id = ? AND uid = ?");
    auto gone = db_->prepare("INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES(?, ?, ?)");
    auto upd = db_->prepare("UPDATE message SET file = ?, flags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?");
    auto ins = db_->prepare(
        "INSERT INTO message(mailbox_id, uid, base, file, size, rfc822_size, internal_date, flags, modseq, keywords) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    const auto table = load_keywords(dir);
    std::size_t vanished = 0, changed = 0, added = 0;
    for (auto& [base, row] : rows) {
        auto it = disk.find(base);
        if (it == disk.end()) {
            del.bind(1, mb.id).bind(2, row.uid).run();
            gone.bind(1, mb.id).bind(2, row.uid).bind(3, static_cast<std::int64_t>(++modseq)).run();
            ++vanished;
            continue;
        }
        std::string file = it->second.sub + "/" + it->second.name;
        if (file == row.file) continue;
        std::uint32_t flags = it->second.parsed.system_flags();
        // Keywords the name can show come from its letters; those without a letter (more
        // than 26 in use) stay as the index has them.
        auto kws = keywords_from_letters(it->second.parsed, table);
        for (auto& k : split_keywords(row.keywords))
            if (k != "$Forwarded" && !table.find(k)) kws.push_back(k);
        std::string keywords = join_keywords(kws);
        if (flags == row.flags && keywords == row.keywords) {
            db_->prepare("UPDATE message SET file = ? WHERE mailbox_id = ? AND uid = ?").bind(1, file).bind(2, mb.id).bind(3, row.uid).run();
        } else {
            upd.bind(1, file)
                .bind(2, flags)
                .bind(3, keywords)
                .bind(4, static_cast<std::int64_t>(++modseq))
                .bind(5, mb.id)
                .bind(6, row.uid)
                .run();
        }
        ++changed;
    }

    // Files the index doesn't know. A U= at or above the UIDNEXT we started from is ours, renamed
    // into place by a delivery the crash interrupted before its index commit: keep that UID. Any
    // other U= (a copy from elsewhere, a restored backup) might collide with a UID handed out
    // before, so such files get new UIDs, in delivery (base name) order. Two files claiming one
    // UID: the first keeps it.
    std::vector<DiskFile*> fresh;
    for (auto& [base, f] : disk)
        if (!rows.count(base)) fresh.push_back(&f);
    // When the index is being rebuilt, the file names are the only record: every U= is kept.
    auto keeps_uid = [&](const DiskFile* f) { return f->parsed.uid && (rebuilding || *f->parsed.uid >= uidnext_before); };
    std::stable_sort(fresh.begin(), fresh.end(), [&](const DiskFile* a, const DiskFile* b) {
        bool ka = keeps_uid(a), kb = keeps_uid(b);
        if (ka != kb) return ka;
        if (ka) return *a->parsed.uid < *b->parsed.uid;
        return a->parsed.base < b->parsed.base;
    });
    for (DiskFile* f : fresh) {
        std::uint32_t uid;
        if (keeps_uid(f) && !used.count(*f->parsed.uid)) uid = *f->parsed.uid;
        else uid = uidnext;
        used.insert(uid);
        uidnext = std::max(uidnext, uid + 1);
        fs::path path = dir / f->sub / f->name;
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) continue;  // gone meanwhile
        auto size = static_cast<std::uint64_t>(st.st_size);
        maildir::FileName want = f->parsed;
        want.uid = uid;
        want.size = size;
        if (!want.vsize) want.vsize = crlf_size(path, size);
        std::string name = maildir::format_file_name(want);
        if (name != f->name) {
            if (::rename(path.c_str(), (dir / f->sub / name).c_str()) != 0) {
                log::warning("store", "{}: cannot rename {}: {}", dir.string(), f->name, std::strerror(errno));
                name = f->name;
            } else {
                renamed = true;
            }
        }
        ins.bind(1, mb.id)
            .bind(2, uid)
            .bind(3, f->parsed.base)
            .bind(4, f->sub + "/" + name)
            .bind(5, static_cast<std::int64_t>(size))
            .bind(6, static_cast<std::int64_t>(*want.vsize))
            .bind(7, static_cast<std::int64_t>(st.st_mtim.tv_sec))
            .bind(8, want.system_flags())
            .bind(9, static_cast<std::int64_t>(++modseq))
            .bind(10, join_keywords(keywords_from_letters(want, table)))
            .run();
        ++added;
    }
    if (renamed) {
        fsync_dir(dir / "new");
        fsync_dir(dir / "cur");
    }
    record_mailbox(mb, uidnext, modseq);
    tx.commit();
    if (vanished || changed || added)
        log::info("store", "{}: {}: synced with the Maildir: {} added, {} changed, {} gone", root_.string(), mb.name, added,
                  changed, vanished);
}

void Account::record_mailbox(const MailboxInfo& mb, std::uint32_t uidnext, std::uint64_t highestmodseq) {
    const fs::path dir = root_ / mb.dir;
    db_->prepare("UPDATE mailbox SET uidnext = ?, highestmodseq = ?, synced_new_mtime = ?, synced_cur_mtime = ? WHERE id = ?")
        .bind(1, uidnext ? uidnext : mb.uidnext)
        .bind(2, static_cast<std::int64_t>(highestmodseq))
        .bind(3, mtime_ns(dir / "new"))
        .bind(4, mtime_ns(dir / "cur"))
        .bind(5, mb.id)
        .run();
}

std::vector<std::uint32_t> Account::expunge(const std::string& mailbox_name, const std::vector<std::uint32_t>& uids) {
    blocking_call("Account::expunge");
    MailboxInfo mb = mailbox(mailbox_name);
    const fs::path dir = root_ / mb.dir;
    std::vector<std::uint32_t> found;
    bool from_new = false, from_cur = false;
    {
        auto st = db_->prepare("SELECT file FROM message WHERE mailbox_id = ? AND uid = ?");
        for (auto uid : uids) {
            st.bind(1, mb.id).bind(2, uid);
            if (st.step()) {
                std::string file = st.text(0);
                fs::path p = dir / file;
                if (::unlink(p.c_str()) != 0 && errno != ENOENT)
                    throw std::system_error(errno, std::generic_category(), "unlink " + p.string());
                (file.rfind("new/", 0) == 0 ? from_new : from_cur) = true;
                found.push_back(uid);
            }
            st.reset();
        }
    }
    if (found.empty()) return found;
    // The unlinks' directory fsyncs beside the index commit (as add_messages does); the tagged
    // OK waits for both.
    auto dir_sync = run_beside(side_, [&dir, from_new, from_cur] {
        if (from_new) fsync_dir(dir / "new");
        if (from_cur) fsync_dir(dir / "cur");
    }, true);
    WaitOnExit wait_for_dir_sync{dir_sync};  // it uses `dir`
    sqlite::Db::Transaction tx(*db_);
    std::uint64_t modseq = mb.highestmodseq;
    auto del = db_->prepare("DELETE FROM message WHERE mailbox_id = ? AND uid = ?");
    auto gone = db_->prepare("INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES(?, ?, ?)");
    for (auto uid : found) {
        del.bind(1, mb.id).bind(2, uid).run();
        gone.bind(1, mb.id).bind(2, uid).bind(3, static_cast<std::int64_t>(++modseq)).run();
    }
    // A rebuilt index learns UIDNEXT from the U= fields. When this expunge takes the highest
    // UIDs, the files can't tell it any more: pillarbox-uidvalidity's floor is raised (durably,
    // before the commit). While the highest UID stays, the files still tell it.
    auto top = db_->prepare("SELECT max(uid) FROM message WHERE mailbox_id = ?");
    top.bind(1, mb.id);
    const std::uint32_t highest = top.step() && !top.is_null(0) ? static_cast<std::uint32_t>(top.int64(0)) : 0;
    top.reset();
    if (highest + 1 < mb.uidnext) {
        auto uf = read_uid_file(dir).value_or(UidFile{mb.uidvalidity, 1});
        if (uf.uidnext_floor < mb.uidnext) write_uid_file(dir, {mb.uidvalidity, mb.uidnext});
    }
    record_mailbox(mb, 0, modseq);
    tx.commit();
    dir_sync.get();  // rethrows a failed directory fsync
    changes_.push_back({Change::Kind::Expunged, mb.name, {}, {}, found, modseq});
    return found;
}

}  // namespace pillarbox::storage
