// Connection: reader, writer and idle-watchdog coroutines around one stream (see connection.hpp).
#include "connection.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <openssl/ssl.h>

#include <string.h>

#include <algorithm>

#include "log.hpp"

namespace pillarbox {

using asio::redirect_error;
using asio::use_awaitable;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {
constexpr std::chrono::milliseconds kCloseGrace = 10s;  // after a timeout or refusal, how long the goodbye may take
constexpr auto kTlsCloseTimeout = 5s;  // how long writing the close_notify alert may take
// Input is read into one buffer per loop thread and copied out (decoded) before the next wait,
// so an idle connection holds no read buffer.
constexpr std::size_t kReadChunk = 64 * 1024;
// Buffers bigger than this are given back once the connection has nothing in flight.
constexpr std::size_t kIdleCapacity = 4 * 1024;

// from + d, or the end of time when that is past it (kNoIdleTimeout).
Clock::time_point deadline_after(Clock::time_point from, std::chrono::milliseconds d) {
    auto room = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::time_point::max() - from);
    return d >= room ? Clock::time_point::max() : from + d;
}

// explicit_bzero: the compiler may not drop stores to memory that is about to be reused.
void wipe(char* p, std::size_t n) { ::explicit_bzero(p, n); }
}  // namespace

Connection::Accepted Connection::accepted(asio::ip::tcp::socket socket) {
    ConnectionInfo a;
    std::error_code ec;
    auto peer = socket.remote_endpoint(ec);
    if (!ec) {
        a.peer_ip = peer.address().is_v6() && peer.address().to_v6().is_v4_mapped()
                        ? asio::ip::make_address_v4(asio::ip::v4_mapped, peer.address().to_v6()).to_string()
                        : peer.address().to_string();
        a.peer_port = peer.port();
    }
    auto local = socket.local_endpoint(ec);
    if (!ec) {
        a.local_ip = local.address().to_string();
        a.local_port = local.port();
    }
    return {Stream(std::move(socket)), std::move(a)};
}

Connection::Accepted Connection::accepted(asio::local::stream_protocol::socket socket) {
    ConnectionInfo a;
    std::error_code ec;
    auto local = socket.local_endpoint(ec);
    if (!ec) a.local_ip = local.path();
    return {Stream(std::move(socket)), std::move(a)};
}

Connection::Connection(asio::ip::tcp::socket socket, std::shared_ptr<const ConnectionSettings> settings, std::string id,
                       const SessionFactory& factory, std::function<void()> on_closed)
    : Connection(accepted(std::move(socket)), std::move(settings), std::move(id), factory, std::move(on_closed)) {}

Connection::Connection(asio::local::stream_protocol::socket socket, std::shared_ptr<const ConnectionSettings> settings,
                       std::string id, const SessionFactory& factory, std::function<void()> on_closed)
    : Connection(accepted(std::move(socket)), std::move(settings), std::move(id), factory, std::move(on_closed)) {}

Connection::Connection(Accepted accepted, std::shared_ptr<const ConnectionSettings> settings, std::string id,
                       const SessionFactory& factory, std::function<void()> on_closed)
    : socket_(std::move(accepted.socket)),
      settings_(std::move(settings)),
      on_closed_(std::move(on_closed)),
      info_(std::move(accepted.addresses)),
      writer_wake_(socket_.get_executor()),
      reader_wake_(socket_.get_executor()),
      idle_timer_(socket_.get_executor()) {
    info_.id = std::move(id);
    info_.listener = settings_->name;
    info_.tls_mode = settings_->tls_mode;
    info_.config = settings_->config.get();
    session_ = factory(*this);
}

Connection::~Connection() = default;

void Connection::start(std::string refusal) {
    auto self = shared_from_this();
    refused_ = !refusal.empty();
    if (settings_->log_connections)
        log::line(log::Level::Info, settings_->log_service, info_.id, "connect from unknown[{}]:{} to {}", info_.peer_ip,
                  info_.peer_port, info_.listener);
    touch();
    if (refused_) {
        log::line(log::Level::Warning, settings_->log_service, info_.id, "refused unknown[{}]: {}", info_.peer_ip, refusal);
        deadline_ = deadline_after(Clock::now(), std::min(kCloseGrace, settings_->idle_timeout));
    }
    auto ex = socket_.get_executor();
    auto spawn = [&](asio::awaitable<void> (Connection::*fn)()) {
        asio::co_spawn(ex, [self, fn]() -> asio::awaitable<void> { co_await (self.get()->*fn)(); }, asio::detached);
    };
    spawns_ = 3;  // the reader, the writer and the watchdog's timer
    pending_refusal_ = std::move(refusal);
    // The watchdog first: co_spawn may run a coroutine at once, up to its first wait, and a
    // connection can end in that time (a client gone before the TLS handshake).
    arm_watchdog();
    spawn(&Connection::reader);
    spawn(&Connection::writer);
}

void Connection::touch() {
    last_active_ = Clock::now();
    deadline_ = deadline_after(last_active_, idle_timeout());
}

std::chrono::milliseconds Connection::base_idle_timeout() const {
    return session_idle_timeout_.value_or(settings_->idle_timeout);
}

std::chrono::milliseconds Connection::idle_timeout() const {
    auto base = base_idle_timeout();
    if (load_ && load_->stressed && !authenticated_) return std::min(base, load_->stress_idle_timeout);
    return base;
}

void Connection::load_changed() { rearm_idle(); }

void Connection::rearm_idle() {
    // Deadlines of goodbyes, handshakes and drains are not idle deadlines: leave them.
    if (finished_ || closing_ || timed_out_ || refused_ || in_handshake_ || draining_) return;
    deadline_ = deadline_after(last_active_, idle_timeout());
    idle_timer_.cancel();  // the watchdog re-arms at the new deadline (at once if it has passed)
}

void Connection::set_authenticated() {
    if (authenticated_) return;
    authenticated_ = true;
    load_changed();
}

void Connection::set_idle_timeout(std::optional<std::chrono::milliseconds> timeout) {
    session_idle_timeout_ = timeout;
    rearm_idle();
}

asio::awaitable<bool> Connection::handshake() {
    std::error_code ec;
    in_handshake_ = true;
    // A client that connects and never completes the handshake holds a connection for at most
    // tls_handshake_timeout (the watchdog aborts it), or the idle timeout if shorter (stress).
    auto handshake_timeout = std::min(settings_->tls_handshake_timeout, idle_timeout());
    auto handshake_deadline = deadline_after(Clock::now(), handshake_timeout);
    deadline_ = refused_ ? std::min(deadline_, handshake_deadline) : handshake_deadline;  // a refusal keeps its grace
    idle_timer_.cancel();
    tls_ = std::make_unique<TlsStream>(socket_, settings_->tls->context().native_handle());
    co_await tls_->handshake(ec);
    in_handshake_ = false;
    if (ec) {
        if (handshake_timed_out_)
            log::line(log::Level::Warning, settings_->log_service, info_.id,
                      "TLS handshake failed from {}[{}]: timed out after {}s (tls_handshake_timeout)", info_.peer_name, info_.peer_ip,
                      std::chrono::duration_cast<std::chrono::seconds>(handshake_timeout).count());
        else
            log::line(log::Level::Warning, settings_->log_service, info_.id, "TLS handshake failed from {}[{}]: {}",
                      info_.peer_name, info_.peer_ip, ec.message());
        co_return false;
    }
    SSL* ssl = tls_->native_handle();
    info_.tls_active = true;
    info_.tls_version = SSL_get_version(ssl);
    info_.tls_cipher = SSL_get_cipher_name(ssl);
    if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) info_.tls_sni = sni;
    log::line(log::Level::Info, settings_->log_service, info_.id,
              "{} TLS connection established from {}[{}]: {} with cipher {}{}",
              info_.tls_mode == config::TlsMode::Implicit ? "Implicit" : "STARTTLS", info_.peer_name, info_.peer_ip, info_.tls_version,
              info_.tls_cipher, info_.tls_sni.empty() ? "" : " sni=" + info_.tls_sni);
    co_return true;
}

asio::awaitable<void> Connection::reader() {
    std::error_code ec;
    if (info_.tls_mode == config::TlsMode::Implicit && settings_->tls) {
        if (!co_await handshake()) {
            closing_ = true;
            reader_done_ = true;
            closed_for_session();
            writer_wake_.cancel();
            if (--spawns_ == 0) finish();
            co_return;
        }
        touch();
    }
    if (refused_) {
        session_->on_refused(pending_refusal_);
        close();
    } else {
        session_->on_start();
    }
    while (!closing_) {
        if (tls_requested_) {
            // Wait until the session's "go ahead" reply is on the wire, then drop every byte the
            // client sent before the handshake: pipelined plaintext must never be read as if it
            // arrived under TLS (RFC 3207 section 4.2, CVE-2011-0411).
            while (!output_empty() || writing_) {
                reader_wake_.expires_at(Clock::time_point::max());
                co_await reader_wake_.async_wait(redirect_error(use_awaitable, ec));
                if (closing_) break;
            }
            if (closing_) break;
            if (!in_.empty()) {
                log::line(log::Level::Warning, settings_->log_service, info_.id,
                          "discarded {} bytes of plaintext sent after STARTTLS by {}[{}]", in_.size(), info_.peer_name, info_.peer_ip);
                in_.clear();
            }
            tls_requested_ = false;
            if (!co_await handshake()) break;
            touch();
            session_->on_tls_started();
            continue;
        }
        if (!session_->wants_input() || output_queued() > settings_->output_limit) {
            // Backpressure: a client that does not read its replies is not read from either.
            reader_wake_.expires_at(Clock::time_point::max());
            co_await reader_wake_.async_wait(redirect_error(use_awaitable, ec));
            continue;
        }
        std::string_view got = co_await read_some(ec);
        if (ec || got.empty()) break;
        bytes_in_ += got.size();
        touch();
        bool decoded = decode_input(got);
        if (settings_->wipe_input) wipe(const_cast<char*>(got.data()), got.size());
        if (!decoded) break;
        process_input();
        release_idle_buffers();
        if (in_.size() > settings_->input_limit && !closing_) {
            log::line(log::Level::Warning, settings_->log_service, info_.id,
                      "input buffer limit {} exceeded by {}[{}]; disconnecting", settings_->input_limit, info_.peer_name, info_.peer_ip);
            break;
        }
    }
    closing_ = true;
    reader_done_ = true;
    closed_for_session();
    writer_wake_.cancel();
    if (--spawns_ == 0) finish();
}

asio::awaitable<std::string_view> Connection::read_some(std::error_code& ec) {
    static thread_local char buf[kReadChunk];
    if (tls_) {
        std::size_t n = co_await tls_->read_some(buf, sizeof buf, ec);
        co_return std::string_view(buf, n);
    }
    // Wait for readiness first, then read: the buffer is only used between the two, and only
    // by this connection.
    for (;;) {
        co_await socket_.async_wait(Stream::wait_read, redirect_error(use_awaitable, ec));
        if (ec) co_return std::string_view();
        std::size_t n = socket_.read_some(asio::buffer(buf), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::interrupted) continue;
        if (!ec && n == 0) ec = asio::error::eof;
        co_return std::string_view(buf, ec ? 0 : n);
    }
}

// Capacity left behind by a big command or reply is given back while the connection waits.
void Connection::release_idle_buffers() {
    if (in_.empty() && in_.capacity() > kIdleCapacity) std::string().swap(in_);
    if (out_.empty() && out_.capacity() > kIdleCapacity) std::string().swap(out_);
    if (wire_.empty() && wire_.capacity() > kIdleCapacity) std::string().swap(wire_);
}

bool Connection::decode_input(std::string_view bytes) {
    if (layers_.empty()) {
        in_.append(bytes);
        return true;
    }
    std::string cur(bytes), next;
    for (auto& layer : layers_) {
        next.clear();
        if (!layer->decode(cur, next)) {
            log::line(log::Level::Warning, settings_->log_service, info_.id, "bad input from {}[{}]: {}; disconnecting",
                      info_.peer_name, info_.peer_ip, layer->error());
            return false;
        }
        cur.swap(next);
    }
    in_.append(cur);
    return true;
}

bool Connection::decode_buffered_input() {
    std::string raw;
    raw.swap(in_);
    std::string decoded;
    bool ok = layers_.back()->decode(raw, decoded);
    if (!ok)
        log::line(log::Level::Warning, settings_->log_service, info_.id, "bad input from {}[{}]: {}; disconnecting",
                  info_.peer_name, info_.peer_ip, layers_.back()->error());
    in_ = std::move(decoded);
    return ok;
}

void Connection::consume_input(std::size_t n) {
    n = std::min(n, in_.size());
    if (!settings_->wipe_input) {
        in_.erase(0, n);
        return;
    }
    std::size_t size = in_.size();
    wipe(in_.data(), n);
    in_.erase(0, n);
    // Erasing moved the rest down and left a stale copy of its tail past the new end: growing
    // back with zeros overwrites it.
    in_.resize(size, '\0');
    in_.resize(size - n);
}

void Connection::process_input() {
    while (!in_.empty() && !closing_ && !tls_requested_) {
        in_on_input_ = true;
        std::size_t used = session_->on_input(in_);
        in_on_input_ = false;
        if (used) consume_input(used);
        if (layer_pushed_) {
            layer_pushed_ = false;
            if (!decode_buffered_input()) {
                abort();
                return;
            }
        }
        if (used == 0) break;
    }
    // RFC 2920 section 3.2 (4): all pending responses go out whenever the input buffer is
    // emptied. A partial line counts as empty: the client may be waiting for them.
    if (held_ && in_.find('\n') == std::string::npos) flush_held();
    check_drain();
}

void Connection::flush_held() {
    held_ = false;
    writer_wake_.cancel();
}

void Connection::encode_output() {
    if (out_.empty()) return;
    std::string cur, next;
    cur.swap(out_);
    for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
        next.clear();
        (*it)->encode(cur, next);
        cur.swap(next);
    }
    wire_.append(cur);
}

bool Connection::push_layer(std::unique_ptr<StreamLayer> layer) {
    if (!layer || finished_) return false;
    // What the session sent before keeps the encoding it was sent under.
    encode_output();
    layers_.push_back(std::move(layer));
    // Input already buffered came after the request. During on_input, in_ still holds the
    // request itself: process_input decodes the rest once it is consumed.
    if (in_on_input_) layer_pushed_ = true;
    else if (!in_.empty() && !decode_buffered_input()) abort();
    return true;
}

asio::awaitable<void> Connection::writer() {
    std::error_code ec;
    std::string chunk;
    bool write_failed = false;
    for (;;) {
        if (output_empty() || (held_ && !closing_)) {
            if (output_empty() && (closing_ || finished_)) break;
            writer_wake_.expires_at(Clock::time_point::max());
            co_await writer_wake_.async_wait(redirect_error(use_awaitable, ec));
            continue;
        }
        chunk.clear();
        if (layers_.empty()) {
            chunk.swap(out_);  // wire_ is only used once there are layers
        } else {
            encode_output();
            chunk.swap(wire_);
        }
        writing_ = chunk.size();
        if (tls_) co_await tls_->write(chunk, ec);
        else co_await asio::async_write(socket_, asio::buffer(chunk), redirect_error(use_awaitable, ec));
        writing_ = 0;
        bytes_out_ += chunk.size();
        if (output_empty() && chunk.capacity() > kIdleCapacity) std::string().swap(chunk);
        release_idle_buffers();
        reader_wake_.cancel();
        if (ec) {
            write_failed = true;
            break;
        }
        // A client reading a long reply is not idle: progress on output counts as activity.
        if (!closing_ && !finished_) {
            touch();
            session_->on_output_written();
        }
    }
    closing_ = true;
    // Every way out (QUIT, timeout, error reply, shutdown, the client's EOF) ends a TLS
    // connection with close_notify, unless the socket is broken or already closed (abort).
    if (!write_failed && tls_ && info_.tls_active && socket_.is_open()) co_await close_tls();
    socket_.shutdown(asio::socket_base::shutdown_both, ec);
    socket_.close(ec);
    reader_wake_.cancel();
    idle_timer_.cancel();
    if (--spawns_ == 0) finish();
}

// Sends close_notify without waiting for the client's (RFC 8446 section 6.1 lets the side that
// closes first skip the wait): shutting down the read side first makes the pending read (the
// reader's, then the TLS shutdown's own) see end of file at once. Bounded by kTlsCloseTimeout
// through the watchdog, for a client that doesn't read.
asio::awaitable<void> Connection::close_tls() {
    std::error_code ec;
    tls_closing_ = true;
    deadline_ = Clock::now() + kTlsCloseTimeout;
    idle_timer_.cancel();
    reader_wake_.cancel();
    socket_.shutdown(asio::socket_base::shutdown_receive, ec);
    while (!reader_done_ && socket_.is_open()) {  // one operation at a time on the TLS stream
        writer_wake_.expires_at(Clock::time_point::max());
        co_await writer_wake_.async_wait(redirect_error(use_awaitable, ec));
    }
    if (!socket_.is_open()) co_return;
    co_await tls_->shutdown(ec);
}

// The watchdog is a plain timer rather than a coroutine: it is armed for the whole life of every
// connection, and a callback costs far less memory than a coroutine frame. Cancelling the timer
// (a new deadline) runs the callback, which re-arms it.
void Connection::arm_watchdog() {
    idle_timer_.expires_at(deadline_);
    idle_timer_.async_wait([self = shared_from_this()](std::error_code) { self->on_watchdog(); });
}

void Connection::on_watchdog() {
    if (socket_.is_open() && !watch_deadline()) {
        arm_watchdog();
        return;
    }
    if (--spawns_ == 0) finish();
}

bool Connection::watch_deadline() {
    if (Clock::now() < deadline_) return false;  // extended meanwhile
    // Already saying goodbye (timeout, refusal, shutdown) or stuck in a handshake: the goodbye
    // did not get through in time, so stop waiting for the client.
    if (timed_out_ || in_handshake_ || refused_ || tls_closing_ || (draining_ && closing_)) {
        if (in_handshake_) handshake_timed_out_ = true;
        abort();
        return true;
    }
    timed_out_ = true;
    auto timeout = idle_timeout();
    log::line(log::Level::Info, settings_->log_service, info_.id, "timeout after {}s from {}[{}]{}",
              std::chrono::duration_cast<std::chrono::seconds>(timeout).count(), info_.peer_name, info_.peer_ip,
              timeout < base_idle_timeout() ? " (server under stress)" : "");
    session_->on_timeout();
    close();
    deadline_ = Clock::now() + kCloseGrace;
    return !socket_.is_open();
}

void Connection::send(std::string_view bytes) {
    if (finished_ || !socket_.is_open()) return;
    out_.append(bytes);
    flush_held();
}

void Connection::send_grouped(std::string_view bytes) {
    if (finished_ || !socket_.is_open()) return;
    out_.append(bytes);
    // Held only while a complete command line is still to be read (in_ still holds the line
    // being answered when this is called from on_input) and the group stays small.
    if (in_.find('\n') != std::string::npos && out_.size() < settings_->output_limit / 2) held_ = true;
    else flush_held();
}

void Connection::close() {
    closing_ = true;
    writer_wake_.cancel();
    reader_wake_.cancel();
    // The reader may be parked in a read; the writer closes the socket once output is written,
    // which ends that read.
}

void Connection::start_tls() {
    // Not under stacked layers: the handshake would run through them, which no client expects.
    if (!settings_->tls || tls_ || !layers_.empty()) return;
    tls_requested_ = true;
}

void Connection::resume_input() {
    auto self = shared_from_this();
    asio::post(socket_.get_executor(), [self] {
        if (self->closing_) return;
        self->process_input();
        self->reader_wake_.cancel();  // a reader parked by wants_input() looks again
    });
}

void Connection::begin_shutdown() {
    if (draining_) return;
    draining_ = true;
    check_drain();
}

void Connection::check_drain() {
    if (!draining_ || closing_ || in_handshake_ || session_->busy()) return;
    session_->on_shutdown();
    close();
    deadline_ = std::min(deadline_, Clock::now() + kCloseGrace);
    idle_timer_.cancel();
}

void Connection::abort() {
    std::error_code ec;
    closing_ = true;
    out_.clear();
    wire_.clear();
    socket_.close(ec);
    writer_wake_.cancel();
    reader_wake_.cancel();
    idle_timer_.cancel();
    closed_for_session();
}

void Connection::closed_for_session() {
    if (session_closed_) return;
    session_closed_ = true;
    session_->on_close();
}

void Connection::finish() {
    if (finished_) return;
    finished_ = true;
    if (settings_->log_connections) {
        std::string summary = session_->summary();
        log::line(log::Level::Info, settings_->log_service, info_.id, "disconnect from {}[{}]:{} in={} out={}{}{}",
                  info_.peer_name, info_.peer_ip, info_.peer_port, bytes_in_, bytes_out_, summary.empty() ? "" : " ", summary);
    }
    if (on_closed_) on_closed_();
}

}  // namespace pillarbox
