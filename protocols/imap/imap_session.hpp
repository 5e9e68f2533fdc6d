// The IMAP session's class, shared by the core (session.cpp) and the command files
// (commands/*.cpp): one command table, one reply path, one place that tells the selected
// mailbox's changes.
#pragma once
#include <asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/authenticator.hpp"
#include "protocols/common/async_guard.hpp"
#include "protocols/common/command_table.hpp"
#include "protocols/common/sasl_driver.hpp"
#include "protocols/imap/command_reader.hpp"
#include "protocols/imap/grammar.hpp"
#include "protocols/imap/parser.hpp"
#include "protocols/imap/selected.hpp"
#include "protocols/imap/session.hpp"
#include "server/protocol_registry.hpp"
#include "storage/mailboxes.hpp"

namespace pillarbox::imap {

// The listener's IMAP settings; their defaults are the parameters' (server/parameters.cpp).
struct Settings {
    std::string greeting;
    std::size_t line_length{};
    unsigned max_bad_commands{};
    std::size_t max_nesting{};
    std::size_t max_sequence_ranges{};
    unsigned max_userip{};
    std::uint64_t append_limit{};  // message_size_limit; 0: none
    std::chrono::milliseconds idle_notify{};  // imap_idle_notify_interval; 0: none
    static Settings from(const config::Config& c);
};

// Command flags beyond protocols/common's: kInTransaction means "a mailbox is selected".
inline constexpr unsigned kExpungeOk = protocols::kFirstProtocolFlag;  // EXPUNGE responses may go with this one

class ImapSession;
struct FetchRun;
struct SearchRun;
struct SearchKey;
struct FetchAtt;
struct SectionContent;

// "\Seen" and the other system flags as storage::Flag bits; keywords as they are. nullopt: a
// "\" flag that is none of them (RFC 9051 2.3.2: only these may be set).
std::optional<std::pair<std::uint32_t, std::vector<std::string>>> split_flags(const std::vector<std::string>& flags);

// What a command's tagged reply needs; kept by async completions.
struct Tagged {
    std::string tag;
    std::string name;  // upper case; "UID FETCH" for the UID forms
};

// One command as the handlers see it (its Decoder lives only during the handler's call).
struct Command : Tagged {
    Command(Tagged t, Decoder& d, bool u) : Tagged(std::move(t)), args(d), uid(u) {}
    Decoder& args;  // positioned after the name
    bool uid = false;
};

using Handler = void (ImapSession::*)(Command& cmd);

class ImapSession final : public Session {
public:
    ImapSession(SessionIo& io, std::shared_ptr<Services> services);
    ~ImapSession() override;

    void on_start() override;
    std::size_t on_input(std::string_view data) override;
    void on_tls_started() override;
    void on_refused(std::string_view reason) override;
    void on_timeout() override;
    void on_shutdown() override;
    bool wants_input() const override { return !guard_.parked() && state_ != State::Closed; }
    // An APPEND or a FETCH in progress is let finish at shutdown (within shutdown_timeout).
    bool busy() const override { return append_.has_value() || fetch_ != nullptr; }
    std::string summary() const override;
    void on_close() override;
    void on_output_written() override;

    // Any state (RFC 9051 6.1).
    void cmd_capability(Command& c);
    void cmd_noop(Command& c);
    void cmd_logout(Command& c);
    // Not authenticated (6.2).
    void cmd_starttls(Command& c);
    void cmd_authenticate(Command& c);
    void cmd_login(Command& c);
    // Authenticated (6.3).
    void cmd_enable(Command& c);
    void cmd_id(Command& c);
    void cmd_namespace(Command& c);
    void cmd_select(Command& c);
    void cmd_create(Command& c);
    void cmd_delete(Command& c);
    void cmd_rename(Command& c);
    void cmd_subscribe(Command& c);
    void cmd_list(Command& c);
    void cmd_lsub(Command& c);
    void cmd_status(Command& c);
    void cmd_getquotaroot(Command& c);
    void cmd_getquota(Command& c);
    void cmd_setquota(Command& c);
    // Selected (6.4).
    void cmd_close(Command& c);
    void cmd_unselect(Command& c);
    void cmd_expunge(Command& c);
    void cmd_store(Command& c);
    void cmd_append(Command& c);
    void cmd_fetch(Command& c);
    void cmd_search(Command& c);
    void cmd_idle(Command& c);
    void cmd_copy(Command& c);  // COPY and MOVE, and their UID forms

private:
    enum class State { NotAuthenticated, Authenticated, Selected, Closed };
    friend struct CommandTableAccess;

    void dispatch(std::string_view text);
    void on_literal(const CommandReader::Event& ev);
    // A literal that is one of the command's arguments (not APPEND's message): kept, or refused
    // when too large.
    void keep_argument_literal(const std::string& tag, const CommandReader::Event& ev);
    // APPEND (commands/append.cpp): checked when its literal is announced, streamed to the
    // store, committed when the command's line ends.
    void start_append(const CommandHead& head, Decoder& d, const CommandReader::Event& ev);
    void append_piece(std::string_view piece);
    void idle_input(std::string_view line);
    void selected_changed(const storage::Change& c);
    void idle_notify();
    // FETCH's steps (commands/fetch.cpp).
    void fetch_prepare();
    void fetch_rows(bool needed);
    void fetch_cached_parses();  // the parse caches of the next slice, in one read
    void fetch_next();
    void fetch_atts();
    void fetch_read_section(const FetchAtt& a, const SectionContent& content, const std::string& sep);
    void fetch_lost(const std::string& why);
    void fetch_stream();
    // SEARCH's steps (commands/search.cpp).
    bool search_match(const SearchKey& k, SearchRun& r);
    void search_next();
    void search_cached_parses();
    void search_load();
    void search_read_file();
    void search_test();
    void search_done();
    void send(std::string_view s) { io_.send(s); }
    // The tagged end of a command, after the updates the moment allows.
    void finish(const Tagged& c, std::string_view status, std::string_view text);
    void finish(const std::string& tag, unsigned flags, std::string_view status, std::string_view text);
    // BAD that counts towards imap_max_bad_commands; tag "*" when the command had none.
    void bad(const std::string& tag, std::string_view text);
    // A store failure as the tagged NO the RFCs give it ([NONEXISTENT], [ALREADYEXISTS], ...).
    template <typename R>
    void store_failed(const Tagged& c, const storage::Outcome<R>& o) {
        store_failed(c, o.error, o.reason);
    }
    void store_failed(const Tagged& c, std::optional<storage::StoreError::Kind> error, const std::string& reason);
    void list(Command& c, bool lsub);
    void list_status(const Tagged& t, std::shared_ptr<std::vector<std::pair<std::string, std::string>>> lines, std::size_t i,
                     std::vector<StatusItem> items, bool lsub);
    void bye(Goodbye why);
    std::string capabilities() const;
    bool tls_active() const { return info_.tls_active || io_.info().tls_active; }
    auth::ClientInfo auth_client() const;
    void logged_in(const std::string& tag, const auth::Result& r, const std::string& method);
    void unselect();
    bool utf8() const { return utf8_accept_ || rev2_; }
    storage::AccountId account() const { return {localpart_, domain_}; }
    void park() { guard_.park(); }
    void unpark() { guard_.unpark(); }
    // Unparks when it goes, so that a completion's replies are out before the next command
    // (resume_input may offer it at once).
    struct Resume {
        ImapSession& s;
        bool active = true;  // false: the command goes on (another async step); it unparks later
        ~Resume() {
            if (active) s.unpark();
        }
    };
    std::string updates(unsigned flags);
    // RFC 7162 3.1: the first command that uses CONDSTORE turns it on for the session; with a
    // mailbox selected, the client learns its HIGHESTMODSEQ then.
    void enable_condstore();
    // The messages a set names, as sequence numbers in order (for UID sets: the UIDs the client
    // knows; others are left out, RFC 9051 6.4.9).
    std::vector<std::uint32_t> resolve(const SequenceSet& set, bool uid) const;

    SessionIo& io_;
    std::shared_ptr<Services> services_;
    ConnectionInfo info_;
    Settings s_;
    protocols::AsyncGuard guard_;
    CommandReader reader_;
    protocols::SaslDriver sasl_;
    protocols::ErrorCounter bad_commands_;
    State state_ = State::NotAuthenticated;
    unsigned total_commands_ = 0;
    std::string sasl_tag_;
    std::shared_ptr<void> login_;

    // Authenticated.
    std::string account_, localpart_, domain_, userip_key_;
    bool rev2_ = false, utf8_accept_ = false, condstore_ = false, qresync_ = false;
    // Selected.
    std::unique_ptr<SelectedMailbox> selected_;
    storage::ChangeBus::Subscription changes_;
    std::vector<std::uint32_t> saved_;  // SEARCHRES '$' (UIDs)

    struct Append {
        Tagged tagged;
        std::string mailbox;
        std::vector<std::string> keywords;  // set after the commit (the store's append takes flags)
        std::uint64_t size = 0;
        std::uint32_t uidvalidity = 0;
        std::unique_ptr<storage::AppendTarget> target;
        bool checked = false, streaming = false, synchronizing = true;
        bool utf8_data = false;  // sent as "UTF8 (" literal8 ")"
    };
    std::optional<Append> append_;
    std::optional<Tagged> idling_;  // IDLE's command while it runs
    std::shared_ptr<asio::steady_timer> idle_timer_;  // imap_idle_notify_interval while idling
    std::shared_ptr<FetchRun> fetch_;  // the FETCH in progress
    std::shared_ptr<SearchRun> search_;  // the SEARCH in progress
};

}  // namespace pillarbox::imap
