// The LOGIN mechanism (draft-murchison-sasl-login): username and password in two answers, for
// clients (Outlook, old phones) that predate PLAIN.
#include <memory>

#include "auth/sasl/mechanism.hpp"

namespace pillarbox::auth::sasl {
namespace {

constexpr std::size_t max_field = 1024;

class Login final : public Mechanism {
public:
    std::string_view name() const override { return "LOGIN"; }

    Step start(const std::optional<std::string>& initial) override {
        if (state_ != State::Fresh) return fail("start called twice");
        state_ = State::WantUser;
        // An initial response, when a client sends one, is the username.
        if (initial) return respond(*initial);
        return Step::cont("Username:");
    }

    Step respond(std::string_view response) override {
        switch (state_) {
            case State::WantUser:
                if (response.empty()) return fail("LOGIN: empty username");
                if (response.size() > max_field) return fail("LOGIN: username too long");
                if (response.find('\0') != std::string_view::npos) return fail("LOGIN: NUL in username");
                user_ = response;
                state_ = State::WantPassword;
                return Step::cont("Password:");
            case State::WantPassword: {
                if (response.empty()) return fail("LOGIN: empty password");
                if (response.size() > max_field) return fail("LOGIN: password too long");
                state_ = State::Done;
                Step s;
                s.kind = Step::Kind::Verify;
                s.login = std::move(user_);
                s.password = response;
                return s;
            }
            default:
                return fail("unexpected response");
        }
    }

private:
    enum class State { Fresh, WantUser, WantPassword, Done };
    State state_ = State::Fresh;
    std::string user_;

    Step fail(std::string reason) {
        state_ = State::Done;
        return Step::fail(std::move(reason));
    }
};

}  // namespace

std::unique_ptr<Mechanism> make_login() { return std::make_unique<Login>(); }

}  // namespace pillarbox::auth::sasl
