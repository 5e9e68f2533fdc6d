// The authentication cache (Dovecot's auth_cache_size / auth_cache_ttl): after a successful
// password check, remember a keyed hash of login and password together with a stamp of the
// account's stored credentials, so the next login with the same password skips argon2id. It never
// holds a password or anything password-equivalent outside this process: the key is an HMAC with a
// random key made at start and kept only in memory.
#pragma once
#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pillarbox::auth {

// Parameters: their defaults are written once, in server/parameters.cpp, and AuthSettings::from()
// sets them.
struct AuthCacheSettings {
    std::size_t size{};                // auth_cache_size in bytes; 0: no cache
    std::chrono::milliseconds ttl{};   // auth_cache_ttl
};

// Thread-safe: looked up and filled by worker threads.
class AuthCache {
public:
    using Clock = std::chrono::steady_clock;
    // What one entry costs, counted against `size`: two 32-byte digests, the list and hash-map
    // nodes and allocator overhead (measured with malloc_usable_size, rounded up).
    static constexpr std::size_t kEntryBytes = 256;

    explicit AuthCache(AuthCacheSettings s);
    bool enabled() const { return settings_.size >= kEntryBytes && settings_.ttl.count() > 0; }
    std::size_t capacity() const { return settings_.size / kEntryBytes; }

    // The entry key for a login name and a password (HMAC-SHA256 with the process key).
    std::string key(std::string_view login, std::string_view password) const;
    // The stamp of stored credentials: the backend's name, its credential version and the stored
    // hash. A password change, a disable/enable or a revoked app password changes it.
    std::string stamp(std::string_view backend, std::string_view version, std::string_view stored) const;

    // True when `key` was stored with this stamp less than ttl ago. A stale or expired entry is
    // dropped.
    bool hit(const std::string& key, const std::string& stamp, Clock::time_point now);
    // Stores a success; the least recently used entry goes when the cache is full.
    void put(const std::string& key, const std::string& stamp, Clock::time_point now);
    std::size_t size() const;

private:
    struct Entry {
        std::string key, stamp;
        Clock::time_point expires;
    };
    std::string mac(std::string_view a, std::string_view b, std::string_view c) const;

    AuthCacheSettings settings_;
    std::string secret_;  // the per-process HMAC key
    mutable std::mutex mu_;
    std::list<Entry> lru_;  // least recently used first
    std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;
};

}  // namespace pillarbox::auth
