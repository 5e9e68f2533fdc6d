// The POP3 session: command table, AUTHORIZATION (USER/PASS, AUTH, STLS, UTF8), TRANSACTION
// over a Maildrop snapshot, and the UPDATE state at QUIT.
#include "protocols/pop3/session.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "auth/authenticator.hpp"
#include "protocols/common/async_guard.hpp"
#include "protocols/common/command_table.hpp"
#include "protocols/common/line_framer.hpp"
#include "protocols/common/sasl_driver.hpp"
#include "protocols/common/service_replies.hpp"
#include "protocols/pop3/maildrop.hpp"
#include "protocols/pop3/message_stream.hpp"
#include "protocols/pop3/parser.hpp"
#include "protocols/pop3/registration.hpp"
#include "server/ascii.hpp"
#include "server/config.hpp"
#include "server/log.hpp"
#include "storage/store.hpp"

namespace pillarbox::pop3 {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kReadChunk = 128 * 1024;  // bytes of a message file read at a time
constexpr const char* kPlaintextRefused =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections: use STLS first, "
    "or port 995 (POP3S).\r\n";

// The listener's POP3 settings; their defaults are the parameters' (server/parameters.cpp),
// written once there: from() sets every field.
struct Settings {
    std::string greeting;
    std::string uidl_format;
    bool lock_session{};
    bool flag_updates{};
    std::chrono::milliseconds login_delay{};
    unsigned max_bad_commands{};
    std::size_t line_limit{};
    std::size_t output_watermark{};  // stream more of a message only below this

    static Settings from(const config::Config& c) {
        Settings s;
        s.greeting = c.get("login_greeting");
        s.uidl_format = c.get("pop3_uidl_format");
        if (!valid_uidl_format(s.uidl_format)) s.uidl_format = c.default_value("pop3_uidl_format");
        s.lock_session = c.get_bool("pop3_lock_session");
        s.flag_updates = !c.get_bool("pop3_no_flag_updates");
        s.login_delay = c.get_time("pop3_login_delay");
        s.max_bad_commands = static_cast<unsigned>(c.get_count("pop3_max_bad_commands"));
        s.line_limit = c.get_count("pop3_line_length_limit");
        s.output_watermark = std::max<std::size_t>(kReadChunk, c.get_size("output_buffer_limit") / 2);
        return s;
    }
};

class Pop3Session;
using Handler = void (Pop3Session::*)(const std::string& args);

// RFC 3206 / RFC 5034 section 6 (AUTH-RESP-CODE): [AUTH] for credentials, [SYS/TEMP] for us.
// Failed logins count as bad commands too: the throttle slows each guess down, the limit ends a
// connection that keeps guessing (or keeps meeting a full throttle queue).
const protocols::SaslReplies& login_replies() {
    static const protocols::SaslReplies r{
        .challenge_prefix = "+ ",
        .failed = {"-ERR [AUTH] Authentication failed.", true},
        .temp_fail = {"-ERR [SYS/TEMP] Temporary authentication failure, try again later.", true},
        .aborted = {"-ERR Authentication aborted.", true},
        .malformed = {"-ERR Invalid base64 data in the response.", true},
        .refused = {std::string(kPlaintextRefused, std::char_traits<char>::length(kPlaintextRefused) - 2), false},
    };
    return r;
}

// A RETR or TOP on its way out: read a chunk, encode it, send it, repeat while the client keeps
// up (bounded by output_watermark).
struct Transfer {
    std::uint32_t number = 0;
    bool top = false;
    MessageStream stream;
    std::uint64_t offset = 0;
    std::uint64_t sent = 0;
    bool reading = false;
    bool started = false;  // "+OK" sent
    bool relooked = false; // the file's current name was looked up once after a failed read
};

class Pop3Session final : public Session {
public:
    Pop3Session(SessionIo& io, std::shared_ptr<Services> services)
        : io_(io), services_(std::move(services)), info_(io.info()), s_(Settings::from(*info_.config)), guard_(io),
          framer_(s_.line_limit), sasl_(io, guard_, login_replies()) {}
    ~Pop3Session() override {
        guard_.end();
        unlock();
    }

    void on_start() override {
        // No APOP timestamp in the greeting: passwords are stored hashed, so APOP (which needs
        // the cleartext secret) cannot work and is not offered (RFC 1939 section 7).
        send(fmt::format("+OK {}\r\n", s_.greeting));
    }
    std::size_t on_input(std::string_view data) override;
    void on_tls_started() override {
        info_ = io_.info();
        // RFC 2595 section 4: the client discards what it knew; so do we (a USER given before).
        user_.clear();
        framer_.reset();
        unpark();
    }
    void on_output_written() override {
        if (transfer_ && !transfer_->reading) pump();
    }
    void on_refused(std::string_view) override { bye(protocols::Goodbye::TooManyConnections); }
    void on_timeout() override {
        // In the middle of a RETR nothing more may be said: it would be read as message text.
        if (transfer_) state_ = State::Closed;
        else bye(protocols::Goodbye::IdleTimeout);
    }
    void on_shutdown() override { bye(protocols::Goodbye::ShuttingDown); }
    bool busy() const override { return transfer_.has_value() || state_ == State::Update; }
    bool wants_input() const override { return !guard_.parked() && !transfer_ && state_ != State::Update; }
    std::string summary() const override;

    // Commands (RFC 1939 section 4-7, RFC 2449, RFC 2595, RFC 5034, RFC 6856).
    void cmd_capa(const std::string& a);
    void cmd_user(const std::string& a);
    void cmd_pass(const std::string& a);
    void cmd_apop(const std::string&) { bad("-ERR APOP is not available: use USER/PASS or AUTH"); }
    void cmd_auth(const std::string& a);
    void cmd_stls(const std::string& a);
    void cmd_utf8(const std::string& a);
    void cmd_quit(const std::string& a);
    void cmd_stat(const std::string& a);
    void cmd_list(const std::string& a) { listing(a, false); }
    void cmd_uidl(const std::string& a) { listing(a, true); }
    void cmd_retr(const std::string& a);
    void cmd_top(const std::string& a);
    void cmd_dele(const std::string& a);
    void cmd_rset(const std::string& a);
    void cmd_noop(const std::string& a);

private:
    enum class State { Authorization, Transaction, Update, Closed };

    static const protocols::CommandTable<Handler>& commands();
    void dispatch(std::string_view line);
    void send(std::string_view s) { io_.send(s); }
    // An error that counts towards pop3_max_bad_commands.
    void bad(std::string_view text);
    void bye(protocols::Goodbye why);
    void park() { guard_.park(); }
    void unpark() { guard_.unpark(); }
    bool tls_active() const { return info_.tls_active || io_.info().tls_active; }
    auth::ClientInfo auth_client() const;
    void logged_in(const auth::Result& r, const std::string& method);
    void opened(const std::string& method);
    void unlock();
    // The message a command names, or an -ERR sent (and nullptr) when it can't be used.
    DropMessage* message_arg(std::string_view arg);
    void listing(const std::string& args, bool uidl);
    void start_transfer(std::uint32_t n, std::optional<std::uint64_t> top_lines);
    void pump();
    void read_done(std::string bytes, std::string error);
    void relookup();
    void end_transfer();

    SessionIo& io_;
    std::shared_ptr<Services> services_;
    ConnectionInfo info_;
    Settings s_;
    protocols::AsyncGuard guard_;
    protocols::LineFramer framer_;
    protocols::SaslDriver sasl_;
    protocols::ErrorCounter bad_commands_;
    State state_ = State::Authorization;
    bool utf8_ = false;
    unsigned total_commands_ = 0;

    std::string user_;  // USER given, waiting for PASS
    std::shared_ptr<void> login_;  // a USER/PASS check in flight

    // TRANSACTION state.
    std::string account_, localpart_, domain_;
    bool locked_ = false;
    storage::ChangeBus::Subscription changes_;
    std::optional<Maildrop> drop_;
    std::optional<Transfer> transfer_;
    struct Counts {
        unsigned top = 0, retr = 0, dele = 0;
        std::uint64_t top_bytes = 0, retr_bytes = 0;
    } counts_;
};

const protocols::CommandTable<Handler>& Pop3Session::commands() {
    using namespace protocols;
    static const CommandTable<Handler> table = {
        {"CAPA", &Pop3Session::cmd_capa, kAnyLogin},
        {"USER", &Pop3Session::cmd_user, kBeforeLogin},
        {"PASS", &Pop3Session::cmd_pass, kBeforeLogin},
        {"APOP", &Pop3Session::cmd_apop, kBeforeLogin},
        {"AUTH", &Pop3Session::cmd_auth, kBeforeLogin},
        {"STLS", &Pop3Session::cmd_stls, kBeforeLogin},
        {"UTF8", &Pop3Session::cmd_utf8, kBeforeLogin},
        {"QUIT", &Pop3Session::cmd_quit, kAnyLogin},
        {"STAT", &Pop3Session::cmd_stat, kAfterLogin},
        {"LIST", &Pop3Session::cmd_list, kAfterLogin},
        {"UIDL", &Pop3Session::cmd_uidl, kAfterLogin},
        {"RETR", &Pop3Session::cmd_retr, kAfterLogin},
        {"TOP", &Pop3Session::cmd_top, kAfterLogin},
        {"DELE", &Pop3Session::cmd_dele, kAfterLogin},
        {"RSET", &Pop3Session::cmd_rset, kAfterLogin},
        {"NOOP", &Pop3Session::cmd_noop, kAfterLogin},
    };
    return table;
}

std::size_t Pop3Session::on_input(std::string_view data) {
    if (state_ == State::Closed) return data.size();
    if (guard_.parked() || transfer_ || state_ == State::Update) return 0;
    // RFC 1939 section 3: a command line is at most 512 octets with its CRLF (pop3_line_length_limit
    // allows more); a SASL response may be longer.
    framer_.set_limit(sasl_.active() ? protocols::kSaslLineLimit : s_.line_limit);
    auto item = framer_.next(data);
    using K = protocols::LineFramer::Item::Kind;
    if (item.kind == K::TooLong) bad("-ERR Line too long");
    else if (item.kind == K::Line) dispatch(item.data);
    return item.consumed;
}

void Pop3Session::dispatch(std::string_view line) {
    if (sasl_.active()) return sasl_.respond(line);
    ++total_commands_;
    auto cmd = parse_command(line);
    const protocols::CommandDef<Handler>* def = cmd ? commands().find(cmd->verb) : nullptr;
    if (!def) {
        bad("-ERR Unknown command");
        return;
    }
    protocols::CommandState st{.logged_in = state_ == State::Transaction};
    switch (protocols::check_command(def->flags, st)) {
    case protocols::Refusal::None: break;
    case protocols::Refusal::NotLoggedIn: return bad("-ERR Not logged in");
    default: return bad("-ERR Already logged in");
    }
    (this->*def->handler)(cmd->args);
}

void Pop3Session::bad(std::string_view text) {
    send(fmt::format("{}\r\n", text));
    if (bad_commands_.add(io_, s_.max_bad_commands)) {
        send("-ERR Too many bad commands, closing connection\r\n");
        log::line(log::Level::Warning, "pop3", info_.id, "too many bad commands from unknown[{}]", info_.peer_ip);
        io_.close();
        state_ = State::Closed;
    }
}

void Pop3Session::bye(protocols::Goodbye why) {
    // Without QUIT there is no UPDATE state: the marks are dropped (RFC 1939 section 6).
    send(goodbye(why, ""));
    state_ = State::Closed;
}

std::string Pop3Session::summary() const {
    std::string s;
    if (!account_.empty()) s = fmt::format("user=<{}> ", account_);
    return s + fmt::format("top={}/{} retr={}/{} del={} commands={}", counts_.top, counts_.top_bytes, counts_.retr,
                           counts_.retr_bytes, counts_.dele, total_commands_);
}

auth::ClientInfo Pop3Session::auth_client() const {
    auth::ClientInfo c;
    c.service = info_.listener;
    c.session_id = info_.id;
    c.ip = info_.peer_ip;
    c.tls = tls_active();
    return c;
}

// --- AUTHORIZATION ---

void Pop3Session::cmd_capa(const std::string&) {
    // RFC 2449 section 5: exactly what works now, in this state and on this connection.
    std::string out = "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
                      "EXPIRE NEVER\r\n";
    if (s_.login_delay.count() > 0)
        out += fmt::format("LOGIN-DELAY {}\r\n", std::chrono::duration_cast<std::chrono::seconds>(s_.login_delay).count());
    if (state_ == State::Authorization) {
        if (services_->auth && services_->auth->cleartext_allowed(auth_client())) out += "USER\r\n";
        if (services_->auth) {
            auto mechs = services_->auth->mechanisms(auth_client());
            if (!mechs.empty()) {
                out += "SASL";
                for (auto& m : mechs) out += " " + m;
                out += "\r\n";
            }
        }
        if (info_.tls_mode == config::TlsMode::StartTls && !tls_active()) out += "STLS\r\n";
        out += "UTF8\r\n";
    }
    out += "IMPLEMENTATION Pillarbox\r\n.\r\n";
    send(out);
}

void Pop3Session::cmd_user(const std::string& args) {
    if (!services_->auth) {
        send("-ERR [SYS/TEMP] Authentication is not available\r\n");
        return;
    }
    if (!services_->auth->cleartext_allowed(auth_client())) {
        send(kPlaintextRefused);
        return;
    }
    if (args.empty()) {
        bad("-ERR Usage: USER name");
        return;
    }
    user_ = args;
    send("+OK\r\n");
}

void Pop3Session::cmd_pass(const std::string& args) {
    if (user_.empty()) {
        bad("-ERR No username given: send USER first");
        return;
    }
    if (!services_->auth->cleartext_allowed(auth_client())) {
        send(kPlaintextRefused);
        return;
    }
    std::string user = std::exchange(user_, "");
    park();
    login_ = services_->auth->login(auth_client(), user, args, guard_.wrap([this](auth::Result r) {
        login_.reset();
        logged_in(r, "PLAIN");
    }));
}

void Pop3Session::cmd_auth(const std::string& args) {
    if (!services_->auth) {
        send("-ERR [SYS/TEMP] Authentication is not available\r\n");
        return;
    }
    auto space = args.find(' ');
    std::string mech = ascii_upper(args.substr(0, space));
    if (mech.empty()) {
        // Not in RFC 5034, but what Outlook and older clients send to learn the mechanisms.
        std::string out = "+OK\r\n";
        for (auto& m : services_->auth->mechanisms(auth_client())) out += m + "\r\n";
        send(out + ".\r\n");
        return;
    }
    if (auto o = services_->auth->offer(mech, auth_client()); o != auth::Authentication::Offer::Yes) {
        if (o == auth::Authentication::Offer::NeedsTls) send(kPlaintextRefused);
        else bad("-ERR Unsupported authentication mechanism");
        return;
    }
    std::optional<std::string> initial;
    if (space != std::string::npos) initial = args.substr(space + 1);  // RFC 5034 section 4: "=" is empty
    user_.clear();
    sasl_.start(services_->auth->begin(mech, auth_client()), std::move(initial),
                [this, mech](const auth::Result& r, const protocols::SaslReplies::Final*) { logged_in(r, mech); });
}

void Pop3Session::logged_in(const auth::Result& r, const std::string& method) {
    if (r.status != auth::Result::Status::Ok) {
        auto& reply = login_replies().for_status(r.status);
        if (reply.error) bad(reply.line);
        else send(reply.line + "\r\n");
        unpark();
        return;
    }
    auto id = storage::account_of(r.user);
    if (!id) {
        log::line(log::Level::Error, "pop3", info_.id, "account name <{}> has no usable domain; set auth_default_domain",
                  r.user);
        send("-ERR [SYS/PERM] This account has no mailbox here.\r\n");
        unpark();
        return;
    }
    if (s_.lock_session && services_->locked.count(r.user)) {
        // RFC 2449 section 8.1.1.
        log::line(log::Level::Info, "pop3", info_.id, "user=<{}> refused: mailbox in use by another POP3 session", r.user);
        send("-ERR [IN-USE] Mailbox is in use by another POP3 session, try again later.\r\n");
        unpark();
        return;
    }
    auto now = Clock::now();
    if (s_.login_delay.count() > 0) {
        auto& last = services_->last_login;
        auto it = last.find(r.user);
        if (it != last.end() && now - it->second < s_.login_delay) {
            // RFC 2449 section 8.1.2: logged in too soon after the last time.
            send("-ERR [LOGIN-DELAY] Logged in too recently, try again later.\r\n");
            unpark();
            return;
        }
        if (last.size() > 10000)
            std::erase_if(last, [&](auto& e) { return now - e.second >= s_.login_delay; });
        last[r.user] = now;
    }
    account_ = r.user;
    localpart_ = id->localpart;
    domain_ = id->domain;
    if (s_.lock_session) {
        services_->locked.insert(account_);
        locked_ = true;
    }
    // Changes made after the snapshot (another session's flag renames and expunges) reach the
    // maildrop; those published before it are already in it, so they are skipped.
    changes_ = services_->store->subscribe({localpart_, domain_}, "INBOX", [this](const storage::Change& c) {
        if (drop_) drop_->apply(c);
    });
    services_->store->snapshot(
        {localpart_, domain_}, "INBOX",
        guard_.wrap([this, method](storage::Outcome<storage::MailboxSnapshot> out) {
            if (!out.ok()) {
                log::line(log::Level::Error, "pop3", info_.id, "user=<{}>: cannot open INBOX: {}", account_, out.reason);
                send("-ERR [SYS/TEMP] Cannot open the mailbox, try again later.\r\n");
                changes_.reset();
                unlock();
                account_.clear();
                unpark();
                return;
            }
            drop_.emplace(std::move(out.value->mailbox), out.value->messages, s_.uidl_format);
            opened(method);
        }));
}

void Pop3Session::opened(const std::string& method) {
    state_ = State::Transaction;
    io_.set_authenticated();
    auto [count, octets] = drop_->stat();
    // Dovecot's login line, which log tools already parse.
    log::line(log::Level::Info, "pop3", info_.id, "Login: user=<{}>, method={}, rip={}, lip={}{}, messages={}", account_,
              method, info_.peer_ip, info_.local_ip, tls_active() ? ", TLS" : "", count);
    send(fmt::format("+OK Logged in, {} messages ({} octets).\r\n", count, octets));
    unpark();
}

void Pop3Session::unlock() {
    if (locked_) services_->locked.erase(account_);
    locked_ = false;
}

void Pop3Session::cmd_stls(const std::string& args) {
    if (!args.empty()) {
        bad("-ERR Usage: STLS");
        return;
    }
    if (tls_active()) {
        bad("-ERR TLS is already active");
        return;
    }
    if (info_.tls_mode != config::TlsMode::StartTls) {
        bad("-ERR STLS is not available on this port");
        return;
    }
    send("+OK Begin TLS negotiation now.\r\n");
    park();  // on_tls_started() resumes; pipelined plaintext is thrown away by the Connection
    io_.start_tls();
}

void Pop3Session::cmd_utf8(const std::string& args) {
    if (!args.empty()) {
        bad("-ERR Usage: UTF8");
        return;
    }
    // RFC 6856 section 2: user names, passwords and message headers may be UTF-8 from now on.
    // Messages are sent as stored, so nothing else changes.
    utf8_ = true;
    send("+OK UTF8 enabled\r\n");
}

void Pop3Session::cmd_quit(const std::string&) {
    if (state_ != State::Transaction) {
        send("+OK Logging out.\r\n");
        io_.close();
        state_ = State::Closed;
        return;
    }
    Maildrop::Update u = drop_->update();
    if (!s_.flag_updates) u.seen.clear();
    if (u.empty()) {
        send("+OK Logging out.\r\n");
        log::line(log::Level::Info, "pop3", info_.id, "Disconnected: Logged out user=<{}> top={}/{} retr={}/{} del=0",
                  account_, counts_.top, counts_.top_bytes, counts_.retr, counts_.retr_bytes);
        io_.close();
        state_ = State::Closed;
        unlock();
        return;
    }
    // RFC 1939 section 6: the UPDATE state. +OK only once the deletions are durable.
    state_ = State::Update;
    park();
    services_->store->commit_maildrop(
        {localpart_, domain_}, "INBOX", u,
        guard_.wrap([this, deleted = u.expunge.size()](storage::Outcome<std::string> out) {
            if (!out.ok()) {
                log::line(log::Level::Error, "pop3", info_.id, "user=<{}>: deleting {} messages failed: {}", account_,
                          deleted, out.reason);
                send("-ERR [SYS/TEMP] Some deleted messages were not removed, try again later.\r\n");
            } else {
                if (!out.value->empty())
                    log::line(log::Level::Warning, "pop3", info_.id, "user=<{}>: setting \\Seen failed: {}", account_,
                              *out.value);
                counts_.dele = static_cast<unsigned>(deleted);
                log::line(log::Level::Info, "pop3", info_.id,
                          "Disconnected: Logged out user=<{}> top={}/{} retr={}/{} del={}", account_, counts_.top,
                          counts_.top_bytes, counts_.retr, counts_.retr_bytes, deleted);
                send(deleted ? "+OK Logging out, messages deleted.\r\n" : "+OK Logging out.\r\n");
            }
            io_.close();
            state_ = State::Closed;
            unlock();
        }));
}

// --- TRANSACTION ---

DropMessage* Pop3Session::message_arg(std::string_view arg) {
    auto n = parse_number(arg);
    if (!n) {
        bad("-ERR Invalid message number");
        return nullptr;
    }
    if (*n == 0 || *n > drop_->size()) {
        send(fmt::format("-ERR There is no message {}.\r\n", *n));
        return nullptr;
    }
    DropMessage* m = drop_->get(*n);
    if (!m) {
        send(fmt::format("-ERR Message {} is deleted.\r\n", *n));
        return nullptr;
    }
    return m;
}

void Pop3Session::cmd_stat(const std::string&) {
    auto [count, octets] = drop_->stat();
    send(fmt::format("+OK {} {}\r\n", count, octets));
}

void Pop3Session::listing(const std::string& args, bool uidl) {
    auto a = split_args(args);
    if (a.size() > 1) {
        bad(uidl ? "-ERR Usage: UIDL [msg]" : "-ERR Usage: LIST [msg]");
        return;
    }
    if (a.size() == 1) {
        DropMessage* m = message_arg(a[0]);
        if (!m) return;
        send(uidl ? fmt::format("+OK {} {}\r\n", a[0], m->uidl) : fmt::format("+OK {} {}\r\n", a[0], m->size));
        return;
    }
    std::string out;
    if (uidl) {
        out = "+OK\r\n";
    } else {
        auto [count, octets] = drop_->stat();
        out = fmt::format("+OK {} messages ({} octets)\r\n", count, octets);
    }
    for (std::uint32_t n = 1; n <= drop_->size(); ++n)
        if (DropMessage* m = drop_->get(n)) out += uidl ? fmt::format("{} {}\r\n", n, m->uidl) : fmt::format("{} {}\r\n", n, m->size);
    send(out + ".\r\n");
}

void Pop3Session::cmd_retr(const std::string& args) {
    auto a = split_args(args);
    if (a.size() != 1) {
        bad("-ERR Usage: RETR msg");
        return;
    }
    if (!message_arg(a[0])) return;
    start_transfer(*parse_number(a[0]), std::nullopt);
}

void Pop3Session::cmd_top(const std::string& args) {
    auto a = split_args(args);
    if (a.size() != 2) {
        bad("-ERR Usage: TOP msg lines");
        return;
    }
    if (!message_arg(a[0])) return;
    auto lines = parse_number(a[1]);
    if (!lines) {
        bad("-ERR Invalid number of lines");
        return;
    }
    start_transfer(*parse_number(a[0]), *lines);
}

void Pop3Session::cmd_dele(const std::string& args) {
    auto a = split_args(args);
    if (a.size() != 1) {
        bad("-ERR Usage: DELE msg");
        return;
    }
    DropMessage* m = message_arg(a[0]);
    if (!m) return;
    drop_->mark_deleted(*m);
    send(fmt::format("+OK Message {} marked to be deleted.\r\n", a[0]));
}

void Pop3Session::cmd_rset(const std::string&) {
    drop_->reset();
    auto [count, octets] = drop_->stat();
    send(fmt::format("+OK {} messages ({} octets).\r\n", count, octets));
}

void Pop3Session::cmd_noop(const std::string&) { send("+OK\r\n"); }

// --- RETR / TOP streaming ---

void Pop3Session::start_transfer(std::uint32_t n, std::optional<std::uint64_t> top_lines) {
    DropMessage* m = drop_->get(n);
    if (m->expunged) {
        send(fmt::format("-ERR [SYS/PERM] Message {} was expunged by another session.\r\n", n));
        return;
    }
    transfer_.emplace();
    transfer_->number = n;
    transfer_->top = top_lines.has_value();
    transfer_->stream = MessageStream(top_lines);
    pump();
}

void Pop3Session::pump() {
    Transfer& t = *transfer_;
    if (t.reading || io_.output_queued() >= s_.output_watermark) return;
    t.reading = true;
    const DropMessage* m = drop_->get(t.number);
    services_->store->read({localpart_, domain_}, drop_->inbox(), m->file, t.offset, kReadChunk,
                           guard_.wrap([this](storage::Outcome<std::string> out) {
                               read_done(out.ok() ? std::move(*out.value) : "", std::move(out.reason));
                           }));
}

void Pop3Session::read_done(std::string bytes, std::string error) {
    Transfer& t = *transfer_;
    t.reading = false;
    if (state_ == State::Closed) {
        end_transfer();
        return;
    }
    if (!error.empty()) {
        if (!t.relooked) {
            // Another session may have renamed the file (a flag change) since the snapshot.
            relookup();
            return;
        }
        log::line(log::Level::Error, "pop3", info_.id, "user=<{}>: {}", account_, error);
        if (!t.started) {
            send(fmt::format("-ERR [SYS/TEMP] Message {} cannot be read now.\r\n", t.number));
        } else {
            // Part of the message is out: no reply can follow that the client would not take as
            // message text, so the connection ends (the client sees no final ".").
            io_.close();
            state_ = State::Closed;
        }
        end_transfer();
        return;
    }
    std::string out;
    if (!t.started) {
        t.started = true;
        DropMessage* m = drop_->get(t.number);
        out = t.top ? "+OK\r\n" : fmt::format("+OK {} octets\r\n", m->size);
    }
    bool eof = bytes.size() < kReadChunk;
    t.offset += bytes.size();
    t.stream.feed(bytes, out);
    if (eof || t.stream.done()) {
        t.stream.finish(out);
        t.sent += out.size();
        send(out);
        DropMessage* m = drop_->get(t.number);
        if (t.top) {
            ++counts_.top;
            counts_.top_bytes += t.sent;
        } else {
            ++counts_.retr;
            counts_.retr_bytes += t.sent;
            if (m) m->retrieved = true;
        }
        end_transfer();
        return;
    }
    t.sent += out.size();
    send(out);
    pump();
}

void Pop3Session::relookup() {
    Transfer& t = *transfer_;
    t.relooked = true;
    t.reading = true;
    std::uint32_t uid = drop_->get(t.number)->uid;
    services_->store->message(
        {localpart_, domain_}, "INBOX", uid,
        guard_.wrap([this](storage::Outcome<std::optional<storage::MessageInfo>> out) {
            Transfer& t = *transfer_;
            t.reading = false;
            DropMessage* m = drop_->get(t.number);
            if (out.ok() && *out.value && m) {
                m->file = (*out.value)->file;
                pump();
                return;
            }
            if (m && out.ok()) {
                m->expunged = true;
                if (!t.started) {
                    send(fmt::format("-ERR [SYS/PERM] Message {} was expunged by another session.\r\n", t.number));
                    end_transfer();
                    return;
                }
            }
            read_done("", out.ok() ? "the message was expunged by another session" : out.reason);
        }));
}

void Pop3Session::end_transfer() {
    transfer_.reset();
    io_.resume_input();  // commands pipelined behind the RETR
}

}  // namespace

std::unique_ptr<Session> make_session(SessionIo& io, std::shared_ptr<Services> services) {
    return std::make_unique<Pop3Session>(io, std::move(services));
}

}  // namespace pillarbox::pop3
