// The CRAM-MD5 mechanism (RFC 2195): a challenge, then "user hexdigest"; the digest is checked
// against the user's stored {CRAM-MD5} context or one derived from a cleartext password.
#include "auth/sasl/cram_md5.hpp"

#include <openssl/rand.h>

#include <cstdint>
#include <ctime>

#include "auth/password.hpp"

namespace pillarbox::auth::sasl {
namespace {

constexpr std::size_t max_message = 4096;
constexpr std::size_t max_user = 1024;

class CramMd5 final : public Mechanism {
public:
    explicit CramMd5(std::string challenge) : challenge_(std::move(challenge)) {}

    std::string_view name() const override { return "CRAM-MD5"; }

    Step start(const std::optional<std::string>& initial) override {
        if (state_ != State::Fresh) return fail("start called twice");
        // The server speaks first (RFC 2195 section 2), so a client cannot have anything to say
        // yet; an empty initial response ("=") is harmless and tolerated.
        if (initial && !initial->empty()) return fail("CRAM-MD5: unexpected initial response");
        state_ = State::WantResponse;
        return Step::cont(challenge_);
    }

    Step respond(std::string_view response) override {
        if (state_ != State::WantResponse) return fail("unexpected response");
        if (response.size() > max_message) return fail("CRAM-MD5: response too long");
        // The user name may itself contain spaces; the digest is what follows the last one.
        auto space = response.rfind(' ');
        if (space == std::string_view::npos) return fail("CRAM-MD5: no space in response");
        auto user = response.substr(0, space);
        auto digest = response.substr(space + 1);
        if (user.empty()) return fail("CRAM-MD5: empty user name");
        if (user.size() > max_user) return fail("CRAM-MD5: user name too long");
        if (user.find('\0') != std::string_view::npos) return fail("CRAM-MD5: NUL in user name");
        if (digest.size() != 32) return fail("CRAM-MD5: digest is not 32 hex digits");
        digest_.clear();
        for (char c : digest) {
            if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return fail("CRAM-MD5: digest is not hex");
            digest_.push_back(c);
        }
        user_ = user;
        state_ = State::WantLookup;
        Step s;
        s.kind = Step::Kind::Lookup;
        s.login = user_;
        return s;
    }

    Step looked_up(const Credentials* creds) override {
        if (state_ != State::WantLookup) return fail("unexpected lookup result");
        state_ = State::Done;
        if (!creds) return Step::fail("unknown user");
        std::optional<CramContext> ctx;
        if (!creds->cram_md5.empty()) ctx = cram_md5_context_from(creds->cram_md5);
        if (!ctx) ctx = cram_md5_context_from(creds->password);
        if (!ctx) return Step::fail("no CRAM-MD5 secret");
        if (!constant_time_equal(cram_md5_digest(*ctx, challenge_), digest_)) return Step::fail("wrong password");
        Step s;
        s.kind = Step::Kind::Success;
        s.login = user_;
        return s;
    }

private:
    enum class State { Fresh, WantResponse, WantLookup, Done };
    State state_ = State::Fresh;
    std::string challenge_;
    std::string user_;
    std::string digest_;

    Step fail(std::string reason) {
        state_ = State::Done;
        return Step::fail(std::move(reason));
    }
};

}  // namespace

std::unique_ptr<Mechanism> make_cram_md5(const std::string& server_name) {
    // RFC 2195 section 2 suggests "<pid.clock@hostname>"; a random number instead of the pid
    // keeps challenges unpredictable, which is what protects against replay.
    std::uint64_t random = 0;
    RAND_bytes(reinterpret_cast<unsigned char*>(&random), sizeof random);
    return make_cram_md5_with_challenge("<" + std::to_string(random) + "." +
                                        std::to_string(static_cast<long long>(std::time(nullptr))) + "@" +
                                        (server_name.empty() ? std::string("localhost") : server_name) + ">");
}

std::unique_ptr<Mechanism> make_cram_md5_with_challenge(std::string challenge) {
    return std::make_unique<CramMd5>(std::move(challenge));
}

}  // namespace pillarbox::auth::sasl
