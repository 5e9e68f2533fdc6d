// The authentication cache: an LRU list of (HMAC(login, password), credential stamp, expiry)
// indexed by a hash map, under one mutex (the critical sections are a lookup or a splice).
#include "auth/auth_cache.hpp"

#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace pillarbox::auth {

AuthCache::AuthCache(AuthCacheSettings s) : settings_(s), secret_(32, '\0') {
    if (RAND_bytes(reinterpret_cast<std::uint8_t*>(secret_.data()), secret_.size()) != 1)
        throw std::runtime_error("no randomness for the authentication cache key");
}

std::string AuthCache::mac(std::string_view a, std::string_view b, std::string_view c) const {
    // Lengths first, so ("ab", "c") and ("a", "bc") never collide.
    bssl::ScopedHMAC_CTX ctx;
    std::uint8_t out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    HMAC_Init_ex(ctx.get(), secret_.data(), secret_.size(), EVP_sha256(), nullptr);
    for (std::string_view part : {a, b, c}) {
        std::uint64_t n = part.size();
        HMAC_Update(ctx.get(), reinterpret_cast<const std::uint8_t*>(&n), sizeof n);
        HMAC_Update(ctx.get(), reinterpret_cast<const std::uint8_t*>(part.data()), part.size());
    }
    HMAC_Final(ctx.get(), out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
}

std::string AuthCache::key(std::string_view login, std::string_view password) const {
    return mac("login", login, password);
}

std::string AuthCache::stamp(std::string_view backend, std::string_view version, std::string_view stored) const {
    return mac(backend, version, stored);
}

bool AuthCache::hit(const std::string& key, const std::string& stamp, Clock::time_point now) {
    if (!enabled()) return false;
    std::lock_guard lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    auto node = it->second;
    if (node->expires <= now || node->stamp != stamp) {
        index_.erase(it);
        lru_.erase(node);
        return false;
    }
    lru_.splice(lru_.end(), lru_, node);
    return true;
}

void AuthCache::put(const std::string& key, const std::string& stamp, Clock::time_point now) {
    if (!enabled()) return;
    std::lock_guard lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
        it->second->stamp = stamp;
        it->second->expires = now + settings_.ttl;
        lru_.splice(lru_.end(), lru_, it->second);
        return;
    }
    while (!lru_.empty() && lru_.size() >= capacity()) {
        index_.erase(std::string_view(lru_.front().key));
        lru_.pop_front();
    }
    lru_.push_back(Entry{key, stamp, now + settings_.ttl});
    index_.emplace(std::string_view(lru_.back().key), std::prev(lru_.end()));
}

std::size_t AuthCache::size() const {
    std::lock_guard lock(mu_);
    return lru_.size();
}

}  // namespace pillarbox::auth
