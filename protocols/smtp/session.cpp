// The SMTP session: command table, ESMTP state machine, AUTH, recipient policy and delivery.
#include "protocols/smtp/session.hpp"

#include <asio/ip/address.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <fmt/format.h>
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>

#include "auth/accounts.hpp"
#include "auth/authenticator.hpp"
#include "auth/recipients.hpp"
#include "auth/sasl/mechanism.hpp"
#include "protocols/common/service_replies.hpp"
#include "protocols/smtp/data_reader.hpp"
#include "protocols/smtp/delivery_outcome.hpp"
#include "protocols/smtp/headers.hpp"
#include "protocols/smtp/parser.hpp"
#include "protocols/smtp/policy/policy.hpp"
#include "protocols/smtp/registration.hpp"
#include "server/ascii.hpp"
#include "server/config.hpp"
#include "server/dns.hpp"
#include "server/log.hpp"
#include "server/networks.hpp"
#include "server/worker_pool.hpp"
#include "storage/queue/queue.hpp"
#include "storage/store.hpp"

namespace pillarbox::smtp {

namespace {

using Clock = std::chrono::steady_clock;

// Per-listener settings, read from the listener's effective configuration.
struct Settings {
    std::string hostname, banner;
    std::uint64_t message_size_limit = 10240000;
    std::size_t recipient_limit = 1000;
    std::size_t line_limit = 2048;
    std::size_t header_size_limit = 102400;
    std::chrono::milliseconds error_sleep{1000};
    unsigned soft_error_limit = 10, hard_error_limit = 20, junk_command_limit = 100;
    bool disable_vrfy = true;
    enum class Tls { None, May, Encrypt } tls = Tls::May;
    bool sasl_enabled = true;
    bool sasl_authenticated_header = false;
    BareLineEndings bare = BareLineEndings::Normalise;
    bool forbid_unauth_pipelining = true;
    std::chrono::milliseconds greet_pause{0};
    std::size_t body_buffer = 256 * 1024;  // delivery bytes in flight before reading pauses
    std::string recipient_delimiter;
    std::vector<config::Cidr> mynetworks;

    static Settings from(const config::Config& c) {
        Settings s;
        s.hostname = c.get("myhostname");
        s.banner = c.get("smtpd_banner");
        s.message_size_limit = c.get_size("message_size_limit");
        s.recipient_limit = c.get_count("smtpd_recipient_limit");
        s.line_limit = c.get_size("line_length_limit");
        s.header_size_limit = c.get_size("header_size_limit");
        s.error_sleep = c.get_time("smtpd_error_sleep_time");
        s.soft_error_limit = static_cast<unsigned>(c.get_count("smtpd_soft_error_limit"));
        s.hard_error_limit = static_cast<unsigned>(c.get_count("smtpd_hard_error_limit"));
        s.junk_command_limit = static_cast<unsigned>(c.get_count("smtpd_junk_command_limit"));
        s.disable_vrfy = c.get_bool("disable_vrfy_command");
        auto level = c.get("smtpd_tls_security_level");
        s.tls = level == "none" ? Tls::None : level == "encrypt" ? Tls::Encrypt : Tls::May;
        s.sasl_enabled = c.get_bool("smtpd_sasl_auth_enable");
        s.sasl_authenticated_header = c.get_bool("smtpd_sasl_authenticated_header");
        s.bare = c.get("smtpd_forbid_bare_newline") == "reject" ? BareLineEndings::Reject : BareLineEndings::Normalise;
        s.forbid_unauth_pipelining = c.get_bool("smtpd_forbid_unauth_pipelining");
        s.greet_pause = c.get_time("smtpd_greet_pause");
        s.recipient_delimiter = c.get("recipient_delimiter");
        s.mynetworks = c.get_cidrs("mynetworks");
        return s;
    }
};

// A Postfix-style queue id: 10 upper-case hex digits from time and randomness.
std::string new_queue_id() {
    std::uint8_t r[3];
    RAND_bytes(r, sizeof r);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return fmt::format("{:06X}{:02X}{:02X}", static_cast<unsigned>(us & 0xFFFFFF), r[0], r[1] ^ r[2]);
}

struct Reply {
    int code;
    std::string enhanced, text;
};

std::string reply_line(int code, std::string_view enhanced, std::string_view text) {
    return enhanced.empty() ? fmt::format("{} {}\r\n", code, text) : fmt::format("{} {} {}\r\n", code, enhanced, text);
}

// "503 5.5.1 text" (a stored reply line) back into its parts.
Reply split_reply(std::string_view line) {
    Reply r{0, "", std::string(line)};
    if (line.size() < 4 || line[3] != ' ') return r;
    for (char c : line.substr(0, 3)) r.code = r.code * 10 + (c - '0');
    std::string_view rest = line.substr(4);
    auto sp = rest.find(' ');
    if (sp != std::string_view::npos && sp >= 5 && (rest[0] == '4' || rest[0] == '5') && rest[1] == '.') {
        r.enhanced.assign(rest.substr(0, sp));
        rest.remove_prefix(sp + 1);
    }
    r.text.assign(rest);
    return r;
}

// A recipient accepted at RCPT.
struct Recipient {
    std::string address;                 // as given (domain lower-cased)
    RcptParams params;
    std::vector<std::string> accounts;   // local accounts it reaches
    std::vector<std::string> remote;     // remote addresses (relay, or aliases pointing out)
};

// The envelope of the current transaction (RFC 5321 3.3).
struct Transaction {
    std::string queue_id;
    Path sender;
    MailParams params;
    std::vector<Recipient> recipients;
    Clock::time_point started = Clock::now();
    std::optional<std::vector<std::string>> sender_owners;
    bool discard = false;  // an access table said DISCARD
    bool hold = false;     // an access table said HOLD: the message goes to the hold queue
};

class SmtpSession;

// Verbs and where they are allowed; one table, enforced in one place (DESIGN.md).
struct CommandDef {
    const char* verb;
    void (SmtpSession::*handler)(const std::string& args);
    bool junk;  // counts towards smtpd_junk_command_limit (NOOP, VRFY, RSET ...)
    bool last_in_group;  // RFC 2920 3.1: may only be last in a pipelined group
};

class SmtpSession final : public Session {
public:
    SmtpSession(SessionIo& io, std::shared_ptr<Services> services)
        : io_(io), services_(std::move(services)), info_(io.info()),
          settings_(info_.config->derived<Settings>([this] { return Settings::from(*info_.config); })), s_(*settings_),
          timer_(*services_->loop) {
        alive_ = std::make_shared<bool>(true);
        client_name_ = "unknown";
        mynetworks_ = in_networks(info_.peer_ip, s_.mynetworks);
    }
    ~SmtpSession() override {
        *alive_ = false;
        abort_delivery();
    }

    void on_start() override;
    void greet();
    // With a policy that has errors (a list that failed to parse, or no relay guard) the session
    // answers 421 and closes: a broken restriction list must never turn into an open relay.
    bool refuse_broken_policy();
    // At smtpd_hard_error_limit: 421 and the client goes, logged as Postfix does.
    void too_many_errors(std::string_view after);
    std::size_t on_input(std::string_view data) override;
    void on_tls_started() override;
    void on_refused(std::string_view) override { bye(protocols::Goodbye::TooManyConnections); }
    void on_timeout() override { bye(protocols::Goodbye::IdleTimeout); }
    void on_shutdown() override { bye(protocols::Goodbye::ShuttingDown); }
    bool busy() const override { return state_ == State::Data || state_ == State::Bdat || state_ == State::Committing; }
    // Before the greeting input is still read: that is how an early talker shows itself.
    bool wants_input() const override { return !paused_ && (!parked_ || !greeted_); }
    std::string summary() const override;

    // Command handlers.
    void cmd_ehlo(const std::string& a) { helo(a, true); }
    void cmd_helo(const std::string& a) { helo(a, false); }
    void cmd_mail(const std::string& a);
    void cmd_rcpt(const std::string& a);
    void cmd_data(const std::string& a);
    void cmd_bdat(const std::string& a);
    void cmd_rset(const std::string& a);
    void cmd_noop(const std::string&) { reply(250, "2.0.0", "Ok"); }
    void cmd_quit(const std::string&);
    void cmd_help(const std::string&) { reply(214, "2.0.0", "See https://www.rfc-editor.org/rfc/rfc5321"); }
    void cmd_vrfy(const std::string& a);
    void cmd_starttls(const std::string& a);
    void cmd_auth(const std::string& a);

private:
    enum class State { Command, Auth, Data, Bdat, Committing, Closed };

    static const std::vector<CommandDef>& commands();
    std::size_t on_command_input(std::string_view data);
    void dispatch(std::string_view line, bool more_buffered);
    void helo(const std::string& arg, bool esmtp);
    void reply(int code, std::string_view enhanced, std::string_view text);
    void reply_raw(std::string text);
    void error_reply(int code, std::string_view enhanced, std::string_view text);
    void bye(protocols::Goodbye why);
    void park() { parked_ = true; }
    void unpark();
    bool alive() const { return *alive_; }
    std::shared_ptr<bool> alive_token() const { return alive_; }
    std::string client() const { return fmt::format("{}[{}]", client_name_, info_.peer_ip); }
    std::shared_ptr<const auth::RecipientSettings> recipient_settings() const {
        return info_.config->derived<auth::RecipientSettings>([this] { return auth::RecipientSettings::from(*info_.config); });
    }
    bool tls_active() const { return info_.tls_active || io_.info().tls_active; }
    auth::ClientInfo auth_client() const;
    const policy::PolicySettings* policy() const { return policy_.get(); }
    policy::Context policy_context(std::string command) const;
    void log_decision(const policy::Decision& d);
    void reset_transaction();

    // RCPT steps.
    void rcpt_resolved(Path path, RcptParams params, auth::Resolution res, bool relay);
    void rcpt_accept(const Path& path, const RcptParams& params, const auth::Resolution& res, const policy::Decision& d);
    // An account of a recipient whose every mailbox the store knows to be full.
    struct KnownFull {
        std::string localpart, domain;
        storage::Usage usage;
    };
    // Every account of the recipient, when each one is known full; otherwise empty.
    std::vector<KnownFull> rcpt_mailboxes_full(const auth::Resolution& res) const;
    void rcpt_confirm_full(const Path& path, const RcptParams& params, const auth::Resolution& res, const policy::Decision& d,
                           std::vector<KnownFull> known);
    // AUTH.
    void auth_reply(auth::Exchange::Reply r);
    // DATA / BDAT.
    bool open_delivery();
    bool open_hold();
    storage::queue::Envelope envelope() const;
    void deliver_bytes(std::string_view bytes);
    std::size_t on_data_input(std::string_view data);
    std::size_t on_bdat_input(std::string_view data);
    void finish_message(std::optional<std::string> refusal);
    void committed();
    void queue_copies(DeliveryOutcome outcome);
    void answer_commit();
    void log_local_results(const std::vector<std::string>& copy_of);
    void abort_delivery();
    void check_backpressure();

    SessionIo& io_;
    std::shared_ptr<Services> services_;
    ConnectionInfo info_;
    std::shared_ptr<const Settings> settings_;  // the listener config's, shared by its sessions
    const Settings& s_;
    asio::steady_timer timer_;
    std::shared_ptr<bool> alive_;
    std::shared_ptr<const policy::PolicySettings> policy_;
    std::string client_name_;
    bool name_tempfail_ = false;
    bool mynetworks_ = false;

    State state_ = State::Command;
    bool parked_ = false;   // waiting for an async answer: input stays buffered
    bool grouped_replies_ = false;  // replies to the command being handled may wait (send_grouped)
    bool paused_ = false;   // delivery backpressure: don't read more
    bool skipping_long_line_ = false;
    bool greeted_ = false, early_talker_ = false, greet_paused_ = false;
    bool esmtp_ = false;
    std::optional<std::string> helo_name_;
    std::string sasl_user_, sasl_method_;
    std::unique_ptr<auth::Exchange> exchange_;
    std::optional<Transaction> tx_;
    unsigned errors_ = 0, junk_ = 0;
    std::map<std::string, unsigned> counts_;
    std::vector<std::string> count_order_;
    unsigned total_commands_ = 0;

    // The message in flight.
    std::unique_ptr<DataReader> data_reader_;
    std::unique_ptr<LineEndingChecker> bdat_checker_;
    std::unique_ptr<HeaderProcessor> headers_;
    std::unique_ptr<storage::DeliveryTarget> local_;
    std::unique_ptr<storage::queue::Writer> remote_;
    std::uint64_t message_size_ = 0;
    bool message_too_big_ = false;
    bool bdat_used_ = false, bdat_failed_ = false, bdat_last_ = false;
    std::uint64_t bdat_remaining_ = 0;
    int pending_commits_ = 0;
    std::optional<std::string> commit_error_;
    std::vector<std::string> delivery_log_;
    std::vector<std::string> local_accounts_;  // in add_recipient order, to read commit results
    std::vector<storage::RecipientResult> local_results_;  // the local commit's, same order
    bool remote_ok_ = false;      // the outbound (or hold) queue has its copy
    std::string remote_id_;       // its queue id, or why not
    std::string received_;        // our Received: line, written first into every copy
    bool held_ = false;           // remote_ writes the whole message to the hold queue
    bool hold_failed_ = false;    // HOLD from header_checks, but the hold queue can't be written
};

const std::vector<CommandDef>& SmtpSession::commands() {
    static const std::vector<CommandDef> table = {
        {"EHLO", &SmtpSession::cmd_ehlo, false, true},
        {"HELO", &SmtpSession::cmd_helo, false, true},
        {"MAIL", &SmtpSession::cmd_mail, false, false},
        {"RCPT", &SmtpSession::cmd_rcpt, false, false},
        {"DATA", &SmtpSession::cmd_data, false, true},
        {"BDAT", &SmtpSession::cmd_bdat, false, false},
        {"RSET", &SmtpSession::cmd_rset, true, false},
        {"NOOP", &SmtpSession::cmd_noop, true, true},
        {"QUIT", &SmtpSession::cmd_quit, false, false},
        {"HELP", &SmtpSession::cmd_help, true, false},
        {"VRFY", &SmtpSession::cmd_vrfy, true, true},
        {"STARTTLS", &SmtpSession::cmd_starttls, false, false},
        {"AUTH", &SmtpSession::cmd_auth, false, true},
    };
    return table;
}

void SmtpSession::on_start() {
    // Postfix's smtpd_peername_lookup: the client name is the PTR name only when that name's
    // A/AAAA records lead back to the address (forward-confirmed); otherwise "unknown".
    if (!is_loopback(info_.peer_ip) && services_->dns && info_.config->get_bool("smtpd_peername_lookup")) {
        auto rev = dns::reverse_name(info_.peer_ip);
        if (!rev.empty()) {
            park();
            bool v6 = info_.peer_ip.find(':') != std::string::npos;
            services_->dns->lookup(rev + (v6 ? ".ip6.arpa" : ".in-addr.arpa"), dns::Type::PTR,
                                   [this, token = alive_token(), v6](dns::Answer a) {
                                       if (!*token) return;
                                       if (a.status != dns::Answer::Status::Ok) {
                                           name_tempfail_ = a.status == dns::Answer::Status::TempFail;
                                           greet();
                                           return;
                                       }
                                       std::string name = a.records.front();
                                       services_->dns->lookup(name, v6 ? dns::Type::AAAA : dns::Type::A,
                                                              [this, token, name](dns::Answer f) {
                                                                  if (!*token) return;
                                                                  for (auto& ip : f.records)
                                                                      if (ip == info_.peer_ip) client_name_ = ascii_lower(name);
                                                                  if (client_name_ != "unknown") io_.set_peer_name(client_name_);
                                                                  name_tempfail_ = f.status == dns::Answer::Status::TempFail;
                                                                  greet();
                                                              });
                                   });
            return;
        }
    }
    greet();
}

bool SmtpSession::refuse_broken_policy() {
    if (policy_->errors.empty()) return false;
    reply(421, "4.3.5", fmt::format("{} Server configuration error", s_.hostname));
    io_.close();
    state_ = State::Closed;
    return true;
}

void SmtpSession::greet() {
    // Postfix's postscreen_greet_wait: waiting a moment before the greeting catches spambots
    // that talk first (they don't wait for 220).
    if (s_.greet_pause.count() > 0 && !greet_paused_) {
        greet_paused_ = true;
        if (!parked_) park();
        timer_.expires_after(s_.greet_pause);
        timer_.async_wait([this, token = alive_token()](std::error_code ec) {
            if (ec || !*token) return;
            greet();
        });
        return;
    }
    if (early_talker_ && s_.forbid_unauth_pipelining) {
        log::line(log::Level::Info, "smtpd", info_.id, "improper command pipelining after CONNECT from {}", client());
        reply(554, "5.5.0", "Error: improper command pipelining");
        io_.close();
        state_ = State::Closed;
        return;
    }
    struct PolicyKey {
        std::string key;
    };
    auto policy_key_of_config = info_.config->derived<PolicyKey>([this] { return PolicyKey{policy_key(*info_.config)}; });
    const std::string& key = policy_key_of_config->key;
    auto it = services_->policies.find(key);
    if (it != services_->policies.end()) {
        policy_ = it->second;
        if (refuse_broken_policy()) return;
        greeted_ = true;
        reply(220, "", s_.banner);
        if (parked_) unpark();
        return;
    }
    // First connection on this listener config: load restriction lists and tables on a worker.
    if (!parked_) park();
    const config::Config* cfg = info_.config;
    auto services = services_;
    services_->workers->run(
        [cfg] { return std::make_shared<const policy::PolicySettings>(policy::PolicySettings::from(*cfg)); },
        [this, token = alive_token(), services, key](std::shared_ptr<const policy::PolicySettings> p) {
            if (!p->errors.empty() || !p->warnings.empty()) {
                for (auto& e : p->errors) log::error("smtpd", "{}", e);
                for (auto& w : p->warnings) log::warning("smtpd", "{}", w);
            }
            services->policies.emplace(key, p);
            if (!*token) return;
            policy_ = p;
            if (refuse_broken_policy()) return;
            if (early_talker_ && s_.forbid_unauth_pipelining) {
                greet();  // refuses, now that the talker is known
                return;
            }
            greeted_ = true;
            reply(220, "", s_.banner);
            unpark();
        });
}

void SmtpSession::unpark() {
    parked_ = false;
    io_.resume_input();
}

void SmtpSession::bye(protocols::Goodbye why) {
    io_.send(goodbye(why, s_.hostname));
    state_ = State::Closed;
}

void SmtpSession::reply(int code, std::string_view enhanced, std::string_view text) {
    if (grouped_replies_) io_.send_grouped(reply_line(code, enhanced, text));
    else io_.send(reply_line(code, enhanced, text));
}

void SmtpSession::reply_raw(std::string text) { io_.send(text); }

// Errors count towards the soft limit (replies slow down) and the hard limit (disconnect),
// Postfix's smtpd_soft_error_limit / smtpd_hard_error_limit.
void SmtpSession::too_many_errors(std::string_view after) {
    reply(421, "4.7.0", fmt::format("{} Error: too many errors", s_.hostname));
    log::line(log::Level::Warning, "smtpd", info_.id, "too many errors after {} from {}", after, client());
    io_.close();
    state_ = State::Closed;
}

void SmtpSession::error_reply(int code, std::string_view enhanced, std::string_view text) {
    ++errors_;
    if (errors_ >= io_.error_limit(s_.hard_error_limit)) {
        reply(code, enhanced, text);
        too_many_errors(count_order_.empty() ? "CONNECT" : count_order_.back());
        return;
    }
    if (errors_ > s_.soft_error_limit && s_.error_sleep.count() > 0) {
        park();
        timer_.expires_after(s_.error_sleep);
        timer_.async_wait([this, token = alive_token(), line = reply_line(code, enhanced, text)](std::error_code ec) {
            if (ec || !*token) return;
            io_.send(line);
            unpark();
        });
        return;
    }
    reply(code, enhanced, text);
}

std::string SmtpSession::summary() const {
    std::string s;
    for (auto& v : count_order_) s += fmt::format("{}={} ", ascii_lower(v), counts_.at(v));
    s += fmt::format("commands={}", total_commands_);
    return s;
}

void SmtpSession::on_tls_started() {
    info_ = io_.info();
    // RFC 3207 section 4.2: after TLS the client starts over with EHLO; nothing learned before
    // survives.
    helo_name_.reset();
    esmtp_ = false;
    sasl_user_.clear();
    sasl_method_.clear();
    reset_transaction();
    unpark();
}

std::size_t SmtpSession::on_input(std::string_view data) {
    if (state_ == State::Closed) return data.size();  // after QUIT/421: ignore the rest
    // RFC 5321 4.3.1: the client waits for the greeting. One that talks first (while the name
    // lookup runs) is a spambot that doesn't read replies (Postfix: "improper command
    // pipelining after CONNECT").
    if (!greeted_ && !data.empty()) early_talker_ = true;
    if (parked_ || paused_) return 0;
    switch (state_) {
    case State::Data:
        return on_data_input(data);
    case State::Bdat:
        return on_bdat_input(data);
    case State::Committing:
        return 0;
    default:
        return on_command_input(data);
    }
}

std::size_t SmtpSession::on_command_input(std::string_view data) {
    auto nl = data.find('\n');
    std::size_t limit = state_ == State::Auth ? std::max<std::size_t>(s_.line_limit, 12288) : s_.line_limit;  // RFC 4954 4: 12288
    if (nl == std::string_view::npos) {
        if (data.size() <= limit) return 0;
        // RFC 5321 4.5.3.1.4: a command line is at most 512 octets; Postfix allows
        // line_length_limit. Longer: answer once and drop the rest of the line.
        if (!skipping_long_line_) {
            skipping_long_line_ = true;
            error_reply(500, "5.5.0", "Error: line too long");
        }
        return data.size();
    }
    std::string_view line = data.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (skipping_long_line_) {
        skipping_long_line_ = false;
        return nl + 1;
    }
    if (line.size() > limit) {
        error_reply(500, "5.5.0", "Error: line too long");
        return nl + 1;
    }
    dispatch(line, data.size() > nl + 1);
    return nl + 1;
}

void SmtpSession::dispatch(std::string_view line, bool more_buffered) {
    grouped_replies_ = false;
    if (state_ == State::Auth) {
        // Parked before asking: the answer may come at once (from inside respond()).
        park();
        auto token = alive_token();
        exchange_->respond(line, [this, token](auth::Exchange::Reply r) {
            if (*token) auth_reply(std::move(r));
        });
        return;
    }
    if (is_forbidden_command(line)) {
        log::line(log::Level::Warning, "smtpd", info_.id, "non-SMTP command from {}: {}", client(), line.substr(0, 100));
        reply(521, "5.7.0", "Error: I can break rules, too. Goodbye.");
        io_.close();
        state_ = State::Closed;
        return;
    }
    auto cmd = parse_command(line);
    const CommandDef* def = nullptr;
    if (cmd)
        for (auto& d : commands())
            if (cmd->verb == d.verb) def = &d;
    ++total_commands_;
    if (!def) {
        if (!counts_.count("unknown")) count_order_.push_back("unknown");
        ++counts_["unknown"];
        error_reply(502, "5.5.2", "Error: command not recognized");
        return;
    }
    if (!counts_.count(def->verb)) count_order_.push_back(def->verb);
    ++counts_[def->verb];
    // RFC 2920 section 3.2 (1): responses to RSET, MAIL and RCPT may wait for the rest of a
    // pipelined group and go out with it (DATA's 354, at the latest) in one segment.
    std::string_view verb(def->verb);
    grouped_replies_ = verb == "MAIL" || verb == "RCPT" || verb == "RSET";
    // Postfix's smtpd_forbid_unauth_pipelining: a client that sends commands ahead where RFC
    // 2920 (or, before EHLO, RFC 5321) doesn't allow it is a spambot or a smuggling attempt.
    if (s_.forbid_unauth_pipelining && more_buffered && (def->last_in_group || !esmtp_) &&
        std::string_view(def->verb) != "QUIT") {
        log::line(log::Level::Info, "smtpd", info_.id, "improper command pipelining after {} from {}", def->verb, client());
        reply(554, "5.5.0", "Error: improper command pipelining");
        io_.close();
        state_ = State::Closed;
        return;
    }
    if (def->junk && ++junk_ > s_.junk_command_limit && ++errors_ >= io_.error_limit(s_.hard_error_limit))
        return too_many_errors(def->verb);
    (this->*(def->handler))(cmd->args);
}

void SmtpSession::helo(const std::string& arg, bool esmtp) {
    std::string name(arg);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
    // Refused before anything changes: the previous HELO name and transaction stay as they were.
    if (auto bad = check_helo_name(name, esmtp)) {
        error_reply(bad->code, bad->enhanced, bad->text);
        return;
    }
    reset_transaction();
    helo_name_ = name;
    esmtp_ = esmtp;
    if (!esmtp) {
        reply(250, "", s_.hostname);
        return;
    }
    std::vector<std::string> lines{s_.hostname, "PIPELINING"};
    if (s_.message_size_limit) lines.push_back(fmt::format("SIZE {}", s_.message_size_limit));
    else lines.push_back("SIZE");
    if (!s_.disable_vrfy) lines.push_back("VRFY");
    if (!tls_active() && s_.tls != Settings::Tls::None && info_.tls_mode == config::TlsMode::StartTls) lines.push_back("STARTTLS");
    if (s_.sasl_enabled && services_->auth && (tls_active() || s_.tls != Settings::Tls::Encrypt)) {
        auto mechs = services_->auth->mechanisms(auth_client());
        if (!mechs.empty()) {
            std::string l = "AUTH";
            for (auto& m : mechs) l += " " + m;
            lines.push_back(l);
        }
    }
    lines.push_back("ENHANCEDSTATUSCODES");
    lines.push_back("8BITMIME");
    lines.push_back("DSN");
    lines.push_back("SMTPUTF8");
    lines.push_back("CHUNKING");
    if (tls_active()) lines.push_back("REQUIRETLS");
    std::string out;
    for (std::size_t i = 0; i < lines.size(); ++i) out += fmt::format("250{}{}\r\n", i + 1 == lines.size() ? ' ' : '-', lines[i]);
    reply_raw(std::move(out));
}

auth::ClientInfo SmtpSession::auth_client() const {
    auth::ClientInfo c;
    c.service = info_.listener;
    c.session_id = info_.id;
    c.ip = info_.peer_ip;
    c.host = client_name_;
    c.tls = tls_active();
    return c;
}

void SmtpSession::reset_transaction() {
    abort_delivery();
    tx_.reset();
    bdat_used_ = bdat_failed_ = false;
}

void SmtpSession::cmd_rset(const std::string&) {
    reset_transaction();
    reply(250, "2.0.0", "Ok");
}

void SmtpSession::cmd_quit(const std::string&) {
    reply(221, "2.0.0", "Bye");
    io_.close();
    state_ = State::Closed;
}

void SmtpSession::cmd_vrfy(const std::string&) {
    if (s_.disable_vrfy) {
        error_reply(502, "5.5.1", "VRFY command is disabled");
        return;
    }
    // RFC 5321 3.5.3: 252 when we won't say whether the user exists.
    reply(252, "2.0.0", "Send mail, we will try our best");
}

void SmtpSession::cmd_starttls(const std::string& args) {
    if (!args.empty()) {
        error_reply(501, "5.5.4", "Syntax: STARTTLS");
        return;
    }
    if (tls_active()) {
        error_reply(554, "5.5.1", "Error: TLS already active");
        return;
    }
    if (info_.tls_mode != config::TlsMode::StartTls || s_.tls == Settings::Tls::None) {
        error_reply(502, "5.5.1", "Error: command not implemented");
        return;
    }
    reply(220, "2.0.0", "Ready to start TLS");
    park();  // on_tls_started() resumes; pipelined plaintext is thrown away by the Connection
    io_.start_tls();
}

// --- AUTH (RFC 4954) ---

void SmtpSession::cmd_auth(const std::string& args) {
    if (!s_.sasl_enabled || !services_->auth || !esmtp_) {
        error_reply(503, "5.5.1", "Error: authentication not enabled");
        return;
    }
    if (!sasl_user_.empty()) {
        error_reply(503, "5.5.1", "Error: already authenticated");
        return;
    }
    if (tx_) {
        error_reply(503, "5.5.1", "Error: MAIL transaction in progress");
        return;
    }
    if (s_.tls == Settings::Tls::Encrypt && !tls_active()) {
        error_reply(530, "5.7.0", "Must issue a STARTTLS command first");
        return;
    }
    auto space = args.find(' ');
    std::string mech = ascii_upper(args.substr(0, space));
    std::optional<std::string> initial;
    if (space != std::string::npos) initial = args.substr(space + 1);
    if (mech.empty()) {
        error_reply(501, "5.5.4", "Syntax: AUTH mechanism");
        return;
    }
    if (auto o = services_->auth->offer(mech, auth_client()); o != auth::Authenticator::Offer::Yes) {
        if (o == auth::Authenticator::Offer::NeedsTls)
            error_reply(538, "5.7.11", "Encryption required for requested authentication mechanism");
        else
            error_reply(504, "5.5.4", "Unsupported authentication mechanism");
        return;
    }
    sasl_method_ = mech;
    exchange_ = services_->auth->begin(mech, auth_client());
    state_ = State::Auth;
    park();
    auto token = alive_token();
    exchange_->start(initial, [this, token](auth::Exchange::Reply r) {
        if (*token) auth_reply(std::move(r));
    });
}

void SmtpSession::auth_reply(auth::Exchange::Reply r) {
    if (!r.done) {
        reply_raw(fmt::format("334 {}\r\n", r.challenge));
        unpark();
        return;
    }
    state_ = State::Command;
    exchange_.reset();
    using St = auth::Result::Status;
    switch (r.result.status) {
    case St::Ok:
        sasl_user_ = r.result.user;
        io_.set_authenticated();
        reply(235, "2.7.0", "Authentication successful");
        break;
    case St::Failed:
        error_reply(535, "5.7.8", "Error: authentication failed: authentication failure");
        break;
    case St::TempFail:
        error_reply(454, "4.7.0", "Temporary authentication failure");
        break;
    case St::Aborted:
        error_reply(501, "5.7.0", "Authentication aborted");
        break;
    case St::Malformed:
        error_reply(501, "5.5.2", "Error: cannot decode response");
        break;
    case St::Refused:
        error_reply(538, "5.7.11", "Encryption required for requested authentication mechanism");
        break;
    }
    unpark();
}

// --- MAIL / RCPT ---

policy::Context SmtpSession::policy_context(std::string command) const {
    policy::Context c;
    c.command = std::move(command);
    c.protocol = esmtp_ ? "ESMTP" : "SMTP";
    c.client_address = info_.peer_ip;
    c.client_name = client_name_;
    c.client_name_tempfail = name_tempfail_;
    c.helo = helo_name_;
    if (tx_) {
        c.sender = tx_->sender.null ? std::string() : tx_->sender.address();
        c.sender_owners = tx_->sender_owners;
    }
    c.client_in_mynetworks = mynetworks_;
    c.sasl_authenticated = !sasl_user_.empty();
    c.sasl_username = sasl_user_;
    return c;
}

void SmtpSession::log_decision(const policy::Decision& d) {
    for (auto& l : d.log) log::line(log::Level::Info, "smtpd", tx_ ? tx_->queue_id : info_.id, "{}", l);
    for (auto& w : d.warnings) log::line(log::Level::Warning, "smtpd", info_.id, "{}", w);
}

MailExtensions extensions_for(bool esmtp, bool tls, bool auth) {
    MailExtensions e;
    if (!esmtp) {
        e.size = e.eightbitmime = e.smtputf8 = e.dsn = e.requiretls = e.auth = false;
        return e;
    }
    e.requiretls = tls;
    e.auth = auth;
    return e;
}

void SmtpSession::cmd_mail(const std::string& args) {
    if (!helo_name_ && policy() && policy()->helo_required) {
        error_reply(503, "5.5.1", "Error: send HELO/EHLO first");
        return;
    }
    if (s_.tls == Settings::Tls::Encrypt && !tls_active()) {
        error_reply(530, "5.7.0", "Must issue a STARTTLS command first");
        return;
    }
    if (tx_) {
        error_reply(503, "5.5.1", "Error: nested MAIL command");
        return;
    }
    auto parsed = parse_mail_from(args, esmtp_);
    if (!parsed.path) {
        error_reply(parsed.error.code, parsed.error.enhanced, parsed.error.text);
        return;
    }
    std::string perr;
    auto params = parse_params(parsed.rest, perr, esmtp_);
    if (!params) {
        error_reply(501, "5.5.4", fmt::format("Bad MAIL parameter syntax: {}", perr));
        return;
    }
    auto v = validate_mail_params(*params, extensions_for(esmtp_, tls_active(), s_.sasl_enabled));
    if (auto* e = std::get_if<ParamError>(&v)) {
        error_reply(e->code, e->enhanced, e->text);
        return;
    }
    auto mp = std::get<MailParams>(v);
    if (mp.size && s_.message_size_limit && *mp.size > s_.message_size_limit) {
        error_reply(552, "5.3.4", "Message size exceeds fixed limit");
        return;
    }
    // RFC 6531 3.4: a UTF-8 envelope needs the SMTPUTF8 parameter.
    auto non_ascii = [](const std::string& s) { return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x80; }); };
    if (!mp.smtputf8 && (non_ascii(parsed.path->local) || non_ascii(parsed.path->domain))) {
        error_reply(553, "5.6.7", "Error: the SMTPUTF8 parameter is required for this address");
        return;
    }
    Transaction t;
    t.queue_id = new_queue_id();
    t.sender = *parsed.path;
    t.sender.domain = ascii_lower(t.sender.domain);
    t.params = mp;
    tx_ = std::move(t);
    log::line(log::Level::Info, "smtpd", tx_->queue_id, "client={}{}", client(),
              sasl_user_.empty() ? std::string() : fmt::format(", sasl_method={}, sasl_username={}", sasl_method_, sasl_user_));
    if (tx_->sender.null || !policy() || !policy()->uses_sender_login_maps()) {
        reply(250, "2.1.0", "Ok");
        return;
    }
    // Which logins own this sender address (reject_sender_login_mismatch): the account itself,
    // the accounts its aliases reach (not catch-alls), and smtpd_sender_login_maps.
    park();
    auto db = services_->accounts;
    auto rs = recipient_settings();
    auto pol = policy_;
    std::string sender = tx_->sender.address();
    services_->workers->run(
        [db, rs, pol, sender]() -> std::optional<std::vector<std::string>> {
            std::vector<std::string> owners = pol->sender_login_owners(sender);
            if (!db) return owners;
            try {
                auth::RecipientResolver r(*db, *rs);
                for (auto& a : r.sender_owners(sender))
                    if (std::find(owners.begin(), owners.end(), a) == owners.end()) owners.push_back(a);
            } catch (const std::exception&) {
                return std::nullopt;  // the database failed: neither accept nor refuse for good
            }
            return owners;
        },
        [this, token = alive_token()](std::optional<std::vector<std::string>> owners) {
            if (!*token) return;
            if (!owners) {
                if (tx_) reply(451, "4.3.0", fmt::format("<{}>: Sender address rejected: Temporary lookup failure", tx_->sender.address()));
                reset_transaction();
            } else {
                if (tx_) tx_->sender_owners = std::move(*owners);
                reply(250, "2.1.0", "Ok");
            }
            unpark();
        });
}

void SmtpSession::cmd_rcpt(const std::string& args) {
    if (!tx_) {
        error_reply(503, "5.5.1", "Error: need MAIL command");
        return;
    }
    if (tx_->recipients.size() >= s_.recipient_limit) {
        // RFC 5321 4.5.3.1.10: 452 so the client sends the rest in another transaction.
        reply(452, "4.5.3", "Error: too many recipients");
        return;
    }
    auto parsed = parse_rcpt_to(args, tx_->params.smtputf8);
    if (!parsed.path) {
        error_reply(parsed.error.code, parsed.error.enhanced, parsed.error.text);
        return;
    }
    std::string perr;
    auto params = parse_params(parsed.rest, perr, tx_->params.smtputf8);
    if (!params) {
        error_reply(501, "5.5.4", fmt::format("Bad RCPT parameter syntax: {}", perr));
        return;
    }
    auto v = validate_rcpt_params(*params, extensions_for(esmtp_, tls_active(), s_.sasl_enabled));
    if (auto* e = std::get_if<ParamError>(&v)) {
        error_reply(e->code, e->enhanced, e->text);
        return;
    }
    Path path = *parsed.path;
    // RFC 5321 4.1.1.3: <postmaster> without a domain is this host's postmaster.
    if (path.domain.empty()) path.domain = s_.hostname;
    path.domain = ascii_lower(path.domain);
    park();
    auto db = services_->accounts;
    auto rs = recipient_settings();
    std::string address = path.address();
    services_->workers->run(
        [db, rs, address] {
            auth::Resolution res;
            if (!db) return res;
            try {
                auth::RecipientResolver r(*db, *rs);
                res = r.resolve(address);
            } catch (const std::exception& e) {
                res.status = auth::Resolution::Status::Loop;
                res.detail = std::string("temporary lookup failure: ") + e.what();
                res.accounts.clear();
                res.remote = {"\x01tempfail"};
            }
            return res;
        },
        [this, token = alive_token(), path, rp = std::get<RcptParams>(v)](auth::Resolution res) {
            if (!*token) return;
            rcpt_resolved(path, rp, std::move(res), false);
        });
}

void SmtpSession::rcpt_resolved(Path path, RcptParams params, auth::Resolution res, bool) {
    using St = auth::Resolution::Status;
    if (!res.remote.empty() && res.remote.front() == "\x01tempfail") {
        log::line(log::Level::Warning, "smtpd", tx_->queue_id, "{}: {}", path.address(), res.detail);
        reply(451, "4.3.0", fmt::format("<{}>: Temporary lookup failure", path.address()));
        unpark();
        return;
    }
    auto ctx = policy_context("RCPT");
    ctx.recipient = path.address();
    ctx.recipient_local = res.status != St::NotLocal;
    ctx.recipient_known = ctx.recipient_local ? std::optional<bool>(res.status == St::Local) : std::nullopt;
    // Local-part routing tricks (RFC 5321 3.6.1, "percent hack", bang paths, quoted "u@x"):
    // the relay restrictions refuse them for untrusted clients as Postfix does
    // (allow_untrusted_routing = no), and for a local domain they name no account anyway.
    auto engine = std::make_shared<policy::PolicyEngine>(*policy_);
    auto policy_keep = policy_;
    engine->check_rcpt(ctx, services_->dns,
                       [this, token = alive_token(), engine, policy_keep, path, params, res](policy::Decision d) {
                           if (!*token) return;
                           if (!tx_) {
                               unpark();
                               return;
                           }
                           log_decision(d);
                           std::string addr = path.address();
                           if (d.rejected()) {
                               error_reply(d.code, d.enhanced, d.text);
                               unpark();
                               return;
                           }
                           if (res.status == St::Unknown) {
                               log::line(log::Level::Info, "smtpd", tx_->queue_id,
                                         "reject: RCPT from {}: 550 5.1.1 <{}>: Recipient address rejected: User unknown; from=<{}> to=<{}> proto={} helo=<{}>",
                                         client(), addr, tx_->sender.address(), addr, esmtp_ ? "ESMTP" : "SMTP", helo_name_.value_or(""));
                               error_reply(550, "5.1.1", fmt::format("<{}>: Recipient address rejected: User unknown", addr));
                               unpark();
                               return;
                           }
                           if (res.status == St::Loop) {
                               log::line(log::Level::Warning, "smtpd", tx_->queue_id, "<{}>: {}", addr, res.detail);
                               error_reply(554, "5.4.6", fmt::format("<{}>: Recipient address rejected: mail forwarding loop", addr));
                               unpark();
                               return;
                           }
                           if (res.status == St::Local)
                               if (auto full = rcpt_mailboxes_full(res); !full.empty())
                                   return rcpt_confirm_full(path, params, res, d, std::move(full));
                           rcpt_accept(path, params, res, d);
                       });
}

void SmtpSession::rcpt_accept(const Path& path, const RcptParams& params, const auth::Resolution& res, const policy::Decision& d) {
    // Postfix: DISCARD accepts the whole message and then throws it away.
    if (d.discard) tx_->discard = true;
    if (d.hold) tx_->hold = true;
    Recipient r;
    r.address = path.address();
    r.params = params;
    if (res.status == auth::Resolution::Status::Local) {
        r.accounts = res.accounts;
        r.remote = res.remote;
    } else {
        r.remote = {r.address};
    }
    tx_->recipients.push_back(std::move(r));
    reply(250, "2.1.5", "Ok");
    unpark();
}

// The quota at RCPT, as Dovecot's LMTP checks it: a recipient whose every mailbox is full (for
// SIZE= when the client declared it) is refused now, before the client sends the message, so
// most over-quota mail never needs a hold copy. Only what the store knows in memory (the usage
// its last delivery to the account computed, see Store::known_usage): no disk and no worker job
// for the common case. An alias with an account that has room, or a remote target, is accepted:
// delivery sorts out who gets it.
std::vector<SmtpSession::KnownFull> SmtpSession::rcpt_mailboxes_full(const auth::Resolution& res) const {
    std::vector<KnownFull> full;
    if (!services_->store || res.accounts.empty() || !res.remote.empty()) return full;
    std::uint64_t size = tx_->params.size.value_or(0);
    for (auto& a : res.accounts) {
        auto at = a.rfind('@');
        KnownFull k{a.substr(0, at), a.substr(at + 1), {}};
        auto known = services_->store->known_usage(k.localpart, k.domain);
        if (!known || !storage::quota_full(known->usage, known->quota, size)) return {};
        k.usage = known->usage;
        full.push_back(std::move(k));
    }
    return full;
}

// The known usage says full; the limits may have been raised since (pillarbox user set): ask
// for them now (the account database: a worker job, only in this rare case) before refusing.
void SmtpSession::rcpt_confirm_full(const Path& path, const RcptParams& params, const auth::Resolution& res, const policy::Decision& d,
                                    std::vector<KnownFull> known) {
    auto* store = services_->store;
    std::uint64_t size = tx_->params.size.value_or(0);
    services_->workers->run(
        [store, known = std::move(known), size] {
            try {
                for (auto& k : known)
                    if (!storage::quota_full(k.usage, store->quota_of(k.localpart, k.domain), size)) return false;
                return true;
            } catch (const std::exception&) {
                return false;  // not sure: accept, delivery decides
            }
        },
        [this, token = alive_token(), path, params, res, d](bool full) {
            if (!*token) return;
            if (!tx_) return unpark();
            if (!full) return rcpt_accept(path, params, res, d);
            std::string addr = path.address();
            bool temp = services_->store->settings().quota_full_tempfail;
            int code = temp ? 452 : 552;
            const char* enhanced = temp ? "4.2.2" : "5.2.2";
            log::line(log::Level::Info, "smtpd", tx_->queue_id, "reject: RCPT from {}: {} {} <{}>: Mailbox is full; from=<{}> to=<{}> proto={} helo=<{}>",
                      client(), code, enhanced, addr, tx_->sender.address(), addr, esmtp_ ? "ESMTP" : "SMTP", helo_name_.value_or(""));
            error_reply(code, enhanced, fmt::format("<{}> Mailbox is full", addr));
            unpark();
        });
}

// --- DATA / BDAT ---

bool SmtpSession::open_delivery() {
    message_size_ = 0;
    message_too_big_ = false;
    commit_error_.reset();
    delivery_log_.clear();
    std::set<std::string> accounts;
    std::vector<std::string> remote;
    for (auto& r : tx_->recipients) {
        accounts.insert(r.accounts.begin(), r.accounts.end());
        for (auto& x : r.remote)
            if (std::find(remote.begin(), remote.end(), x) == remote.end()) remote.push_back(x);
    }
    local_accounts_.assign(accounts.begin(), accounts.end());
    held_ = hold_failed_ = false;
    if (tx_->hold) {
        // An access table said HOLD: nothing is delivered, the message waits in the hold queue.
        if (!open_hold()) return false;
    } else if (!accounts.empty()) {
        if (!services_->store) return false;
        local_ = services_->store->delivery();
        local_->start(tx_->sender.null ? std::string() : tx_->sender.address(), true);
        for (auto& a : local_accounts_) {
            auto at = a.rfind('@');
            local_->add_recipient(a.substr(0, at), a.substr(at + 1), a);
        }
    }
    if (!remote.empty() && !tx_->hold) {
        if (!services_->queue) return false;
        remote_ = services_->queue->writer();
        auto env = envelope();
        for (auto& r : tx_->recipients)
            for (auto& x : r.remote) {
                storage::queue::Recipient qr;
                qr.address = x;
                qr.notify = r.params.notify;
                qr.orcpt = r.params.orcpt.empty() ? std::string() : r.params.orcpt_type + ";" + r.params.orcpt;
                env.recipients.push_back(qr);
            }
        remote_->start(std::move(env));
    }
    HeaderProcessor::Options ho;
    ho.header_size_limit = s_.header_size_limit;
    ho.checks = &policy_->header_checks;
    ho.add_missing = !sasl_user_.empty() || mynetworks_;
    ho.message_id = fmt::format("<{}.{}@{}>", tx_->queue_id,
                                std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count(),
                                s_.hostname);
    ho.date = rfc5322_date();
    ho.context = policy_context("END-OF-MESSAGE");
    if (tx_->recipients.size() == 1) ho.context.recipient = tx_->recipients.front().address;
    headers_ = std::make_unique<HeaderProcessor>(std::move(ho));
    ReceivedInfo ri;
    ri.helo = helo_name_.value_or("");
    ri.client_name = client_name_;
    ri.client_ip = info_.peer_ip;
    if (tls_active()) {
        ri.tls_version = io_.info().tls_version;
        ri.tls_cipher = io_.info().tls_cipher;
    }
    if (s_.sasl_authenticated_header) ri.authenticated_user = sasl_user_;
    ri.hostname = s_.hostname;
    ri.protocol = received_protocol(esmtp_, tls_active(), !sasl_user_.empty(), tx_->params.smtputf8);
    ri.queue_id = tx_->queue_id;
    if (tx_->recipients.size() == 1) ri.for_recipient = tx_->recipients.front().address;
    received_ = received_header(ri);
    deliver_bytes(received_);
    return true;
}

// The transaction's envelope without recipients, for the queue.
storage::queue::Envelope SmtpSession::envelope() const {
    storage::queue::Envelope env;
    env.sender = tx_->sender.null ? std::string() : tx_->sender.address();
    env.ret = tx_->params.ret;
    env.envid = tx_->params.envid;
    env.smtputf8 = tx_->params.smtputf8;
    env.eightbit = tx_->params.body != MailParams::Body::SevenBit;
    env.requiretls = tx_->params.requiretls;
    env.client_ip = info_.peer_ip;
    env.helo = helo_name_.value_or("");
    env.sasl_user = sasl_user_;
    return env;
}

// Postfix's hold queue: the whole message, with every recipient as the client gave it, goes to
// the queue's hold/ and nothing is delivered. Released (pillarbox queue release), it is routed
// again from scratch, as Postfix's qmgr resolves a released message's recipients again.
bool SmtpSession::open_hold() {
    if (!services_->queue) return false;
    remote_ = services_->queue->writer(storage::queue::Place::Hold);
    auto env = envelope();
    for (auto& r : tx_->recipients) {
        storage::queue::Recipient qr;
        qr.address = r.address;
        qr.notify = r.params.notify;
        qr.orcpt = r.params.orcpt.empty() ? std::string() : r.params.orcpt_type + ";" + r.params.orcpt;
        env.recipients.push_back(qr);
    }
    remote_->start(std::move(env));
    held_ = true;
    return true;
}

void SmtpSession::deliver_bytes(std::string_view bytes) {
    if (bytes.empty()) return;
    if (!held_ && !hold_failed_ && headers_ && headers_->hold() && tx_) {
        // header_checks said HOLD. The header section is held until all of it was checked, so
        // only our Received: line went out so far: start over into the hold queue.
        if (local_) local_->abort();
        if (remote_) remote_->abort();
        local_.reset();
        remote_.reset();
        if (open_hold()) deliver_bytes(received_);
        else hold_failed_ = true;
    }
    if (hold_failed_) return;
    if (local_) local_->body(bytes);
    if (remote_) remote_->body(bytes);
}

void SmtpSession::check_backpressure() {
    std::size_t pending = (local_ ? local_->buffered() : 0) + (remote_ ? remote_->buffered() : 0);
    if (pending <= s_.body_buffer) return;
    paused_ = true;
    auto waiting = std::make_shared<int>((local_ ? 1 : 0) + (remote_ ? 1 : 0));
    auto resume = [this, token = alive_token(), waiting] {
        if (!*token || --*waiting > 0) return;
        paused_ = false;
        io_.resume_input();
    };
    if (local_) local_->on_drained(resume);
    if (remote_) remote_->on_drained(resume);
}

void SmtpSession::cmd_data(const std::string& args) {
    if (!args.empty()) {
        error_reply(501, "5.5.4", "Syntax: DATA");
        return;
    }
    if (!tx_) {
        error_reply(503, "5.5.1", "Error: need RCPT command");
        return;
    }
    if (bdat_used_) {
        error_reply(503, "5.5.1", "Error: DATA after BDAT");
        return;
    }
    if (tx_->recipients.empty()) {
        error_reply(554, "5.5.1", "Error: no valid recipients");
        return;
    }
    if (!open_delivery()) {
        reply(451, "4.3.0", "Error: queue file write error");
        reset_transaction();
        return;
    }
    DataLimits lim;
    lim.max_size = s_.message_size_limit;
    data_reader_ = std::make_unique<DataReader>(lim, s_.bare);
    state_ = State::Data;
    reply(354, "", "End data with <CR><LF>.<CR><LF>");
}

std::size_t SmtpSession::on_data_input(std::string_view data) {
    auto r = data_reader_->feed(data);
    if (!r.body.empty() && !data_reader_->too_big()) deliver_bytes(headers_->feed(r.body));
    if (r.done) {
        std::optional<std::string> refusal;
        message_size_ = data_reader_->size();
        if (data_reader_->too_big()) refusal = "552 5.3.4 Error: message file too big";
        else if (data_reader_->bare_line_ending() && s_.bare == BareLineEndings::Reject)
            refusal = bare_line_ending_reply(s_.hostname);
        data_reader_.reset();
        finish_message(refusal);
    } else {
        check_backpressure();
    }
    return r.consumed;
}

void SmtpSession::cmd_bdat(const std::string& args) {
    // RFC 3030 2: "BDAT" SP chunk-size [ SP end-marker ]; the chunk follows at once.
    std::string size_text = args.substr(0, args.find(' '));
    std::string rest = args.size() > size_text.size() ? args.substr(size_text.size() + 1) : std::string();
    bool ok = !size_text.empty() && size_text.size() <= 18 && std::all_of(size_text.begin(), size_text.end(), [](char c) { return c >= '0' && c <= '9'; });
    bool last = ascii_iequals(rest, "LAST");
    if (!ok || (!rest.empty() && !last)) {
        // Without a valid size we can't know where the chunk ends: the connection can't go on.
        reply(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
        io_.close();
        state_ = State::Closed;
        return;
    }
    bdat_remaining_ = std::stoull(size_text);
    bdat_last_ = last;
    state_ = State::Bdat;
    if (!tx_ || tx_->recipients.empty() || bdat_failed_) {
        // The chunk is read and thrown away, then refused (RFC 3030 2).
        bdat_failed_ = true;
        if (!tx_) commit_error_ = "503 5.5.1 Error: need RCPT command";
        else if (tx_->recipients.empty()) commit_error_ = "554 5.5.1 Error: no valid recipients";
        else commit_error_ = "503 5.5.1 Error: previous BDAT failed";
        if (bdat_remaining_ == 0) on_bdat_input({});
        return;
    }
    if (!bdat_used_) {
        bdat_used_ = true;
        if (!open_delivery()) {
            bdat_failed_ = true;
            commit_error_ = "451 4.3.0 Error: queue file write error";
        } else {
            bdat_checker_ = std::make_unique<LineEndingChecker>(s_.bare);
        }
    }
    if (bdat_remaining_ == 0) on_bdat_input({});
}

std::size_t SmtpSession::on_bdat_input(std::string_view data) {
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(bdat_remaining_, data.size()));
    auto chunk = data.substr(0, take);
    bdat_remaining_ -= take;
    if (!bdat_failed_) {
        message_size_ += take;
        if (s_.message_size_limit && message_size_ > s_.message_size_limit) message_too_big_ = true;
        if (!message_too_big_) deliver_bytes(headers_->feed(bdat_checker_->feed(chunk)));
    }
    if (bdat_remaining_ > 0) {
        if (!bdat_failed_) check_backpressure();
        return take;
    }
    state_ = State::Command;
    if (bdat_failed_) {
        // Counted like any other refused command: at smtpd_hard_error_limit the client is
        // disconnected (it could otherwise send failing BDATs forever).
        auto line = split_reply(commit_error_.value_or("503 5.5.1 Error: previous BDAT failed"));
        if (bdat_last_) {
            reset_transaction();
            commit_error_.reset();
        }
        error_reply(line.code, line.enhanced, line.text);
        return take;
    }
    if (message_too_big_) {
        // RFC 3030 2: after a failed BDAT the transaction is over; the client must RSET.
        bdat_failed_ = true;
        commit_error_ = "552 5.3.4 Error: message file too big";
        abort_delivery();
        error_reply(552, "5.3.4", "Error: message file too big");
        return take;
    }
    if (!bdat_last_) {
        reply(250, "2.0.0", fmt::format("Ok: {} octets received", message_size_));
        return take;
    }
    deliver_bytes(headers_->feed(bdat_checker_->finish()));
    std::optional<std::string> refusal;
    if (bdat_checker_->bare_line_ending() && s_.bare == BareLineEndings::Reject) refusal = bare_line_ending_reply(s_.hostname);
    bdat_checker_.reset();
    finish_message(refusal);
    return take;
}

void SmtpSession::finish_message(std::optional<std::string> refusal) {
    deliver_bytes(headers_->finish());
    for (auto& l : headers_->log()) log::line(log::Level::Info, "cleanup", tx_->queue_id, "{}", l);
    if (!refusal && headers_->reject().kind == policy::HeaderVerdict::Kind::Reject) refusal = headers_->reject().reply();
    if (!refusal && hold_failed_ && !headers_->discard() && !tx_->discard) refusal = "451 4.3.0 Error: queue file write error";
    if (refusal) {
        abort_delivery();
        log::line(log::Level::Info, "smtpd", tx_->queue_id, "reject: END-OF-MESSAGE from {}: {}; from=<{}> proto={} helo=<{}>", client(),
                  *refusal, tx_->sender.address(), esmtp_ ? "ESMTP" : "SMTP", helo_name_.value_or(""));
        state_ = State::Command;
        ++errors_;
        reply_raw(*refusal + "\r\n");
        reset_transaction();
        // A refused message is an error like any other: at the hard limit the client goes.
        if (errors_ >= io_.error_limit(s_.hard_error_limit)) too_many_errors("END-OF-MESSAGE");
        return;
    }
    if (headers_->discard() || tx_->discard) {
        abort_delivery();
        log::line(log::Level::Info, "smtpd", tx_->queue_id, "discarded by {}: from=<{}>", tx_->discard ? "an access table" : "header_checks",
                  tx_->sender.address());
        state_ = State::Command;
        reply(250, "2.0.0", fmt::format("Ok: queued as {}", tx_->queue_id));
        reset_transaction();
        return;
    }
    log::line(log::Level::Info, "smtpd", tx_->queue_id, "from=<{}>, size={}, nrcpt={}", tx_->sender.address(), message_size_,
              tx_->recipients.size());
    state_ = State::Committing;
    pending_commits_ = (local_ ? 1 : 0) + (remote_ ? 1 : 0);
    local_results_.clear();
    remote_ok_ = false;
    remote_id_.clear();
    auto token = alive_token();
    // The reply waits for every commit: acknowledged means durable (DESIGN.md principle 1).
    if (local_) {
        local_->commit([this, token](std::vector<storage::RecipientResult> results) {
            if (!*token) return;
            local_results_ = std::move(results);
            if (--pending_commits_ == 0) committed();
        });
    }
    if (remote_) {
        remote_->commit([this, token](bool ok, std::string id_or_error) {
            if (!*token) return;
            remote_ok_ = ok;
            remote_id_ = std::move(id_or_error);
            if (!ok) {
                log::line(log::Level::Error, "smtpd", tx_->queue_id, "queue write failed: {}", remote_id_);
            } else if (held_) {
                for (auto& r : tx_->recipients)
                    delivery_log_.push_back(fmt::format("to=<{}>, relay=none, status=held (hold queue id {})", r.address, remote_id_));
            } else {
                for (auto& r : tx_->recipients)
                    for (auto& x : r.remote)
                        delivery_log_.push_back(fmt::format("to=<{}>, relay=none, status=queued (outbound queue id {})", x, remote_id_));
            }
            if (--pending_commits_ == 0) committed();
        });
    }
    if (pending_commits_ == 0) committed();
}

// Every commit is back. A message that reached anyone is accepted: answering 4xx/5xx for a
// partly delivered message made the client retry (a duplicate for everyone who had it) or
// bounce it (a false failure). The recipients it missed get their copy in the queue first,
// durably, before the 250: a temporary failure goes to incoming/, where the pickup service
// retries it; over quota goes to the hold queue with the reason, kept for the admin until
// bounce messages exist. Only when nobody has it does the client get the 4xx/5xx.
void SmtpSession::committed() {
    if (local_results_.size() != local_accounts_.size() && local_) {
        // A DeliveryTarget answers once per recipient; anything else is a bug: fail safe.
        local_results_.assign(local_accounts_.size(), storage::RecipientResult{});
    }
    auto outcome = decide_outcome(local_results_, local_accounts_, remote_ != nullptr && !held_, remote_ok_);
    if (!local_ && !remote_) outcome = {.accepted = true, .refusal = {}, .copies = {}};  // nothing was to be written
    if (held_) {
        // The whole message went to the hold queue (HOLD): that copy is the only one.
        outcome = {};
        outcome.accepted = remote_ok_;
        if (!remote_ok_) outcome.refusal = "451 4.3.0 Error: queue file write error";
    }
    if (!outcome.copies.empty()) return queue_copies(std::move(outcome));
    log_local_results({});
    if (!outcome.accepted) commit_error_ = outcome.refusal;
    answer_commit();
}

// The retry and hold copies of a partly delivered message. Their bytes come from a file already
// on disk, not from memory (a session may take message_size_limit bytes, and there may be a
// thousand sessions): the store keeps a descriptor of one complete copy it wrote (its own
// Return-Path/Delivered-To lines skipped), else the outbound queue's .eml; the queue reads and
// writes it on its own threads.
void SmtpSession::queue_copies(DeliveryOutcome outcome) {
    std::shared_ptr<const storage::MessageCopy> source = local_ ? local_->copy_source() : nullptr;
    if (!source && remote_ && remote_ok_ && !held_) {
        auto c = std::make_shared<storage::MessageCopy>();
        c->path = services_->queue->message_path(remote_id_).string();
        source = std::move(c);
    }
    auto copies = std::make_shared<std::vector<DeliveryOutcome::Copy>>(std::move(outcome.copies));
    auto pending = std::make_shared<std::size_t>(copies->size());
    auto results = std::make_shared<std::vector<std::pair<bool, std::string>>>(copies->size());
    auto token = alive_token();
    auto done = [this, token, copies, results] {
        if (!*token) return;
        bool all_ok = true;
        std::vector<std::string> copy_of(local_accounts_.size());  // the copy's log text, per account
        for (std::size_t k = 0; k < copies->size(); ++k) {
            auto& c = (*copies)[k];
            auto& [ok, id_or_error] = (*results)[k];
            if (!ok) all_ok = false;
            std::string what = !ok ? fmt::format("could not be queued: {}", id_or_error)
                             : c.place == storage::queue::Place::Hold ? fmt::format("held in the hold queue as {}", id_or_error)
                                                                       : fmt::format("queued for a local retry as {}", id_or_error);
            for (auto i : c.accounts) copy_of[i] = what;
            if (c.remote) {
                for (auto& r : tx_->recipients)
                    for (auto& x : r.remote)
                        delivery_log_.push_back(ok ? fmt::format("to=<{}>, relay=none, status=queued (outbound queue id {})", x, id_or_error)
                                                   : fmt::format("to=<{}>, relay=none, status=deferred (queue write failed: {})", x, id_or_error));
            }
        }
        log_local_results(copy_of);
        // A copy that could not be made durable: the recipients it names would be lost with a
        // 250, so the client keeps the message (the others will get it twice, never none).
        if (!all_ok) commit_error_ = "451 4.3.0 Error: queue file write error";
        answer_commit();
    };
    for (std::size_t k = 0; k < copies->size(); ++k) {
        auto& c = (*copies)[k];
        auto env = envelope();
        env.reason = c.reason;
        auto add = [&](const std::string& address, const Recipient& from) {
            storage::queue::Recipient qr;
            qr.address = address;
            qr.notify = from.params.notify;
            qr.orcpt = from.params.orcpt.empty() ? std::string() : from.params.orcpt_type + ";" + from.params.orcpt;
            env.recipients.push_back(std::move(qr));
        };
        // The account's own address, not the alias the client gave: pickup routes it again, and
        // an alias would reach the accounts that have it already.
        for (auto i : c.accounts) {
            const Recipient* from = &tx_->recipients.front();
            for (auto& r : tx_->recipients)
                if (std::find(r.accounts.begin(), r.accounts.end(), local_accounts_[i]) != r.accounts.end()) {
                    from = &r;
                    break;
                }
            add(local_accounts_[i], *from);
        }
        if (c.remote)
            for (auto& r : tx_->recipients)
                for (auto& x : r.remote) add(x, r);
        auto one_done = [token, k, pending, results, done](bool ok, std::string id_or_error) {
            if (!*token) return;
            (*results)[k] = {ok, std::move(id_or_error)};
            if (--*pending == 0) done();
        };
        if (!services_->queue || !source) {
            auto loop = services_->loop;
            asio::post(*loop, [one_done] { one_done(false, "no complete copy of the message to queue"); });
            continue;
        }
        services_->queue->copy_in(std::move(env), c.place, source, one_done);
    }
}

// The local recipients' delivery lines; copy_of (per account, may be empty) says what became of
// a failed one's queue copy.
void SmtpSession::log_local_results(const std::vector<std::string>& copy_of) {
    auto delay = std::chrono::duration<double>(Clock::now() - tx_->started).count();
    for (std::size_t i = 0; i < local_results_.size(); ++i) {
        auto& r = local_results_[i];
        std::string note = i < copy_of.size() && !copy_of[i].empty() && !r.ok ? r.reason + "; " + copy_of[i] : std::string();
        delivery_log_.push_back(local_delivery_log(i < local_accounts_.size() ? local_accounts_[i] : "?", r, delay, note));
    }
}

void SmtpSession::answer_commit() {
    for (auto& l : delivery_log_) log::line(log::Level::Info, "smtpd", tx_->queue_id, "{}", l);
    local_.reset();
    remote_.reset();
    headers_.reset();
    local_results_.clear();
    state_ = State::Command;
    if (commit_error_) {
        reply_raw(*commit_error_ + "\r\n");
    } else {
        reply(250, "2.0.0", fmt::format("Ok: queued as {}", tx_->queue_id));
    }
    commit_error_.reset();
    reset_transaction();
    io_.resume_input();
}

void SmtpSession::abort_delivery() {
    if (local_) local_->abort();
    if (remote_) remote_->abort();
    local_.reset();
    remote_.reset();
    headers_.reset();
    data_reader_.reset();
    bdat_checker_.reset();
    paused_ = false;
}

}  // namespace

std::string policy_key(const config::Config& c) {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> n;
        for (auto& d : policy::parameter_defs()) n.push_back(d.name);
        return n;
    }();
    std::string key;
    for (auto& name : names) {
        key += c.get(name);
        key += '\n';
    }
    key += c.get("recipient_delimiter");
    return key;
}

std::unique_ptr<Session> make_session(SessionIo& io, std::shared_ptr<Services> services) {
    return std::make_unique<SmtpSession>(io, std::move(services));
}

}  // namespace pillarbox::smtp
