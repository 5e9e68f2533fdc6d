// The in-process connection (see pipe.hpp).
#include "tests/unit/scripts/pipe.hpp"

#include <asio/post.hpp>

#include <stdexcept>

namespace pillarbox::scripts {

Pipe::Pipe(asio::io_context& io, ConnectionInfo info, std::chrono::milliseconds idle_timeout)
    : io_(io), info_(std::move(info)), idle_timeout_(idle_timeout), idle_(io) {}

Pipe::~Pipe() {
    *alive_ = false;
    session_.reset();
}

void Pipe::start(const SessionFactory& factory) {
    session_ = factory(*this);
    touch();
    session_->on_start();
    pump();
}

void Pipe::touch() {
    idle_.expires_after(idle_timeout_);
    idle_.async_wait([this, alive = alive_](std::error_code ec) {
        if (ec || !*alive || closing_ || !session_) return;
        session_->on_timeout();
        close();
    });
}

void Pipe::client_send(std::string_view bytes) {
    if (!session_) return;
    socket_ += bytes;
    touch();
    pump();
}

void Pipe::pump() {
    if (!session_ || closing_) return;
    if (session_->wants_input() && !socket_.empty()) {
        in_ += socket_;
        socket_.clear();
    }
    process_input();
}

void Pipe::process_input() {
    while (session_ && !in_.empty() && !closing_ && !tls_requested_) {
        std::size_t used = session_->on_input(in_);
        if (used == 0) break;
        in_.erase(0, std::min(used, in_.size()));
    }
    // RFC 2920 section 3.2 (4): pending responses go out once no complete line is left unread.
    if (!held_.empty() && in_.find('\n') == std::string::npos) {
        out_ += held_;
        held_.clear();
    }
}

void Pipe::send(std::string_view bytes) {
    if (closing_) return;
    out_ += held_;
    held_.clear();
    out_ += bytes;
}

void Pipe::send_grouped(std::string_view bytes) {
    if (closing_) return;
    if (in_.find('\n') != std::string::npos) held_ += bytes;
    else send(bytes);
}

void Pipe::close() {
    out_ += held_;
    held_.clear();
    closing_ = true;
    idle_.cancel();
}

void Pipe::resume_input() {
    asio::post(io_, [this, alive = alive_] {
        if (*alive) pump();
    });
}

std::optional<std::string> Pipe::read_line(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto nl = out_.find('\n');
        if (nl != std::string::npos) {
            std::string line = out_.substr(0, nl);
            out_.erase(0, nl + 1);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            return line;
        }
        if (closing_ || !session_) {
            if (out_.empty()) return std::nullopt;
            return std::exchange(out_, {});  // a last line without its CRLF
        }
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) throw std::runtime_error("timed out waiting for the server");
        io_.run_one_for(deadline - now);
    }
}

bool Pipe::client_tls() {
    if (!tls_requested_) return false;
    // The Connection drops plaintext read before the handshake (CVE-2011-0411).
    in_.clear();
    socket_.clear();
    tls_requested_ = false;
    info_.tls_active = true;
    info_.tls_version = "TLSv1.3";
    info_.tls_cipher = "TLS_AES_256_GCM_SHA384";
    session_->on_tls_started();
    pump();
    return true;
}

void Pipe::client_close() {
    session_.reset();
    idle_.cancel();
}

}  // namespace pillarbox::scripts
