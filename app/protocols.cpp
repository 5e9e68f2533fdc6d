// The protocol registry of this build (see protocols.hpp).
#include "app/protocols.hpp"

#include "protocols/imap/registration.hpp"
#include "protocols/imap/session.hpp"
#include "protocols/pop3/registration.hpp"
#include "protocols/smtp/registration.hpp"
#include "webui/registration.hpp"

namespace pillarbox::app {

SessionServices SessionServices::make() {
    return {std::make_shared<smtp::Services>(), std::make_shared<pop3::Services>(), std::make_shared<imap::Services>()};
}

ProtocolRegistry protocol_registry(const SessionServices& sessions) {
    ProtocolRegistry r;
    r.add(smtp::registration(sessions.smtp));
    r.add(pop3::registration(sessions.pop3));
    r.add(imap::registration(sessions.imap));
    // The HTTP sessions replace this placeholder when they land.
    r.add(webui::registration());
    return r;
}

}  // namespace pillarbox::app
