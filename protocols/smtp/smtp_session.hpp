// The SMTP session's state machine, shared by its parts: session.cpp (greeting, input, the
// command table, replies and error limits) and commands/ (one file per command family). Only
// the files of protocols/smtp include it; everyone else uses session.hpp.
#pragma once
#include <asio/steady_timer.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/authenticator.hpp"
#include "auth/recipients.hpp"
#include "protocols/common/async_guard.hpp"
#include "protocols/common/command_table.hpp"
#include "protocols/common/line_framer.hpp"
#include "protocols/common/sasl_driver.hpp"
#include "protocols/common/service_replies.hpp"
#include "protocols/smtp/policy/policy.hpp"
#include "protocols/smtp/reply.hpp"
#include "protocols/smtp/session.hpp"
#include "protocols/smtp/transaction.hpp"
#include "server/config.hpp"
#include "storage/mailboxes.hpp"
#include "storage/queue/queue.hpp"

namespace pillarbox::smtp {

// Per-listener settings, read from the listener's effective configuration. Their defaults are
// the parameters' (server/parameters.cpp), written once there: from() sets every field.
struct Settings {
    std::string hostname, banner;
    std::uint64_t message_size_limit{};
    std::size_t recipient_limit{};
    std::size_t line_limit{};
    std::size_t header_size_limit{};
    std::chrono::milliseconds error_sleep{};
    unsigned soft_error_limit{}, hard_error_limit{}, junk_command_limit{};
    bool disable_vrfy{};
    enum class Tls { None, May, Encrypt } tls{};
    bool sasl_enabled{};
    bool sasl_authenticated_header{};
    BareLineEndings bare{};
    bool forbid_unauth_pipelining{};
    std::chrono::milliseconds greet_pause{};
    std::string recipient_delimiter;
    std::vector<config::Cidr> mynetworks;
    // Not a parameter: delivery bytes in flight before the session stops reading.
    static constexpr std::size_t body_buffer = 256 * 1024;

    static Settings from(const config::Config& c);
};

// The MAIL and RCPT parameters this connection offers (EHLO, TLS, AUTH).
MailExtensions extensions_for(bool esmtp, bool tls, bool auth);

class SmtpSession;
using Handler = void (SmtpSession::*)(const std::string& args);

// SMTP's own command flags, beside the session core's state flags.
inline constexpr unsigned kJunk = protocols::kFirstProtocolFlag;  // counts towards smtpd_junk_command_limit (NOOP, VRFY, RSET ...)
inline constexpr unsigned kLastInGroup = kJunk << 1;   // RFC 2920 3.1: may only be last in a pipelined group
inline constexpr unsigned kGroupedReply = kJunk << 2;  // RFC 2920 3.2 (1): the reply may wait for the group's
inline constexpr unsigned kNeedsSasl = kJunk << 3;     // AUTH: only where SASL is enabled and after EHLO

class SmtpSession final : public Session {
public:
    SmtpSession(SessionIo& io, std::shared_ptr<Services> services);
    ~SmtpSession() override;

    // Session
    void on_start() override;
    std::size_t on_input(std::string_view data) override;
    void on_tls_started() override;
    void on_refused(std::string_view) override { bye(protocols::Goodbye::TooManyConnections); }
    void on_timeout() override { bye(protocols::Goodbye::IdleTimeout); }
    void on_shutdown() override { bye(protocols::Goodbye::ShuttingDown); }
    bool busy() const override { return state_ == State::Data || state_ == State::Bdat || state_ == State::Committing; }
    // Before the greeting input is still read: that is how an early talker shows itself.
    bool wants_input() const override { return !paused_ && (!guard_.parked() || !greeted_); }
    std::string summary() const override;

    // Commands, by family (commands/*.cpp).
    void cmd_ehlo(const std::string& a) { helo(a, true); }
    void cmd_helo(const std::string& a) { helo(a, false); }
    void cmd_mail(const std::string& a);
    void cmd_rcpt(const std::string& a);
    void cmd_data(const std::string& a);
    void cmd_bdat(const std::string& a);
    void cmd_rset(const std::string& a);
    void cmd_noop(const std::string& a);
    void cmd_quit(const std::string& a);
    void cmd_help(const std::string& a);
    void cmd_vrfy(const std::string& a);
    void cmd_starttls(const std::string& a);
    void cmd_auth(const std::string& a);

private:
    enum class State { Command, Data, Bdat, Committing, Closed };

    // session.cpp: greeting, input, dispatch, replies.
    static const protocols::CommandTable<Handler>& commands();
    void greet();
    // With a policy that has errors (a list that failed to parse, or no relay guard) the session
    // answers 421 and closes: a broken restriction list must never turn into an open relay.
    bool refuse_broken_policy();
    std::size_t on_command_input(std::string_view data);
    void dispatch(std::string_view line, bool more_buffered);
    std::optional<Reply> refusal(const protocols::CommandDef<Handler>& def, protocols::Refusal why) const;
    void reply(int code, std::string_view enhanced, std::string_view text);
    void reply(const Reply& r) { reply(r.code, r.enhanced, r.text); }
    void reply_raw(std::string text);
    // A refused command: counts towards the soft limit (replies slow down) and the hard limit
    // (disconnect), Postfix's smtpd_soft_error_limit / smtpd_hard_error_limit.
    void error_reply(int code, std::string_view enhanced, std::string_view text);
    void error_reply(const Reply& r) { error_reply(r.code, r.enhanced, r.text); }
    // At smtpd_hard_error_limit: 421 and the client goes, logged as Postfix does.
    void too_many_errors(std::string_view after);
    void close_after(const Reply& r);  // the reply, then the connection ends
    void bye(protocols::Goodbye why);
    void park() { guard_.park(); }
    void unpark() { guard_.unpark(); }
    std::string client() const;
    std::shared_ptr<const auth::RecipientSettings> recipient_settings() const;
    bool tls_active() const { return info_.tls_active || io_.info().tls_active; }
    auth::ClientInfo auth_client() const;
    const policy::PolicySettings* policy() const { return policy_.get(); }
    policy::Context policy_context(std::string command) const;
    void log_decision(const policy::Decision& d);
    void reset_transaction();

    // commands/hello.cpp
    void helo(const std::string& arg, bool esmtp);
    // commands/rcpt.cpp
    void rcpt_resolved(Path path, RcptParams params, auth::Resolution res);
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
    // commands/auth.cpp
    void auth_done(const auth::Result& r, const protocols::SaslReplies::Final* failure);
    // commands/data.cpp
    bool open_delivery();
    storage::queue::Envelope envelope() const;
    void deliver_bytes(std::string_view bytes);
    std::size_t on_data_input(std::string_view data);
    std::size_t on_bdat_input(std::string_view data);
    void finish_message(std::optional<Reply> refusal);
    void answer_commit(std::optional<Reply> refusal);
    void abort_delivery();
    void check_backpressure();

    SessionIo& io_;
    std::shared_ptr<Services> services_;
    ConnectionInfo info_;
    std::shared_ptr<const Settings> settings_;  // the listener config's, shared by its sessions
    const Settings& s_;
    asio::steady_timer timer_;
    protocols::AsyncGuard guard_;
    protocols::LineFramer framer_;
    protocols::SaslDriver sasl_;
    std::shared_ptr<const policy::PolicySettings> policy_;
    std::string client_name_ = "unknown";
    bool name_tempfail_ = false;
    bool mynetworks_ = false;

    State state_ = State::Command;
    bool grouped_replies_ = false;  // replies to the command being handled may wait (send_grouped)
    bool paused_ = false;           // delivery backpressure: don't read more
    bool greeted_ = false, early_talker_ = false, greet_paused_ = false;
    bool esmtp_ = false;
    std::optional<std::string> helo_name_;
    std::string sasl_user_, sasl_method_;
    std::optional<Transaction> tx_;
    protocols::ErrorCounter errors_;
    unsigned junk_ = 0;
    std::map<std::string, unsigned> counts_;
    std::vector<std::string> count_order_;
    unsigned total_commands_ = 0;

    // BDAT chunk framing (RFC 3030): also when there is no transaction to take the chunk.
    std::uint64_t bdat_remaining_ = 0;
    bool bdat_last_ = false;
    bool bdat_failed_ = false;           // the chunks that follow are read and refused
    std::optional<Reply> bdat_refusal_;  // what they are refused with
};

}  // namespace pillarbox::smtp
