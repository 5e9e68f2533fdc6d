// The SCRAM mechanisms (RFC 5802; SHA-256 from RFC 7677), with and without channel binding
// ("-PLUS": tls-exporter per RFC 9266, tls-unique per RFC 5929). The server never sees the password.
#include "auth/sasl/scram.hpp"

#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include <vector>

namespace pillarbox::auth::sasl {
namespace {

// No legitimate SCRAM message comes near this; it bounds the work an attacker can ask for.
constexpr std::size_t max_message = 4096;


std::string hmac(ScramHash h, std::string_view key, std::string_view data) { return scram_hmac(h, key, data); }
std::string hash(ScramHash h, std::string_view data) { return scram_hash(h, data); }

// Key for fake salts: unknown users get a salt that is stable for the life of the process (a
// second try sees the same one) but reveals nothing, as RFC 5802 section 9 suggests.
const std::string& fake_salt_key() {
    static const std::string key = [] {
        std::string k(32, '\0');
        RAND_bytes(reinterpret_cast<unsigned char*>(k.data()), k.size());
        return k;
    }();
    return key;
}

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Well-formed UTF-8 without ASCII controls. This is a simplification of SASLprep (RFC 4013),
// which would also map and NFKC-normalise: names are accepted as sent, which is what Dovecot
// does too, so an account is found under exactly the bytes the client typed.
bool valid_name(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f) return false;
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t n;  // continuation bytes
        if ((c & 0xe0) == 0xc0) n = 1;
        else if ((c & 0xf0) == 0xe0) n = 2;
        else if ((c & 0xf8) == 0xf0) n = 3;
        else return false;
        std::uint32_t cp = c & (0x3fu >> n);
        if (i + n >= s.size()) return false;
        for (std::size_t k = 1; k <= n; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80) return false;
            cp = cp << 6 | (cc & 0x3f);
        }
        static constexpr std::uint32_t min_for_length[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_for_length[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += n + 1;
    }
    return true;
}

// saslname (RFC 5802 section 5.1): "," and "=" travel as "=2C" and "=3D"; any other "=" is an error.
std::optional<std::string> decode_saslname(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '=') {
            out.push_back(s[i]);
            continue;
        }
        auto esc = s.substr(i + 1, 2);
        if (esc == "2C") out.push_back(',');
        else if (esc == "3D") out.push_back('=');
        else return std::nullopt;
        i += 2;
    }
    if (!valid_name(out)) return std::nullopt;
    return out;
}

// printable = %x21-2B / %x2D-7E: visible ASCII without ",".
bool valid_nonce(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < 0x21 || c > 0x7e || c == ',') return false;
    return true;
}

// Splits at ","; values of every attribute SCRAM defines exclude ",", so this is exact.
std::vector<std::string_view> split_attributes(std::string_view s) {
    std::vector<std::string_view> out;
    for (;;) {
        auto comma = s.find(',');
        out.push_back(s.substr(0, comma));
        if (comma == std::string_view::npos) return out;
        s.remove_prefix(comma + 1);
    }
}

// attr-val: a letter, "=" and a value; the ABNF's values are never empty (1*value-char).
bool is_attribute(std::string_view a, char name) { return a.size() >= 3 && a[0] == name && a[1] == '='; }
bool is_extension(std::string_view a) { return a.size() >= 3 && is_alpha(a[0]) && a[1] == '='; }

class Scram final : public Mechanism {
public:
    explicit Scram(ScramOptions o) : o_(std::move(o)) {
        if (o_.hash == ScramHash::Sha1) name_ = o_.plus ? "SCRAM-SHA-1-PLUS" : "SCRAM-SHA-1";
        else name_ = o_.plus ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256";
    }

    ~Scram() override {
        OPENSSL_cleanse(keys_.stored_key.data(), keys_.stored_key.size());
        OPENSSL_cleanse(keys_.server_key.data(), keys_.server_key.size());
    }

    std::string_view name() const override { return name_; }

    Step start(const std::optional<std::string>& initial) override {
        if (state_ != State::Fresh) return fail("start called twice");
        state_ = State::WantFirst;
        // A client-first mechanism without an initial response gets an empty challenge (RFC 4422
        // section 5).
        if (!initial) return Step::cont("");
        return respond(*initial);
    }

    Step respond(std::string_view response) override {
        if (response.size() > max_message) return fail("SCRAM: message too long");
        switch (state_) {
            case State::WantFirst: return client_first(response);
            case State::WantFinal: return client_final(response);
            default: return fail("unexpected response");
        }
    }

    Step looked_up(const Credentials* creds) override {
        if (state_ != State::WantLookup) return fail("unexpected lookup result");
        std::optional<ScramKeys> keys;
        if (creds) {
            const std::string& own = o_.hash == ScramHash::Sha1 ? creds->scram_sha1 : creds->scram_sha256;
            if (!own.empty()) keys = scram_keys_from(own, o_.hash, o_.iterations);
            if (!keys) keys = scram_keys_from(creds->password, o_.hash, o_.iterations);
        }
        if (keys) {
            keys_ = std::move(*keys);
        } else {
            // Carry on with a made-up salt and fail only at the end, so the exchange does not tell
            // who has an account (RFC 5802 section 9).
            fake_reason_ = creds ? "no SCRAM secret" : "unknown user";
            keys_.hash = o_.hash;
            keys_.iterations = o_.iterations;
            keys_.salt = hmac(ScramHash::Sha256, fake_salt_key(), user_).substr(0, 16);
        }
        std::string server_nonce = o_.server_nonce;
        if (server_nonce.empty()) {
            std::string raw(18, '\0');
            RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), raw.size());
            server_nonce = base64_encode(raw);  // base64 has no ",", so it is a valid nonce
        }
        nonce_ = client_nonce_ + server_nonce;
        server_first_ = "r=" + nonce_ + ",s=" + base64_encode(keys_.salt) + ",i=" + std::to_string(keys_.iterations);
        state_ = State::WantFinal;
        return Step::cont(server_first_);
    }

private:
    enum class State { Fresh, WantFirst, WantLookup, WantFinal, Done };
    ScramOptions o_;
    std::string name_;
    State state_ = State::Fresh;
    std::string gs2_header_;          // as sent, for the c= check
    std::string cb_data_;             // the channel binding data the client bound to
    std::string client_first_bare_;
    std::string client_nonce_;
    std::string user_;
    std::string authzid_;
    std::string nonce_;               // client + server
    std::string server_first_;
    ScramKeys keys_;
    std::string fake_reason_;         // set: fail at the final step with this reason

    Step fail(std::string reason) {
        state_ = State::Done;
        return Step::fail(std::move(reason));
    }

    // gs2-header = gs2-cbind-flag "," [ authzid ] ","  (RFC 5802 section 7)
    Step client_first(std::string_view msg) {
        std::size_t pos;
        if (msg.starts_with("n,") || msg.starts_with("y,")) {
            bool client_could_bind = msg[0] == 'y';
            if (o_.plus) return fail("SCRAM: -PLUS mechanism without channel binding");
            // RFC 5802 section 6: "y" means the client supports binding but thinks the server
            // does not; when we did offer -PLUS, someone removed it on the way.
            if (client_could_bind && o_.plus_offered) return fail("SCRAM: channel binding downgrade (y flag)");
            pos = 2;
        } else if (msg.starts_with("p=")) {
            auto comma = msg.find(',');
            if (comma == std::string_view::npos) return fail("SCRAM: malformed gs2 header");
            auto type = msg.substr(2, comma - 2);
            if (!o_.plus) return fail("SCRAM: channel binding requested on a non-PLUS mechanism");
            if (type == "tls-exporter") cb_data_ = o_.cb.tls_exporter;
            else if (type == "tls-unique") cb_data_ = o_.cb.tls_unique;
            else return fail("SCRAM: unsupported channel binding type");
            if (cb_data_.empty()) return fail("SCRAM: channel binding type not available on this connection");
            pos = comma + 1;
        } else {
            return fail("SCRAM: malformed gs2 header");
        }
        auto rest = msg.substr(pos);
        auto comma = rest.find(',');
        if (comma == std::string_view::npos) return fail("SCRAM: malformed gs2 header");
        auto authzid = rest.substr(0, comma);
        if (!authzid.empty()) {
            if (!is_attribute(authzid, 'a')) return fail("SCRAM: malformed authzid");
            auto decoded = decode_saslname(authzid.substr(2));
            if (!decoded || decoded->empty()) return fail("SCRAM: malformed authzid");
            authzid_ = std::move(*decoded);
        }
        gs2_header_ = msg.substr(0, pos + comma + 1);
        client_first_bare_ = msg.substr(pos + comma + 1);

        auto attrs = split_attributes(client_first_bare_);
        // RFC 5802 section 5.1: "m" is reserved for mandatory extensions; a server that does not
        // know one MUST fail.
        if (attrs[0].starts_with("m=")) return fail("SCRAM: unsupported mandatory extension");
        if (attrs.size() < 2 || !is_attribute(attrs[0], 'n') || !is_attribute(attrs[1], 'r'))
            return fail("SCRAM: malformed client-first-message");
        // Extensions other than "m" are to be ignored (RFC 5802 section 7, "extensions").
        for (std::size_t i = 2; i < attrs.size(); ++i)
            if (!is_extension(attrs[i]) || attrs[i][0] == 'm') return fail("SCRAM: malformed extension");
        auto user = decode_saslname(attrs[0].substr(2));
        if (!user || user->empty()) return fail("SCRAM: malformed username");
        auto nonce = attrs[1].substr(2);
        if (!valid_nonce(nonce)) return fail("SCRAM: malformed nonce");
        user_ = std::move(*user);
        client_nonce_ = nonce;

        state_ = State::WantLookup;
        Step s;
        s.kind = Step::Kind::Lookup;
        s.login = user_;
        s.authzid = authzid_;
        return s;
    }

    // client-final-message = "c=" base64 "," "r=" nonce ["," extensions] "," "p=" base64
    Step client_final(std::string_view msg) {
        state_ = State::Done;
        auto attrs = split_attributes(msg);
        if (attrs.size() < 3 || !is_attribute(attrs[0], 'c') || !is_attribute(attrs[1], 'r') ||
            !is_attribute(attrs.back(), 'p'))
            return Step::fail("SCRAM: malformed client-final-message");
        for (std::size_t i = 2; i + 1 < attrs.size(); ++i)
            if (!is_extension(attrs[i]) || attrs[i][0] == 'p' || attrs[i][0] == 'c' || attrs[i][0] == 'r')
                return Step::fail("SCRAM: malformed extension");

        // c= must repeat the gs2 header and carry this connection's binding data, so a proxy
        // that terminated TLS elsewhere cannot relay the exchange (RFC 5802 section 6).
        auto cbind = base64_decode(attrs[0].substr(2));
        if (!cbind) return Step::fail("SCRAM: malformed channel binding");
        if (!constant_time_equal(*cbind, gs2_header_ + cb_data_)) return Step::fail("SCRAM: channel binding mismatch");
        if (attrs[1].substr(2) != nonce_) return Step::fail("SCRAM: nonce mismatch");
        auto proof = base64_decode(attrs.back().substr(2));
        if (!proof || proof->size() != (o_.hash == ScramHash::Sha1 ? 20u : 32u))
            return Step::fail("SCRAM: malformed proof");

        if (!fake_reason_.empty()) return Step::fail(fake_reason_);

        auto without_proof = msg.substr(0, msg.size() - attrs.back().size() - 1);
        std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
        auto signature = hmac(o_.hash, keys_.stored_key, auth_message);
        std::string client_key = *proof;
        for (std::size_t i = 0; i < client_key.size(); ++i) client_key[i] = static_cast<char>(client_key[i] ^ signature[i]);
        bool ok = constant_time_equal(hash(o_.hash, client_key), keys_.stored_key);
        OPENSSL_cleanse(client_key.data(), client_key.size());
        if (!ok) return Step::fail("wrong password");

        Step s;
        s.kind = Step::Kind::Success;
        s.login = user_;
        s.authzid = authzid_;
        s.data = "v=" + base64_encode(hmac(o_.hash, keys_.server_key, auth_message));
        return s;
    }
};

}  // namespace

std::unique_ptr<Mechanism> make_scram(ScramOptions o) { return std::make_unique<Scram>(std::move(o)); }

}  // namespace pillarbox::auth::sasl
