// The PLAIN mechanism (RFC 4616): authzid NUL authcid NUL passwd in one message, checked by the
// Authenticator like any password login.
#include <memory>

#include "auth/sasl/mechanism.hpp"

namespace pillarbox::auth::sasl {
namespace {

// RFC 4616 section 2 only asks servers to accept 255 octets; longer is an attack or a mistake.
constexpr std::size_t max_field = 1024;

class Plain final : public Mechanism {
public:
    std::string_view name() const override { return "PLAIN"; }

    Step start(const std::optional<std::string>& initial) override {
        if (state_ != State::Fresh) return fail("start called twice");
        if (!initial) {
            state_ = State::Waiting;
            return Step::cont("");
        }
        return finish(*initial);
    }

    Step respond(std::string_view response) override {
        if (state_ != State::Waiting) return fail("unexpected response");
        return finish(response);
    }

private:
    enum class State { Fresh, Waiting, Done };
    State state_ = State::Fresh;

    Step fail(std::string reason) {
        state_ = State::Done;
        return Step::fail(std::move(reason));
    }

    Step finish(std::string_view msg) {
        state_ = State::Done;
        auto nul1 = msg.find('\0');
        if (nul1 == std::string_view::npos) return Step::fail("PLAIN: no NUL separator");
        auto nul2 = msg.find('\0', nul1 + 1);
        if (nul2 == std::string_view::npos) return Step::fail("PLAIN: one NUL separator only");
        // RFC 4616 section 2: passwd is 1*SAFE and SAFE excludes NUL.
        if (msg.find('\0', nul2 + 1) != std::string_view::npos) return Step::fail("PLAIN: NUL in password");
        auto authzid = msg.substr(0, nul1);
        auto authcid = msg.substr(nul1 + 1, nul2 - nul1 - 1);
        auto passwd = msg.substr(nul2 + 1);
        if (authcid.empty()) return Step::fail("PLAIN: empty authentication identity");
        if (passwd.empty()) return Step::fail("PLAIN: empty password");
        if (authzid.size() > max_field || authcid.size() > max_field || passwd.size() > max_field)
            return Step::fail("PLAIN: field too long");
        Step s;
        s.kind = Step::Kind::Verify;
        s.login = authcid;
        s.authzid = authzid;
        s.password = passwd;
        return s;
    }
};

}  // namespace

std::unique_ptr<Mechanism> make_plain() { return std::make_unique<Plain>(); }

}  // namespace pillarbox::auth::sasl
