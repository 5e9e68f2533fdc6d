// Connection: reader, writer and idle-watchdog coroutines around one socket (see connection.hpp).
#include "connection.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <openssl/ssl.h>

#include "log.hpp"

namespace pillarbox {

using asio::redirect_error;
using asio::use_awaitable;
using namespace std::chrono_literals;

namespace {
constexpr auto kCloseGrace = 10s;  // after a timeout or refusal, how long the goodbye may take
constexpr auto kTlsCloseTimeout = 5s;  // how long writing the close_notify alert may take
constexpr std::size_t kReadChunk = 16 * 1024;
}  // namespace

Connection::Connection(asio::ip::tcp::socket socket, std::shared_ptr<const ListenerState> listener, std::string id,
                       const SessionFactory& factory, std::function<void()> on_closed)
    : socket_(std::move(socket)),
      listener_(std::move(listener)),
      on_closed_(std::move(on_closed)),
      writer_wake_(socket_.get_executor()),
      reader_wake_(socket_.get_executor()),
      idle_timer_(socket_.get_executor()) {
    info_.id = std::move(id);
    info_.listener = listener_->name;
    service_ = listener_->protocol ? listener_->protocol->log_service : "server";
    info_.tls_mode = listener_->line.tls;
    info_.config = listener_->config.get();
    std::error_code ec;
    auto peer = socket_.remote_endpoint(ec);
    if (!ec) {
        info_.peer_ip = peer.address().is_v6() && peer.address().to_v6().is_v4_mapped()
                            ? asio::ip::make_address_v4(asio::ip::v4_mapped, peer.address().to_v6()).to_string()
                            : peer.address().to_string();
        info_.peer_port = peer.port();
    }
    auto local = socket_.local_endpoint(ec);
    if (!ec) {
        info_.local_ip = local.address().to_string();
        info_.local_port = local.port();
    }
    session_ = factory(*this);
}

Connection::~Connection() = default;

void Connection::start(std::string refusal) {
    auto self = shared_from_this();
    refused_ = !refusal.empty();
    log::line(log::Level::Info, service_, info_.id, "connect from unknown[{}]:{} to {}",
              info_.peer_ip, info_.peer_port, info_.listener);
    touch();
    if (refused_) {
        log::line(log::Level::Warning, service_, info_.id, "refused unknown[{}]: {}",
                  info_.peer_ip, refusal);
        deadline_ = std::chrono::steady_clock::now() + std::min<std::chrono::steady_clock::duration>(kCloseGrace, listener_->idle_timeout);
    }
    auto ex = socket_.get_executor();
    auto spawn = [&](asio::awaitable<void> (Connection::*fn)()) {
        asio::co_spawn(ex, [self, fn]() -> asio::awaitable<void> { co_await (self.get()->*fn)(); }, asio::detached);
    };
    spawns_ = 3;
    pending_refusal_ = std::move(refusal);
    spawn(&Connection::reader);
    spawn(&Connection::writer);
    spawn(&Connection::watchdog);
}

void Connection::touch() {
    last_active_ = std::chrono::steady_clock::now();
    deadline_ = last_active_ + idle_timeout();
}

std::chrono::milliseconds Connection::idle_timeout() const {
    if (load_ && load_->stressed && !authenticated_) return std::min(listener_->idle_timeout, load_->stress_idle_timeout);
    return listener_->idle_timeout;
}

void Connection::load_changed() {
    // Deadlines of goodbyes, handshakes and drains are not idle deadlines: leave them.
    if (finished_ || closing_ || timed_out_ || refused_ || in_handshake_ || draining_) return;
    deadline_ = last_active_ + idle_timeout();
    idle_timer_.cancel();  // the watchdog re-arms at the new deadline (at once if it has passed)
}

void Connection::set_authenticated() {
    if (authenticated_) return;
    authenticated_ = true;
    load_changed();
}

asio::awaitable<bool> Connection::handshake() {
    std::error_code ec;
    in_handshake_ = true;
    // A client that connects and never completes the handshake holds a connection for at most
    // tls_handshake_timeout (the watchdog aborts it), or the idle timeout if shorter (stress).
    auto handshake_timeout = std::min(listener_->tls_handshake_timeout, idle_timeout());
    auto handshake_deadline = std::chrono::steady_clock::now() + handshake_timeout;
    deadline_ = refused_ ? std::min(deadline_, handshake_deadline) : handshake_deadline;  // a refusal keeps its grace
    idle_timer_.cancel();
    tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, listener_->tls->context());
    co_await tls_->async_handshake(asio::ssl::stream_base::server, redirect_error(use_awaitable, ec));
    in_handshake_ = false;
    if (ec) {
        if (handshake_timed_out_)
            log::line(log::Level::Warning, service_, info_.id,
                      "TLS handshake failed from {}[{}]: timed out after {}s (tls_handshake_timeout)", info_.peer_name, info_.peer_ip,
                      std::chrono::duration_cast<std::chrono::seconds>(handshake_timeout).count());
        else
            log::line(log::Level::Warning, service_, info_.id, "TLS handshake failed from {}[{}]: {}",
                      info_.peer_name, info_.peer_ip, ec.message());
        co_return false;
    }
    SSL* ssl = tls_->native_handle();
    info_.tls_active = true;
    info_.tls_version = SSL_get_version(ssl);
    info_.tls_cipher = SSL_get_cipher_name(ssl);
    if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) info_.tls_sni = sni;
    log::line(log::Level::Info, service_, info_.id,
              "{} TLS connection established from {}[{}]: {} with cipher {}{}",
              info_.tls_mode == config::TlsMode::Implicit ? "Implicit" : "STARTTLS", info_.peer_name, info_.peer_ip, info_.tls_version,
              info_.tls_cipher, info_.tls_sni.empty() ? "" : " sni=" + info_.tls_sni);
    co_return true;
}

asio::awaitable<void> Connection::reader() {
    std::error_code ec;
    if (info_.tls_mode == config::TlsMode::Implicit && listener_->tls) {
        if (!co_await handshake()) {
            closing_ = true;
            reader_done_ = true;
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
    std::string buf(kReadChunk, '\0');
    while (!closing_) {
        if (tls_requested_) {
            // Wait until the session's "go ahead" reply is on the wire, then drop every byte the
            // client sent before the handshake: pipelined plaintext must never be read as if it
            // arrived under TLS (RFC 3207 section 4.2, CVE-2011-0411).
            while (!out_.empty() || writing_) {
                reader_wake_.expires_at(std::chrono::steady_clock::time_point::max());
                co_await reader_wake_.async_wait(redirect_error(use_awaitable, ec));
                if (closing_) break;
            }
            if (closing_) break;
            if (!in_.empty()) {
                log::line(log::Level::Warning, service_, info_.id,
                          "discarded {} bytes of plaintext sent after STARTTLS by {}[{}]", in_.size(), info_.peer_name, info_.peer_ip);
                in_.clear();
            }
            tls_requested_ = false;
            if (!co_await handshake()) break;
            touch();
            session_->on_tls_started();
            continue;
        }
        if (!session_->wants_input() || out_.size() + writing_ > listener_->output_limit) {
            // Backpressure: a client that does not read its replies is not read from either.
            reader_wake_.expires_at(std::chrono::steady_clock::time_point::max());
            co_await reader_wake_.async_wait(redirect_error(use_awaitable, ec));
            continue;
        }
        std::size_t n = tls_ ? co_await tls_->async_read_some(asio::buffer(buf), redirect_error(use_awaitable, ec))
                             : co_await socket_.async_read_some(asio::buffer(buf), redirect_error(use_awaitable, ec));
        if (ec || n == 0) break;
        bytes_in_ += n;
        touch();
        in_.append(buf.data(), n);
        process_input();
        if (in_.size() > listener_->input_limit && !closing_) {
            log::line(log::Level::Warning, service_, info_.id,
                      "input buffer limit {} exceeded by {}[{}]; disconnecting", listener_->input_limit, info_.peer_name, info_.peer_ip);
            break;
        }
    }
    closing_ = true;
    reader_done_ = true;
    writer_wake_.cancel();
    if (--spawns_ == 0) finish();
}

void Connection::process_input() {
    while (!in_.empty() && !closing_ && !tls_requested_) {
        std::size_t used = session_->on_input(in_);
        if (used == 0) break;
        in_.erase(0, std::min(used, in_.size()));
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

asio::awaitable<void> Connection::writer() {
    std::error_code ec;
    std::string chunk;
    bool write_failed = false;
    for (;;) {
        if (out_.empty() || (held_ && !closing_)) {
            if (out_.empty() && (closing_ || finished_)) break;
            writer_wake_.expires_at(std::chrono::steady_clock::time_point::max());
            co_await writer_wake_.async_wait(redirect_error(use_awaitable, ec));
            continue;
        }
        chunk.clear();
        chunk.swap(out_);
        writing_ = chunk.size();
        if (tls_) co_await asio::async_write(*tls_, asio::buffer(chunk), redirect_error(use_awaitable, ec));
        else co_await asio::async_write(socket_, asio::buffer(chunk), redirect_error(use_awaitable, ec));
        writing_ = 0;
        bytes_out_ += chunk.size();
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
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
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
    deadline_ = std::chrono::steady_clock::now() + kTlsCloseTimeout;
    idle_timer_.cancel();
    reader_wake_.cancel();
    socket_.shutdown(asio::ip::tcp::socket::shutdown_receive, ec);
    while (!reader_done_ && socket_.is_open()) {  // one operation at a time on the TLS stream
        writer_wake_.expires_at(std::chrono::steady_clock::time_point::max());
        co_await writer_wake_.async_wait(redirect_error(use_awaitable, ec));
    }
    if (!socket_.is_open()) co_return;
    co_await tls_->async_shutdown(redirect_error(use_awaitable, ec));
}

asio::awaitable<void> Connection::watchdog() {
    std::error_code ec;
    while (socket_.is_open()) {
        idle_timer_.expires_at(deadline_);
        co_await idle_timer_.async_wait(redirect_error(use_awaitable, ec));
        if (!socket_.is_open()) break;
        if (std::chrono::steady_clock::now() < deadline_) continue;  // extended meanwhile
        // Already saying goodbye (timeout, refusal, shutdown) or stuck in a handshake: the
        // goodbye did not get through in time, so stop waiting for the client.
        if (timed_out_ || in_handshake_ || refused_ || tls_closing_ || (draining_ && closing_)) {
            if (in_handshake_) handshake_timed_out_ = true;
            abort();
            break;
        }
        timed_out_ = true;
        auto timeout = idle_timeout();
        log::line(log::Level::Info, service_, info_.id, "timeout after {}s from {}[{}]{}",
                  std::chrono::duration_cast<std::chrono::seconds>(timeout).count(), info_.peer_name, info_.peer_ip,
                  timeout < listener_->idle_timeout ? " (server under stress)" : "");
        session_->on_timeout();
        close();
        deadline_ = std::chrono::steady_clock::now() + kCloseGrace;
    }
    if (--spawns_ == 0) finish();
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
    if (in_.find('\n') != std::string::npos && out_.size() < listener_->output_limit / 2) held_ = true;
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
    if (!listener_->tls || tls_) return;
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
    deadline_ = std::min(deadline_, std::chrono::steady_clock::now() + kCloseGrace);
    idle_timer_.cancel();
}

void Connection::abort() {
    std::error_code ec;
    closing_ = true;
    out_.clear();
    socket_.close(ec);
    writer_wake_.cancel();
    reader_wake_.cancel();
    idle_timer_.cancel();
}

void Connection::finish() {
    if (finished_) return;
    finished_ = true;
    std::string summary = session_->summary();
    log::line(log::Level::Info, service_, info_.id, "disconnect from {}[{}]:{} in={} out={}{}{}",
              info_.peer_name, info_.peer_ip, info_.peer_port, bytes_in_, bytes_out_, summary.empty() ? "" : " ", summary);
    if (on_closed_) on_closed_();
}

}  // namespace pillarbox
