// The IMAP session's core: input framing, the command table and its state checks, tagged and
// untagged replies, the bad-command limit, login and logout. The commands are in commands/.
#include "protocols/imap/imap_session.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "protocols/common/service_replies.hpp"
#include "protocols/imap/registration.hpp"
#include "server/ascii.hpp"
#include "server/config.hpp"
#include "server/log.hpp"
#include "storage/store.hpp"

namespace pillarbox::imap {

Settings Settings::from(const config::Config& c) {
    Settings s;
    s.greeting = c.get("login_greeting");
    s.line_length = std::max<std::size_t>(1024, c.get_size("imap_max_line_length"));
    s.max_bad_commands = static_cast<unsigned>(c.get_count("imap_max_bad_commands"));
    s.max_nesting = c.get_count("imap_max_nesting");
    s.max_sequence_ranges = c.get_count("imap_max_sequence_ranges");
    s.max_userip = static_cast<unsigned>(c.get_count("mail_max_userip_connections"));
    s.append_limit = c.get_size("message_size_limit");
    s.idle_notify = c.get_time("imap_idle_notify_interval");
    return s;
}

namespace {

// RFC 9051 7.1 and RFC 5530 response codes for the ends of a login.
const protocols::SaslReplies& login_replies() {
    static const protocols::SaslReplies r{
        .challenge_prefix = "+ ",
        .failed = {"NO [AUTHENTICATIONFAILED] Authentication failed.", true},
        .temp_fail = {"NO [UNAVAILABLE] Temporary authentication failure, try again later.", true},
        .aborted = {"BAD Authentication aborted.", true},
        .malformed = {"BAD Invalid base64 data in the response.", true},
        .refused = {"NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
                    false},
    };
    return r;
}

}  // namespace

struct CommandTableAccess {
    static const protocols::CommandTable<Handler>& table() {
        using namespace protocols;
        using S = ImapSession;
        static const CommandTable<Handler> t = {
            {"CAPABILITY", &S::cmd_capability, kAnyLogin | kExpungeOk},
            {"NOOP", &S::cmd_noop, kAnyLogin | kExpungeOk},
            {"LOGOUT", &S::cmd_logout, kAnyLogin},
            {"STARTTLS", &S::cmd_starttls, kBeforeLogin},
            {"AUTHENTICATE", &S::cmd_authenticate, kBeforeLogin},
            {"LOGIN", &S::cmd_login, kBeforeLogin},
            {"ENABLE", &S::cmd_enable, kAfterLogin | kExpungeOk},
            {"ID", &S::cmd_id, kAnyLogin | kExpungeOk},
            {"NAMESPACE", &S::cmd_namespace, kAfterLogin | kExpungeOk},
            {"SELECT", &S::cmd_select, kAfterLogin},
            {"EXAMINE", &S::cmd_select, kAfterLogin},
            {"CREATE", &S::cmd_create, kAfterLogin | kExpungeOk},
            {"DELETE", &S::cmd_delete, kAfterLogin | kExpungeOk},
            {"RENAME", &S::cmd_rename, kAfterLogin | kExpungeOk},
            {"SUBSCRIBE", &S::cmd_subscribe, kAfterLogin | kExpungeOk},
            {"UNSUBSCRIBE", &S::cmd_subscribe, kAfterLogin | kExpungeOk},
            {"LIST", &S::cmd_list, kAfterLogin | kExpungeOk},
            {"LSUB", &S::cmd_lsub, kAfterLogin | kExpungeOk},
            {"STATUS", &S::cmd_status, kAfterLogin | kExpungeOk},
            {"GETQUOTAROOT", &S::cmd_getquotaroot, kAfterLogin | kExpungeOk},
            {"GETQUOTA", &S::cmd_getquota, kAfterLogin | kExpungeOk},
            {"SETQUOTA", &S::cmd_setquota, kAfterLogin | kExpungeOk},
            {"CHECK", &S::cmd_noop, kAfterLogin | kInTransaction | kExpungeOk},
            {"CLOSE", &S::cmd_close, kAfterLogin | kInTransaction},
            {"UNSELECT", &S::cmd_unselect, kAfterLogin | kInTransaction},
            {"EXPUNGE", &S::cmd_expunge, kAfterLogin | kInTransaction | kExpungeOk},
            {"UID EXPUNGE", &S::cmd_expunge, kAfterLogin | kInTransaction | kExpungeOk},
            // RFC 9051 7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH; their UID forms
            // may have them.
            {"APPEND", &S::cmd_append, kAfterLogin | kExpungeOk},
            {"IDLE", &S::cmd_idle, kAfterLogin | kExpungeOk},
            {"FETCH", &S::cmd_fetch, kAfterLogin | kInTransaction},
            {"UID FETCH", &S::cmd_fetch, kAfterLogin | kInTransaction | kExpungeOk},
            {"SEARCH", &S::cmd_search, kAfterLogin | kInTransaction},
            {"UID SEARCH", &S::cmd_search, kAfterLogin | kInTransaction | kExpungeOk},
            {"STORE", &S::cmd_store, kAfterLogin | kInTransaction},
            {"UID STORE", &S::cmd_store, kAfterLogin | kInTransaction | kExpungeOk},
            {"COPY", &S::cmd_copy, kAfterLogin | kInTransaction | kExpungeOk},
            {"UID COPY", &S::cmd_copy, kAfterLogin | kInTransaction | kExpungeOk},
            {"MOVE", &S::cmd_copy, kAfterLogin | kInTransaction | kExpungeOk},
            {"UID MOVE", &S::cmd_copy, kAfterLogin | kInTransaction | kExpungeOk},
        };
        return t;
    }
};

ImapSession::ImapSession(SessionIo& io, std::shared_ptr<Services> services)
    : io_(io),
      services_(std::move(services)),
      info_(io.info()),
      s_(Settings::from(*info_.config)),
      guard_(io),
      reader_(ReaderLimits{s_.line_length, s_.line_length, s_.line_length}),
      sasl_(io, guard_, login_replies()) {}

ImapSession::~ImapSession() {
    guard_.end();
    on_close();
}

void ImapSession::on_close() {
    if (idle_timer_) idle_timer_->cancel();
    idle_timer_.reset();
    fetch_.reset();
    search_.reset();
    append_.reset();
    changes_ = {};
    login_.reset();
    if (!userip_key_.empty()) {
        auto it = services_->userip.find(userip_key_);
        if (it != services_->userip.end() && --it->second == 0) services_->userip.erase(it);
        userip_key_.clear();
    }
}

void ImapSession::on_start() {
    // RFC 9051 7.1: the greeting may carry the capabilities, which saves clients a round trip.
    send(fmt::format("* OK [CAPABILITY {}] {}\r\n", capabilities(), s_.greeting));
}

void ImapSession::on_tls_started() {
    info_ = io_.info();
    reader_.reset();
    unpark();
}

void ImapSession::on_refused(std::string_view) { bye(Goodbye::TooManyConnections); }
void ImapSession::on_timeout() {
    // In the middle of a FETCH's literal nothing more may be said: it would be read as data.
    if (fetch_) state_ = State::Closed;
    else bye(Goodbye::IdleTimeout);
}
void ImapSession::on_shutdown() { bye(Goodbye::ShuttingDown); }

void ImapSession::bye(Goodbye why) {
    if (state_ == State::Closed) return;
    send(goodbye(why, ""));
    state_ = State::Closed;
}

std::string ImapSession::summary() const {
    std::string s;
    if (!account_.empty()) s = fmt::format("user=<{}> ", account_);
    return s + fmt::format("commands={}", total_commands_);
}

auth::ClientInfo ImapSession::auth_client() const {
    auth::ClientInfo c;
    c.service = info_.listener;
    c.session_id = info_.id;
    c.ip = info_.peer_ip;
    c.tls = tls_active();
    return c;
}

std::string ImapSession::capabilities() const {
    std::string caps = "IMAP4rev1 IMAP4rev2";
    if (state_ == State::NotAuthenticated) {
        if (info_.tls_mode == config::TlsMode::StartTls && !tls_active()) caps += " STARTTLS";
        bool cleartext = services_->auth && services_->auth->cleartext_allowed(auth_client());
        if (!cleartext) caps += " LOGINDISABLED";
        if (services_->auth)
            for (auto& m : services_->auth->mechanisms(auth_client())) caps += " AUTH=" + m;
        caps += " SASL-IR";
    }
    // What is served: RFC 9051's required extensions (section 7.2.2 lists them for rev2 servers)
    // and the ones clients look for.
    caps += " LITERAL+ ENABLE ID NAMESPACE UNSELECT CHILDREN IDLE UIDPLUS MOVE ESEARCH SEARCHRES LIST-EXTENDED"
            " LIST-STATUS SPECIAL-USE BINARY STATUS=SIZE QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE CONDSTORE QRESYNC CREATE-SPECIAL-USE"
            " UTF8=ACCEPT";
    if (s_.append_limit) caps += fmt::format(" APPENDLIMIT={}", s_.append_limit);
    return caps;
}

std::size_t ImapSession::on_input(std::string_view data) {
    if (state_ == State::Closed) return data.size();
    std::size_t used = 0;
    while (!guard_.parked() && state_ != State::Closed) {
        if (sasl_.active()) {
            // RFC 4954 section 4 sizes (kept for IMAP): a response line may be long.
            protocols::LineFramer framer(protocols::kSaslLineLimit);
            auto item = framer.next(data.substr(used));
            using K = protocols::LineFramer::Item::Kind;
            if (item.kind == K::NeedMore) break;
            used += item.consumed;
            if (item.kind == K::TooLong) {
                send("* BAD [TOOBIG] Response line too long\r\n");
                io_.close();
                state_ = State::Closed;
                break;
            }
            if (item.kind == K::Line) sasl_.respond(item.data);
            continue;
        }
        auto ev = reader_.next(data.substr(used));
        used += ev.consumed;
        using K = CommandReader::Event::Kind;
        if (ev.kind == K::NeedMore) break;
        if (ev.kind == K::Command) {
            dispatch(ev.text);
        } else if (ev.kind == K::Literal) {
            on_literal(ev);
        } else if (ev.kind == K::LiteralData) {
            append_piece(ev.text);
        } else if (ev.kind == K::TooLong) {
            // Framing is lost (a literal may hide in what is skipped): say so and close.
            send("* BYE [TOOBIG] Command line too long\r\n");
            log::line(log::Level::Warning, "imap", info_.id, "command line too long from unknown[{}]", info_.peer_ip);
            io_.close();
            state_ = State::Closed;
        }
    }
    return used;
}

void ImapSession::on_literal(const CommandReader::Event& ev) {
    Decoder d(ev.text, {s_.max_nesting, s_.max_sequence_ranges});
    auto head = d.head();
    const std::string tag = head ? head->tag : "*";
    if (append_) {
        // A second message in one APPEND: RFC 3502 MULTIAPPEND, not offered.
        reader_.refuse_literal();
        append_.reset();
        return bad(tag, "MULTIAPPEND is not supported");
    }
    if (head && head->name == "APPEND" && state_ != State::NotAuthenticated) return start_append(*head, d, ev);
    keep_argument_literal(tag, ev);
}

void ImapSession::keep_argument_literal(const std::string& tag, const CommandReader::Event& ev) {
    if (!ev.fits) {
        reader_.refuse_literal();
        // RFC 7888 section 4: a too-large literal is refused with the TOOBIG code.
        return bad(tag, "[TOOBIG] Literal too large");
    }
    reader_.keep_literal();
    if (ev.synchronizing) send("+ OK\r\n");
}

void ImapSession::dispatch(std::string_view text) {
    if (idling_) return idle_input(text);
    ++total_commands_;
    Decoder d(text, {s_.max_nesting, s_.max_sequence_ranges});
    auto head = d.head();
    if (!head) return bad("*", "Invalid tag");
    if (head->name.empty()) return bad(head->tag, d.error().empty() ? "Invalid command" : d.error());
    auto* def = CommandTableAccess::table().find(head->name);
    if (!def) return bad(head->tag, "Unknown command " + head->name.substr(0, 32));
    protocols::CommandState st{.logged_in = state_ != State::NotAuthenticated, .in_transaction = state_ == State::Selected};
    switch (protocols::check_command(def->flags, st)) {
    case protocols::Refusal::None: break;
    case protocols::Refusal::NotLoggedIn: return bad(head->tag, "Not logged in");
    case protocols::Refusal::AlreadyLoggedIn: return bad(head->tag, "Already logged in");
    case protocols::Refusal::NoTransaction: return bad(head->tag, "No mailbox selected");
    default: return bad(head->tag, "Not allowed now");
    }
    Command cmd(Tagged{head->tag, head->name}, d, head->name.rfind("UID ", 0) == 0);
    (this->*def->handler)(cmd);
}

void ImapSession::enable_condstore() {
    if (condstore_) return;
    condstore_ = true;
    if (selected_) send(fmt::format("* OK [HIGHESTMODSEQ {}] Highest\r\n", selected_->highest_modseq()));
}

std::string ImapSession::updates(unsigned flags) {
    if (!selected_) return "";
    SelectedMailbox::Options o;
    o.expunges_allowed = (flags & kExpungeOk) != 0;
    o.qresync = qresync_;
    o.condstore = condstore_ || qresync_;
    o.rev2 = rev2_;
    return selected_->updates(o);
}

void ImapSession::finish(const Tagged& c, std::string_view status, std::string_view text) {
    auto* def = CommandTableAccess::table().find(c.name);
    finish(c.tag, def ? def->flags : 0u, status, text);
}

void ImapSession::finish(const std::string& tag, unsigned flags, std::string_view status, std::string_view text) {
    std::string out = updates(flags);
    if (selected_ && selected_->deleted()) {
        // RFC 9051 7.1.5: the selected mailbox is gone; Dovecot closes the connection too.
        out += "* BYE Selected mailbox was deleted, have to disconnect.\r\n";
        state_ = State::Closed;
        io_.close();
    }
    out += fmt::format("{} {} {}\r\n", tag, status, text);
    send(out);
}

void ImapSession::bad(const std::string& tag, std::string_view text) {
    send(fmt::format("{} BAD {}\r\n", tag, text));
    if (bad_commands_.add(io_, s_.max_bad_commands)) {
        send("* BYE Too many invalid IMAP commands.\r\n");
        log::line(log::Level::Warning, "imap", info_.id, "too many bad commands from unknown[{}]", info_.peer_ip);
        io_.close();
        state_ = State::Closed;
    }
}

// --- any state ---

void ImapSession::cmd_capability(Command& c) {
    if (!c.args.at_end()) return bad(c.tag, "CAPABILITY takes no arguments");
    send(fmt::format("* CAPABILITY {}\r\n", capabilities()));
    finish(c, "OK", "Capability completed.");
}

void ImapSession::cmd_noop(Command& c) {
    if (!c.args.at_end()) return bad(c.tag, c.name + " takes no arguments");
    finish(c, "OK", c.name == "CHECK" ? "Check completed." : "NOOP completed.");
}

void ImapSession::cmd_logout(Command& c) {
    if (!c.args.at_end()) return bad(c.tag, "LOGOUT takes no arguments");
    send(fmt::format("* BYE Logging out\r\n{} OK Logout completed.\r\n", c.tag));
    state_ = State::Closed;
    io_.close();
}

// --- not authenticated ---

void ImapSession::cmd_starttls(Command& c) {
    if (!c.args.at_end()) return bad(c.tag, "STARTTLS takes no arguments");
    if (info_.tls_mode != config::TlsMode::StartTls || tls_active()) return bad(c.tag, "TLS is already active");
    send(fmt::format("{} OK Begin TLS negotiation now.\r\n", c.tag));
    // RFC 9051 6.2.1: the client discards its capabilities; input sent before the handshake is
    // dropped (CVE-2011-0411), which start_tls does.
    park();
    io_.start_tls();
}

void ImapSession::cmd_login(Command& c) {
    std::optional<std::string> user;
    if (c.args.sp()) user = c.args.astring();
    bool ok = user && c.args.sp();
    auto pass = ok ? c.args.astring() : std::nullopt;
    if (!pass || !c.args.at_end()) return bad(c.tag, "Usage: LOGIN user password");
    if (!services_->auth) return finish(c, "NO", "[UNAVAILABLE] Authentication is not available.");
    if (!services_->auth->cleartext_allowed(auth_client()))
        return finish(c, "NO", "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.");
    park();
    login_ = services_->auth->login(auth_client(), *user, *pass, guard_.wrap([this, tag = c.tag](auth::Result r) {
        login_.reset();
        logged_in(tag, r, "LOGIN");
    }));
}

void ImapSession::cmd_authenticate(Command& c) {
    std::optional<std::string> mech;
    if (c.args.sp()) mech = c.args.atom();
    if (!mech) return bad(c.tag, "Usage: AUTHENTICATE mechanism [initial-response]");
    std::optional<std::string> initial;
    if (c.args.sp()) {
        // RFC 4959 SASL-IR: "=" is an empty initial response.
        auto ir = c.args.atom();
        if (!ir) return bad(c.tag, "Invalid initial response");
        initial = *ir;
    }
    if (!c.args.at_end()) return bad(c.tag, "Usage: AUTHENTICATE mechanism [initial-response]");
    if (!services_->auth) return finish(c, "NO", "[UNAVAILABLE] Authentication is not available.");
    std::string m = ascii_upper(*mech);
    if (auto o = services_->auth->offer(m, auth_client()); o != auth::Authentication::Offer::Yes) {
        if (o == auth::Authentication::Offer::NeedsTls)
            return finish(c, "NO", "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.");
        return finish(c, "NO", "Unsupported authentication mechanism.");
    }
    sasl_.start(services_->auth->begin(m, auth_client()), std::move(initial),
                [this, tag = c.tag, m](const auth::Result& r, const protocols::SaslReplies::Final*) { logged_in(tag, r, m); });
}

void ImapSession::logged_in(const std::string& tag, const auth::Result& r, const std::string& method) {
    if (r.status != auth::Result::Status::Ok) {
        auto& reply = login_replies().for_status(r.status);
        std::string line = fmt::format("{} {}\r\n", tag, reply.line);
        if (reply.error) {
            send(line);
            if (bad_commands_.add(io_, s_.max_bad_commands)) {
                send("* BYE Too many invalid IMAP commands.\r\n");
                io_.close();
                state_ = State::Closed;
            }
        } else {
            send(line);
        }
        unpark();
        return;
    }
    auto id = storage::account_of(r.user);
    if (!id) {
        log::line(log::Level::Error, "imap", info_.id, "account name <{}> has no usable domain; set auth_default_domain",
                  r.user);
        send(fmt::format("{} NO [UNAVAILABLE] This account has no mailbox here.\r\n", tag));
        unpark();
        return;
    }
    std::string key = r.user + " " + info_.peer_ip;
    unsigned& n = services_->userip[key];
    if (n >= s_.max_userip) {
        if (n == 0) services_->userip.erase(key);
        log::line(log::Level::Info, "imap", info_.id, "user=<{}> refused: mail_max_userip_connections ({}) reached",
                  r.user, s_.max_userip);
        send(fmt::format("{} NO [LIMIT] Maximum number of connections from user+IP exceeded "
                         "(mail_max_userip_connections={})\r\n", tag, s_.max_userip));
        unpark();
        return;
    }
    ++n;
    userip_key_ = key;
    account_ = r.user;
    localpart_ = id->localpart;
    domain_ = id->domain;
    state_ = State::Authenticated;
    io_.set_authenticated();
    log::line(log::Level::Info, "imap", info_.id, "Login: user=<{}>, method={}, rip={}, lip={}{}", account_, method,
              info_.peer_ip, info_.local_ip, tls_active() ? ", TLS" : "");
    // RFC 9051 6.2.3: the capabilities may change at login; saying them saves a round trip.
    send(fmt::format("{} OK [CAPABILITY {}] Logged in\r\n", tag, capabilities()));
    unpark();
}

// --- IDLE (RFC 2177, RFC 9051 6.3.13) ---

void ImapSession::selected_changed(const storage::Change& c) {
    if (!selected_) return;
    selected_->apply(c);
    // While idling, changes go out as they come (expunges too: a command is in progress).
    if (idling_) send(updates(kExpungeOk));
}

void ImapSession::cmd_idle(Command& c) {
    if (!c.args.at_end()) return bad(c.tag, "IDLE takes no arguments");
    idling_ = Tagged(c);
    send("+ idling\r\n" + updates(kExpungeOk));
    if (s_.idle_notify.count() > 0 && services_->loop) {
        idle_timer_ = std::make_shared<asio::steady_timer>(*services_->loop);
        idle_notify();
    }
}

void ImapSession::idle_notify() {
    idle_timer_->expires_after(s_.idle_notify);
    idle_timer_->async_wait(guard_.wrap([this, timer = idle_timer_](std::error_code ec) {
        if (ec || !idling_ || timer != idle_timer_) return;
        // Dovecot's keepalive: traffic now and then, so that NAT state doesn't expire.
        send("* OK Still here\r\n");
        idle_notify();
    }));
}

void ImapSession::idle_input(std::string_view line) {
    Tagged t = *idling_;
    idling_.reset();
    if (idle_timer_) idle_timer_->cancel();
    idle_timer_.reset();
    if (!ascii_iequals(line, "DONE")) return bad(t.tag, "Expected DONE.");
    finish(t, "OK", "Idle completed.");
}

std::unique_ptr<Session> make_session(SessionIo& io, std::shared_ptr<Services> services) {
    return std::make_unique<ImapSession>(io, std::move(services));
}

}  // namespace pillarbox::imap
