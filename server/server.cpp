// Server: runtime building, listeners, limits, reload and drain (see server.hpp).
#include "server.hpp"
#include "networks.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <cctype>
#include <random>

#include <sys/resource.h>

#include "connection.hpp"
#include "log.hpp"
#include "loop_guard.hpp"

namespace pillarbox {

using asio::ip::tcp;
using config::Diagnostic;

namespace {

bool valid_hostname(const std::string& h) {
    if (h.empty() || h.size() > 253 || h.front() == '.' || h.back() == '.') return false;
    return std::all_of(h.begin(), h.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '.'; });
}



// Raises the soft RLIMIT_NOFILE to the hard limit (a default soft limit of 1024 can't hold
// connection_limit connections). Returns the hard limit, 0 when unlimited or unknown.
std::uint64_t raise_open_files_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur != rl.rlim_max) {
        rlimit want = rl;
        want.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &want) != 0)
            log::warning("master", "cannot raise the open files limit from {} to {}: {}", rl.rlim_cur, rl.rlim_max,
                         std::error_code(errno, std::generic_category()).message());
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
    return rl.rlim_cur;
}

}  // namespace

// Descriptors kept back from connections: listening sockets, the log, the accounts database,
// DNS sockets, per worker thread a message file, its folder and an index database with its
// -wal and -shm files, and those three for each account the store keeps open and each idle
// read connection it keeps (StoreSettings::idle_read_connections, 64), at most a quarter of the
// limit. Each connection is then counted as two descriptors: its socket and the message file it
// may be delivering. Documented in docs/operations.md.
std::uint64_t connection_capacity(std::uint64_t open_files, std::size_t worker_threads, std::size_t open_accounts) {
    if (open_files == 0) return UINT64_MAX;
    const std::uint64_t indexes = std::min<std::uint64_t>(3 * (static_cast<std::uint64_t>(open_accounts) + 64), open_files / 4);
    const std::uint64_t reserve = 64 + 16 * static_cast<std::uint64_t>(worker_threads) + indexes;
    return open_files > reserve + 2 ? (open_files - reserve) / 2 : 1;
}

ServerSettings ServerSettings::from(const config::Config& c) {
    ServerSettings s;
    s.data_directory = c.get("data_directory");
    s.hostname = c.get("myhostname");
    s.connection_limit = c.get_count("connection_limit");
    s.stress_threshold_percent = c.get_count("connection_stress_threshold");
    s.stress_idle_timeout = c.get_time("connection_stress_idle_timeout");
    s.shutdown_timeout = c.get_time("shutdown_timeout");
    s.worker_threads = c.get_count("worker_threads");
    s.open_accounts_limit = c.get_count("open_accounts_limit");
    s.inet_interfaces = c.get_list("inet_interfaces");
    return s;
}

std::shared_ptr<Runtime> build_runtime(const config::Config& cfg, std::vector<Diagnostic>& diags, bool create_files,
                                       const ProtocolRegistry* protocols) {
    blocking_call("build_runtime");
    auto has_error = [&] {
        return std::any_of(diags.begin(), diags.end(), [](const Diagnostic& d) { return d.severity == Diagnostic::Error; });
    };
    if (has_error()) return nullptr;
    auto rt = std::make_shared<Runtime>();
    rt->config = std::make_shared<const config::Config>(cfg);
    rt->settings = ServerSettings::from(cfg);
    auto where = [&](const std::string& name) {
        Diagnostic d;
        if (auto* s = cfg.setting(name)) { d.file = s->file; d.line = s->line; }
        else d.file = cfg.source().empty() ? "(defaults)" : cfg.source();
        return d;
    };
    auto error_at = [&](const std::string& name, std::string msg) {
        Diagnostic d = where(name);
        d.severity = Diagnostic::Error;
        d.message = std::move(msg);
        diags.push_back(std::move(d));
    };
    if (!valid_hostname(rt->settings.hostname))
        error_at("myhostname", fmt::format("myhostname \"{}\" is not a valid host name", rt->settings.hostname));
    if (rt->settings.data_directory.empty()) error_at("data_directory", "data_directory must not be empty");
    else if (create_files) {
        std::error_code ec;
        std::filesystem::create_directories(rt->settings.data_directory, ec);
        if (ec) error_at("data_directory", fmt::format("cannot create data_directory {}: {}", rt->settings.data_directory, ec.message()));
    }
    if (has_error()) return nullptr;

    // inet_interfaces: all | loopback-only | addresses
    std::vector<std::pair<asio::ip::address, bool>> wildcard;  // address, optional
    const auto& ifs = rt->settings.inet_interfaces;
    if (ifs.size() == 1 && ifs[0] == "all") {
        wildcard = {{asio::ip::address_v4::any(), false}, {asio::ip::address_v6::any(), true}};
    } else if (ifs.size() == 1 && ifs[0] == "loopback-only") {
        wildcard = {{asio::ip::address_v4::loopback(), false}, {asio::ip::address_v6::loopback(), true}};
    } else {
        for (auto& a : ifs) {
            std::error_code ec;
            auto addr = asio::ip::make_address(a, ec);
            if (ec) error_at("inet_interfaces", fmt::format("inet_interfaces: \"{}\" is not an IP address, all or loopback-only", a));
            else wildcard.push_back({addr, false});
        }
    }

    std::map<std::string, std::shared_ptr<tls::ServerContexts>> tls_cache;  // shared by equal settings
    for (auto& pname : cfg.listener_names()) {
        auto parsed = config::parse_listener_line(cfg.get(pname));
        if (!parsed) continue;  // already reported by the config parser
        auto ls = std::make_shared<ListenerState>();
        ls->name = pname.substr(config::kListenerPrefix.size());
        ls->line = *parsed.value;
        ls->tls_mode = ls->line.tls;
        config::Setting at = cfg.setting(pname) ? *cfg.setting(pname) : config::Setting{pname, cfg.get(pname), cfg.source(), 0};
        std::size_t before = diags.size();
        ls->config = ls->line.overrides.empty()
                         ? rt->config
                         : std::make_shared<const config::Config>(cfg.with_overrides(ls->line.overrides, at, diags));
        if (diags.size() != before && has_error()) continue;
        const config::Config& lc = *ls->config;
        if (protocols) ls->protocol = protocols->find(ls->line.protocol);
        ls->log_service = ls->protocol ? ls->protocol->log_service : "server";
        if (ls->protocol && ls->protocol->check_listener) {
            auto errors = ls->protocol->check_listener(lc);
            for (auto& e : errors) error_at(pname, fmt::format("{}: {}", pname, e));
            if (!errors.empty()) continue;
        }
        // Unserved protocols have no idle timeout parameter: their connections are dropped at accept.
        if (ls->protocol) ls->idle_timeout = lc.get_time(ls->protocol->idle_timeout_parameter);
        ls->tls_handshake_timeout = lc.get_time("tls_handshake_timeout");
        ls->input_limit = lc.get_size("input_buffer_limit");
        ls->output_limit = lc.get_size("output_buffer_limit");
        ls->client_limit = lc.get_count("client_connection_limit");
        ls->client_limit_exceptions = lc.get_cidrs("client_connection_limit_exceptions");
        ls->client_rate_limit = lc.get_count("client_connection_rate_limit");
        ls->client_rate_unit = lc.get_time("client_connection_rate_time_unit");
        if (ls->line.tls != config::TlsMode::None) {
            auto ts = tls::TlsSettings::from(lc);
            std::string key = fmt::format("{}\n{}\n{}\n{}\n{}", ts.cert_file, ts.key_file, ts.sni_maps, ts.min_version, ts.ciphers);
            auto& ctx = tls_cache[key];
            if (!ctx) {
                std::string err;
                ctx = tls::ServerContexts::build(ts, rt->settings.hostname, rt->settings.data_directory, create_files, err);
                if (!ctx && !err.empty()) {
                    error_at(pname, fmt::format("{}: TLS: {}", pname, err));
                    continue;
                }
            }
            ls->tls = ctx;
        }
        for (auto& ep : ls->line.endpoints) {
            std::vector<std::pair<asio::ip::address, bool>> addrs;
            if (ep.host.empty()) addrs = wildcard;
            else addrs = {{asio::ip::make_address(ep.host), false}};
            for (auto& [addr, optional] : addrs) {
                tcp::endpoint e(addr, ep.port);
                auto [it, fresh] = rt->endpoints.emplace(e, ls->name);
                if (!fresh) {
                    error_at(pname, fmt::format("{}: address {} is already used by listen_{}", pname,
                                                 ep.host.empty() ? fmt::format("{} ({})", ep.port, addr.to_string()) : ep.to_string(),
                                                 it->second));
                    continue;
                }
                if (optional) rt->optional_endpoints.insert(e);
            }
        }
        rt->listeners[ls->name] = ls;
    }
    if (has_error()) return nullptr;
    return rt;
}

struct Server::Acceptor {
    explicit Acceptor(asio::io_context& io) : acceptor(io), retry(io) {}
    tcp::acceptor acceptor;
    asio::steady_timer retry;
    std::chrono::milliseconds backoff{0};  // after a failed accept
    std::shared_ptr<const ListenerState> listener;
    bool closed = false;
};

Server::Server(asio::io_context& loop, config::Environment env, std::string config_path, bool config_must_exist,
               ProtocolRegistry protocols)
    : loop_(loop),
      env_(std::move(env)),
      config_path_(std::move(config_path)),
      config_must_exist_(config_must_exist),
      protocols_(std::move(protocols)),
      signals_(loop),
      shutdown_timer_(loop) {
    std::random_device rd;
    next_id_ = (static_cast<std::uint64_t>(rd()) & 0xfffff) << 12;  // ids differ between runs
}

Server::~Server() {
    for (auto& [id, weak] : connections_)
        if (auto c = weak.lock()) c->abort();
    if (workers_) workers_->join();
}

std::shared_ptr<Runtime> Server::load(std::vector<Diagnostic>& diags) const {
    blocking_call("Server::load");
    auto cfg = config::Config::load_file(config_path_, config_must_exist_, env_, diags);
    return build_runtime(cfg, diags, true, &protocols_);
}

static void report(const std::vector<Diagnostic>& diags) {
    for (auto& d : diags) {
        if (d.severity == Diagnostic::Error) log::error("master", "{}", d.located());
        else log::warning("master", "{}", d.located());
    }
}

static void configure_logging(const config::Config& c) {
    auto err = log::configure(c.get("syslog_name"), log::parse_level(c.get("log_level")), c.get("log_file"));
    if (!err.empty()) log::error("master", "{}", err);
}

bool Server::start() {
    std::vector<Diagnostic> diags;
    auto rt = load(diags);
    if (rt) configure_logging(*rt->config);
    report(diags);
    if (!rt) {
        log::error("master", "configuration {} has errors; not starting", config_path_);
        return false;
    }
    workers_ = std::make_unique<WorkerPool>(loop_, rt->settings.worker_threads);
    open_files_limit_ = raise_open_files_limit();
    if (!apply(rt)) return false;
    update_limits(*rt, true);
    log::info("master", "daemon started -- version {}, configuration {}{}", PILLARBOX_VERSION, config_path_,
              rt->config->source().empty() ? " (not found: embedded defaults)" : "");
    return true;
}

namespace {

std::string endpoint_text(const tcp::endpoint& e) {
    return e.address().is_v6() ? fmt::format("[{}]:{}", e.address().to_string(), e.port())
                               : fmt::format("{}:{}", e.address().to_string(), e.port());
}

std::error_code bind_acceptor(tcp::acceptor& a, const tcp::endpoint& ep) {
    std::error_code ec;
    a.open(ep.protocol(), ec);
    if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && ep.address().is_v6()) a.set_option(asio::ip::v6_only(true), ec);
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        std::error_code ignored;
        a.close(ignored);
    }
    return ec;
}

}  // namespace

// Binds what is new, closes what is gone, and points kept endpoints at their new listener state.
// All or nothing: if a new endpoint cannot be bound, everything is put back as it was.
bool Server::apply(std::shared_ptr<Runtime> rt) {
    std::map<tcp::endpoint, std::shared_ptr<Acceptor>> next, opened, released;
    auto close_acceptor = [](Acceptor& a) {
        std::error_code ec;
        a.closed = true;
        a.acceptor.close(ec);
        a.retry.cancel();
    };
    auto restore = [&] {
        for (auto& [ep, a] : opened) close_acceptor(*a);
        for (auto& [ep, old] : released) {
            // Our own port, free a moment ago: rebinding it fails only if someone took it meanwhile.
            auto again = std::make_shared<Acceptor>(loop_);
            if (auto ec = bind_acceptor(again->acceptor, ep)) {
                log::error("master", "listen_{}: lost {} while undoing a reload: {}", old->listener->name, endpoint_text(ep), ec.message());
                acceptors_.erase(ep);
                continue;
            }
            again->listener = old->listener;
            acceptors_[ep] = again;
            accept_loop(again);
        }
    };
    for (auto& [ep, lname] : rt->endpoints) {
        if (auto it = acceptors_.find(ep); it != acceptors_.end()) {
            next[ep] = it->second;
            continue;
        }
        auto a = std::make_shared<Acceptor>(loop_);
        auto ec = bind_acceptor(a->acceptor, ep);
        if (ec == asio::error::address_in_use) {
            // Perhaps held by one of our own listeners that this config drops (0.0.0.0:25 giving
            // way to 127.0.0.1:25): release those on the same port and try again.
            bool freed = false;
            for (auto it = acceptors_.begin(); it != acceptors_.end();) {
                if (it->first.port() == ep.port() && !rt->endpoints.count(it->first)) {
                    close_acceptor(*it->second);
                    released[it->first] = it->second;
                    it = acceptors_.erase(it);
                    freed = true;
                } else {
                    ++it;
                }
            }
            if (freed) ec = bind_acceptor(a->acceptor, ep);
        }
        if (ec) {
            if (rt->optional_endpoints.count(ep) &&
                (ec == asio::error::address_family_not_supported || ec == std::errc::address_not_available)) {
                log::warning("master", "listen_{}: not listening on {}: {}", lname, ep.address().to_string(), ec.message());
                continue;
            }
            log::error("master", "listen_{}: cannot listen on {}: {}{}", lname, endpoint_text(ep), ec.message(),
                       ep.port() < 1024 && !env_.root ? " (ports below 1024 need root)" : "");
            restore();
            return false;
        }
        next[ep] = a;
        opened[ep] = a;
    }
    for (auto& [ep, a] : acceptors_) {
        if (next.count(ep)) continue;
        close_acceptor(*a);
        released[ep] = a;
    }
    for (auto& [ep, a] : released)
        log::info("master", "listen_{}: stopped listening on {}", a->listener->name, endpoint_text(ep));
    for (auto& [ep, a] : next) a->listener = rt->listeners.at(rt->endpoints.at(ep));
    acceptors_ = std::move(next);
    runtime_ = rt;
    for (auto& [ep, a] : opened) {
        log::info("master", "listen_{}: listening on {} ({} {})", a->listener->name, endpoint_text(ep),
                  config::to_string(a->listener->line.protocol), config::to_string(a->listener->line.tls));
        accept_loop(a);
    }
    return true;
}

// The effective connection limit and the stress threshold, from the config and the open files
// limit; logged at start and when a reload changes them.
void Server::update_limits(const Runtime& rt, bool starting) {
    const auto& s = rt.settings;
    auto capacity = connection_capacity(open_files_limit_, s.worker_threads, s.open_accounts_limit);
    auto limit = std::min<std::uint64_t>(s.connection_limit, capacity);
    bool changed = limit != effective_limit_;
    effective_limit_ = limit;
    stress_threshold_ = s.stress_threshold_percent == 0 ? 0 : std::max<std::uint64_t>(1, limit * s.stress_threshold_percent / 100);
    load_->stress_idle_timeout = s.stress_idle_timeout;
    std::string files = open_files_limit_ ? std::to_string(open_files_limit_) : "unlimited";
    if (limit < s.connection_limit && (starting || changed))
        log::warning("master", "connection limit lowered from {} to {}: the open files limit is {} (raise its hard limit: "
                               "ulimit -Hn, systemd LimitNOFILE=, docker run --ulimit nofile=)",
                     s.connection_limit, limit, files);
    else if (starting || changed)
        log::info("master", "connection limit {} (open files limit {})", limit, files);
    if (!starting) update_stress();
}

// Stress mode, after Postfix's: entered when connection_stress_threshold connections are open,
// left when the count falls 10 % below it (so a count hovering at the threshold doesn't flap).
void Server::update_stress() {
    auto n = connections_.size();
    bool was = load_->stressed;
    if (!was && stress_threshold_ > 0 && n >= stress_threshold_) {
        load_->stressed = true;
        log::warning("master", "server is under stress: {} connections (connection_stress_threshold {} of {}): "
                               "idle timeout {}s before login, error limits 1",
                     n, stress_threshold_, effective_limit_,
                     std::chrono::duration_cast<std::chrono::seconds>(load_->stress_idle_timeout).count());
    } else if (was && (stress_threshold_ == 0 || n + std::max<std::uint64_t>(1, stress_threshold_ / 10) <= stress_threshold_)) {
        load_->stressed = false;
        log::info("master", "server is no longer under stress: {} connections", n);
        // Deadlines already shortened stay so (as a Postfix smtpd started under stress keeps its
        // short timeouts): a client gets its normal timeout back with its next command. Else
        // shedding the first few idle connections would end stress and reprieve the rest.
        return;
    } else {
        return;
    }
    auto conns = connections_;
    for (auto& [id, weak] : conns)
        if (auto c = weak.lock()) c->load_changed();
}

void Server::accept_loop(std::shared_ptr<Acceptor> a) {
    a->acceptor.async_accept([this, a](std::error_code ec, tcp::socket socket) {
        if (a->closed || stopping_) return;
        if (!ec) {
            if (accept_failures_ > 0) {
                log::info("master", "accepting connections again after {} failed accepts", accept_failures_);
                accept_failures_ = 0;
            }
            a->backoff = std::chrono::milliseconds(0);
            on_accept(std::move(socket), a->listener);
            accept_loop(a);
            return;
        }
        if (ec == asio::error::operation_aborted) return;
        if (ec == asio::error::connection_aborted) {  // the client gave up before we took it
            accept_loop(a);
            return;
        }
        // EMFILE, ENFILE and the like: pause this listener instead of spinning on a connection
        // that stays queued, and log once per burst rather than once per failure.
        if (accept_failures_++ == 0)
            log::warning("master", "listen_{}: accept: {} ({} connections open, open files limit {}); pausing accepts",
                         a->listener->name, ec.message(), connections_.size(),
                         open_files_limit_ ? std::to_string(open_files_limit_) : "unlimited");
        a->backoff = std::clamp(a->backoff * 2, std::chrono::milliseconds(100), std::chrono::milliseconds(1000));
        a->retry.expires_after(a->backoff);
        a->retry.async_wait([this, a](std::error_code) {
            if (!a->closed && !stopping_) accept_loop(a);
        });
    });
}

void Server::on_accept(tcp::socket socket, const std::shared_ptr<const ListenerState>& listener) {
    std::error_code ec;
    // The Connection writes whatever has queued in one go, so Nagle's algorithm only adds
    // delay: the tail of a large POP3 RETR waited for the client's delayed ACK (40 ms).
    socket.set_option(tcp::no_delay(true), ec);
    auto peer = socket.remote_endpoint(ec);
    if (ec) return;
    if (!listener->protocol) {
        log::error("master", "listen_{}: no {} service in this build", listener->name, config::to_string(listener->line.protocol));
        return;
    }
    std::uint64_t id = ++next_id_;
    std::string cid = fmt::format("{:08X}", id);
    std::string refusal;
    std::string key = client_key(peer.address());  // an IPv6 client counts by its /64
    if (connections_.size() >= effective_limit_) {
        refusal = fmt::format("too many connections (connection_limit {})", effective_limit_);
    } else if (listener->client_limit > 0 && per_client_.open(listener->name, key) >= listener->client_limit &&
               !in_networks(peer.address(), listener->client_limit_exceptions)) {
        refusal = fmt::format("too many connections from {} (client_connection_limit {})", key, listener->client_limit);
    } else if (listener->client_rate_limit > 0 && !in_networks(peer.address(), listener->client_limit_exceptions) &&
               !rate_.allow(listener->name, key, listener->client_rate_limit, listener->client_rate_unit,
                            std::chrono::steady_clock::now())) {
        refusal = fmt::format("connection rate limit exceeded by {} (client_connection_rate_limit {} per {}s)", key,
                              listener->client_rate_limit,
                              std::chrono::duration_cast<std::chrono::seconds>(listener->client_rate_unit).count());
    }
    if (!refusal.empty()) {
        // Refusals are cheap but not free: past this many at once, drop without a reply.
        if (refusing_ >= std::max<std::size_t>(10, effective_limit_ / 10)) return;
        ++refusing_;
        auto conn = std::make_shared<Connection>(std::move(socket), listener, cid, listener->protocol->make_session,
                                                 [this] { --refusing_; });
        conn->start(refusal);
        return;
    }
    per_client_.add(listener->name, key);
    auto conn = std::make_shared<Connection>(std::move(socket), listener, cid, listener->protocol->make_session,
                                             [this, id, lname = listener->name, key] {
        connections_.erase(id);
        per_client_.remove(lname, key);
        update_stress();
        stop_if_drained();
    });
    conn->set_load(load_);
    connections_[id] = conn;
    conn->start();
    if (stopping_) conn->begin_shutdown();
    update_stress();
}

void Server::handle_signals() {
    signals_.add(SIGHUP);
    signals_.add(SIGTERM);
    signals_.add(SIGINT);
    struct Handler {
        Server* self;
        void operator()(std::error_code ec, int sig) const {
            if (ec) return;
            if (sig == SIGHUP) {
                log::info("master", "reload -- SIGHUP received");
                self->reload();
            } else {
                log::info("master", "terminating on signal {}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                self->shutdown();
            }
            if (!self->stopping_ || sig == SIGHUP) self->signals_.async_wait(*this);
        }
    };
    signals_.async_wait(Handler{this});
}

void Server::reload(std::function<void(bool)> done) {
    if (stopping_ || reloading_) {
        log::warning("master", "reload: ignored, {}", stopping_ ? "shutting down" : "a reload is already in progress");
        if (done) done(false);
        return;
    }
    reloading_ = true;
    workers_->run(
        [this] {
            auto diags = std::make_shared<std::vector<Diagnostic>>();
            auto rt = load(*diags);
            return std::make_pair(rt, diags);
        },
        [this, done](std::pair<std::shared_ptr<Runtime>, std::shared_ptr<std::vector<Diagnostic>>> r) {
            reloading_ = false;
            auto& [rt, diags] = r;
            report(*diags);
            bool ok = false;
            if (!rt) {
                log::error("master", "reload: configuration {} has errors; keeping the running configuration", config_path_);
            } else if (stopping_) {
                log::info("master", "reload: ignored during shutdown");
            } else if (!apply(rt)) {
                log::error("master", "reload: keeping the running configuration");
            } else {
                configure_logging(*rt->config);
                update_limits(*rt, false);
                if (rt->settings.worker_threads != workers_->size())
                    log::warning("master", "reload: worker_threads changes take effect after a restart");
                log::info("master", "reload -- configuration {} in force, {} connections kept", config_path_, connections_.size());
                ok = true;
                for (auto& hook : reload_hooks_) hook();
            }
            if (done) done(ok);
        });
}

void Server::shutdown() {
    if (stopping_) return;
    stopping_ = true;
    for (auto& hook : shutdown_hooks_) hook();
    for (auto& [ep, a] : acceptors_) {
        std::error_code ec;
        a->closed = true;
        a->acceptor.close(ec);
        a->retry.cancel();
    }
    log::info("master", "stopped accepting; waiting up to {}s for {} connections",
              std::chrono::duration_cast<std::chrono::seconds>(runtime_->settings.shutdown_timeout).count(), connections_.size());
    shutdown_timer_.expires_after(runtime_->settings.shutdown_timeout);
    shutdown_timer_.async_wait([this](std::error_code ec) {
        if (ec) return;
        if (!connections_.empty())
            log::warning("master", "shutdown_timeout reached: closing {} connections", connections_.size());
        auto conns = connections_;
        for (auto& [id, weak] : conns)
            if (auto c = weak.lock()) c->abort();
    });
    auto conns = connections_;
    for (auto& [id, weak] : conns)
        if (auto c = weak.lock()) c->begin_shutdown();
    stop_if_drained();
}

void Server::stop_if_drained() {
    if (!stopping_ || !connections_.empty()) return;
    shutdown_timer_.cancel();
    std::error_code ec;
    signals_.cancel(ec);
    log::info("master", "daemon stopped");
}

std::vector<tcp::endpoint> Server::bound_endpoints() const {
    std::vector<tcp::endpoint> out;
    for (auto& [ep, a] : acceptors_) out.push_back(ep);
    return out;
}

}  // namespace pillarbox
