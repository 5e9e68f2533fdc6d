// Password hashing (argon2id) and verification of Dovecot "{SCHEME}data" values and bare crypt(3)
// strings. The SCRAM/CRAM-MD5 secrets, base64 and constant-time compare live in secrets.cpp.
#include "auth/password.hpp"
#include "server/ascii.hpp"

#include <crypt.h>
#include <openssl/digest.h>
#include <sodium.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace pillarbox::auth {
namespace {

enum class Kind { Argon2id, Argon2i, Crypt, Digest, SaltedDigest, Plain, CramMd5, Scram };
enum class Encoding { None, Base64, Hex };

struct SchemeInfo {
    std::string_view name;
    Kind kind;
    Encoding encoding = Encoding::None;  // default when the scheme has no ".hex"/".b64" suffix
    const EVP_MD* (*md)() = nullptr;      // Digest and SaltedDigest only
    ScramHash scram = ScramHash::Sha256;  // Scram only
};

constexpr std::size_t cram_context_size = std::tuple_size_v<CramContext>;

// Aliases (SHA1, HMAC-MD5, DES-CRYPT) are accepted because Dovecot writes them too. Not CLEAR:
// secrets.cpp only derives SASL secrets from PLAIN/CLEARTEXT, and the two must agree.
constexpr SchemeInfo schemes[] = {
    {"ARGON2ID", Kind::Argon2id},
    {"ARGON2I", Kind::Argon2i},
    {"SHA512-CRYPT", Kind::Crypt},
    {"SHA256-CRYPT", Kind::Crypt},
    {"BLF-CRYPT", Kind::Crypt},
    {"MD5-CRYPT", Kind::Crypt},
    {"DES-CRYPT", Kind::Crypt},
    {"CRYPT", Kind::Crypt},
    {"SSHA512", Kind::SaltedDigest, Encoding::Base64, EVP_sha512},
    {"SSHA256", Kind::SaltedDigest, Encoding::Base64, EVP_sha256},
    {"SSHA", Kind::SaltedDigest, Encoding::Base64, EVP_sha1},
    {"SHA512", Kind::Digest, Encoding::Base64, EVP_sha512},
    {"SHA256", Kind::Digest, Encoding::Base64, EVP_sha256},
    {"SHA", Kind::Digest, Encoding::Base64, EVP_sha1},
    {"SHA1", Kind::Digest, Encoding::Base64, EVP_sha1},
    {"PLAIN-MD5", Kind::Digest, Encoding::Hex, EVP_md5},
    {"PLAIN", Kind::Plain},
    {"CLEARTEXT", Kind::Plain},
    {"CRAM-MD5", Kind::CramMd5, Encoding::Hex},
    {"HMAC-MD5", Kind::CramMd5, Encoding::Hex},
    {"SCRAM-SHA-1", Kind::Scram, Encoding::None, nullptr, ScramHash::Sha1},
    {"SCRAM-SHA-256", Kind::Scram, Encoding::None, nullptr, ScramHash::Sha256},
};

struct Scheme {
    const SchemeInfo* info = nullptr;
    std::optional<Encoding> suffix;  // explicit ".hex"/".b64"/".base64"
};

const SchemeInfo* find_scheme(std::string_view upper_name) {
    for (const auto& s : schemes)
        if (s.name == upper_name) return &s;
    return nullptr;
}

bool encodable(Kind k) {
    return k == Kind::Digest || k == Kind::SaltedDigest || k == Kind::Plain || k == Kind::CramMd5;
}

std::optional<Scheme> parse_scheme(std::string_view name) {
    const std::string u = ascii_upper(name);
    if (const auto* info = find_scheme(u)) return Scheme{info, std::nullopt};
    const auto dot = u.rfind('.');
    if (dot == std::string::npos) return std::nullopt;
    const std::string_view suffix = std::string_view(u).substr(dot + 1);
    Encoding e;
    if (suffix == "HEX")
        e = Encoding::Hex;
    else if (suffix == "B64" || suffix == "BASE64")
        e = Encoding::Base64;
    else
        return std::nullopt;
    const auto* info = find_scheme(std::string_view(u).substr(0, dot));
    if (info == nullptr || !encodable(info->kind)) return std::nullopt;
    return Scheme{info, e};
}

// The scheme a value without "{...}" prefix is in, judged by its crypt(3) prefix.
std::string_view crypt_scheme(std::string_view v) {
    struct Prefix {
        std::string_view prefix, scheme;
    };
    static constexpr Prefix prefixes[] = {
        {"$6$", "SHA512-CRYPT"}, {"$5$", "SHA256-CRYPT"}, {"$2a$", "BLF-CRYPT"},
        {"$2b$", "BLF-CRYPT"},   {"$2y$", "BLF-CRYPT"},   {"$1$", "MD5-CRYPT"},
        {"$argon2id$", "ARGON2ID"}, {"$argon2i$", "ARGON2I"},
    };
    for (const auto& p : prefixes)
        if (v.starts_with(p.prefix)) return p.scheme;
    return "CRYPT";
}

struct Stored {
    std::string scheme;  // upper case, may carry an encoding suffix
    std::string_view data;
};

Stored split_stored(std::string_view stored) {
    if (stored.empty()) return {};
    if (stored.front() == '{') {
        const auto close = stored.find('}');
        if (close != std::string_view::npos) return {ascii_upper(stored.substr(1, close - 1)), stored.substr(close + 1)};
    }
    return {std::string(crypt_scheme(stored)), stored};
}

bool sodium_ready() {
    static std::once_flag once;
    static bool ok = false;
    std::call_once(once, [] { ok = sodium_init() >= 0; });
    return ok;
}

std::optional<std::string> hex_decode(std::string_view s) {
    if (s.size() % 2 != 0) return std::nullopt;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(s.size() / 2);
    for (std::size_t i = 0; i < s.size(); i += 2) {
        const int hi = nibble(s[i]), lo = nibble(s[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi << 4 | lo));
    }
    return out;
}

// Like Dovecot: without an explicit suffix, a fixed-size secret whose text is exactly twice the
// raw size is hex, because some tools wrote {SHA256} or {PLAIN-MD5} values in the other encoding.
std::optional<std::string> decode(std::string_view data, const Scheme& s, std::size_t fixed_size) {
    Encoding e = s.suffix.value_or(s.info->encoding);
    if (!s.suffix && fixed_size != 0) e = data.size() == 2 * fixed_size ? Encoding::Hex : Encoding::Base64;
    switch (e) {
        case Encoding::None: return std::string(data);
        case Encoding::Hex: return hex_decode(data);
        case Encoding::Base64: return base64_decode(data);
    }
    return std::nullopt;
}

std::optional<std::string> digest(const EVP_MD* md, std::string_view a, std::string_view b = {}) {
    bssl::ScopedEVP_MD_CTX ctx;
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (!EVP_DigestInit_ex(ctx.get(), md, nullptr) || !EVP_DigestUpdate(ctx.get(), a.data(), a.size()) ||
        !EVP_DigestUpdate(ctx.get(), b.data(), b.size()) || !EVP_DigestFinal_ex(ctx.get(), out, &len))
        return std::nullopt;
    return std::string(reinterpret_cast<const char*>(out), len);
}

bool verify_crypt(std::string_view data, std::string_view password) {
    // crypt(3) takes C strings: an embedded NUL would silently shorten the password or the hash.
    if (data.empty() || data.find('\0') != std::string_view::npos || password.find('\0') != std::string_view::npos)
        return false;
    const std::string setting(data), phrase(password);
    // struct crypt_data is 32 KiB: too big for a worker's stack.
    auto cd = std::make_unique<crypt_data>();
    const char* out = crypt_rn(phrase.c_str(), setting.c_str(), cd.get(), sizeof(crypt_data));
    const bool ok = out != nullptr && constant_time_equal(out, data);
    sodium_memzero(cd.get(), sizeof(crypt_data));
    return ok;
}

std::atomic<std::uint64_t> argon2_count{0};

bool verify_argon2(std::string_view data, std::string_view prefix, std::string_view password) {
    argon2_count.fetch_add(1, std::memory_order_relaxed);
    if (!data.starts_with(prefix) || data.find('\0') != std::string_view::npos || !sodium_ready()) return false;
    const std::string str(data);
    return crypto_pwhash_str_verify(str.c_str(), password.data(), password.size()) == 0;
}

bool verify_scram(const SchemeInfo& info, std::string_view data, std::string_view password) {
    // The canonical prefix tells parse_scram which hash, whatever case the stored value used.
    const auto keys = parse_scram("{" + std::string(info.name) + "}" + std::string(data));
    if (!keys || keys->hash != info.scram || keys->iterations == 0 || keys->salt.empty()) return false;
    const ScramKeys mine = scram_keys(info.scram, password, keys->iterations, keys->salt);
    // Both compared so a value with a mismatched ServerKey can't log in here yet fail in SASL.
    const bool stored_ok = constant_time_equal(mine.stored_key, keys->stored_key);
    const bool server_ok = constant_time_equal(mine.server_key, keys->server_key);
    return stored_ok && server_ok;
}

bool verify(const Scheme& s, std::string_view data, std::string_view password) {
    const SchemeInfo& info = *s.info;
    switch (info.kind) {
        case Kind::Argon2id: return verify_argon2(data, "$argon2id$", password);
        case Kind::Argon2i: return verify_argon2(data, "$argon2i$", password);
        case Kind::Crypt: return verify_crypt(data, password);
        case Kind::Scram: return verify_scram(info, data, password);
        case Kind::Plain: {
            const auto raw = decode(data, s, 0);
            return raw && constant_time_equal(*raw, password);
        }
        case Kind::CramMd5: {
            const auto raw = decode(data, s, cram_context_size);
            if (!raw || raw->size() != cram_context_size) return false;
            const CramContext c = cram_md5_context(password);
            return constant_time_equal(*raw, std::string_view(reinterpret_cast<const char*>(c.data()), c.size()));
        }
        case Kind::Digest: {
            const auto size = static_cast<std::size_t>(EVP_MD_size(info.md()));
            const auto raw = decode(data, s, size);
            if (!raw || raw->size() != size) return false;
            const auto mine = digest(info.md(), password);
            return mine && constant_time_equal(*mine, *raw);
        }
        case Kind::SaltedDigest: {
            // Layout: digest(password + salt) followed by the salt; Dovecot insists on a salt.
            const auto size = static_cast<std::size_t>(EVP_MD_size(info.md()));
            const auto raw = decode(data, s, 0);
            if (!raw || raw->size() <= size) return false;
            const std::string_view hash = std::string_view(*raw).substr(0, size), salt = std::string_view(*raw).substr(size);
            const auto mine = digest(info.md(), password, salt);
            return mine && constant_time_equal(*mine, hash);
        }
    }
    return false;
}

}  // namespace

std::string hash_password(std::string_view password, const HashSettings& s) {
    if (s.argon2_ops < crypto_pwhash_argon2id_OPSLIMIT_MIN || s.argon2_ops > crypto_pwhash_argon2id_OPSLIMIT_MAX ||
        s.argon2_memory < crypto_pwhash_argon2id_MEMLIMIT_MIN || s.argon2_memory > crypto_pwhash_argon2id_MEMLIMIT_MAX)
        throw std::invalid_argument("argon2id costs out of range");
    if (!sodium_ready()) throw std::runtime_error("libsodium initialisation failed");
    char out[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str_alg(out, password.data(), password.size(), s.argon2_ops, s.argon2_memory,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        throw std::runtime_error("argon2id hashing failed (out of memory?)");
    return "{ARGON2ID}" + std::string(out);
}

std::string scheme_of(std::string_view stored) { return split_stored(stored).scheme; }

bool scheme_supported(std::string_view scheme) { return parse_scheme(scheme).has_value(); }

bool verify_password(std::string_view stored, std::string_view password) {
    // The value may come from a hand-edited file, and a failed check must never take a session down.
    try {
        const Stored st = split_stored(stored);
        const auto scheme = parse_scheme(st.scheme);
        return scheme && verify(*scheme, st.data, password);
    } catch (...) {
        return false;
    }
}

std::uint64_t argon2_verifications() { return argon2_count.load(std::memory_order_relaxed); }

bool needs_rehash(std::string_view stored, const HashSettings& s) {
    const Stored st = split_stored(stored);
    if (st.scheme != "ARGON2ID" || !st.data.starts_with("$argon2id$") || st.data.find('\0') != std::string_view::npos ||
        !sodium_ready())
        return true;
    const std::string str(st.data);
    return crypto_pwhash_str_needs_rehash(str.c_str(), s.argon2_ops, s.argon2_memory) != 0;
}

}  // namespace pillarbox::auth
