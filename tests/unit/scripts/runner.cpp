// The in-process conversation runner (see runner.hpp).
#include "tests/unit/scripts/runner.hpp"

#include <fmt/format.h>

#include <filesystem>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdexcept>

#include "auth/accounts.hpp"
#include "auth/backend.hpp"
#include "auth/password.hpp"
#include "protocols/imap/session.hpp"
#include "protocols/pop3/session.hpp"
#include "protocols/smtp/session.hpp"
#include "server/listener_def.hpp"
#include "server/worker_pool.hpp"
#include "storage/queue/queue.hpp"

namespace pillarbox::scripts {

namespace fs = std::filesystem;

namespace {

constexpr auto kTimeout = std::chrono::seconds(5);

// conversation.py's MailHost, in-process: the listeners as the default ones are, the fast
// authentication settings, the accounts and aliases.
const std::map<std::string, std::string> kListeners = {
    {"mx", "smtp starttls 127.0.0.1:25"},
    {"submission", "smtp starttls 127.0.0.1:587 smtpd_tls_security_level=encrypt "
                   "smtpd_client_restrictions=$mua_client_restrictions smtpd_sender_restrictions=$mua_sender_restrictions"},
    {"submissions", "smtp implicit 127.0.0.1:465 smtpd_client_restrictions=$mua_client_restrictions "
                    "smtpd_sender_restrictions=$mua_sender_restrictions"},
    {"pop3", "pop3 starttls 127.0.0.1:110"},
    {"pop3s", "pop3 implicit 127.0.0.1:995"},
    {"imap", "imap starttls 127.0.0.1:143"},
    {"imaps", "imap implicit 127.0.0.1:993"},
};

std::string config_text(const std::string& data, const std::vector<std::pair<std::string, std::string>>& lines) {
    std::map<std::string, std::string> values = {
        {"myhostname", "mail.pillarbox.test"},   {"data_directory", data},
        {"auth_argon2_time_cost", "1"},          {"auth_argon2_memory_cost", "8M"},
        {"auth_failure_delay", "10ms"},          {"auth_penalty_max", "20ms"},
        {"smtpd_error_sleep_time", "0"},
    };
    for (auto& [name, value] : lines) values[name] = value;
    std::string text;
    for (auto& [name, value] : values) text += name + " = " + value + "\n";
    for (auto& [name, line] : kListeners) text += "listen_t" + name + " = " + line + "\n";
    return text;
}

// The i-th message deliver: puts in an account (as SMTP would have stored it).
std::string message(const std::string& account, int i) {
    return fmt::format("Return-Path: <sender@example.net>\r\nDelivered-To: {0}\r\nFrom: sender@example.net\r\nTo: {0}\r\n"
                       "Subject: message {1}\r\nMessage-ID: <m{1}.{0}>\r\n\r\nLine one of message {1}\r\n"
                       ".a line starting with a dot\r\n..two dots\r\nlast line of message {1}\r\n",
                       account, i);
}

// The whole of text matches pattern (Python's re.fullmatch, which the scripts are written for:
// PCRE2 reads the same syntax; bytes, as the replies are). Throws on a pattern that doesn't
// compile. Not std::regex: GCC 12's <regex> trips -Wmaybe-uninitialized in the sanitizer build.
bool full_match(const std::string& pattern, const std::string& text) {
    int err = 0;
    PCRE2_SIZE at = 0;
    std::string anchored = "(?:" + pattern + ")\\z";
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(anchored.data()), anchored.size(), PCRE2_ANCHORED,
                                   &err, &at, nullptr);
    if (!re) throw std::runtime_error("bad regex /" + pattern + "/");
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, nullptr);
    int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0, md, nullptr);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0;
}

storage::AccountId account_id(const std::string& address) {
    auto at = address.rfind('@');
    return {address.substr(0, at), address.substr(at + 1)};
}

}  // namespace

World::World(const std::vector<std::pair<std::string, std::string>>& lines) : work_(io_.get_executor()) {
    char tmpl[] = "/tmp/pillarbox-scripts-XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::vector<config::Diagnostic> diags;
    auto env = config::Environment::detect();
    config_ = config::Config::parse(config_text(dir_ + "/data", lines), "scripts.conf", env, diags);
    for (auto& d : diags)
        if (d.severity == config::Diagnostic::Error) throw std::runtime_error("script config: " + d.to_string());
    for (auto& [name, value] : kListeners) {
        auto parsed = config::parse_listener_line(config_.get("listen_t" + name));
        if (!parsed.value) throw std::runtime_error("listener " + name + ": " + parsed.error);
        lines_[name] = *parsed.value;
        config::Setting where{"listen_t" + name, "", "scripts.conf", 0};
        listeners_[name] = std::make_shared<const config::Config>(config_.with_overrides(parsed.value->overrides, where, diags));
    }
    fs::create_directories(dir_ + "/data");
    accounts_ = std::make_shared<auth::AccountsDb>(auth::AccountsDb::path_in(dir_ + "/data"));
    for (auto d : {"example.com", "catchall.example"}) accounts_->add_domain(d);
    for (auto u : {"bob@example.com", "alice@example.com", "carol@example.com"}) add_account(u);
    for (auto t : {"bob@example.com", "alice@example.com"}) accounts_->add_alias("sales@example.com", t);
    accounts_->add_alias("postmaster", "bob@example.com");
    accounts_->add_alias("@catchall.example", "carol@example.com");

    workers_ = std::make_unique<WorkerPool>(io_, 2);
    real_auth_ = std::make_unique<auth::Authenticator>(io_, *workers_, auth::AuthSettings::from(config_), auth::make_backends(config_));
    fake_auth_ = std::make_unique<FakeAuthentication>(*real_auth_);
    store_ = std::make_unique<FakeStore>(io_, dir_);
    store_->limits = {config_.get_size("mailbox_size_limit"), config_.get_count("mailbox_message_limit")};
    queue_ = std::make_unique<storage::queue::Queue>(io_, dir_ + "/data");
    smtp_ = std::make_shared<smtp::Services>();
    smtp_->loop = &io_;
    smtp_->workers = workers_.get();
    smtp_->store = store_.get();
    smtp_->queue = queue_.get();
    smtp_->auth = fake_auth_.get();
    smtp_->accounts = accounts_;
    pop3_ = std::make_shared<pop3::Services>();
    pop3_->loop = &io_;
    pop3_->store = store_.get();
    pop3_->auth = fake_auth_.get();
    imap_ = std::make_shared<imap::Services>();
    imap_->loop = &io_;
    imap_->store = store_.get();
    imap_->auth = fake_auth_.get();
}

World::~World() {
    // Sessions are gone; let what they started finish, then drop the services in order.
    work_.reset();
    io_.restart();
    io_.run_for(std::chrono::milliseconds(200));
    queue_.reset();
    workers_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

void World::add_account(const std::string& address) {
    if (accounts_->account(address)) return;
    auto h = auth::AuthSettings::from(config_).hash;
    h.argon2_ops = 1;
    h.argon2_memory = 8u * 1024 * 1024;
    auth::AccountRecord a;
    a.address = address;
    a.password = auth::hash_password(kPassword, h);
    a.scram_sha256 = auth::format_scram(auth::scram_keys(auth::ScramHash::Sha256, kPassword, h.scram_iterations));
    a.scram_sha1 = auth::format_scram(auth::scram_keys(auth::ScramHash::Sha1, kPassword, h.scram_iterations));
    a.cram_md5 = auth::format_cram_md5(auth::cram_md5_context(kPassword));
    accounts_->add_account(a);
}

std::unique_ptr<Pipe> World::connect(const std::string& listener) {
    auto& line = lines_.at(listener);
    const auto& cfg = *listeners_.at(listener);
    ConnectionInfo info;
    info.id = "SCRIPT01";
    info.listener = "t" + listener;
    info.tls_mode = line.tls;
    info.peer_ip = info.local_ip = "127.0.0.1";
    info.peer_port = 40000;
    info.local_port = 25;
    info.config = &cfg;
    if (line.tls == config::TlsMode::Implicit) {
        info.tls_active = true;
        info.tls_version = "TLSv1.3";
        info.tls_cipher = "TLS_AES_256_GCM_SHA384";
    }
    const auto protocol = line.protocol;
    auto idle = cfg.get_time(protocol == config::Protocol::Smtp   ? "smtpd_timeout"
                             : protocol == config::Protocol::Imap ? "imap_idle_timeout"
                                                                  : "pop3_idle_timeout");
    auto pipe = std::make_unique<Pipe>(io_, info, idle);
    if (protocol == config::Protocol::Smtp) pipe->start([s = smtp_](SessionIo& io) { return smtp::make_session(io, s); });
    else if (protocol == config::Protocol::Imap) pipe->start([s = imap_](SessionIo& io) { return imap::make_session(io, s); });
    else pipe->start([s = pop3_](SessionIo& io) { return pop3::make_session(io, s); });
    return pipe;
}

// inject: what the fakes do from now on, in this script.
void World::inject(const std::string& what) {
    auto after = [&](const std::string& prefix) { return what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : std::string(); };
    if (what == "commit-tempfail") store_->faults.commit_tempfail = true;
    else if (what == "disk-full") store_->faults.disk_full = true;
    else if (what == "auth-tempfail") fake_auth_->faults.tempfail = true;
    else if (what == "hold-commits") store_->faults.hold_commits = true;
    else if (what == "release-commits") store_->faults.hold_commits = false, store_->release_commits();
    else if (!after("over-quota ").empty()) store_->faults.over_quota.insert(after("over-quota "));
    else if (!after("slow-store ").empty()) store_->faults.delay = std::chrono::milliseconds(std::stoi(after("slow-store ")));
    else if (what == "none") store_->faults = {}, fake_auth_->faults = {};
    else throw std::runtime_error("unknown inject: " + what);
}

void World::run(const Script& s) {
    if (!s.account.empty()) add_account(s.account);
    for (int i = 1; i <= s.deliver; ++i) store_->add_message(account_id(s.account), message(s.account, i));
    std::vector<std::string> transcript;
    auto fail = [&](const Step& step, const std::string& why) {
        std::string tail;
        for (std::size_t i = transcript.size() > 15 ? transcript.size() - 15 : 0; i < transcript.size(); ++i) tail += transcript[i] + "\n";
        throw std::runtime_error(fmt::format("{}:{}: {}\n--- transcript (last lines) ---\n{}", s.path.string(), step.line, why, tail));
    };
    auto c = connect(s.listener);
    std::vector<std::string> last;
    auto line = [&](const Step& step) {
        try {
            return c->read_line(kTimeout);
        } catch (const std::exception& e) {
            fail(step, e.what());
        }
        return std::optional<std::string>();
    };
    const bool imap = s.listener.rfind("imap", 0) == 0;
    for (auto& step : s.steps) {
        if (step.kind == "C") {
            transcript.push_back("C: " + step.arg);
            c->client_send(step.arg + "\r\n");
        } else if (step.kind == "C<raw>") {
            auto data = unescape(step.arg);
            transcript.push_back("C<raw>: " + data.substr(0, 200));
            c->client_send(data);
        } else if (step.kind == "S") {
            auto l = line(step);
            transcript.push_back("S: " + l.value_or("<EOF>"));
            if (!l) fail(step, "expected /" + step.arg + "/, got EOF");
            last = {*l};
            if (!full_match(step.arg, *l)) fail(step, "expected /" + step.arg + "/, got " + *l);
        } else if (step.kind == "S*") {
            last.clear();
            for (;;) {
                auto l = line(step);
                if (!l) break;
                transcript.push_back("S: " + *l);
                last.push_back(*l);
                // SMTP: up to the line without "NNN-"; IMAP: up to the first line that is not
                // untagged ("* ..."), the tagged end or a continuation.
                if (imap ? l->rfind("* ", 0) != 0 : (l->size() < 4 || (*l)[3] != '-')) break;
            }
            if (last.empty()) fail(step, "expected a reply ending /" + step.arg + "/, got EOF");
            if (!full_match(step.arg, last.back())) fail(step, "expected a reply ending /" + step.arg + "/, got " + last.back());
        } else if (step.kind == "S.") {
            auto first = line(step);
            if (!first) fail(step, "expected a response /" + step.arg + "/, got EOF");
            transcript.push_back("S: " + *first);
            last.clear();
            if (first->rfind("+OK", 0) == 0)
                for (;;) {
                    auto l = line(step);
                    if (!l || *l == ".") break;
                    last.push_back(l->rfind(".", 0) == 0 ? l->substr(1) : *l);
                }
            if (!full_match(step.arg, *first)) fail(step, "expected /" + step.arg + "/, got " + *first);
        } else if (step.kind == "S+") {
            bool any = false;
            for (auto& l : last) any = any || full_match(step.arg, l);
            if (!any) fail(step, "no line of the reply matches /" + step.arg + "/");
        } else if (step.kind == "S-") {
            for (auto& l : last)
                if (full_match(step.arg, l)) fail(step, "reply line " + l + " must not match /" + step.arg + "/");
        } else if (step.kind == "S<eof>") {
            auto l = line(step);
            if (l) fail(step, "expected the connection closed, got " + *l);
            transcript.push_back("S: <EOF>");
        } else if (step.kind == "TLS") {
            transcript.push_back("TLS handshake");
            if (!c->client_tls()) fail(step, "TLS: the server did not start TLS");
        } else if (step.kind == "RECONNECT") {
            transcript.push_back("RECONNECT");
            c->client_close();
            c = connect(s.listener);
        } else if (step.kind == "inject") {
            transcript.push_back("inject: " + step.arg);
            inject(step.arg);
        } else if (step.kind == "wait") {
            transcript.push_back("wait: " + step.arg);
            auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::stoi(step.arg));
            while (std::chrono::steady_clock::now() < until) io_.run_one_until(until);
        }
    }
    c->client_close();
    inject("none");
}

}  // namespace pillarbox::scripts
