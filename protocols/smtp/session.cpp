// The SMTP session's core: the greeting (peer name lookup, greet pause, the policy), input
// framing, the command table and its state checks, replies and error limits. The commands are
// in commands/, one file per family; the message's delivery goes through delivery/.
#include "protocols/smtp/smtp_session.hpp"

#include <fmt/format.h>

#include "protocols/smtp/registration.hpp"
#include "server/ascii.hpp"
#include "server/dns.hpp"
#include "server/log.hpp"
#include "server/networks.hpp"
#include "server/worker_pool.hpp"

namespace pillarbox::smtp {

Settings Settings::from(const config::Config& c) {
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

namespace {

// RFC 4954 section 4 and the other AUTH replies (Postfix's texts). Every failure counts as an
// error towards smtpd_hard_error_limit: the throttle slows each guess down, the limit ends a
// connection that keeps guessing.
const protocols::SaslReplies& auth_replies() {
    static const protocols::SaslReplies r{
        .challenge_prefix = "334 ",
        .failed = {"535 5.7.8 Error: authentication failed: authentication failure", true},
        .temp_fail = {"454 4.7.0 Temporary authentication failure", true},
        .aborted = {"501 5.7.0 Authentication aborted", true},
        .malformed = {"501 5.5.2 Error: cannot decode response", true},
        .refused = {"538 5.7.11 Encryption required for requested authentication mechanism", true},
    };
    return r;
}

std::string reply_line(int code, std::string_view enhanced, std::string_view text) {
    return enhanced.empty() ? fmt::format("{} {}\r\n", code, text) : fmt::format("{} {} {}\r\n", code, enhanced, text);
}

}  // namespace

SmtpSession::SmtpSession(SessionIo& io, std::shared_ptr<Services> services)
    : io_(io), services_(std::move(services)), info_(io.info()),
      settings_(info_.config->derived<Settings>([this] { return Settings::from(*info_.config); })), s_(*settings_),
      timer_(*services_->loop), guard_(io), framer_(s_.line_limit + 2), sasl_(io, guard_, auth_replies()) {
    mynetworks_ = in_networks(info_.peer_ip, s_.mynetworks);
}

SmtpSession::~SmtpSession() {
    guard_.end();
    abort_delivery();
}

const protocols::CommandTable<Handler>& SmtpSession::commands() {
    using namespace protocols;
    // Where each command is allowed, checked in dispatch() before its handler runs. TLS: only
    // where smtpd_tls_security_level = encrypt (Settings::Tls::Encrypt) and it isn't active.
    static const CommandTable<Handler> table = {
        {"EHLO", &SmtpSession::cmd_ehlo, kAnyLogin | kLastInGroup},
        {"HELO", &SmtpSession::cmd_helo, kAnyLogin | kLastInGroup},
        {"MAIL", &SmtpSession::cmd_mail, kAnyLogin | kNoTransaction | kNeedsTls | kGroupedReply},
        {"RCPT", &SmtpSession::cmd_rcpt, kAnyLogin | kInTransaction | kGroupedReply},
        {"DATA", &SmtpSession::cmd_data, kAnyLogin | kInTransaction | kLastInGroup},
        {"BDAT", &SmtpSession::cmd_bdat, kAnyLogin},  // its chunk follows: refused after reading it
        {"RSET", &SmtpSession::cmd_rset, kAnyLogin | kJunk | kGroupedReply},
        {"NOOP", &SmtpSession::cmd_noop, kAnyLogin | kJunk | kLastInGroup},
        {"QUIT", &SmtpSession::cmd_quit, kAnyLogin},
        {"HELP", &SmtpSession::cmd_help, kAnyLogin | kJunk},
        {"VRFY", &SmtpSession::cmd_vrfy, kAnyLogin | kJunk | kLastInGroup},
        {"STARTTLS", &SmtpSession::cmd_starttls, kAnyLogin},
        {"AUTH", &SmtpSession::cmd_auth, kBeforeLogin | kNoTransaction | kNeedsTls | kNeedsSasl | kLastInGroup},
    };
    return table;
}

// What a command refused by its flags is told (Postfix's texts).
std::optional<Reply> SmtpSession::refusal(const protocols::CommandDef<Handler>& def, protocols::Refusal why) const {
    using R = protocols::Refusal;
    std::string_view verb = def.verb;
    switch (why) {
    case R::None: return std::nullopt;
    case R::AlreadyLoggedIn: return Reply{503, "5.5.1", "Error: already authenticated"};
    case R::NotLoggedIn: return Reply{530, "5.7.0", "Authentication required"};
    case R::NeedsTls: return Reply{530, "5.7.0", "Must issue a STARTTLS command first"};
    case R::InTransaction:
        return Reply{503, "5.5.1", verb == "MAIL" ? "Error: nested MAIL command" : "Error: MAIL transaction in progress"};
    case R::NoTransaction:
        return Reply{503, "5.5.1", verb == "RCPT" ? "Error: need MAIL command" : "Error: need RCPT command"};
    }
    return std::nullopt;
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
                                   guard_.wrap([this, v6](dns::Answer a) {
                                       if (a.status != dns::Answer::Status::Ok) {
                                           name_tempfail_ = a.status == dns::Answer::Status::TempFail;
                                           greet();
                                           return;
                                       }
                                       std::string name = a.records.front();
                                       services_->dns->lookup(name, v6 ? dns::Type::AAAA : dns::Type::A,
                                                              guard_.wrap([this, name](dns::Answer f) {
                                                                  for (auto& ip : f.records)
                                                                      if (ip == info_.peer_ip) client_name_ = ascii_lower(name);
                                                                  if (client_name_ != "unknown") io_.set_peer_name(client_name_);
                                                                  name_tempfail_ = f.status == dns::Answer::Status::TempFail;
                                                                  greet();
                                                              }));
                                   }));
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
        park();
        timer_.expires_after(s_.greet_pause);
        timer_.async_wait(guard_.wrap([this](std::error_code ec) {
            if (!ec) greet();
        }));
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
        if (guard_.parked()) unpark();
        return;
    }
    // First connection on this listener config: load restriction lists and tables on a worker.
    park();
    const config::Config* cfg = info_.config;
    auto services = services_;
    services_->workers->run(
        [cfg] { return std::make_shared<const policy::PolicySettings>(policy::PolicySettings::from(*cfg)); },
        [services, key, then = guard_.wrap([this](std::shared_ptr<const policy::PolicySettings> p) {
             policy_ = std::move(p);
             if (refuse_broken_policy()) return;
             if (early_talker_ && s_.forbid_unauth_pipelining) {
                 greet();  // refuses, now that the talker is known
                 return;
             }
             greeted_ = true;
             reply(220, "", s_.banner);
             unpark();
         })](std::shared_ptr<const policy::PolicySettings> p) mutable {
            if (!p->errors.empty() || !p->warnings.empty()) {
                for (auto& e : p->errors) log::error("smtpd", "{}", e);
                for (auto& w : p->warnings) log::warning("smtpd", "{}", w);
            }
            services->policies.emplace(key, p);
            then(p);  // the session, if it is still there
        });
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

void SmtpSession::too_many_errors(std::string_view after) {
    reply(421, "4.7.0", fmt::format("{} Error: too many errors", s_.hostname));
    log::line(log::Level::Warning, "smtpd", info_.id, "too many errors after {} from {}", after, client());
    io_.close();
    state_ = State::Closed;
}

void SmtpSession::error_reply(int code, std::string_view enhanced, std::string_view text) {
    if (errors_.add(io_, s_.hard_error_limit)) {
        reply(code, enhanced, text);
        too_many_errors(count_order_.empty() ? "CONNECT" : count_order_.back());
        return;
    }
    if (errors_.count() > s_.soft_error_limit && s_.error_sleep.count() > 0) {
        park();
        timer_.expires_after(s_.error_sleep);
        timer_.async_wait(guard_.wrap([this, line = reply_line(code, enhanced, text)](std::error_code ec) {
            if (ec) return;
            io_.send(line);
            unpark();
        }));
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
    framer_.reset();
    unpark();
}

std::size_t SmtpSession::on_input(std::string_view data) {
    if (state_ == State::Closed) return data.size();  // after QUIT/421: ignore the rest
    // RFC 5321 4.3.1: the client waits for the greeting. One that talks first (while the name
    // lookup runs) is a spambot that doesn't read replies (Postfix: "improper command
    // pipelining after CONNECT").
    if (!greeted_ && !data.empty()) early_talker_ = true;
    if (guard_.parked() || paused_) return 0;
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
    // RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF; Postfix allows
    // line_length_limit (without the CRLF, hence + 2). Longer: answered once, the rest dropped.
    // A SASL response may be 12288 octets (RFC 4954 section 4).
    framer_.set_limit(sasl_.active() ? std::max<std::size_t>(s_.line_limit + 2, protocols::kSaslLineLimit) : s_.line_limit + 2);
    auto item = framer_.next(data);
    using K = protocols::LineFramer::Item::Kind;
    if (item.kind == K::TooLong) error_reply(500, "5.5.0", "Error: line too long");
    else if (item.kind == K::Line) dispatch(item.data, data.size() > item.consumed);
    return item.consumed;
}

void SmtpSession::dispatch(std::string_view line, bool more_buffered) {
    grouped_replies_ = false;
    if (sasl_.active()) return sasl_.respond(line);
    if (is_forbidden_command(line)) {
        log::line(log::Level::Warning, "smtpd", info_.id, "non-SMTP command from {}: {}", client(), line.substr(0, 100));
        return close_after(Reply{521, "5.7.0", "Error: I can break rules, too. Goodbye."});
    }
    auto cmd = parse_command(line);
    const auto* def = cmd ? commands().find(cmd->verb) : nullptr;
    ++total_commands_;
    if (!def) {
        if (!counts_.count("unknown")) count_order_.push_back("unknown");
        ++counts_["unknown"];
        error_reply(502, "5.5.2", "Error: command not recognized");
        return;
    }
    std::string verb(def->verb);
    if (!counts_.count(verb)) count_order_.push_back(verb);
    ++counts_[verb];
    // RFC 2920 section 3.2 (1): responses to RSET, MAIL and RCPT may wait for the rest of a
    // pipelined group and go out with it (DATA's 354, at the latest) in one segment.
    grouped_replies_ = def->flags & kGroupedReply;
    // Postfix's smtpd_forbid_unauth_pipelining: a client that sends commands ahead where RFC
    // 2920 (or, before EHLO, RFC 5321) doesn't allow it is a spambot or a smuggling attempt.
    if (s_.forbid_unauth_pipelining && more_buffered && ((def->flags & kLastInGroup) || !esmtp_) && verb != "QUIT") {
        log::line(log::Level::Info, "smtpd", info_.id, "improper command pipelining after {} from {}", verb, client());
        return close_after(Reply{554, "5.5.0", "Error: improper command pipelining"});
    }
    if ((def->flags & kJunk) && ++junk_ > s_.junk_command_limit && errors_.add(io_, s_.hard_error_limit))
        return too_many_errors(verb);
    if ((def->flags & kNeedsSasl) && (!s_.sasl_enabled || !services_->auth || !esmtp_))
        return error_reply(503, "5.5.1", "Error: authentication not enabled");
    protocols::CommandState st{.logged_in = !sasl_user_.empty(),
                               .tls_missing = s_.tls == Settings::Tls::Encrypt && !tls_active(),
                               .in_transaction = tx_.has_value()};
    if (auto r = refusal(*def, protocols::check_command(def->flags, st))) return error_reply(*r);
    (this->*(def->handler))(cmd->args);
}

void SmtpSession::close_after(const Reply& r) {
    reply(r);
    io_.close();
    state_ = State::Closed;
}

std::string SmtpSession::client() const { return fmt::format("{}[{}]", client_name_, info_.peer_ip); }

std::shared_ptr<const auth::RecipientSettings> SmtpSession::recipient_settings() const {
    return info_.config->derived<auth::RecipientSettings>([this] { return auth::RecipientSettings::from(*info_.config); });
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
    bdat_failed_ = false;
}

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
    return key;
}

std::unique_ptr<Session> make_session(SessionIo& io, std::shared_ptr<Services> services) {
    return std::make_unique<SmtpSession>(io, std::move(services));
}

}  // namespace pillarbox::smtp
