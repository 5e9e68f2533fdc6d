// The pool of read-only index connections (see index_readers.hpp).
#include "storage/index_readers.hpp"

#include <string>

#include "server/loop_guard.hpp"

namespace pillarbox::storage {

IndexReaders::Lease IndexReaders::borrow(const std::string& path) {
    {
        std::lock_guard lock(mutex_);
        for (auto it = idle_.begin(); it != idle_.end(); ++it)
            if (it->path == path) {
                auto db = std::move(it->db);
                idle_.erase(it);
                return Lease(*this, path, std::move(db));
            }
        ++opened_;
    }
    blocking_call("IndexReaders::borrow");
    auto db = std::make_unique<sqlite::Db>(path, sqlite::Db::Mode::ReadOnly);
    sqlite3_busy_timeout(db->handle(), static_cast<int>(kBusyTimeout.count()));
    db->exec("PRAGMA cache_size=-" + std::to_string(kCacheKiB));
    return Lease(*this, path, std::move(db));
}

void IndexReaders::give_back(std::string path, std::unique_ptr<sqlite::Db> db) {
    std::unique_ptr<sqlite::Db> closing;  // closed outside the lock
    std::lock_guard lock(mutex_);
    idle_.push_front({std::move(path), std::move(db)});
    if (idle_.size() > idle_limit_) {
        closing = std::move(idle_.back().db);
        idle_.pop_back();
    }
}

void IndexReaders::clear() {
    std::list<Idle> closing;
    std::lock_guard lock(mutex_);
    closing.swap(idle_);
}

std::size_t IndexReaders::idle() const {
    std::lock_guard lock(mutex_);
    return idle_.size();
}

std::size_t IndexReaders::opened() const {
    std::lock_guard lock(mutex_);
    return opened_;
}

}  // namespace pillarbox::storage
