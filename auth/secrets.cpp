// Derived secrets for the challenge-response SASL mechanisms (SCRAM keys, CRAM-MD5 contexts) in
// Dovecot's stored notation, plus the small byte helpers they share (base64, constant-time compare).
#include <openssl/crypto.h>
#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/md5.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <stdexcept>

#include "auth/password.hpp"
#include "server/ascii.hpp"

namespace pillarbox::auth {
namespace {

// Dovecot accepts any count; above this a stored value (or an attacker-supplied one) would pin a
// worker for seconds, so it is treated as corrupt.
constexpr unsigned max_scram_iterations = 10'000'000;

const EVP_MD* digest_of(ScramHash h) { return h == ScramHash::Sha1 ? EVP_sha1() : EVP_sha256(); }
std::size_t digest_size(ScramHash h) { return h == ScramHash::Sha1 ? SHA_DIGEST_LENGTH : SHA256_DIGEST_LENGTH; }

std::string hmac(ScramHash h, std::string_view key, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    HMAC(digest_of(h), key.data(), key.size(), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         out, &len);
    return std::string(reinterpret_cast<const char*>(out), len);
}

std::string hash(ScramHash h, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_Digest(data.data(), data.size(), out, &len, digest_of(h), nullptr);
    return std::string(reinterpret_cast<const char*>(out), len);
}


bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
    return true;
}

// Splits "{SCHEME}data" into the scheme (as written) and the data; no braces: nullopt.
std::optional<std::pair<std::string_view, std::string_view>> split_scheme(std::string_view stored) {
    if (stored.empty() || stored.front() != '{') return std::nullopt;
    auto close = stored.find('}');
    if (close == std::string_view::npos) return std::nullopt;
    return std::pair{stored.substr(1, close - 1), stored.substr(close + 1)};
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<std::string> hex_decode(std::string_view text) {
    if (text.size() % 2 != 0) return std::nullopt;
    std::string out;
    out.reserve(text.size() / 2);
    for (std::size_t i = 0; i < text.size(); i += 2) {
        int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
    }
    return out;
}

std::string hex_encode(const unsigned char* p, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(digits[p[i] >> 4]);
        out.push_back(digits[p[i] & 15]);
    }
    return out;
}

// The cleartext password of a {PLAIN}/{CLEARTEXT} value, with Dovecot's encoding suffixes.
std::optional<std::string> cleartext_of(std::string_view stored) {
    auto parts = split_scheme(stored);
    if (!parts) return std::nullopt;
    auto [scheme, data] = *parts;
    std::string_view encoding;
    if (auto dot = scheme.find('.'); dot != std::string_view::npos) {
        encoding = scheme.substr(dot + 1);
        scheme = scheme.substr(0, dot);
    }
    if (!iequals(scheme, "PLAIN") && !iequals(scheme, "CLEARTEXT")) return std::nullopt;
    if (encoding.empty()) return std::string(data);
    if (iequals(encoding, "B64") || iequals(encoding, "BASE64")) return base64_decode(data);
    if (iequals(encoding, "HEX")) return hex_decode(data);
    return std::nullopt;
}

void put_le32(std::uint8_t* out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

std::uint32_t get_le32(const std::uint8_t* in) {
    return static_cast<std::uint32_t>(in[0]) | static_cast<std::uint32_t>(in[1]) << 8 |
           static_cast<std::uint32_t>(in[2]) << 16 | static_cast<std::uint32_t>(in[3]) << 24;
}

// An MD5 state that has consumed exactly one 64-byte block (the HMAC key pad), which is what the
// stored context captures; MD5_Update/MD5_Final then continue as if that block had been hashed.
void resume_md5(MD5_CTX& ctx, const std::uint8_t* state) {
    MD5_Init(&ctx);
    for (int i = 0; i < 4; ++i) ctx.h[i] = get_le32(state + 4 * i);
    ctx.Nl = 512;
    ctx.Nh = 0;
    ctx.num = 0;
}

constexpr char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

}  // namespace

std::string scram_hmac(ScramHash h, std::string_view key, std::string_view data) { return hmac(h, key, data); }
std::string scram_hash(ScramHash h, std::string_view data) { return hash(h, data); }

bool constant_time_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string base64_encode(std::string_view raw) {
    std::string out;
    out.reserve((raw.size() + 2) / 3 * 4);
    std::size_t i = 0;
    auto byte = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(raw[k])); };
    for (; i + 3 <= raw.size(); i += 3) {
        std::uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
        for (int s = 18; s >= 0; s -= 6) out.push_back(b64_alphabet[(v >> s) & 63]);
    }
    if (raw.size() - i == 1) {
        std::uint32_t v = byte(i) << 16;
        out.push_back(b64_alphabet[(v >> 18) & 63]);
        out.push_back(b64_alphabet[(v >> 12) & 63]);
        out += "==";
    } else if (raw.size() - i == 2) {
        std::uint32_t v = byte(i) << 16 | byte(i + 1) << 8;
        out.push_back(b64_alphabet[(v >> 18) & 63]);
        out.push_back(b64_alphabet[(v >> 12) & 63]);
        out.push_back(b64_alphabet[(v >> 6) & 63]);
        out += "=";
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        bool last = i + 4 == text.size();
        int pad = 0;
        if (last && text[i + 3] == '=') pad = text[i + 2] == '=' ? 2 : 1;
        std::uint32_t v = 0;
        for (int k = 0; k < 4; ++k) {
            int d = k < 4 - pad ? b64_value(text[i + k]) : 0;
            if (d < 0) return std::nullopt;  // includes a '=' anywhere but the end
            v = v << 6 | static_cast<std::uint32_t>(d);
        }
        // Unused low bits must be zero: SCRAM compares encodings, so only the canonical one is valid
        // (RFC 4648 section 3.5 lets decoders reject the others).
        if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff))) return std::nullopt;
        out.push_back(static_cast<char>(v >> 16));
        if (pad < 2) out.push_back(static_cast<char>(v >> 8 & 0xff));
        if (pad < 1) out.push_back(static_cast<char>(v & 0xff));
    }
    return out;
}

ScramKeys scram_keys(ScramHash h, std::string_view password, unsigned iterations, std::string salt) {
    if (iterations == 0 || iterations > max_scram_iterations)
        throw std::invalid_argument("SCRAM iteration count out of range");
    if (salt.empty()) {
        salt.resize(16);
        RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), salt.size());
    }
    std::string salted(digest_size(h), '\0');
    if (!PKCS5_PBKDF2_HMAC(password.data(), password.size(), reinterpret_cast<const unsigned char*>(salt.data()),
                           salt.size(), iterations, digest_of(h), salted.size(),
                           reinterpret_cast<unsigned char*>(salted.data())))
        throw std::runtime_error("PBKDF2 failed");
    ScramKeys k;
    k.hash = h;
    k.iterations = iterations;
    k.salt = std::move(salt);
    k.stored_key = hash(h, hmac(h, salted, "Client Key"));
    k.server_key = hmac(h, salted, "Server Key");
    OPENSSL_cleanse(salted.data(), salted.size());
    return k;
}

std::string format_scram(const ScramKeys& k) {
    return std::string(k.hash == ScramHash::Sha1 ? "{SCRAM-SHA-1}" : "{SCRAM-SHA-256}") +
           std::to_string(k.iterations) + "," + base64_encode(k.salt) + "," + base64_encode(k.stored_key) + "," +
           base64_encode(k.server_key);
}

std::optional<ScramKeys> parse_scram(std::string_view stored) {
    std::optional<ScramHash> h;
    if (auto parts = split_scheme(stored)) {
        if (iequals(parts->first, "SCRAM-SHA-1")) h = ScramHash::Sha1;
        else if (iequals(parts->first, "SCRAM-SHA-256")) h = ScramHash::Sha256;
        else return std::nullopt;
        stored = parts->second;
    }
    std::string_view fields[4];
    for (int i = 0; i < 4; ++i) {
        auto comma = stored.find(',');
        if ((comma == std::string_view::npos) != (i == 3)) return std::nullopt;
        fields[i] = stored.substr(0, comma);
        if (comma != std::string_view::npos) stored.remove_prefix(comma + 1);
    }
    if (fields[0].empty() || fields[0].size() > 8) return std::nullopt;
    unsigned long iterations = 0;
    for (char c : fields[0]) {
        if (c < '0' || c > '9') return std::nullopt;
        iterations = iterations * 10 + static_cast<unsigned>(c - '0');
    }
    if (iterations == 0 || iterations > max_scram_iterations) return std::nullopt;
    auto salt = base64_decode(fields[1]);
    auto stored_key = base64_decode(fields[2]);
    auto server_key = base64_decode(fields[3]);
    if (!salt || salt->empty() || !stored_key || !server_key) return std::nullopt;
    // Without a prefix the key length says which hash made it (20 bytes SHA-1, 32 SHA-256).
    if (!h) {
        if (stored_key->size() == SHA_DIGEST_LENGTH) h = ScramHash::Sha1;
        else if (stored_key->size() == SHA256_DIGEST_LENGTH) h = ScramHash::Sha256;
        else return std::nullopt;
    }
    if (stored_key->size() != digest_size(*h) || server_key->size() != digest_size(*h)) return std::nullopt;
    ScramKeys k;
    k.hash = *h;
    k.iterations = static_cast<unsigned>(iterations);
    k.salt = std::move(*salt);
    k.stored_key = std::move(*stored_key);
    k.server_key = std::move(*server_key);
    return k;
}

std::optional<ScramKeys> scram_keys_from(std::string_view stored, ScramHash h, unsigned iterations) {
    auto parts = split_scheme(stored);
    if (!parts) return std::nullopt;
    if (iequals(parts->first, "SCRAM-SHA-1") || iequals(parts->first, "SCRAM-SHA-256")) {
        auto k = parse_scram(stored);
        if (!k || k->hash != h) return std::nullopt;
        return k;
    }
    auto password = cleartext_of(stored);
    if (!password || iterations == 0 || iterations > max_scram_iterations) return std::nullopt;
    auto k = scram_keys(h, *password, iterations);
    OPENSSL_cleanse(password->data(), password->size());
    return k;
}

CramContext cram_md5_context(std::string_view password) {
    unsigned char key[MD5_CBLOCK] = {};
    // RFC 2104 section 2: keys longer than the block are hashed first.
    if (password.size() > MD5_CBLOCK)
        MD5(reinterpret_cast<const unsigned char*>(password.data()), password.size(), key);
    else if (!password.empty())
        std::copy(password.begin(), password.end(), reinterpret_cast<char*>(key));
    unsigned char ipad[MD5_CBLOCK], opad[MD5_CBLOCK];
    for (int i = 0; i < MD5_CBLOCK; ++i) {
        ipad[i] = key[i] ^ 0x36;
        opad[i] = key[i] ^ 0x5c;
    }
    MD5_CTX inner, outer;
    MD5_Init(&inner);
    MD5_Update(&inner, ipad, sizeof ipad);
    MD5_Init(&outer);
    MD5_Update(&outer, opad, sizeof opad);
    CramContext c{};
    // Dovecot's layout (hmac_md5_get_cram_context): outer state first, then inner.
    for (int i = 0; i < 4; ++i) {
        put_le32(c.data() + 4 * i, outer.h[i]);
        put_le32(c.data() + 16 + 4 * i, inner.h[i]);
    }
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(ipad, sizeof ipad);
    OPENSSL_cleanse(opad, sizeof opad);
    OPENSSL_cleanse(&inner, sizeof inner);
    OPENSSL_cleanse(&outer, sizeof outer);
    return c;
}

std::string format_cram_md5(const CramContext& c) { return "{CRAM-MD5}" + hex_encode(c.data(), c.size()); }

std::optional<CramContext> cram_md5_context_from(std::string_view stored) {
    auto parts = split_scheme(stored);
    if (!parts) return std::nullopt;
    // HMAC-MD5 is Dovecot's older name for the same scheme.
    if (iequals(parts->first, "CRAM-MD5") || iequals(parts->first, "HMAC-MD5")) {
        if (parts->second.size() != 64) return std::nullopt;
        auto raw = hex_decode(parts->second);
        if (!raw) return std::nullopt;
        CramContext c{};
        std::copy(raw->begin(), raw->end(), reinterpret_cast<char*>(c.data()));
        return c;
    }
    auto password = cleartext_of(stored);
    if (!password) return std::nullopt;
    auto c = cram_md5_context(*password);
    OPENSSL_cleanse(password->data(), password->size());
    return c;
}

std::string cram_md5_digest(const CramContext& c, std::string_view challenge) {
    MD5_CTX ctx;
    unsigned char inner[MD5_DIGEST_LENGTH], out[MD5_DIGEST_LENGTH];
    resume_md5(ctx, c.data() + 16);
    MD5_Update(&ctx, challenge.data(), challenge.size());
    MD5_Final(inner, &ctx);
    resume_md5(ctx, c.data());
    MD5_Update(&ctx, inner, sizeof inner);
    MD5_Final(out, &ctx);
    return hex_encode(out, sizeof out);
}

}  // namespace pillarbox::auth
