// Password schemes: hashing new passwords (argon2id via libsodium) and verifying stored hashes in
// Dovecot's "{SCHEME}data" notation, so users imported from Dovecot or /etc/shadow keep their
// passwords. Also the derived secrets the SASL mechanisms need (SCRAM keys, CRAM-MD5 contexts).
// Hashing and verifying argon2id/crypt are slow on purpose: call them on a worker, never the loop.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pillarbox::auth {

// Cost of new argon2id hashes (libsodium crypto_pwhash, Dovecot-compatible string) and SCRAM
// keys. Parameters: their defaults are written once, in server/parameters.cpp, and
// AuthSettings::from() sets them.
struct HashSettings {
    unsigned long long argon2_ops{};   // auth_argon2_time_cost: time cost t
    std::size_t argon2_memory{};       // auth_argon2_memory_cost: memory cost in bytes
    unsigned scram_iterations{};       // auth_scram_iterations (RFC 7677 minimum: 4096)
};

// "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>"
std::string hash_password(std::string_view password, const HashSettings& s);

// The scheme of a stored value, upper case, without braces: "{SHA512-CRYPT}$6$..." -> "SHA512-CRYPT".
// A value without "{...}" prefix is treated as crypt(3) output ("$6$" -> SHA512-CRYPT, "$2y$" ->
// BLF-CRYPT, ...) or, failing that, "CRYPT"; the empty string gives "".
std::string scheme_of(std::string_view stored);

// True when the scheme is one verify_password() understands.
bool scheme_supported(std::string_view scheme);

// Verifies a password against a stored value. Supported schemes: ARGON2ID, ARGON2I (libsodium),
// SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, CRYPT/MD5-CRYPT (crypt(3)), SSHA512, SSHA256, SSHA,
// SHA512, SHA256, SHA, PLAIN, CLEARTEXT, PLAIN-MD5, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256.
// Encodings: Dovecot's ".b64"/".hex" suffixes where they apply. Comparisons are constant time.
// Unknown scheme or malformed value: false.
bool verify_password(std::string_view stored, std::string_view password);

// How many argon2id/argon2i verifications this process has run (all threads): lets tests check
// that a failed login paid for one whatever the reason.
std::uint64_t argon2_verifications();

// Whether a successful login with this stored value should store a fresh argon2id hash
// (another scheme, or argon2id with other costs than s).
bool needs_rehash(std::string_view stored, const HashSettings& s);

// SCRAM (RFC 5802) server secrets for one hash function.
enum class ScramHash { Sha1, Sha256 };
struct ScramKeys {
    ScramHash hash = ScramHash::Sha256;
    unsigned iterations = 4096;
    std::string salt;        // raw bytes
    std::string stored_key;  // raw bytes: H(ClientKey)
    std::string server_key;  // raw bytes: HMAC(SaltedPassword, "Server Key")
};
// HMAC(key, data) and H(data) with the SCRAM variant's hash (raw bytes).
std::string scram_hmac(ScramHash h, std::string_view key, std::string_view data);
std::string scram_hash(ScramHash h, std::string_view data);
// Derives the keys from a password; an empty salt means 16 random bytes.
ScramKeys scram_keys(ScramHash h, std::string_view password, unsigned iterations, std::string salt = {});
// Dovecot's stored form: "{SCRAM-SHA-256}4096,<b64 salt>,<b64 StoredKey>,<b64 ServerKey>".
std::string format_scram(const ScramKeys& k);
// Parses the stored form (with or without the {SCRAM-...} prefix when h is given by the caller).
std::optional<ScramKeys> parse_scram(std::string_view stored);
// Keys usable for SCRAM with hash h from any stored value: a {SCRAM-*} value of that hash, or a
// {PLAIN}/{CLEARTEXT} password (derived with the given iteration count). nullopt otherwise.
std::optional<ScramKeys> scram_keys_from(std::string_view stored, ScramHash h, unsigned iterations);

// CRAM-MD5 (RFC 2195) secret: the HMAC-MD5 inner and outer states after the key block, in
// Dovecot's {CRAM-MD5} layout (outer a,b,c,d then inner a,b,c,d, little endian; 64 hex digits).
using CramContext = std::array<std::uint8_t, 32>;
CramContext cram_md5_context(std::string_view password);
std::string format_cram_md5(const CramContext& c);  // "{CRAM-MD5}<64 hex>"
// The context from a stored value: {CRAM-MD5} directly, or derived from {PLAIN}/{CLEARTEXT}.
std::optional<CramContext> cram_md5_context_from(std::string_view stored);
// HMAC-MD5(key, challenge) computed from the context, as 32 lower-case hex digits.
std::string cram_md5_digest(const CramContext& c, std::string_view challenge);

// Constant-time equality of two byte strings (length leaks, content doesn't).
bool constant_time_equal(std::string_view a, std::string_view b);

// Base64 (RFC 4648, with padding). decode returns nullopt on bad input (whitespace not allowed).
std::string base64_encode(std::string_view raw);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace pillarbox::auth
