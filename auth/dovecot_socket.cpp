// Dovecot-compatible auth socket: listener, file ownership, and one Connection per client around
// a DovecotProtocol session (see dovecot_socket.hpp).
#include "auth/dovecot_socket.hpp"

#include <asio/steady_timer.hpp>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "auth/authenticator.hpp"
#include "server/config.hpp"
#include "server/connection.hpp"
#include "server/log.hpp"

namespace pillarbox::auth {

using stream = asio::local::stream_protocol;

namespace {

constexpr std::string_view kService = "auth";

std::runtime_error fail(const std::string& path, const std::string& what) {
    return std::runtime_error(fmt::format("auth_socket_path {}: {}", path, what));
}

uid_t lookup_user(const std::string& name) {
    if (name.empty()) return static_cast<uid_t>(-1);
    std::vector<char> buf(1024);
    for (;;) {
        passwd pw{}, *found = nullptr;
        int rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
        if (rc == ERANGE && buf.size() < (1u << 20)) {
            buf.resize(buf.size() * 4);
            continue;
        }
        if (rc != 0) throw std::runtime_error(fmt::format("auth_socket_user {}: lookup failed: {}", name, std::strerror(rc)));
        if (!found) throw std::runtime_error(fmt::format("auth_socket_user {}: no such user", name));
        return pw.pw_uid;
    }
}

gid_t lookup_group(const std::string& name) {
    if (name.empty()) return static_cast<gid_t>(-1);
    std::vector<char> buf(1024);
    for (;;) {
        group gr{}, *found = nullptr;
        int rc = getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found);
        if (rc == ERANGE && buf.size() < (1u << 20)) {
            buf.resize(buf.size() * 4);
            continue;
        }
        if (rc != 0) throw std::runtime_error(fmt::format("auth_socket_group {}: lookup failed: {}", name, std::strerror(rc)));
        if (!found) throw std::runtime_error(fmt::format("auth_socket_group {}: no such group", name));
        return gr.gr_gid;
    }
}

// Whether some process still accepts on the socket at `path` (another Pillarbox, or Dovecot).
bool socket_in_use(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    int err = errno;
    ::close(fd);
    // A full backlog (EAGAIN) also means someone is listening.
    return rc == 0 || err == EAGAIN;
}

}  // namespace

// One client (a Postfix smtpd process): the Dovecot protocol over a Connection's buffers.
class DovecotSession final : public Session {
public:
    DovecotSession(SessionIo& io, Authenticator& auth, DovecotIdentity identity, const DovecotProtocolLimits& limits)
        : io_(io), protocol_(auth, std::move(identity), [this](std::string_view bytes) { io_.send(bytes); }, limits, io.info().id) {}

    void on_start() override {
        log::line(log::Level::Debug, kService, io_.info().id, "dovecot auth client connected");
        protocol_.start();
    }
    std::size_t on_input(std::string_view data) override {
        // The protocol keeps a partial line itself; what it emitted before failing still goes out.
        if (!protocol_.feed(data)) io_.close();
        return data.size();
    }
    // The socket has no refusals, idle timeout or goodbye: its clients are closed at once.
    void on_refused(std::string_view) override { io_.close(); }
    void on_timeout() override { io_.close(); }
    void on_shutdown() override { io_.close(); }
    void on_close() override {
        // Requests still in flight can't be answered to a client that left or broke the protocol.
        protocol_.abort();
        if (protocol_.failed())
            log::line(log::Level::Info, kService, io_.info().id, "dovecot auth client disconnected: {}", protocol_.error());
        else
            log::line(log::Level::Debug, kService, io_.info().id, "dovecot auth client disconnected");
    }

private:
    SessionIo& io_;
    DovecotProtocol protocol_;
};

DovecotAuthSocket::Settings DovecotAuthSocket::Settings::from(const config::Config& c) {
    Settings s;
    s.path = c.get("auth_socket_path");
    s.user = c.get("auth_socket_user");
    s.group = c.get("auth_socket_group");
    s.mode = static_cast<mode_t>(std::stoul(c.get("auth_socket_mode"), nullptr, 8));
    return s;
}

DovecotAuthSocket::DovecotAuthSocket(asio::io_context& loop, Authenticator& auth, Settings settings)
    : loop_(loop), auth_(auth), settings_(std::move(settings)), acceptor_(loop) {
    auto cs = std::make_shared<ConnectionSettings>();
    cs->name = "auth_socket";
    cs->log_service = std::string(kService);
    cs->idle_timeout = kNoIdleTimeout;  // Postfix keeps its connection for as long as smtpd runs
    cs->input_limit = settings_.input_limit;
    cs->output_limit = settings_.output_limit;  // unsent replies above this: stop reading that client (as Dovecot does)
    cs->log_connections = false;  // DovecotSession logs its clients at debug level
    cs->wipe_input = true;        // AUTH and CONT lines carry passwords
    connection_settings_ = std::move(cs);
}

DovecotAuthSocket::~DovecotAuthSocket() {
    stop();
    *alive_ = false;
}

void DovecotAuthSocket::start() {
    if (running_) return;
    const std::string& path = settings_.path;
    if (path.empty() || path[0] != '/') throw fail(path, "must be an absolute path");
    if (path.size() >= sizeof(sockaddr_un{}.sun_path))
        throw fail(path, fmt::format("longer than the {} bytes a unix socket path may have", sizeof(sockaddr_un{}.sun_path) - 1));
    if ((settings_.mode & ~07777u) != 0) throw fail(path, fmt::format("bad mode {:o}", settings_.mode));

    std::string dir = std::filesystem::path(path).parent_path().string();
    struct stat st{};
    if (::stat(dir.c_str(), &st) != 0)
        throw fail(path, fmt::format("directory {} is not usable: {}", dir, std::strerror(errno)));
    if (!S_ISDIR(st.st_mode)) throw fail(path, fmt::format("{} is not a directory", dir));

    uid_t uid = lookup_user(settings_.user);
    gid_t gid = lookup_group(settings_.group);

    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) throw fail(path, "exists and is not a socket; refusing to remove it");
        if (socket_in_use(path)) throw fail(path, "another process is listening on it");
        // Left behind by a crash or kill -9: nobody accepts on it any more.
        if (::unlink(path.c_str()) != 0 && errno != ENOENT)
            throw fail(path, fmt::format("cannot remove the stale socket: {}", std::strerror(errno)));
    } else if (errno != ENOENT) {
        throw fail(path, std::strerror(errno));
    }

    std::error_code ec;
    acceptor_.open(stream(), ec);
    if (ec) throw fail(path, "cannot create socket: " + ec.message());
    // On Linux bind() creates the file with the unbound socket's mode minus the umask, so the file
    // never exists with wider permissions than configured, not even until the chmod below.
    (void)::fchmod(acceptor_.native_handle(), settings_.mode);
    acceptor_.bind(stream::endpoint(path), ec);
    if (ec) {
        acceptor_.close();
        throw fail(path, "cannot bind: " + ec.message());
    }
    auto undo = [&](const std::string& what) {
        std::error_code ignored;
        acceptor_.close(ignored);
        ::unlink(path.c_str());
        return fail(path, what);
    };
    if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) && ::lchown(path.c_str(), uid, gid) != 0)
        throw undo(fmt::format("cannot set owner {}:{}: {}", settings_.user, settings_.group, std::strerror(errno)));
    if (::chmod(path.c_str(), settings_.mode) != 0)
        throw undo(fmt::format("cannot set mode {:04o}: {}", settings_.mode, std::strerror(errno)));
    if (::lstat(path.c_str(), &st) != 0) throw undo(std::strerror(errno));
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    acceptor_.listen(stream::socket::max_listen_connections, ec);
    if (ec) throw undo("cannot listen: " + ec.message());

    running_ = true;
    log::info(kService, "dovecot auth socket listening on {} (owner {}:{} mode {:04o})", path,
              settings_.user.empty() ? std::to_string(::geteuid()) : settings_.user,
              settings_.group.empty() ? std::to_string(::getegid()) : settings_.group, settings_.mode);
    accept_loop();
}

void DovecotAuthSocket::accept_loop() {
    auto alive = alive_;
    acceptor_.async_accept([this, alive](std::error_code ec, stream::socket socket) {
        if (!*alive || !running_) return;
        if (ec) {
            if (ec == asio::error::operation_aborted) return;
            log::warning(kService, "dovecot auth socket {}: accept failed: {}", settings_.path, ec.message());
            // EMFILE and friends: try again rather than stop serving Postfix for good.
            auto timer = std::make_shared<asio::steady_timer>(loop_, std::chrono::milliseconds(100));
            timer->async_wait([this, alive, timer](std::error_code) {
                if (*alive && running_) accept_loop();
            });
            return;
        }
        if (connections_.size() >= settings_.max_connections) {
            log::warning(kService, "dovecot auth socket {}: {} connections already; closing a new one",
                         settings_.path, connections_.size());
            std::error_code ignored;
            socket.close(ignored);
        } else {
            unsigned long cuid = next_cuid_++;
            auto factory = [this, cuid](SessionIo& io) {
                return std::make_unique<DovecotSession>(io, auth_, DovecotIdentity::make(cuid), settings_.limits);
            };
            auto conn = std::make_shared<Connection>(std::move(socket), connection_settings_, fmt::format("auth-{}", cuid),
                                                     factory, [this, alive, cuid] {
                                                         if (*alive) connections_.erase(cuid);
                                                     });
            connections_[cuid] = conn;
            conn->start();
        }
        accept_loop();
    });
}

void DovecotAuthSocket::stop() {
    if (!running_) return;
    running_ = false;
    std::error_code ec;
    acceptor_.close(ec);
    // abort() may end a connection; work on a copy so its on_closed can't invalidate the loop.
    auto conns = connections_;
    connections_.clear();
    for (auto& [cuid, c] : conns) c->abort();
    remove_socket_file();
    log::info(kService, "dovecot auth socket {} closed", settings_.path);
}

void DovecotAuthSocket::remove_socket_file() {
    struct stat st{};
    if (::lstat(settings_.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev_ && st.st_ino == ino_)
        ::unlink(settings_.path.c_str());
}

}  // namespace pillarbox::auth
