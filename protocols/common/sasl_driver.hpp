// Runs one SASL exchange (any auth::Exchange, so any Mechanism) for a line-based protocol:
// challenges go out with the protocol's prefix ("334 " in SMTP, "+ " in POP3 and IMAP), the
// client's lines go back in, and the end comes out as the protocol's final reply. The session is
// parked while the Authenticator works; the driver unparks it for each challenge.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "auth/authenticator.hpp"
#include "protocols/common/async_guard.hpp"

namespace pillarbox::protocols {

// What a protocol answers when an exchange ends without a login.
struct SaslReplies {
    std::string challenge_prefix;  // before the base64 challenge
    struct Final {
        std::string line;   // the reply, without CRLF
        bool error = true;  // counts towards the session's bad-command limit
    };
    Final failed, temp_fail, aborted, malformed, refused;
    const Final& for_status(auth::Result::Status s) const;
};

// RFC 4954 section 4: a SASL response line may be up to 12288 octets (in IMAP and POP3 too).
constexpr std::size_t kSaslLineLimit = 12288;

class SaslDriver {
public:
    // done(result, reply): reply is null on Ok (the session logs in), else what to answer.
    using Done = std::function<void(const auth::Result&, const SaslReplies::Final*)>;
    SaslDriver(SessionIo& io, AsyncGuard& guard, const SaslReplies& replies) : io_(io), guard_(guard), replies_(replies) {}

    // Starts an exchange (parks the session); initial is the initial response as sent.
    void start(std::unique_ptr<auth::Exchange> exchange, std::optional<std::string> initial, Done done);
    // True between start() and done: the client's lines are responses, not commands.
    bool active() const { return exchange_ != nullptr; }
    // A client line while active (parks the session until the answer).
    void respond(std::string_view line);

private:
    void on_reply(auth::Exchange::Reply r);
    SessionIo& io_;
    AsyncGuard& guard_;
    const SaslReplies& replies_;
    std::unique_ptr<auth::Exchange> exchange_;
    Done done_;
};

}  // namespace pillarbox::protocols
