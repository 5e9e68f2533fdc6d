// index check / rebuild (see index_commands.hpp).
#include "index_commands.hpp"

#include <ctime>
#include <fmt/format.h>
#include <map>
#include <set>

#include "server/mail_names.hpp"
#include "storage/account.hpp"
#include "storage/index/sqlite.hpp"
#include "storage/maildir/filename.hpp"
#include "storage/store.hpp"

namespace pillarbox::storage {

namespace fs = std::filesystem;

fs::path account_root_for(const fs::path& data_directory, const std::string& user) {
    auto at = user.rfind('@');
    if (at == std::string::npos) return {};
    std::string lp = user.substr(0, at), dom = user.substr(at + 1);
    if (!names::valid_local_part(lp) || !names::valid_domain(dom)) return {};
    return data_directory / "mail" / dom / lp;
}

std::vector<std::string> check_index(const fs::path& root) {
    std::vector<std::string> problems;
    fs::path index = root / "pillarbox.index";
    if (!fs::exists(index)) return {fmt::format("{}: no index", index.string())};
    try {
        sqlite::Db db("file:" + index.string() + "?mode=ro");
        auto boxes = db.prepare("SELECT id, name, dir, uidvalidity, uidnext FROM mailbox ORDER BY name");
        while (boxes.step()) {
            auto id = boxes.int64(0);
            std::string name = boxes.text(1), dir = boxes.text(2);
            auto uidnext = static_cast<std::uint32_t>(boxes.int64(4));
            auto uf = read_uid_file(root / dir);
            if (!uf) problems.push_back(fmt::format("{}: no pillarbox-uidvalidity file", name));
            else if (uf->uidvalidity != static_cast<std::uint32_t>(boxes.int64(3)))
                problems.push_back(fmt::format("{}: UIDVALIDITY {} in the index, {} in the file", name, boxes.int64(3), uf->uidvalidity));
            std::map<std::string, std::uint32_t> files;  // "new/NAME" -> U=
            for (const char* sub : {"new", "cur"}) {
                std::error_code ec;
                for (auto& e : fs::directory_iterator(root / dir / sub, ec)) {
                    auto fname = e.path().filename().string();
                    if (fname.empty() || fname[0] == '.') continue;
                    auto parsed = maildir::parse_file_name(fname);
                    files[std::string(sub) + "/" + fname] = parsed && parsed->uid ? *parsed->uid : 0;
                }
            }
            auto rows = db.prepare("SELECT uid, file FROM message WHERE mailbox_id = ?");
            rows.bind(1, id);
            std::set<std::string> indexed;
            while (rows.step()) {
                auto uid = static_cast<std::uint32_t>(rows.int64(0));
                std::string file = rows.text(1);
                indexed.insert(file);
                auto it = files.find(file);
                if (it == files.end()) problems.push_back(fmt::format("{}: UID {}: file {} is missing", name, uid, file));
                else if (it->second != uid) problems.push_back(fmt::format("{}: UID {}: file {} says U={}", name, uid, file, it->second));
                if (uid >= uidnext) problems.push_back(fmt::format("{}: UID {} is not below UIDNEXT {}", name, uid, uidnext));
            }
            for (auto& [file, u] : files)
                if (!indexed.count(file)) problems.push_back(fmt::format("{}: {} is not in the index", name, file));
        }
    } catch (const std::exception& e) {
        problems.push_back(fmt::format("{}: {}", index.string(), e.what()));
    }
    return problems;
}

std::string rebuild_index(const fs::path& root) {
    if (!fs::exists(root / "cur")) return fmt::format("{}: no such account", root.string());
    fs::path index = root / "pillarbox.index";
    std::error_code ec;
    if (fs::exists(index)) {
        fs::rename(index, index.string() + fmt::format(".old-{}", std::time(nullptr)), ec);
        if (ec) return fmt::format("cannot move {} aside: {}", index.string(), ec.message());
    }
    for (const char* suffix : {"-wal", "-shm"}) fs::remove(index.string() + suffix, ec);
    try {
        Account::open(root);
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

}  // namespace pillarbox::storage
